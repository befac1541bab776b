//! Matching five-field cron expressions against wall-clock minutes, and
//! finding the latest matching minute at or before a time.
//!
//! Parsing is the manifest's ([`crate::manifest::parse_cron`], the one cron
//! parser, whose errors point into the file); this module matches the bit
//! sets it returns. Day-of-month and day-of-week combine as in Vixie cron:
//! when either field starts with `*` both must match, otherwise either may.

use super::tz::date_of_days;
use crate::manifest::{CronError, CronFields, parse_cron};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    fields: CronFields,
}

/// Why an expression is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronParseError {
    #[error("cron expression {0:?} must have 5 fields")]
    FieldCount(String),
    #[error("cron expression {expr:?}: invalid {field} field {value:?}: {reason}")]
    Field {
        expr: String,
        field: &'static str,
        value: String,
        reason: String,
    },
}

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, CronParseError> {
        let fields = parse_cron(expr).map_err(|e| match e {
            CronError::FieldCount(_) => CronParseError::FieldCount(expr.to_string()),
            CronError::Field { name, span, reason } => CronParseError::Field {
                expr: expr.to_string(),
                field: name,
                value: expr[span].to_string(),
                reason,
            },
        })?;
        Ok(CronExpr {
            text: expr.split_whitespace().collect::<Vec<_>>().join(" "),
            fields,
        })
    }

    /// The expression as written, with single spaces.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the expression fires on this day (days since 1970-01-01).
    pub fn matches_day(&self, days: i64) -> bool {
        let f = &self.fields;
        let date = date_of_days(days);
        if f.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = f.days_of_month & (1 << date.day()) != 0;
        let dow = f.days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if f.dom_star || f.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the expression fires at the minute holding local seconds `local`.
    pub fn matches(&self, local: i64) -> bool {
        let secs = local.rem_euclid(86_400);
        self.matches_day(local.div_euclid(86_400))
            && self.fields.hours & (1 << (secs / 3600)) != 0
            && self.fields.minutes & (1 << (secs % 3600 / 60)) != 0
    }

    /// The latest local minute (in local seconds, a multiple of 60) at or
    /// before `local` when the expression fires, looking back at most
    /// `lookback_days` days.
    pub fn latest_at_or_before(&self, local: i64, lookback_days: i64) -> Option<i64> {
        let today = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        for day in (today - lookback_days..=today).rev() {
            if !self.matches_day(day) {
                continue;
            }
            let (hour_bound, minute_bound) = if day == today {
                (secs / 3600, secs % 3600 / 60)
            } else {
                (23, 59)
            };
            for hour in (0..=hour_bound).rev() {
                if self.fields.hours & (1 << hour) == 0 {
                    continue;
                }
                let last_minute = if hour == hour_bound { minute_bound } else { 59 };
                let below = self.fields.minutes & (u64::MAX >> (63 - last_minute));
                if below != 0 {
                    let minute = 63 - i64::from(below.leading_zeros());
                    return Some(day * 86_400 + hour * 3600 + minute * 60);
                }
            }
        }
        None
    }
}
