//! HAProxy in front of the web tier: configuration, first start or seamless
//! reload, and scaling through the runtime API over the stats socket.
//!
//! The configuration on the machine always describes what the running process
//! does. [`ensure_haproxy`] with a different server list changes the running
//! process at runtime ([`add_server`], [`drain_server`]) and then rewrites the
//! file, with no reload; any other change is a reload that keeps server state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tera::Context;

use super::web_error::{WebRoleError, check_root, check_token, run_template};
use crate::remote::Remote;

/// The backend every web instance belongs to.
pub const BACKEND: &str = "web";

/// Health-check settings of every server, from the config or the runtime API
/// (servers added at runtime do not inherit `default-server` in 2.6).
pub const SERVER_OPTIONS: &str = "check inter 1s fastinter 250ms downinter 1s rise 2 fall 2";

/// One web instance behind the load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// The server's name in HAProxy (and in `show stat`): letters, digits, `-_.`.
    pub name: String,
    pub addr: String,
    pub port: u16,
}

/// The load balancer machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbConfig {
    /// The machine's root prefix ("" on a real host).
    pub root: String,
    /// The address the frontend binds to.
    pub addr: String,
    pub listen: u16,
    /// The app's health path, e.g. `/health`.
    pub health_path: String,
    pub servers: Vec<Backend>,
}

/// How long scaling operations may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// A new server must pass its health check within this.
    pub healthy: Duration,
    /// A drained server's sessions must end within this (then they are cut).
    pub drain: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            healthy: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// What [`ensure_haproxy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbOutcome {
    Started,
    /// Settings changed: a seamless reload (servers changed first at runtime).
    Reloaded {
        added: Vec<String>,
        drained: Vec<String>,
    },
    /// Only the servers changed: done at runtime, no reload.
    ServersChanged {
        added: Vec<String>,
        drained: Vec<String>,
    },
    Unchanged,
}

/// One server row of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerStat {
    pub backend: String,
    pub name: String,
    /// `UP`, `DOWN`, `DRAIN`, `MAINT`, `UP 1/2`, …
    pub status: String,
    pub weight: u64,
    /// Current sessions.
    pub scur: u64,
    /// Queued requests.
    pub qcur: u64,
    /// Sessions in total.
    pub stot: u64,
    /// HTTP requests in total.
    pub req_tot: u64,
    pub hrsp_2xx: u64,
    pub hrsp_5xx: u64,
    /// Sessions per second over the last second.
    pub rate: u64,
    /// Average response time (ms) over the last 1024 requests.
    pub rtime: u64,
    /// e.g. `L7OK`, `L4CON`, `* L7OK` while a check runs.
    pub check_status: String,
    pub addr: String,
}

impl ServerStat {
    /// Up and taking new traffic.
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }
}

fn check_lb(lb: &LbConfig, host: &str) -> Result<(), WebRoleError> {
    check_root(host, &lb.root)?;
    check_token(host, "load balancer address", &lb.addr)?;
    check_health_path(host, &lb.health_path)?;
    if lb.listen == 0 {
        return Err(WebRoleError::invalid(host, "listen port", "must not be 0"));
    }
    let mut names = std::collections::BTreeSet::new();
    for s in &lb.servers {
        check_backend(host, s)?;
        if !names.insert(&s.name) {
            return Err(WebRoleError::invalid(
                host,
                "load balancer servers",
                format!("{:?} appears twice", s.name),
            ));
        }
    }
    Ok(())
}

/// The health path goes into haproxy.cfg: `/` then URL characters, no spaces.
pub(crate) fn check_health_path(host: &str, path: &str) -> Result<(), WebRoleError> {
    if !path.starts_with('/')
        || path.len() > 200
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~?=&%+".contains(&b))
    {
        return Err(WebRoleError::invalid(
            host,
            "health path",
            format!("{path:?} must start with '/' and hold only URL characters (no spaces)"),
        ));
    }
    Ok(())
}

