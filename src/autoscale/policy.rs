//! The autoscaling policy and the data `decide` works on: samples of the
//! metric, the history of past decisions and demand, and the decision.

use std::time::Duration;

use super::cron::{CronExpr, CronParseError};
use super::schedule::{self, Bounds, ScheduleRule};
use super::tz::{TimeZone, TzError};
use crate::manifest::{Autoscale, Metric, PolicyKind};

/// Target tracking with bounds, cooldowns, warm-up and schedules.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub metric: Metric,
    /// The metric value per instance to hold.
    pub target: f64,
    pub min: u32,
    pub max: u32,
    pub scale_out_cooldown_s: u64,
    /// Also the stabilization window for scale-in.
    pub scale_in_cooldown_s: u64,
    pub warmup_s: u64,
    pub interval_s: u64,
    /// Relative distance from the target inside which nothing changes.
    pub tolerance: f64,
    pub schedules: Vec<ScheduleRule>,
    pub predictive: Option<Predictive>,
    /// `policy = "forecast"` (see `forecast`); `None` is the reactive policy.
    pub forecast: Option<ForecastSettings>,
    /// `forecast_only = true`: the forecast policy with these settings
    /// decides beside this one, for the record only (see `shadow`).
    pub shadow: Option<ForecastSettings>,
}

/// The forecast policy's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastSettings {
    /// Seconds from asking for a server to it serving; `None`: measured.
    pub boot_s: Option<u64>,
    /// The quantile of its own recent errors the margin covers.
    pub quantile: f64,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            boot_s: None,
            quantile: super::forecast::DEFAULT_QUANTILE,
        }
    }
}

/// Scaling out ahead of a rise the history predicts (see `predict`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictive {
    /// How far ahead to provision: at least the boot time plus one interval.
    pub lookahead_s: u64,
    /// Width of the moving mean that smooths the demand history.
    pub smoothing_s: u64,
}

impl Default for Predictive {
    fn default() -> Self {
        Predictive {
            lookahead_s: 180,
            smoothing_s: 600,
        }
    }
}

/// Why a policy could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("schedule {index}: {source}")]
    Cron {
        index: usize,
        #[source]
        source: CronParseError,
    },
    #[error("schedule {index}: {source}")]
    Zone {
        index: usize,
        #[source]
        source: TzError,
    },
}

/// The tolerance band used when the manifest does not say.
pub const DEFAULT_TOLERANCE: f64 = 0.10;

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Policy {
    /// A policy from the manifest's validated `[autoscale]`; `zone` supplies
    /// each schedule's time zone by name (pure when it is, e.g. a map lookup).
    pub fn from_autoscale(
        a: &Autoscale,
        mut zone: impl FnMut(&str) -> Result<TimeZone, TzError>,
    ) -> Result<Policy, PolicyError> {
        let mut schedules = Vec::with_capacity(a.schedule.len());
        for (index, s) in a.schedule.iter().enumerate() {
            let cron =
                CronExpr::parse(&s.cron).map_err(|source| PolicyError::Cron { index, source })?;
            let zone = zone(&s.timezone).map_err(|source| PolicyError::Zone { index, source })?;
            schedules.push(ScheduleRule {
                cron,
                zone,
                min: s.min,
                max: s.max,
                desired: s.desired,
            });
        }
        let forecast = ForecastSettings {
            boot_s: a.boot.map(secs),
            quantile: a
                .forecast_quantile
                .unwrap_or(super::forecast::DEFAULT_QUANTILE),
        };
        Ok(Policy {
            metric: a.metric,
            target: a.target,
            min: a.min,
            max: a.max,
            scale_out_cooldown_s: secs(a.scale_out_cooldown),
            scale_in_cooldown_s: secs(a.scale_in_cooldown),
            warmup_s: secs(a.warmup),
            interval_s: secs(a.interval).max(1),
            tolerance: DEFAULT_TOLERANCE,
            schedules,
            predictive: a.predictive.then(Predictive::default),
            forecast: (a.policy == PolicyKind::Forecast && !a.forecast_only).then_some(forecast),
            shadow: a.forecast_only.then_some(forecast),
        })
    }

    /// I/O: [`Policy::from_autoscale`] with zones read by [`TimeZone::load`].
    pub fn load(a: &Autoscale) -> Result<Policy, PolicyError> {
        Policy::from_autoscale(a, TimeZone::load)
    }

    /// A sample older than this is stale: two intervals, at least a minute.
    pub fn stale_after_s(&self) -> u64 {
        (2 * self.interval_s).max(60)
    }

    /// The bounds in force at `now` (schedules applied).
    pub fn bounds_at(&self, now: u64) -> Bounds {
        schedule::bounds_at(
            &self.schedules,
            self.min,
            self.max,
            self.interval_s,
            i64::try_from(now).unwrap_or(i64::MAX),
        )
    }
}

/// One reading of the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix seconds.
    pub at: u64,
    /// The metric averaged over the warm instances: requests/s per instance,
    /// response time in ms, or CPU in percent.
    pub value: f64,
    /// Instances serving traffic that reported (warm or not).
    pub instances_reporting: u32,
    /// Of those, the ones past warm-up, whose readings make up `value`.
    pub instances_warm: u32,
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub at: u64,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// Total load at an instant: the metric times the instances reporting it
/// (requests/s for `requests_per_instance`), for the predictive option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandPoint {
    pub at: u64,
    pub load: f64,
}

/// What happened before: decisions, and demand (both ascending in time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub decisions: Vec<DecisionRecord>,
    pub demand: Vec<DemandPoint>,
    /// Seconds from asking for a server to it serving, measured on past
    /// scale-outs (oldest first), for the forecast policy's horizon.
    pub boots: Vec<u64>,
}

impl History {
    /// When the count last changed, at or before `now`.
    pub fn last_change_at(&self, now: u64) -> Option<u64> {
        self.decisions
            .iter()
            .rev()
            .filter(|d| d.at <= now && d.from != d.to)
            .map(|d| d.at)
            .next()
    }
}

/// What `decide` concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub desired: u32,
    /// A sentence for people, kept in the history.
    pub reason: String,
}
