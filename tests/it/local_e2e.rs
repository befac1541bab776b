//! The `local` provider end to end through the `appgrid` binary: the blog
//! comes up on this machine (Postgres primary + Slony-I replica, memcached,
//! two app servers, HAProxy), scales under load without a failed request,
//! adds a replica under writes without losing a row, migrates the schema on
//! every node, switches the origin over and back, and goes away. No secret ever appears in what appgrid printed.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cli::{appgrid, scratch, text};
use super::http::{http, json_field, served_by};

struct Blog {
    dir: PathBuf,
    manifest: PathBuf,
    machines: PathBuf,
    /// Everything appgrid printed, to check for secrets at the end.
    printed: String,
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

impl Blog {
    fn new(name: &str) -> Blog {
        let dir = scratch(name);
        let machines = dir.join("machines");
        let blog = Blog {
            manifest: dir.join("appgrid.toml"),
            dir,
            machines,
            printed: String::new(),
        };
        blog.write(2, 1);
        blog
    }

    fn write(&self, web: u32, replicas: u32) {
        let app = examples().join("app");
        let text = format!(
            "[app]\nname = \"itlocal\"\n[provider]\nkind = \"local\"\n\
             [release]\npath = \"{app}\"\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = {web}\nport = 8080\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
             [database]\ninstance_type = \"m5.large\"\nreplicas = {replicas}\nschema = \"{app}/schema.sql\"\n\
             [cache]\ninstance_type = \"r5.large\"\nnodes = 1\nmemory_mb = 64\n",
            app = app.display()
        );
        std::fs::write(&self.manifest, text).unwrap();
    }

    fn run(&mut self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = args.to_vec();
        let m = self.manifest.to_str().unwrap().to_string();
        full.push(&m);
        let out = appgrid()
            .args(&full)
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

    fn state(&self) -> serde_json::Value {
        let path = self.dir.join(".appgrid/itlocal/state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn attr(&self, address: &str, key: &str) -> String {
        self.state()["resources"][address]["attributes"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{address}.{key} not in state"))
            .to_string()
    }

    fn lb(&self) -> String {
        format!("{}:8000", self.attr("lb", "private_ip"))
    }

    /// psql as the app's user against one database machine.
    fn psql(&self, machine: &str, sql: &str) -> Result<String, String> {
        let out = std::process::Command::new("psql")
            .args([
                "-X",
                "-At",
                "-h",
                &self.attr(machine, "private_ip"),
                "-U",
                "itlocal",
                "-d",
                "itlocal",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", self.attr("db.primary.config", "password"))
            .output()
            .unwrap();
        if out.status.success() {
            Ok(text(&out.stdout).trim().to_string())
        } else {
            Err(text(&out.stderr))
        }
    }
}

impl Drop for Blog {
    /// A failed test still leaves nothing running: destroy, then kill whatever
    /// still runs from this test's machine roots.
    fn drop(&mut self) {
        let _ = appgrid()
            .args([
                "destroy",
                "--yes",
                "--allow-data-loss",
                self.manifest.to_str().unwrap(),
            ])
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .output();
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", self.machines.to_str().unwrap()])
            .status();
    }
}

/// Sequential requests through the load balancer until stopped: (ok, failed).
fn load(target: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut ok, mut failed, mut errors) = (0, 0, Vec::new());
        let deadline = Instant::now() + Duration::from_secs(300);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match http(&target, "GET", "/", "").await {
                Ok((200, _)) => ok += 1,
                Ok((status, body)) => {
                    failed += 1;
                    errors.push(format!("{status} {body}"));
                }
                Err(e) => {
                    failed += 1;
                    errors.push(e);
                }
            }
        }
        (ok, failed, errors)
    })
}

/// `appgrid db COMMAND MANIFEST ARGS…` (run() would put the manifest last).
fn db(blog: &mut Blog, command: &[&str], args: &[&str]) -> Output {
    let out = appgrid()
        .arg("db")
        .args(command)
        .arg(&blog.manifest)
        .args(args)
        .env("APPGRID_LOCAL_ROOT", &blog.machines)
        .output()
        .unwrap();
    blog.printed.push_str(&text(&out.stdout));
    blog.printed.push_str(&text(&out.stderr));
    out
}

async fn eventually<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blog_on_the_local_provider() {
    let mut blog = Blog::new("local-blog");
    let out = blog.ok(&["apply", "--yes"]);
    assert!(out.contains("The app answers at http://"), "{out}");
    let lb = blog.lb();

    // A note written through the app reaches the replica within 10 s.
    let (status, body) = http(&lb, "POST", "/notes", "first note").await.unwrap();
    assert_eq!(status, 201, "{body}");
    let id = json_field(&body, "id").to_string();
    eventually(
        "replication of the note",
        Duration::from_secs(10),
        async || {
            blog.psql(
                "db.replica[0]",
                &format!("select body from notes where id = {id}"),
            )
            .ok()
            .filter(|b| b == "first note")
        },
    )
    .await;
    // Writes on a replica are refused by Slony-I.
    let refused = blog
        .psql("db.replica[0]", "insert into notes(body) values ('nope')")
        .unwrap_err();
    assert!(refused.contains("Slony-I"), "{refused}");
    // The read-through cache answers a later read (the app treats memcached
    // as optional: a read during a moment of cache trouble just goes to the
    // database, so ask until one is served from the cache).
    eventually(
        "a read served from memcached",
        Duration::from_secs(10),
        async || {
            let (_, body) = http(&lb, "GET", &format!("/notes/{id}"), "").await.ok()?;
            (json_field(&body, "source") == "cache").then_some(())
        },
    )
    .await;
    // Requests through HAProxy reach every web machine.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(served_by(&http(&lb, "GET", "/", "").await.unwrap().1));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Converged: plan has nothing to do.
    assert_eq!(
        blog.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0)
    );