fn check_backend(host: &str, s: &Backend) -> Result<(), WebRoleError> {
    check_token(host, "server address", &s.addr)?;
    if s.name.is_empty()
        || s.name.len() > 64
        || !s
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(WebRoleError::invalid(
            host,
            "server name",
            format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", s.name),
        ));
    }
    if s.port == 0 {
        return Err(WebRoleError::invalid(host, "server port", "must not be 0"));
    }
    Ok(())
}

/// haproxy.cfg for `lb` (servers sorted by name, so order never matters).
pub fn render_config(lb: &LbConfig) -> Result<String, crate::templates::TemplateError> {
    let mut servers = lb.servers.clone();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ctx = Context::new();
    ctx.insert("root", &lb.root);
    ctx.insert("addr", &lb.addr);
    ctx.insert("listen", &lb.listen);
    ctx.insert("health_path", &lb.health_path);
    ctx.insert("server_options", SERVER_OPTIONS);
    ctx.insert("servers", &servers);
    let mut cfg = crate::templates::render("haproxy/haproxy.cfg", &ctx)?;
    if !cfg.ends_with('\n') {
        cfg.push('\n');
    }
    Ok(cfg)
}

fn root_ctx(root: &str) -> Context {
    let mut ctx = Context::new();
    ctx.insert("root", root);
    ctx
}

/// Start HAProxy, or bring the running one to `lb`: servers through the
/// runtime API (new ones only after their health check passes, removed ones
/// drained), everything else by a seamless reload.
pub async fn ensure_haproxy(
    remote: &impl Remote,
    lb: &LbConfig,
    bounds: Bounds,
) -> Result<LbOutcome, WebRoleError> {
    let host = remote.host();
    check_lb(lb, host)?;
    let cfg =
        render_config(lb).map_err(|e| WebRoleError::template(host, "rendering haproxy.cfg", e))?;
    let dir = format!("{}/etc/appgrid/haproxy", lb.root);
    remote
        .put(&format!("{dir}/haproxy.cfg.new"), cfg.as_bytes(), 0o644)
        .await
        .map_err(|e| WebRoleError::remote(host, "uploading haproxy.cfg", e))?;
    let out = run_template(
        remote,
        "haproxy/compare.sh",
        &root_ctx(&lb.root),
        "comparing haproxy.cfg",
    )
    .await?;
    let verdict = out.stdout.trim().to_string();
    let action = match verdict.as_str() {
        "absent" => "start",
        "same" => return Ok(LbOutcome::Unchanged),
        "servers" => "install",
        "config" => "reload",
        other => {
            return Err(WebRoleError::unexpected(
                host,
                "comparing haproxy.cfg",
                format!("answer {other:?}"),
            ));
        }
    };
    let (mut added, mut drained) = (Vec::new(), Vec::new());
    if action != "start" {
        let running = servers(remote, &lb.root).await?;
        for s in &lb.servers {
            match running.iter().find(|r| r.name == s.name) {
                Some(r) if r == s => {}
                Some(_) => {
                    // Same name, new address: replace it.
                    drain_server(remote, &lb.root, &s.name, bounds.drain).await?;
                    add_server(remote, &lb.root, s, bounds.healthy).await?;
                    added.push(s.name.clone());
                }
                None => {
                    add_server(remote, &lb.root, s, bounds.healthy).await?;
                    added.push(s.name.clone());
                }
            }
        }
        for r in &running {
            if !lb.servers.iter().any(|s| s.name == r.name) {
                drain_server(remote, &lb.root, &r.name, bounds.drain).await?;
                drained.push(r.name.clone());
            }
        }
    }
    let mut ctx = root_ctx(&lb.root);
    ctx.insert("action", action);
    let what = format!("{action} HAProxy");
    let out = run_template(remote, "haproxy/ensure.sh", &ctx, &what).await?;
    Ok(match out.stdout.lines().last().unwrap_or_default() {
        "start" => LbOutcome::Started,
        "reload" => LbOutcome::Reloaded { added, drained },
        _ => LbOutcome::ServersChanged { added, drained },
    })
}

