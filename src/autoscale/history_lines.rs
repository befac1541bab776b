//! How recorded passes read, for `autoscale history`, `autoscale status` and
//! the panel's Autoscaling page alike: one line per pass and, in shadow mode
//! (`forecast_only`), what the forecast policy would have done at that pass.
//! Pure.

use serde::Serialize;

use super::format_time;
use super::live::{Entry, Record};

/// One recorded pass, as it is shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryLine {
    /// The pass's time (UTC, `YYYY-MM-DDTHH:MM:SS`).
    pub when: String,
    /// `METRIC VALUE  FROM -> TO  REASON`.
    pub decision: String,
    /// `would have gone FROM -> TO  REASON`: the shadow forecast's decision
    /// at this pass (web tier only).
    pub shadow: Option<String>,
}

impl Entry {
    /// The pass as one line: `WHEN  METRIC VALUE  FROM -> TO  REASON`.
    pub fn line(&self) -> String {
        let shown = self.shown();
        format!("{}  {}", shown.when, shown.decision)
    }

    fn shown(&self) -> HistoryLine {
        let value = self
            .value
            .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        HistoryLine {
            when: format_time(self.at as i64),
            decision: format!(
                "{} {}  {} -> {}  {}",
                self.metric, value, self.from, self.to, self.reason
            ),
            shadow: None,
        }
    }
}

/// Every recorded pass of both tiers, oldest first, each with its shadow
/// decision when one was recorded at that pass.
pub fn history(record: &Record) -> Vec<HistoryLine> {
    record
        .all_entries()
        .into_iter()
        .map(|e| {
            let mut line = e.shown();
            if !e.metric.starts_with("replicas:") {
                line.shadow = record
                    .shadow
                    .iter()
                    .find(|s| s.at == e.at)
                    .map(|s| format!("would have gone {} -> {}  {}", s.from, s.to, s.reason));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::ShadowEntry;

    fn entry(at: u64, metric: &str, from: u32, to: u32) -> Entry {
        Entry {
            at,
            metric: metric.to_string(),
            value: Some(62.04),
            from,
            to,
            reason: "above target".to_string(),
        }
    }

    #[test]
    fn passes_read_in_time_order_with_their_shadow_decisions() {
        let mut record = Record::default();
        record
            .entries
            .push(entry(1_720_000_060, "requests_per_second", 1, 2));
        record
            .entries
            .push(entry(1_720_000_000, "requests_per_second", 1, 1));
        record
            .replica_entries
            .push(entry(1_720_000_060, "replicas:lag_seconds", 1, 1));
        record.shadow.push(ShadowEntry {
            at: 1_720_000_000,
            from: 1,
            to: 3,
            reason: "forecast 140 req/s in 130 s".to_string(),
        });
        let lines = history(&record);
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.when.as_str(), l.shadow.as_deref()))
                .collect::<Vec<_>>(),
            [
                (
                    "2024-07-03T09:46:40",
                    Some("would have gone 1 -> 3  forecast 140 req/s in 130 s")
                ),
                ("2024-07-03T09:47:40", None),
                ("2024-07-03T09:47:40", None),
            ]
        );
        assert_eq!(
            lines[0].decision,
            "requests_per_second 62.0  1 -> 1  above target"
        );
        assert_eq!(
            record.entries[0].line(),
            "2024-07-03T09:47:40  requests_per_second 62.0  1 -> 2  above target"
        );
        assert!(
            lines[1].decision.starts_with("requests_per_second")
                ^ lines[2].decision.starts_with("requests_per_second"),
            "{lines:?}"
        );
    }
}
