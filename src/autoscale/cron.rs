//! Matching five-field cron expressions against wall-clock minutes, and
//! finding the latest matching minute at or before a time.
//!
//! The syntax is the manifest's (`manifest::schema::cron` validates it with
//! messages pointing into the file); this module turns a valid expression
//! into bit sets. Day-of-month and day-of-week combine as in Vixie cron: when
//! either field starts with `*` both must match, otherwise either may.

use super::civil::{civil_from_days, days_from_civil, month_len, weekday_of};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    dom_star: bool,
    dow_star: bool,
}

/// Why an expression is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronParseError {
    #[error("cron expression {0:?} must have 5 fields")]
    FieldCount(String),
    #[error("cron expression {expr:?}: invalid {field} field {value:?}")]
    Field {
        expr: String,
        field: &'static str,
        value: String,
    },
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, CronParseError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronParseError::FieldCount(expr.to_string()));
        };
        let field = |name: &'static str, text: &str, min: u32, max: u32, names: &[&str]| {
            bits(text, min, max, names).ok_or_else(|| CronParseError::Field {
                expr: expr.to_string(),
                field: name,
                value: text.to_string(),
            })
        };
        let mut dow_bits = field("day-of-week", dow, 0, 7, &DAYS)?;
        if dow_bits & (1 << 7) != 0 {
            dow_bits = (dow_bits | 1) & 0x7f;
        }
        Ok(CronExpr {
            text: expr.split_whitespace().collect::<Vec<_>>().join(" "),
            minutes: field("minute", minute, 0, 59, &[])?,
            hours: field("hour", hour, 0, 23, &[])? as u32,
            days_of_month: field("day-of-month", dom, 1, 31, &[])? as u32,
            months: field("month", month, 1, 12, &MONTHS)? as u16,
            days_of_week: dow_bits as u8,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        })
    }

    /// The expression as written, with single spaces.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the expression fires on this day (days since 1970-01-01).
    pub fn matches_day(&self, days: i64) -> bool {
        let (_, month, day) = civil_from_days(days);
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << day) != 0;
        let dow = self.days_of_week & (1 << weekday_of(days)) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the expression fires at the minute holding local seconds `local`.
    pub fn matches(&self, local: i64) -> bool {
        let secs = local.rem_euclid(86_400);
        self.matches_day(local.div_euclid(86_400))
            && self.hours & (1 << (secs / 3600)) != 0
            && self.minutes & (1 << (secs % 3600 / 60)) != 0
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
                if self.hours & (1 << hour) == 0 {
                    continue;
                }
                let last_minute = if hour == hour_bound { minute_bound } else { 59 };
                let below = self.minutes & (u64::MAX >> (63 - last_minute));
                if below != 0 {
                    let minute = 63 - i64::from(below.leading_zeros());
                    return Some(day * 86_400 + hour * 3600 + minute * 60);
                }
            }
        }
        None
    }
}

/// The set of values a field allows, as bits `min..=max`; `None` if invalid.
fn bits(field: &str, min: u32, max: u32, names: &[&str]) -> Option<u64> {
    let value = |s: &str| -> Option<u32> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Some(min + i as u32);
        }
        let n: u32 = s
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()?;
        (min..=max).contains(&n).then_some(n)
    };
    let mut set = 0u64;
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        let (low, high) = if base == "*" {
            (min, max)
        } else if let Some((a, b)) = base.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(base)?;
            if step.is_some() {
                return None;
            }
            (v, v)
        };
        let step: u32 = match step {
            Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok()?,
            Some(_) => return None,
            None => 1,
        };
        if low > high || step == 0 || step > max {
            return None;
        }
        for v in (low..=high).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Some(set)
}

/// Days since 1970-01-01 of a date; for tests and callers building times.
pub fn date_days(year: i64, month: u32, day: u32) -> Option<i64> {
    ((1..=12).contains(&month) && day >= 1 && day <= month_len(year, month))
        .then(|| days_from_civil(year, month, day))
}
