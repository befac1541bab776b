//! Issue 13: the database read tier autoscaled, on the `local` provider
//! through the binary. A read load through the app raises the replicas'
//! client connections above `[autoscale.replicas]`'s target: the autoscaler
//! adds a Slony-I subscriber (launched, subscribed, caught up) and the app
//! reads from both; when the load falls it drops one after the stabilization
//! window, the app servers letting go of it first. A writer runs throughout:
//! no request fails, no row is lost (checksums of the origin and the
//! remaining replica equal at the end).

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cli::{appgrid, text};
use super::http::{http, json_field};
use super::local_e2e::{Blog, eventually};

/// Notes written before the load, so every read is of a note no one read yet
/// (a cache miss, answered by a replica).
const SEEDED: u64 = 20_000;
const READERS: usize = 8;

struct Loop(Child);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn manifest(blog: &Blog) -> String {
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let _ = blog;
    format!(
        "[app]\nname = \"itlocal\"\n[provider]\nkind = \"local\"\n\
         [release]\npath = \"{app}\"\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
         [web]\ninstance_type = \"t3.small\"\ncount = 2\nport = 8080\n\
         [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
         [database]\ninstance_type = \"m5.large\"\nreplicas = 1\nschema = \"{app}/schema.sql\"\n\
         [cache]\ninstance_type = \"r5.large\"\nnodes = 1\nmemory_mb = 64\n\
         [autoscale]\nmetric = \"requests_per_instance\"\ntarget = 100000\nmin = 2\nmax = 2\ninterval = \"2s\"\n\
         [autoscale.replicas]\nmetric = \"connections\"\ntarget = 1\nmin = 1\nmax = 2\n\
         scale_out_cooldown = \"2s\"\nstabilization = \"15s\"\n",
        app = app.display()
    )
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Default)]
struct Reads {
    ok: u64,
    failed: Vec<String>,
    /// Which database answered each read (`addr:port`), counted.
    sources: std::collections::BTreeMap<String, u64>,
}

/// Readers through the load balancer, each read a note nobody read yet
/// (`next` is shared); `pause` between reads per reader.
fn readers(
    lb: &str,
    n: usize,
    pause: Duration,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reads: Arc<Mutex<Reads>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (lb, next, stop, reads) = (
                lb.to_string(),
                Arc::clone(&next),
                Arc::clone(&stop),
                Arc::clone(&reads),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let id = next.fetch_add(1, Ordering::SeqCst) % SEEDED + 1;
                    let answer = http(&lb, "GET", &format!("/notes/{id}"), "").await;
                    {
                        let mut r = reads.lock().unwrap();
                        match answer {
                            Ok((200, body)) => {
                                r.ok += 1;
                                *r.sources
                                    .entry(json_field(&body, "source").to_string())
                                    .or_default() += 1;
                            }
                            other => r.failed.push(format!("{other:?}")),
                        }
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        })
        .collect()
}

fn replica_ip(blog: &Blog, i: u32) -> Option<String> {
    blog.state()["resources"][format!("db.replica[{i}]")]["attributes"]["private_ip"]
        .as_str()
        .map(str::to_string)
}

