//! Reaching machines over SSH (`hosts` and `aws`): host keys pinned in state on
//! first contact, through the manifest's jump host or proxy command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::configure::{Connected, Fleet, MachinePlace};
use crate::graph::ResourceAddress;
use crate::manifest::Provider;
use crate::remote::ssh::{SshTarget, SshTransport};
use crate::remote::{LogSink, Redactor};
use crate::state::ResourceState;

/// The state attribute that pins a machine's SSH host key.
pub const HOST_KEY: &str = "host_key";
/// The state attribute with the machine's SSH endpoint (`addr` or `addr:port`).
pub const SSH_ENDPOINT: &str = "ssh";

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
}

/// `addr` or `addr:port` → (addr, port).
pub fn split_endpoint(entry: &str) -> (String, u16) {
    match entry.rsplit_once(':') {
        Some((addr, port)) if port.parse::<u16>().is_ok() => {
            (addr.to_string(), port.parse().unwrap_or(22))
        }
        _ => (entry.to_string(), 22),
    }
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
        }
    }

    fn target(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
    ) -> Result<SshTarget, String> {
        let endpoint = if self.id_is_endpoint {
            &machine.id
        } else {
            machine
                .attributes
                .get(SSH_ENDPOINT)
                .or_else(|| machine.attributes.get("private_ip"))
                .ok_or_else(|| format!("{address} has no address in state to connect to"))?
        };
        let (addr, port) = split_endpoint(endpoint);
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
            let (jaddr, jport) = split_endpoint(jump);
            target.jump = Some(Box::new(SshTarget::new(
                jump,
                &jaddr,
                jport,
                &self.user,
                self.key_path.clone(),
            )));
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
    ) -> Result<Connected<SshTransport>, String> {
        let target = self.target(address, machine)?;
        let pinned = target.pinned_host_key.is_some();
        let remote = SshTransport::connect(
            target,
            self.redactor.clone(),
            self.log.clone(),
            self.connect_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut learned = BTreeMap::new();
        if !pinned {
            // Trust on first use: pinned from now on; a different key later stops the apply.
            learned.insert(HOST_KEY.to_string(), remote.presented_host_key());
        }
        let addr = machine
            .attributes
            .get("private_ip")
            .cloned()
            .unwrap_or_else(|| {
                split_endpoint(
                    machine
                        .attributes
                        .get(SSH_ENDPOINT)
                        .map_or("", String::as_str),
                )
                .0
            });
        Ok(Connected {
            remote,
            place: MachinePlace {
                root: String::new(),
                addr,
            },
            learned,
        })
    }
}
