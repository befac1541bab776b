//! Replaying a request trace through the same [`decide`] the live loop uses,
//! with a stated capacity model, and writing the results.
//!
//! Model: requests per minute × `scale` / 60 is the demand in req/s. An
//! instance serves `boot_time_s` after it is requested and counts as warm
//! `max(boot, warmup)` after; a scale-in removes the youngest instances at
//! once. Every `interval` a sample is taken (requests per serving instance
//! for `requests_per_instance`; other metrics are modelled as proportional to
//! it, reaching the target at the capacity) and `decide` runs. Demand in
//! instances is `ceil(req/s / capacity)`, at least one. Boots are measured as
//! the live loop measures them: from asking to first serving at a pass.

use super::decide::{decide, instances_for};
use super::elasticity::{Elasticity, elasticity};
use super::policy::{DecisionRecord, DemandPoint, History, Policy, Sample};
use super::trace::TracePoint;
use super::tz::format_time;
use crate::manifest::Metric;

/// What one instance serves and how long it takes to start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityModel {
    pub requests_per_instance_per_sec_at_target: f64,
    pub boot_time_s: u64,
}

/// One step of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub t: u64,
    pub demand_instances: u32,
    pub supplied_instances: u32,
    pub desired: u32,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub timeline: Vec<Row>,
    /// Decisions that changed the count.
    pub events: usize,
    pub elasticity: Elasticity,
    pub decisions: Vec<DecisionRecord>,
    pub step_s: u64,
}

/// Replay `trace` (requests per minute × `scale`) every `step_s` seconds.
pub fn simulate(
    policy: &Policy,
    trace: &[TracePoint],
    scale: f64,
    model: CapacityModel,
    step_s: u64,
) -> Simulation {
    let step_s = step_s.max(1);
    let (Some(first), Some(last)) = (trace.first(), trace.last()) else {
        return Simulation {
            timeline: Vec::new(),
            events: 0,
            elasticity: elasticity(&[], &[]),
            decisions: Vec::new(),
            step_s,
        };
    };
    let capacity = model.requests_per_instance_per_sec_at_target;
    let serve_after = model.boot_time_s;
    let warm_after = model.boot_time_s.max(policy.warmup_s);
    let start = first.minute;
    let end = last.minute + 60;
    // Requested-at times, oldest first; the initial fleet is already warm.
    let initial = policy.bounds_at(start).min.max(1);
    let mut fleet: Vec<u64> = vec![0; initial as usize];
    let mut history = History::default();
    let mut samples: Vec<Sample> = Vec::new();
    let mut timeline = Vec::with_capacity(((end - start) / step_s) as usize + 1);
    let mut next_pass = start;
    let mut cursor = 0;
    let mut t = start;
    while t < end {
        while cursor + 1 < trace.len() && trace[cursor + 1].minute <= t {
            cursor += 1;
        }
        let point = trace[cursor];
        let requests = if point.minute <= t && t < point.minute + 60 {
            point.requests as f64
        } else {
            0.0
        };
        let rps = requests * scale / 60.0;
        let serving = fleet.iter().filter(|&&r| r + serve_after <= t).count() as u32;
        if t >= next_pass {
            // Boots measured as the live loop does: first seen serving at a pass.
            let since = t.saturating_sub(policy.interval_s.max(step_s));
            for &r in &fleet {
                if r > 0 && r + serve_after <= t && r + serve_after > since {
                    history.boots.push(t - r);
                }
            }
            next_pass += policy.interval_s;
            let warm = fleet.iter().filter(|&&r| r + warm_after <= t).count() as u32;
            let per_instance = if serving > 0 {
                rps / f64::from(serving)
            } else {
                f64::NAN
            };
            let value = match policy.metric {
                Metric::RequestsPerInstance => per_instance,
                _ => per_instance / capacity * policy.target,
            };
            samples.push(Sample {
                at: t,
                value,
                instances_reporting: serving,
                instances_warm: warm.min(serving),
            });
            let keep_from = t.saturating_sub(policy.scale_in_cooldown_s + 2 * policy.interval_s);
            let first_kept = samples.partition_point(|s| s.at < keep_from);
            let current = fleet.len() as u32;
            let decision = decide(policy, &history, &samples[first_kept..], current, t);
            if serving > 0 {
                history.demand.push(DemandPoint {
                    at: t,
                    load: value * f64::from(serving),
                });
            }
            if decision.desired != current {
                if decision.desired > current {
                    fleet.extend(std::iter::repeat_n(
                        t,
                        (decision.desired - current) as usize,
                    ));
                } else {
                    fleet.truncate(decision.desired as usize);
                }
                history.decisions.push(DecisionRecord {
                    at: t,
                    from: current,
                    to: decision.desired,
                    reason: decision.reason,
                });
            }
        }
        let supplied = fleet.iter().filter(|&&r| r + serve_after <= t).count() as u32;
        timeline.push(Row {
            t,
            demand_instances: instances_for(rps, capacity).max(1),
            supplied_instances: supplied,
            desired: fleet.len() as u32,
        });
        t += step_s;
    }
    let demand: Vec<u32> = timeline.iter().map(|r| r.demand_instances).collect();
    let supply: Vec<u32> = timeline.iter().map(|r| r.supplied_instances).collect();
    Simulation {
        events: history.decisions.len(),
        elasticity: elasticity(&demand, &supply),
        decisions: history.decisions,
        timeline,
        step_s,
    }
}

/// The timeline as CSV: `time,demand,supplied,desired`, times in UTC.
pub fn timeline_csv(sim: &Simulation) -> String {
    let mut out = String::with_capacity(sim.timeline.len() * 32 + 32);
    out.push_str("time,demand,supplied,desired\n");
    for r in &sim.timeline {
        let time = format_time(i64::try_from(r.t).unwrap_or(i64::MAX));
        out.push_str(&format!(
            "{time},{},{},{}\n",
            r.demand_instances, r.supplied_instances, r.desired
        ));
    }
    out
}

/// A few lines for people: the figures and the number of scale events.
pub fn summary(sim: &Simulation) -> String {
    let e = &sim.elasticity;
    let hours = sim.timeline.len() as f64 * sim.step_s as f64 / 3600.0;
    let (outs, ins) = sim.decisions.iter().fold((0, 0), |(o, i), d| {
        if d.to > d.from {
            (o + 1, i)
        } else {
            (o, i + 1)
        }
    });
    let peak = sim
        .timeline
        .iter()
        .map(|r| r.supplied_instances)
        .max()
        .unwrap_or(0);
    let instance_hours: f64 = sim
        .timeline
        .iter()
        .map(|r| f64::from(r.supplied_instances) * sim.step_s as f64 / 3600.0)
        .sum();
    format!(
        "simulated {hours:.1} h in steps of {}s\n\
         under-provisioning accuracy θU  {:6.2} %\n\
         over-provisioning accuracy  θO  {:6.2} %\n\
         under-provisioning timeshare τU {:6.2} %\n\
         over-provisioning timeshare  τO {:6.2} %\n\
         instability                 υ   {:6.2} %\n\
         scale events {} ({outs} out, {ins} in); peak supply {peak}; {instance_hours:.0} instance-hours\n",
        sim.step_s,
        e.under_accuracy,
        e.over_accuracy,
        e.under_timeshare,
        e.over_timeshare,
        e.instability,
        sim.events,
    )
}
