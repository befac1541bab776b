//! `simulate --compare`: appgrid's simulated run next to the HPA and
//! target-tracking emulations on the same trace and capacity model, scored
//! alike (the shared yardstick's figures: the elasticity metrics on one
//! demand, instance-hours, scale events per hour).

use super::elasticity::{Elasticity, elasticity};
use super::emulate::{Model, hpa, target_tracking};
use super::simulate::Simulation;
use super::trace::TracePoint;

/// One policy's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub policy: &'static str,
    pub elasticity: Elasticity,
    pub instance_hours: f64,
    pub events_per_hour: f64,
    /// Supply per minute.
    pub supply: Vec<u32>,
}

/// All three on one demand.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The start of each minute (unix seconds).
    pub minutes: Vec<u64>,
    /// Demand per minute in instances, within min..max.
    pub demand: Vec<u32>,
    /// appgrid, HPA, target tracking.
    pub policies: Vec<Scored>,
}

/// Requests per second in each minute from the trace's first to its last
/// (× `scale`; a minute the trace skips has none), as the simulator reads it.
pub fn minute_rates(trace: &[TracePoint], scale: f64) -> (Vec<u64>, Vec<f64>) {
    let (Some(first), Some(last)) = (trace.first(), trace.last()) else {
        return (Vec::new(), Vec::new());
    };
    let minutes: Vec<u64> = (first.minute..=last.minute).step_by(60).collect();
    let mut rates = vec![0.0; minutes.len()];
    for p in trace {
        if let Some(r) = rates.get_mut(((p.minute - first.minute) / 60) as usize) {
            if (p.minute - first.minute) % 60 == 0 {
                *r = p.requests as f64 * scale / 60.0;
            }
        }
    }
    (minutes, rates)
}

fn scored(policy: &'static str, demand: &[u32], supply: Vec<u32>, events: usize) -> Scored {
    let minutes = demand.len().min(supply.len()).max(1) as f64;
    Scored {
        policy,
        elasticity: elasticity(demand, &supply),
        instance_hours: supply.iter().map(|&s| f64::from(s)).sum::<f64>() / 60.0,
        events_per_hour: events as f64 / (minutes / 60.0),
        supply,
    }
}

/// Score `sim` (a run of `simulate` over `trace`) and the two emulations.
pub fn compare(sim: &Simulation, trace: &[TracePoint], scale: f64, model: Model) -> Comparison {
    let (minutes, rates) = minute_rates(trace, scale);
    let demand: Vec<u32> = rates.iter().map(|&r| model.demand(r)).collect();
    // appgrid's supply at each minute's start.
    let mut supply = Vec::with_capacity(minutes.len());
    let mut rows = sim.timeline.iter().peekable();
    for &m in &minutes {
        while rows.next_if(|r| r.t < m).is_some() {}
        supply.push(rows.peek().map_or(0, |r| r.supplied_instances));
    }
    let h = hpa(&rates, model);
    let t = target_tracking(&rates, model);
    let policies = vec![
        scored("appgrid", &demand, supply, sim.events),
        scored("HPA", &demand, h.supply, h.events),
        scored("target tracking", &demand, t.supply, t.events),
    ];
    Comparison {
        minutes,
        demand,
        policies,
    }
}

/// The figures as CSV, one row a policy, in percent.
pub fn comparison_csv(c: &Comparison) -> String {
    let mut out = String::from(
        "policy,under_timeshare_pct,over_accuracy_pct,under_accuracy_pct,over_timeshare_pct,instance_hours,scale_events_per_hour\n",
    );
    for p in &c.policies {
        let e = &p.elasticity;
        out.push_str(&format!(
            "{},{:.4},{:.4},{:.4},{:.4},{:.3},{:.4}\n",
            p.policy,
            e.under_timeshare,
            e.over_accuracy,
            e.under_accuracy,
            e.over_timeshare,
            p.instance_hours,
            p.events_per_hour
        ));
    }
    out
}