/// Stop HAProxy (its master and workers; TERM, then KILL after 10 s);
/// nothing when it is not running.
pub async fn stop_haproxy(remote: &impl Remote, root: &str) -> Result<(), WebRoleError> {
    super::web_error::stop_services(remote, root, &["haproxy"], "stopping haproxy").await
}

/// Send runtime API commands, one connection each; their answers, in order.
pub async fn cli(
    remote: &impl Remote,
    root: &str,
    commands: &[String],
) -> Result<Vec<String>, WebRoleError> {
    let host = remote.host();
    check_root(host, root)?;
    if let Some(bad) = commands.iter().find(|c| c.contains(['\n', '\r', ';'])) {
        return Err(WebRoleError::invalid(
            host,
            "HAProxy command",
            format!("{bad:?} holds a newline or ';'"),
        ));
    }
    let mut ctx = root_ctx(root);
    ctx.insert("commands", commands);
    let what = format!(
        "HAProxy `{}`",
        commands.first().map(String::as_str).unwrap_or("")
    );
    let out = run_template(remote, "haproxy/cli.sh", &ctx, &what).await?;
    let mut answers: Vec<String> = out
        .stdout
        .split("@@appgrid-end@@\n")
        .map(|a| a.trim().to_string())
        .collect();
    answers.truncate(commands.len());
    if answers.len() != commands.len() {
        return Err(WebRoleError::unexpected(
            host,
            &what,
            format!("{} answers to {} commands", answers.len(), commands.len()),
        ));
    }
    Ok(answers)
}

async fn cli_ok(
    remote: &impl Remote,
    root: &str,
    command: String,
    ok: impl Fn(&str) -> bool,
) -> Result<(), WebRoleError> {
    let answer = cli(remote, root, std::slice::from_ref(&command)).await?;
    if ok(&answer[0]) {
        Ok(())
    } else {
        Err(WebRoleError::unexpected(
            remote.host(),
            &format!("HAProxy `{command}`"),
            answer[0].clone(),
        ))
    }
}

/// The servers of the backend as the running HAProxy has them
/// (`show servers state`).
pub async fn servers(remote: &impl Remote, root: &str) -> Result<Vec<Backend>, WebRoleError> {
    let answer = cli(remote, root, &[format!("show servers state {BACKEND}")]).await?;
    parse_servers_state(&answer[0]).ok_or_else(|| {
        WebRoleError::unexpected(
            remote.host(),
            "reading HAProxy's servers",
            crate::remote::tail(&answer[0], 3),
        )
    })
}

/// Parse `show servers state`: a version line, a `# ` header, then rows.
pub fn parse_servers_state(text: &str) -> Option<Vec<Backend>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let _version = lines.next()?;
    let header: Vec<&str> = lines.next()?.strip_prefix("# ")?.split(' ').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (name, addr, port) = (col("srv_name")?, col("srv_addr")?, col("srv_port")?);
    let be = col("be_name")?;
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        if f.get(be) != Some(&BACKEND) {
            continue;
        }
        out.push(Backend {
            name: f.get(name)?.to_string(),
            addr: f.get(addr)?.to_string(),
            port: f.get(port)?.parse().ok()?,
        });
    }
    Some(out)
}

/// `show stat`, the server rows of the web backend.
pub async fn show_stat(remote: &impl Remote, root: &str) -> Result<Vec<ServerStat>, WebRoleError> {
    let answer = cli(remote, root, &["show stat".to_string()]).await?;
    parse_show_stat(&answer[0])
        .map(|rows| rows.into_iter().filter(|r| r.backend == BACKEND).collect())
        .ok_or_else(|| {
            WebRoleError::unexpected(
                remote.host(),
                "reading HAProxy's stats",
                crate::remote::tail(&answer[0], 3),
            )
        })
}

