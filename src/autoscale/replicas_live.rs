//! The replica tier in the autoscale record (issue 13): a reading of the
//! replicas becomes a [`ReplicaSample`], and every pass an entry of its own
//! (`metric` = `replicas:METRIC`) beside the web tier's, so the web tier's
//! history (cooldowns, boots) never sees a replica change.

use super::live::{Entry, MAX_ENTRIES, MAX_SAMPLES, Record, trim};
use super::{ReplicaChange, ReplicaSample};
use crate::manifest::ReplicaMetric;
use crate::ops::ReplicaReading;

/// How a replica entry names its metric in the history.
pub fn replica_metric_name(metric: ReplicaMetric) -> String {
    format!("replicas:{}", metric.as_str())
}

impl Record {
    /// One reading of the replicas at `now`: the worst lag, or the mean
    /// connections, of the replicas that answered; none when none did.
    pub fn observe_replicas(
        &mut self,
        metric: ReplicaMetric,
        readings: &[ReplicaReading],
        now: u64,
    ) -> Option<ReplicaSample> {
        let values: Vec<f64> = readings
            .iter()
            .filter_map(|r| match metric {
                ReplicaMetric::ReplicationLag => r.lag_s,
                ReplicaMetric::Connections => r.connections,
            })
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            return None;
        }
        let value = match metric {
            ReplicaMetric::ReplicationLag => values.iter().copied().fold(0.0, f64::max),
            ReplicaMetric::Connections => values.iter().sum::<f64>() / values.len() as f64,
        };
        let sample = ReplicaSample {
            at: now,
            value,
            reporting: values.len() as u32,
        };
        self.replica_samples.push(sample);
        trim(&mut self.replica_samples, MAX_SAMPLES);
        Some(sample)
    }

    /// The replica count's past changes, oldest first.
    pub fn replica_changes(&self) -> Vec<ReplicaChange> {
        self.replica_entries
            .iter()
            .filter(|e| e.from != e.to)
            .map(|e| ReplicaChange {
                at: e.at,
                from: e.from,
                to: e.to,
            })
            .collect()
    }

    pub fn push_replica(&mut self, entry: Entry) {
        self.replica_entries.push(entry);
        trim(&mut self.replica_entries, MAX_ENTRIES);
    }

    /// Every entry, both tiers, in time order (for `autoscale history`).
    pub fn all_entries(&self) -> Vec<&Entry> {
        let mut all: Vec<&Entry> = self.entries.iter().chain(&self.replica_entries).collect();
        all.sort_by_key(|e| e.at);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ResourceAddress, Role};

    fn reading(i: u32, lag: Option<f64>, connections: Option<f64>) -> ReplicaReading {
        ReplicaReading {
            address: ResourceAddress::instance(Role::DbReplica, i),
            lag_s: lag,
            connections,
        }
    }

    #[test]
    fn lag_is_the_worst_replica_and_connections_the_mean_of_those_answering() {
        let mut r = Record::default();
        let readings = [
            reading(0, Some(0.5), Some(6.0)),
            reading(1, Some(2.5), None),
            reading(2, None, Some(2.0)),
        ];
        let lag = r
            .observe_replicas(ReplicaMetric::ReplicationLag, &readings, 10)
            .unwrap();
        assert_eq!((lag.value, lag.reporting), (2.5, 2));
        let c = r
            .observe_replicas(ReplicaMetric::Connections, &readings, 20)
            .unwrap();
        assert_eq!((c.value, c.reporting), (4.0, 2));
        assert_eq!(
            r.observe_replicas(
                ReplicaMetric::Connections,
                &[reading(0, Some(1.0), None)],
                30
            ),
            None
        );
        assert_eq!(r.replica_samples.len(), 2);
    }

    #[test]
    fn replica_changes_stay_out_of_the_web_history_and_both_show_in_order() {
        let mut r = Record::default();
        let entry = |at, metric: &str, from, to| Entry {
            at,
            metric: metric.into(),
            value: None,
            from,
            to,
            reason: String::new(),
        };
        r.push(entry(10, "requests_per_instance", 1, 2));
        r.push_replica(entry(5, "replicas:connections", 1, 2));
        r.push_replica(entry(15, "replicas:connections", 2, 2));
        assert_eq!(r.history().decisions.len(), 1);
        assert_eq!(
            r.replica_changes(),
            vec![ReplicaChange {
                at: 5,
                from: 1,
                to: 2
            }]
        );
        let order: Vec<u64> = r.all_entries().iter().map(|e| e.at).collect();
        assert_eq!(order, vec![5, 10, 15]);
    }
}