/// The table for people, with the bar for appgrid.
pub fn comparison_table(c: &Comparison) -> String {
    let mut out = format!(
        "{:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}\n",
        "policy", "τU %", "θO %", "θU %", "τO %", "inst-hours", "events/h"
    );
    for p in &c.policies {
        let e = &p.elasticity;
        out.push_str(&format!(
            "{:<16} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.0} {:>9.2}\n",
            p.policy,
            e.under_timeshare,
            e.over_accuracy,
            e.under_accuracy,
            e.over_timeshare,
            p.instance_hours,
            p.events_per_hour
        ));
    }
    if let [ours, h, t] = &c.policies[..] {
        let bar_u = 0.5
            * h.elasticity
                .under_timeshare
                .min(t.elasticity.under_timeshare);
        let bar_o = 0.75 * h.elasticity.over_accuracy;
        let met = |ok: bool| if ok { "met" } else { "not met" };
        out.push_str(&format!(
            "bar: τU ≤ ½ × min(HPA, TT) = {bar_u:.2} % ({}), θO ≤ ¾ × HPA = {bar_o:.2} % ({})\n",
            met(ours.elasticity.under_timeshare <= bar_u),
            met(ours.elasticity.over_accuracy <= bar_o),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::simulate::Row;

    fn sim(supply: &[u32]) -> Simulation {
        Simulation {
            timeline: supply
                .iter()
                .enumerate()
                .map(|(i, &s)| Row {
                    t: 600 + 60 * i as u64,
                    demand_instances: 0,
                    supplied_instances: s,
                    desired: s,
                })
                .collect(),
            events: 1,
            elasticity: elasticity(&[], &[]),
            decisions: Vec::new(),
            step_s: 60,
        }
    }

    const MODEL: Model = Model {
        per_instance: 50.0,
        boot_s: 120,
        min: 1,
        max: 100,
    };

    #[test]
    fn appgrid_is_scored_on_the_same_demand_as_the_emulations() {
        // 60 req/s × 10 minutes, the trace in requests per minute.
        let trace: Vec<TracePoint> = (0..10)
            .map(|i| TracePoint {
                minute: 600 + 60 * i,
                requests: 3600,
            })
            .collect();
        let c = compare(&sim(&[1, 1, 2, 2, 2, 3, 3, 2, 2, 2]), &trace, 1.0, MODEL);
        assert_eq!(c.demand, vec![2; 10]);
        let ours = &c.policies[0];
        assert_eq!(ours.supply, vec![1, 1, 2, 2, 2, 3, 3, 2, 2, 2]);
        assert!((ours.elasticity.under_timeshare - 20.0).abs() < 1e-9);
        assert!((ours.elasticity.over_accuracy - 10.0).abs() < 1e-9);
        assert!((ours.instance_hours - 20.0 / 60.0).abs() < 1e-9);
        assert!((ours.events_per_hour - 6.0).abs() < 1e-9);
        // The emulations start at the first minute's demand and hold it.
        assert_eq!(c.policies[1].supply, vec![2; 10]);
        assert_eq!(c.policies[2].supply, vec![2; 10]);
        let table = comparison_table(&c);
        assert!(
            table.contains("appgrid") && table.contains("HPA"),
            "{table}"
        );
        assert!(
            table.contains("bar: τU ≤ ½ × min(HPA, TT) = 0.00 % (not met)"),
            "{table}"
        );
        let csv = comparison_csv(&c);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.contains("\nappgrid,20.0000,10.0000,"), "{csv}");
    }

    #[test]
    fn a_minute_the_trace_skips_has_no_requests() {
        let trace = [
            TracePoint {
                minute: 0,
                requests: 600,
            },
            TracePoint {
                minute: 120,
                requests: 60,
            },
        ];
        let (minutes, rates) = minute_rates(&trace, 2.0);
        assert_eq!(minutes, vec![0, 60, 120]);
        assert_eq!(rates, vec![20.0, 0.0, 2.0]);
    }
}