/// Parse `show stat` CSV (header `# pxname,svname,…`): every server row, of
/// every backend (FRONTEND and BACKEND rows left out).
pub fn parse_show_stat(csv: &str) -> Option<Vec<ServerStat>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.strip_prefix("# ")?.split(',').collect();
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: BTreeMap<&str, &str> = header.iter().copied().zip(line.split(',')).collect();
        let svname = *f.get("svname")?;
        if svname == "FRONTEND" || svname == "BACKEND" {
            continue;
        }
        let n = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let s = |k: &str| f.get(k).map(|v| v.to_string()).unwrap_or_default();
        rows.push(ServerStat {
            backend: s("pxname"),
            name: svname.to_string(),
            status: s("status"),
            weight: n("weight"),
            scur: n("scur"),
            qcur: n("qcur"),
            stot: n("stot"),
            req_tot: n("req_tot"),
            hrsp_2xx: n("hrsp_2xx"),
            hrsp_5xx: n("hrsp_5xx"),
            rate: n("rate"),
            rtime: n("rtime"),
            check_status: s("check_status"),
            addr: s("addr"),
        });
    }
    Some(rows)
}

async fn stat_of(
    remote: &impl Remote,
    root: &str,
    name: &str,
) -> Result<Option<ServerStat>, WebRoleError> {
    Ok(show_stat(remote, root)
        .await?
        .into_iter()
        .find(|s| s.name == name))
}

const POLL: Duration = Duration::from_millis(100);

/// Add a server to the running HAProxy: in maintenance, then health checks
/// on while draining (checked, but sent no traffic), then ready once its
/// check passes. Already there with the same address: nothing.
/// Returns how long it took.
pub async fn add_server(
    remote: &impl Remote,
    root: &str,
    server: &Backend,
    healthy_within: Duration,
) -> Result<Duration, WebRoleError> {
    let host = remote.host();
    check_backend(host, server)?;
    let started = Instant::now();
    let id = format!("{BACKEND}/{}", server.name);
    if !servers(remote, root).await?.iter().any(|s| s == server) {
        cli_ok(
            remote,
            root,
            format!(
                "add server {id} {}:{} {SERVER_OPTIONS}",
                server.addr, server.port
            ),
            |a| a.contains("New server registered"),
        )
        .await?;
        cli_ok(remote, root, format!("enable health {id}"), str::is_empty).await?;
        cli_ok(
            remote,
            root,
            format!("set server {id} state drain"),
            str::is_empty,
        )
        .await?;
    }
    let what = format!("waiting for {id} to pass its health check");
    loop {
        let stat = stat_of(remote, root, &server.name).await?;
        let status = stat.as_ref().map(|s| s.status.as_str()).unwrap_or("");
        if status == "DRAIN" || status == "UP" {
            break;
        }
        if started.elapsed() > healthy_within {
            let detail = match stat {
                Some(s) => format!(" (status {}, last check {})", s.status, s.check_status),
                None => " (the server is gone)".to_string(),
            };
            return Err(WebRoleError::Timeout {
                host: host.to_string(),
                what,
                secs: healthy_within.as_secs_f64(),
                detail,
            });
        }
        tokio::time::sleep(POLL).await;
    }
    cli_ok(
        remote,
        root,
        format!("set server {id} state ready"),
        str::is_empty,
    )
    .await?;
    Ok(started.elapsed())
}

/// What [`drain_server`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    pub took: Duration,
    /// Sessions were still open at the bound and were cut.
    pub forced: bool,
}