    // `status` and `status --json` tell the same facts (two samples: the
    // counters and the lag may move between them, what exists may not).
    let status = blog.ok(&["status"]);
    let json: serde_json::Value = serde_json::from_str(&blog.ok(&["status", "--json"])).unwrap();
    assert!(
        status.starts_with(&format!("itlocal (state serial {}, ", json["serial"])),
        "{status}"
    );
    let lines: Vec<Vec<&str>> = status
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let has = |words: &[&str]| lines.iter().any(|l| l.starts_with(words));
    let word = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let machines = json["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 6, "{json}");
    for m in machines {
        let words = [word(&m["address"]), word(&m["id"]), word(&m["private_ip"])];
        assert!(
            has(&words.each_ref().map(String::as_str)),
            "{m} not in:\n{status}"
        );
    }
    let servers = json["load_balancer"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{json}");
    for s in servers {
        assert!(
            has(&[
                "lb",
                "->",
                &word(&s["name"]),
                &word(&s["status"]),
                "sessions"
            ]),
            "{s} not in:\n{status}"
        );
    }
    let caches = json["caches"].as_array().unwrap();
    assert_eq!(caches.len(), 1, "{json}");
    assert!(
        has(&[&word(&caches[0]["address"]), "memcached:"]),
        "{status}"
    );
    let lag = &json["replication"][0];
    assert!(
        has(&[
            "replication",
            &word(&lag["origin"]),
            "->",
            &format!("{}:", word(&lag["node"]))
        ]),
        "{lag} not in:\n{status}"
    );
    assert!(
        lag["lag_events"].is_i64() && lag["lag_seconds"].is_f64(),
        "{lag}"
    );

    // Replicas 1 → 2 while a writer inserts continuously: no row lost.
    let writing = Arc::new(AtomicBool::new(true));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (lb, writing, written) = (lb.clone(), Arc::clone(&writing), Arc::clone(&written));
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(300);
            while writing.load(Ordering::SeqCst) && Instant::now() < deadline {
                match http(&lb, "POST", "/notes", "under load").await {
                    Ok((201, _)) => {
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        })
    };
    blog.write(2, 2);
    blog.ok(&["apply", "--yes"]);
    writing.store(false, Ordering::SeqCst);
    let failures = writer.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} writes failed during the replica change, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(written.load(Ordering::SeqCst) > 0);
    let digest =
        "select count(*) || ':' || md5(string_agg(id || body, ',' order by id)) from notes";
    let on_primary = blog.psql("db.primary", digest).unwrap();
    for replica in ["db.replica[0]", "db.replica[1]"] {
        eventually(
            "the replicas to catch up",
            Duration::from_secs(30),
            async || blog.psql(replica, digest).ok().filter(|d| *d == on_primary),
        )
        .await;
    }

    // A migration reaches every node, and replication keeps working.
    let sql = blog.dir.join("add-author.sql");
    std::fs::write(&sql, "ALTER TABLE notes ADD COLUMN author text;\n").unwrap();
    let out = db(&mut blog, &["migrate"], &[sql.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for node in ["db.primary", "db.replica[0]", "db.replica[1]"] {
        assert_eq!(
            blog.psql(node, "select count(*) from information_schema.columns where table_name = 'notes' and column_name = 'author'").unwrap(),
            "1",
            "{node} lacks the new column"
        );
    }
    blog.psql(
        "db.primary",
        "insert into notes(body, author) values ('after migration', 'it')",
    )
    .unwrap();
    eventually(
        "replication after the migration",
        Duration::from_secs(10),
        async || {
            blog.psql(
                "db.replica[1]",
                "select author from notes where body = 'after migration'",
            )
            .ok()
            .filter(|a| a == "it")
        },
    )
    .await;

    // Switchover and back, each through the locked, recorded path: the set
    // moves, the origin is recorded, every app server is released again
    // against it (one at a time) and writes through the app land there.
    for (to, node, other) in [
        ("db.replica[0]", "2", "db.primary"),
        ("db.primary", "1", "db.replica[0]"),
    ] {
        let serial = blog.state()["serial"].as_u64().unwrap();
        let out = db(&mut blog, &["switchover"], &[to]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!(
                "Every app server writes to {to} (2 released again)."
            )),
            "{stdout}"
        );
        assert_eq!(blog.attr("slony.cluster", "origin"), node);
        assert!(blog.state()["serial"].as_u64().unwrap() >= serial + 3);
        let body = format!("written after the switchover to {to}");
        let (status, answer) = http(&lb, "POST", "/notes", &body).await.unwrap();
        assert_eq!(status, 201, "{answer}");
        let select = format!("select count(*) from notes where body = '{body}'");
        assert_eq!(blog.psql(to, &select).unwrap(), "1");
        eventually(
            "replication from the new origin",
            Duration::from_secs(10),
            async || blog.psql(other, &select).ok().filter(|c| c == "1"),
        )
        .await;
        let refused = blog
            .psql(other, "insert into notes(body) values ('nope')")
            .unwrap_err();
        assert!(refused.contains("Slony-I"), "{refused}");
    }

    // Web 2 → 3 → 2 under load: not one failed request.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(lb.clone(), Arc::clone(&stop));
    blog.write(3, 2);
    blog.ok(&["apply", "--yes"]);
    blog.write(2, 2);
    blog.ok(&["apply", "--yes"]);
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, errors) = traffic.await.unwrap();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed, first: {:?}",
        ok + failed,
        &errors[..errors.len().min(3)]
    );
    assert!(ok > 0);

    // No secret in anything appgrid printed.
    let password = blog.attr("db.primary.config", "password");
    let slony = blog.attr("slony.cluster", "password");
    assert!(
        !blog.printed.contains(&password) && !blog.printed.contains(&slony),
        "a password was printed"
    );

    // Destroy: every process gone, every machine root removed, and destroy
    // says it checked.
    let out = blog.ok(&["destroy", "--yes", "--allow-data-loss"]);
    assert!(
        out.contains("Nothing of itlocal is left running on the 7 machine(s) it no longer has."),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(blog.machines.join("itlocal/machines"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let ps = std::process::Command::new("pgrep")
        .args(["-af", blog.machines.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        text(&ps.stdout).trim().is_empty(),
        "still running: {}",
        text(&ps.stdout)
    );
}
