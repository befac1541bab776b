//! HAProxy's runtime API over the stats socket: commands, and scaling the
//! running process without a reload — a server added only once its health
//! check passes, a server drained before it is deleted.

use std::time::{Duration, Instant};

use super::config::check_backend;
use super::stats::{ServerStat, parse_servers_state, show_stat};
use super::{BACKEND, Backend, root_ctx, server_options};
use crate::remote::Remote;
use crate::roles::web_error::{WebRoleError, check_root, run_template};
use crate::templates::Templates;

/// Send runtime API commands, one connection each; their answers, in order.
pub async fn cli(
    t: &Templates,
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
    let out = run_template(t, remote, "haproxy/cli.sh", &ctx, &what).await?;
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

pub(super) async fn cli_ok(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
    command: String,
    ok: impl Fn(&str) -> bool,
) -> Result<(), WebRoleError> {
    let answer = cli(t, remote, root, std::slice::from_ref(&command)).await?;
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
pub async fn servers(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
) -> Result<Vec<Backend>, WebRoleError> {
    let answer = cli(t, remote, root, &[format!("show servers state {BACKEND}")]).await?;
    parse_servers_state(&answer[0]).ok_or_else(|| {
        WebRoleError::unexpected(
            remote.host(),
            "reading HAProxy's servers",
            crate::remote::tail(&answer[0], 3),
        )
    })
}

async fn stat_of(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
    name: &str,
) -> Result<Option<ServerStat>, WebRoleError> {
    Ok(show_stat(t, remote, root)
        .await?
        .into_iter()
        .find(|s| s.name == name))
}

const POLL: Duration = Duration::from_millis(100);

/// Add a server to the running HAProxy: in maintenance, then health checks
/// on while draining (checked, but sent no traffic), then ready once its
/// check passes. Already there with the same address: nothing. A server
/// added at runtime does not inherit `default-server`, so its options
/// (health checks, `maxconn` from `max_connections`) are given here.
/// Returns how long it took.
pub async fn add_server(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
    server: &Backend,
    max_connections: Option<u32>,
    healthy_within: Duration,
) -> Result<Duration, WebRoleError> {
    let host = remote.host();
    check_backend(host, server)?;
    let started = Instant::now();
    let id = format!("{BACKEND}/{}", server.name);
    if !servers(t, remote, root).await?.iter().any(|s| s == server) {
        cli_ok(
            t,
            remote,
            root,
            format!(
                "add server {id} {}:{} {}",
                server.addr,
                server.port,
                server_options(max_connections)
            ),
            |a| a.contains("New server registered"),
        )
        .await?;
        cli_ok(
            t,
            remote,
            root,
            format!("enable health {id}"),
            str::is_empty,
        )
        .await?;
        cli_ok(
            t,
            remote,
            root,
            format!("set server {id} state drain"),
            str::is_empty,
        )
        .await?;
    }
    let what = format!("waiting for {id} to pass its health check");
    loop {
        let stat = stat_of(t, remote, root, &server.name).await?;
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
        t,
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
    t: &Templates,
    remote: &impl Remote,
    root: &str,
    name: &str,
    within: Duration,
) -> Result<Drained, WebRoleError> {
    let started = Instant::now();
    let id = format!("{BACKEND}/{name}");
    if !servers(t, remote, root)
        .await?
        .iter()
        .any(|s| s.name == name)
    {
        return Ok(Drained {
            took: started.elapsed(),
            forced: false,
        });
    }
    cli_ok(
        t,
        remote,
        root,
        format!("set server {id} state drain"),
        str::is_empty,
    )
    .await?;
    let mut forced = false;
    loop {
        match stat_of(t, remote, root, name).await? {
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
        t,
        remote,
        root,
        format!("set server {id} state maint"),
        str::is_empty,
    )
    .await?;
    if forced {
        cli_ok(
            t,
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
        let answer = cli(t, remote, root, &[format!("del server {id}")]).await?;
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
