//! App release: ship the app directory, write its 0600 env file, build, start
//! it under the supervisor and wait for its health check.
//!
//! Layout on the machine: `$ROOT/var/lib/appgrid/app/releases/<content hash>`
//! (unpacked archives, the three newest kept besides the current one),
//! `…/app/current` (symlink to the running release), `$ROOT/etc/appgrid/app/env`
//! (0600, root) and `…/app/start.sh` (the wrapper the supervisor runs as root:
//! it loads the env file and drops to `appgrid-app` if that user exists,
//! `nobody` otherwise). The log is `$ROOT/var/log/appgrid/app.log`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tera::Context;

use super::web_error::{
    ReleaseFailure, Rollback, WebRoleError, check_root, check_token, run_template,
};
use crate::remote::{Redactor, Remote};
use crate::templates::Templates;

/// One app instance to release. `Debug` names the environment's variables
/// but shows none of their values (`DATABASE_URL` holds a password).
#[derive(Clone)]
pub struct AppRelease {
    /// The machine's root prefix ("" on a real host).
    pub root: String,
    /// The machine's address: the app binds ADDR:PORT (given as `ADDR`, `PORT`).
    pub addr: String,
    pub port: u16,
    /// The app's directory on this machine (where appgrid runs).
    pub app_dir_local: PathBuf,
    /// A shell command run in the new release directory, as the app's user
    /// with the env loaded, before it starts (once per release).
    pub build: Option<String>,
    /// A shell command line that runs the app in the foreground.
    pub start: String,
    pub health_path: String,
    /// DATABASE_URL, DATABASE_REPLICA_URLS, MEMCACHE_SERVERS, … (`PORT` and
    /// `ADDR` are set from `port` and `addr`).
    pub env: BTreeMap<String, String>,
    /// Values never to print (e.g. the database password).
    pub secrets: Vec<SecretString>,
    /// How long the health check may take to answer 200 after a start.
    pub health_timeout: Duration,
    /// The app directory already archived (by [`archive`]), when the caller
    /// releases it on many machines: one tar, not one per machine.
    pub archive: Option<std::sync::Arc<Vec<u8>>>,
    /// A release already on the machine to run again (`appgrid rollback`):
    /// its directory's name. Nothing is archived or uploaded; a machine that
    /// no longer keeps it is an error before anything changes.
    pub pinned: Option<String>,
    /// `[release] release_command`, when this machine is the one to run it:
    /// in the new release's directory with the new env, before the switch;
    /// if it fails, nothing switches.
    pub release_command: Option<String>,
}

impl std::fmt::Debug for AppRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRelease")
            .field("root", &self.root)
            .field("addr", &self.addr)
            .field("port", &self.port)
            .field("app_dir_local", &self.app_dir_local)
            .field("build", &self.build)
            .field("start", &self.start)
            .field("health_path", &self.health_path)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets)
            .field("health_timeout", &self.health_timeout)
            .field("pinned", &self.pinned)
            .field("release_command", &self.release_command)
            .finish_non_exhaustive()
    }
}

/// What [`release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The content hash of the app directory: its release directory's name.
    pub release_id: String,
    /// `false` when the same release was already running with the same env.
    pub restarted: bool,
    /// The supervisor's pid of the app.
    pub pid: u32,
    pub took: Duration,
}

/// Lines of the app's log put in a health-check error.
pub const LOG_TAIL_LINES: usize = 20;

#[derive(Serialize)]
struct Var<'a> {
    name: &'a str,
    value: &'a str,
}

fn check_app(app: &AppRelease, host: &str) -> Result<(), WebRoleError> {
    check_root(host, &app.root)?;
    check_token(host, "app address", &app.addr)?;
    super::haproxy::check_health_path(host, &app.health_path)?;
    if app.port == 0 {
        return Err(WebRoleError::invalid(host, "app port", "must not be 0"));
    }
    if app.start.trim().is_empty() {
        return Err(WebRoleError::invalid(host, "start command", "is empty"));
    }
    for (k, v) in &app.env {
        let ok_name = k
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if k.is_empty() || !ok_name {
            return Err(WebRoleError::invalid(
                host,
                "app environment",
                format!("{k:?} is not a variable name (letters, digits, '_')"),
            ));
        }
        if v.contains('\0') {
            // Name only: the value may be a secret.
            return Err(WebRoleError::invalid(
                host,
                "app environment",
                format!("the value of {k} holds a NUL byte"),
            ));
        }
    }
    Ok(())
}

/// The app directory as a reproducible tar (sorted, fixed owners and times):
/// the same content always gives the same bytes, so the same release id.
pub async fn archive(dir: &std::path::Path) -> Result<Vec<u8>, String> {
    let out = tokio::process::Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--exclude=__pycache__",
            "--exclude=*.pyc",
            "--exclude=.git",
            "-C",
        ])
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar of {} failed: {}",
            dir.display(),
            crate::remote::tail(&String::from_utf8_lossy(&out.stderr), 3)
        ));
    }
    Ok(out.stdout)
}

