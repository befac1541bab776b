//! Time zones for schedules: UTC, fixed offsets and IANA zones read from TZif
//! data (RFC 8536), including the POSIX TZ rule in a TZif v2+ footer that
//! governs times after the last listed transition.
//!
//! Parsing is pure: [`TimeZone::from_tzif`] takes bytes. Reading
//! `/usr/share/zoneinfo` is the caller's job, done by [`TimeZone::load`], the
//! one function here that does I/O.
//!
//! Times are `i64` seconds. "Local seconds" are the wall-clock time written as
//! if it were UTC, so calendar arithmetic on them is plain UTC arithmetic.

use std::path::Path;

use super::posix_tz::PosixRule;

/// Where [`TimeZone::load`] finds IANA zones.
pub const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// A time zone: how far local wall-clock time is from UTC at any instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeZone {
    name: String,
    rules: Rules,
}

#[derive(Debug, Clone, PartialEq)]
enum Rules {
    Fixed(i32),
    Tzif {
        /// Transition instants (UTC), ascending, and the offset from each on.
        transitions: Vec<(i64, i32)>,
        /// The offset before the first transition (time type 0).
        initial: i32,
        /// The footer's rule, for instants after the last transition.
        footer: Option<PosixRule>,
    },
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

impl TimeZone {
    pub fn utc() -> TimeZone {
        TimeZone::fixed("UTC", 0)
    }

    /// A zone always `offset_s` seconds east of UTC.
    pub fn fixed(name: &str, offset_s: i32) -> TimeZone {
        TimeZone {
            name: name.to_string(),
            rules: Rules::Fixed(offset_s),
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
        let invalid = |reason: &str| TzError::Invalid {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        let v1 = Header::read(bytes, 0).ok_or_else(|| invalid("no TZif header"))?;
        let (header, start, wide) = if v1.version >= b'2' {
            let second = 44 + v1.block_len(4);
            let h =
                Header::read(bytes, second).ok_or_else(|| invalid("no second (64-bit) header"))?;
            (h, second + 44, true)
        } else {
            (v1, 44, false)
        };
        let size = if wide { 8 } else { 4 };
        let block = bytes
            .get(start..start + header.block_len(size))
            .ok_or_else(|| invalid("data block is truncated"))?;
        let (times, rest) = block.split_at(header.timecnt * size);
        let (indices, rest) = rest.split_at(header.timecnt);
        let types: Vec<i32> = rest[..header.typecnt * 6]
            .chunks(6)
            .map(|t| i32::from_be_bytes([t[0], t[1], t[2], t[3]]))
            .collect();
        if types.is_empty() {
            return Err(invalid("no local time types"));
        }
        let mut transitions = Vec::with_capacity(header.timecnt);
        for (i, &index) in indices.iter().enumerate() {
            let raw = &times[i * size..(i + 1) * size];
            let at = if wide {
                i64::from_be_bytes(raw.try_into().expect("8 bytes"))
            } else {
                i64::from(i32::from_be_bytes(raw.try_into().expect("4 bytes")))
            };
            let offset = *types
                .get(usize::from(index))
                .ok_or_else(|| invalid("a transition names a missing time type"))?;
            if transitions.last().is_some_and(|&(prev, _)| prev >= at) {
                return Err(invalid("transitions are not in ascending order"));
            }
            transitions.push((at, offset));
        }
        let footer = if wide {
            let text = &bytes[start + block.len()..];
            let text = std::str::from_utf8(text).map_err(|_| invalid("footer is not text"))?;
            let rule = text.trim_matches('\n');
            if rule.is_empty() {
                None
            } else {
                Some(PosixRule::parse(rule).ok_or_else(|| invalid("unsupported footer TZ rule"))?)
            }
        } else {
            None
        };
        Ok(TimeZone {
            name: name.to_string(),
            rules: Rules::Tzif {
                transitions,
                initial: types[0],
                footer,
            },
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
        match &self.rules {
            Rules::Fixed(offset) => *offset,
            Rules::Tzif {
                transitions,
                initial,
                footer,
            } => {
                let after = transitions.partition_point(|&(at, _)| at <= utc);
                match (after, footer) {
                    (0, Some(rule)) if transitions.is_empty() => rule.offset_at(utc),
                    (0, _) => *initial,
                    (n, Some(rule)) if n == transitions.len() => rule.offset_at(utc),
                    (n, _) => transitions[n - 1].1,
                }
            }
        }
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
        let before = i64::from(self.offset_at(local - 86_400));
        let after = i64::from(self.offset_at(local + 86_400));
        let here = i64::from(self.offset_at(local));
        let first = [before, here, after]
            .into_iter()
            .map(|o| local - o)
            .filter(|&u| i64::from(self.offset_at(u)) == local - u)
            .min();
        if let Some(u) = first {
            return u;
        }
        // In a gap: the transition lies between these two instants.
        let (mut lo, mut hi) = (
            (local - before).min(local - after),
            (local - before).max(local - after),
        );
        let lo_offset = self.offset_at(lo);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.offset_at(mid) == lo_offset {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

fn digits(s: &str) -> Option<i32> {
    (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(bytes: &[u8], at: usize) -> Option<Header> {
        let h = bytes.get(at..at + 44)?;
        if &h[..4] != b"TZif" {
            return None;
        }
        let count = |i: usize| {
            let n = u32::from_be_bytes(h[20 + 4 * i..24 + 4 * i].try_into().expect("4 bytes"));
            usize::try_from(n).ok().filter(|&n| n < 1 << 20)
        };
        Some(Header {
            version: h[4],
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// Bytes of the data block with `size`-byte times.
    fn block_len(&self, size: usize) -> usize {
        self.timecnt * (size + 1)
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * (size + 4)
            + self.isstdcnt
            + self.isutcnt
    }
}
