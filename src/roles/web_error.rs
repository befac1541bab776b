//! Errors of the web-tier roles: memcached, HAProxy and the app release.

use crate::remote::RemoteError;
use crate::templates::{TemplateError, Templates};

/// What went wrong while giving a machine its web-tier role. Every variant
/// names the host and what was being done; texts that came from the machine
/// were redacted by the transport (and again by the role where it had secrets).
#[derive(Debug, thiserror::Error)]
pub enum WebRoleError {
    /// A script or upload failed.
    #[error("{what} on {host}: {source}")]
    Remote {
        host: String,
        what: String,
        #[source]
        source: Box<RemoteError>,
    },
    /// A template did not render (a bug in a template, or an override).
    #[error("{what} on {host}: {source}")]
    Template {
        host: String,
        what: String,
        #[source]
        source: Box<TemplateError>,
    },
    /// A value given to the role cannot be used (checked before anything runs).
    #[error("{what} for {host}: {detail}")]
    Invalid {
        host: String,
        what: String,
        detail: String,
    },
    /// The machine answered something the role did not expect.
    #[error("{what} on {host}: {detail}")]
    Unexpected {
        host: String,
        what: String,
        detail: String,
    },
    /// Something did not happen within its bound.
    #[error("{what} on {host}: timed out after {secs:.1}s{detail}")]
    Timeout {
        host: String,
        what: String,
        secs: f64,
        /// Extra context, starting with a separator (e.g. the app's log tail).
        detail: String,
    },
    /// A new release did not become healthy on a machine; what runs there now.
    #[error(
        "release {release} failed on {host}: {reason}; its health check last answered: {}; {}; the last lines of the app's log:\n{}",
        .what.health, .what.rollback, .what.log
    )]
    ReleaseFailed {
        host: String,
        release: String,
        reason: String,
        what: Box<ReleaseFailure>,
    },
    /// `[release] release_command` failed: no server switched to the release.
    #[error(
        "the release command of release {release} failed on {host} (exit status {status}); no server switched to it; its output:\n{log}"
    )]
    ReleaseCommand {
        host: String,
        release: String,
        status: String,
        log: String,
    },
    /// Preparing something on this machine (e.g. archiving the app) failed.
    #[error("{what} (for {host}): {detail}")]
    Local {
        host: String,
        what: String,
        detail: String,
    },
}

/// What a failed release left: the health check's answer, the machine's
/// release now, the app's log tail (boxed: it keeps every error small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFailure {
    /// The health check's last status line and the start of its body.
    pub health: String,
    pub rollback: Rollback,
    pub log: String,
}

/// What happened to the release that ran before a failed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// Back and healthy: the machine serves it again.
    Healthy(String),
    /// Back, but it did not pass its health check either (how: died/timeout).
    Failed(String, String),
    /// The machine's first release: nothing to go back to.
    NoPrevious,
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::Healthy(id) => write!(f, "rolled back to release {id}, which is healthy"),
            Rollback::Failed(id, how) => write!(
                f,
                "rolled back to release {id}, but it is not healthy either ({how})"
            ),
            Rollback::NoPrevious => write!(f, "no previous release to roll back to"),
        }
    }
}

impl WebRoleError {
    pub(crate) fn remote(host: &str, what: &str, source: RemoteError) -> Self {
        WebRoleError::Remote {
            host: host.to_string(),
            what: what.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn template(host: &str, what: &str, source: TemplateError) -> Self {
        WebRoleError::Template {
            host: host.to_string(),
            what: what.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn invalid(host: &str, what: &str, detail: impl Into<String>) -> Self {
        WebRoleError::Invalid {
            host: host.to_string(),
            what: what.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unexpected(host: &str, what: &str, detail: impl Into<String>) -> Self {
        WebRoleError::Unexpected {
            host: host.to_string(),
            what: what.to_string(),
            detail: detail.into(),
        }
    }
}

/// Render a template and run it as a script, naming `what` in any error.
pub(crate) async fn run_template(
    t: &Templates,
    remote: &impl crate::remote::Remote,
    name: &str,
    context: &tera::Context,
    what: &str,
) -> Result<crate::remote::ScriptOutput, WebRoleError> {
    let script = t
        .render(name, context)
        .map_err(|e| WebRoleError::template(remote.host(), what, e))?;
    remote
        .run(what, &script)
        .await
        .map_err(|e| WebRoleError::remote(remote.host(), what, e))
}

/// Stop these supervised services on a machine (templates/lib/stop.sh).
pub(crate) async fn stop_services(
    t: &Templates,
    remote: &impl crate::remote::Remote,
    root: &str,
    services: &[&str],
    what: &str,
) -> Result<(), WebRoleError> {
    check_root(remote.host(), root)?;
    let mut ctx = tera::Context::new();
    ctx.insert("root", root);
    ctx.insert("services", services);
    ctx.insert("remove", &Vec::<String>::new());
    run_template(t, remote, "lib/stop.sh", &ctx, what).await?;
    Ok(())
}

/// Values that go into non-shell files (haproxy.cfg, HAProxy CLI commands):
/// a conservative character set, so no value can add a directive or a command.
pub(crate) fn check_token(host: &str, what: &str, value: &str) -> Result<(), WebRoleError> {
    if value.is_empty()
        || value.len() > 253
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(WebRoleError::invalid(
            host,
            what,
            format!("{value:?} must be 1-253 letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    Ok(())
}

/// A filesystem root prefix: "" or an absolute path without newlines (it goes
/// into haproxy.cfg as well as into scripts).
pub(crate) fn check_root(host: &str, root: &str) -> Result<(), WebRoleError> {
    if !(root.is_empty() || root.starts_with('/'))
        || root.contains(['\n', '\r', '"', '\0', ' ', '\t', '#', '\\'])
    {
        return Err(WebRoleError::invalid(
            host,
            "root directory",
            format!(
                "{root:?} must be empty or an absolute path without spaces, quotes, '#' or newlines"
            ),
        ));
    }
    Ok(())
}
