//! Tests of the forecast policy: its sentences, scale-in without a fixed
//! window, missing data, the learned margin, the measured boot, monotonicity
//! in the load, and that an exact forecast leaves no time under-provisioned.

use proptest::prelude::*;

use super::tests::policy;
use super::*;

const NOW: u64 = 1_720_000_000;

fn forecasting(boot_s: Option<u64>) -> Policy {
    let mut p = policy();
    p.min = 1;
    p.max = 100;
    p.interval_s = 60;
    p.forecast = Some(ForecastSettings {
        boot_s,
        ..ForecastSettings::default()
    });
    p
}

/// Demand every 60 s for `minutes` before `now`, from `load(minutes ago)`.
fn demand(now: u64, minutes: u64, load: impl Fn(u64) -> f64) -> Vec<DemandPoint> {
    (1..=minutes)
        .rev()
        .map(|ago| DemandPoint {
            at: now - ago * 60,
            load: load(ago),
        })
        .collect()
}

fn history(demand: Vec<DemandPoint>) -> History {
    History {
        demand,
        ..History::default()
    }
}

/// One fresh sample of `load` in total over `n` warm instances.
fn now_sample(load: f64, n: u32) -> Vec<Sample> {
    vec![Sample {
        at: NOW,
        value: load / f64::from(n),
        instances_reporting: n,
        instances_warm: n,
    }]
}

/// A noise pattern with a fixed spread: ±`amp`, repeating every 7 points.
fn wiggle(ago: u64, amp: f64) -> f64 {
    [0.0, 1.0, -1.0, 0.5, -0.5, 0.8, -0.8][(ago % 7) as usize] * amp
}

#[test]
fn steady_load_asks_for_its_forecast_and_says_why() {
    let p = forecasting(Some(120));
    let h = history(demand(NOW, 600, |ago| 230.0 + wiggle(ago, 10.0)));
    let d = decide(&p, &h, &now_sample(230.0, 4), 4, NOW);
    let o = outlook(p.forecast.as_ref().unwrap(), &h, 230.0, NOW, 60);
    assert_eq!(o.horizon_s, 180);
    assert!(o.errors >= MIN_RESIDUALS, "{o:?}");
    assert!(o.margin > 0.0 && o.capacity > 230.0, "{o:?}");
    let need = instances_for(o.capacity, 50.0);
    assert_eq!(d.desired, need, "{}", d.reason);
    assert!(
        d.reason.starts_with(&format!(
            "requests per instance 57.5; forecast {:.0} req/s within 180s (trend, margin",
            o.capacity
        )),
        "{}",
        d.reason
    );
    assert!(
        d.reason.ends_with(&format!("needs {need}: 4 → {need}")),
        "{}",
        d.reason
    );
}

#[test]
fn scales_in_as_soon_as_the_forecast_allows() {
    // An hour at 450 req/s, then the load fell to 60 in the last minutes.
    let p = forecasting(Some(120));
    let h = history(demand(NOW, 120, |ago| if ago > 3 { 450.0 } else { 60.0 }));
    let d = decide(&p, &h, &now_sample(60.0, 10), 10, NOW);
    let reactive = decide(&policy(), &h, &now_sample(60.0, 10), 10, NOW);
    // The smoothed level still remembers 450: some margin is kept, but the
    // count drops at once, where the reactive policy waits out its window.
    assert!(d.desired < 10, "{}", d.reason);
    assert_eq!(reactive.desired, 10, "{}", reactive.reason);
    // Well after the fall the forecast allows the load's own need.
    let later = NOW + 3600;
    let h = history(demand(
        later,
        240,
        |ago| if ago > 63 { 450.0 } else { 60.0 },
    ));
    let d = decide(
        &p,
        &h,
        &[Sample {
            at: later,
            value: 60.0,
            instances_reporting: 1,
            instances_warm: 1,
        }],
        10,
        later,
    );
    assert!(d.desired <= 2, "{}", d.reason);
}

#[test]
fn no_scale_in_on_missing_or_stale_data_or_a_gap() {
    let p = forecasting(Some(120));
    let h = history(demand(NOW, 120, |_| 60.0));
    let stale = [Sample {
        at: NOW - p.stale_after_s() - 1,
        value: 6.0,
        instances_reporting: 10,
        instances_warm: 10,
    }];
    for samples in [&[][..], &stale[..]] {
        let d = decide(&p, &h, samples, 10, NOW);
        assert_eq!(d.desired, 10, "{}", d.reason);
        assert!(d.reason.contains("not scaling in"), "{}", d.reason);
    }
    // Fresh sample, but the history stops 10 minutes ago: hold.
    let h = history(demand(NOW - 600, 120, |_| 60.0));
    let d = decide(&p, &h, &now_sample(60.0, 10), 10, NOW);
    assert_eq!(d.desired, 10, "{}", d.reason);
    assert!(d.reason.contains("has a gap"), "{}", d.reason);
    // A gap does not stop a scale-out.
    let d = decide(&p, &h, &now_sample(900.0, 10), 10, NOW);
    assert!(d.desired > 10, "{}", d.reason);
}

