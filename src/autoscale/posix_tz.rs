//! POSIX TZ rules (`CET-1CEST,M3.5.0,M10.5.0/3`), as found in the footer of
//! TZif v2+ files, which govern instants after the last listed transition.

use super::civil::{civil_from_days, days_from_civil, is_leap, month_len, weekday_of};

/// A POSIX TZ rule such as `CET-1CEST,M3.5.0,M10.5.0/3`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PosixRule {
    std_offset: i32,
    dst: Option<DstRule>,
}

#[derive(Debug, Clone, PartialEq)]
struct DstRule {
    offset: i32,
    start: (RuleDay, i32),
    end: (RuleDay, i32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RuleDay {
    /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    Month { month: u32, week: u32, weekday: u32 },
    /// `Jn`: day 1–365, February 29 never counted.
    Julian(u32),
    /// `n`: day 0–365, February 29 counted.
    Zero(u32),
}

impl PosixRule {
    pub(super) fn parse(s: &str) -> Option<PosixRule> {
        let mut p = Cursor { s, i: 0 };
        p.name()?;
        let std_offset = -p.hms()?;
        if p.done() {
            return Some(PosixRule {
                std_offset,
                dst: None,
            });
        }
        p.name()?;
        let offset = if p.peek().is_some_and(|c| c != ',') {
            -p.hms()?
        } else {
            std_offset + 3600
        };
        p.eat(',')?;
        let start = p.rule_day()?;
        p.eat(',')?;
        let end = p.rule_day()?;
        p.done().then_some(PosixRule {
            std_offset,
            dst: Some(DstRule { offset, start, end }),
        })
    }

    pub(super) fn offset_at(&self, utc: i64) -> i32 {
        let Some(dst) = &self.dst else {
            return self.std_offset;
        };
        let (year, _, _) = civil_from_days((utc + i64::from(self.std_offset)).div_euclid(86_400));
        let start = days_of(dst.start.0, year) * 86_400 + i64::from(dst.start.1)
            - i64::from(self.std_offset);
        let end = days_of(dst.end.0, year) * 86_400 + i64::from(dst.end.1) - i64::from(dst.offset);
        let in_dst = if start < end {
            start <= utc && utc < end
        } else {
            !(end <= utc && utc < start)
        };
        if in_dst { dst.offset } else { self.std_offset }
    }
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
    fn eat(&mut self, c: char) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += c.len_utf8())
    }
    fn name(&mut self) -> Option<()> {
        let rest = &self.s[self.i..];
        let len = if let Some(quoted) = rest.strip_prefix('<') {
            quoted.find('>')? + 2
        } else {
            rest.find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len())
        };
        (len >= 3).then(|| self.i += len)
    }
    fn number(&mut self) -> Option<i32> {
        let rest = &self.s[self.i..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n = rest[..len].parse().ok()?;
        self.i += len;
        Some(n)
    }
    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn hms(&mut self) -> Option<i32> {
        let sign = if self.eat('-').is_some() {
            -1
        } else {
            self.eat('+');
            1
        };
        let mut secs = self.number()? * 3600;
        if self.eat(':').is_some() {
            secs += self.number()? * 60;
            if self.eat(':').is_some() {
                secs += self.number()?;
            }
        }
        Some(sign * secs)
    }
    fn rule_day(&mut self) -> Option<(RuleDay, i32)> {
        let day = if self.eat('M').is_some() {
            let month = self.number()?;
            self.eat('.')?;
            let week = self.number()?;
            self.eat('.')?;
            let weekday = self.number()?;
            ((1..=12).contains(&month) && (1..=5).contains(&week) && weekday <= 6).then_some(
                RuleDay::Month {
                    month: month as u32,
                    week: week as u32,
                    weekday: weekday as u32,
                },
            )?
        } else if self.eat('J').is_some() {
            RuleDay::Julian(self.number().filter(|n| (1..=365).contains(n))? as u32)
        } else {
            RuleDay::Zero(self.number().filter(|n| (0..=365).contains(n))? as u32)
        };
        let time = if self.eat('/').is_some() {
            self.hms()?
        } else {
            7200
        };
        Some((day, time))
    }
}

/// Days since 1970-01-01 of a rule's day in `year`.
fn days_of(day: RuleDay, year: i64) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    match day {
        RuleDay::Julian(n) => {
            let leap_shift = i64::from(is_leap(year) && n >= 60);
            jan1 + i64::from(n) - 1 + leap_shift
        }
        RuleDay::Zero(n) => jan1 + i64::from(n),
        RuleDay::Month {
            month,
            week,
            weekday,
        } => {
            let first = days_from_civil(year, month, 1);
            let first_weekday = weekday_of(first);
            let mut day = 1
                + (i64::from(weekday) - i64::from(first_weekday)).rem_euclid(7)
                + 7 * (i64::from(week) - 1);
            while day > i64::from(month_len(year, month)) {
                day -= 7;
            }
            first + day - 1
        }
    }
}
