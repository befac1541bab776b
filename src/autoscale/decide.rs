//! `decide`: one pure step of target tracking.
//!
//! Given the policy, the history, the recent samples, the current count and
//! the time, it returns the count wanted and why:
//!
//! 1. **Bounds.** A schedule in force replaces `min`/`max`; a schedule's
//!    `desired` is a jump made when it starts. Bounds apply whatever else
//!    holds (cooldowns, missing data): below `min` scales out to `min`,
//!    above `max` scales in to `max`.
//! 2. **Missing data.** With no sample, or the latest older than
//!    [`Policy::stale_after_s`], or no warm instance reporting, the count is
//!    held: no scale-in on missing data, and scale-out only on fresh data.
//! 3. **Tolerance.** Within ±`tolerance` of the target nothing changes.
//! 4. **Proportional.** The load needs `ceil(reporting × value / target)`
//!    instances: the readings of warm instances, applied to every instance
//!    taking traffic. Instances requested but still booting or warming are in
//!    `current`, so they count against a further scale-out without their
//!    readings being trusted.
//! 5. **Scale-out** to that count once `scale_out_cooldown` has passed since
//!    the last change.
//! 6. **Scale-in**, cautiously: never while an instance is still warming up,
//!    not before `scale_in_cooldown` has passed since the last change, only
//!    when samples cover the whole stabilization window (the same length) with
//!    no gap, and then only down to the highest count any sample in the window
//!    needed — never below what the current load needs.
//! 7. **Predictive** (optional): never below the reactive result, the count a
//!    forecast of the load `lookahead` ahead needs (see `predict`).
//!
//! With `policy = "forecast"`, steps 3–7 are replaced by the forecast policy
//! (see `forecast`); bounds, schedules and the missing-data rule stay.

use super::forecast;
use super::policy::{Decision, History, Policy, Sample};
use super::predict;
use super::schedule::Bounds;
use crate::manifest::Metric;

/// What the metric-driven part proposes, before bounds.
enum Proposal {
    /// Keep the count; the full sentence.
    Stay(String),
    /// Change to `to`; `why` ends before ": from → to".
    Move { why: String, to: u32 },
}

/// Decide the wanted count at `now` (unix seconds) for `current` instances.
/// `samples` are ascending in time and should cover the stabilization window.
pub fn decide(
    policy: &Policy,
    history: &History,
    samples: &[Sample],
    current: u32,
    now: u64,
) -> Decision {
    let bounds = policy.bounds_at(now);
    if let (Some(desired), Some((i, _))) = (bounds.desired, bounds.schedule) {
        if desired != current {
            let label = policy.schedules[i].label();
            return Decision {
                desired,
                reason: format!("{label} sets desired {desired}: {current} → {desired}"),
            };
        }
    }
    let proposal = match &policy.forecast {
        Some(f) if !policy.metric.is_time() => {
            let (stay, to, why) = forecast::propose(policy, f, history, samples, current, now);
            return bounded(policy, &bounds, current, stay, to, why);
        }
        _ => reactive(policy, history, samples, current, now),
    };
    let proposal = match &policy.predictive {
        Some(p) => predict::apply(
            policy,
            p,
            history,
            samples,
            current,
            now,
            proposal_parts(proposal),
        ),
        None => proposal_parts(proposal),
    };
    let (stay, to, why) = proposal;
    bounded(policy, &bounds, current, stay, to, why)
}

/// The proposal held within the bounds in force, with the sentence to match.
fn bounded(
    policy: &Policy,
    bounds: &Bounds,
    current: u32,
    stay: Option<String>,
    to: u32,
    why: String,
) -> Decision {
    let source = bounds
        .schedule
        .map(|(i, _)| format!(" ({})", policy.schedules[i].label()))
        .unwrap_or_default();
    let (lo, hi) = (bounds.min, bounds.max);
    let (desired, reason) = match stay {
        Some(sentence) if (lo..=hi).contains(&current) => (current, sentence),
        Some(_) if current < lo => (
            lo,
            format!("below the minimum {lo}{source}: {current} → {lo}"),
        ),
        Some(_) => (
            hi,
            format!("above the maximum {hi}{source}: {current} → {hi}"),
        ),
        None => {
            let clamped = to.clamp(lo, hi);
            let note = if clamped == to {
                String::new()
            } else if clamped == lo {
                format!(" (the minimum{source})")
            } else {
                format!(" (the maximum{source})")
            };
            if clamped == current {
                let limit = if clamped == lo { "minimum" } else { "maximum" };
                (
                    current,
                    format!("{why}, but {current} is the {limit}{source}: stay at {current}"),
                )
            } else {
                (clamped, format!("{why}: {current} → {clamped}{note}"))
            }
        }
    };
    Decision { desired, reason }
}

/// (stay sentence, or target and why).
pub(super) type Parts = (Option<String>, u32, String);

fn proposal_parts(p: Proposal) -> Parts {
    match p {
        Proposal::Stay(s) => (Some(s), 0, String::new()),
        Proposal::Move { why, to } => (None, to, why),
    }
}

