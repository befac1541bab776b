//! Shadow mode (`forecast_only = true`, issue 13): the forecast policy
//! decides beside the acting (reactive) one, on the same history, samples
//! and count, and its decision is recorded, never applied, so a user can
//! compare the two on their own traffic before switching. The recorded
//! demand is also a request trace, for `autoscale simulate --trace`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Decision, History, Policy, Sample, decide};

/// What the forecast policy would have done at the pass at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowEntry {
    pub at: u64,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// The forecast policy's decision at `now` when `policy` shadows it (pure,
/// like [`decide`]); `None` when `forecast_only` is not set. Its cooldowns
/// see the acting policy's changes: those are the ones that happened.
pub fn decide_shadow(
    policy: &Policy,
    history: &History,
    samples: &[Sample],
    current: u32,
    now: u64,
) -> Option<Decision> {
    let settings = policy.shadow?;
    let forecasting = Policy {
        forecast: Some(settings),
        shadow: None,
        ..policy.clone()
    };
    Some(decide(&forecasting, history, samples, current, now))
}

/// The recorded demand (unix seconds, load per second: requests/s, or CPU %
/// summed over the servers) as a `minute,requests` trace: each minute's mean
/// load × 60, minutes without a reading left out (the simulator reads them
/// as no load).
pub fn demand_trace(demand: &[(u64, f64)]) -> String {
    let mut minutes: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    for &(at, load) in demand {
        let m = minutes.entry(at - at % 60).or_insert((0.0, 0));
        m.0 += load;
        m.1 += 1;
    }
    let mut out = String::from("minute,requests\n");
    for (minute, (sum, n)) in minutes {
        let requests = (sum / f64::from(n) * 60.0).round().max(0.0) as u64;
        let at = super::format_time(i64::try_from(minute).unwrap_or(i64::MAX));
        // `YYYY-MM-DDTHH:MM`: the seconds (always :00) dropped.
        out.push_str(&format!("{},{requests}\n", &at[..16]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::policy;
    use super::*;
    use crate::autoscale::{DemandPoint, ForecastSettings, parse_trace};

    const NOW: u64 = 1_720_000_020;

    #[test]
    fn the_shadow_decides_as_the_forecast_policy_would_and_only_when_asked() {
        let mut p = policy();
        p.min = 1;
        p.interval_s = 60;
        let samples = [Sample {
            at: NOW,
            value: 45.0,
            instances_reporting: 2,
            instances_warm: 2,
        }];
        // A steep, steady rise: the forecast asks for more than the reading does.
        let history = History {
            demand: (1..=59u64)
                .rev()
                .map(|ago| DemandPoint {
                    at: NOW - ago * 60,
                    load: 90.0 - ago as f64 * 1.5,
                })
                .collect(),
            ..History::default()
        };
        assert_eq!(decide_shadow(&p, &history, &samples, 2, NOW), None);
        let reactive = decide(&p, &history, &samples, 2, NOW);
        let settings = ForecastSettings {
            boot_s: Some(600),
            ..ForecastSettings::default()
        };
        p.shadow = Some(settings);
        let shadow = decide_shadow(&p, &history, &samples, 2, NOW).unwrap();
        // The acting policy is unchanged by its shadow.
        assert_eq!(decide(&p, &history, &samples, 2, NOW), reactive);
        let forecasting = Policy {
            forecast: Some(settings),
            shadow: None,
            ..p.clone()
        };
        assert_eq!(shadow, decide(&forecasting, &history, &samples, 2, NOW));
        assert!(shadow.reason.contains("forecast"), "{}", shadow.reason);
        assert_ne!(shadow.desired, reactive.desired, "{shadow:?} {reactive:?}");
    }

    #[test]
    fn recorded_demand_is_a_trace_the_simulator_reads() {
        let base = 1_720_000_000 - 1_720_000_000 % 60;
        let demand = [
            (base + 5, 2.0),
            (base + 35, 4.0),
            (base + 65, 10.0),
            (base + 185, 0.5),
        ];
        let csv = demand_trace(&demand);
        assert_eq!(
            csv,
            "minute,requests\n2024-07-03T09:46,180\n2024-07-03T09:47,600\n2024-07-03T09:49,30\n"
        );
        let trace = parse_trace(&csv).unwrap();
        assert_eq!(
            trace
                .iter()
                .map(|p| (p.minute, p.requests))
                .collect::<Vec<_>>(),
            [(base, 180), (base + 60, 600), (base + 180, 30)]
        );
        assert_eq!(demand_trace(&[]), "minute,requests\n");
    }
}
