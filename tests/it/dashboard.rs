//! The control panel (issue 14) on the local blog: every endpoint refuses a
//! request without the session (401) and a state-changing one without its
//! CSRF token or from another site (403); the pages show the machines; the
//! query box reads and never writes; a rollback through the panel is the
//! CLI's rollback; no secret of the state reaches any page; and a real
//! headless Chromium clicks through it, saving a screenshot of each page.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cdp::Browser;
use super::cli::{appgrid, scratch, text};
use super::http::{http, http_with};
use super::local_e2e::Blog;

/// A running `appgrid dashboard`: its address and login URL.
pub(super) struct Panel {
    child: Child,
    pub(super) addr: String,
    pub(super) login: String,
}

impl Drop for Panel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn start(manifest: &Path, machines: &Path) -> Panel {
    start_with(manifest, &[("APPGRID_LOCAL_ROOT", machines.as_os_str())])
}

/// `appgrid dashboard MANIFEST` with this environment.
pub(super) fn start_with(manifest: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Panel {
    let mut child = appgrid()
        .args(["dashboard", "--listen", "127.0.0.1:0", "--interval", "1s"])
        .arg(manifest)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    Panel {
        child,
        addr: addr.to_string(),
        login: format!("/{path}"),
    }
}

/// A signed-in browser, as far as HTTP goes: the session cookie on every
/// request.
pub(super) struct Client {
    pub(super) addr: String,
    pub(super) cookie: String,
}

impl Client {
    /// Sign in with the panel's one-time token; also the `Set-Cookie` line.
    pub(super) async fn sign_in(panel: &Panel) -> (Client, String) {
        let (status, head, _) = http_with(&panel.addr, "GET", &panel.login, &[], "")
            .await
            .unwrap();
        assert_eq!(status, 303, "{head}");
        let set_cookie = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_else(|| panic!("no cookie: {head}"))
            .to_string();
        let cookie = set_cookie
            .split_once(':')
            .unwrap()
            .1
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let client = Client {
            addr: panel.addr.clone(),
            cookie,
        };
        (client, set_cookie)
    }

    pub(super) async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = http_with(&self.addr, "GET", path, &[("Cookie", &self.cookie)], "")
            .await
            .unwrap();
        (status, body)
    }

    /// A form POST (with these extra headers): the status and the body.
    pub(super) async fn post(
        &self,
        path: &str,
        body: String,
        extra: Vec<(&'static str, String)>,
    ) -> (u16, String) {
        let (status, _, body) = self.post_with_head(path, body, extra).await;
        (status, body)
    }

    /// A form POST: the status, the head and the body.
    pub(super) async fn post_with_head(
        &self,
        path: &str,
        body: String,
        extra: Vec<(&'static str, String)>,
    ) -> (u16, String, String) {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Cookie", self.cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        http_with(&self.addr, "POST", path, &headers, &body)
            .await
            .unwrap()
    }
}

/// The CSRF token in a page's forms.
pub(super) fn csrf_of(page: &str) -> Option<String> {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .map(|s| s[..64].to_string())
}

/// A screenshot of the browser's page; its HTML.
fn shot(b: &mut Browser, png: &Path) -> String {
    b.screenshot(png);
    b.eval("document.documentElement.outerHTML").to_string()
}

/// In the browser: click the button `selector` names, confirm, and wait up
/// to `seconds` for the job to end; its result and its lines. Screenshots
/// `NAME-confirm.png` and `NAME.png` in `shots`.
pub(super) fn through_job(
    b: &mut Browser,
    selector: &str,
    shots: &Path,
    name: &str,
    seconds: u64,
) -> (serde_json::Value, serde_json::Value) {
    b.eval(&format!("document.querySelector('{selector}').click()"));
    b.wait_for(
        "the confirmation",
        "document.getElementById('confirm') !== null",
        10,
    );
    b.screenshot(&shots.join(format!("{name}-confirm.png")));
    b.eval("document.getElementById('confirm').click()");
    b.wait_for("the job page", "location.pathname.startsWith('/jobs/')", 10);
    b.wait_for(
        &format!("the {name} to finish"),
        "document.getElementById('job-result').textContent !== ''",
        seconds,
    );
    b.screenshot(&shots.join(format!("{name}.png")));
    (
        b.eval("document.getElementById('job-result').textContent"),
        b.eval("document.getElementById('job').textContent"),
    )
}

/// Read an event stream until `done` says the text so far is enough.
pub(super) async fn sse_until(
    addr: &str,
    path: &str,
    cookie: &str,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    while !done(&seen) {
        let left = limit
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("{path}: not there within {limit:?}; got:\n{seen}"));
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("{path} closed; got:\n{seen}"),
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(Err(e)) => panic!("{path}: {e}"),
            Err(_) => panic!("{path}: not there within {limit:?}; got:\n{seen}"),
        }
    }
    seen
}

