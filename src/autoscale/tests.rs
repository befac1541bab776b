//! Tests of the autoscaling core: exact reasons, cron and time zones, the
//! trace reader, elasticity, the simulator, and properties of `decide`.

use super::*;
use crate::manifest::Metric;

const BERLIN: &str = "/usr/share/zoneinfo/Europe/Berlin";

pub(super) fn policy() -> Policy {
    Policy {
        metric: Metric::RequestsPerInstance,
        target: 50.0,
        min: 2,
        max: 20,
        scale_out_cooldown_s: 60,
        scale_in_cooldown_s: 300,
        warmup_s: 120,
        interval_s: 30,
        tolerance: DEFAULT_TOLERANCE,
        schedules: Vec::new(),
        predictive: None,
        forecast: None,
        shadow: None,
    }
}

fn sample(at: u64, value: f64, n: u32) -> Sample {
    Sample {
        at,
        value,
        instances_reporting: n,
        instances_warm: n,
    }
}

/// Samples every 30 s over the last `span` seconds up to `now`, all `value`.
pub(super) fn steady(now: u64, span: u64, value: f64, n: u32) -> Vec<Sample> {
    (0..=span / 30)
        .rev()
        .map(|k| sample(now - k * 30, value, n))
        .collect()
}

fn berlin() -> TimeZone {
    let bytes = std::fs::read(BERLIN).expect("tzdata is installed");
    TimeZone::from_tzif("Europe/Berlin", &bytes).expect("valid TZif")
}

fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
    date_days(y, mo, d).expect("a date") * 86_400 + h * 3600 + mi * 60
}

const NOW: u64 = 1_720_000_000;

#[test]
fn reason_for_proportional_scale_out() {
    let d = decide(
        &policy(),
        &History::default(),
        &[sample(NOW, 78.0, 4)],
        4,
        NOW,
    );
    assert_eq!(d.desired, 7);
    assert_eq!(
        d.reason,
        "requests per instance 78.0 > target 50 (±10%): 4 → 7"
    );
}

#[test]
fn reason_within_tolerance() {
    let d = decide(
        &policy(),
        &History::default(),
        &[sample(NOW, 52.1, 4)],
        4,
        NOW,
    );
    assert_eq!(
        d,
        Decision {
            desired: 4,
            reason: "within tolerance (52.1 vs 50): stay at 4".into()
        }
    );
}

#[test]
fn reason_for_missing_samples() {
    let d = decide(
        &policy(),
        &History::default(),
        &[sample(NOW - 90, 5.0, 4)],
        4,
        NOW,
    );
    assert_eq!(d.reason, "no samples for 90s: not scaling in");
    assert_eq!(d.desired, 4);
    let d = decide(&policy(), &History::default(), &[], 4, NOW);
    assert_eq!(d.reason, "no samples yet: not scaling in");
}

#[test]
fn reasons_for_cautious_scale_in() {
    let p = policy();
    let samples = steady(NOW, 600, 20.0, 8);
    let d = decide(&p, &History::default(), &samples, 8, NOW);
    assert_eq!(
        d.reason,
        "requests per instance 20.0 < target 50 (±10%), stabilized over 300s: 8 → 4"
    );
    let mut peaked = samples.clone();
    peaked[15].value = 40.0; // 200 s ago: needed 7
    let d = decide(&p, &History::default(), &peaked, 8, NOW);
    assert_eq!(d.desired, 7);
    let history = History {
        decisions: vec![DecisionRecord {
            at: NOW - 100,
            from: 6,
            to: 8,
            reason: String::new(),
        }],
        demand: Vec::new(),
        boots: Vec::new(),
    };
    let d = decide(&p, &history, &samples, 8, NOW);
    assert_eq!(
        d.reason,
        "requests per instance 20.0 < target 50 (±10%), but the scale-in cooldown (300s) \
         has 200s left: stay at 8"
    );
    let d = decide(&p, &History::default(), &steady(NOW, 120, 20.0, 8), 8, NOW);
    assert_eq!(
        d.reason,
        "requests per instance 20.0 < target 50 (±10%), but samples do not cover the 300s \
         stabilization window: not scaling in"
    );
}

