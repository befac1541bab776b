//! Reaching machines over SSH (`hosts` and `aws`): host keys pinned in state on
//! first contact, through the manifest's jump host or proxy command. The jump
//! host's key is pinned too (`jump_host_key` on every machine reached through
//! it); a changed one stops the apply like a machine's. Endpoints may be IPv6
//! (`fd00::5`, `[fd00::5]:2222`).
//!
//! On first contact the fleet also asks the machine which of its own
//! addresses the connection reached, and keeps it in state as `bind_addr`:
//! the address its services listen on and its peers use (see
//! [`crate::roles::configure::machine_addr`]). The cloud's idea of the
//! address (`private_ip`) is only where to connect: behind a proxy command or
//! a NAT it need not be an address of the machine at all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::fleet::{Connected, Fleet, FleetError, MachinePlace, parse_swept};
use crate::endpoint::Endpoint;
use crate::graph::ResourceAddress;
use crate::manifest::Provider;
use crate::remote::reap::Process;
use crate::remote::ssh::{SshTarget, SshTransport};
use crate::remote::{LogSink, Redactor, Remote};
use crate::state::ResourceState;
use crate::templates::Templates;

/// The state attribute that pins a machine's SSH host key.
pub const HOST_KEY: &str = "host_key";
/// The state attribute with the machine's SSH endpoint (`addr` or `addr:port`).
pub const SSH_ENDPOINT: &str = "ssh";
/// The state attribute that pins the jump host's SSH host key, recorded on
/// every machine reached through it.
pub const JUMP_HOST_KEY: &str = "jump_host_key";
/// The state attribute with the address the machine's services bind, learned
/// from the machine itself on first contact.
pub const BIND_ADDR: &str = "bind_addr";

/// Which address of this machine the SSH connection reached: the server half
/// of sshd's `SSH_CONNECTION`; when that is loopback (a tunnel ending on the
/// machine, e.g. SSM), the first address `hostname -I` lists.
const LEARN_BIND_ADDR: &str = r#"set -eu
set -- ${SSH_CONNECTION:-}
addr=${3:-}
addr=${addr#::ffff:}
case "$addr" in
""|127.*|::1) addr=$( (hostname -I 2>/dev/null || true) | cut -d' ' -f1) ;;
esac
printf '%s\n' "$addr"
"#;

