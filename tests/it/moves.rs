//! Issue 8 §1 on real servers (the `local` provider: Postgres 15, Slony-I,
//! memcached, HAProxy, the example app): the blog runs with rows written
//! continuously, `[database] instance_type` changes, `plan` shows online
//! moves (nothing destroyed), `apply` moves the primary and the replica.
//! Asserted: every acknowledged row is on the new origin, and every table's
//! checksum is equal on the old and the new origin before the old one goes.
//! Reported (`measure:` lines): failed app requests during the move, the
//! longest gap between two commits of a writer that follows the origin (the
//! MOVE SET write-lock window), the move's time.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cli::{appgrid, scratch, text};
use super::http::{http, json_field};

const APP: &str = "itmove";

struct Blog {
    dir: PathBuf,
    manifest: PathBuf,
    machines: PathBuf,
    printed: String,
}

impl Blog {
    fn new(name: &str) -> Blog {
        let dir = scratch(name);
        Blog {
            manifest: dir.join("appgrid.toml"),
            machines: dir.join("machines"),
            dir,
            printed: String::new(),
        }
    }

    fn write(&self, db_type: &str) {
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
        let text = format!(
            "[app]\nname = \"{APP}\"\n[provider]\nkind = \"local\"\n\
             [release]\npath = \"{app}\"\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 2\nport = 8080\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
             [database]\ninstance_type = \"{db_type}\"\nreplicas = 1\nschema = \"{app}/schema.sql\"\n\
             [cache]\ninstance_type = \"r5.large\"\nnodes = 1\nmemory_mb = 64\n",
            app = app.display()
        );
        std::fs::write(&self.manifest, text).unwrap();
    }

    fn run(&mut self, args: &[&str]) -> Output {
        let out = appgrid()
            .args(args)
            .arg(&self.manifest)
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .output()
            .unwrap();
        self.printed.push_str(&text(&out.stdout));
        self.printed.push_str(&text(&out.stderr));
        out
    }

    /// `appgrid db COMMAND MANIFEST ARGS…`.
    fn run_db(&mut self, command: &[&str], args: &[&str]) -> Output {
        let out = appgrid()
            .arg("db")
            .args(command)
            .arg(&self.manifest)
            .args(args)
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .output()
            .unwrap();
        self.printed.push_str(&text(&out.stdout));
        self.printed.push_str(&text(&out.stderr));
        out
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "appgrid {args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join(format!(".appgrid/{APP}/state.json"))
}

fn state(dir: &Path) -> serde_json::Value {
    // The state is replaced atomically (rename), so a read sees one whole file.
    serde_json::from_str(&std::fs::read_to_string(state_path(dir)).unwrap()).unwrap()
}

fn attr(state: &serde_json::Value, address: &str, key: &str) -> Option<String> {
    state["resources"][address]["attributes"][key]
        .as_str()
        .map(str::to_string)
}

impl Drop for Blog {
    /// Destroy (saying data may go where a `destroy` asks for it).
    fn drop(&mut self) {
        for args in [
            &["destroy", "--yes", "--allow-data-loss"][..],
            &["destroy", "--yes"],
        ] {
            let done = appgrid()
                .args(args)
                .arg(&self.manifest)
                .env("APPGRID_LOCAL_ROOT", &self.machines)
                .output()
                .is_ok_and(|o| o.status.success());
            if done {
                break;
            }
        }
    }
}

/// psql as the app's user on `host`.
fn psql(host: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-At", "-h", host, "-U", APP, "-d", APP, "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(text(&out.stdout).trim().to_string())
    } else {
        Err(text(&out.stderr))
    }
}