#[test]
fn warming_instances_count_against_scale_out_but_block_scale_in() {
    let p = policy();
    // 4 serving at 78/s each while 3 more boot: 312 req/s needs 7, and 7 are there.
    let s = Sample {
        at: NOW,
        value: 78.0,
        instances_reporting: 4,
        instances_warm: 4,
    };
    let d = decide(&p, &History::default(), &[s], 7, NOW);
    assert_eq!(
        d.reason,
        "requests per instance 78.0 > target 50 (±10%), but 7 instances cover the load \
         (3 still warming up): stay at 7"
    );
    let mut low = steady(NOW, 600, 10.0, 7);
    low.last_mut().unwrap().instances_warm = 5;
    let d = decide(&p, &History::default(), &low, 7, NOW);
    assert_eq!(d.desired, 7);
    assert!(
        d.reason
            .ends_with("2 instances are still warming up: not scaling in"),
        "{}",
        d.reason
    );
}

#[test]
fn bounds_hold_whatever_the_data() {
    let d = decide(&policy(), &History::default(), &[], 1, NOW);
    assert_eq!(d.desired, 2);
    assert_eq!(d.reason, "below the minimum 2: 1 → 2");
    let d = decide(
        &policy(),
        &History::default(),
        &[sample(NOW, 500.0, 10)],
        10,
        NOW,
    );
    assert_eq!(
        d.reason,
        "requests per instance 500.0 > target 50 (±10%): 10 → 20 (the maximum)"
    );
}

pub(super) fn schedule(
    cron: &str,
    zone: TimeZone,
    min: Option<u32>,
    desired: Option<u32>,
) -> ScheduleRule {
    ScheduleRule {
        cron: CronExpr::parse(cron).unwrap(),
        zone,
        min,
        max: None,
        desired,
    }
}

#[test]
fn schedule_in_berlin_raises_the_minimum_at_eight_local() {
    let mut p = policy();
    p.schedules = vec![
        schedule("0 8 * * MON-FRI", berlin(), Some(6), None),
        schedule("0 18 * * MON-FRI", berlin(), Some(2), None),
    ];
    // Wednesday 10 July 2024, 08:00 CEST = 06:00 UTC.
    let eight = utc(2024, 7, 10, 6, 0) as u64;
    let d = decide(&p, &History::default(), &[sample(eight, 50.0, 2)], 2, eight);
    assert_eq!(
        d.reason,
        "below the minimum 6 (schedule `0 8 * * MON-FRI` (Europe/Berlin)): 2 → 6"
    );
    let before = eight - 60;
    assert_eq!(
        decide(
            &p,
            &History::default(),
            &[sample(before, 50.0, 2)],
            2,
            before
        )
        .desired,
        2
    );
    // In winter 08:00 CET is 07:00 UTC.
    let winter = utc(2024, 1, 10, 7, 0);
    assert_eq!(p.schedules[0].latest_start(winter), Some(winter));
    assert_eq!(
        p.schedules[0].latest_start(winter - 1),
        Some(utc(2024, 1, 9, 7, 0))
    );
    // Monday 07:00 local: Friday's start.
    assert_eq!(
        p.schedules[0].latest_start(utc(2024, 7, 8, 5, 0)),
        Some(utc(2024, 7, 5, 6, 0))
    );
}

#[test]
fn schedule_desired_is_a_jump_at_its_start() {
    let mut p = policy();
    p.schedules = vec![schedule("30 9 * * *", TimeZone::utc(), None, Some(5))];
    let at = utc(2024, 7, 10, 9, 30) as u64;
    let d = decide(&p, &History::default(), &[sample(at, 50.0, 2)], 2, at);
    assert_eq!(
        d.reason,
        "schedule `30 9 * * *` (UTC) sets desired 5: 2 → 5"
    );
    let later = at + 30;
    assert_eq!(
        decide(&p, &History::default(), &[sample(later, 50.0, 2)], 2, later).desired,
        2
    );
}

