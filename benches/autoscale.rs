//! Autoscaling benchmarks (a bench binary): `cargo bench --bench autoscale`.
//!
//! Replays `../shared/traces/nasa-1995-07-01-to-14.csv` ×60 with 50 req/s per
//! instance at the target and a 120 s boot time through the blog example's
//! policy (target 50, min 2, max 20, cooldowns 60 s / 300 s, warm-up 120 s,
//! interval 30 s), reactive, with the predictive option and with the forecast
//! policy, and prints the
//! elasticity figures and scale events of each; then times one `decide` call
//! (median of batches) and a whole-fortnight simulation, and the HPA and
//! target-tracking emulations of `simulate --compare` over the fortnight.
//!
//! The peak (405 requests in a minute ×60 = 405 req/s) needs 9 instances, so
//! max = 20 is kept. Writes the timelines and charts to
//! `target/autoscale-bench/` under CARGO_TARGET_DIR (or ./target).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use appgrid::autoscale::{
    CapacityModel, DemandPoint, ForecastSettings, History, Model, Policy, Predictive, Sample,
    Simulation, decide, hpa, minute_rates, parse_trace, simulate, summary, svg_chart,
    target_tracking, timeline_csv,
};
use appgrid::manifest::Metric;

const SCALE: f64 = 60.0;
const STEP_S: u64 = 10;

fn policy() -> Policy {
    Policy {
        metric: Metric::RequestsPerInstance,
        target: 50.0,
        min: 2,
        max: 20,
        scale_out_cooldown_s: 60,
        scale_in_cooldown_s: 300,
        warmup_s: 120,
        interval_s: 30,
        tolerance: appgrid::autoscale::DEFAULT_TOLERANCE,
        schedules: Vec::new(),
        predictive: None,
        forecast: None,
        shadow: None,
    }
}

fn main() -> ExitCode {
    // `APPGRID_SHARED` names `shared/` when it is not beside the checkout (a worktree).
    let shared = std::env::var_os("APPGRID_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = shared.join("traces/nasa-1995-07-01-to-14.csv");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read the trace {}: {e}", path.display());
            eprintln!("  the autoscale benchmark needs ../shared/traces/ beside the repository");
            return ExitCode::FAILURE;
        }
    };
    let trace = match parse_trace(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let model = CapacityModel {
        requests_per_instance_per_sec_at_target: 50.0,
        boot_time_s: 120,
    };
    let reactive = policy();
    let forecast = Policy {
        forecast: Some(ForecastSettings {
            boot_s: Some(model.boot_time_s),
            ..ForecastSettings::default()
        }),
        ..policy()
    };
    let predictive = Policy {
        predictive: Some(Predictive {
            lookahead_s: model.boot_time_s + reactive.interval_s,
            ..Predictive::default()
        }),
        ..policy()
    };
    println!(
        "trace: {} minutes ×{SCALE}, capacity {} req/s per instance at the target, boot {} s, step {STEP_S} s",
        trace.len(),
        model.requests_per_instance_per_sec_at_target,
        model.boot_time_s
    );
    let out_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("autoscale-bench");
    let _ = std::fs::create_dir_all(&out_dir);
    for (name, p) in [
        ("reactive", &reactive),
        ("predictive", &predictive),
        ("forecast", &forecast),
    ] {
        let started = Instant::now();
        let sim = simulate(p, &trace, SCALE, model, STEP_S);
        let took = started.elapsed();
        println!(
            "\n== {name} (simulated in {took:.2?}) ==\n{}",
            summary(&sim)
        );
        write(&out_dir, name, &sim);
    }

    // The emulations `simulate --compare` runs, over the fortnight.
    let (_, rates) = minute_rates(&trace, SCALE);
    let emulated = Model {
        per_instance: model.requests_per_instance_per_sec_at_target,
        boot_s: model.boot_time_s,
        min: reactive.min,
        max: reactive.max,
    };
    for (name, run) in [
        ("HPA", hpa as fn(&[f64], Model) -> _),
        ("target tracking", target_tracking),
    ] {
        let started = Instant::now();
        let e = std::hint::black_box(run(&rates, emulated));
        println!(
            "emulated {name} over the fortnight in {:.2?} ({} scale events)",
            started.elapsed(),
            e.events
        );
    }

    // One decide call: a fortnight of demand history and a full window of samples.
    let now = 1_000_000_000;
    let demand: Vec<DemandPoint> = (0..14 * 2880)
        .map(|i| DemandPoint {
            at: now - 14 * 86_400 + i * 30,
            load: 200.0 + 100.0 * ((i as f64) / 458.0).sin(),
        })
        .collect();
    let history = History {
        decisions: Vec::new(),
        demand,
        boots: Vec::new(),
    };
    let samples: Vec<Sample> = (0..12)
        .map(|i| Sample {
            at: now - 330 + i * 30,
            value: 30.0 + i as f64,
            instances_reporting: 6,
            instances_warm: 6,
        })
        .collect();
    for (name, p) in [
        ("reactive", &reactive),
        ("predictive", &predictive),
        ("forecast", &forecast),
    ] {
        let median = median_per_call(|| {
            std::hint::black_box(decide(p, &history, &samples, 6, now));
        });
        println!("decide ({name}): median {median:.2?} per call");
    }
    ExitCode::SUCCESS
}

/// Median over 101 batches of 1000 calls, per call.
fn median_per_call(mut f: impl FnMut()) -> Duration {
    let mut batches: Vec<Duration> = (0..101)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..1000 {
                f();
            }
            started.elapsed() / 1000
        })
        .collect();
    batches.sort();
    batches[batches.len() / 2]
}

fn write(dir: &Path, name: &str, sim: &Simulation) {
    let csv = dir.join(format!("nasa-{name}.csv"));
    let svg = dir.join(format!("nasa-{name}.svg"));
    let title = format!("NASA July 1995 ×60, {name}: demand vs supply (instances)");
    if std::fs::write(&csv, timeline_csv(sim)).is_ok()
        && std::fs::write(&svg, svg_chart(sim, &title)).is_ok()
    {
        println!("wrote {} and {}", csv.display(), svg.display());
    }
}