fn render(t: &Templates, host: &str, name: &str, ctx: &Context) -> Result<String, WebRoleError> {
    t.render(name, ctx)
        .map_err(|e| WebRoleError::template(host, name, e))
}

fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

/// Release the app on one machine (see the module doc). Idempotent: the same
/// content, env and commands while it runs → nothing is uploaded or restarted.
/// Every secret is added to `redactor` first (the transport's, so its output
/// and errors never show them).
pub async fn release(
    t: &Templates,
    remote: &impl Remote,
    app: &AppRelease,
    redactor: &Redactor,
) -> Result<Released, WebRoleError> {
    let started = Instant::now();
    let host = remote.host();
    for s in &app.secrets {
        redactor.add(s.expose_secret());
    }
    check_app(app, host)?;
    let (tar, release_id) = match (&app.pinned, &app.archive) {
        (Some(dir), _) => {
            check_token(host, "release", dir)?;
            (None, dir.clone())
        }
        (None, Some(tar)) => (
            Some(tar.as_ref().clone()),
            crate::hash::sha256_hex(tar)[..16].to_string(),
        ),
        (None, None) => {
            let tar = archive(&app.app_dir_local)
                .await
                .map_err(|detail| WebRoleError::Local {
                    host: host.to_string(),
                    what: "archiving the app".to_string(),
                    detail,
                })?;
            let id = crate::hash::sha256_hex(&tar)[..16].to_string();
            (Some(tar), id)
        }
    };
    let base = format!("{}/var/lib/appgrid/app", app.root);
    let etc = format!("{}/etc/appgrid/app", app.root);

    let mut env = app.env.clone();
    env.insert("PORT".to_string(), app.port.to_string());
    env.insert("ADDR".to_string(), app.addr.clone());
    let vars: Vec<Var> = env
        .iter()
        .map(|(name, value)| Var { name, value })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("vars", &vars);
    let env_file = render(t, host, "app/env.sh", &ctx)?;

    let mut ctx = Context::new();
    ctx.insert("env_file", &format!("{etc}/env"));
    ctx.insert("current", &format!("{base}/current"));
    ctx.insert("start", &app.start);
    let wrapper = render(t, host, "app/start.sh", &ctx)?;

    let build = app.build.clone().unwrap_or_default();
    let fingerprint = crate::hash::sha256_hex(
        format!(
            "{release_id}\0{env_file}\0{wrapper}\0{build}\0{}",
            app.health_path
        )
        .as_bytes(),
    )[..16]
        .to_string();

    let mut ctx = Context::new();
    ctx.insert("root", &app.root);
    ctx.insert("release_id", &release_id);
    let status = run_template(t, remote, "app/status.sh", &ctx, "checking the app").await?;
    let status = status.stdout;
    if field(&status, "running") == "yes"
        && field(&status, "fingerprint") == fingerprint
        && field(&status, "current") == format!("releases/{release_id}")
    {
        return Ok(Released {
            release_id,
            restarted: false,
            pid: field(&status, "pid").parse().unwrap_or(0),
            took: started.elapsed(),
        });
    }

    let put = |path: String, contents: Vec<u8>, mode: u32, what: &'static str| async move {
        remote
            .put(&path, &contents, mode)
            .await
            .map_err(|e| WebRoleError::remote(host, what, e))
    };
    let present = field(&status, "release") == "present";
    if !present && app.pinned.is_some() {
        return Err(WebRoleError::invalid(
            host,
            "release",
            format!(
                "{release_id} is no longer kept on this machine (it keeps the current release, \
                 the one before and the three newest others); nothing was changed here"
            ),
        ));
    }
    if let (false, Some(tar)) = (present, tar) {
        put(
            format!("{base}/incoming/{release_id}.tar"),
            tar,
            0o600,
            "uploading the app",
        )
        .await?;
    }
    // The new env file and wrapper go beside the running ones: release.sh
    // installs them when it switches, and puts the old ones back on rollback.
    put(
        format!("{etc}/env.next"),
        env_file.into_bytes(),
        0o600,
        "writing the app's env file",
    )
    .await?;
    put(
        format!("{etc}/start.sh.next"),
        wrapper.into_bytes(),
        0o755,
        "writing the app's start wrapper",
    )
    .await?;

    let mut ctx = Context::new();
    ctx.insert("root", &app.root);
    ctx.insert("release_id", &release_id);
    ctx.insert("build", &build);
    ctx.insert(
        "release_command",
        app.release_command.as_deref().unwrap_or_default(),
    );
    ctx.insert("fingerprint", &fingerprint);
    ctx.insert("addr", &app.addr);
    ctx.insert("port", &app.port);
    ctx.insert("health_path", &app.health_path);
    ctx.insert(
        "polls",
        &(app.health_timeout.as_millis() / 100).max(1).to_string(),
    );
    let what = format!("releasing {release_id}");
    let out = run_template(t, remote, "app/release.sh", &ctx, &what).await?;
    let pid = field(&out.stdout, "pid").parse().unwrap_or(0);
    let result = field(&out.stdout, "result");
    if result == "release_command_failed" {
        let log: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("log|"))
            .collect();
        return Err(WebRoleError::ReleaseCommand {
            host: host.to_string(),
            release: release_id,
            status: field(&out.stdout, "status").to_string(),
            log: redactor.redact(&log.join("\n")),
        });
    }
    if result == "healthy" {
        return Ok(Released {
            release_id,
            restarted: true,
            pid,
            took: started.elapsed(),
        });
    }
    let tail = log_tail(t, remote, &app.root, LOG_TAIL_LINES)
        .await
        .unwrap_or_else(|e| format!("(the log could not be read: {e})"));
    let url = format!("GET http://{}:{}{}", app.addr, app.port, app.health_path);
    let reason = if result == "died" {
        format!("the app exited before {url} answered 200")
    } else {
        format!(
            "{url} did not answer 200 within {:.1}s",
            app.health_timeout.as_secs_f64()
        )
    };
    let previous = field(&out.stdout, "previous");
    let rollback = match (previous, field(&out.stdout, "rollback")) {
        ("", _) => Rollback::NoPrevious,
        (p, "healthy") => Rollback::Healthy(p.to_string()),
        (p, how) => Rollback::Failed(p.to_string(), how.to_string()),
    };
    let health = field(&out.stdout, "health").trim();
    Err(WebRoleError::ReleaseFailed {
        host: host.to_string(),
        release: release_id,
        reason,
        what: Box::new(ReleaseFailure {
            health: redactor.redact(if health.is_empty() {
                "(no answer)"
            } else {
                health
            }),
            rollback,
            log: redactor.redact(&tail),
        }),
    })
}

