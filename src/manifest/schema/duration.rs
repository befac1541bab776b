//! Durations as written in the manifest: a whole number and a unit
//! (`500ms`, `90s`, `5m`, `1h`). No fractions, no spaces, no compound forms:
//! one obvious way to write each value.

use std::time::Duration;

/// The accepted forms, for help texts.
pub(super) const FORMS: &str =
    "a whole number followed by ms, s, m or h, e.g. \"500ms\", \"90s\", \"5m\" or \"1h\"";

/// Parse `90s`; `None` for anything else, including values too large to hold.
pub(super) fn parse(s: &str) -> Option<Duration> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(millis_per_unit).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
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
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