/// The address [`LEARN_BIND_ADDR`] printed, if it is one.
fn parse_bind_addr(stdout: &str) -> Option<String> {
    let addr = stdout.trim();
    let ip: std::net::IpAddr = addr.parse().ok()?;
    (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
}

pub struct SshFleet {
    pub user: String,
    pub key_path: PathBuf,
    pub proxy_command: Option<String>,
    pub jump_host: Option<String>,
    pub redactor: Redactor,
    pub log: Option<LogSink>,
    /// How long to keep trying until sshd answers (a machine just launched).
    pub connect_timeout: Duration,
    /// The machine's id is its SSH endpoint (the `hosts` provider's pool entries).
    pub id_is_endpoint: bool,
    /// The jump host's key as first seen in this process or read from a
    /// machine's record: machines without a pin of their own are held to it.
    jump_pin: std::sync::Mutex<Option<String>>,
}

impl SshFleet {
    pub fn new(
        provider: &Provider,
        key_path: PathBuf,
        redactor: Redactor,
        log: Option<LogSink>,
    ) -> Self {
        SshFleet {
            user: provider.ssh_user.clone(),
            key_path,
            proxy_command: provider.proxy_command.clone(),
            jump_host: provider.jump_host.clone(),
            redactor,
            log,
            connect_timeout: Duration::from_secs(120),
            id_is_endpoint: false,
            jump_pin: std::sync::Mutex::new(None),
        }
    }

    fn target(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
    ) -> Result<SshTarget, FleetError> {
        let endpoint = if self.id_is_endpoint {
            &machine.id
        } else {
            machine
                .attributes
                .get(SSH_ENDPOINT)
                .or_else(|| machine.attributes.get("private_ip"))
                .ok_or(FleetError::NoEndpoint { machine: address })?
        };
        let Endpoint { host: addr, port } = Endpoint::parse(endpoint);
        let mut target = SshTarget::new(
            &format!("{address} ({addr})"),
            &addr,
            port,
            &self.user,
            self.key_path.clone(),
        );
        target.pinned_host_key = machine.attributes.get(HOST_KEY).cloned();
        target.instance_id = Some(machine.id.clone());
        target.proxy_command = self.proxy_command.clone();
        if let Some(jump) = &self.jump_host {
            let Endpoint { host, port } = Endpoint::parse(jump);
            let mut j = SshTarget::new(
                &format!("jump host {jump}"),
                &host,
                port,
                &self.user,
                self.key_path.clone(),
            );
            // Pinned like any machine: by the machine's record, else by what
            // this process already trusted.
            j.pinned_host_key = machine.attributes.get(JUMP_HOST_KEY).cloned().or_else(|| {
                self.jump_pin
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            });
            target.jump = Some(Box::new(j));
        }
        Ok(target)
    }
}

impl Fleet for SshFleet {
    type Remote = SshTransport;

    async fn connect(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
    ) -> Result<Connected<SshTransport>, FleetError> {
        let target = self.target(address, machine)?;
        let pinned = target.pinned_host_key.is_some();
        let remote = SshTransport::connect(
            target,
            self.redactor.clone(),
            self.log.clone(),
            self.connect_timeout,
        )
        .await?;
        let mut learned = BTreeMap::new();
        if !pinned {
            // Trust on first use: pinned from now on; a different key later stops the apply.
            learned.insert(HOST_KEY.to_string(), remote.presented_host_key());
        }
        if let Some(jump) = remote.jump() {
            let key = jump.presented_host_key();
            self.jump_pin
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| key.clone());
            if !machine.attributes.contains_key(JUMP_HOST_KEY) {
                learned.insert(JUMP_HOST_KEY.to_string(), key);
            }
        }
        let addr = match machine.attributes.get(BIND_ADDR) {
            Some(addr) => addr.clone(),
            None => {
                let out = remote
                    .run("learning the machine's address", LEARN_BIND_ADDR)
                    .await?;
                let addr = parse_bind_addr(&out.stdout).ok_or_else(|| FleetError::BindAddr {
                    machine: address,
                    answer: out.stdout.trim().to_string(),
                })?;
                learned.insert(BIND_ADDR.to_string(), addr.clone());
                addr
            }
        };
        Ok(Connected {
            remote,
            place: MachinePlace {
                root: String::new(),
                addr,
            },
            learned,
        })
    }

    /// A `hosts` machine given back to the pool: every process carrying the
    /// supervisor's mark is stopped (`lib/sweep.sh`). An EC2 instance is
    /// terminated, and what ran on it with it: nothing to do.
    async fn sweep(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
        templates: &Templates,
    ) -> Result<Vec<Process>, FleetError> {
        if !self.id_is_endpoint {
            return Ok(Vec::new());
        }
        let connected = self.connect(address, machine).await?;
        let mut ctx = tera::Context::new();
        ctx.insert("root", &connected.place.root);
        let script = templates.render("lib/sweep.sh", &ctx)?;
        let out = connected
            .remote
            .run("stopping what appgrid left on the host", &script)
            .await?;
        parse_swept(address, &out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addr_is_a_routable_ip() {
        assert_eq!(parse_bind_addr("10.0.3.7\n"), Some("10.0.3.7".into()));
        assert_eq!(parse_bind_addr("fd00::5\n"), Some("fd00::5".into()));
        assert_eq!(parse_bind_addr("\n"), None);
        assert_eq!(parse_bind_addr("127.0.0.1\n"), None);
        assert_eq!(parse_bind_addr("0.0.0.0"), None);
        assert_eq!(parse_bind_addr("ip-10-0-3-7"), None);
    }

    #[test]
    fn bind_addr_comes_from_ssh_connection_then_hostname() {
        let run = |ssh_connection: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(LEARN_BIND_ADDR)
                .env("SSH_CONNECTION", ssh_connection)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(run("10.9.0.1 50122 10.9.0.12 22"), "10.9.0.12\n");
        assert_eq!(
            run("::ffff:10.9.0.1 50122 ::ffff:10.9.0.12 22"),
            "10.9.0.12\n"
        );
        // A tunnel ending on loopback: the machine's own first address instead.
        let own = run("127.0.0.1 50122 127.0.0.1 22");
        assert!(!own.starts_with("127."), "{own}");
    }
}