/// Take a server out of the running HAProxy without failing a request: drain
/// (no new sessions), wait until its sessions end (bounded: then they are
/// cut), maintenance, delete. An unknown server: nothing.
pub async fn drain_server(
    remote: &impl Remote,
    root: &str,
    name: &str,
    within: Duration,
) -> Result<Drained, WebRoleError> {
    let started = Instant::now();
    let id = format!("{BACKEND}/{name}");
    if !servers(remote, root).await?.iter().any(|s| s.name == name) {
        return Ok(Drained {
            took: started.elapsed(),
            forced: false,
        });
    }
    cli_ok(
        remote,
        root,
        format!("set server {id} state drain"),
        str::is_empty,
    )
    .await?;
    let mut forced = false;
    loop {
        match stat_of(remote, root, name).await? {
            Some(s) if s.scur > 0 || s.qcur > 0 => {}
            _ => break,
        }
        if started.elapsed() > within {
            forced = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    cli_ok(
        remote,
        root,
        format!("set server {id} state maint"),
        str::is_empty,
    )
    .await?;
    if forced {
        cli_ok(
            remote,
            root,
            format!("shutdown sessions server {id}"),
            |_| true,
        )
        .await?;
    }
    // `del server` refuses while idle keep-alive connections remain: retry.
    let deadline = Instant::now() + within.max(Duration::from_secs(10));
    loop {
        let answer = cli(remote, root, &[format!("del server {id}")]).await?;
        if answer[0].contains("Server deleted") || answer[0].contains("No such server") {
            break;
        }
        if Instant::now() > deadline {
            return Err(WebRoleError::unexpected(
                remote.host(),
                &format!("HAProxy `del server {id}`"),
                answer[0].clone(),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(Drained {
        took: started.elapsed(),
        forced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb() -> LbConfig {
        LbConfig {
            root: "/tmp/x".into(),
            addr: "127.0.0.9".into(),
            listen: 8000,
            health_path: "/health".into(),
            servers: vec![
                Backend {
                    name: "web-1".into(),
                    addr: "127.0.0.11".into(),
                    port: 8080,
                },
                Backend {
                    name: "web-0".into(),
                    addr: "127.0.0.10".into(),
                    port: 8080,
                },
            ],
        }
    }

    #[test]
    fn renders_sorted_servers_marked_for_comparison() {
        let cfg = render_config(&lb()).unwrap();
        let a = cfg
            .find("server web-0 127.0.0.10:8080 # appgrid-server")
            .unwrap();
        let b = cfg
            .find("server web-1 127.0.0.11:8080 # appgrid-server")
            .unwrap();
        assert!(a < b, "{cfg}");
        assert!(cfg.contains("option httpchk GET /health"), "{cfg}");
        assert!(cfg.contains(
            "stats socket /tmp/x/run/appgrid/haproxy.sock mode 600 level admin expose-fd listeners"
        ));
        assert!(cfg.contains("bind 127.0.0.9:8000"));
    }

    #[test]
    fn rejects_values_that_could_add_directives() {
        let mut bad = lb();
        bad.health_path = "/health\n    stats enable".into();
        assert!(check_lb(&bad, "h").is_err());
        let mut bad = lb();
        bad.servers[0].name = "web 1 backup".into();
        assert!(check_lb(&bad, "h").is_err());
        let mut bad = lb();
        bad.servers[1].name = "web-1".into();
        assert!(
            check_lb(&bad, "h")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(check_lb(&lb(), "h").is_ok());
    }

    #[test]
    fn parses_stat_csv_and_servers_state() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,rate,check_status,req_tot,hrsp_2xx,addr,\n\
                   web_in,FRONTEND,,,1,2,,10,OPEN,,,,,,,\n\
                   web,web-0,0,0,2,3,,40,UP,1,5,L7OK,40,39,127.0.0.10:8080,\n\
                   web,BACKEND,0,0,2,3,,40,UP,1,5,,40,39,,\n";
        let rows = parse_show_stat(csv).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.name.as_str(), r.scur, r.stot, r.req_tot, r.hrsp_2xx),
            ("web-0", 2, 40, 40, 39)
        );
        assert!(r.is_up());
        assert_eq!(r.addr, "127.0.0.10:8080");

        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n\
                     3 web 1 web-0 127.0.0.10 2 0 1 1 5 6 3 4 6 0 0 0 - 8080 -\n";
        assert_eq!(
            parse_servers_state(state).unwrap(),
            vec![Backend {
                name: "web-0".into(),
                addr: "127.0.0.10".into(),
                port: 8080
            }]
        );
    }
}
