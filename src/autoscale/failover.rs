//! When the autoscale runner fails the database's origin over by itself
//! (`[database] failover = "auto"`, issue 8 §3): pure, time passed in.
//!
//! The runner checks the origin once a pass (does it answer appgrid or any
//! other node?) and keeps the checks in its record. [`decide`] fails over
//! only when the newest check found the origin down, the last
//! `failover_checks` checks in a row did, and the first failed check of that
//! run is at least `failover_window` old: one lost check, or a restart
//! shorter than the window, never triggers it. An origin that answers at the
//! newest check is never failed over (and `db failover` itself refuses an
//! origin anybody reaches).

use serde::{Deserialize, Serialize};

use crate::manifest::AutoFailover;

/// One check of the origin by the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCheck {
    /// Unix seconds.
    pub at: u64,
    pub answers: bool,
}

/// What the runner does about the origin at this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverDecision {
    /// No check yet, or the newest one found the origin answering.
    Answers,
    /// Down at the last `failed` checks (the first at `since`), not yet
    /// enough of them or not yet for long enough.
    Wait { failed: u32, since: u64 },
    /// Down at the last `failed` checks since `since`: fail over now.
    FailOver { failed: u32, since: u64 },
}

impl FailoverDecision {
    /// A line for the autoscale history; `origin` names the machine.
    pub fn describe(&self, policy: &AutoFailover, origin: &str, now: u64) -> String {
        let window = policy.window.as_secs();
        match *self {
            Self::Answers => format!("database origin {origin} answers"),
            Self::Wait { failed, since } => format!(
                "database origin {origin} did not answer {failed} check(s) in a row over {} s: \
                 failing over after {} checks over {window} s",
                now.saturating_sub(since),
                policy.checks
            ),
            Self::FailOver { failed, since } => format!(
                "database origin {origin} did not answer {failed} checks in a row over {} s \
                 (failover = \"auto\": {} checks over {window} s): failing over",
                now.saturating_sub(since),
                policy.checks
            ),
        }
    }
}

/// `checks` in the order they were made; those after `now` are ignored.
pub fn decide(policy: &AutoFailover, checks: &[OriginCheck], now: u64) -> FailoverDecision {
    let seen: Vec<&OriginCheck> = checks.iter().filter(|c| c.at <= now).collect();
    let run: Vec<&&OriginCheck> = seen.iter().rev().take_while(|c| !c.answers).collect();
    let Some(first) = run.last() else {
        return FailoverDecision::Answers;
    };
    let failed = u32::try_from(run.len()).unwrap_or(u32::MAX);
    let since = first.at;
    if failed >= policy.checks && now.saturating_sub(since) >= policy.window.as_secs() {
        FailoverDecision::FailOver { failed, since }
    } else {
        FailoverDecision::Wait { failed, since }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(checks: u32, window_s: u64) -> AutoFailover {
        AutoFailover {
            checks,
            window: Duration::from_secs(window_s),
        }
    }

    fn checks(list: &[(u64, bool)]) -> Vec<OriginCheck> {
        list.iter()
            .map(|&(at, answers)| OriginCheck { at, answers })
            .collect()
    }

    #[test]
    fn nothing_checked_or_answering_now_is_never_a_failover() {
        let p = policy(1, 0);
        assert_eq!(decide(&p, &[], 100), FailoverDecision::Answers);
        let c = checks(&[(0, false), (10, false), (20, false), (30, true)]);
        assert_eq!(decide(&p, &c, 30), FailoverDecision::Answers);
    }

    #[test]
    fn fails_over_after_n_failed_checks_spanning_the_window() {
        let p = policy(3, 30);
        let c = checks(&[(0, true), (15, false), (30, false)]);
        assert_eq!(
            decide(&p, &c, 30),
            FailoverDecision::Wait {
                failed: 2,
                since: 15
            }
        );
        let c = checks(&[(0, true), (15, false), (30, false), (45, false)]);
        assert_eq!(
            decide(&p, &c, 45),
            FailoverDecision::FailOver {
                failed: 3,
                since: 15
            }
        );
    }

    #[test]
    fn enough_checks_in_too_short_a_time_wait() {
        // A fast runner (`--once` from a tight loop) does not shorten the window.
        let p = policy(3, 30);
        let c = checks(&[(100, false), (101, false), (102, false), (103, false)]);
        assert_eq!(
            decide(&p, &c, 103),
            FailoverDecision::Wait {
                failed: 4,
                since: 100
            }
        );
        assert_eq!(
            decide(&p, &c, 130),
            FailoverDecision::FailOver {
                failed: 4,
                since: 100
            }
        );
    }

    #[test]
    fn one_answer_in_between_starts_the_count_again() {
        let p = policy(2, 10);
        let c = checks(&[(0, false), (20, false), (40, true), (60, false)]);
        assert_eq!(
            decide(&p, &c, 60),
            FailoverDecision::Wait {
                failed: 1,
                since: 60
            }
        );
        let c = checks(&[(0, false), (20, true), (40, false), (60, false)]);
        assert_eq!(
            decide(&p, &c, 60),
            FailoverDecision::FailOver {
                failed: 2,
                since: 40
            }
        );
    }

    #[test]
    fn checks_after_now_do_not_count() {
        let p = policy(2, 0);
        let c = checks(&[(10, true), (20, false), (30, false)]);
        assert_eq!(
            decide(&p, &c, 25),
            FailoverDecision::Wait {
                failed: 1,
                since: 20
            }
        );
        let c = checks(&[(10, false), (20, false), (30, true)]);
        assert_eq!(
            decide(&p, &c, 25),
            FailoverDecision::FailOver {
                failed: 2,
                since: 10
            }
        );
    }

    #[test]
    fn the_history_line_says_how_many_checks_over_how_long() {
        let p = policy(3, 30);
        let d = FailoverDecision::FailOver {
            failed: 3,
            since: 15,
        };
        assert_eq!(
            d.describe(&p, "db.primary", 50),
            "database origin db.primary did not answer 3 checks in a row over 35 s \
             (failover = \"auto\": 3 checks over 30 s): failing over"
        );
        let d = FailoverDecision::Wait {
            failed: 1,
            since: 50,
        };
        assert_eq!(
            d.describe(&p, "db.primary", 50),
            "database origin db.primary did not answer 1 check(s) in a row over 0 s: \
             failing over after 3 checks over 30 s"
        );
    }
}
