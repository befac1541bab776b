//! `appgrid logs`: the time of a log line, read from the line itself, and
//! several machines' logs merged by time (pure: the logs, the zone for times
//! written without one and the `--since` bound come in).
//!
//! A line's time is the first timestamp in its first [`SCAN`] bytes, in one
//! of the forms services write: ISO 8601 / RFC 3339 (`2026-12-02 16:41:50.123
//! UTC`, Postgres and slon; `2026-12-02T16:41:50Z`), with a `Z`, `UTC`,
//! `GMT` or a numeric offset, else in the given zone; Common Log Format
//! (`[02/Dec/2026:16:41:50 +0000]`) and Python's `http.server`
//! (`[02/Dec/2026 16:41:50]`). A line without one (a traceback, a
//! continuation, HAProxy's short format) has the time of the line before it
//! in the same log; lines before a log's first timestamp have that first
//! timestamp, and a log with none has its file's modification time.
//!
//! The merge keeps each log's own order (a clock step back inside one log
//! does not reorder it) and otherwise takes the earliest next line; ties go
//! to the log listed first.

use jiff::fmt::strtime::BrokenDownTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, civil};

/// How far into a line a timestamp is looked for (a prefix such as a
/// process id or a client address may come first).
pub const SCAN: usize = 64;

/// One machine's (or service's) log, oldest line first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What each of its lines is prefixed with (`web[0]`, `db.primary`).
    pub label: String,
    pub lines: Vec<String>,
    /// The log file's modification time: the time of lines when the log
    /// has no timestamp at all.
    pub modified: Option<Timestamp>,
}

/// A line of the merged output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Index of its [`Source`].
    pub source: usize,
    pub at: Option<Timestamp>,
    pub text: String,
}

fn digits(b: &[u8], at: usize, n: usize) -> bool {
    b.len() >= at + n && b[at..at + n].iter().all(u8::is_ascii_digit)
}

