//! End to end over real SSH: the `hosts` and `aws` providers bring the blog up
//! on a farm of network namespaces (tests/it/farm.rs), each with its own sshd.
//!
//! Everything is driven through the `appgrid` binary and checked with clients
//! of the test's own: a hand-written HTTP/1.1 client through HAProxy, psql run
//! on the database hosts, memcached's text protocol over TCP, `ip netns pids`.
//! Every command's output is kept, and no output may contain the database
//! password. Traffic goes only to the farm's addresses and to 127.0.0.1 (moto).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::{appgrid, scratch, text};
use super::farm::Farm;

pub(super) const LISTEN: u16 = 8000;
pub(super) const WEB_PORT: u16 = 8080;

/// One app under test: its scratch directory and manifest, and the output of
/// every command run for it (to look for secrets at the end).
struct Deployment {
    app: String,
    dir: PathBuf,
    manifest: PathBuf,
    env: Vec<(String, String)>,
    outputs: Vec<(String, String)>,
}

impl Deployment {
    fn new(app: &str, manifest_text: &str) -> Deployment {
        let dir = scratch(app);
        let manifest = dir.join("appgrid.toml");
        std::fs::write(&manifest, manifest_text).unwrap();
        Deployment {
            app: app.to_string(),
            dir,
            manifest,
            env: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn write_manifest(&self, manifest_text: &str) {
        std::fs::write(&self.manifest, manifest_text).unwrap();
    }

    /// `appgrid ARGS… MANIFEST [TAIL…]`, output recorded.
    fn run(&mut self, args: &[&str], tail: &[&str]) -> Output {
        let started = Instant::now();
        let out = appgrid()
            .args(args)
            .arg(&self.manifest)
            .args(tail)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("appgrid runs");
        eprintln!(
            "appgrid {} ({}): {:.1} s",
            args.join(" "),
            self.app,
            started.elapsed().as_secs_f64()
        );
        self.outputs.push((
            format!("appgrid {}", args.join(" ")),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        ));
        out
    }

    fn must(&mut self, args: &[&str]) -> Output {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "appgrid {args:?} failed ({}):\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join(".appgrid").join(&self.app)
    }

    /// The state file as JSON, read directly (secrets included).
    fn state(&self) -> Value {
        let path = self.state_dir().join("state.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn resource(&self, address: &str) -> Value {
        let state = self.state();
        let r = &state["resources"][address];
        assert!(
            !r.is_null(),
            "{address} is not in state; it has {:?}",
            state["resources"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
        );
        r.clone()
    }

    fn attribute(&self, address: &str, key: &str) -> String {
        self.resource(address)["attributes"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{address} has no attribute {key}"))
            .to_string()
    }

    /// No output of any command run so far holds `secret`.
    fn assert_never_printed(&self, secret: &str, extra: &[(String, String)]) {
        assert!(secret.len() >= 8, "a real secret: {secret:?}");
        for (command, output) in self.outputs.iter().chain(extra) {
            assert!(
                !output.contains(secret),
                "`{command}` showed the database password"
            );
        }
    }
}

/// A tiny HTTP/1.1 client: one request, `Connection: close`, the whole answer.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer from {addr}: {raw:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line from {addr}: {head:?}"))?;
    Ok((status, body.to_string()))
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Run `program args…` inside `netns` (as that host would), with `env`.
fn in_netns(netns: &str, env: &[(&str, &str)], program: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// One SQL statement as the app's user over TCP to `addr`, from inside
/// `netns` (a web host: where pg_hba admits the app from), with a client of
/// the test's own. `Err` carries psql's stderr.
fn app_sql(
    netns: &str,
    addr: &str,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<String, String> {
    let out = in_netns(
        netns,
        &[("PGPASSWORD", password), ("PGCONNECT_TIMEOUT", "3")],
        "psql",
        &[
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            addr,
            "-p",
            "5432",
            "-U",
            user,
            "-d",
            db,
            "-c",
            sql,
        ],
    );
    if out.status.success() {
        Ok(text(&out.stdout).trim().to_string())
    } else {
        Err(text(&out.stderr))
    }
}

/// memcached's `stats` over TCP: the `STAT` lines.
fn memcached_stats(addr: &str) -> BTreeMap<String, String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with("END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "memcached closed the connection: {answer:?}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Process names (comm) running in `netns` that appgrid's roles start.
fn appgrid_processes(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| {
            ["postgres", "slon", "memcached", "haproxy", "python3"]
                .iter()
                .any(|p| c.starts_with(p))
        })
        .collect()
}

fn release_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/app")
        .display()
        .to_string()
}

/// The blog's roles: web, load balancer, database (+ replicas), cache.
pub(super) fn blog_roles(web: u32, replicas: u32, web_port: u16) -> String {
    let app = release_path();
    format!(
        r#"
[release]
path = "{app}"
start = "/usr/bin/python3 app.py"
health = "/health"

[web]
instance_type = "t3.small"
count = {web}
port = {web_port}

[load_balancer]
instance_type = "t3.small"
listen = {LISTEN}

[database]
instance_type = "m5.large"
version = 15
replicas = {replicas}
schema = "{app}/schema.sql"

[cache]
instance_type = "r5.large"
nodes = 1
memory_mb = 64
"#
    )
}

fn hosts_manifest(app: &str, farm: &Farm, web_port: u16) -> String {
    let hosts: Vec<String> = farm
        .hosts()
        .iter()
        .map(|h| format!("\"{}\"", h.addr))
        .collect();
    format!(
        "[app]\nname = \"{app}\"\n\n[provider]\nkind = \"hosts\"\nssh_user = \"root\"\n\
         ssh_key = \"{}\"\nhosts = [{}]\n{}",
        farm.client_key().display(),
        hosts.join(", "),
        blog_roles(2, 1, web_port)
    )
}

/// The farm host index with address `addr`.
fn host_index(farm: &Farm, addr: &str) -> usize {
    farm.hosts()
        .iter()
        .position(|h| h.addr == addr)
        .unwrap_or_else(|| panic!("{addr} is not a farm host"))
}

/// POST a note through HAProxy and read it back; the id.
pub(super) fn note_round_trip(lb: &str, body: &str) -> i64 {
    let (status, answer) = http(lb, "POST", "/notes", body).unwrap();
    assert_eq!(status, 201, "POST /notes through {lb}: {answer}");
    let id = json(&answer)["id"].as_i64().expect("an id");
    let (status, answer) = http(lb, "GET", &format!("/notes/{id}"), "").unwrap();
    assert_eq!(status, 200, "GET /notes/{id} through {lb}: {answer}");
    let note = json(&answer);
    assert_eq!(note["note"]["body"], body, "{answer}");
    assert!(note["source"].is_string(), "{answer}");
    id
}

/// `served_by` of answers through HAProxy, until every one of `expected` was
/// seen (within `patience`: HAProxy's health checks may still be bringing a
/// restarted server back); how long that took.
fn reach_every_backend(
    lb: &str,
    id: i64,
    expected: &BTreeSet<String>,
    patience: Duration,
) -> Duration {
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    let mut requests = 0;
    while requests < 40 || started.elapsed() < patience {
        let (status, answer) = http(lb, "GET", &format!("/notes/{id}"), "").unwrap();
        assert_eq!(status, 200, "{answer}");
        seen.insert(json(&answer)["served_by"].as_str().unwrap().to_string());
        if &seen == expected {
            return started.elapsed();
        }
        requests += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{requests} requests through {lb} reached {seen:?}, expected {expected:?}");
}

/// Every log appgrid's services wrote on the farm hosts: (name, text).
fn host_logs(farm: &Farm) -> Vec<(String, String)> {
    let mut logs = Vec::new();
    for (i, h) in farm.hosts().iter().enumerate() {
        let dir = farm.private_dir(i, "var/log/appgrid");
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            logs.push((
                format!("{} on {}", entry.file_name().to_string_lossy(), h.addr),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    assert!(!logs.is_empty(), "the services wrote logs");
    logs
}

/// After destroy: nothing of appgrid's runs on any farm host.
fn assert_farm_quiet(farm: &Farm) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<(String, Vec<String>)> = farm
            .hosts()
            .iter()
            .map(|h| (h.addr.clone(), appgrid_processes(&h.netns)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left after destroy: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hosts_provider_runs_the_blog_on_a_farm() {
    let mut farm = Farm::new(6);
    let app = "farmblog";
    let mut d = Deployment::new(app, &hosts_manifest(app, &farm, WEB_PORT));

    // 1. Apply: every role on its own host.
    let started = Instant::now();
    d.must(&["apply", "--yes"]);
    eprintln!(
        "hosts: blog applied on 6 farm hosts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let addr_of = |d: &Deployment, machine: &str| d.attribute(machine, "private_ip");
    let lb_addr = addr_of(&d, "lb");
    let lb = format!("{lb_addr}:{LISTEN}");
    let primary = addr_of(&d, "db.primary");
    let replica = addr_of(&d, "db.replica[0]");
    let cache = addr_of(&d, "cache[0]");
    let webs: BTreeSet<String> = (0..2)
        .map(|i| format!("{}:{WEB_PORT}", addr_of(&d, &format!("web[{i}]"))))
        .collect();
    let distinct: BTreeSet<&String> = [&lb_addr, &primary, &replica, &cache]
        .into_iter()
        .chain(webs.iter())
        .collect();
    assert_eq!(distinct.len(), 6, "one host per machine");

    // Through HAProxy: a note written, then read back.
    let body = format!("hello from the farm {}", std::process::id());
    let id = note_round_trip(&lb, &body);

    // The row reaches the replica (read there as the app's user) within 10 s.
    let password = d.attribute("db.primary.config", "password");
    let user = d.attribute("db.primary.config", "user");
    let db = d.attribute("db.primary.config", "database");
    // Asked from a web host, where the app's connections come from.
    let web_ns = farm.hosts()[host_index(&farm, &addr_of(&d, "web[0]"))]
        .netns
        .clone();
    let written = Instant::now();
    let select = format!("SELECT body FROM notes WHERE id = {id}");
    loop {
        match app_sql(&web_ns, &replica, &user, &password, &db, &select) {
            Ok(found) if found == body => break,
            other => assert!(
                written.elapsed() < Duration::from_secs(10),
                "note {id} not on the replica after 10 s: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "hosts: note {id} seen on the replica {:.2} s after the POST returned",
        written.elapsed().as_secs_f64()
    );
    // A write on the replica is refused (Slony's deny-access trigger).
    let refused = app_sql(
        &web_ns,
        &replica,
        &user,
        &password,
        &db,
        "INSERT INTO notes (body) VALUES ('written on a replica')",
    );
    let err = refused.expect_err("a write on the replica must be refused");
    assert!(err.contains("Slony-I"), "refused, but not by Slony: {err}");

    // The panel's query box runs psql on the replica's own host, over SSH:
    // it connects through that machine's Unix socket (no client address),
    // which TCP from here could not (allow_from does not hold this host).
    let env: Vec<(&str, &std::ffi::OsStr)> = d
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), std::ffi::OsStr::new(v.as_str())))
        .collect();
    let (status, page) = super::dashboard_db::query_box(
        &d.manifest,
        &env,
        "db.replica[0]",
        &format!(
            "SELECT coalesce(host(inet_client_addr()), 'socket'), current_user, body \
             FROM notes WHERE id = {id}"
        ),
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("<td>socket</td><td>{user}</td><td>{body}</td>")),
        "{page}"
    );
    assert!(!page.contains(&password), "the password reached the page");
    let (status, page) = super::dashboard_db::query_box(
        &d.manifest,
        &env,
        "db.replica[0]",
        "select nextval('notes_id_seq')",
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("read-only transaction"), "{page}");

    // memcached on the cache host answers.
    let stats = memcached_stats(&format!("{cache}:11211"));
    assert!(stats.contains_key("pid"), "{stats:?}");
    assert_eq!(stats["limit_maxbytes"], (64u64 << 20).to_string());

    // HAProxy spreads requests over both web hosts.
    reach_every_backend(&lb, id, &webs, Duration::ZERO);

    // Nothing left to do; host keys pinned on first contact.
    let out = d.run(&["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "re-plan after apply:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for machine in [
        "lb",
        "web[0]",
        "web[1]",
        "db.primary",
        "db.replica[0]",
        "cache[0]",
    ] {
        assert_eq!(
            d.attribute(machine, "bind_addr"),
            addr_of(&d, machine),
            "{machine} binds the address it was reached at"
        );
        let pin = d.attribute(machine, "host_key");
        let i = host_index(&farm, &addr_of(&d, machine));
        assert_eq!(pin, farm.host_key(i), "{machine}'s pin");
    }

    // 2. A web host's key changes: the next apply that touches it refuses,
    // naming the host and both fingerprints, and the old pin stays.
    let web0 = addr_of(&d, "web[0]");
    let w = host_index(&farm, &web0);
    let old_pin = d.attribute("web[0]", "host_key");
    let old_fp = ssh_fingerprint(&farm.host_key(w));
    farm.regenerate_host_key(w);
    let new_fp = ssh_fingerprint(&farm.host_key(w));
    assert_ne!(old_fp, new_fp);
    let new_port = WEB_PORT + 1;
    d.write_manifest(&hosts_manifest(app, &farm, new_port));
    let out = d.run(&["apply", "--yes"], &[]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "apply with a changed host key:\n{all}"
    );
    let refusal = all
        .lines()
        .find(|l| l.starts_with("error:") && l.contains("host key of"))
        .unwrap_or_else(|| panic!("no host key error:\n{all}"));
    assert!(refusal.contains(&web0), "{refusal}");
    assert!(refusal.contains(&old_fp), "{refusal}");
    assert!(refusal.contains(&new_fp), "{refusal}");
    assert_eq!(d.attribute("web[0]", "host_key"), old_pin, "the pin stays");

    // The rebuild was on purpose: forget the pin, and the next apply pins the
    // new key and finishes the change.
    let out = d.run(&["state", "forget-host-key"], &["web[0]"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&old_fp), "{}", text(&out.stdout));
    d.must(&["apply", "--yes"]);
    assert_eq!(d.attribute("web[0]", "host_key"), farm.host_key(w));
    let webs: BTreeSet<String> = (0..2)
        .map(|i| format!("{}:{new_port}", addr_of(&d, &format!("web[{i}]"))))
        .collect();
    reach_every_backend(&lb, id, &webs, Duration::from_secs(15));

    // 5. Destroy: nothing of appgrid's left running, every host free again.
    d.must(&["destroy", "--yes", "--allow-data-loss"]);
    assert_farm_quiet(&farm);
    let claims: Value =
        serde_json::from_str(&std::fs::read_to_string(d.state_dir().join("hosts.json")).unwrap())
            .unwrap();
    assert_eq!(claims["claims"], Value::Array(vec![]), "{claims}");

    // 3. No output of any of it showed the password, nor any log on the hosts.
    d.assert_never_printed(&password, &host_logs(&farm));
}

/// `SHA256:…` of an OpenSSH public key line, as ssh-keygen prints it.
fn ssh_fingerprint(public_line: &str) -> String {
    let key = russh::keys::PublicKey::from_openssh(public_line).unwrap();
    appgrid::remote::ssh::fingerprint(&key)
}

/// A proxy command for the `aws` provider that routes each instance (by id,
/// `%i`) to a farm host: round-robin in order of first sight, remembered in
/// `routes` ("instance-id address" lines). moto's own addresses are never used.
fn write_router(dir: &Path, farm: &Farm) -> (PathBuf, PathBuf) {
    let routes = dir.join("routes");
    let script = dir.join("route.sh");
    let hosts: Vec<&str> = farm.hosts().iter().map(|h| h.addr.as_str()).collect();
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# route.sh INSTANCE-ID: connect stdin/stdout to the farm host of that instance.
set -eu
id=$1
routes='{routes}'
exec 9>>"$routes.lock"
flock 9
touch "$routes"
addr=$(awk -v id="$id" '$1 == id {{ print $2 }}' "$routes")
if [ -z "$addr" ]; then
    n=$(wc -l < "$routes")
    set -- {hosts}
    shift $((n % $#))
    addr=$1
    printf '%s %s\n' "$id" "$addr" >> "$routes"
fi
flock -u 9
exec socat - "TCP:$addr:22"
"#,
            routes = routes.display(),
            hosts = hosts.join(" "),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, routes)
}

#[test]
fn aws_provider_configures_moto_instances_through_a_proxy_command() {
    let farm = Farm::new(4);
    let app = "farmaws";
    let moto = super::moto::shared();
    let mut d = Deployment::new(app, "");
    let (router, routes) = write_router(&d.dir, &farm);
    d.write_manifest(&format!(
        r#"[app]
name = "{app}"

[provider]
kind = "aws"
region = "us-east-1"
zones = ["us-east-1a"]
image = "ami-12c6146b"
endpoint = "{endpoint}"
ssh_user = "root"
ssh_key = "{key}"
ssh_from = ["10.0.0.0/8"]
# moto's instances have made-up addresses: reach each through a farm host.
proxy_command = "{router} %i"
{roles}"#,
        endpoint = moto.endpoint,
        key = farm.client_key().display(),
        router = router.display(),
        roles = blog_roles(1, 0, WEB_PORT),
    ));
    d.env = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        (
            "AWS_CONFIG_FILE",
            d.dir.join("no-config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            d.dir.join("no-credentials").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let started = Instant::now();
    d.must(&["apply", "--yes"]);
    eprintln!(
        "aws: blog (1 web, no replica) applied through moto + proxy command in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Which farm host each instance landed on, as the router recorded it.
    let routed: BTreeMap<String, String> = std::fs::read_to_string(&routes)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, addr)| (id.to_string(), addr.to_string()))
        .collect();
    let farm_host_of = |machine: &str| {
        let id = d.resource(machine)["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("i-"), "{machine} is an EC2 instance: {id}");
        routed
            .get(&id)
            .unwrap_or_else(|| panic!("{machine} ({id}) was never routed: {routed:?}"))
            .clone()
    };
    let machines = ["lb", "web[0]", "db.primary", "cache[0]"];
    let mut used = BTreeSet::new();
    for machine in machines {
        let farm_addr = farm_host_of(machine);
        // Services bind where the machine really is, not at moto's address.
        assert_eq!(d.attribute(machine, "bind_addr"), farm_addr, "{machine}");
        assert_ne!(d.attribute(machine, "private_ip"), farm_addr, "{machine}");
        let pin = d.attribute(machine, "host_key");
        assert_eq!(pin, farm.host_key(host_index(&farm, &farm_addr)));
        used.insert(farm_addr);
    }
    assert_eq!(used.len(), machines.len(), "one farm host per instance");

    // The app answers through HAProxy on the farm host that got the lb instance.
    let lb = format!("{}:{LISTEN}", farm_host_of("lb"));
    assert_eq!(
        d.attribute("lb.config", "url"),
        format!("http://{lb}/"),
        "the URL apply printed"
    );
    let id = note_round_trip(&lb, "hello from moto's instances");
    let web = format!("{}:{WEB_PORT}", farm_host_of("web[0]"));
    reach_every_backend(&lb, id, &BTreeSet::from([web]), Duration::ZERO);
    let cache = farm_host_of("cache[0]");
    assert!(memcached_stats(&format!("{cache}:11211")).contains_key("pid"));

    let out = d.run(&["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "re-plan after apply:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let password = d.attribute("db.primary.config", "password");
    d.must(&["destroy", "--yes", "--allow-data-loss"]);
    assert_farm_quiet(&farm);
    let left: Vec<String> = d.state()["resources"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state after destroy: {left:?}");
    d.assert_never_printed(&password, &host_logs(&farm));
}

/// The autoscaler on the host farm, over real SSH: load above the target
/// claims a spare host for a second web server, which then serves; once the
/// load is gone and the stabilization window has passed, the tier shrinks and
/// the host goes back to the pool.
#[test]
fn the_autoscaler_grows_and_shrinks_the_web_tier_on_the_farm() {
    let farm = Farm::new(5); // lb, db.primary, cache, web[0], and one spare
    let app = "farmscale";
    let hosts: Vec<String> = farm
        .hosts()
        .iter()
        .map(|h| format!("\"{}\"", h.addr))
        .collect();
    let manifest = format!(
        "[app]\nname = \"{app}\"\n\n[provider]\nkind = \"hosts\"\nssh_user = \"root\"\n\
         ssh_key = \"{}\"\nhosts = [{}]\n{}\n[autoscale]\nmetric = \"requests_per_instance\"\ntarget = 5\n\
         min = 1\nmax = 2\nscale_out_cooldown = \"2s\"\nscale_in_cooldown = \"10s\"\nwarmup = \"1s\"\ninterval = \"2s\"\n",
        farm.client_key().display(),
        hosts.join(", "),
        blog_roles(1, 0, WEB_PORT)
    );
    let mut d = Deployment::new(app, &manifest);
    d.must(&["apply", "--yes"]);
    let lb = format!("{}:{LISTEN}", d.attribute("lb", "private_ip"));
    let id = note_round_trip(&lb, "scaling on the farm");

    d.must(&["autoscale", "--once"]); // the first counters
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..100 {
        let (status, answer) = http(&lb, "GET", "/", "").unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    let out = d.must(&["autoscale", "--once"]);
    assert!(
        text(&out.stdout).contains(" 1 -> 2 "),
        "{}",
        text(&out.stdout)
    );
    let webs: BTreeSet<String> = (0..2)
        .map(|i| {
            format!(
                "{}:{WEB_PORT}",
                d.attribute(&format!("web[{i}]"), "private_ip")
            )
        })
        .collect();
    reach_every_backend(&lb, id, &webs, Duration::from_secs(30));

    // Idle: a pass every interval until the window has passed and the tier shrinks.
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let out = d.must(&["autoscale", "--once"]);
        if text(&out.stdout).contains(" 2 -> 1 ") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no scale-in: {}",
            text(&out.stdout)
        );
    }
    assert!(
        d.state()["resources"]["web[1]"].is_null(),
        "web[1] still in state"
    );
    let claims: Value =
        serde_json::from_str(&std::fs::read_to_string(d.state_dir().join("hosts.json")).unwrap())
            .unwrap();
    assert_eq!(
        claims["claims"].as_array().unwrap().len(),
        4,
        "the spare host went back to the pool"
    );
    let only: BTreeSet<String> = [format!(
        "{}:{WEB_PORT}",
        d.attribute("web[0]", "private_ip")
    )]
    .into();
    reach_every_backend(&lb, id, &only, Duration::from_secs(10));
    d.must(&["destroy", "--yes", "--allow-data-loss"]);
    assert_farm_quiet(&farm);
}
