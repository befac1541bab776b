//! Scheduled changes of the bounds: `[[autoscale.schedule]]` entries, each a
//! cron expression read in its own time zone.
//!
//! Semantics (as AWS scheduled actions): a schedule *starts* at each minute
//! its expression matches, and from then on its `min`/`max` replace the
//! policy's until another schedule starts; among schedules the most recently
//! started wins (ties: the later entry). To return to the policy's bounds,
//! write a second schedule that sets them (e.g. `0 18 * * MON-FRI`, `min = 2`).
//! `desired` is a one-time jump: it applies to passes within one `interval`
//! of the start, after which the reactive policy continues inside the bounds.
//! Starts are searched at most [`LOOKBACK_DAYS`] back.

use super::cron::CronExpr;
use super::tz::TimeZone;

/// How far back a schedule's latest start is looked for.
pub const LOOKBACK_DAYS: i64 = 366;

/// One `[[autoscale.schedule]]` entry, ready to match.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRule {
    pub cron: CronExpr,
    pub zone: TimeZone,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub desired: Option<u32>,
}

impl ScheduleRule {
    /// The latest instant (UTC seconds) at or before `now` when this schedule
    /// started. A start in a skipped hour happens when the gap ends; a start
    /// in a repeated hour happens at its first occurrence.
    pub fn latest_start(&self, now: i64) -> Option<i64> {
        let mut bound = self.zone.to_local(now);
        let earliest = bound - (LOOKBACK_DAYS + 1) * 86_400;
        while bound >= earliest {
            let local = self.cron.latest_at_or_before(bound, LOOKBACK_DAYS)?;
            let start = self.zone.from_local(local);
            if start <= now {
                return Some(start);
            }
            bound = local - 60;
        }
        None
    }

    /// How people read this schedule in reasons: "schedule `0 8 * * MON-FRI` (Europe/Berlin)".
    pub fn label(&self) -> String {
        format!("schedule `{}` ({})", self.cron.text(), self.zone.name())
    }
}

/// The bounds in force at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    /// A schedule's `desired`, when its one-time jump is due.
    pub desired: Option<u32>,
    /// The schedule in force, with its latest start, if any.
    pub schedule: Option<(usize, i64)>,
}

/// The bounds at `now` given the policy's own and its schedules.
pub fn bounds_at(rules: &[ScheduleRule], min: u32, max: u32, interval_s: u64, now: i64) -> Bounds {
    let active = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.latest_start(now).map(|at| (i, at)))
        .max_by_key(|&(i, at)| (at, i));
    let Some((index, started)) = active else {
        return Bounds {
            min,
            max,
            desired: None,
            schedule: None,
        };
    };
    let rule = &rules[index];
    let (mut lo, mut hi) = (rule.min.unwrap_or(min), rule.max.unwrap_or(max));
    if lo > hi {
        // The schedule's own value wins over the policy's.
        if rule.min.is_some() {
            hi = lo;
        } else {
            lo = hi;
        }
    }
    let due = now - started < i64::try_from(interval_s).unwrap_or(i64::MAX);
    Bounds {
        min: lo,
        max: hi,
        desired: rule.desired.filter(|_| due).map(|d| d.clamp(lo, hi)),
        schedule: Some((index, started)),
    }
}
