//! Time zones for schedules, on `jiff`: UTC, fixed offsets and IANA zones
//! from TZif data (RFC 8536, including the POSIX TZ footer rule), plus the
//! calendar helpers the autoscaler needs on "local seconds".
//!
//! Parsing is pure: [`TimeZone::from_tzif`] takes bytes. Reading
//! `/usr/share/zoneinfo` is the caller's job, done by [`TimeZone::load`], the
//! one function here that does I/O.
//!
//! Times are `i64` seconds. "Local seconds" are the wall-clock time written as
//! if it were UTC, so calendar arithmetic on them is plain UTC arithmetic.

use std::path::Path;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset};

/// Where [`TimeZone::load`] finds IANA zones.
pub const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// A time zone: how far local wall-clock time is from UTC at any instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

/// Why a time zone could not be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TzError {
    #[error(
        "unknown time zone {0:?}: expected \"UTC\", an offset like \"+02:00\" or \"Etc/GMT-2\", \
         or an IANA name like \"Europe/Berlin\""
    )]
    UnknownName(String),
    #[error("cannot read time zone {name:?} from {path}: {reason}")]
    Read {
        name: String,
        path: String,
        reason: String,
    },
    #[error("time zone {name:?} has invalid TZif data: {reason}")]
    Invalid { name: String, reason: String },
}

/// An instant jiff can represent (years -9999..=9999), clamped.
fn timestamp(secs: i64) -> Timestamp {
    let clamped = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The civil date and time that local seconds name.
pub(super) fn civil(local: i64) -> DateTime {
    Offset::UTC.to_datetime(timestamp(local))
}

/// The date of a day count since 1970-01-01.
pub(super) fn date_of_days(days: i64) -> Date {
    civil(days.saturating_mul(86_400)).date()
}

/// Days since 1970-01-01 of a date; `None` when the date does not exist.
pub fn date_days(year: i64, month: u32, day: u32) -> Option<i64> {
    let date = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    let midnight = Offset::UTC.to_timestamp(date.to_datetime(jiff::civil::Time::midnight()));
    Some(midnight.ok()?.as_second().div_euclid(86_400))
}

/// `YYYY-MM-DDTHH:MM:SS` of local or UTC seconds.
pub fn format_time(secs: i64) -> String {
    civil(secs).strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

impl TimeZone {
    pub fn utc() -> TimeZone {
        TimeZone {
            name: "UTC".to_string(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }

    /// A zone always `offset_s` seconds east of UTC (clamped to ±25:59:59).
    pub fn fixed(name: &str, offset_s: i32) -> TimeZone {
        let offset = Offset::from_seconds(offset_s.clamp(-93_599, 93_599)).unwrap_or(Offset::UTC);
        TimeZone {
            name: name.to_string(),
            zone: jiff::tz::TimeZone::fixed(offset),
        }
    }

    /// The zones that need no data: "UTC", "GMT", "Etc/UTC", "Z", offsets
    /// "+02:00", "-0530", "+2", and "Etc/GMT-2" (POSIX sign: two hours east).
    pub fn parse_fixed(name: &str) -> Option<TimeZone> {
        if matches!(
            name,
            "UTC" | "GMT" | "Z" | "Etc/UTC" | "Etc/GMT" | "Etc/Zulu"
        ) {
            return Some(TimeZone::fixed(name, 0));
        }
        if let Some(rest) = name.strip_prefix("Etc/GMT") {
            let (sign, hours) = rest.split_at_checked(1)?;
            let hours: i32 = digits(hours)?;
            let east = match sign {
                "-" if hours <= 14 => hours,
                "+" if hours <= 12 => -hours,
                _ => return None,
            };
            return Some(TimeZone::fixed(name, east * 3600));
        }
        let (sign, rest) = name.split_at_checked(1)?;
        let sign = match sign {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let (h, m) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        let (h, m): (i32, i32) = (digits(h)?, digits(m)?);
        (h <= 14 && m < 60).then(|| TimeZone::fixed(name, sign * (h * 3600 + m * 60)))
    }

    /// A zone from the bytes of a TZif file (version 1, 2, 3 or 4).
    pub fn from_tzif(name: &str, bytes: &[u8]) -> Result<TimeZone, TzError> {
        let zone = jiff::tz::TimeZone::tzif(name, bytes).map_err(|e| TzError::Invalid {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(TimeZone {
            name: name.to_string(),
            zone,
        })
    }

    /// I/O: the zone called `name`, fixed forms without reading anything and
    /// IANA names from [`ZONEINFO_DIR`].
    pub fn load(name: &str) -> Result<TimeZone, TzError> {
        if let Some(zone) = TimeZone::parse_fixed(name) {
            return Ok(zone);
        }
        let safe = !name.is_empty()
            && name
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.starts_with('.'));
        if !safe {
            return Err(TzError::UnknownName(name.to_string()));
        }
        let path = Path::new(ZONEINFO_DIR).join(name);
        match std::fs::read(&path) {
            Ok(bytes) => TimeZone::from_tzif(name, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(TzError::UnknownName(name.to_string()))
            }
            Err(e) => Err(TzError::Read {
                name: name.to_string(),
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds east of UTC at the instant `utc`.
    pub fn offset_at(&self, utc: i64) -> i32 {
        self.zone.to_offset(timestamp(utc)).seconds()
    }

    /// Local seconds at the instant `utc`.
    pub fn to_local(&self, utc: i64) -> i64 {
        utc + i64::from(self.offset_at(utc))
    }

    /// The instant a wall-clock time names. A time that happens twice (clocks
    /// turned back) is its first occurrence; a time that never happens (clocks
    /// turned forward) is the instant the gap ends, as cron runs jobs
    /// scheduled in a skipped hour right after the jump.
    pub fn from_local(&self, local: i64) -> i64 {
        let ambiguous = self.zone.to_ambiguous_timestamp(civil(local));
        match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } => local - i64::from(offset.seconds()),
            AmbiguousOffset::Fold { before, .. } => local - i64::from(before.seconds()),
            AmbiguousOffset::Gap { after, .. } => {
                // The transition lies after the instant the later offset names.
                let from = timestamp(local - i64::from(after.seconds()));
                self.zone
                    .following(from)
                    .next()
                    .map_or(from.as_second(), |t| t.timestamp().as_second())
            }
        }
    }
}

fn digits(s: &str) -> Option<i32> {
    (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}
