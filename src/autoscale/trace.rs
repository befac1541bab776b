//! Request traces: `minute,requests` CSV, one row per minute, as in
//! `shared/traces/`. Timestamps `YYYY-MM-DDTHH:MM` are read as UTC (a trace's
//! own zone only shifts the clock schedules see).

/// Requests in the minute starting at `minute` (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracePoint {
    pub minute: u64,
    pub requests: u64,
}

/// Why a trace could not be read; lines count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the trace has no rows")]
    Empty,
}

/// Parse a trace. A first line `minute,requests` is a header; blank lines
/// are skipped; minutes must be strictly increasing.
pub fn parse_trace(text: &str) -> Result<Vec<TracePoint>, TraceError> {
    let mut points: Vec<TracePoint> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let row = raw.trim();
        if row.is_empty() || (line == 1 && row == "minute,requests") {
            continue;
        }
        let err = |reason: String| TraceError::Line { line, reason };
        let Some((time, count)) = row.split_once(',') else {
            return Err(err(format!("expected `minute,requests`, found {row:?}")));
        };
        let minute = parse_minute(time.trim())
            .ok_or_else(|| err(format!("{time:?} is not a time like 1995-07-01T00:00")))?;
        let count = count.trim();
        let requests = count
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| count.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| err(format!("{count:?} is not a count of requests")))?;
        if let Some(prev) = points.last() {
            if minute <= prev.minute {
                return Err(err(format!(
                    "{time} is not after the previous row's minute"
                )));
            }
        }
        points.push(TracePoint { minute, requests });
    }
    if points.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(points)
}

/// `YYYY-MM-DDTHH:MM` (on or after 1970) as unix seconds.
fn parse_minute(s: &str) -> Option<u64> {
    if s.len() != 16 || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let dt: jiff::civil::DateTime = s.parse().ok()?;
    let at = jiff::tz::Offset::UTC.to_timestamp(dt).ok()?;
    u64::try_from(at.as_second()).ok()
}