#[test]
fn the_margin_grows_after_under_forecasts() {
    let settings = ForecastSettings {
        boot_s: Some(120),
        ..ForecastSettings::default()
    };
    let calm = history(demand(NOW, 400, |ago| 200.0 + wiggle(ago, 5.0)));
    // The same, but in the last hours the load jumped above the trend now
    // and then: the forecast was short each time.
    let surprised = history(demand(NOW, 400, |ago| {
        200.0 + wiggle(ago, 5.0) + if ago < 240 && ago % 4 == 0 { 60.0 } else { 0.0 }
    }));
    let a = outlook(&settings, &calm, 200.0, NOW, 60);
    let b = outlook(&settings, &surprised, 200.0, NOW, 60);
    assert!(b.margin > a.margin * 1.5, "calm {a:?}, surprised {b:?}");
    assert!(b.capacity > a.capacity);
    // Without enough history the margin is the cautious default.
    let cold = outlook(&settings, &history(Vec::new()), 200.0, NOW, 60);
    assert_eq!(cold.errors, 0);
    assert!(
        (cold.margin - COLD_MARGIN * 200f64.sqrt()).abs() < 1e-6,
        "{cold:?}"
    );
}

#[test]
fn boot_is_measured_when_not_given() {
    let measured = History {
        boots: vec![290, 300, 310, 900, 305],
        ..History::default()
    };
    let unset = ForecastSettings::default();
    assert_eq!(boot_s(&unset, &History::default()), DEFAULT_BOOT_S);
    assert_eq!(boot_s(&unset, &measured), 305);
    let given = ForecastSettings {
        boot_s: Some(90),
        ..unset
    };
    assert_eq!(boot_s(&given, &measured), 90);
    // The simulator measures boots the way the live loop does.
    let trace: Vec<TracePoint> = (0..240u64)
        .map(|m| TracePoint {
            minute: NOW / 60 * 60 + m * 60,
            requests: 600 + m * 60,
        })
        .collect();
    let model = CapacityModel {
        requests_per_instance_per_sec_at_target: 50.0,
        boot_time_s: 300,
    };
    let sim = simulate(&forecasting(None), &trace, 1.0, model, 60);
    assert!(
        sim.decisions
            .iter()
            .any(|d| d.reason.contains("within 360s"))
    );
}

#[test]
fn an_exact_forecast_leaves_no_time_under_provisioned() {
    // A steady rise for 12 hours, then a steady fall: after the cold start
    // the forecast's errors are its steady bias, which the margin learns, and
    // the turn at the top errs on the side of too much. (It starts below
    // one instance's capacity: the simulated fleet starts at the minimum.)
    let trace: Vec<TracePoint> = (0..1440u64)
        .map(|m| TracePoint {
            minute: 1_720_000_020 / 60 * 60 + m * 60,
            requests: 2400 + 45 * m.min(1440 - m),
        })
        .collect();
    let model = CapacityModel {
        requests_per_instance_per_sec_at_target: 50.0,
        boot_time_s: 120,
    };
    let forecast = simulate(&forecasting(Some(120)), &trace, 1.0, model, 60);
    assert_eq!(
        forecast.elasticity.under_timeshare,
        0.0,
        "{}",
        summary(&forecast)
    );
    // The same trace leaves the reactive policy short, a boot late each step up.
    let mut reactive = forecasting(None);
    reactive.forecast = None;
    let late = simulate(&reactive, &trace, 1.0, model, 60);
    assert!(late.elasticity.under_timeshare > 5.0, "{}", summary(&late));
}

proptest! {
    #[test]
    fn more_load_never_asks_for_fewer(
        base in 10.0f64..2000.0,
        noise in 0.0f64..0.5,
        lower in 0.0f64..3000.0,
        extra in 0.0f64..3000.0,
        current in 1u32..60,
    ) {
        let p = forecasting(Some(120));
        let h = history(demand(NOW, 500, |ago| base * (1.0 + wiggle(ago, noise))));
        let low = decide(&p, &h, &now_sample(lower, current), current, NOW);
        let high = decide(&p, &h, &now_sample(lower + extra, current), current, NOW);
        prop_assert!(high.desired >= low.desired, "{low:?} vs {high:?}");
    }

    #[test]
    fn never_below_what_the_current_load_needs(
        base in 10.0f64..2000.0,
        load in 0.0f64..3000.0,
        current in 1u32..60,
    ) {
        let p = forecasting(Some(120));
        let h = history(demand(NOW, 500, |_| base));
        let d = decide(&p, &h, &now_sample(load, current), current, NOW);
        prop_assert!(d.desired >= instances_for(load, p.target).clamp(p.min, p.max), "{d:?}");
    }
}
