//! Issue 10: apply through a faulty EC2 API (throttling, 5xx, lost answers,
//! resets, delays), with and without EC2's ClientToken idempotency. Every
//! trial: exit 0 ⇒ exactly the wanted machines at moto and an empty re-plan;
//! a failed apply leaves a state the next apply finishes from, with nothing
//! duplicated. A handful of seeds here; `cargo bench --bench faults` runs
//! hundreds and prints the figures in BENCHMARKS.md.

use super::fault_trials::{Trial, live_addresses, run_trial, wanted};
use super::faultproxy::Faults;
use super::moto::Moto;

const WEB: u32 = 14; // 18 machines, the issue's app

fn check(t: &Trial) {
    let why = format!(
        "seed {} token {}: exit {:?}\nafter apply {:?}\n{}",
        t.seed, t.client_token, t.exit, t.after_apply, t.stderr
    );
    if t.exit == Some(0) {
        assert_eq!(
            t.after_apply, t.wanted,
            "exit 0 but not exactly the wanted machines: {why}"
        );
        assert_eq!(t.orphans(), 0, "{why}");
    } else {
        // Failed: no duplicate outlives it either, and nothing is lost.
        assert_eq!(t.duplicates(), 0, "{why}");
        assert!(t.stderr.contains("records exactly what exists"), "{why}");
    }
    assert_eq!(t.settled, t.wanted, "{why}");
    assert_eq!(t.replan, Some(0), "re-plan not empty: {why}");
}

#[test]
fn seeded_faulty_applies_in_both_token_modes_leave_exactly_the_wanted_machines() {
    let moto = Moto::dedicated();
    let runs: Vec<(u64, bool)> = vec![(1, true), (2, false), (3, true), (4, false)];
    let trials: Vec<Trial> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|&(seed, token)| {
                let endpoint = moto.endpoint.clone();
                s.spawn(move || {
                    let name = format!("itfault{seed}");
                    let dir = super::cli::scratch(&name);
                    run_trial(&endpoint, &dir, &name, WEB, Faults::issue_10(seed, token))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for t in &trials {
        check(t);
        eprintln!(
            "seed {} token {}: exit {:?} in {:.1}s, {} requests, faults {:?}",
            t.seed,
            t.client_token,
            t.exit,
            t.elapsed.as_secs_f64(),
            t.requests().values().sum::<u64>(),
            t.stats.get("RunInstances")
        );
    }
    // The proxy did inject what the trials claim to survive.
    let lost: u64 = trials
        .iter()
        .flat_map(|t| t.stats.values())
        .map(|k| k.get("lost").copied().unwrap_or(0))
        .sum();
    assert!(lost > 0, "no lost answer was injected");
}

/// Without faults: O(zones × roles) RunInstances, no CreateTags, and the
/// whole apply's calls counted (the figures in BENCHMARKS.md).
#[test]
fn an_apply_makes_no_call_per_instance() {
    let moto = Moto::dedicated();
    let name = "itcalls";
    let dir = super::cli::scratch(name);
    let t = run_trial(
        &moto.endpoint,
        &dir,
        name,
        WEB,
        Faults {
            throttle: 0.0,
            error: 0.0,
            lost: 0.0,
            reset: 0.0,
            delay: 0.0,
            max_delay: std::time::Duration::ZERO,
            seed: 0,
            client_token: true,
        },
    );
    assert_eq!(t.exit, Some(0), "{}", t.stderr);
    assert_eq!(live_addresses(&moto.endpoint, name), wanted(WEB));
    let r = t.requests();
    eprintln!("calls for 18 machines: {r:?}");
    assert_eq!(r.get("CreateTags"), None, "{r:?}");
    // Two zones; web, lb, db.primary, db.replica, cache: at most one launch per (zone, role).
    assert!(r["RunInstances"] <= 2 * 5, "{r:?}");
    // One lookup per launch, and the final listing.
    assert!(
        r["DescribeInstances"] <= 2 * r["RunInstances"] + 1 + 2 * 5,
        "{r:?}"
    );
}
