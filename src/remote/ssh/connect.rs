//! Connecting: TCP, a proxy command or a jump host; host key check; key auth.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::Preferred;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{
    Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{MAX_SESSIONS, SshTarget, SshTransport};
use crate::remote::{LogSink, Redactor, RemoteError};
use crate::retry::{Exhausted, RetryPolicy};
use crate::templates::shell_quote;

/// `SHA256:…`, as OpenSSH prints a key's fingerprint.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The russh handler: checks (and records) the server's host key.
pub(super) struct Client {
    pinned: Option<PublicKey>,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        let ok = match &self.pinned {
            Some(pin) => pin.key_data() == key.key_data(),
            None => true,
        };
        *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
        Ok(ok)
    }
}

/// Why one attempt failed: worth another try, or final.
enum Failed {
    Retry(String),
    Fatal(RemoteError),
}

struct Connected {
    handle: Handle<Client>,
    presented: PublicKey,
    proxy: Option<Child>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub(super) fn connect_until(
    target: SshTarget,
    redactor: Redactor,
    log: Option<LogSink>,
    deadline: Instant,
) -> Boxed<'static, Result<SshTransport, RemoteError>> {
    Box::pin(async move {
        let started = Instant::now();
        let host = target.host.clone();
        let connect_err = |detail: String| RemoteError::Connect {
            host: host.clone(),
            detail: redactor.redact(&detail),
        };
        if target.jump.is_some() && target.proxy_command.is_some() {
            return Err(connect_err(
                "both a jump host and a proxy command are set; use one".to_string(),
            ));
        }
        let key =
            russh::keys::load_secret_key(&target.key_path, None).map_err(|e| RemoteError::Io {
                host: host.clone(),
                detail: redactor.redact(&format!(
                    "cannot load the private key {}: {e}",
                    target.key_path.display()
                )),
            })?;
        let key = Arc::new(key);
        let pinned = match &target.pinned_host_key {
            Some(line) => Some(PublicKey::from_openssh(line.trim()).map_err(|e| {
                connect_err(format!(
                    "the pinned host key is not an OpenSSH public key line: {e}"
                ))
            })?),
            None => None,
        };
        let jump = match &target.jump {
            Some(j) => Some(Arc::new(
                connect_until((**j).clone(), redactor.clone(), log.clone(), deadline).await?,
            )),
            None => None,
        };

        let algorithms = pinned.as_ref().map(host_key_algorithms);
        let policy = RetryPolicy::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            deadline.saturating_duration_since(Instant::now()),
        );
        let outcome = policy
            .run(
                || async {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let attempt = attempt(
                        &target,
                        &key,
                        &pinned,
                        algorithms.as_deref(),
                        jump.as_deref(),
                    );
                    match tokio::time::timeout(remaining, attempt).await {
                        Ok(result) => result,
                        Err(_) => Err(Failed::Retry("timed out".to_string())),
                    }
                },
                |e| matches!(e, Failed::Retry(_)),
            )
            .await;
        match outcome {
            Ok(c) => {
                let presented = c
                    .presented
                    .to_openssh()
                    .unwrap_or_else(|_| fingerprint(&c.presented));
                Ok(SshTransport {
                    host: target.host.clone(),
                    target: target.clone(),
                    handle: Arc::new(c.handle),
                    redactor: redactor.clone(),
                    log,
                    presented_host_key: presented,
                    sessions: Arc::new(Semaphore::new(MAX_SESSIONS)),
                    jump,
                    _proxy: c.proxy,
                    script_inactivity: super::DEFAULT_SCRIPT_INACTIVITY,
                })
            }
            Err(Exhausted {
                error: Failed::Fatal(e),
                ..
            }) => Err(redacted(&redactor, e)),
            Err(Exhausted {
                error: Failed::Retry(last),
                ..
            }) => Err(connect_err(format!(
                "no SSH answer from {} within {:.1} s (last error: {last})",
                describe(&target),
                started.elapsed().as_secs_f64()
            ))),
        }
    })
}

/// The host-key algorithms to accept from a machine whose key is pinned:
/// only that key's type (an RSA key by its SHA-2 signatures), so a server
/// cannot steer the exchange to another key it holds.
fn host_key_algorithms(pin: &PublicKey) -> Vec<Algorithm> {
    match pin.algorithm() {
        Algorithm::Rsa { .. } => vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ],
        other => vec![other],
    }
}

/// Every text field of `e` through the redactor.
fn redacted(r: &Redactor, e: RemoteError) -> RemoteError {
    match e {
        RemoteError::Connect { host, detail } => RemoteError::Connect {
            host: r.redact(&host),
            detail: r.redact(&detail),
        },
        RemoteError::HostKeyChanged {
            host,
            pinned,
            presented,
        } => RemoteError::HostKeyChanged {
            host: r.redact(&host),
            pinned,
            presented,
        },
        RemoteError::Auth { host, user, key } => RemoteError::Auth {
            host: r.redact(&host),
            user: r.redact(&user),
            key: r.redact(&key),
        },
        RemoteError::Script {
            host,
            step,
            status,
            stderr_tail,
        } => RemoteError::Script {
            host: r.redact(&host),
            step: r.redact(&step),
            status,
            stderr_tail: r.redact(&stderr_tail),
        },
        RemoteError::Io { host, detail } => RemoteError::Io {
            host: r.redact(&host),
            detail: r.redact(&detail),
        },
        RemoteError::Stalled {
            host,
            step,
            idle_s,
            last_line,
        } => RemoteError::Stalled {
            host: r.redact(&host),
            step: r.redact(&step),
            idle_s,
            last_line: r.redact(&last_line),
        },
    }
}

