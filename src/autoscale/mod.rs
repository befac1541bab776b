//! The pure core of autoscaling: the policy, [`decide`], schedules in time
//! zones, the predictive option, and a simulator that replays a request trace
//! through the same `decide` and measures elasticity.
//!
//! Nothing here reads a clock or does I/O, except the two clearly named
//! loaders [`TimeZone::load`] and [`Policy::load`] that read
//! `/usr/share/zoneinfo`. Time is unix seconds passed in.

mod civil;
mod cron;
mod decide;
mod elasticity;
pub mod live;
mod policy;
mod posix_tz;
mod predict;
mod schedule;
mod simulate;
mod svg;
mod trace;
mod tz;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use civil::format_time;
pub use cron::{CronExpr, CronParseError, date_days};
pub use decide::{decide, instances_for, needed};
pub use elasticity::{Elasticity, elasticity};
pub use policy::{
    DEFAULT_TOLERANCE, Decision, DecisionRecord, DemandPoint, History, Policy, PolicyError,
    Predictive, Sample,
};
pub use predict::{Forecast, forecast};
pub use schedule::{Bounds, LOOKBACK_DAYS, ScheduleRule};
pub use simulate::{CapacityModel, Row, Simulation, simulate, summary, timeline_csv};
pub use svg::svg_chart;
pub use trace::{TraceError, TracePoint, parse_trace};
pub use tz::{TimeZone, TzError, ZONEINFO_DIR};
