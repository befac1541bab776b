//! The `ssh` transport: russh with key authentication, host keys pinned on
//! first contact, an optional jump host or proxy command, bounded retries
//! until sshd answers, and an inactivity limit on every script.
//!
//! One connection per machine; every [`Remote::run`] opens its own channel on
//! it (`sh -s`, the script on stdin), so steps can run concurrently. At most
//! [`MAX_SESSIONS`] channels are open at once, below OpenSSH's default
//! `MaxSessions 10`. Files go up over SFTP to a temporary name and are renamed
//! into place.

mod connect;
mod console;
mod exec;
mod put;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::Channel;
use russh::client::{Handle, Msg};
use tokio::process::Child;
use tokio::sync::Semaphore;

use super::{LogSink, Redactor, Remote, RemoteError, ScriptOutput};
use crate::retry::RetryPolicy;

pub use connect::fingerprint;

/// Channels open at once on one connection (OpenSSH allows 10 by default).
pub const MAX_SESSIONS: usize = 8;

/// A script that prints nothing for this long is taken as hung and stopped
/// (unless [`SshTransport::set_script_inactivity`] says otherwise). Generous:
/// a Slony-I subscribe or a large restore can be quiet for minutes.
pub const DEFAULT_SCRIPT_INACTIVITY: Duration = Duration::from_secs(30 * 60);

/// Where and how to reach one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Address or name, for logs and errors.
    pub host: String,
    /// What to connect to (resolved by the jump host or the proxy command if
    /// there is one).
    pub addr: String,
    pub port: u16,
    pub user: String,
    /// Private key (ed25519 or RSA, OpenSSH format, not encrypted).
    pub key_path: PathBuf,
    /// The host key pinned in state, as an OpenSSH public key line
    /// (`ssh-ed25519 AAAA…`); `None` trusts the first key presented.
    pub pinned_host_key: Option<String>,
    /// Reach this machine through a `direct-tcpip` channel of another one.
    pub jump: Option<Box<SshTarget>>,
    /// A command whose stdin/stdout is the connection (`%h` address, `%p`
    /// port, `%i` instance id, `%%` a percent sign), run with `sh -c`.
    pub proxy_command: Option<String>,
    pub instance_id: Option<String>,
}

impl SshTarget {
    /// A direct connection as `user` with `key_path`, nothing pinned yet.
    pub fn new(host: &str, addr: &str, port: u16, user: &str, key_path: PathBuf) -> Self {
        SshTarget {
            host: host.to_string(),
            addr: addr.to_string(),
            port,
            user: user.to_string(),
            key_path,
            pinned_host_key: None,
            jump: None,
            proxy_command: None,
            instance_id: None,
        }
    }
}

/// An authenticated connection to one machine.
pub struct SshTransport {
    host: String,
    /// How it was reached: what OpenSSH is told for a console.
    target: SshTarget,
    handle: Arc<Handle<connect::Client>>,
    redactor: Redactor,
    log: Option<LogSink>,
    presented_host_key: String,
    sessions: Arc<Semaphore>,
    /// Kept alive as long as this connection: the jump host's connection or
    /// the proxy command.
    jump: Option<Arc<SshTransport>>,
    _proxy: Option<Child>,
    /// How long a script may go without output before it is stopped.
    script_inactivity: Duration,
}

impl SshTransport {
    /// Connect and authenticate, retrying (backoff up to 2 s) until sshd
    /// answers or `connect_timeout_total` has passed. A host key that differs
    /// from the pin and a refused key fail at once.
    pub async fn connect(
        target: SshTarget,
        redactor: Redactor,
        log: Option<LogSink>,
        connect_timeout_total: Duration,
    ) -> Result<SshTransport, RemoteError> {
        let deadline = tokio::time::Instant::now() + connect_timeout_total;
        connect::connect_until(target, redactor, log, deadline).await
    }

    /// The host key the machine presented, as an OpenSSH public key line:
    /// what to pin in state after a first contact.
    pub fn presented_host_key(&self) -> String {
        self.presented_host_key.clone()
    }

    /// The jump host's connection, if this one goes through a jump host (its
    /// presented key is to be pinned too).
    pub fn jump(&self) -> Option<&SshTransport> {
        self.jump.as_deref()
    }

    /// A script that prints nothing (stdout or stderr) for `limit` is stopped
    /// and fails with [`RemoteError::Stalled`].
    pub fn set_script_inactivity(&mut self, limit: Duration) {
        self.script_inactivity = limit;
    }

    /// Close the connection politely (dropping it also closes it).
    pub async fn disconnect(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// A new session channel. sshd frees a closed session's slot a moment
    /// after the close, so an open right after others closed can be refused
    /// for a while ("no more sessions"): retry those refusals, briefly.
    async fn open_session(&self) -> Result<Channel<Msg>, russh::Error> {
        const SLOT: RetryPolicy = RetryPolicy::new(
            Duration::from_millis(20),
            Duration::from_millis(500),
            Duration::from_secs(20),
        )
        .with_max_tries(40);
        SLOT.run(
            || self.handle.channel_open_session(),
            |e| matches!(e, russh::Error::ChannelOpenFailure(_)),
        )
        .await
        .map_err(|e| e.error)
    }

    fn io(&self, what: &str, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::Io {
            host: self.host.clone(),
            detail: self.redactor.redact(&format!("{what}: {e}")),
        }
    }
}

impl Remote for SshTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn run(&self, step: &str, script: &str) -> Result<ScriptOutput, RemoteError> {
        exec::run(self, step, script).await
    }

    async fn put(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), RemoteError> {
        put::put(self, path, contents, mode).await
    }

    async fn console(
        &self,
        script: &str,
        tty: bool,
    ) -> Result<super::console::Console, RemoteError> {
        console::openssh(self, script, tty).await
    }
}
