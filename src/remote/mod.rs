//! Running things on a machine: a shell script, or a file put in place.
//!
//! Transports: [`local`] (this machine, for the `local` provider and tests)
//! and `ssh` (russh, for `hosts` and `aws`). Scripts are POSIX shell fed to
//! `sh -s` on standard input, so no command line is ever built by hand; every
//! value inside a script comes from a template whose engine shell-quotes it.
//!
//! An interactive process ([`console`]: `run`, `ssh`, `db psql`) gets its
//! script as a 0600 file run by `sh FILE`, for the same reason.
//!
//! Secrets never reach a log or an error: every line of output and every
//! error detail passes through the transport's [`Redactor`].

pub mod console;
pub mod local;
pub mod reap;
mod redact;
pub mod ssh;

use std::future::Future;
use std::sync::Arc;

pub use redact::Redactor;

/// What a finished script left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutput {
    pub stdout: String,
    pub stderr: String,
}

/// Where each line of a script's output goes as it arrives (already redacted):
/// `(host, stream, line)` with stream `"out"` or `"err"`.
pub type LogSink = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot connect to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error(
        "host key of {host} changed: state pinned {pinned}, the host presented {presented}. \
         If the machine was rebuilt on purpose, remove its pin with `appgrid state forget-host-key`; \
         otherwise someone may be intercepting the connection"
    )]
    HostKeyChanged {
        host: String,
        pinned: String,
        presented: String,
    },
    #[error(
        "{user}@{host} refused the key {key}: add its public half to ~{user}/.ssh/authorized_keys"
    )]
    Auth {
        host: String,
        user: String,
        key: String,
    },
    #[error("on {host}, `{step}` failed with {status}: {stderr_tail}")]
    Script {
        host: String,
        step: String,
        status: String,
        stderr_tail: String,
    },
    #[error("on {host}: {detail}")]
    Io { host: String, detail: String },
    #[error(
        "on {host}, `{step}` printed nothing for {idle_s} s and was stopped (last output: {})",
        if last_line.is_empty() { "none" } else { last_line.as_str() }
    )]
    Stalled {
        host: String,
        step: String,
        idle_s: u64,
        last_line: String,
    },
}

/// Run scripts and put files on one machine.
pub trait Remote: Send + Sync {
    /// A name for logs and errors: the host's address or name.
    fn host(&self) -> &str;

    /// Run `script` with `sh -s` (errexit is the script's business). `step`
    /// names it in logs and errors. A non-zero exit is [`RemoteError::Script`]
    /// with the last lines of stderr.
    fn run(
        &self,
        step: &str,
        script: &str,
    ) -> impl Future<Output = Result<ScriptOutput, RemoteError>> + Send;

    /// Write `contents` to `path` with `mode`, atomically (temp file + rename),
    /// creating parent directories.
    fn put(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> impl Future<Output = Result<(), RemoteError>> + Send;

    /// A process here that runs `script` (POSIX shell) on the machine with
    /// the caller's choice of standard streams: `appgrid run`, `ssh`,
    /// `db psql`. With `tty`, the machine gives it a terminal (a PTY over
    /// SSH; the `local` transport hands it this process's own). The script
    /// goes in a 0600 file that removes itself ([`console`]).
    fn console(
        &self,
        script: &str,
        tty: bool,
    ) -> impl Future<Output = Result<console::Console, RemoteError>> + Send;
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod service_tests;
