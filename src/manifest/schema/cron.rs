//! Five-field cron expressions (`minute hour day-of-month month day-of-week`)
//! for scheduled scaling, checked field by field so an error can name and
//! point at the field that is wrong.
//!
//! Accepted in each field: `*`, numbers, names (months and week days, any
//! case), ranges `a-b`, lists `a,b`, and steps `*/n` and `a-b/n`.
//!
//! This is the one cron parser: the manifest reports its errors with spans,
//! and the autoscaler matches the [`CronFields`] it returns.

use std::ops::Range;

/// Help text listing the fields and their bounds.
pub(super) const FIELDS_HELP: &str = "the five fields are minute (0-59), hour (0-23), \
    day-of-month (1-31), month (1-12 or JAN-DEC) and day-of-week (0-7 or SUN-SAT), \
    e.g. `cron = \"0 8 * * MON-FRI\"`";

/// A valid expression as the set of values each field allows: bit `v` set
/// when value `v` matches (day-of-week 7 folded into 0, Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronFields {
    pub minutes: u64,
    pub hours: u64,
    pub days_of_month: u64,
    pub months: u64,
    pub days_of_week: u64,
    /// Whether day-of-month / day-of-week start with `*` (Vixie cron: then
    /// both must match, otherwise either may).
    pub dom_star: bool,
    pub dow_star: bool,
}

/// What is wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// Not five whitespace-separated fields.
    FieldCount(usize),
    /// One field is wrong; `span` is its byte range within the expression.
    Field {
        name: &'static str,
        span: Range<usize>,
        reason: String,
    },
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, … (upper case).
    names: &'static [&'static str],
    /// How the names are described in errors.
    names_label: &'static str,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_label: "",
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_label: "",
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_label: "",
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
        names_label: "a month name (JAN-DEC)",
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        names_label: "a day name (SUN-SAT)",
    },
];

/// Check a whole expression.
pub(super) fn check(expr: &str) -> Result<(), CronError> {
    parse(expr).map(|_| ())
}

/// Parse a whole expression into the values each field allows.
pub fn parse(expr: &str) -> Result<CronFields, CronError> {
    let fields = split_fields(expr);
    if fields.len() != FIELDS.len() {
        return Err(CronError::FieldCount(fields.len()));
    }
    let mut sets = [0u64; 5];
    for ((spec, span), set) in FIELDS.iter().zip(fields.iter().cloned()).zip(&mut sets) {
        *set = check_field(spec, &expr[span.clone()]).map_err(|reason| CronError::Field {
            name: spec.name,
            span,
            reason,
        })?;
    }
    let [minutes, hours, days_of_month, months, mut days_of_week] = sets;
    if days_of_week & (1 << 7) != 0 {
        days_of_week = (days_of_week | 1) & 0x7f;
    }
    Ok(CronFields {
        minutes,
        hours,
        days_of_month,
        months,
        days_of_week,
        dom_star: expr[fields[2].clone()].starts_with('*'),
        dow_star: expr[fields[4].clone()].starts_with('*'),
    })
}

/// Byte ranges of the whitespace-separated fields.
fn split_fields(expr: &str) -> Vec<Range<usize>> {
    let mut fields = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                fields.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push(s..expr.len());
    }
    fields
}

/// The values a field allows, as bits.
fn check_field(spec: &FieldSpec, field: &str) -> Result<u64, String> {
    let mut set = 0;
    for item in field.split(',') {
        if item.is_empty() {
            return Err(format!("{field:?} has an empty list item"));
        }
        set |= check_item(spec, item)?;
    }
    Ok(set)
}

fn check_item(spec: &FieldSpec, item: &str) -> Result<u64, String> {
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    let (low, high, is_range) = if base == "*" {
        (spec.min, spec.max, true)
    } else if let Some((low, high)) = base.split_once('-') {
        let (low_n, high_n) = (value(spec, low)?, value(spec, high)?);
        if low_n > high_n {
            return Err(format!("the range {base} goes backwards"));
        }
        (low_n, high_n, true)
    } else {
        let v = value(spec, base)?;
        (v, v, false)
    };
    let mut every = 1;
    if let Some(step) = step {
        if !is_range {
            return Err(format!(
                "a step needs `*` or a range before the `/`, as in \"*/{step}\""
            ));
        }
        match step.parse::<u32>() {
            Ok(n) if step.bytes().all(|b| b.is_ascii_digit()) && (1..=spec.max).contains(&n) => {
                every = n;
            }
            _ => {
                return Err(format!(
                    "the step {step:?} must be a number from 1 to {}",
                    spec.max
                ));
            }
        }
    }
    Ok((low..=high)
        .step_by(every as usize)
        .fold(0, |set, v| set | 1 << v))
}

/// One number or name within the field's bounds.
fn value(spec: &FieldSpec, s: &str) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(spec.min + i as u32);
    }
    let number = if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u32>().ok()
    } else {
        None
    };
    match number {
        Some(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
        _ if spec.names.is_empty() => Err(format!(
            "{s:?} is not a number from {} to {}",
            spec.min, spec.max
        )),
        _ => Err(format!(
            "{s:?} is not {} or a number from {} to {}",
            spec.names_label, spec.min, spec.max
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_expressions() {
        for ok in [
            "* * * * *",
            "0 8 * * MON-FRI",
            "*/15 0-6,18-23 1,15 jan-mar,DEC 0",
            "0-30/5 */2 1-31/10 * 7",
            "0  8\t*  * sun",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn counts_fields() {
        assert_eq!(check(""), Err(CronError::FieldCount(0)));
        assert_eq!(check("@daily"), Err(CronError::FieldCount(1)));
        assert_eq!(check("0 8 * * * *"), Err(CronError::FieldCount(6)));
    }

    #[test]
    fn names_and_locates_the_bad_field() {
        let err = |name: &'static str, span: Range<usize>, reason: &str| {
            Err(CronError::Field {
                name,
                span,
                reason: reason.to_string(),
            })
        };
        assert_eq!(
            check("60 8 * * *"),
            err("minute", 0..2, "\"60\" is not a number from 0 to 59")
        );
        assert_eq!(
            check("0 24 * * *"),
            err("hour", 2..4, "\"24\" is not a number from 0 to 23")
        );
        assert_eq!(
            check("0 8 0 * *"),
            err("day-of-month", 4..5, "\"0\" is not a number from 1 to 31")
        );
        assert_eq!(
            check("0 8 * JANX *"),
            err(
                "month",
                6..10,
                "\"JANX\" is not a month name (JAN-DEC) or a number from 1 to 12"
            )
        );
        assert_eq!(
            check("0 8 * * MON-FRX"),
            err(
                "day-of-week",
                8..15,
                "\"FRX\" is not a day name (SUN-SAT) or a number from 0 to 7"
            )
        );
        assert_eq!(
            check("0 8 * * 5-1"),
            err("day-of-week", 8..11, "the range 5-1 goes backwards")
        );
        assert_eq!(
            check("*/0 8 * * *"),
            err(
                "minute",
                0..3,
                "the step \"0\" must be a number from 1 to 59"
            )
        );
        assert_eq!(
            check("5/10 8 * * *"),
            err(
                "minute",
                0..4,
                "a step needs `*` or a range before the `/`, as in \"*/10\""
            )
        );
        assert_eq!(
            check("1,,2 8 * * *"),
            err("minute", 0..4, "\"1,,2\" has an empty list item")
        );
        assert_eq!(
            check("-1 8 * * *"),
            err("minute", 0..2, "\"\" is not a number from 0 to 59")
        );
    }
}
