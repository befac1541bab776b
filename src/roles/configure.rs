//! The real [`Configurator`]: each configuration address runs its role on its
//! machine, reached through a [`Fleet`] (local processes, or SSH).

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::apply::{
    ConfigError, ConfigJob, ConfigStep, Configurator, Configured, MoveJob, MovedIn, Stopped,
};
use crate::graph::{ResourceAddress, Role};
use crate::manifest::Manifest;
use crate::remote::Redactor;
use crate::state::ResourceState;
use crate::templates::Templates;

use super::RoleError;

pub use super::fleet::{Connected, Fleet, FleetError, MachinePlace};

/// Runs the roles of one app's manifest: for the walker ([`Configurator`])
/// and for day-two operations ([`crate::ops::Operations`]).
pub struct RoleConfigurator<F> {
    pub fleet: F,
    pub manifest: Manifest,
    /// The workspace's templates (embedded, or the project's own).
    pub templates: Templates,
    /// The manifest's directory: `[release] path` is relative to it.
    pub base_dir: PathBuf,
    pub redactor: Redactor,
    /// The release archived once per content digest, for every web server.
    pub archives: tokio::sync::Mutex<BTreeMap<String, std::sync::Arc<Vec<u8>>>>,
    /// `[release] release_command` per release digest, run once per run:
    /// its outcome (the error's text), for every other web server's step.
    pub release_commands: tokio::sync::Mutex<BTreeMap<String, Result<(), String>>>,
    /// The app's config vars (`appgrid config set`), from state.
    pub config_vars: BTreeMap<String, secrecy::SecretString>,
    /// Maintenance mode (`appgrid maintenance`), from state: every
    /// configuration of the load balancer keeps it.
    pub maintenance: Option<crate::maintenance::Maintenance>,
}

/// (busy, total) jiffies from the `cpu` line of /proc/stat: busy is everything
/// but idle and iowait.
pub fn cpu_jiffies(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
    if values.len() < 5 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Some((total - idle, total))
}

/// The indices of the web machines a configuration's input `key` lists
/// (`web[0],web[2]`).
pub fn web_indices(spec: &crate::graph::ConfigSpec, key: &str) -> Vec<u32> {
    listed(spec, key, Role::Web).unwrap_or_default()
}

/// The indices of `role`'s machines a configuration's input `key` lists
/// (`db.replica[0],db.replica[1]`); `None` when the spec has no such input.
/// The spec, not the manifest, says which machines: the autoscaler's counts
/// reach the graph, never the configurator's copy of the manifest.
pub fn listed(spec: &crate::graph::ConfigSpec, key: &str, role: Role) -> Option<Vec<u32>> {
    spec.inputs.get(key).map(|list| {
        list.split(',')
            .filter_map(|a| match a.parse::<ResourceAddress>() {
                Ok(ResourceAddress::Instance { role: r, index }) if r == role => Some(index),
                _ => None,
            })
            .collect()
    })
}

/// The address a machine's services listen on, from state: the `bind_addr`
/// an SSH fleet learned from the machine itself, else the cloud's `private_ip`
/// (the `local` provider's loopback address; a `hosts` pool entry).
pub fn machine_addr(
    resources: &BTreeMap<ResourceAddress, ResourceState>,
    machine: ResourceAddress,
) -> Result<String, RoleError> {
    let attributes = resources.get(&machine).map(|r| &r.attributes);
    attributes
        .and_then(|a| {
            a.get(super::fleet_ssh::BIND_ADDR)
                .or_else(|| a.get("private_ip"))
        })
        .cloned()
        .ok_or(RoleError::NoAddress { machine })
}

/// A configuration state must already record (applied before this one).
pub(super) fn applied(
    resources: &BTreeMap<ResourceAddress, ResourceState>,
    address: ResourceAddress,
    needed_by: ResourceAddress,
) -> Result<&ResourceState, RoleError> {
    resources.get(&address).ok_or(RoleError::NotInState {
        address,
        needed_by: Some(needed_by),
    })
}