fn describe(target: &SshTarget) -> String {
    let mut s = format!("{}@{}:{}", target.user, target.addr, target.port);
    if let Some(j) = &target.jump {
        s.push_str(&format!(" via {}", j.host));
    }
    if target.proxy_command.is_some() {
        s.push_str(" via the proxy command");
    }
    s
}

/// `%h`, `%p`, `%i` replaced by the shell-quoted address, port and instance id.
pub(super) fn expand_proxy_command(command: &str, target: &SshTarget) -> String {
    let mut out = String::new();
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&shell_quote(&target.addr)),
            Some('p') => out.push_str(&shell_quote(&target.port.to_string())),
            Some('i') => out.push_str(&shell_quote(
                target.instance_id.as_deref().unwrap_or_default(),
            )),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

async fn attempt(
    target: &SshTarget,
    key: &Arc<PrivateKey>,
    pinned: &Option<PublicKey>,
    host_key_algorithms: Option<&[Algorithm]>,
    jump: Option<&SshTransport>,
) -> Result<Connected, Failed> {
    let presented = Arc::new(Mutex::new(None));
    let handler = Client {
        pinned: pinned.clone(),
        presented: Arc::clone(&presented),
    };
    let mut preferred = Preferred::default();
    if let Some(algorithms) = host_key_algorithms {
        preferred.key = Cow::Owned(algorithms.to_vec());
    }
    let config = Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        preferred,
        ..Default::default()
    });
    let mut proxy = None;
    let mut proxy_stderr = None;
    let result = if let Some(command) = &target.proxy_command {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(expand_proxy_command(command, target))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failed::Retry(format!("cannot start the proxy command: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        proxy_stderr = Some(tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        }));
        proxy = Some(child);
        client::connect_stream(config, tokio::io::join(stdout, stdin), handler).await
    } else if let Some(jump) = jump {
        let channel = jump
            .handle
            .channel_open_direct_tcpip(target.addr.clone(), target.port.into(), "127.0.0.1", 0)
            .await
            .map_err(|e| {
                Failed::Retry(format!(
                    "jump host {} cannot open a channel to {}:{}: {e}",
                    jump.host, target.addr, target.port
                ))
            })?;
        client::connect_stream(config, channel.into_stream(), handler).await
    } else {
        client::connect(config, (target.addr.as_str(), target.port), handler).await
    };
    let presented = presented.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut handle = match result {
        Ok(handle) => handle,
        Err(e) => {
            if let (Some(pin), Some(key)) = (pinned, &presented)
                && pin.key_data() != key.key_data()
            {
                return Err(Failed::Fatal(RemoteError::HostKeyChanged {
                    host: target.host.clone(),
                    pinned: fingerprint(pin),
                    presented: fingerprint(key),
                }));
            }
            let mut detail = e.to_string();
            if let Some(mut child) = proxy {
                let _ = child.start_kill();
                if let Some(task) = proxy_stderr
                    && let Ok(Ok(text)) =
                        tokio::time::timeout(Duration::from_millis(500), task).await
                    && !text.trim().is_empty()
                {
                    detail.push_str(&format!("; the proxy command said: {}", text.trim()));
                }
            }
            return Err(Failed::Retry(detail));
        }
    };
    let Some(presented) = presented else {
        return Err(Failed::Retry("no host key presented".to_string()));
    };
    let hash = if key.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    };
    let auth = handle
        .authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(Arc::clone(key), hash),
        )
        .await
        .map_err(|e| Failed::Retry(format!("authentication interrupted: {e}")))?;
    match auth {
        AuthResult::Success => Ok(Connected {
            handle,
            presented,
            proxy,
        }),
        // The server went away mid-login: not a verdict on the key.
        AuthResult::Failure { .. } if handle.is_closed() => Err(Failed::Retry(
            "the connection closed during authentication".to_string(),
        )),
        AuthResult::Failure { .. } => Err(Failed::Fatal(RemoteError::Auth {
            host: target.host.clone(),
            user: target.user.clone(),
            key: format!(
                "{} ({})",
                target.key_path.display(),
                fingerprint(key.public_key())
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_command_placeholders_are_shell_quoted() {
        let mut t = SshTarget::new("web-1", "10.0.0.5", 2222, "root", "k".into());
        t.instance_id = Some("i-0abc'; rm -rf /".to_string());
        assert_eq!(
            expand_proxy_command("tunnel %i --to %h:%p 100%% %x %", &t),
            r"tunnel 'i-0abc'\''; rm -rf /' --to 10.0.0.5:2222 100% %x %"
        );
        t.instance_id = None;
        assert_eq!(expand_proxy_command("ssm %i", &t), "ssm ''");
    }

    #[test]
    fn fingerprints_look_like_openssh() {
        let key = PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        )
        .unwrap();
        assert_eq!(
            fingerprint(&key),
            "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
        );
    }
}