/// Every app table's checksum: `table=md5` lines, in table order.
fn checksums(host: &str, password: &str) -> String {
    let tables = psql(
        host,
        password,
        "select tablename from pg_tables where schemaname = 'public' order by 1",
    )
    .unwrap();
    tables
        .lines()
        .map(|t| {
            let sum = psql(
                host,
                password,
                &format!(
                    "select count(*) || ':' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from public.\"{t}\" x"
                ),
            )
            .unwrap();
            format!("{t}={sum}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The database addresses state names now: the one in service, and the other
/// one of a move in progress.
fn db_hosts(dir: &Path) -> Vec<String> {
    let s = state(dir);
    let mut hosts: Vec<String> = attr(&s, "db.primary", "private_ip").into_iter().collect();
    if let Some(ip) = s["moves"]["db.primary"]["machine"]["attributes"]["private_ip"].as_str() {
        hosts.push(ip.to_string());
    }
    hosts
}

#[derive(Default)]
struct Writes {
    /// Bodies of rows whose INSERT was acknowledged.
    acked: Vec<String>,
    /// When each acknowledgement came.
    at: Vec<Instant>,
    failed: u64,
    first_error: Option<String>,
}

/// Inserts straight into the origin, whichever machine it is: each write is
/// tried on the hosts state names until one accepts it (a subscriber refuses).
fn origin_writer(
    dir: PathBuf,
    password: String,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    out: Arc<Mutex<Writes>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            if pause.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            n += 1;
            let body = format!("direct {n}");
            let sql = format!("insert into notes(body) values ('{body}')");
            let ok = db_hosts(&dir)
                .iter()
                .any(|h| psql(h, &password, &sql).is_ok());
            let mut w = out.lock().unwrap();
            if ok {
                w.acked.push(body);
                w.at.push(Instant::now());
            } else {
                w.failed += 1;
            }
        }
    })
}

/// Notes posted through the load balancer, one after another.
fn app_writer(
    lb: String,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    out: Arc<Mutex<Writes>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            if pause.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            n += 1;
            let body = format!("app {n}");
            let answer = http(&lb, "POST", "/notes", &body).await;
            let mut w = out.lock().unwrap();
            match answer {
                Ok((201, _)) => {
                    w.acked.push(body);
                    w.at.push(Instant::now());
                }
                Ok((status, text)) => {
                    w.failed += 1;
                    w.first_error.get_or_insert(format!("{status} {text}"));
                }
                Err(e) => {
                    w.failed += 1;
                    w.first_error.get_or_insert(e);
                }
            }
        }
    })
}

