//! One retry policy for every "try again in a moment" in appgrid: waiting
//! for instances to run, for a security group to be free, for sshd to answer,
//! for a session slot, for the cloud's listing to catch up.
//!
//! A [`RetryPolicy`] is a value (first delay, cap, deadline, at most N tries)
//! applied to an async closure with a predicate that says which errors are
//! worth another try; backon does the scheduling (exponential, jittered).
//! When it gives up, [`Exhausted`] says why — the deadline, the tries, or an
//! error that is not retried — with the last error, so a message can name
//! both what was waited for and for how long.
//!
//! The EC2 SDK's own request retries (throttling, 5xx) stay the SDK's: it
//! classifies AWS errors and keeps a retry quota. This policy is for the
//! waits appgrid itself decides on.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};

/// How long, how often, and how many times to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause; each next one doubles (jittered up to twice as long).
    pub first: Duration,
    /// No pause is longer than this.
    pub max_delay: Duration,
    /// No try starts once this much time has passed since the first one.
    pub deadline: Duration,
    /// At most this many tries in all (`None`: until the deadline).
    pub max_tries: Option<u32>,
}

/// Why the retries stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The next pause would end past the deadline.
    Deadline,
    /// `max_tries` were made.
    Tries,
    /// The error is not one that another try can fix.
    NotRetryable,
}

/// The last error, and why no further try was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted<E> {
    pub error: E,
    pub tries: u32,
    pub elapsed: Duration,
    pub reason: GiveUp,
}

impl<E> Exhausted<E> {
    /// `gave up after 7 tries in 12.4 s (the 120 s deadline)`.
    pub fn describe(&self, policy: &RetryPolicy) -> String {
        let tries = match self.tries {
            1 => "1 try".to_string(),
            n => format!("{n} tries"),
        };
        let why = match self.reason {
            GiveUp::Deadline => format!("the {} deadline", seconds(policy.deadline)),
            GiveUp::Tries => format!("at most {tries}"),
            GiveUp::NotRetryable => "an error another try cannot fix".to_string(),
        };
        format!("gave up after {tries} in {} ({why})", seconds(self.elapsed))
    }
}

fn seconds(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl RetryPolicy {
    /// Doubling pauses from `first` up to `max_delay`, until `deadline`.
    pub const fn new(first: Duration, max_delay: Duration, deadline: Duration) -> Self {
        RetryPolicy {
            first,
            max_delay,
            deadline,
            max_tries: None,
        }
    }

    /// At most `tries` tries in all (the first included).
    pub const fn with_max_tries(mut self, tries: u32) -> Self {
        self.max_tries = Some(tries);
        self
    }

    /// Run `op` until it succeeds, `retryable` says an error is final, or the
    /// policy gives up.
    pub async fn run<T, E, Fut, F, R>(&self, mut op: F, mut retryable: R) -> Result<T, Exhausted<E>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        R: FnMut(&E) -> bool,
    {
        let started = Instant::now();
        let tries = AtomicU32::new(0);
        let final_error = AtomicBool::new(false);
        let past_deadline = AtomicBool::new(false);
        let mut builder = ExponentialBuilder::new()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.first)
            .with_max_delay(self.max_delay);
        builder = match self.max_tries {
            Some(n) => builder.with_max_times(n.saturating_sub(1) as usize),
            None => builder.without_max_times(),
        };
        let deadline = self.deadline;
        let result = (|| {
            tries.fetch_add(1, Ordering::Relaxed);
            op()
        })
        .retry(builder)
        .when(|e| {
            let again = retryable(e);
            final_error.store(!again, Ordering::Relaxed);
            again
        })
        .adjust(|_, pause| match pause {
            Some(p) if started.elapsed() + p > deadline => {
                past_deadline.store(true, Ordering::Relaxed);
                None
            }
            other => other,
        })
        .await;
        result.map_err(|error| Exhausted {
            error,
            tries: tries.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
            reason: if final_error.load(Ordering::Relaxed) {
                GiveUp::NotRetryable
            } else if past_deadline.load(Ordering::Relaxed) {
                GiveUp::Deadline
            } else {
                GiveUp::Tries
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: RetryPolicy = RetryPolicy::new(
        Duration::from_millis(1),
        Duration::from_millis(4),
        Duration::from_secs(5),
    );

    #[tokio::test]
    async fn retries_until_it_succeeds() {
        let mut left = 3;
        let out: Result<u32, Exhausted<&str>> = QUICK
            .run(
                || {
                    left -= 1;
                    let v = if left == 0 { Ok(7) } else { Err("not yet") };
                    async move { v }
                },
                |_| true,
            )
            .await;
        assert_eq!(out, Ok(7));
    }

    #[tokio::test]
    async fn gives_up_after_max_tries_with_the_last_error() {
        let mut n = 0;
        let err = QUICK
            .with_max_tries(4)
            .run(
                || {
                    n += 1;
                    let e: Result<(), u32> = Err(n);
                    async move { e }
                },
                |_| true,
            )
            .await
            .unwrap_err();
        assert_eq!((err.error, err.tries, err.reason), (4, 4, GiveUp::Tries));
        assert!(
            err.describe(&QUICK)
                .starts_with("gave up after 4 tries in "),
            "{}",
            err.describe(&QUICK)
        );
    }

    #[tokio::test]
    async fn a_final_error_is_not_retried() {
        let mut n = 0;
        let err = QUICK
            .run(
                || {
                    n += 1;
                    let e: Result<(), &str> = Err(if n == 2 { "fatal" } else { "again" });
                    async move { e }
                },
                |e| *e == "again",
            )
            .await
            .unwrap_err();
        assert_eq!(
            (err.error, err.tries, err.reason),
            ("fatal", 2, GiveUp::NotRetryable)
        );
    }

    #[tokio::test]
    async fn stops_at_the_deadline() {
        let policy = RetryPolicy::new(
            Duration::from_millis(20),
            Duration::from_millis(20),
            Duration::from_millis(150),
        );
        let started = Instant::now();
        let err = policy
            .run(|| async { Err::<(), _>("never") }, |_| true)
            .await
            .unwrap_err();
        assert_eq!(err.reason, GiveUp::Deadline);
        assert!(err.tries >= 2, "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
