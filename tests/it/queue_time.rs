//! `metric = "queue_time_ms"` live (issue 13): with `[web] max_connections`
//! HAProxy sends each app server at most that many requests at once and
//! queues the rest, so under concurrent load its `qtime` is nonzero; the
//! autoscaler reads it, scales out, the server it adds (through the runtime
//! API) has the same limit, and not one request fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::autoscale_e2e::{Scaled, client, history_lines, none_failed, until};
use super::cli::text;

/// Concurrent clients: far more than one server with `maxconn 1` takes at once.
const CLIENTS: usize = 12;

impl Scaled {
    /// The load balancer machine's directory on the local provider.
    fn lb_root(&self, app: &str) -> PathBuf {
        let id = self.state()["resources"]["lb"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.machines.join(app).join("machines").join(id)
    }
}

/// `show stat` from the running HAProxy: (server, `slim`, `qtime`) of the web backend.
fn limits(lb_root: &std::path::Path) -> Vec<(String, String, String)> {
    let sock = lb_root.join("run/appgrid/haproxy.sock");
    let out = Command::new("socat")
        .args(["-t", "2", "stdio"])
        .arg(format!("unix-connect:{}", sock.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"show stat\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no show stat header in {csv:?}"))
        .split(',')
        .collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (px, sv, slim, qtime) = (col("pxname"), col("svname"), col("slim"), col("qtime"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > qtime && f[px] == "web" && f[sv].starts_with("web"))
        .map(|f| (f[sv].to_string(), f[slim].to_string(), f[qtime].to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_time_is_read_live_and_scales_the_tier_out() {
    let mut s = Scaled::with_tables(
        "itqueue",
        "max_connections = 1\n",
        "metric = \"queue_time_ms\"\ntarget = 5\nmin = 1\nmax = 2\n\
         scale_out_cooldown = \"2s\"\nscale_in_cooldown = \"600s\"\nwarmup = \"1s\"\ninterval = \"2s\"\n",
    );
    s.ok(&["apply", "--yes"]);
    let lb = s.lb_addr();
    let lb_root = s.lb_root("itqueue");
    let cfg = std::fs::read_to_string(lb_root.join("etc/appgrid/haproxy/haproxy.cfg")).unwrap();
    assert!(
        cfg.contains(" rise 2 fall 2 maxconn 1\n"),
        "no maxconn in haproxy.cfg:\n{cfg}"
    );
    s.start_loop();

    // CLIENTS at once, each a request after the other, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let began = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| client(&lb, &stop, &seen, began))
        .collect();

    until("a scale-out", Duration::from_secs(120), || {
        history_lines(&s.ok(&["autoscale", "history"]))
            .iter()
            .any(|l| l.3 > l.2)
    })
    .await;
    let lines = history_lines(&s.ok(&["autoscale", "history"]));
    let (_, value, from, to, reason) = lines.iter().find(|l| l.3 > l.2).unwrap().clone();
    assert_eq!((from, to), (1, 2), "{reason}");
    assert!(
        value > 5.0 * 1.1,
        "the scale-out read a queue time of {value} ms: {reason}"
    );
    assert!(reason.contains("queue time"), "{reason}");
    let asked_after = began.elapsed();
    until("the new server serving", Duration::from_secs(90), || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    // The server added at runtime has the limit too (it does not inherit
    // `default-server`), and the queue time is read from both.
    let rows = limits(&lb_root);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "1"), "{rows:?}");
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 100, "{ok} requests");
    none_failed(ok, &failed);

    // A new limit is a change of the load balancer's configuration alone,
    // shown by plan and applied by a reload that keeps both servers.
    let mut child = s.loop_.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let manifest = std::fs::read_to_string(&s.manifest).unwrap();
    std::fs::write(
        &s.manifest,
        manifest.replace("max_connections = 1\n", "max_connections = 3\n"),
    )
    .unwrap();
    let out = s.cmd(&["plan", "--detailed-exitcode"]).output().unwrap();
    let plan = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{plan}{}", text(&out.stderr));
    let changes: Vec<&str> = plan
        .lines()
        .filter(|l| l.trim_start().starts_with(['~', '+', '-']))
        .collect();
    assert_eq!(changes.len(), 1, "{plan}");
    assert!(changes[0].contains("lb.config"), "{plan}");
    assert!(plan.contains("max_connections"), "{plan}");
    s.ok(&["apply", "--yes"]);
    let after = limits(&lb_root);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|r| r.1 == "3"), "{after:?}");

    // For BENCHMARKS.md (`--nocapture`).
    println!(
        "queue time: {CLIENTS} clients, maxconn 1: 1 -> 2 asked {:.0}s into the load on a reading of \
         {value:.0} ms; {ok} requests, 0 failed; (server, slim, qtime) after: {rows:?}",
        asked_after.as_secs_f64()
    );
}