#[test]
fn berlin_dst_transitions() {
    let z = berlin();
    for (at, before, after) in [
        (1_711_846_800, 3600, 7200), // 2024-03-31 01:00 UTC
        (1_729_990_800, 7200, 3600), // 2024-10-27 01:00 UTC
        (846_378_000, 7200, 3600),   // 1996-10-27
        (2_216_250_000, 3600, 7200), // 2040-03-25, from the footer rule
        (2_234_998_800, 7200, 3600), // 2040-10-28, from the footer rule
    ] {
        assert_eq!(
            (z.offset_at(at - 1), z.offset_at(at)),
            (before, after),
            "{at}"
        );
    }
    // 02:30 on 31 March 2024 never happens: it is the end of the gap, 01:00 UTC.
    assert_eq!(z.from_local(utc(2024, 3, 31, 2, 30)), 1_711_846_800);
    // 02:30 on 27 October 2024 happens twice: the first, 00:30 UTC.
    assert_eq!(
        z.from_local(utc(2024, 10, 27, 2, 30)),
        utc(2024, 10, 27, 0, 30)
    );
    assert_eq!(z.to_local(utc(2024, 7, 1, 12, 0)), utc(2024, 7, 1, 14, 0));
}

#[test]
fn cron_in_berlin_across_dst() {
    let daily = schedule("30 2 * * *", berlin(), Some(3), None);
    // Spring forward: 02:30 is skipped and runs when the gap ends.
    assert_eq!(daily.latest_start(1_711_846_800 + 600), Some(1_711_846_800));
    // Fall back: 02:30 runs once, at its first occurrence.
    let second = utc(2024, 10, 27, 1, 45); // 02:45 CET, after the repeat
    assert_eq!(daily.latest_start(second), Some(utc(2024, 10, 27, 0, 30)));
}

#[test]
fn fixed_zones() {
    for (name, offset) in [
        ("UTC", 0),
        ("+02:00", 7200),
        ("-0530", -19_800),
        ("+2", 7200),
        ("Etc/GMT-2", 7200),
        ("Etc/GMT+5", -18_000),
    ] {
        assert_eq!(
            TimeZone::parse_fixed(name).map(|z| z.offset_at(0)),
            Some(offset),
            "{name}"
        );
    }
    for bad in ["+25:00", "Europe/Berlin", "2", "+02:", "Etc/GMT-15"] {
        assert_eq!(TimeZone::parse_fixed(bad), None, "{bad}");
    }
    assert_eq!(
        TimeZone::load("Mars/Olympus_Mons"),
        Err(TzError::UnknownName("Mars/Olympus_Mons".into()))
    );
    assert_eq!(TimeZone::load("Europe/Berlin"), Ok(berlin()));
    assert!(matches!(
        TimeZone::from_tzif("X", b"TZif2 garbage"),
        Err(TzError::Invalid { .. })
    ));
}

#[test]
fn cron_fields() {
    let at = |e: &str, y, mo, d, h, mi| CronExpr::parse(e).unwrap().matches(utc(y, mo, d, h, mi));
    // 10 July 2024 is a Wednesday.
    assert!(at("*/15 0-6,18-23 * * *", 2024, 7, 10, 18, 45));
    assert!(!at("*/15 0-6,18-23 * * *", 2024, 7, 10, 12, 45));
    assert!(at("0 8 * jan-mar,JUL wed", 2024, 7, 10, 8, 0));
    assert!(at("0 8 * * 3", 2024, 7, 10, 8, 0));
    assert!(at("0 0 * * 7", 2024, 7, 14, 0, 0)); // 7 is Sunday too
    assert!(at("0-30/10 * * * *", 2024, 7, 10, 3, 20));
    assert!(!at("0-30/10 * * * *", 2024, 7, 10, 3, 40));
    // Vixie: both restricted → either matches; one starts with `*` → both must.
    assert!(at("0 0 13 * FRI", 2024, 7, 12, 0, 0)); // a Friday, not the 13th
    assert!(at("0 0 13 * FRI", 2024, 7, 13, 0, 0)); // the 13th, a Saturday
    assert!(!at("0 0 */2 * FRI", 2024, 7, 12, 0, 0)); // Friday the 12th: even
    assert!(at("0 0 */2 * FRI", 2024, 7, 19, 0, 0)); // Friday the 19th: odd
    assert!(CronExpr::parse("0 8 * *").is_err());
    assert!(CronExpr::parse("60 8 * * *").is_err());
    assert!(CronExpr::parse("5/10 8 * * *").is_err());
    assert!(CronExpr::parse("0 8 * * 5-1").is_err());
}

