//! The Postgres and Slony-I roles for real, through the local transport: every
//! node is its own root directory and its own 127.x.y.z address (from this
//! process's pid, never 127.0.0.1), port 5432. Every process started here is
//! stopped by [`Env`]'s Drop, even when a test fails.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use appgrid::remote::Redactor;
use appgrid::remote::local::LocalTransport;
use appgrid::roles::RoleError;
use appgrid::roles::postgres::{self, AppDatabase, PG_BIN, PgNode};
use appgrid::roles::slony::{self, SlonyCluster, SlonyNode};
use secrecy::ExposeSecret;

/// The embedded templates, which these role tests render with.
pub(super) fn tpl() -> appgrid::templates::Templates {
    appgrid::templates::Templates::embedded()
}

/// Two cores: the Postgres tests of one process run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Hold while a test runs Postgres servers (one such test at a time).
pub(super) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) const PORT: u16 = 5432;

/// `127.A.B.C`: A and B from the pid, C from the test and the node.
fn addr(test: u8, n: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        (2 + (pid >> 8) % 250) as u8,
        (pid & 0xff) as u8,
        test * 10 + n,
    )
}

pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(super) struct TestNode {
    pub(super) id: u32,
    pub(super) pg: PgNode,
    pub(super) remote: LocalTransport,
}

pub(super) struct Env {
    test: u8,
    pub(super) dir: PathBuf,
    pub(super) redactor: Redactor,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Mutex<Vec<String>>,
    pub(super) nodes: Vec<TestNode>,
    pub(super) secrets: Vec<String>,
    _serial: MutexGuard<'static, ()>,
}

