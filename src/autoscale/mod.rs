//! The pure core of autoscaling: the policy, [`decide`], schedules in time
//! zones, the predictive option, the forecast policy, and a simulator that replays a request trace
//! through the same `decide` and measures elasticity.
//!
//! Nothing here reads a clock or does I/O, except the two clearly named
//! loaders [`TimeZone::load`] and [`Policy::load`] that read
//! `/usr/share/zoneinfo`. Time is unix seconds passed in.

mod cron;
mod decide;
mod elasticity;
mod emulate;
mod emulate_compare;
pub mod failover;
pub mod fleet;
pub mod fleet_record;
pub mod fleet_units;
mod forecast;
mod history_lines;
pub mod live;
mod policy;
mod predict;
mod replicas;
mod replicas_live;
mod schedule;
mod shadow;
mod simulate;
mod svg;
mod trace;
mod tz;

#[cfg(test)]
mod forecast_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod queue_time_tests;
#[cfg(test)]
mod replicas_tests;
#[cfg(test)]
mod tests;

pub use cron::{CronExpr, CronParseError};
pub use decide::{decide, instances_for, needed};
pub use elasticity::{Elasticity, elasticity};
pub use emulate::{Emulated, Model, hpa, target_tracking};
pub use emulate_compare::{
    Comparison, Scored, compare, comparison_csv, comparison_table, minute_rates,
};
pub use forecast::{
    COLD_MARGIN, DEFAULT_BOOT_S, DEFAULT_QUANTILE, MIN_RESIDUALS, Outlook, boot_s, outlook,
};
pub use history_lines::{HistoryLine, history};
pub use policy::{
    DEFAULT_TOLERANCE, Decision, DecisionRecord, DemandPoint, ForecastSettings, History, Policy,
    PolicyError, Predictive, Sample,
};
pub use predict::{Forecast, forecast};
pub use replicas::{ReplicaChange, ReplicaPolicy, ReplicaSample, decide_replicas, replicas_needed};
pub use replicas_live::replica_metric_name;
pub use schedule::{Bounds, LOOKBACK_DAYS, ScheduleRule};
pub use shadow::{ShadowEntry, decide_shadow, demand_trace};
pub use simulate::{CapacityModel, Row, Simulation, simulate, summary, timeline_csv};
pub use svg::{svg_chart, svg_lines};
pub use trace::{TraceError, TracePoint, parse_trace};
pub use tz::{TimeZone, TzError, ZONEINFO_DIR, date_days, format_time};