/// The longest time between two acknowledged writes, leaving out the gap
/// the checker's pause made.
fn longest_gap(at: &[Instant], paused: Option<(Instant, Instant)>) -> Duration {
    at.windows(2)
        .filter(|w| paused.is_none_or(|(from, to)| !(w[0] <= to && w[1] >= from)))
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_moves_online_without_losing_a_row() {
    let mut blog = Blog::new("moves");
    blog.write("m5.large");
    blog.ok(&["apply", "--yes"]);
    let before = state(&blog.dir);
    let password = attr(&before, "db.primary.config", "password").unwrap();
    let lb = format!("{}:8000", attr(&before, "lb", "private_ip").unwrap());
    let old_primary = attr(&before, "db.primary", "private_ip").unwrap();
    let old_id = before["resources"]["db.primary"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = http(&lb, "POST", "/notes", "before the move")
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert!(!json_field(&body, "id").is_empty());

    // The plan moves both database machines online and destroys nothing.
    blog.write("m5.xlarge");
    let plan = blog.ok(&["plan"]);
    assert!(
        plan.contains("move online: m5.large → m5.xlarge (new node, subscribe, switch over, retire the old one)"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "move online: m5.large → m5.xlarge (new subscriber first, then the old one leaves)"
        ),
        "{plan}"
    );
    assert!(!plan.contains("-/+ db."), "{plan}");
    assert!(
        plan.contains("0 to replace, 0 to destroy, 2 to move online."),
        "{plan}"
    );

    // Writes all through the move: straight to the origin and through the app.
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(false));
    let direct = Arc::new(Mutex::new(Writes::default()));
    let through_app = Arc::new(Mutex::new(Writes::default()));
    let direct_writer = origin_writer(
        blog.dir.clone(),
        password.clone(),
        Arc::clone(&stop),
        Arc::clone(&pause),
        Arc::clone(&direct),
    );
    let app = app_writer(
        lb.clone(),
        Arc::clone(&stop),
        Arc::clone(&pause),
        Arc::clone(&through_app),
    );

    // Once the new primary took over and before the old one goes, pause the
    // writers, let replication catch up, and compare every table.
    let dir = blog.dir.clone();
    let checker_pause = Arc::clone(&pause);
    let checker_password = password.clone();
    let paused: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    let checker_paused = Arc::clone(&paused);
    let checker = std::thread::spawn(move || -> Option<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let s = state(&dir);
            let outgoing = s["moves"]["db.primary"]["direction"] == "outgoing";
            if outgoing {
                let new = attr(&s, "db.primary", "private_ip").unwrap();
                let old = s["moves"]["db.primary"]["machine"]["attributes"]["private_ip"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let from = Instant::now();
                checker_pause.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                let mut last = (String::new(), String::new());
                for _ in 0..100 {
                    last = (
                        checksums(&old, &checker_password),
                        checksums(&new, &checker_password),
                    );
                    if last.0 == last.1 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                checker_pause.store(false, Ordering::SeqCst);
                *checker_paused.lock().unwrap() = Some((from, Instant::now()));
                return Some(last);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    });

    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let applied = blog.run(&["apply", "--yes"]);
    let move_time = started.elapsed();
    let (out, progress) = (text(&applied.stdout), text(&applied.stderr));
    assert!(applied.status.success(), "{out}\n{progress}");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    direct_writer.join().unwrap();
    app.await.unwrap();
    assert!(out.contains("Apply complete"), "{out}");

    let (old_sums, new_sums) = checker
        .join()
        .unwrap()
        .expect("the move never reached its switchover");
    assert_eq!(
        old_sums, new_sums,
        "tables differ between the old and the new origin"
    );
    assert!(old_sums.contains("notes="), "{old_sums}");

    // State: the new machines, no move left, the origin on the new primary.
    let after = state(&blog.dir);
    assert!(after["moves"].is_null(), "{}", after["moves"]);
    let new_primary = attr(&after, "db.primary", "private_ip").unwrap();
    assert_ne!(
        after["resources"]["db.primary"]["id"].as_str().unwrap(),
        old_id
    );
    assert_ne!(new_primary, old_primary);
    assert_eq!(
        attr(&after, "slony.cluster", "origin"),
        attr(&after, "db.primary.config", "node")
    );
    assert_eq!(
        after["resources"]["db.primary"]["spec"]["instance_type"], "m5.xlarge",
        "{}",
        after["resources"]["db.primary"]
    );

    // Not one acknowledged row lost.
    let rows: std::collections::BTreeSet<String> =
        psql(&new_primary, &password, "select body from notes")
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
    // The writers have stopped: take what they recorded.
    let direct = std::mem::take(&mut *direct.lock().unwrap());
    let through_app = std::mem::take(&mut *through_app.lock().unwrap());
    let lost: Vec<&String> = direct
        .acked
        .iter()
        .chain(&through_app.acked)
        .filter(|b| !rows.contains(*b))
        .collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
    assert!(rows.contains("before the move"));
    assert!(
        direct.acked.len() > 10,
        "the writer hardly wrote: {}",
        direct.acked.len()
    );

    // The app writes to the new origin, which replicates to the new replica.
    let (status, body) = http(&lb, "POST", "/notes", "after the move").await.unwrap();
    assert_eq!(status, 201, "{body}");
    let replica = attr(&after, "db.replica[0]", "private_ip").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while psql(
        &replica,
        &password,
        "select count(*) from notes where body = 'after the move'",
    )
    .as_deref()
        != Ok("1")
    {
        assert!(
            Instant::now() < deadline,
            "the new replica does not follow the new origin"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A re-plan is empty: state matches what exists.
    let replan = blog.ok(&["plan"]);
    assert!(replan.contains("No changes."), "{replan}");
    assert!(
        !blog.printed.contains(&password),
        "the database password was printed"
    );

    let direct_stats = (
        direct.acked.len(),
        direct.failed,
        longest_gap(&direct.at, *paused.lock().unwrap()),
    );
    let app_stats = (
        through_app.acked.len(),
        through_app.failed,
        through_app.first_error.clone(),
        longest_gap(&through_app.at, *paused.lock().unwrap()),
    );
    drop((direct, through_app));

    // A switchover to the moved replica (its node id comes from state), then
    // `destroy` with the origin on that former replica: it succeeds (the set
    // goes back to the primary before the replica leaves the cluster).
    let out = blog.run_db(&["switchover"], &["db.replica[0]"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = state(&blog.dir);
    assert_eq!(
        attr(&s, "slony.cluster", "origin"),
        attr(&s, "db.replica[0].subscription", "node")
    );
    let (status, body) = http(&lb, "POST", "/notes", "on the replica's origin")
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let destroyed = ["--allow-data-loss", "--skip-final-backup", ""]
        .iter()
        .map(|flag| {
            let args: Vec<&str> = ["destroy", "--yes"]
                .into_iter()
                .chain((!flag.is_empty()).then_some(*flag))
                .collect();
            blog.run(&args)
        })
        .find(|o| o.status.success() || !text(&o.stderr).contains("unexpected argument"))
        .unwrap();
    assert!(
        destroyed.status.success(),
        "destroy after a switchover failed:\n{}\n{}",
        text(&destroyed.stdout),
        text(&destroyed.stderr)
    );
    assert!(
        !blog.printed.contains(&password),
        "the database password was printed"
    );

    eprintln!(
        "measure: move of db.primary and db.replica[0] (apply): {:.1} s",
        move_time.as_secs_f64()
    );
    for line in progress.lines().filter(|l| l.contains(": done in")) {
        eprintln!("measure: step {line}");
    }
    eprintln!(
        "measure: direct writer: {} commits acknowledged, {} failed, longest gap between commits (MOVE SET write-lock window, upper bound) {} ms",
        direct_stats.0,
        direct_stats.1,
        direct_stats.2.as_millis()
    );
    eprintln!(
        "measure: app writes through the load balancer: {} acknowledged, {} failed (first: {:?}), longest gap {} ms",
        app_stats.0,
        app_stats.1,
        app_stats.2,
        app_stats.3.as_millis()
    );
}
