//! When a scheduled backup is due (pure; `now` passed in). The runner is the
//! autoscaler's (`appgrid autoscale --once` from cron or a timer, or its
//! loop): each pass asks whether the schedule has started since the newest
//! backup in the repository, so a missed start (the runner was down) is made
//! up once, and a pass that runs twice in one minute backs up once.

use crate::autoscale::{CronExpr, ScheduleRule, TimeZone};

/// `[database.backup] schedule` read in its zone.
pub fn rule(cron: CronExpr, zone: TimeZone) -> ScheduleRule {
    ScheduleRule {
        cron,
        zone,
        min: None,
        max: None,
        desired: None,
    }
}

/// The schedule's start that calls for a backup now: the latest start at or
/// before `now` when no backup began at or after it. `newest`: when the
/// newest backup in the repository started (unix seconds).
pub fn due(rule: &ScheduleRule, newest: Option<i64>, now: i64) -> Option<i64> {
    let start = rule.latest_start(now)?;
    match newest {
        Some(t) if t >= start => None,
        _ => Some(start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 00:00:00 UTC.
    const DAY: i64 = 1_796_169_600;

    fn nightly() -> ScheduleRule {
        rule(CronExpr::parse("0 3 * * *").unwrap(), TimeZone::utc())
    }

    #[test]
    fn due_once_after_each_start() {
        let r = nightly();
        let three = DAY + 3 * 3600;
        // Before today's 03:00: yesterday's start, already backed up.
        assert_eq!(due(&r, Some(three - 86_400 + 5), three - 60), None);
        // At 03:00 with yesterday's backup the newest: due.
        assert_eq!(due(&r, Some(three - 86_400 + 5), three), Some(three));
        // Once taken, not again until tomorrow.
        assert_eq!(due(&r, Some(three + 2), three + 600), None);
        // Never backed up: the latest start is due.
        assert_eq!(due(&r, None, three + 600), Some(three));
    }

    #[test]
    fn the_zone_moves_the_start() {
        let r = rule(
            CronExpr::parse("0 3 * * *").unwrap(),
            TimeZone::parse_fixed("+02:00").unwrap(),
        );
        // 03:00 at +02:00 is 01:00 UTC.
        assert_eq!(due(&r, None, DAY + 3600 + 1), Some(DAY + 3600));
    }
}