#[test]
fn traces_parse_with_line_numbers() {
    let t = parse_trace("minute,requests\n1995-07-01T00:00,42\n1995-07-01T00:01,61\n").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].minute, 804_556_800);
    assert_eq!(t[1].requests, 61);
    assert_eq!(
        parse_trace("minute,requests\n1995-07-01T00:00,42\n1995-07-01T00:01,x\n"),
        Err(TraceError::Line {
            line: 3,
            reason: "\"x\" is not a count of requests".into()
        })
    );
    assert_eq!(
        parse_trace("1995-07-01T00:01,1\n1995-07-01T00:00,1")
            .unwrap_err()
            .to_string(),
        "line 2: 1995-07-01T00:00 is not after the previous row's minute"
    );
    assert_eq!(
        parse_trace("1995-02-30T00:00,1").unwrap_err().to_string(),
        "line 1: \"1995-02-30T00:00\" is not a time like 1995-07-01T00:00"
    );
    assert_eq!(parse_trace("minute,requests\n"), Err(TraceError::Empty));
}

#[test]
fn elasticity_by_hand() {
    // Steps: under by 1 of 2, exact, over by 2 of 2, exact.
    let e = elasticity(&[2, 2, 2, 4], &[1, 2, 4, 4]);
    assert_eq!(e.under_accuracy, 100.0 * 0.5 / 4.0);
    assert_eq!(e.over_accuracy, 100.0 * 1.0 / 4.0);
    assert_eq!(e.under_timeshare, 25.0);
    assert_eq!(e.over_timeshare, 25.0);
    // Δs: +1 +2 0; Δd: 0 0 +2 → all three steps differ.
    assert_eq!(e.instability, 100.0);
    let calm = elasticity(&[1, 2, 3], &[1, 2, 3]);
    assert_eq!((calm.under_timeshare, calm.instability), (0.0, 0.0));
}

fn ramp_trace() -> Vec<TracePoint> {
    // An hour at 30 req/s, an hour at 300 req/s, an hour at 30 req/s.
    (0..180u64)
        .map(|m| TracePoint {
            minute: 804_556_800 + m * 60,
            requests: if (60..120).contains(&m) {
                300 * 60
            } else {
                30 * 60
            },
        })
        .collect()
}

#[test]
fn simulator_follows_a_step_with_boot_delay() {
    let model = CapacityModel {
        requests_per_instance_per_sec_at_target: 50.0,
        boot_time_s: 120,
    };
    let sim = simulate(&policy(), &ramp_trace(), 1.0, model, 10);
    assert_eq!(sim.timeline.len(), 180 * 6);
    let at = |minute: usize| sim.timeline[minute * 6];
    assert_eq!((at(30).demand_instances, at(30).supplied_instances), (1, 2));
    assert_eq!(at(60).demand_instances, 6);
    assert_eq!(
        at(60).supplied_instances,
        2,
        "new instances are still booting"
    );
    assert_eq!(at(90).supplied_instances, 6);
    assert_eq!(
        at(170).supplied_instances,
        2,
        "scaled back in after the surge"
    );
    assert!(sim.events >= 2);
    assert!(sim.elasticity.under_timeshare > 0.0);
    let csv = timeline_csv(&sim);
    assert!(csv.starts_with("time,demand,supplied,desired\n1995-07-01T00:00:00,1,2,2\n"));
    let svg = svg_chart(&sim, "ramp & <test>");
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains("ramp &amp; &lt;test&gt;") && svg.ends_with("</svg>\n"));
    assert!(summary(&sim).contains("scale events"));
}

