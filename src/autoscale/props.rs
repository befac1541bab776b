//! Properties of `decide` over random policies, schedules, samples and
//! histories: bounds, cooldowns, the stabilization window, tolerance,
//! schedules and missing data, for the reactive and the forecast policy.

use proptest::prelude::*;

use super::tests::{policy, schedule, steady};
use super::*;

/// A policy with random bounds, cooldowns and (maybe) a schedule.
fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        1u32..6,
        0u32..15,
        0u64..600,
        0u64..900,
        0u64..300,
        1u64..120,
        any::<bool>(),
        proptest::option::of((0u32..12, proptest::option::of(0u32..25), 0usize..3)),
        any::<bool>(),
    )
        .prop_map(
            |(min, extra, out_cd, in_cd, warmup, interval, predictive, sched, forecast)| {
                let mut p = policy();
                p.min = min;
                p.max = min + extra;
                p.scale_out_cooldown_s = out_cd;
                p.scale_in_cooldown_s = in_cd;
                p.warmup_s = warmup;
                p.interval_s = interval;
                p.predictive = predictive.then(Predictive::default);
                p.forecast = forecast.then(ForecastSettings::default);
                if let Some((smin, smax, which)) = sched {
                    let cron = ["* * * * *", "0 8 * * MON-FRI", "*/7 */3 * * *"][which];
                    let zone = TimeZone::parse_fixed("+02:00").unwrap();
                    let mut rule = schedule(cron, zone, Some(smin), Some(smin + 1));
                    rule.max = smax.map(|m| m.max(smin));
                    p.schedules.push(rule);
                }
                p
            },
        )
}

fn arb_samples(now: u64) -> impl Strategy<Value = Vec<Sample>> {
    proptest::collection::vec((0u64..40, 0.0f64..300.0, 0u32..25, 0u32..25), 0..40).prop_map(
        move |raw| {
            let mut at = now;
            let mut out: Vec<Sample> = raw
                .into_iter()
                .map(|(gap, value, reporting, warm)| {
                    at = at.saturating_sub(gap * 5);
                    Sample {
                        at,
                        value,
                        instances_reporting: reporting,
                        instances_warm: warm.min(reporting),
                    }
                })
                .collect();
            out.reverse();
            out
        },
    )
}

fn arb_history(now: u64) -> impl Strategy<Value = History> {
    proptest::option::of((0u64..2000, 0u32..25, 0u32..25)).prop_map(move |last| History {
        decisions: last
            .map(|(ago, from, to)| DecisionRecord {
                at: now - ago,
                from,
                to,
                reason: String::new(),
            })
            .into_iter()
            .collect(),
        demand: (0..200)
            .map(|i| DemandPoint {
                at: now - 86_400 - 3000 + i * 30,
                load: f64::from(i as u32 % 50) * 10.0,
            })
            .collect(),
        boots: Vec::new(),
    })
}

const PNOW: u64 = 1_720_598_400; // Wednesday 10 July 2024 08:00 UTC

proptest! {
    #[test]
    fn never_outside_the_bounds(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40, skew in 0u64..86_400) {
        let now = PNOW + skew;
        let b = p.bounds_at(now);
        let d = decide(&p, &h, &samples, current, now);
        prop_assert!(d.desired >= b.min && d.desired <= b.max, "{d:?} outside {b:?}");
    }

    #[test]
    fn no_scale_in_during_the_cooldown(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40) {
        // The forecast policy scales in as soon as the forecast allows.
        prop_assume!(p.forecast.is_none());
        let d = decide(&p, &h, &samples, current, PNOW);
        let in_cooldown = h.last_change_at(PNOW).is_some_and(|at| PNOW - at < p.scale_in_cooldown_s);
        let b = p.bounds_at(PNOW);
        if in_cooldown && current <= b.max && b.desired.is_none() {
            prop_assert!(d.desired >= current, "{d:?}");
        }
    }

    #[test]
    fn no_scale_in_below_the_stabilization_window(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40) {
        prop_assume!(p.forecast.is_none());
        let d = decide(&p, &h, &samples, current, PNOW);
        // A schedule's `desired` is the operator's own jump, exempt here.
        let b = p.bounds_at(PNOW);
        if d.desired < current && current <= b.max && b.desired.is_none() {
            for s in samples.iter().filter(|s| s.at + p.scale_in_cooldown_s >= PNOW) {
                if s.instances_reporting > 0 && s.instances_warm > 0 {
                    prop_assert!(d.desired >= needed(&p, s).min(p.bounds_at(PNOW).max), "{d:?} below {s:?}");
                }
            }
        }
    }

    #[test]
    fn constant_load_within_tolerance_never_changes_the_count(p in arb_policy(), factor in -0.099f64..0.099, n in 1u32..20, h in arb_history(PNOW)) {
        let mut p = p;
        p.schedules.clear();
        let current = n.clamp(p.min, p.max);
        let samples = steady(PNOW, 900, p.target * (1.0 + factor), current);
        let mut p_reactive = p.clone();
        p_reactive.predictive = None;
        p_reactive.forecast = None;
        let d = decide(&p_reactive, &h, &samples, current, PNOW);
        prop_assert_eq!(d.desired, current, "{}", d.reason);
    }

    #[test]
    fn a_schedules_minimum_wins_at_its_time(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40, smin in 0u32..30, secs in 0u64..60) {
        let mut p = p;
        // 10:00 at +02:00 is 08:00 UTC, PNOW.
        p.schedules = vec![schedule("0 10 * * *", TimeZone::parse_fixed("+02:00").unwrap(), Some(smin), None)];
        p.max = p.max.max(smin);
        let d = decide(&p, &h, &samples, current, PNOW + secs);
        prop_assert!(d.desired >= smin, "{d:?}");
    }

    #[test]
    fn missing_samples_never_cause_scale_in(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40, late in 0u64..3600) {
        let now = PNOW + p.stale_after_s() + 1 + late;
        let b = p.bounds_at(now);
        // A schedule's `desired` is the operator's own jump, exempt here.
        prop_assume!(b.desired.is_none());
        let d = decide(&p, &h, &samples, current, now);
        if current <= b.max {
            prop_assert!(d.desired >= current, "{d:?}");
        }
        let d = decide(&p, &h, &[], current, now);
        prop_assert!(d.desired >= current.min(b.max));
    }
}
