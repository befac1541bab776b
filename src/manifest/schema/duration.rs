//! Durations as written in the manifest and on the command line: a whole
//! number and a unit (`500ms`, `90s`, `5m`, `1h`). No fractions, no spaces,
//! no compound forms: one obvious way to write each value. This is the one
//! duration parser; the CLI also takes plain seconds (see `cli`).

use std::time::Duration;

/// The accepted forms, for help texts.
pub(super) const FORMS: &str =
    "a whole number followed by ms, s, m or h, e.g. \"500ms\", \"90s\", \"5m\" or \"1h\"";

/// The longest duration accepted anywhere: a year (366 days). Longer values
/// are mistakes, and would overflow clocks and deadlines that add them.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// Why a duration was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration: write {FORMS}")]
    Form(String),
    #[error("{0:?} is longer than the longest duration accepted, 8784h (366 days)")]
    TooLong(String),
}

/// Parse `90s`.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let form = || DurationError::Form(s.to_string());
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(form)?;
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(form());
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(form()),
    };
    let too_long = || DurationError::TooLong(s.to_string());
    // All digits: a parse failure can only be a number too large for u64.
    let n: u64 = number.parse().map_err(|_| too_long())?;
    let d = n
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(too_long)?;
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Duration> {
        parse_duration(s).ok()
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
        assert_eq!(parse("8784h"), Some(MAX_DURATION));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "90",
            "s",
            "1.5s",
            "-1s",
            "+1s",
            "90 s",
            "1d",
            "5M",
            "1h30m",
            "99999999999999999999s",
            "18446744073709551615h",
            "8785h",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn says_whether_the_form_or_the_size_is_wrong() {
        assert_eq!(
            parse_duration("1.5s"),
            Err(DurationError::Form("1.5s".into()))
        );
        for long in ["99999999999h", "99999999999999999999s", "527041m"] {
            assert_eq!(
                parse_duration(long),
                Err(DurationError::TooLong(long.into())),
                "{long}"
            );
        }
        assert!(
            DurationError::TooLong("99999999999h".into())
                .to_string()
                .contains("8784h (366 days)")
        );
    }
}
