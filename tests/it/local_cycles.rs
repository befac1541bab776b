//! Issue 15: apply → destroy cycles of `examples/blog-local` while this
//! machine's cores are busy leave no process of the app behind — no slon,
//! postgres, memcached, haproxy or app server — each cycle with its own
//! `APPGRID_LOCAL_ROOT`. `APPGRID_CYCLES` sets how many (default 2; the
//! figure for a longer run is in BENCHMARKS.md).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cli::{appgrid, scratch, text};

/// Processes that hold anything under `base`: an environment value, an
/// argument, the working directory or an open file (the slon of the issue
/// kept its deleted log open). Read from /proc here, independently of the
/// code under test. (pid, command name)
fn holding(base: &Path) -> Vec<(u32, String)> {
    let needle = base.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let dir = entry.path();
        let has = |bytes: Vec<u8>| {
            bytes
                .split(|b| *b == 0)
                .any(|v| String::from_utf8_lossy(v).contains(&needle))
        };
        let env = std::fs::read(dir.join("environ")).is_ok_and(has);
        let args = std::fs::read(dir.join("cmdline")).is_ok_and(has);
        let cwd = std::fs::read_link(dir.join("cwd"))
            .is_ok_and(|c| c.to_string_lossy().contains(&needle));
        let fds = std::fs::read_dir(dir.join("fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains(&needle))
            })
        });
        if pid != std::process::id() && (env || args || cwd || fds) {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_string()));
        }
    }
    found
}

/// Two busy loops (this machine has two cores), ended by the guard or after
/// `limit` at the latest.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let deadline = Instant::now() + limit;
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        for i in 0..100_000u64 {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                        }
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn apply_destroy_cycles_under_load_leave_nothing_running() {
    let cycles: usize = std::env::var("APPGRID_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog-local/appgrid.toml");
    let dir = scratch("cycles");
    let _load = Load::start(Duration::from_secs(120 * cycles as u64 + 60));
    let started = Instant::now();
    for cycle in 0..cycles {
        let base = dir.join(format!("cycle-{cycle}"));
        let state = dir.join(format!("state-{cycle}.json"));
        let run = |command: &str| {
            let out = appgrid()
                .args([command, "--yes"])
                // Issue 8: a test's data is disposable.
                .args((command == "destroy").then_some("--allow-data-loss"))
                .arg(&manifest)
                .arg("--state")
                .arg(&state)
                .env("APPGRID_LOCAL_ROOT", &base)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cycle {cycle}: {command} failed:\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            text(&out.stdout)
        };
        run("apply");
        let running = holding(&base);
        assert!(
            running.len() >= 7,
            "cycle {cycle}: the blog runs: {running:?}"
        );
        let out = run("destroy");
        assert!(
            out.contains(
                "Nothing of blog-local is left running on the 6 machine(s) it no longer has."
            ),
            "cycle {cycle}: {out}"
        );
        let left = holding(&base);
        if !left.is_empty() {
            // Leave nothing for the next test either, then fail.
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .args(left.iter().map(|(p, _)| p.to_string()))
                .status();
        }
        assert!(left.is_empty(), "cycle {cycle} left running: {left:?}");
    }
    if std::env::var_os("APPGRID_BENCH").is_some() {
        eprintln!(
            "measure: {cycles} apply→destroy cycles of blog-local under two busy loops: {:.1} s, 0 processes left",
            started.elapsed().as_secs_f64()
        );
    }
}
