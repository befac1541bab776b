//! HAProxy in front of the web tier: configuration, first start or seamless
//! reload, and scaling through the runtime API over the stats socket.
//!
//! The configuration on the machine always describes what the running process
//! does. [`ensure_haproxy`] with a different server list changes the running
//! process at runtime ([`add_server`], [`drain_server`]) and then rewrites the
//! file, with no reload; any other change is a reload that keeps server state.
//!
//! Files, by concept: [`config`] (checks and haproxy.cfg), [`runtime`] (the
//! runtime API: commands, add and drain servers) and [`stats`] (`show stat`
//! and `show servers state` parsed).

mod config;
mod maintenance;
mod runtime;
mod stats;

use std::time::Duration;

use serde::Serialize;
use tera::Context;

use super::web_error::{WebRoleError, run_template};
use crate::remote::Remote;
use crate::templates::Templates;

pub(crate) use config::check_health_path;
use config::check_lb;
pub use config::render_config;
pub use runtime::{Drained, add_server, cli, drain_server, servers};
pub use stats::{ServerStat, parse_servers_state, parse_show_stat, show_stat};

/// The backend every web instance belongs to.
pub const BACKEND: &str = "web";

/// Health-check settings of every server, from the config or the runtime API
/// (servers added at runtime do not inherit `default-server` in 2.6).
pub const SERVER_OPTIONS: &str = "check inter 1s fastinter 250ms downinter 1s rise 2 fall 2";

/// [`SERVER_OPTIONS`], with `maxconn N` when `[web] max_connections` limits
/// the requests one app server is sent at once: the rest wait in HAProxy's
/// queue (`timeout queue` in haproxy.cfg), whose wait is `qtime`.
pub fn server_options(max_connections: Option<u32>) -> String {
    match max_connections {
        Some(n) => format!("{SERVER_OPTIONS} maxconn {n}"),
        None => SERVER_OPTIONS.to_string(),
    }
}

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
    /// Maintenance mode, from state: HAProxy answers 503 while it is on.
    pub maintenance: Option<crate::maintenance::Maintenance>,
    /// HTTPS: the port, and the certificate with its key (PEM) uploaded 0600.
    pub tls: Option<LbTls>,
    /// `[web] max_connections`: each server's `maxconn` (None: no limit).
    pub max_connections: Option<u32>,
}

/// HTTPS at the load balancer.
#[derive(Clone, PartialEq, Eq)]
pub struct LbTls {
    pub port: u16,
    /// The certificate chain and its key, as one PEM file: never printed.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for LbTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbTls")
            .field("port", &self.port)
            .field("pem", &"[REDACTED]")
            .finish()
    }
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
    /// Only maintenance mode changed: done at runtime, no reload.
    MaintenanceChanged,
    Unchanged,
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
    t: &Templates,
    remote: &impl Remote,
    lb: &LbConfig,
    bounds: Bounds,
) -> Result<LbOutcome, WebRoleError> {
    let host = remote.host();
    check_lb(lb, host)?;
    let cfg = render_config(t, lb)
        .map_err(|e| WebRoleError::template(host, "rendering haproxy.cfg", e))?;
    let dir = format!("{}/etc/appgrid/haproxy", lb.root);
    remote
        .put(&format!("{dir}/haproxy.cfg.new"), cfg.as_bytes(), 0o644)
        .await
        .map_err(|e| WebRoleError::remote(host, "uploading haproxy.cfg", e))?;
    let map = crate::maintenance::map_file(lb.maintenance.as_ref());
    remote
        .put(&format!("{dir}/maintenance.map.new"), map.as_bytes(), 0o644)
        .await
        .map_err(|e| WebRoleError::remote(host, "uploading the maintenance map", e))?;
    if let Some(tls) = &lb.tls {
        // The key is in this file: 0600 from its creation, never printed.
        remote
            .put(&format!("{dir}/tls.pem.new"), &tls.pem, 0o600)
            .await
            .map_err(|e| WebRoleError::remote(host, "uploading the TLS certificate", e))?;
    }
    let out = run_template(
        t,
        remote,
        "haproxy/compare.sh",
        &root_ctx(&lb.root),
        "comparing haproxy.cfg",
    )
    .await?;
    let mut lines = out.stdout.lines().map(str::trim);
    let verdict = lines.next().unwrap_or_default().to_string();
    let map_changed = lines.next() == Some("map changed");
    let pem_changed = lines.next() == Some("pem changed");
    let action = match verdict.as_str() {
        "absent" => "start",
        // A new certificate is read by a new process: a seamless reload.
        "same" | "servers" if pem_changed => "reload",
        "same" if map_changed => "install",
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
    if map_changed && action == "install" {
        maintenance::set(t, remote, &lb.root, lb.maintenance.as_ref()).await?;
    }
    let (mut added, mut drained) = (Vec::new(), Vec::new());
    if action != "start" {
        let running = servers(t, remote, &lb.root).await?;
        for s in &lb.servers {
            match running.iter().find(|r| r.name == s.name) {
                Some(r) if r == s => {}
                Some(_) => {
                    // Same name, new address: replace it.
                    drain_server(t, remote, &lb.root, &s.name, bounds.drain).await?;
                    add_server(t, remote, &lb.root, s, lb.max_connections, bounds.healthy).await?;
                    added.push(s.name.clone());
                }
                None => {
                    add_server(t, remote, &lb.root, s, lb.max_connections, bounds.healthy).await?;
                    added.push(s.name.clone());
                }
            }
        }
        for r in &running {
            if !lb.servers.iter().any(|s| s.name == r.name) {
                drain_server(t, remote, &lb.root, &r.name, bounds.drain).await?;
                drained.push(r.name.clone());
            }
        }
    }
    let mut ctx = root_ctx(&lb.root);
    ctx.insert("action", action);
    ctx.insert("tls", &lb.tls.is_some());
    let what = format!("{action} HAProxy");
    let out = run_template(t, remote, "haproxy/ensure.sh", &ctx, &what).await?;
    Ok(match out.stdout.lines().last().unwrap_or_default() {
        "start" => LbOutcome::Started,
        "reload" => LbOutcome::Reloaded { added, drained },
        _ if verdict == "same" => LbOutcome::MaintenanceChanged,
        _ => LbOutcome::ServersChanged { added, drained },
    })
}

/// Stop HAProxy (its master and workers; TERM, then KILL after 10 s);
/// nothing when it is not running.
pub async fn stop_haproxy(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
) -> Result<(), WebRoleError> {
    super::web_error::stop_services(t, remote, root, &["haproxy"], "stopping haproxy").await
}