/// Which part of the app's log a reader asks for (the panel's log view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFrom {
    /// The last N lines.
    Last(usize),
    /// Everything after this byte (what `-f` has not shown yet).
    Offset(u64),
}

/// A piece of the app's log and the log's size when it was read: the offset
/// to read on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub text: String,
    pub end: u64,
}

/// The last `lines` lines of the app's log (redacted by the transport).
pub async fn log_tail(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
    lines: usize,
) -> Result<String, WebRoleError> {
    check_root(remote.host(), root)?;
    let mut ctx = Context::new();
    ctx.insert("root", root);
    ctx.insert("lines", &lines);
    ctx.insert("offset", "");
    let out = run_template(t, remote, "app/logtail.sh", &ctx, "reading the app's log").await?;
    // The first line is the log's size, for a reader that reads on from it.
    let (first, text) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
    if !first.starts_with("@@size=") {
        return Err(WebRoleError::unexpected(
            remote.host(),
            "reading the app's log",
            "no size line",
        ));
    }
    Ok(text.trim_end().to_string())
}

/// Stop the app (TERM, then KILL after 10 s).
pub async fn stop(t: &Templates, remote: &impl Remote, root: &str) -> Result<(), WebRoleError> {
    check_root(remote.host(), root)?;
    let mut ctx = Context::new();
    ctx.insert("root", root);
    run_template(t, remote, "app/stop.sh", &ctx, "stopping the app").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_quotes_every_value() {
        let vars = [
            Var {
                name: "DATABASE_URL",
                value: "postgres://app:p'w $x@h/db",
            },
            Var {
                name: "PORT",
                value: "8080",
            },
        ];
        let mut ctx = Context::new();
        ctx.insert("vars", &vars);
        let out = Templates::embedded().render("app/env.sh", &ctx).unwrap();
        assert!(
            out.contains("DATABASE_URL='postgres://app:p'\\''w $x@h/db'\nexport DATABASE_URL\n"),
            "{out}"
        );
        assert!(out.contains("PORT=8080\nexport PORT"), "{out}");
    }

    fn release_of(root: &str) -> AppRelease {
        AppRelease {
            root: root.into(),
            addr: "127.0.0.2".into(),
            port: 8080,
            app_dir_local: PathBuf::from("/nonexistent"),
            build: None,
            start: "./run".into(),
            health_path: "/health".into(),
            env: BTreeMap::new(),
            secrets: vec![],
            health_timeout: Duration::from_secs(1),
            archive: None,
            pinned: None,
            release_command: None,
        }
    }

    #[test]
    fn debug_shows_no_environment_value_and_no_secret() {
        let mut app = release_of("/tmp/r");
        app.secrets = vec![SecretString::from("pw-0123456789abcdef")];
        app.env.insert(
            "DATABASE_URL".into(),
            "postgres://blog:pw-0123456789abcdef@127.0.0.5/blog".into(),
        );
        let shown = format!("{app:?}");
        assert!(shown.contains("DATABASE_URL"), "{shown}");
        assert!(!shown.contains("pw-0123456789abcdef"), "{shown}");
    }

    #[test]
    fn rejects_bad_variable_names() {
        let mut app = release_of("/tmp/r");
        assert!(check_app(&app, "h").is_ok());
        app.env.insert("X; rm -rf /".into(), "1".into());
        assert!(check_app(&app, "h").is_err());
        app.env.clear();
        app.env.insert("1X".into(), "1".into());
        assert!(check_app(&app, "h").is_err());
    }
}
