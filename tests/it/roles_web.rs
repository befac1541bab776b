//! The web-tier roles on this machine through the local transport: memcached,
//! the example app released on several "machines" (each its own root
//! directory and 127.x address), HAProxy in front, scaling under load.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appgrid::remote::Redactor;
use appgrid::remote::local::LocalTransport;
use appgrid::roles::app::{AppRelease, release};
use appgrid::roles::haproxy::{self, Backend, Bounds, LbConfig, LbOutcome, ensure_haproxy};
use appgrid::roles::memcached::{CacheNode, ensure_memcached, memcached_stats, memory_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The embedded templates, which these role tests render with.
fn tpl() -> appgrid::templates::Templates {
    appgrid::templates::Templates::embedded()
}

use super::http::{http, json_field, served_by};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// 127.A.B.n, derived from the pid (never 127.0.0.1): n picks the machine.
fn addr(n: u8) -> String {
    let pid = std::process::id();
    format!("127.{}.{}.{n}", 200 + (pid >> 8) % 50, pid & 255)
}

/// Everything a test starts, stopped on drop (also when the test fails).
struct Guard {
    base: PathBuf,
    children: Vec<Child>,
}

impl Guard {
    fn new(name: &str) -> Guard {
        let base = std::env::temp_dir().join(format!("appgrid-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        Guard {
            base,
            children: Vec::new(),
        }
    }

    fn root(&self, machine: &str) -> String {
        let root = self.base.join(machine);
        std::fs::create_dir_all(&root).unwrap();
        root.to_str().unwrap().to_string()
    }
}

fn kill_supervised(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let pidfile = path.join("run/appgrid");
        let Ok(pids) = std::fs::read_dir(&pidfile) else {
            continue;
        };
        for p in pids.flatten() {
            if p.path().extension().is_some_and(|e| e == "pid") {
                if let Ok(pid) = std::fs::read_to_string(p.path())
                    .unwrap_or_default()
                    .trim()
                    .parse::<i32>()
                {
                    // Supervised services lead their own process group.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        kill_supervised(&self.base);
        for c in &mut self.children {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGQUIT);
            }
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// Every line any transport logged, to look for secrets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

impl Captured {
    fn transport(&self, host: &str, redactor: &Redactor) -> LocalTransport {
        let lines = Arc::clone(&self.0);
        LocalTransport::new(host, redactor.clone()).with_log(Arc::new(
            move |h: &str, s: &str, l: &str| lines.lock().unwrap().push(format!("{h} {s} {l}")),
        ))
    }
}

fn as_postgres(cmd: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(format!("{PG_BIN}/{cmd}"));
    c
}

/// A Postgres server on `addr`, with role `app` (password) owning database `app`.
fn start_postgres(guard: &mut Guard, addr: &str, password: &str) -> String {
    let dir = guard.base.join("pg");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .unwrap()
            .success()
    );
    let data = dir.join("data");
    let out = as_postgres("initdb")
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-N",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
    let child = as_postgres("postgres")
        .arg("-D")
        .arg(&data)
        .args(["-c", &format!("listen_addresses={addr}"), "-c", "port=5432"])
        .args(["-c", &format!("unix_socket_directories={}", dir.display())])
        .args([
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    guard.children.push(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !as_postgres("pg_isready")
        .args(["-q", "-h"])
        .arg(&dir)
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    for sql in [
        format!("CREATE ROLE app LOGIN PASSWORD '{password}'"),
        "CREATE DATABASE app OWNER app".to_string(),
    ] {
        let out = as_postgres("psql")
            .arg("-h")
            .arg(&dir)
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    format!("postgres://app:{password}@{addr}:5432/app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_is_sized_answers_and_is_idempotent() {
    let guard = Guard::new("mc");
    let redactor = Redactor::new();
    let captured = Captured::default();
    let a = addr(11);
    let t = captured.transport(&a, &redactor);
    let mut node = CacheNode {
        root: guard.root("cache"),
        addr: a.clone(),
        port: 11211,
        memory_mb: None,
    };
    let first = ensure_memcached(&tpl(), &t, &node).await.unwrap();
    assert!(first.started);
    let kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    assert_eq!(first.memory_mb, memory_for(kb));
    let again = ensure_memcached(&tpl(), &t, &node).await.unwrap();
    assert!(!again.started, "same settings: nothing restarts");

    node.memory_mb = Some(64);
    assert!(ensure_memcached(&tpl(), &t, &node).await.unwrap().started);
    let stats = memcached_stats(&tpl(), &t, &a, 11211).await.unwrap();
    assert_eq!(stats["limit_maxbytes"], (64u64 * 1024 * 1024).to_string());
    let pid: u32 = stats["pid"].parse().unwrap();
    let owner = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = owner.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains("65534"), "memcached runs as nobody: {uid}");

    // set and get over the wire
    let mut s = TcpStream::connect((a.as_str(), 11211)).await.unwrap();
    s.write_all(b"set k 0 60 5\r\nhello\r\nget k\r\nquit\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    assert_eq!(buf, "STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n");
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_behind_haproxy_scales_without_failing_a_request() {
    let mut guard = Guard::new("app");
    let redactor = Redactor::new();
    let captured = Captured::default();
    let password = format!("pw-{:016x}", fastrand::u64(..));
    let (pg, cache, lb_addr) = (addr(21), addr(22), addr(40));
    let database_url = start_postgres(&mut guard, &pg, &password);

    let cache_t = captured.transport(&cache, &redactor);
    ensure_memcached(
        &tpl(),
        &cache_t,
        &CacheNode {
            root: guard.root("cache"),
            addr: cache.clone(),
            port: 11211,
            memory_mb: Some(64),
        },
    )
    .await
    .unwrap();

    let app_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let web: Vec<(String, String, LocalTransport)> = (1..=3u8)
        .map(|i| {
            let a = addr(30 + i);
            (
                format!("web-{i}"),
                guard.root(&format!("web{i}")),
                captured.transport(&a, &redactor),
            )
        })
        .collect();
    let app = |i: usize| AppRelease {
        root: web[i].1.clone(),
        addr: web[i].2.host().to_string(),
        port: 8080,
        app_dir_local: app_dir.clone(),
        build: None,
        start: "/usr/bin/python3 app.py".to_string(),
        health_path: "/health".to_string(),
        env: BTreeMap::from([
            ("DATABASE_URL".to_string(), database_url.clone()),
            ("DATABASE_REPLICA_URLS".to_string(), String::new()),
            ("MEMCACHE_SERVERS".to_string(), format!("{cache}:11211")),
        ]),
        secrets: vec![password.clone().into()],
        health_timeout: Duration::from_secs(30),
        archive: None,
        pinned: None,
        release_command: None,
    };
    use appgrid::remote::Remote;

    // Two machines, released concurrently.
    let (a0, a1) = (app(0), app(1));
    let templates = tpl();
    let (r1, r2) = tokio::join!(
        release(&templates, &web[0].2, &a0, &redactor),
        release(&templates, &web[1].2, &a1, &redactor)
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert!(r1.restarted && r2.restarted);
    eprintln!("release: {:?} and {:?}", r1.took, r2.took);
    let env_file = Path::new(&web[0].1).join("etc/appgrid/app/env");
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let backend = |i: usize| Backend {
        name: web[i].0.clone(),
        addr: web[i].2.host().to_string(),
        port: 8080,
    };
    let lb_t = captured.transport(&lb_addr, &redactor);
    let mut lb = LbConfig {
        root: guard.root("lb"),
        addr: lb_addr.clone(),
        listen: 8000,
        health_path: "/health".to_string(),
        servers: vec![backend(0), backend(1)],
        maintenance: None,
        tls: None,
        max_connections: None,
    };
    let bounds = Bounds {
        healthy: Duration::from_secs(20),
        drain: Duration::from_secs(20),
    };
    assert_eq!(
        ensure_haproxy(&tpl(), &lb_t, &lb, bounds).await.unwrap(),
        LbOutcome::Started
    );
    assert_eq!(
        ensure_haproxy(&tpl(), &lb_t, &lb, bounds).await.unwrap(),
        LbOutcome::Unchanged
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = haproxy::show_stat(&tpl(), &lb_t, &lb.root).await.unwrap();
        if stats.len() == 2
            && stats.iter().all(|s| s.is_up())
            && stats.iter().all(|s| s.check_status.contains("L7OK"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "servers not up: {stats:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let front = format!("{lb_addr}:8000");

    // Requests through HAProxy reach both instances.
    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        let (status, body) = http(&front, "GET", "/", "").await.unwrap();
        assert_eq!(status, 200, "{body}");
        seen.insert(served_by(&body));
    }
    let expect: BTreeSet<String> = [0, 1]
        .iter()
        .map(|&i| format!("{}:8080", web[i].2.host()))
        .collect();
    assert_eq!(seen, expect);

    // A note: written to the primary, read from the database, then the cache.
    let (status, body) = http(&front, "POST", "/notes", "hello from the test")
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let id = json_field(&body, "id").to_string();
    let (status, body) = http(&front, "GET", &format!("/notes/{id}"), "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from the test"), "{body}");
    assert_eq!(json_field(&body, "cached"), "false", "{body}");
    assert_eq!(json_field(&body, "source"), format!("{pg}:5432"), "{body}");
    // The app's cache is best effort (pymemcache with a 1 s timeout and
    // errors ignored): on a loaded machine one set may time out, and the
    // next miss sets it again. The note is served from memcached within a
    // few reads.
    let mut body = String::new();
    for _ in 0..10 {
        body = http(&front, "GET", &format!("/notes/{id}"), "")
            .await
            .unwrap()
            .1;
        if json_field(&body, "cached") == "true" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(json_field(&body, "cached"), "true", "{body}");
    assert!(body.contains("hello from the test"), "{body}");

    // The same release again: nothing restarts.
    let again = release(&tpl(), &web[0].2, &app(0), &redactor)
        .await
        .unwrap();
    assert!(!again.restarted);
    assert_eq!(again.pid, r1.pid);
    assert_eq!(again.release_id, r1.release_id);

    // Scale 2 → 3 → 2 under load.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let by_server = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, ok, failed, by_server, errors, front) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            by_server.clone(),
            errors.clone(),
            front.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(180)
                && ok.load(Ordering::Relaxed) < 200_000
            {
                match http(&front, "GET", "/", "").await {
                    Ok((200, body)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        *by_server
                            .lock()
                            .unwrap()
                            .entry(served_by(&body))
                            .or_default() += 1;
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.lock().unwrap().push(format!("{other:?}"));
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r3 = release(&tpl(), &web[2].2, &app(2), &redactor)
        .await
        .unwrap();
    eprintln!("release web-3: {:?}", r3.took);
    lb.servers.push(backend(2));
    let t0 = Instant::now();
    let outcome = ensure_haproxy(&tpl(), &lb_t, &lb, bounds).await.unwrap();
    eprintln!("add web-3 through HAProxy: {:?}", t0.elapsed());
    assert_eq!(
        outcome,
        LbOutcome::ServersChanged {
            added: vec!["web-3".into()],
            drained: vec![]
        }
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    lb.servers.retain(|s| s.name != "web-2");
    let t0 = Instant::now();
    let outcome = ensure_haproxy(&tpl(), &lb_t, &lb, bounds).await.unwrap();
    eprintln!("drain web-2 through HAProxy: {:?}", t0.elapsed());
    assert_eq!(
        outcome,
        LbOutcome::ServersChanged {
            added: vec![],
            drained: vec!["web-2".into()]
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A reload (a setting changed) under load keeps serving too.
    let mut reloaded = lb.clone();
    reloaded.health_path = "/health?lb=1".to_string();
    let t0 = Instant::now();
    let outcome = ensure_haproxy(&tpl(), &lb_t, &reloaded, bounds)
        .await
        .unwrap();
    eprintln!("reload: {:?}", t0.elapsed());
    assert_eq!(
        outcome,
        LbOutcome::Reloaded {
            added: vec![],
            drained: vec![]
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let by_server = by_server.lock().unwrap().clone();
    eprintln!("load: {ok} ok, {failed} failed, by server {by_server:?}");
    let errors = errors.lock().unwrap().clone();
    assert_eq!(
        failed,
        0,
        "first errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(ok > 0);
    assert!(
        by_server
            .get(&format!("{}:8080", web[2].2.host()))
            .copied()
            .unwrap_or(0)
            > 0,
        "{by_server:?}"
    );
    let names: Vec<String> = haproxy::servers(&tpl(), &lb_t, &lb.root)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["web-1", "web-3"]);
    let stats = haproxy::show_stat(&tpl(), &lb_t, &lb.root).await.unwrap();
    assert!(stats.iter().all(|s| s.is_up()), "{stats:?}");

    let lines = captured.0.lock().unwrap().clone();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| !l.contains(&password)),
        "a captured line holds the password"
    );
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_never_gets_healthy_fails_with_its_redacted_log() {
    let guard = Guard::new("bad");
    let redactor = Redactor::new();
    let captured = Captured::default();
    let a = addr(51);
    let t = captured.transport(&a, &redactor);
    let app_dir = guard.base.join("bad-app");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(
        app_dir.join("run.sh"),
        "echo \"starting with $DATABASE_URL on $ADDR:$PORT\"\necho 'no port for me'\nexec sleep 600\n",
    )
    .unwrap();
    let secret = format!("s3cret-{:016x}", fastrand::u64(..));
    let app = AppRelease {
        root: guard.root("web"),
        addr: a.clone(),
        port: 8080,
        app_dir_local: app_dir,
        build: Some("echo built > built.txt".to_string()),
        start: "sh run.sh".to_string(),
        health_path: "/health".to_string(),
        env: BTreeMap::from([(
            "DATABASE_URL".to_string(),
            format!("postgres://app:{secret}@{a}/app"),
        )]),
        secrets: vec![secret.clone().into()],
        health_timeout: Duration::from_secs(2),
        archive: None,
        pinned: None,
        release_command: None,
    };
    let t0 = Instant::now();
    let err = release(&tpl(), &t, &app, &redactor)
        .await
        .unwrap_err()
        .to_string();
    eprintln!("failed after {:?}: {err}", t0.elapsed());
    assert!(err.contains("did not answer 200 within 2.0s"), "{err}");
    assert!(err.contains("no previous release to roll back to"), "{err}");
    assert!(
        err.contains("GET http://") && err.contains(":8080/health"),
        "{err}"
    );
    assert!(
        err.contains("no port for me"),
        "the log tail is in the error: {err}"
    );
    assert!(
        err.contains("starting with postgres://app:(sensitive)@"),
        "{err}"
    );
    assert!(!err.contains(&secret));
    let current = Path::new(&app.root).join("var/lib/appgrid/app/current/built.txt");
    assert_eq!(std::fs::read_to_string(current).unwrap(), "built\n");
    let lines = captured.0.lock().unwrap().clone();
    assert!(lines.iter().all(|l| !l.contains(&secret)), "{lines:?}");
    drop(guard);
}
