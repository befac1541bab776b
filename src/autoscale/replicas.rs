//! The database read tier's decision (issue 13): how many Slony-I read
//! replicas to keep, from a reading of the replicas (replication lag or
//! client connections). Pure: readings, past changes and the time come in.
//!
//! 1. **Bounds.** Below `min` scales out to `min`, above `max` scales in to
//!    `max`, whatever else holds.
//! 2. **Missing data.** No reading, one older than [`ReplicaPolicy::stale_after_s`],
//!    or no replica reporting: the count is held (never a scale-in).
//! 3. **Proportional.** A reading needs `ceil(reporting × value / target)`
//!    replicas (connections: the per-replica mean times the replicas is the
//!    total; lag: the worst replica's lag grows with the read load each
//!    replica carries).
//! 4. **Scale-out** to that (at most `max`) once `scale_out_cooldown` has
//!    passed since the last change.
//! 5. **Scale-in** only when the last change is a whole `stabilization`
//!    window ago, readings cover that window without a gap, and then only
//!    down to the most any reading in it needed (at least `min`) — the
//!    reading in force when the window began included, as it holds until
//!    the next (a pass that added a replica can outlast the window).

use super::decide::instances_for;
use super::policy::Decision;
use crate::manifest::{ReplicaAutoscale, ReplicaMetric};

/// `[autoscale.replicas]` in seconds, as [`decide_replicas`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaPolicy {
    pub metric: ReplicaMetric,
    pub target: f64,
    pub min: u32,
    pub max: u32,
    pub scale_out_cooldown_s: u64,
    pub stabilization_s: u64,
    /// The autoscaler's pass interval (`[autoscale] interval`).
    pub interval_s: u64,
}

impl ReplicaPolicy {
    pub fn new(r: &ReplicaAutoscale, interval_s: u64) -> Self {
        ReplicaPolicy {
            metric: r.metric,
            target: r.target,
            min: r.min,
            max: r.max,
            scale_out_cooldown_s: r.scale_out_cooldown.as_secs(),
            stabilization_s: r.stabilization.as_secs(),
            interval_s,
        }
    }

    /// A reading older than this is no reading; two further apart are a gap.
    /// Twice the interval, and at least 60 s (a pass that added a replica
    /// takes a while).
    pub fn stale_after_s(&self) -> u64 {
        (2 * self.interval_s).max(60)
    }
}

/// One reading of the read tier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaSample {
    /// Unix seconds.
    pub at: u64,
    /// The worst replica's lag (s), or the mean connections per replica.
    pub value: f64,
    /// Replicas that answered.
    pub reporting: u32,
}

/// A past change of the replica count (from the autoscale record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaChange {
    pub at: u64,
    pub from: u32,
    pub to: u32,
}

/// Replicas one reading needs at the target.
pub fn replicas_needed(policy: &ReplicaPolicy, s: &ReplicaSample) -> u32 {
    instances_for(s.value * f64::from(s.reporting), policy.target)
}

fn usable(s: &ReplicaSample) -> bool {
    s.reporting > 0 && s.value.is_finite() && s.value >= 0.0
}

fn reading(policy: &ReplicaPolicy, value: f64) -> String {
    let t = policy.target;
    match policy.metric {
        ReplicaMetric::ReplicationLag => {
            format!("replication lag {value:.1}s vs target {t}s")
        }
        ReplicaMetric::Connections => {
            format!("connections per replica {value:.1} vs target {t}")
        }
    }
}

/// The replica count wanted at `now` with `current` replicas, and why.
/// `samples` ascend in time; `changes` are past changes, oldest first.
pub fn decide_replicas(
    policy: &ReplicaPolicy,
    changes: &[ReplicaChange],
    samples: &[ReplicaSample],
    current: u32,
    now: u64,
) -> Decision {
    let (lo, hi) = (policy.min, policy.max);
    let go = |to: u32, why: String| Decision {
        desired: to,
        reason: format!("{why}: {current} → {to}"),
    };
    let stay = |why: String| Decision {
        desired: current,
        reason: why,
    };
    if current < lo {
        return go(lo, format!("below the minimum {lo}"));
    }
    if current > hi {
        return go(hi, format!("above the maximum {hi}"));
    }
    let Some(latest) = samples.iter().rev().find(|s| s.at <= now) else {
        return stay(format!("no replica readings yet: stay at {current}"));
    };
    let age = now - latest.at;
    if age > policy.stale_after_s() {
        return stay(format!(
            "no replica readings for {age}s: not scaling in, stay at {current}"
        ));
    }
    if !usable(latest) {
        return stay(format!(
            "no replica reported the metric: not scaling in, stay at {current}"
        ));
    }
    let said = reading(policy, latest.value);
    let need = replicas_needed(policy, latest);
    let since_change = changes
        .iter()
        .rev()
        .find(|c| c.at <= now && c.from != c.to)
        .map(|c| now - c.at);
    if need > current {
        if current == hi {
            return stay(format!(
                "{said} needs {need}, but {hi} is the maximum: stay at {current}"
            ));
        }
        if let Some(left) = since_change
            .and_then(|s| policy.scale_out_cooldown_s.checked_sub(s))
            .filter(|l| *l > 0)
        {
            return stay(format!(
                "{said} needs {need}, but the scale-out cooldown ({}s) has {left}s left: \
                 stay at {current}",
                policy.scale_out_cooldown_s
            ));
        }
        let to = need.min(hi);
        let note = if to < need { " (the maximum)" } else { "" };
        return go(to, format!("{said} needs {need}{note}"));
    }
    if need == current || current == lo {
        return stay(format!("{said} needs {need}: stay at {current}"));
    }
    let window = policy.stabilization_s;
    if let Some(left) = since_change
        .and_then(|s| window.checked_sub(s))
        .filter(|l| *l > 0)
    {
        return stay(format!(
            "{said} needs {need}, but the last change is within the {window}s \
             stabilization window ({left}s left): stay at {current}"
        ));
    }
    let from = now.saturating_sub(window);
    let covering: Vec<&ReplicaSample> = samples
        .iter()
        .rev()
        .find(|s| s.at <= from)
        .into_iter()
        .chain(samples.iter().filter(|s| s.at > from && s.at <= now))
        .collect();
    let covered = covering.first().map_or(0, |s| now - s.at);
    let gap = covering
        .windows(2)
        .any(|w| w[1].at.saturating_sub(w[0].at) > policy.stale_after_s());
    if covered < window || gap || covering.iter().any(|s| !usable(s)) {
        return stay(format!(
            "{said} needs {need}, but readings do not cover the {window}s stabilization \
             window: not scaling in, stay at {current}"
        ));
    }
    // The reading the window starts with counts too: it holds until the
    // next one (a pass that added a replica takes longer than the window).
    let highest = covering
        .iter()
        .map(|s| replicas_needed(policy, s))
        .max()
        .unwrap_or(current);
    if highest >= current {
        return stay(format!(
            "{said} needs {need}, but up to {highest} were needed in the last {window}s: \
             stay at {current}"
        ));
    }
    let to = highest.max(lo);
    go(
        to,
        format!("{said} needs {need}, stabilized over {window}s"),
    )
}
