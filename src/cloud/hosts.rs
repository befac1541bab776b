//! The `hosts` provider: machines you already have. "Launch" claims a free
//! host from the manifest's pool and records the claim (tags, as on EC2) in a
//! registry beside the state; "terminate" frees it. What runs on a host is
//! stopped and removed by its configurations' undo steps, which the walker
//! runs before a host is freed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    Cloud, CloudError, InstanceStatus, LaunchRequest, LaunchedInstance, Observed, ObservedInstance,
    Owner,
};
use crate::graph::ResourceAddress;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claim {
    /// The pool entry, `addr` or `addr:port`; also the machine's id.
    host: String,
    owner: Owner,
    address: ResourceAddress,
    spec_hash: String,
    instance_type: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    claims: Vec<Claim>,
}

#[derive(Debug)]
pub struct HostsCloud {
    pool: Vec<String>,
    registry_path: PathBuf,
}

fn error(operation: &str, detail: impl std::fmt::Display) -> CloudError {
    CloudError::Api {
        operation: operation.to_string(),
        code: "HostsProvider".into(),
        message: detail.to_string(),
    }
}

impl HostsCloud {
    /// `registry_path`: a JSON file beside the state (the claims).
    pub fn new(pool: Vec<String>, registry_path: PathBuf) -> Self {
        HostsCloud {
            pool,
            registry_path,
        }
    }

    fn read(&self) -> Result<Registry, CloudError> {
        super::registry::read(&self.registry_path, "HostsProvider")
    }

    fn write(&self, registry: &Registry) -> Result<(), CloudError> {
        super::registry::write(&self.registry_path, registry, "HostsProvider")
    }

    fn observed(c: &Claim) -> ObservedInstance {
        ObservedInstance {
            id: c.host.clone(),
            address: Some(c.address),
            spec_hash: Some(c.spec_hash.clone()),
            instance_type: c.instance_type.clone(),
            zone: "hosts".into(),
            status: InstanceStatus::Running,
            private_ip: Some(crate::endpoint::Endpoint::parse(&c.host).host),
            image_id: None,
        }
    }
}

impl Cloud for HostsCloud {
    async fn refresh(&self, owner: &Owner) -> Result<Observed, CloudError> {
        let _g = super::registry::lock(&self.registry_path, "HostsProvider")?;
        Ok(Observed {
            instances: self
                .read()?
                .claims
                .iter()
                .filter(|c| c.owner == *owner)
                .map(Self::observed)
                .collect(),
            groups: Vec::new(),
            key_pair: None,
        })
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<Vec<LaunchedInstance>, CloudError> {
        let _g = super::registry::lock(&self.registry_path, "HostsProvider")?;
        let mut registry = self.read()?;
        let free: Vec<&String> = self
            .pool
            .iter()
            .filter(|h| !registry.claims.iter().any(|c| &&c.host == h))
            .collect();
        if free.len() < request.addresses.len() {
            return Err(error(
                "launch",
                format!(
                    "the pool has {} free host(s), {} needed for {}; add hosts to `hosts` in [provider]",
                    free.len(),
                    request.addresses.len(),
                    super::encode_batch_address(&request.addresses)
                ),
            ));
        }
        let mut launched = Vec::new();
        for (host, address) in free.into_iter().zip(&request.addresses) {
            let claim = Claim {
                host: host.clone(),
                owner: request.owner.clone(),
                address: *address,
                spec_hash: request.spec_hash.clone(),
                instance_type: request.spec.instance_type.clone(),
            };
            launched.push(LaunchedInstance {
                address: *address,
                id: host.clone(),
                zone: "hosts".into(),
                private_ip: Some(crate::endpoint::Endpoint::parse(host).host),
                image_id: None,
            });
            registry.claims.push(claim);
        }
        self.write(&registry)?;
        Ok(launched)
    }

    async fn wait_running(&self, ids: &[String]) -> Result<Vec<ObservedInstance>, CloudError> {
        let registry = self.read()?;
        ids.iter()
            .map(|id| {
                registry
                    .claims
                    .iter()
                    .find(|c| &c.host == id)
                    .map(Self::observed)
                    .ok_or_else(|| error("wait running", format!("{id} is not claimed")))
            })
            .collect()
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        let _g = super::registry::lock(&self.registry_path, "HostsProvider")?;
        let mut registry = self.read()?;
        registry.claims.retain(|c| !ids.contains(&c.host));
        self.write(&registry)
    }
}