/// The zone or offset written right after a time (`Z`, ` UTC`, `+01:00`,
/// ` -0500`), if there is one.
fn written_offset(rest: &str) -> Option<Offset> {
    let r = rest.strip_prefix(' ').unwrap_or(rest);
    if r.starts_with('Z') || r.starts_with("UTC") || r.starts_with("GMT") {
        return Some(Offset::UTC);
    }
    let sign = match r.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let b = r.as_bytes();
    if !digits(b, 1, 2) {
        return None;
    }
    let hours: i32 = r[1..3].parse().ok()?;
    let minutes: i32 = if b.get(3) == Some(&b':') && digits(b, 4, 2) {
        r[4..6].parse().ok()?
    } else if digits(b, 3, 2) {
        r[3..5].parse().ok()?
    } else {
        0
    };
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

fn at(datetime: civil::DateTime, offset: Option<Offset>, zone: &TimeZone) -> Option<Timestamp> {
    match offset {
        Some(o) => o.to_timestamp(datetime).ok(),
        None => zone.to_timestamp(datetime).ok(),
    }
}

/// The ISO form starting at `i`: `YYYY-MM-DD[T ]HH:MM:SS[.fff][zone]`.
fn iso_at(line: &str, i: usize, zone: &TimeZone) -> Option<Timestamp> {
    let b = line.as_bytes();
    if !(digits(b, i, 4)
        && b.get(i + 4) == Some(&b'-')
        && matches!(b.get(i + 10), Some(b' ' | b'T')))
    {
        return None;
    }
    let date = civil::Date::strptime("%Y-%m-%d", line.get(i..i + 10)?).ok()?;
    let (tm, used) = BrokenDownTime::parse_prefix("%H:%M:%S%.f", line.get(i + 11..)?).ok()?;
    let time = tm.to_time().ok()?;
    let rest = &line[i + 11 + used..];
    at(date.to_datetime(time), written_offset(rest), zone)
}

/// `[02/Dec/2026:16:41:50 +0000]` or `[02/Dec/2026 16:41:50]` starting at `i`
/// (just after the bracket).
fn clf_at(line: &str, i: usize, zone: &TimeZone) -> Option<Timestamp> {
    let b = line.as_bytes();
    if !(i > 0 && b[i - 1] == b'[' && digits(b, i, 2) && b.get(i + 2) == Some(&b'/')) {
        return None;
    }
    let rest = line.get(i..)?;
    let end = rest.find(']')?;
    let inside = &rest[..end];
    for format in ["%d/%b/%Y:%H:%M:%S %z", "%d/%b/%Y %H:%M:%S"] {
        if let Ok(tm) = BrokenDownTime::parse(format, inside) {
            if let Ok(t) = tm.to_timestamp() {
                return Some(t);
            }
            return at(tm.to_datetime().ok()?, None, zone);
        }
    }
    None
}

/// The time written in `line`, if any (see the module doc for the forms).
pub fn line_time(line: &str, zone: &TimeZone) -> Option<Timestamp> {
    let b = line.as_bytes();
    let end = b.len().min(SCAN);
    (0..end)
        .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
        .find_map(|i| iso_at(line, i, zone).or_else(|| clf_at(line, i, zone)))
}

/// Every line of `source` with its time (see the module doc).
fn timed(source: &Source, zone: &TimeZone) -> Vec<Option<Timestamp>> {
    let written: Vec<Option<Timestamp>> = source.lines.iter().map(|l| line_time(l, zone)).collect();
    let first = written.iter().flatten().next().copied().or(source.modified);
    let mut current = first;
    written
        .into_iter()
        .map(|t| {
            if t.is_some() {
                current = t;
            }
            current
        })
        .collect()
}

/// The sources' lines merged by time, those before `since` left out (a line
/// whose time is unknown is kept).
pub fn merge(sources: &[Source], zone: &TimeZone, since: Option<Timestamp>) -> Vec<Line> {
    let times: Vec<Vec<Option<Timestamp>>> = sources.iter().map(|s| timed(s, zone)).collect();
    let mut next = vec![0usize; sources.len()];
    let mut out = Vec::new();
    loop {
        // The source whose next line is the earliest (unknown times first:
        // they cannot be placed, so they are not held back).
        let pick = (0..sources.len())
            .filter(|&s| next[s] < sources[s].lines.len())
            .min_by_key(|&s| (times[s][next[s]], s));
        let Some(s) = pick else {
            break;
        };
        let i = next[s];
        next[s] += 1;
        let t = times[s][i];
        if let (Some(since), Some(t)) = (since, t)
            && t < since
        {
            continue;
        }
        out.push(Line {
            source: s,
            at: t,
            text: sources[s].lines[i].clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn source(label: &str, lines: &[&str]) -> Source {
        Source {
            label: label.to_string(),
            lines: lines.iter().map(ToString::to_string).collect(),
            modified: None,
        }
    }

    #[test]
    fn reads_the_forms_services_write() {
        let utc = TimeZone::UTC;
        let plus2 = TimeZone::fixed(Offset::from_hours(2).unwrap());
        for (line, zone, want) in [
            (
                "2026-12-02 16:41:50.123 UTC [812] LOG:  checkpoint starting",
                &plus2,
                "2026-12-02T16:41:50.123Z",
            ),
            (
                "2026-12-02 16:41:50 UTC CONFIG main: slon version 2.2.11",
                &utc,
                "2026-12-02T16:41:50Z",
            ),
            (
                "2026-12-02T16:41:50Z started",
                &plus2,
                "2026-12-02T16:41:50Z",
            ),
            (
                "ts=2026-12-02T16:41:50.5+01:00 level=info",
                &utc,
                "2026-12-02T15:41:50.5Z",
            ),
            (
                "2026-12-02 16:41:50 -0500 worker",
                &utc,
                "2026-12-02T21:41:50Z",
            ),
            // No zone written: the given one.
            ("2026-12-02 16:41:50 boot", &plus2, "2026-12-02T14:41:50Z"),
            (
                "127.0.0.1 - - [02/Dec/2026:16:41:50 +0100] \"GET / HTTP/1.1\" 200",
                &utc,
                "2026-12-02T15:41:50Z",
            ),
            (
                "127.0.0.1 - - [02/Dec/2026 16:41:50] \"GET /notes/1 HTTP/1.1\" 200 -",
                &utc,
                "2026-12-02T16:41:50Z",
            ),
        ] {
            assert_eq!(line_time(line, zone), Some(ts(want)), "{line}");
        }
        for line in [
            "Traceback (most recent call last):",
            "listening on 127.0.0.1:8080",
            "<133>haproxy[12]: Proxy web started.",
            "version 2026-12 is out",
            "",
        ] {
            assert_eq!(line_time(line, &utc), None, "{line}");
        }
        // Beyond the first SCAN bytes: not looked for.
        let far = format!("{} 2026-12-02 16:41:50", "x".repeat(SCAN));
        assert_eq!(line_time(&far, &utc), None);
    }

    #[test]
    fn merges_by_time_keeping_each_logs_order_and_untimed_lines_with_theirs() {
        let a = source(
            "web[0]",
            &[
                "2026-12-02T10:00:01Z a1",
                "Traceback (most recent call last):",
                "2026-12-02T10:00:05Z a2",
            ],
        );
        let b = source(
            "web[1]",
            &[
                "continued from before",
                "2026-12-02T10:00:03Z b1",
                "2026-12-02T10:00:05Z b2",
            ],
        );
        let mut c = source("lb", &["no time here", "nor here"]);
        c.modified = Some(ts("2026-12-02T10:00:04Z"));
        let merged = merge(&[a, b, c], &TimeZone::UTC, None);
        let texts: Vec<(usize, &str)> =
            merged.iter().map(|l| (l.source, l.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (0, "2026-12-02T10:00:01Z a1"),
                (0, "Traceback (most recent call last):"),
                (1, "continued from before"),
                (1, "2026-12-02T10:00:03Z b1"),
                (2, "no time here"),
                (2, "nor here"),
                (0, "2026-12-02T10:00:05Z a2"),
                (1, "2026-12-02T10:00:05Z b2"),
            ]
        );
    }

    #[test]
    fn a_clock_step_back_does_not_reorder_one_log_and_since_drops_older_lines() {
        let a = source(
            "web[0]",
            &[
                "2026-12-02T10:00:09Z late",
                "2026-12-02T10:00:02Z stepped back",
            ],
        );
        let b = source("web[1]", &["2026-12-02T10:00:05Z b"]);
        let merged = merge(&[a.clone(), b.clone()], &TimeZone::UTC, None);
        let texts: Vec<&str> = merged.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "2026-12-02T10:00:05Z b",
                "2026-12-02T10:00:09Z late",
                "2026-12-02T10:00:02Z stepped back"
            ]
        );
        let since = merge(&[a, b], &TimeZone::UTC, Some(ts("2026-12-02T10:00:05Z")));
        let texts: Vec<&str> = since.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["2026-12-02T10:00:05Z b", "2026-12-02T10:00:09Z late"]
        );
    }
}