/// Every secret the state holds: sensitive attributes and config var values.
pub(super) fn secrets(state: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in state["resources"].as_object().unwrap().values() {
        if let Some(attrs) = r["attributes"].as_object() {
            for (k, v) in attrs {
                if appgrid::state::is_sensitive(k)
                    && let Some(v) = v.as_str()
                {
                    out.push(v.to_string());
                }
            }
        }
    }
    if let Some(vars) = state["config"]["vars"].as_object() {
        out.extend(vars.values().filter_map(|v| v.as_str().map(str::to_string)));
    }
    out.retain(|s| s.len() >= 6);
    out
}

/// HTML text back to plain text (what tera's escaping does, undone).
pub(super) fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

pub(super) fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn the_panel_listens_beyond_loopback_only_with_allow_remote_and_tls() {
    let dir = scratch("dash-listen");
    let manifest = dir.join("appgrid.toml");
    std::fs::write(
        &manifest,
        "[app]\nname = \"dash\"\n[provider]\nkind = \"local\"\n\
         [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = 8080\n\
         [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--listen", "0.0.0.0:7071"],
            "refusing to serve the panel on 0.0.0.0:7071: it is not a loopback address",
        ),
        (
            vec!["--listen", "0.0.0.0:7071", "--allow-remote"],
            "refusing to serve the panel on 0.0.0.0:7071 without TLS: --allow-remote needs --tls-cert PEM and --tls-key PEM",
        ),
        (
            vec!["--tls-cert", "/nonexistent.pem"],
            "--tls-cert and --tls-key go together",
        ),
        (
            vec![
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ],
            "cannot use /nonexistent.pem for TLS",
        ),
    ] {
        let out = appgrid()
            .arg("dashboard")
            .arg(m)
            .args(&args)
            .env("APPGRID_LOCAL_ROOT", dir.join("machines"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing served, no URL");
    }

    // With a certificate, the panel speaks TLS and its cookie is Secure.
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let mut child = appgrid()
        .args(["dashboard", m, "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("APPGRID_LOCAL_ROOT", dir.join("machines"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in {line:?}"))
        .to_string();
    let root = format!("{}/", url.split("/login").next().unwrap());
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert_eq!(
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &root]),
        "401"
    );
    let head = curl(&["-D", "-", "-o", "/dev/null", &url]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{head}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_on_the_local_blog() {
    let mut blog = Blog::new("dash-blog");
    blog.ok(&["apply", "--yes"]);
    // A second release (a config var changes), so there is one to roll back to.
    let secret = format!("panel-secret-{:016x}", fastrand::u64(..));
    let var = format!("SECRET_TOKEN={secret}");
    let out = appgrid()
        .args(["config", "set"])
        .arg(&blog.manifest)
        .arg(&var)
        .env("APPGRID_LOCAL_ROOT", &blog.machines)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state = blog.state();
    let secrets = secrets(&state);
    assert!(
        secrets.contains(&secret),
        "the config var is a secret to look for"
    );
    assert!(secrets.len() >= 3, "{secrets:?}");
    let addresses: Vec<String> = state["resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["attributes"]["private_ip"].is_string())
        .filter(|(a, _)| !a.ends_with(".config") && !a.contains(".release"))
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(addresses.len(), 6, "{addresses:?}");

    let panel = start(&blog.manifest, &blog.machines);
    let addr = panel.addr.clone();
    let mut bodies = Vec::new();

    // Without a session: 401 everywhere (pages, streams, the API, actions).
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/events"),
        ("GET", "/api/health"),
        ("GET", "/releases"),
        ("GET", "/jobs/0"),
        ("GET", "/logs"),
        ("GET", "/logs/events"),
        ("GET", "/database"),
        ("GET", "/autoscaling"),
        ("GET", "/scale?web=3"),
        ("POST", "/releases/rollback"),
        ("POST", "/database/query"),
        ("POST", "/database/backup"),
        ("GET", "/logs/service?machine=db.primary&service=postgres"),
    ] {
        let (status, _, body) = http_with(
            &addr,
            method,
            path,
            &[("Cookie", "appgrid_session=forged")],
            "",
        )
        .await
        .unwrap();
        assert_eq!(status, 401, "{method} {path}: {body}");
        bodies.push(body);
    }
    // A wrong token gets nothing; the right one a session cookie, once.
    let (status, _) = http(&addr, "GET", "/login?token=0000", "").await.unwrap();
    assert_eq!(status, 401);
    let (client, set_cookie) = Client::sign_in(&panel).await;
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = client.cookie.clone();
    assert_eq!(cookie.len(), "appgrid_session=".len() + 64, "{cookie}");
    let (again, _) = http(&addr, "GET", &panel.login, "").await.unwrap();
    assert_eq!(again, 401, "the login token works once");
    let get = |path: &'static str| client.get(path);

    // The overview: every machine, with its address, drawn and listed.
    let (status, page) = get("/").await;
    assert_eq!(status, 200, "{page}");
    for a in &addresses {
        assert!(
            page.contains(&format!("data-address=\"{a}\"")),
            "{a} not drawn"
        );
        let ip = state["resources"][a]["attributes"]["private_ip"]
            .as_str()
            .unwrap();
        assert!(page.contains(ip), "{a}'s {ip} not shown");
    }
    assert_eq!(page.matches("<g class=\"node ").count(), 6, "{page}");
    assert!(
        page.contains("<g class=\"node up\" data-address=\"web[0]\""),
        "{page}"
    );
    let csrf = csrf_of(&page);
    bodies.push(page);
    let (status, health) = get("/api/health").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["web[1]"], "up", "{health}");
    assert_eq!(health["db.replica[0]"], "up", "{health}");

    // Releases: v2 active, v1 can be rolled back to.
    let (status, page) = get("/releases").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-release=\"v2\"") && page.contains("Roll back to v1"),
        "{page}"
    );
    let csrf = csrf.or_else(|| csrf_of(&page)).unwrap();
    bodies.push(page);

    // Actions need the CSRF token and the panel's own origin.
    let post = |path: &'static str, body: String, extra: Vec<(&'static str, String)>| {
        client.post(path, body, extra)
    };
    let count = || {
        blog.psql("db.primary", "select count(*) from notes")
            .unwrap()
    };
    let notes_before = count();
    for (body, extra) in [
        (
            form(&[("replica", "db.replica[0]"), ("sql", "select 1")]),
            vec![],
        ),
        (
            form(&[
                ("csrf", &"0".repeat(64)),
                ("replica", "db.replica[0]"),
                ("sql", "select 1"),
            ]),
            vec![],
        ),
        (
            form(&[
                ("csrf", &csrf),
                ("replica", "db.replica[0]"),
                ("sql", "select 1"),
            ]),
            vec![("Origin", "http://evil.example".to_string())],
        ),
        (
            form(&[
                ("csrf", &csrf),
                ("replica", "db.replica[0]"),
                ("sql", "select 1"),
            ]),
            vec![("Sec-Fetch-Site", "cross-site".to_string())],
        ),
    ] {
        let (status, page) = post("/database/query", body.clone(), extra.clone()).await;
        assert_eq!(status, 403, "{body} {extra:?}: {page}");
        bodies.push(page);
    }
    for action in ["/releases/rollback", "/database/backup"] {
        let (status, page) = post(
            action,
            form(&[("release", "v1"), ("confirm", "yes")]),
            vec![],
        )
        .await;
        assert_eq!(status, 403, "{action}: {page}");
    }

    // The query box: a read runs on the replica as the app's user ...
    let (status, page) = post(
        "/database/query",
        form(&[
            ("csrf", &csrf),
            ("replica", "db.replica[0]"),
            ("sql", "select current_user, count(*) from notes"),
        ]),
        vec![("Origin", format!("http://{addr}"))],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<td>itlocal</td>"), "{page}");
    bodies.push(page);
    // ... and nothing that writes runs, however it is dressed.
    for (sql, says) in [
        (
            "INSERT INTO notes(body) VALUES ('panel')",
            "only one statement that reads",
        ),
        (
            "update notes set body = 'x'",
            "only one statement that reads",
        ),
        ("DELETE FROM notes", "only one statement that reads"),
        ("DROP TABLE notes", "only one statement that reads"),
        (
            "create table panel(i int primary key)",
            "only one statement that reads",
        ),
        (
            "SET TRANSACTION READ WRITE",
            "only one statement that reads",
        ),
        (
            "select 1; insert into notes(body) values ('x')",
            "one statement only",
        ),
        (
            "select 1; commit; insert into notes(body) values ('x')",
            "one statement only",
        ),
        ("select 1 \\g", "backslash"),
        (
            "WITH d AS (DELETE FROM notes RETURNING id) SELECT count(*) FROM d",
            "DECLARE CURSOR",
        ),
        ("select nextval('notes_id_seq')", "read-only transaction"),
        (
            "select set_config('transaction_read_only', 'off', true)",
            "read-write",
        ),
        ("select pg_sleep(30)", "statement timeout"),
    ] {
        let (status, page) = post(
            "/database/query",
            form(&[("csrf", &csrf), ("replica", "db.replica[0]"), ("sql", sql)]),
            vec![],
        )
        .await;
        assert_eq!(status, 400, "{sql}: {page}");
        let refused = page
            .split("id=\"refused\">")
            .nth(1)
            .unwrap_or_else(|| panic!("{sql}: {page}"));
        assert!(refused.contains(says), "{sql}: {refused}");
        bodies.push(page);
    }
    assert_eq!(count(), notes_before, "a query wrote");
    // Scale: the panel's plan for three web servers is the CLI's plan for a
    // manifest that says three.
    let (status, page) = get("/scale?web=3&replicas=1").await;
    assert_eq!(status, 200, "{page}");
    let shown = unescape(
        page.split("<pre id=\"plan\">")
            .nth(1)
            .and_then(|p| p.split("</pre>").next())
            .unwrap_or_else(|| panic!("no plan: {page}")),
    );
    blog.write(3, 1);
    let cli = blog.ok(&["plan"]);
    blog.write(2, 1);
    assert_eq!(shown, cli);
    assert!(shown.contains("web[2]"), "{shown}");
    bodies.push(page);
    let (status, page) = get("/scale?web=0").await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = get("/database").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<td>db.replica[0]</td><td>db.primary</td>"),
        "{page}"
    );
    // Without [database.backup], the page says how to enable backups and
    // "Back up now" is refused.
    assert!(
        page.contains("id=\"backups-off\"") && page.contains("[database.backup]"),
        "{page}"
    );
    assert!(!page.contains("id=\"backup-now\""), "{page}");
    bodies.push(page);
    let (status, page) = post(
        "/database/backup",
        form(&[("csrf", &csrf), ("confirm", "yes")]),
        vec![],
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("add [database.backup]"), "{page}");
    let (status, page) = get("/autoscaling").await;
    assert_eq!(status, 200);
    bodies.push(page);
    let (status, page) = get("/logs").await;
    assert_eq!(status, 200);
    assert!(page.contains("web[0], web[1]"), "{page}");
    assert!(
        page.contains(
            "<li>db.primary: <a href=\"&#x2F;logs&#x2F;service?machine=db.primary&amp;service=postgres\" \
             data-log=\"db.primary postgres\">postgres</a>, <a href"
        ),
        "{page}"
    );
    bodies.push(page);
    // Service logs by machine: Postgres's log on the primary (where the
    // app's user connects), every line labelled with it; a service the
    // machine does not run is refused.
    let (status, page) = get("/logs/service?machine=db.primary&service=postgres&lines=50").await;
    assert_eq!(status, 200, "{page}");
    let shown = page
        .split("<pre id=\"service-log\">")
        .nth(1)
        .and_then(|p| p.split("</pre>").next())
        .unwrap_or_else(|| panic!("no log: {page}"));
    assert!(
        shown.lines().count() > 0
            && shown
                .lines()
                .all(|l| l.starts_with("db.primary postgres | ")),
        "{shown}"
    );
    bodies.push(page);
    let (status, page) = get("/logs/service?machine=lb&service=postgres").await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("lb has no postgres log; its services are: haproxy"),
        "{page}"
    );

    // The overview's stream tells a HAProxy state change: web[1] put in
    // maintenance through the runtime API shows as down.
    let lb_id = state["resources"]["lb"]["id"].as_str().unwrap().to_string();
    let sock = appgrid::cloud::local::LocalCloud::new(&blog.machines, "itlocal")
        .root_of(&lb_id)
        .join("run/appgrid/haproxy.sock");
    let haproxy = |command: &str| {
        let out = std::process::Command::new("socat")
            .args(["-", &format!("UNIX-CONNECT:{}", sock.display())])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{command}\n").as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "{command}");
    };
    sse_until(&addr, "/events", &cookie, Duration::from_secs(20), |s| {
        s.contains("data-address=\"web[1]\" data-health=\"up\"")
    })
    .await;
    let changed = Instant::now();
    haproxy("set server web/web1 state maint");
    let seen = sse_until(&addr, "/events", &cookie, Duration::from_secs(20), |s| {
        s.contains("data-address=\"web[1]\" data-health=\"down\"")
    })
    .await;
    eprintln!(
        "panel: HAProxy state change to the page's stream in {:.2}s",
        changed.elapsed().as_secs_f64()
    );
    bodies.push(seen);
    haproxy("set server web/web1 state ready");

    // A log line arrives live.
    let marker = format!("panel-marker-{:08x}", fastrand::u32(..));
    let lb = blog.lb();
    let (m, lb2) = (marker.clone(), lb.clone());
    let poke = tokio::spawn(async move {
        for _ in 0..20 {
            let _ = http(&lb2, "GET", &format!("/?{m}"), "").await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let logs = sse_until(
        &addr,
        "/logs/events",
        &cookie,
        Duration::from_secs(20),
        |s| s.contains(&marker),
    )
    .await;
    poke.abort();
    assert!(logs.contains("event: line"), "{logs}");
    bodies.push(logs);

    // No secret in anything the panel answered.
    for body in &bodies {
        for s in &secrets {
            assert!(
                !body.contains(s.as_str()),
                "a secret reached a page:\n{body}"
            );
        }
    }
    drop(panel);

    // A real browser: each page, the live graph, a live log line, and a
    // rollback clicked through its confirmation.
    let shots = blog.dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let panel = start(&blog.manifest, &blog.machines);
    let base = format!("http://{}", panel.addr);
    let browser_dir = blog.dir.join("browser");
    std::fs::create_dir_all(&browser_dir).unwrap();
    let (login, marker2) = (
        format!("{base}{}", panel.login),
        format!("browser-marker-{:08x}", fastrand::u32(..)),
    );
    let (lb2, m2) = (lb.clone(), marker2.clone());
    let poke = tokio::spawn(async move {
        loop {
            let _ = http(&lb2, "GET", &format!("/?{m2}"), "").await;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    });
    let shots2 = shots.clone();
    let page_texts = tokio::task::spawn_blocking(move || {
        let mut b = Browser::start(&browser_dir);
        let mut texts = Vec::new();
        b.navigate(&login);
        b.wait_for("the overview", "location.pathname === '/'", 10);
        b.wait_for(
            "six machines drawn",
            "document.querySelectorAll('#graph g.node').length === 6",
            10,
        );
        b.wait_for(
            "the live graph",
            "document.getElementById('updated').textContent !== ''",
            20,
        );
        texts.push(shot(&mut b, &shots2.join("overview.png")));
        for page in ["database", "autoscaling", "scale"] {
            b.navigate(&format!("{base}/{page}"));
            texts.push(shot(&mut b, &shots2.join(format!("{page}.png"))));
        }
        b.navigate(&format!("{base}/logs"));
        b.wait_for(
            "a log line",
            &format!("document.getElementById('log').textContent.includes('{marker2}')"),
            20,
        );
        b.screenshot(&shots2.join("logs.png"));
        b.eval("document.querySelector('a[data-log=\"db.primary postgres\"]').click()");
        let shown = "document.getElementById('service-log') !== null";
        b.wait_for("a machine's service log", shown, 20);
        texts.push(shot(&mut b, &shots2.join("service-logs.png")));
        b.navigate(&format!("{base}/releases"));
        b.screenshot(&shots2.join("releases.png"));
        let (result, job) = through_job(
            &mut b,
            "button.rollback[data-release=\"v1\"]",
            &shots2,
            "rollback",
            180,
        );
        texts.push(job.to_string());
        (texts, result, job)
    })
    .await
    .unwrap();
    poke.abort();
    let (texts, result, job) = page_texts;
    assert_eq!(result, "ok", "{job}");
    assert!(
        job.as_str()
            .unwrap()
            .contains("Release v1 is active on every web server"),
        "{job}"
    );
    // Recorded where the CLI's rollback records it.
    assert_eq!(blog.state()["releases"]["pinned"]["number"], 1);
    let listed = blog.ok(&["releases"]);
    assert!(listed.contains("v1"), "{listed}");
    for page in [
        "overview",
        "database",
        "autoscaling",
        "scale",
        "logs",
        "service-logs",
        "releases",
        "rollback-confirm",
        "rollback",
    ] {
        let png = shots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&png)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{}",
            png.display()
        );
    }
    for t in &texts {
        for s in &secrets {
            assert!(!t.contains(s.as_str()), "a secret reached the browser");
        }
    }
    eprintln!("panel screenshots: {}", shots.display());
}

/// The form value `name` on a page (`name="NAME" value="…"`).
fn field(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field: {page}"))
        .to_string()
}

/// The `<pre id="plan">` of a page, as plain text.
fn shown_plan(page: &str) -> String {
    unescape(
        page.split("<pre id=\"plan\">")
            .nth(1)
            .and_then(|p| p.split("</pre>").next())
            .unwrap_or_else(|| panic!("no plan: {page}")),
    )
}

/// A confirm posted: the job it started runs to its end; (result, lines).
async fn run_job(client: &Client, path: &str, body: String) -> (String, String) {
    let (status, head, page) = client.post_with_head(path, body, vec![]).await;
    assert_eq!(status, 303, "{head}{page}");
    let job = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("location:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no location: {head}"));
    assert!(job.starts_with("/jobs/"), "{job}");
    let seen = sse_until(
        &client.addr,
        &format!("{job}/events"),
        &client.cookie,
        Duration::from_secs(600),
        |s| s.contains("event: done"),
    )
    .await;
    let result = seen
        .split("event: done\ndata: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap_or_default()
        .to_string();
    (result, seen)
}

/// Scale and deploy through the panel (issue 14): scaling web 1 → 2 shows
/// the plan `appgrid plan` prints for the edited manifest; a confirm without
/// its CSRF token, or from another site, is refused and changes nothing; a
/// confirm of a plan whose manifest changed since is refused; the confirm
/// writes `[web] count = 2` into the manifest in place (comments kept) and
/// applies the plan under the lock, streamed. Then Releases → Deploy
/// applies a changed release, recorded as a CLI apply's; a headless
/// Chromium clicks a scale to three through its confirm (screenshots); and
/// the CLI's `appgrid scale --yes` scales back, the comments still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_and_deploying_through_the_panel() {
    let mut blog = Blog::new("dash-scale");
    blog.write(1, 1);
    let manifest = format!(
        "# The blog the panel scales.\n{}",
        std::fs::read_to_string(&blog.manifest).unwrap().replace(
            "count = 1\n",
            "count = 1 # app servers: the panel edits this\n"
        )
    );
    std::fs::write(&blog.manifest, &manifest).unwrap();
    blog.ok(&["apply", "--yes"]);
    let serial = |blog: &Blog| blog.state()["serial"].as_u64().unwrap();
    let panel = start(&blog.manifest, &blog.machines);
    let (client, _) = Client::sign_in(&panel).await;

    // The plan for two web servers is the CLI's plan for a manifest saying two.
    let (status, page) = client.get("/scale?web=2").await;
    assert_eq!(status, 200, "{page}");
    let shown = shown_plan(&page);
    let edited = manifest.replace("count = 1 #", "count = 2 #");
    std::fs::write(&blog.manifest, &edited).unwrap();
    let cli = blog.ok(&["plan"]);
    std::fs::write(&blog.manifest, &manifest).unwrap();
    assert_eq!(shown, cli);
    assert!(shown.contains("web[1]"), "{shown}");
    let (csrf, proposal) = (field(&page, "csrf"), field(&page, "proposal"));

    // Refused without the CSRF token, with a wrong one, or from another site.
    let before = serial(&blog);
    for (body, extra) in [
        (form(&[("proposal", &proposal)]), vec![]),
        (
            form(&[("csrf", &"0".repeat(64)), ("proposal", &proposal)]),
            vec![],
        ),
        (
            form(&[("csrf", &csrf), ("proposal", &proposal)]),
            vec![("Origin", "http://evil.example".to_string())],
        ),
    ] {
        let (status, _, page) = client
            .post_with_head("/scale/apply", body.clone(), extra)
            .await;
        assert_eq!(status, 403, "{body}: {page}");
    }
    assert_eq!(std::fs::read_to_string(&blog.manifest).unwrap(), manifest);
    assert_eq!(serial(&blog), before, "a refused confirm changed state");

    // The manifest changed since the plan was shown: refused, nothing changed.
    let touched = format!("{manifest}# touched by hand\n");
    std::fs::write(&blog.manifest, &touched).unwrap();
    let (result, lines) = run_job(
        &client,
        "/scale/apply",
        form(&[("csrf", &csrf), ("proposal", &proposal)]),
    )
    .await;
    assert_eq!(result, "failed", "{lines}");
    assert!(lines.contains("changed since the plan was made"), "{lines}");
    assert_eq!(std::fs::read_to_string(&blog.manifest).unwrap(), touched);
    assert_eq!(serial(&blog), before);
    std::fs::write(&blog.manifest, &manifest).unwrap();
    // A plan is confirmed once.
    let (status, _, _) = client
        .post_with_head(
            "/scale/apply",
            form(&[("csrf", &csrf), ("proposal", &proposal)]),
            vec![],
        )
        .await;
    assert_eq!(status, 409);

    // Confirmed: the manifest says two, comments kept, and two serve.
    let (_, page) = client.get("/scale?web=2").await;
    assert_eq!(shown_plan(&page), cli);
    let confirmed = Instant::now();
    let (result, lines) = run_job(
        &client,
        "/scale/apply",
        form(&[("csrf", &csrf), ("proposal", &field(&page, "proposal"))]),
    )
    .await;
    assert_eq!(result, "ok", "{lines}");
    assert!(lines.contains("web[1]"), "{lines}");
    assert!(lines.contains("now says [web] count = 2"), "{lines}");
    eprintln!(
        "panel: scale web 1 → 2 from the confirm to the job's end in {:.1}s",
        confirmed.elapsed().as_secs_f64()
    );
    assert_eq!(std::fs::read_to_string(&blog.manifest).unwrap(), edited);
    let state = blog.state();
    assert!(
        state["resources"]["web[1]"].is_object(),
        "no web[1] in state"
    );
    let out = blog.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Releases → Deploy: a changed start command becomes a new release.
    let releases = |blog: &Blog| {
        blog.state()["releases"]["records"]
            .as_array()
            .unwrap()
            .len()
    };
    let n = releases(&blog);
    let deployed = edited.replace("python3 app.py", "python3 -u app.py");
    assert_ne!(deployed, edited);
    std::fs::write(&blog.manifest, &deployed).unwrap();
    let (status, page) = client.get("/releases").await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/releases/deploy\""), "{page}");
    let (status, page) = client.get("/releases/deploy").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(shown_plan(&page), blog.ok(&["plan"]));
    let (status, _, _) = client
        .post_with_head(
            "/releases/deploy",
            form(&[("proposal", &field(&page, "proposal"))]),
            vec![],
        )
        .await;
    assert_eq!(status, 403);
    let (result, lines) = run_job(
        &client,
        "/releases/deploy",
        form(&[("csrf", &csrf), ("proposal", &field(&page, "proposal"))]),
    )
    .await;
    assert_eq!(result, "ok", "{lines}");
    let v = n + 1;
    assert!(
        lines.contains(&format!("Release v{v} is active on every web server")),
        "{lines}"
    );
    assert_eq!(releases(&blog), v, "recorded as a CLI apply's release");
    assert!(blog.ok(&["releases"]).contains(&format!("v{v}")));
    assert_eq!(std::fs::read_to_string(&blog.manifest).unwrap(), deployed);
    drop(panel);

    // A real browser clicks a scale to three through its confirm.
    let panel = start(&blog.manifest, &blog.machines);
    let base = format!("http://{}", panel.addr);
    let (shots, browser_dir) = (blog.dir.join("screenshots"), blog.dir.join("browser"));
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::create_dir_all(&browser_dir).unwrap();
    let login_url = format!("{base}{}", panel.login);
    let shots2 = shots.clone();
    let (result, job) = tokio::task::spawn_blocking(move || {
        let mut b = Browser::start(&browser_dir);
        b.navigate(&login_url);
        b.wait_for("the overview", "location.pathname === '/'", 10);
        b.navigate(&format!("{base}/scale"));
        b.eval("document.querySelector('input[name=web]').value = '3'");
        b.eval("document.getElementById('show-plan').click()");
        b.wait_for("the plan", "document.getElementById('plan') !== null", 60);
        b.screenshot(&shots2.join("scale-plan.png"));
        b.eval("document.getElementById('confirm').click()");
        b.wait_for("the job page", "location.pathname.startsWith('/jobs/')", 10);
        b.wait_for(
            "the scale to finish",
            "document.getElementById('job-result').textContent !== ''",
            300,
        );
        b.screenshot(&shots2.join("scale-job.png"));
        let result = b.eval("document.getElementById('job-result').textContent");
        let job = b.eval("document.getElementById('job').textContent");
        (result, job)
    })
    .await
    .unwrap();
    drop(panel);
    assert_eq!(result, "ok", "{job}");
    assert!(
        job.as_str().unwrap().contains("now says [web] count = 3"),
        "{job}"
    );
    assert!(blog.state()["resources"]["web[2]"].is_object());
    for png in ["scale-plan.png", "scale-job.png"] {
        let len = std::fs::metadata(shots.join(png)).map_or(0, |m| m.len());
        assert!(len > 1000, "{png}: {len} bytes");
    }

    // The CLI scales back: same function, the comments still there.
    let out = blog.ok(&["scale", "--web", "1", "--yes"]);
    assert!(out.contains("now says [web] count = 1"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&blog.manifest).unwrap(),
        deployed.replace("count = 2 #", "count = 1 #")
    );
    assert!(blog.state()["resources"]["web[2]"].is_null());
    assert!(blog.state()["resources"]["web[1]"].is_null());
}
