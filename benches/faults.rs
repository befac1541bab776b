//! Issue 10's soak: hundreds of `appgrid apply` trials of an 18-machine app
//! through the fault proxy in front of moto, in both token modes, and the
//! figures BENCHMARKS.md reports (trials, exits, duplicates, orphans, faults
//! injected per action, requests per apply).
//!
//!     cargo bench --profile dev --bench faults -- [TRIALS_PER_MODE] [CONCURRENCY]
//!
//! (defaults 100 and 4; a moto server per worker). The dev profile is enough: the time is the apply's
//! waits and moto's, not this program's. Exits 1 if any trial broke the rule
//! "exit 0 ⇒ exactly the wanted machines, empty re-plan".
//!
//! It borrows the integration tests' moto harness, which uses `unsafe` for
//! pre_exec (the server dies with its parent).
#![allow(unsafe_code)]

#[path = "../tests/it/fault_trials.rs"]
#[allow(dead_code)]
mod fault_trials;
#[path = "../tests/it/faultproxy.rs"]
mod faultproxy;
#[path = "../tests/it/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::collections::BTreeMap;
use std::sync::Mutex;

use fault_trials::{Trial, run_trial};
use faultproxy::Faults;

const WEB: u32 = 14;

/// Wipe a moto server (`POST /moto-api/reset`).
fn reset(endpoint: &str) {
    use std::io::{Read, Write};
    let addr = endpoint.strip_prefix("http://").unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "moto reset: {answer}");
}

/// `calls`: one apply each of 18 and 1,000 machines, no faults; the HTTP
/// requests per EC2 action.
fn calls() {
    let moto = moto::Moto::dedicated();
    let base = std::env::temp_dir().join(format!("appgrid-calls-{}", std::process::id()));
    for web in [14u32, 996] {
        let name = format!("calls{web}");
        let dir = base.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let quiet = Faults {
            throttle: 0.0,
            error: 0.0,
            lost: 0.0,
            reset: 0.0,
            delay: 0.0,
            max_delay: std::time::Duration::ZERO,
            seed: 0,
            client_token: true,
        };
        let t = run_trial(&moto.endpoint, &dir, &name, web, quiet);
        let r = t.requests();
        println!(
            "{} machines: exit {:?} in {:.1} s, {} requests: {r:?}",
            web + 4,
            t.exit,
            t.elapsed.as_secs_f64(),
            r.values().sum::<u64>()
        );
        if t.exit != Some(0) {
            println!("{}", t.stderr);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if args.first().map(String::as_str) == Some("calls") {
        return calls();
    }
    let per_mode: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let base = std::env::temp_dir().join(format!("appgrid-fault-soak-{}", std::process::id()));
    let queue: Mutex<Vec<(u64, bool)>> = Mutex::new(
        (1..=per_mode)
            .flat_map(|s| [(s, true), (s + 100_000, false)])
            .rev()
            .collect(),
    );
    let done: Mutex<Vec<Trial>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| {
                // A moto per worker, wiped before each trial: one Python
                // server holding every trial's instances slows to a crawl.
                let moto = moto::Moto::dedicated();
                loop {
                    reset(&moto.endpoint);
                    let Some((seed, token)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let name = format!("soak{seed}");
                    let dir = base.join(&name);
                    std::fs::create_dir_all(&dir).unwrap();
                    let t = run_trial(
                        &moto.endpoint,
                        &dir,
                        &name,
                        WEB,
                        Faults::issue_10(seed, token),
                    );
                    let _ = std::fs::remove_dir_all(&dir);
                    let mut d = done.lock().unwrap();
                    d.push(t);
                    if d.len() % 20 == 0 {
                        eprintln!("{} trials done", d.len());
                    }
                }
            });
        }
    });
    let trials = done.into_inner().unwrap();
    let mut violations = 0;
    for token in [true, false] {
        let ts: Vec<&Trial> = trials.iter().filter(|t| t.client_token == token).collect();
        let n = ts.len() as f64;
        let ok: Vec<&&Trial> = ts.iter().filter(|t| t.exit == Some(0)).collect();
        let bad_ok = ok
            .iter()
            .filter(|t| t.after_apply != t.wanted || t.replan != Some(0))
            .count();
        let dup_any = ts.iter().map(|t| t.duplicates()).sum::<usize>();
        let orphans_ok = ok.iter().map(|t| t.orphans()).sum::<usize>();
        let settled_bad = ts
            .iter()
            .filter(|t| t.settled != t.wanted || t.replan != Some(0))
            .count();
        violations += bad_ok + settled_bad;
        let mut faults: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
        let mut requests: BTreeMap<String, u64> = BTreeMap::new();
        for t in &ts {
            for (action, kinds) in &t.stats {
                for (k, v) in kinds {
                    *faults
                        .entry(action.clone())
                        .or_default()
                        .entry(k)
                        .or_default() += v;
                }
            }
            for (action, v) in t.requests() {
                *requests.entry(action).or_default() += v;
            }
        }
        println!(
            "\n== ClientToken idempotency {}: {} trials",
            if token {
                "on (as EC2)"
            } else {
                "off (as moto)"
            },
            ts.len()
        );
        println!(
            "exit 0: {} ({:.0} %); exit 0 with other than exactly the wanted machines or a non-empty re-plan: {bad_ok}",
            ok.len(),
            100.0 * ok.len() as f64 / n
        );
        println!(
            "duplicates alive after the faulty apply (any exit): {dup_any}; orphans after exit 0: {orphans_ok}; \
             not settled by one more apply: {settled_bad}"
        );
        println!(
            "mean apply time {:.1} s",
            ts.iter().map(|t| t.elapsed.as_secs_f64()).sum::<f64>() / n
        );
        println!(
            "| action | requests per apply | throttled | 5xx | lost | reset | delayed | token replayed | token mismatch |"
        );
        for (action, kinds) in &faults {
            let g = |k: &str| kinds.get(k).copied().unwrap_or(0) as f64 / n;
            println!(
                "| {action} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                requests.get(action).copied().unwrap_or(0) as f64 / n,
                g("throttle"),
                g("error"),
                g("lost"),
                g("reset"),
                g("delayed"),
                g("token-replayed"),
                g("token-mismatch")
            );
        }
        let mut exits: BTreeMap<Option<i32>, usize> = BTreeMap::new();
        for t in &ts {
            *exits.entry(t.exit).or_default() += 1;
        }
        println!("exit codes: {exits:?}");
    }
    println!(
        "\n{} trials in {:.0} s",
        trials.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&base);
    if violations > 0 {
        eprintln!("{violations} trials broke the rule");
        std::process::exit(1);
    }
}
