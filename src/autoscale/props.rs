//! Properties of `decide` over random policies, schedules, samples and
//! histories: bounds, cooldowns, the stabilization window, tolerance,
//! schedules (minimum, one-time `desired`) and missing data (stale, no warm
//! reading, a gap in the forecast's history), for the reactive and the
//! forecast policy; an exact forecast is never short in simulation; the
//! HPA and target-tracking emulations stay within their bounds.

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

/// A demand history every `step` seconds up to `now` with a hole of `gap`
/// seconds ending `end_ago` seconds before `now`.
fn holed_history(now: u64, step: u64, gap: u64, end_ago: u64, load: f64) -> History {
    let demand = (1..=600u64)
        .rev()
        .map(|k| now - k * step)
        .filter(|&at| !(now - end_ago - gap < at && at < now - end_ago))
        .map(|at| DemandPoint { at, load })
        .collect();
    History {
        demand,
        ..History::default()
    }
}

proptest! {
    #[test]
    fn no_scale_in_without_a_warm_reading(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40, value in 0.0f64..300.0, reporting in 0u32..25) {
        // The latest reading is fresh but no instance past warm-up made it.
        let mut samples = samples;
        samples.retain(|s| s.at < PNOW);
        samples.push(Sample { at: PNOW, value, instances_reporting: reporting, instances_warm: 0 });
        let b = p.bounds_at(PNOW);
        prop_assume!(b.desired.is_none());
        let d = decide(&p, &h, &samples, current, PNOW);
        if current <= b.max {
            prop_assert!(d.desired >= current, "{d:?}");
        }
    }

    #[test]
    fn the_forecast_never_scales_in_over_a_gap_in_its_history(
        load in 0.0f64..100.0,
        current in 2u32..20,
        gap_steps in 3u64..20,
        end_ago in 0u64..150,
        quantile in 0.5f64..0.99,
    ) {
        // Fresh, low load now; but the demand history, every 30 s, has a hole
        // of more than the stale limit (60 s) within the horizon (30 s + boot).
        let mut p = super::tests::policy();
        p.min = 1;
        p.forecast = Some(ForecastSettings { boot_s: Some(120), quantile });
        let h = holed_history(PNOW, 30, gap_steps * 30, end_ago, load);
        let samples = super::tests::steady(PNOW, 600, load / f64::from(current), current);
        let d = decide(&p, &h, &samples, current, PNOW);
        prop_assert!(d.desired >= current, "{d:?}");
        // Without the hole the same low load gives servers back.
        let whole = holed_history(PNOW, 30, 0, end_ago, load);
        let d = decide(&p, &whole, &samples, current, PNOW);
        prop_assert!(d.desired < current || instances_for(load * 1.5, p.target) >= current, "{d:?}");
    }

    #[test]
    fn a_schedules_desired_is_set_when_it_starts(p in arb_policy(), samples in arb_samples(PNOW), h in arb_history(PNOW), current in 0u32..40, desired in 0u32..30, secs in 0u64..30) {
        let mut p = p;
        // 10:00 at +02:00 is 08:00 UTC, PNOW; within the first interval.
        p.interval_s = p.interval_s.max(30);
        p.schedules = vec![schedule("0 10 * * *", TimeZone::parse_fixed("+02:00").unwrap(), None, Some(desired))];
        let b = p.bounds_at(PNOW + secs);
        let jump = desired.clamp(b.min, b.max);
        // Already there, the pass goes on as usual (within the bounds).
        prop_assume!(jump != current);
        let d = decide(&p, &h, &samples, current, PNOW + secs);
        prop_assert_eq!(d.desired, jump, "{}", d.reason);
    }

    #[test]
    fn the_emulations_stay_within_the_bounds(rates in proptest::collection::vec(0.0f64..2000.0, 1..120), min in 1u32..4, extra in 0u32..20, boot in 0u64..400) {
        let model = Model { per_instance: 50.0, boot_s: boot, min, max: min + extra };
        for e in [hpa(&rates, model), target_tracking(&rates, model)] {
            prop_assert_eq!(e.supply.len(), rates.len());
            // Removals are immediate; what boots is below the maximum too.
            prop_assert!(e.supply.iter().all(|&s| s <= model.max), "{:?}", e.supply);
            prop_assert!(e.supply.iter().skip((boot as usize).div_ceil(60) + 1).all(|&s| s >= model.min), "{:?}", e.supply);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn an_exact_forecast_leaves_no_time_under_provisioned(
        start in 400u64..6000,
        rise in 0u64..60,
        fall in 0u64..60,
        turn in 300u64..900,
    ) {
        // Noiseless load (requests a minute) rising steadily, then falling:
        // the trend the forecast models, so after its cold start it is never
        // short. Its first hour is not scored: the margin is not learned yet.
        let minute0 = 1_720_000_020 / 60 * 60;
        let trace: Vec<TracePoint> = (0..1200u64)
            .map(|m| TracePoint {
                minute: minute0 + m * 60,
                requests: (start + rise * m.min(turn)).saturating_sub(fall * m.saturating_sub(turn)).max(60),
            })
            .collect();
        let mut p = super::tests::policy();
        p.min = 1;
        p.max = 1000;
        p.interval_s = 60;
        p.forecast = Some(ForecastSettings { boot_s: Some(120), ..ForecastSettings::default() });
        let model = CapacityModel { requests_per_instance_per_sec_at_target: 50.0, boot_time_s: 120 };
        let sim = simulate(&p, &trace, 1.0, model, 60);
        let short: Vec<&Row> = sim.timeline.iter().skip(60).filter(|r| r.supplied_instances < r.demand_instances).collect();
        prop_assert!(short.is_empty(), "{} short minutes, first {:?}", short.len(), short.first());
    }
}
