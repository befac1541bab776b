//! The `local` provider: this machine is the cloud.
//!
//! Each instance is a loopback address (127.X.Y.Z, all of 127/8 routes to
//! `lo` with no setup) and a directory that serves as the machine's root;
//! services run as local processes bound to that address. The registry of
//! machines is a JSON file beside them, written atomically, so refresh finds
//! what an interrupted apply launched just as it does on EC2 (by its tags).
//!
//! Machine roots live under `APPGRID_LOCAL_ROOT` (default
//! `/var/tmp/appgrid-local`), not inside the 0700 state directory: services
//! such as Postgres run as their own user and must be able to reach them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Cloud, CloudError, InstanceStatus, LaunchRequest, LaunchedInstance, Observed, ObservedInstance,
    Owner,
};
use crate::graph::ResourceAddress;

pub const ROOT_ENV: &str = "APPGRID_LOCAL_ROOT";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalMachine {
    pub id: String,
    pub addr: String,
    pub root: PathBuf,
    pub owner: Owner,
    pub address: ResourceAddress,
    pub spec_hash: String,
    pub instance_type: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    next: u32,
    machines: Vec<LocalMachine>,
}

/// This machine as a cloud for one app.
#[derive(Debug)]
pub struct LocalCloud {
    dir: PathBuf,
    /// The /16 this app's addresses come from: 127.(prefix).x.y.
    prefix: u8,
}

fn error(operation: &str, detail: impl std::fmt::Display) -> CloudError {
    CloudError::Api {
        operation: operation.to_string(),
        code: "LocalProvider".into(),
        message: detail.to_string(),
    }
}

impl LocalCloud {
    /// Machines of `app` under `base` (one directory per app).
    pub fn new(base: &Path, app: &str) -> Self {
        // Two local roots (or two apps) get different address ranges, so what one
        // left running never holds an address the other hands out.
        let digest = crate::hash::sha256_hex(format!("{}\0{app}", base.display()).as_bytes());
        // 127.100.0.0 – 127.227.255.255; never 127.0.x.x, where the usual services listen.
        let prefix = 100 + (u8::from_str_radix(&digest[..2], 16).unwrap_or(0) % 128);
        LocalCloud {
            dir: base.join(app),
            prefix,
        }
    }

    /// `APPGRID_LOCAL_ROOT`, or `/var/tmp/appgrid-local`.
    pub fn default_base() -> PathBuf {
        std::env::var_os(ROOT_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/appgrid-local"))
    }

    fn registry_path(&self) -> PathBuf {
        self.dir.join("machines.json")
    }

    fn read(&self) -> Result<Registry, CloudError> {
        super::registry::read(&self.registry_path(), "LocalProvider")
    }

    fn write(&self, registry: &Registry) -> Result<(), CloudError> {
        super::registry::write(&self.registry_path(), registry, "LocalProvider")
    }

    /// Where machine `id` has (or had) its root.
    pub fn root_of(&self, id: &str) -> PathBuf {
        self.dir.join("machines").join(id)
    }

    /// Held around every read-modify-write of the registry.
    fn lock(&self) -> Result<crate::durable::FileLock, CloudError> {
        super::registry::lock(&self.registry_path(), "LocalProvider")
    }

    /// Every machine of this app, whatever its owner's lineage.
    pub fn machines(&self) -> Result<Vec<LocalMachine>, CloudError> {
        Ok(self.read()?.machines)
    }

    /// The machine with this id.
    pub fn machine(&self, id: &str) -> Result<LocalMachine, CloudError> {
        self.machines()?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| error("find machine", format!("no local machine {id}")))
    }

    fn observed(m: &LocalMachine, zone: &str) -> ObservedInstance {
        ObservedInstance {
            id: m.id.clone(),
            address: Some(m.address),
            spec_hash: Some(m.spec_hash.clone()),
            instance_type: m.instance_type.clone(),
            zone: zone.to_string(),
            status: InstanceStatus::Running,
            private_ip: Some(m.addr.clone()),
            image_id: None,
        }
    }
}

/// End every process of the machine (found by the supervisor's mark, its
/// arguments, working directory or open files: not only by pid files, which
/// may be lost), then remove the root.
fn wipe(root: &Path) -> std::io::Result<()> {
    crate::remote::reap::reap(root, std::time::Duration::from_secs(10));
    match std::fs::remove_dir_all(root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Cloud for LocalCloud {
    async fn refresh(&self, owner: &Owner) -> Result<Observed, CloudError> {
        let _guard = self.lock()?;
        Ok(Observed {
            instances: self
                .read()?
                .machines
                .iter()
                .filter(|m| m.owner == *owner)
                .map(|m| Self::observed(m, "local"))
                .collect(),
            groups: Vec::new(),
            key_pair: None,
        })
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<Vec<LaunchedInstance>, CloudError> {
        let _guard = self.lock()?;
        let mut registry = self.read()?;
        let mut launched = Vec::new();
        for address in &request.addresses {
            registry.next += 1;
            let n = registry.next;
            if n >= 256 * 254 {
                return Err(error(
                    "launch",
                    "no loopback addresses left for this app (65,000 machines)",
                ));
            }
            let id = format!("local-{n}");
            let addr = format!("127.{}.{}.{}", self.prefix, n / 254, n % 254 + 1);
            let root = self.root_of(&id);
            std::fs::create_dir_all(&root)
                .map_err(|e| error("launch", format!("{}: {e}", root.display())))?;
            // Services run as their own users: they must be able to reach the root.
            for dir in [&self.dir, &self.dir.join("machines"), &root] {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            }
            let machine = LocalMachine {
                id: id.clone(),
                addr: addr.clone(),
                root,
                owner: request.owner.clone(),
                address: *address,
                spec_hash: request.spec_hash.clone(),
                instance_type: request.spec.instance_type.clone(),
            };
            registry.machines.push(machine);
            launched.push(LaunchedInstance {
                address: *address,
                id,
                zone: request.spec.zone.clone(),
                private_ip: Some(addr),
                image_id: None,
            });
        }
        self.write(&registry)?;
        Ok(launched)
    }

    async fn wait_running(&self, ids: &[String]) -> Result<Vec<ObservedInstance>, CloudError> {
        let machines = self.machines()?;
        ids.iter()
            .map(|id| {
                machines
                    .iter()
                    .find(|m| &m.id == id)
                    .map(|m| Self::observed(m, "local"))
                    .ok_or_else(|| error("wait running", format!("no local machine {id}")))
            })
            .collect()
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        let _guard = self.lock()?;
        let mut registry = self.read()?;
        let (gone, kept): (Vec<LocalMachine>, Vec<LocalMachine>) = registry
            .machines
            .into_iter()
            .partition(|m| ids.contains(&m.id));
        for m in &gone {
            wipe(&m.root).map_err(|e| error("terminate", format!("{}: {e}", m.root.display())))?;
        }
        registry.machines = kept;
        self.write(&registry)
    }
}

/// Machines by id, for building transports.
pub fn by_id(machines: Vec<LocalMachine>) -> BTreeMap<String, LocalMachine> {
    machines.into_iter().map(|m| (m.id.clone(), m)).collect()
}