/// The latest sample at or before `now`, if fresh and usable, else why not.
pub(super) fn fresh_sample<'a>(
    policy: &Policy,
    samples: &'a [Sample],
    now: u64,
) -> Result<&'a Sample, String> {
    let Some(latest) = samples.iter().rev().find(|s| s.at <= now) else {
        return Err("no samples yet: not scaling in".to_string());
    };
    let age = now - latest.at;
    if age > policy.stale_after_s() {
        return Err(format!("no samples for {age}s: not scaling in"));
    }
    if latest.instances_reporting == 0 || !latest.value.is_finite() {
        return Err("no instance reported the metric: not scaling in".to_string());
    }
    if latest.instances_warm == 0 {
        let n = latest.instances_reporting;
        return Err(format!(
            "all {n} reporting instances are warming up: not scaling in"
        ));
    }
    Ok(latest)
}

/// Instances a sample's load needs at the target.
pub fn needed(policy: &Policy, s: &Sample) -> u32 {
    instances_for(s.value * f64::from(s.instances_reporting), policy.target)
}

/// `ceil(load / per_instance)`, forgiving float noise, saturating.
pub fn instances_for(load: f64, per_instance: f64) -> u32 {
    let x = load / per_instance;
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        (x - 1e-9).ceil() as u32
    }
}

/// How the metric reads in a sentence: (name, value with unit, target with unit).
pub(super) fn describe(policy: &Policy, value: f64) -> (String, String) {
    let t = policy.target;
    match policy.metric {
        Metric::RequestsPerInstance => (
            format!("requests per instance {value:.1}"),
            format!("target {t}"),
        ),
        Metric::ResponseTimeMs => (
            format!("response time {value:.1} ms"),
            format!("target {t} ms"),
        ),
        Metric::CpuPercent => (format!("CPU {value:.1}%"), format!("target {t}%")),
        Metric::QueueTimeMs => (
            format!("queue time {value:.1} ms"),
            format!("target {t} ms"),
        ),
    }
}

fn reactive(
    policy: &Policy,
    history: &History,
    samples: &[Sample],
    current: u32,
    now: u64,
) -> Proposal {
    let latest = match fresh_sample(policy, samples, now) {
        Ok(s) => s,
        Err(sentence) => return Proposal::Stay(sentence),
    };
    let ratio = latest.value / policy.target;
    if (ratio - 1.0).abs() <= policy.tolerance {
        return Proposal::Stay(format!(
            "within tolerance ({:.1} vs {}): stay at {current}",
            latest.value, policy.target
        ));
    }
    let (reading, target) = describe(policy, latest.value);
    let band = format!("(±{}%)", (policy.tolerance * 100.0).round());
    let need = needed(policy, latest);
    let since_change = history.last_change_at(now).map(|at| now - at);
    let cooldown_left = |cooldown: u64| {
        since_change
            .and_then(|s| cooldown.checked_sub(s))
            .filter(|&l| l > 0)
    };
    if ratio > 1.0 {
        let why = format!("{reading} > {target} {band}");
        if need <= current {
            let warming = current.saturating_sub(latest.instances_warm);
            return Proposal::Stay(format!(
                "{why}, but {current} instances cover the load ({warming} still warming up): \
                 stay at {current}"
            ));
        }
        if let Some(left) = cooldown_left(policy.scale_out_cooldown_s) {
            return Proposal::Stay(format!(
                "{why}, but the scale-out cooldown ({}s) has {left}s left: stay at {current}",
                policy.scale_out_cooldown_s
            ));
        }
        return Proposal::Move { why, to: need };
    }
    let why = format!("{reading} < {target} {band}");
    if need >= current {
        return Proposal::Stay(format!(
            "{why}, but the load still needs {need}: stay at {current}"
        ));
    }
    let warming = current.saturating_sub(latest.instances_warm);
    if warming > 0 {
        return Proposal::Stay(format!(
            "{why}, but {warming} instances are still warming up: not scaling in"
        ));
    }
    let window = policy.scale_in_cooldown_s;
    if let Some(left) = cooldown_left(window) {
        return Proposal::Stay(format!(
            "{why}, but the scale-in cooldown ({window}s) has {left}s left: stay at {current}"
        ));
    }
    let from = now.saturating_sub(window);
    let in_window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= now)
        .collect();
    let earliest_before = samples.iter().rev().find(|s| s.at <= from);
    let covered = match earliest_before {
        Some(s) => now - s.at,
        None => in_window.first().map_or(0, |s| now - s.at),
    };
    let gap = earliest_before
        .into_iter()
        .chain(in_window.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[1].at - w[0].at > policy.stale_after_s());
    if covered < window || gap {
        return Proposal::Stay(format!(
            "{why}, but samples do not cover the {window}s stabilization window: not scaling in"
        ));
    }
    let highest = in_window
        .iter()
        .filter(|s| s.instances_reporting > 0 && s.instances_warm > 0 && s.value.is_finite())
        .map(|s| needed(policy, s))
        .max()
        .unwrap_or(current);
    if highest >= current {
        return Proposal::Stay(format!(
            "{why}, but up to {highest} were needed in the last {window}s: stay at {current}"
        ));
    }
    Proposal::Move {
        why: format!("{why}, stabilized over {window}s"),
        to: highest,
    }
}