fn served_from(reads: &Mutex<Reads>, ip: &str) -> u64 {
    let prefix = format!("{ip}:");
    reads
        .lock()
        .unwrap()
        .sources
        .iter()
        .filter(|(s, _)| s.starts_with(&prefix))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_replicas_follow_the_read_load_without_a_failed_request_or_a_lost_row() {
    let mut blog = Blog::new("rscale");
    std::fs::write(&blog.manifest, manifest(&blog)).unwrap();
    blog.ok(&["apply", "--yes"]);
    let lb = blog.lb();
    blog.psql(
        "db.primary",
        &format!(
            "insert into notes(body) select 'seeded ' || g from generate_series(1, {SEEDED}) g"
        ),
    )
    .unwrap();
    eventually(
        "the seeded notes on the replica",
        Duration::from_secs(60),
        async || {
            blog.psql("db.replica[0]", "select count(*) from notes")
                .ok()
                .filter(|c| c == &SEEDED.to_string())
        },
    )
    .await;

    // A writer throughout.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (lb, writing) = (lb.clone(), Arc::clone(&writing));
        tokio::spawn(async move {
            let (mut ok, mut failures) = (0u64, Vec::new());
            while writing.load(Ordering::SeqCst) {
                match http(&lb, "POST", "/notes", "written under scaling").await {
                    Ok((201, _)) => ok += 1,
                    other => failures.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failures)
        })
    };

    let child = appgrid()
        .arg("autoscale")
        .arg(&blog.manifest)
        .env("APPGRID_LOCAL_ROOT", &blog.machines)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let autoscaler = Loop(child);

    // The read load: the replica's connections climb above 1 per replica.
    let next = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(Mutex::new(Reads::default()));
    let stop_heavy = Arc::new(AtomicBool::new(false));
    let heavy = readers(
        &lb,
        READERS,
        Duration::ZERO,
        Arc::clone(&next),
        Arc::clone(&stop_heavy),
        Arc::clone(&reads),
    );
    let started = Instant::now();
    let second = eventually(
        "a second replica in state",
        Duration::from_secs(240),
        async || replica_ip(&blog, 1),
    )
    .await;
    let first = replica_ip(&blog, 0).unwrap();
    let before = served_from(&reads, &second);
    eventually(
        "a read answered by the new replica",
        Duration::from_secs(240),
        async || (served_from(&reads, &second) > before).then_some(()),
    )
    .await;
    let state = blog.state();
    let decided = state["autoscale_replicas"]["at"].as_u64().unwrap();
    assert_eq!(state["autoscale_replicas"]["replicas"], 2, "{state}");
    // Both replicas answer reads now.
    let (a, b) = (served_from(&reads, &first), served_from(&reads, &second));
    eventually(
        "reads from both replicas",
        Duration::from_secs(30),
        async || {
            (served_from(&reads, &first) > a && served_from(&reads, &second) > b).then_some(())
        },
    )
    .await;
    // Once the pass is through (every app server released with the new
    // list), the autoscaler's count is no drift: a plan with the manifest's
    // `replicas = 1` has nothing to do.
    let mut last = String::new();
    let converged = Instant::now();
    while blog.run(&["plan", "--detailed-exitcode"]).status.code() != Some(0) {
        last = text(&blog.run(&["plan"]).stdout);
        assert!(
            converged.elapsed() < Duration::from_secs(120),
            "the plan never came clean with the replica override:\n{last}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = last;
    let added_s = unix_now().saturating_sub(decided);
    eprintln!(
        "measure: replicas 1 → 2 under {READERS} readers: load on for {:?}, decision to every app server reading from both {added_s}s",
        started.elapsed()
    );

    // The load falls to a trickle (which still reads through both replicas
    // while the second is let go).
    stop_heavy.store(true, Ordering::SeqCst);
    for h in heavy {
        h.await.unwrap();
    }
    let stop_light = Arc::new(AtomicBool::new(false));
    let light = readers(
        &lb,
        1,
        Duration::from_millis(300),
        Arc::clone(&next),
        Arc::clone(&stop_light),
        Arc::clone(&reads),
    );
    let fell = Instant::now();
    eventually(
        "the second replica to go",
        Duration::from_secs(240),
        async || replica_ip(&blog, 1).is_none().then_some(()),
    )
    .await;
    let state = blog.state();
    assert_eq!(state["autoscale_replicas"]["replicas"], 1, "{state}");
    let dropped_s = unix_now().saturating_sub(state["autoscale_replicas"]["at"].as_u64().unwrap());
    eprintln!(
        "measure: replicas 2 → 1: load fell {:?} ago, decision to the machine gone {dropped_s}s",
        fell.elapsed()
    );
    // Reads keep working on the one replica left.
    let left = served_from(&reads, &first);
    eventually(
        "a read from the remaining replica",
        Duration::from_secs(30),
        async || (served_from(&reads, &first) > left).then_some(()),
    )
    .await;
    stop_light.store(true, Ordering::SeqCst);
    for h in light {
        h.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let (written, write_failures) = writer.await.unwrap();
    drop(autoscaler);

    let reads = std::mem::take(&mut *reads.lock().unwrap());
    assert!(
        reads.failed.is_empty() && write_failures.is_empty(),
        "{} reads and {} writes failed, first: {:?} {:?}",
        reads.failed.len(),
        write_failures.len(),
        reads.failed.first(),
        write_failures.first()
    );
    assert!(written > 0 && reads.ok > 0);
    eprintln!(
        "measure: {} reads and {written} writes, 0 failed; reads by source: {:?}",
        reads.ok, reads.sources
    );

    // No row lost: the origin and the remaining replica agree.
    let digest =
        "select count(*) || ':' || md5(string_agg(id || body, ',' order by id)) from notes";
    let on_primary = blog.psql("db.primary", digest).unwrap();
    eventually(
        "the remaining replica to match the origin",
        Duration::from_secs(30),
        async || {
            blog.psql("db.replica[0]", digest)
                .ok()
                .filter(|d| *d == on_primary)
        },
    )
    .await;
    assert!(
        on_primary.starts_with(&format!("{}:", SEEDED + written)),
        "{on_primary} rows, {SEEDED} seeded + {written} written"
    );

    // The history shows both replica decisions with their reasons.
    let out = appgrid()
        .args(["autoscale", "history"])
        .arg(&blog.manifest)
        .env("APPGRID_LOCAL_ROOT", &blog.machines)
        .output()
        .unwrap();
    let history = text(&out.stdout);
    let line = |from_to: &str| {
        history
            .lines()
            .find(|l| l.contains("replicas:connections") && l.contains(from_to))
            .unwrap_or_else(|| panic!("no replica decision {from_to} in:\n{history}"))
            .to_string()
    };
    assert!(
        line(" 1 -> 2 ").contains("connections per replica"),
        "{history}"
    );
    assert!(
        line(" 2 -> 1 ").contains("stabilized over 15s"),
        "{history}"
    );
}