/// A secret attribute state must record.
pub(super) fn secret_attribute(
    record: &ResourceState,
    address: ResourceAddress,
    attribute: &'static str,
) -> Result<SecretString, RoleError> {
    record
        .attributes
        .get(attribute)
        .map(|v| SecretString::from(v.as_str()))
        .ok_or(RoleError::MissingAttribute { address, attribute })
}

impl<F: Fleet> RoleConfigurator<F> {
    async fn connect(&self, job: &ConfigJob) -> Result<Connected<F::Remote>, RoleError> {
        let machine = job.address.machine().ok_or(RoleError::WrongAddress {
            address: job.address,
            expected: "a configuration lives on a machine",
        })?;
        let record = applied(&job.resources, machine, job.address)?;
        Ok(self.fleet.connect(machine, record).await?)
    }

    /// A machine of the app, connected.
    pub(super) async fn connect_to(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
        machine: ResourceAddress,
    ) -> Result<Connected<F::Remote>, RoleError> {
        let record = resources.get(&machine).ok_or(RoleError::NotInState {
            address: machine,
            needed_by: None,
        })?;
        Ok(self.fleet.connect(machine, record).await?)
    }
}

impl<F: Fleet> Configurator for RoleConfigurator<F> {
    async fn configure(&self, job: ConfigJob) -> Result<Configured, ConfigError> {
        let address = job.address;
        self.configure_role(job)
            .await
            .map_err(|e| ConfigError::new(address, ConfigStep::Configure, e))
    }

    async fn unconfigure(&self, job: ConfigJob) -> Result<(), ConfigError> {
        let address = job.address;
        self.unconfigure_role(job)
            .await
            .map_err(|e| ConfigError::new(address, ConfigStep::Unconfigure, e))
    }

    async fn move_in(&self, job: MoveJob) -> Result<MovedIn, ConfigError> {
        self.move_in_db(&job)
            .await
            .map_err(|e| ConfigError::new(job.config, ConfigStep::Configure, e))
    }

    async fn move_out(&self, job: MoveJob) -> Result<(), ConfigError> {
        self.move_out_db(&job)
            .await
            .map_err(|e| ConfigError::new(job.config, ConfigStep::Unconfigure, e))
    }

    async fn sweep(
        &self,
        machines: Vec<(ResourceAddress, ResourceState)>,
    ) -> Result<Vec<Stopped>, ConfigError> {
        let mut stopped = Vec::new();
        for (machine, record) in machines {
            let found = self
                .fleet
                .sweep(machine, &record, &self.templates)
                .await
                .map_err(|e| ConfigError::new(machine, ConfigStep::Sweep, RoleError::from(e)))?;
            stopped.extend(found.into_iter().map(|p| Stopped {
                machine,
                pid: p.pid,
                command: p.command,
            }));
        }
        Ok(stopped)
    }
}

impl<F: Fleet> RoleConfigurator<F> {
    async fn configure_role(&self, job: ConfigJob) -> Result<Configured, RoleError> {
        let connected = self.connect(&job).await?;
        let (remote, place) = (&connected.remote, &connected.place);
        let configured = Configured {
            machine_attributes: connected.learned.clone(),
            ..Configured::default()
        };
        match job.address {
            ResourceAddress::Config {
                role: Role::Cache | Role::Web | Role::Lb,
                ..
            } => {
                self.configure_web_tier(&job, remote, place, configured)
                    .await
            }
            other => {
                self.configure_database(other, &job, remote, place, configured)
                    .await
            }
        }
    }

    async fn unconfigure_role(&self, job: ConfigJob) -> Result<(), RoleError> {
        let connected = self.connect(&job).await?;
        let (remote, place) = (&connected.remote, &connected.place);
        match job.address {
            ResourceAddress::Config {
                role: Role::Cache | Role::Web | Role::Lb,
                ..
            } => self.unconfigure_web_tier(&job, remote, place).await,
            other => self.unconfigure_database(other, &job, remote, place).await,
        }
    }
}
