//! The autoscaling page's chart: the autoscaler's recorded samples drawn by
//! the same chart code as `autoscale simulate` (`autoscale::svg_chart`):
//! demand (the load in servers at the target: `value × reporting ÷ target`)
//! against the servers reporting. Pure.

use crate::autoscale::live::Record;
use crate::autoscale::{Row, Simulation, elasticity, instances_for, svg_chart};

/// The chart of `record`'s samples; `target` is the policy's.
pub fn chart(record: &Record, target: f64, title: &str) -> String {
    let timeline: Vec<Row> = record
        .samples
        .iter()
        .map(|s| {
            let desired = record
                .entries
                .iter()
                .rev()
                .find(|e| e.at <= s.at)
                .map_or(s.reporting, |e| e.to);
            Row {
                t: s.at,
                demand_instances: instances_for(s.value * f64::from(s.reporting), target),
                supplied_instances: s.reporting,
                desired,
            }
        })
        .collect();
    let demand: Vec<u32> = timeline.iter().map(|r| r.demand_instances).collect();
    let supply: Vec<u32> = timeline.iter().map(|r| r.supplied_instances).collect();
    let step_s = match record.samples.as_slice() {
        [a, b, ..] => b.at.saturating_sub(a.at).max(1),
        _ => 30,
    };
    let sim = Simulation {
        events: record.entries.iter().filter(|e| e.from != e.to).count(),
        elasticity: elasticity(&demand, &supply),
        decisions: Vec::new(),
        step_s,
        timeline,
    };
    svg_chart(&sim, title)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::live::StoredSample;

    #[test]
    fn samples_become_demand_and_supply_lines() {
        let mut record = Record::default();
        assert!(!chart(&record, 50.0, "t").contains("<polyline"));
        for (i, value) in [10.0, 80.0, 120.0].into_iter().enumerate() {
            record.samples.push(StoredSample {
                at: 1_700_000_000 + 30 * i as u64,
                value,
                reporting: 2,
                warm: 2,
            });
        }
        let svg = chart(&record, 50.0, "blog <web>");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("blog &lt;web&gt;"), "{svg}");
    }
}