#[test]
fn prediction_scales_out_before_a_daily_rise() {
    let p = Predictive {
        lookahead_s: 300,
        smoothing_s: 120,
    };
    // Yesterday the load went from 100 to 400 at 12:00.
    let noon = 2 * 86_400 + 12 * 3600;
    let demand: Vec<DemandPoint> = (0..2 * 2880)
        .map(|i| {
            let at = 86_400 + i * 30;
            let load = if (at % 86_400) >= 12 * 3600 && (at % 86_400) < 14 * 3600 {
                400.0
            } else {
                100.0
            };
            DemandPoint { at, load }
        })
        .filter(|d| d.at < noon - 240)
        .collect();
    let now = noon - 240;
    let f = forecast(&p, &demand, now).unwrap();
    assert_eq!(f.basis, "daily pattern");
    assert_eq!(f.load, 300.0, "400/100 capped at ×3: {f:?}");
    let mut pol = policy();
    pol.predictive = Some(p);
    let history = History {
        decisions: Vec::new(),
        demand,
        boots: Vec::new(),
    };
    let d = decide(&pol, &history, &[sample(now, 50.0, 2)], 2, now);
    assert_eq!(
        d,
        Decision {
            desired: 6,
            reason: "predicted 300 req/s within 300s (daily pattern) needs 6: 2 → 6".into()
        }
    );
    // Never below the reactive decision.
    let d = decide(&pol, &history, &[sample(now, 400.0, 2)], 2, now);
    assert_eq!(d.desired, 16);
}

#[test]
fn policy_from_the_manifest() {
    let a = crate::manifest::Autoscale {
        metric: Metric::RequestsPerInstance,
        target: 50.0,
        min: 2,
        max: 20,
        scale_out_cooldown: std::time::Duration::from_secs(60),
        scale_in_cooldown: std::time::Duration::from_secs(300),
        warmup: std::time::Duration::from_secs(120),
        interval: std::time::Duration::from_secs(30),
        schedule: vec![crate::manifest::Schedule {
            cron: "0 8 * * MON-FRI".into(),
            timezone: "Europe/Berlin".into(),
            min: Some(6),
            max: None,
            desired: None,
        }],
        predictive: true,
        policy: crate::manifest::PolicyKind::Reactive,
        boot: None,
        forecast_quantile: None,
        forecast_only: false,
        replicas: None,
    };
    let p = Policy::load(&a).unwrap();
    assert!(
        p.predictive.is_some(),
        "`predictive = true` turns the option on"
    );
    assert_eq!(
        p.schedules[0].label(),
        "schedule `0 8 * * MON-FRI` (Europe/Berlin)"
    );
    assert_eq!((p.scale_in_cooldown_s, p.interval_s), (300, 30));
    let err = Policy::from_autoscale(&a, |n| Err(TzError::UnknownName(n.into()))).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("schedule 0: unknown time zone \"Europe/Berlin\"")
    );
}

/// `forecast_only = true`: the manifest's forecast settings go to the shadow;
/// the acting policy is the reactive one, whatever `policy` says.
#[test]
fn forecast_only_makes_the_forecast_a_shadow() {
    let text = |extra: &str| {
        format!(
            "[app]\nname = \"blog\"\n[provider]\nkind = \"local\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 1\n\
             [load_balancer]\ninstance_type = \"t3.small\"\n\
             [autoscale]\nmetric = \"requests_per_instance\"\ntarget = 5\nmin = 1\nmax = 3\n{extra}"
        )
    };
    let load = |extra: &str| {
        crate::manifest::parse(std::path::Path::new("appgrid.toml"), &text(extra))
            .map(|m| m.autoscale.unwrap())
    };
    let a = load("policy = \"forecast\"\nboot = \"90s\"\nforecast_only = true\n").unwrap();
    assert!(a.forecast_only);
    let p = Policy::load(&a).unwrap();
    assert_eq!(p.forecast, None);
    assert_eq!(
        p.shadow,
        Some(ForecastSettings {
            boot_s: Some(90),
            ..ForecastSettings::default()
        })
    );
    let p = Policy::load(&load("forecast_only = true\n").unwrap()).unwrap();
    assert_eq!(
        (p.forecast, p.shadow),
        (None, Some(ForecastSettings::default()))
    );
    let p = Policy::load(&load("policy = \"forecast\"\n").unwrap()).unwrap();
    assert!(p.forecast.is_some() && p.shadow.is_none());
    let e = load("forecast_only = \"yes\"\n").unwrap_err().to_string();
    assert!(e.contains("forecast_only"), "{e}");
}