impl Env {
    pub(super) fn new(test: u8, name: &str) -> Env {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = PathBuf::from(format!("/tmp/appgrid-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            test,
            dir,
            redactor: Redactor::new(),
            lines: Arc::new(Mutex::new(Vec::new())),
            errors: Mutex::new(Vec::new()),
            nodes: Vec::new(),
            secrets: Vec::new(),
            _serial: serial,
        }
    }

    pub(super) fn secret(&mut self, s: &str) {
        self.redactor.add(s);
        self.secrets.push(s.to_string());
    }

    /// Node `n` (Slony id `n`): a root, an address, a transport logging into `lines`.
    pub(super) fn add_node(&mut self, n: u8) -> usize {
        let root = self.dir.join(format!("n{n}"));
        std::fs::create_dir_all(&root).unwrap();
        let a = addr(self.test, n);
        let sink = Arc::clone(&self.lines);
        let t0 = Instant::now();
        let trace = std::env::var_os("APPGRID_TEST_TRACE").is_some();
        let remote = LocalTransport::new(a.to_string(), self.redactor.clone()).with_log(Arc::new(
            move |h: &str, s: &str, l: &str| {
                if trace {
                    eprintln!("{:>8.3} {h} {s} {l}", t0.elapsed().as_secs_f64());
                }
                sink.lock().unwrap().push(format!("{h} {s} {l}"))
            },
        ));
        self.nodes.push(TestNode {
            id: n as u32,
            pg: PgNode::new(root.to_str().unwrap(), IpAddr::V4(a), PORT).without_fsync(),
            remote,
        });
        self.nodes.len() - 1
    }

    pub(super) fn node(&self, id: u32) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    pub(super) fn remotes(&self) -> BTreeMap<u32, &LocalTransport> {
        self.nodes.iter().map(|n| (n.id, &n.remote)).collect()
    }

    /// Keep an error's text for the secrets check, and hand it back.
    pub(super) fn keep<T>(&self, r: Result<T, RoleError>) -> Result<T, RoleError> {
        if let Err(e) = &r {
            self.errors.lock().unwrap().push(format!("{e} {e:?}"));
        }
        r
    }

    pub(super) fn ok<T>(&self, r: Result<T, RoleError>) -> T {
        match self.keep(r) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    pub(super) async fn sql(&self, id: u32, db: &str, sql: &str) -> Vec<Vec<String>> {
        let n = self.node(id);
        self.ok(postgres::query(&tpl(), &n.remote, &n.pg, db, sql).await)
    }

    pub(super) async fn scalar(&self, id: u32, db: &str, sql: &str) -> String {
        self.sql(id, db, sql).await[0][0].clone()
    }

    /// Nothing captured holds a secret: script output, errors, every log file.
    pub(super) fn assert_no_secrets(&self) {
        let mut captured: Vec<String> = self.lines.lock().unwrap().clone();
        captured.extend(self.errors.lock().unwrap().iter().cloned());
        for n in &self.nodes {
            let logs = Path::new(&n.pg.root).join("var/log/appgrid");
            if let Ok(dir) = std::fs::read_dir(&logs) {
                for f in dir.flatten() {
                    captured.push(std::fs::read_to_string(f.path()).unwrap_or_default());
                }
            }
        }
        assert!(!captured.is_empty());
        for s in &self.secrets {
            for c in &captured {
                assert!(!c.contains(s.as_str()), "a secret leaked into: {c}");
            }
        }
    }
}

pub(super) fn pid_in(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn kill_and_wait(pid: i32, signal: i32) {
    unsafe { libc::kill(pid, signal) };
    for _ in 0..100 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

impl Drop for Env {
    fn drop(&mut self) {
        for n in &self.nodes {
            let run = Path::new(&n.pg.root).join("run/appgrid");
            if let Ok(dir) = std::fs::read_dir(&run) {
                for f in dir.flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    if name.starts_with("slon-") && name.ends_with(".pid") {
                        // The watchdog and its worker: the whole process group.
                        if let Some(pid) = pid_in(&f.path()) {
                            kill_and_wait(-pid, libc::SIGTERM);
                        }
                    }
                }
            }
            // Immediate shutdown of the postmaster (SIGQUIT) takes its children along.
            let postmaster = Path::new(&n.pg.data_dir()).join("postmaster.pid");
            if let Some(pid) = pid_in(&postmaster) {
                kill_and_wait(pid, libc::SIGQUIT);
            }
        }
        if std::thread::panicking() || std::env::var_os("APPGRID_TEST_KEEP").is_some() {
            eprintln!("kept {} for inspection", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client of node `target` whose connections come from `source` (socat binds
/// the outgoing side), listening on `listen`:15432.
struct Proxy(std::process::Child);

impl Proxy {
    fn start(listen: Ipv4Addr, source: Ipv4Addr, target: &PgNode) -> Proxy {
        let child = std::process::Command::new("socat")
            .arg(format!("TCP-LISTEN:15432,bind={listen},reuseaddr,fork"))
            .arg(format!("TCP:{}:{},bind={source}", target.addr, target.port))
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("socat");
        for _ in 0..50 {
            if std::net::TcpStream::connect((listen, 15432)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy(child)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// psql as the app user over TCP, the password from a 0600 pgpass file
/// (named by PGPASSFILE, never in an argument). Ok(stdout) or Err(stderr).
pub(super) async fn app_psql(
    env: &Env,
    host: Ipv4Addr,
    port: u16,
    db: &AppDatabase,
    sql: &str,
) -> Result<String, String> {
    let pgpass = env.dir.join("app.pgpass");
    if !pgpass.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pgpass)
            .unwrap();
        std::io::Write::write_all(
            &mut f,
            format!("*:*:*:{}:{}\n", db.user, db.password.expose_secret()).as_bytes(),
        )
        .unwrap();
    }
    let out = tokio::process::Command::new(format!("{PG_BIN}/psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-w"])
        .args(["-h", &host.to_string(), "-p", &port.to_string()])
        .args(["-U", &db.user, "-d", &db.name, "-c", sql])
        .env("PGPASSFILE", &pgpass)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .await
        .unwrap();
    let stderr = env.redactor.redact(&String::from_utf8_lossy(&out.stderr));
    let stdout = env.redactor.redact(&String::from_utf8_lossy(&out.stdout));
    env.lines.lock().unwrap().push(stdout.clone());
    env.lines.lock().unwrap().push(stderr.clone());
    if out.status.success() {
        Ok(stdout.trim().to_string())
    } else {
        Err(stderr)
    }
}

const SCHEMA: &str = "set role blog; \
    create table items (id bigserial primary key, v text not null, at timestamptz not null default now()); \
    create table tags (name text primary key, n int not null default 0); \
    create sequence tickets;";

pub(super) fn checksum_sql() -> &'static str {
    "select count(*) || ':' || coalesce(md5(string_agg(id || '/' || v, ',' order by id)), '-') from items"
}

/// Nodes 1..=n up with the app database; node 1 the origin with SCHEMA and
/// the cluster initialised; nodes 2..=n subscribed. Returns the cluster.
pub(super) async fn cluster(env: &mut Env, n: u8) -> (AppDatabase, SlonyCluster) {
    let db = AppDatabase::generate("blog", "blog", &env.redactor);
    env.secrets.push(db.password.expose_secret().to_string());
    let slony_password = postgres::generate_password();
    env.secret(slony_password.expose_secret());
    for i in 1..=n {
        env.add_node(i);
    }
    let peers: Vec<IpAddr> = env.nodes.iter().map(|n| n.pg.addr).collect();
    let allow = vec!["127.0.0.1/32".to_string()];
    for n in &env.nodes {
        env.ok(postgres::ensure_server(&tpl(), &n.remote, &n.pg, &allow, &peers).await);
        env.ok(postgres::ensure_app_database(&tpl(), &n.remote, &n.pg, &db).await);
    }
    env.sql(1, "blog", SCHEMA).await;
    let first = &env.nodes[0];
    let mut cluster = SlonyCluster::new(
        "appgrid",
        "blog",
        SlonyNode {
            id: 1,
            node: first.pg.clone(),
        },
        slony_password,
    );
    cluster.timeout = Duration::from_secs(60);
    let t = Instant::now();
    env.ok(slony::init(&tpl(), &cluster, &first.remote).await);
    eprintln!("measure: slony init: {:?}", t.elapsed());
    for i in 2..=n as u32 {
        let t = Instant::now();
        let new = SlonyNode {
            id: i,
            node: env.node(i).pg.clone(),
        };
        let r = slony::add_subscriber(&tpl(), &mut cluster, new, &env.remotes()).await;
        env.ok(r);
        eprintln!("measure: subscribe node {i} (idle): {:?}", t.elapsed());
    }
    (db, cluster)
}

/// Poll node `id` until `sql` answers `want`, for at most `bound`; the time it took.
pub(super) async fn wait_for_value(
    env: &Env,
    id: u32,
    sql: &str,
    want: &str,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let n = env.node(id);
        let got = postgres::query(&tpl(), &n.remote, &n.pg, "blog", sql).await;
        if let Ok(rows) = &got {
            if rows.first().and_then(|r| r.first()).map(String::as_str) == Some(want) {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < bound,
            "node {id}: `{sql}` did not answer {want:?} within {bound:?} (last: {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn primary_comes_up_admits_the_app_only_from_allow_from_and_is_idempotent() {
    rt().block_on(async {
        let mut env = Env::new(1, "primary");
        let db = AppDatabase::generate("blog", "blog", &env.redactor);
        env.secrets.push(db.password.expose_secret().to_string());
        let i = env.add_node(1);
        let client = addr(1, 7);
        let intruder = addr(1, 8);
        let allow = vec![format!("{client}/32")];
        let (pg, remote) = (env.nodes[i].pg.clone(), env.nodes[i].remote.clone());

        let started = Instant::now();
        let first = env.ok(postgres::ensure_server(&tpl(), &remote, &pg, &allow, &[]).await);
        eprintln!(
            "measure: primary from nothing to accepting connections: {:?}",
            started.elapsed()
        );
        assert!(first.contains(&"initdb".to_string()), "{first:?}");
        assert!(first.contains(&"started".to_string()), "{first:?}");
        env.ok(postgres::ensure_app_database(&tpl(), &remote, &pg, &db).await);

        // The data directory belongs to postgres and nobody else reads it.
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(pg.data_dir()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        let pgpass_dir_files: Vec<_> = std::fs::read_dir(pg.etc_dir())
            .unwrap()
            .flatten()
            .map(|f| f.file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            pgpass_dir_files.iter().all(|f| !f.ends_with(".sql")),
            "the SQL file with the password is gone: {pgpass_dir_files:?}"
        );

        let pid = std::fs::read_to_string(format!("{}/run/appgrid/postgres.pid", pg.root)).unwrap();
        let second = env.ok(postgres::ensure_server(&tpl(), &remote, &pg, &allow, &[]).await);
        assert!(second.is_empty(), "the second run changed {second:?}");
        env.ok(postgres::ensure_app_database(&tpl(), &remote, &pg, &db).await);
        let pid2 =
            std::fs::read_to_string(format!("{}/run/appgrid/postgres.pid", pg.root)).unwrap();
        assert_eq!(pid, pid2, "postgres was not restarted");

        // The app user, with its password, from the allowed address.
        {
            let _p = Proxy::start(addr(1, 5), client, &pg);
            let who = app_psql(
                &env,
                addr(1, 5),
                15432,
                &db,
                "select current_user || '@' || current_database()",
            )
            .await;
            assert_eq!(who.as_deref(), Ok("blog@blog"));
            let owner = env
                .scalar(
                    1,
                    "blog",
                    "select pg_get_userbyid(datdba) from pg_database where datname = 'blog'",
                )
                .await;
            assert_eq!(owner, "blog");
            // A wrong password is refused.
            let wrong = AppDatabase {
                password: "not-the-password-at-all".into(),
                ..db.clone()
            };
            let other = Env::pgpass_for(&env, &wrong);
            let refused = psql_with(&other, addr(1, 5), &wrong).await;
            assert!(
                refused.contains("password authentication failed"),
                "{refused}"
            );
        }
        // From another address: no pg_hba entry.
        {
            let _p = Proxy::start(addr(1, 6), intruder, &pg);
            let err = app_psql(&env, addr(1, 6), 15432, &db, "select 1")
                .await
                .unwrap_err();
            assert!(err.contains("no pg_hba.conf entry"), "{err}");
            assert!(err.contains(&intruder.to_string()), "{err}");
        }
        // Directly from 127.0.0.1, not in allow_from either.
        let err = app_psql(&env, Ipv4Addr::from(pg_v4(&pg)), PORT, &db, "select 1")
            .await
            .unwrap_err();
        assert!(err.contains("no pg_hba.conf entry"), "{err}");

        // allow_from changes: pg_hba is reloaded, not restarted; the intruder gets in.
        let allow2 = vec![format!("{client}/32"), format!("{intruder}/32")];
        let third = env.ok(postgres::ensure_server(&tpl(), &remote, &pg, &allow2, &[]).await);
        assert_eq!(
            third,
            vec!["pg_hba.conf".to_string(), "reloaded".to_string()]
        );
        {
            let _p = Proxy::start(addr(1, 6), intruder, &pg);
            assert_eq!(
                app_psql(&env, addr(1, 6), 15432, &db, "select 1")
                    .await
                    .as_deref(),
                Ok("1")
            );
        }
        // Bad input never reaches a file.
        let bad = env.keep(
            postgres::ensure_server(&tpl(), &remote, &pg, &["0.0.0.0/0 trust".to_string()], &[])
                .await,
        );
        assert!(
            matches!(bad, Err(RoleError::InvalidValue { .. })),
            "{bad:?}"
        );

        env.ok(postgres::stop_server(&tpl(), &remote, &pg).await);
        assert!(!Path::new(&pg.data_dir()).join("postmaster.pid").exists());
        env.assert_no_secrets();
    });
}

fn pg_v4(pg: &PgNode) -> [u8; 4] {
    match pg.addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => unreachable!(),
    }
}

impl Env {
    fn pgpass_for(env: &Env, db: &AppDatabase) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let path = env.dir.join("other.pgpass");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(
            &mut f,
            format!("*:*:*:{}:{}\n", db.user, db.password.expose_secret()).as_bytes(),
        )
        .unwrap();
        path
    }
}

async fn psql_with(pgpass: &Path, host: Ipv4Addr, db: &AppDatabase) -> String {
    let out = tokio::process::Command::new(format!("{PG_BIN}/psql"))
        .args([
            "-X",
            "-w",
            "-h",
            &host.to_string(),
            "-p",
            "15432",
            "-U",
            &db.user,
            "-d",
            &db.name,
            "-c",
            "select 1",
        ])
        .env("PGPASSFILE", pgpass)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_replica_gets_rows_within_10s_refuses_writes_and_reports_its_lag() {
    rt().block_on(async {
        let mut env = Env::new(2, "replica");
        let started = Instant::now();
        let (db, cluster) = cluster(&mut env, 2).await;
        eprintln!(
            "measure: primary + 1 replica from nothing to replicating: {:?}",
            started.elapsed()
        );
        // slon runs on every node, the origin included.
        for n in &env.nodes {
            assert!(Path::new(&n.pg.root).join("run/appgrid/slon-appgrid.pid").exists());
        }
        let _p = Proxy::start(addr(2, 9), Ipv4Addr::LOCALHOST, &env.node(1).pg);
        app_psql(&env, addr(2, 9), 15432, &db, "insert into items (v) values ('hello')")
            .await
            .unwrap();
        let took = wait_for_value(
            &env,
            2,
            "select count(*) from items where v = 'hello'",
            "1",
            Duration::from_secs(10),
        )
        .await;
        eprintln!("measure: one row from primary to replica: {took:?}");

        // A write on the replica is refused by Slony-I's trigger.
        let replica = env.node(2).pg.addr;
        let IpAddr::V4(replica) = replica else { unreachable!() };
        let err = app_psql(&env, replica, PORT, &db, "insert into items (v) values ('nope')").await;
        let err = err.expect_err("a write on the replica is refused");
        assert!(
            err.contains("cannot be modified on a subscriber node"),
            "{err}"
        );

        // Steady writes: sl_status lag and row visibility.
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let writer = spawn_writer(&env, &db, addr(2, 9), Arc::clone(&stop), Arc::clone(&written));
        let mut lags = Vec::new();
        let mut visible = Vec::new();
        for i in 0..10 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let st = env.ok(slony::status(&tpl(), &cluster, &env.node(1).remote).await);
            lags.push((st[0].lag_events, st[0].lag_time));
            let marker = format!("probe-{i}");
            app_psql(&env, addr(2, 9), 15432, &db, &format!("insert into items (v) values ('{marker}')"))
                .await
                .unwrap();
            visible.push(
                wait_for_value(
                    &env,
                    2,
                    &format!("select count(*) from items where v = '{marker}'"),
                    "1",
                    Duration::from_secs(10),
                )
                .await,
            );
        }
        stop.store(true, Ordering::SeqCst);
        writer.await.unwrap();
        eprintln!(
            "measure: under a steady write load ({} rows): sl_status (lag events, lag time) samples {lags:?}; row visible on the replica after {visible:?}",
            written.load(Ordering::SeqCst)
        );
        env.assert_no_secrets();
    });
}

/// Insert into items as the app through `via`:15432 until `stop`; counts successes.
fn spawn_writer(
    env: &Env,
    db: &AppDatabase,
    via: Ipv4Addr,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let pgpass = env.dir.join("app.pgpass");
    let db = db.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let out = tokio::process::Command::new(format!("{PG_BIN}/psql"))
                .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
                .args([
                    "-h",
                    &via.to_string(),
                    "-p",
                    "15432",
                    "-U",
                    &db.user,
                    "-d",
                    &db.name,
                ])
                .args(["-c", &format!("insert into items (v) values ('w{i}')")])
                .env("PGPASSFILE", &pgpass)
                .output()
                .await
                .unwrap();
            if out.status.success() {
                written.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
}

#[test]
fn a_table_without_a_primary_key_is_refused_by_name() {
    rt().block_on(async {
        let mut env = Env::new(3, "nopk");
        let db = AppDatabase::generate("blog", "blog", &env.redactor);
        env.secrets.push(db.password.expose_secret().to_string());
        let slony_password = postgres::generate_password();
        env.secret(slony_password.expose_secret());
        env.add_node(1);
        let n = &env.nodes[0];
        env.ok(postgres::ensure_server(&tpl(), &n.remote, &n.pg, &[], &[]).await);
        env.ok(postgres::ensure_app_database(&tpl(), &n.remote, &n.pg, &db).await);
        env.sql(1, "blog", "set role blog; create table items (id int primary key); create table events (at timestamptz, what text);").await;
        let cluster = SlonyCluster::new(
            "appgrid",
            "blog",
            SlonyNode { id: 1, node: n.pg.clone() },
            slony_password,
        );
        let err = env.keep(slony::init(&tpl(), &cluster, &n.remote).await).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table public.events has no primary key: Slony-I replicates only tables with one; add one (ALTER TABLE … ADD PRIMARY KEY …)"
        );
        assert!(matches!(err, RoleError::TableWithoutPrimaryKey { ref table } if table == "public.events"));
        // Nothing was set up.
        let schemas = env.scalar(1, "blog", "select count(*) from pg_namespace where nspname = '_appgrid'").await;
        assert_eq!(schemas, "0");
        env.assert_no_secrets();
    });
}

pub(super) fn v4(pg: &PgNode) -> Ipv4Addr {
    Ipv4Addr::from(pg_v4(pg))
}

#[test]
fn replicas_go_from_1_to_2_under_writes_without_losing_a_row_and_a_dropped_one_leaves_the_rest_working()
 {
    rt().block_on(async {
        let mut env = Env::new(4, "scale");
        let (db, mut cluster) = cluster(&mut env, 2).await;
        let primary = v4(&env.node(1).pg);
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let _ = app_psql(&env, primary, PORT, &db, "select 1").await; // writes app.pgpass
            spawn_writer_direct(&env, &db, primary, Arc::clone(&stop), Arc::clone(&written))
        };
        tokio::time::sleep(Duration::from_secs(1)).await;

        // Node 3 joins while the writer runs.
        let i = env.add_node(3);
        let peers: Vec<IpAddr> = env.nodes.iter().map(|n| n.pg.addr).collect();
        let allow = vec!["127.0.0.1/32".to_string()];
        for n in &env.nodes {
            env.ok(postgres::ensure_server(&tpl(), &n.remote, &n.pg, &allow, &peers).await);
        }
        let n3 = &env.nodes[i];
        env.ok(postgres::ensure_app_database(&tpl(), &n3.remote, &n3.pg, &db).await);
        let started = Instant::now();
        let new = SlonyNode {
            id: 3,
            node: n3.pg.clone(),
        };
        let r = slony::add_subscriber(&tpl(), &mut cluster, new, &env.remotes()).await;
        env.ok(r);
        eprintln!(
            "measure: subscribe node 3 under writes (until caught up): {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        writer.await.unwrap();
        let written = written.load(Ordering::SeqCst);
        assert!(written > 10, "the writer wrote {written} rows");

        env.ok(slony::wait_in_sync(&tpl(), &cluster, &env.remotes()).await);
        let origin = env.scalar(1, "blog", checksum_sql()).await;
        assert!(
            origin.starts_with(&format!("{written}:")),
            "{origin} vs {written} written"
        );
        for id in [2, 3] {
            assert_eq!(
                env.scalar(id, "blog", checksum_sql()).await,
                origin,
                "node {id}"
            );
        }
        let st = env.ok(slony::status(&tpl(), &cluster, &env.node(1).remote).await);
        assert_eq!(st.iter().map(|s| s.node).collect::<Vec<_>>(), vec![2, 3]);
        eprintln!("measure: {written} rows written during the subscription, 0 lost; status {st:?}");

        // Node 2 leaves; node 3 keeps replicating.
        env.ok(slony::drop_subscriber(&tpl(), &mut cluster, 2, &env.remotes()).await);
        assert_eq!(
            cluster.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(
            !Path::new(&env.node(2).pg.root)
                .join("run/appgrid/slon-appgrid.pid")
                .exists()
        );
        app_psql(
            &env,
            primary,
            PORT,
            &db,
            "insert into items (v) values ('after-drop')",
        )
        .await
        .unwrap();
        wait_for_value(
            &env,
            3,
            "select count(*) from items where v = 'after-drop'",
            "1",
            Duration::from_secs(10),
        )
        .await;
        let st = env.ok(slony::status(&tpl(), &cluster, &env.node(1).remote).await);
        assert_eq!(st.iter().map(|s| s.node).collect::<Vec<_>>(), vec![3]);
        // The dropped node is a plain database again: no cluster schema.
        let left = env
            .scalar(
                2,
                "blog",
                "select count(*) from pg_namespace where nspname = '_appgrid'",
            )
            .await;
        assert_eq!(left, "0");
        env.assert_no_secrets();
    });
}

/// Like [`spawn_writer`], straight to `host`:5432.
pub(super) fn spawn_writer_direct(
    env: &Env,
    db: &AppDatabase,
    host: Ipv4Addr,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let pgpass = env.dir.join("app.pgpass");
    let db = db.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let out = tokio::process::Command::new(format!("{PG_BIN}/psql"))
                .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
                .args([
                    "-h",
                    &host.to_string(),
                    "-p",
                    &PORT.to_string(),
                    "-U",
                    &db.user,
                    "-d",
                    &db.name,
                ])
                .args(["-c", &format!("insert into items (v) values ('w{i}')")])
                .env("PGPASSFILE", &pgpass)
                .output()
                .await
                .unwrap();
            if out.status.success() {
                written.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
}

#[test]
fn execute_script_reaches_every_node_and_move_set_switches_the_origin() {
    rt().block_on(async {
        let mut env = Env::new(5, "ddl");
        let (db, mut cluster) = cluster(&mut env, 2).await;
        let (one, two) = (v4(&env.node(1).pg), v4(&env.node(2).pg));

        let started = Instant::now();
        env.ok(
            slony::execute_script(
                &tpl(),
                &cluster,
                &env.remotes(),
                "alter table items add column score int not null default 0;",
            )
            .await,
        );
        eprintln!("measure: execute script on 2 nodes: {:?}", started.elapsed());
        let col = "select count(*) from information_schema.columns where table_name = 'items' and column_name = 'score'";
        for id in [1, 2] {
            assert_eq!(env.scalar(id, "blog", col).await, "1", "node {id}");
        }
        assert!(
            std::fs::read_dir(format!("{}/etc/appgrid/slony", env.node(1).pg.root))
                .unwrap()
                .next()
                .is_none(),
            "the DDL file is removed"
        );
        app_psql(&env, one, PORT, &db, "insert into items (v, score) values ('scored', 7)")
            .await
            .unwrap();
        wait_for_value(&env, 2, "select coalesce(sum(score), 0) from items where v = 'scored'", "7", Duration::from_secs(10)).await;

        // A failing script is an error, and changes nothing.
        let err = env
            .keep(slony::execute_script(&tpl(), &cluster, &env.remotes(), "alter table nope add column x int;").await)
            .unwrap_err();
        assert!(err.to_string().contains("execute script"), "{err}");

        // Switchover to node 2.
        let started = Instant::now();
        env.ok(slony::move_set(&tpl(), &mut cluster, 2, &env.remotes()).await);
        eprintln!("measure: move set (switchover): {:?}", started.elapsed());
        assert_eq!(cluster.origin, 2);
        app_psql(&env, two, PORT, &db, "insert into items (v) values ('on-new-origin')")
            .await
            .expect("the new origin accepts writes");
        wait_for_value(&env, 1, "select count(*) from items where v = 'on-new-origin'", "1", Duration::from_secs(10)).await;
        let err = app_psql(&env, one, PORT, &db, "insert into items (v) values ('on-old-origin')")
            .await
            .expect_err("the old origin refuses writes");
        assert!(err.contains("cannot be modified on a subscriber node"), "{err}");
        let st = env.ok(slony::status(&tpl(), &cluster, &env.node(2).remote).await);
        assert_eq!(st.iter().map(|s| s.node).collect::<Vec<_>>(), vec![1]);
        env.assert_no_secrets();
    });
}
