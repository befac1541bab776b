//! Reaching the `local` provider's machines: scripts run here, with the
//! machine's root directory as ROOT.

use std::sync::Arc;

use super::fleet::{Connected, Fleet, FleetError, MachinePlace};
use crate::cloud::local::LocalCloud;
use crate::graph::ResourceAddress;
use crate::remote::local::LocalTransport;
use crate::remote::reap::{self, Process};
use crate::remote::{LogSink, Redactor};
use crate::state::ResourceState;
use crate::templates::Templates;

pub struct LocalFleet {
    pub cloud: Arc<LocalCloud>,
    pub redactor: Redactor,
    pub log: Option<LogSink>,
}

impl Fleet for LocalFleet {
    type Remote = LocalTransport;

    async fn connect(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
    ) -> Result<Connected<LocalTransport>, FleetError> {
        let m = self
            .cloud
            .machine(&machine.id)
            .map_err(|source| FleetError::Local {
                machine: address,
                source,
            })?;
        let root = m.root.display().to_string();
        let mut remote =
            LocalTransport::new(format!("{address} ({})", m.addr), self.redactor.clone())
                .with_env("ROOT", &root)
                .with_env("ADDR", &m.addr);
        if let Some(log) = &self.log {
            remote = remote.with_log(Arc::clone(log));
        }
        Ok(Connected {
            remote,
            place: MachinePlace { root, addr: m.addr },
            learned: Default::default(),
        })
    }

    /// The machine's root on this host (it may be gone): every process that
    /// belongs to it (mark, arguments, working directory, open files) ended.
    async fn sweep(
        &self,
        _: ResourceAddress,
        machine: &ResourceState,
        _: &Templates,
    ) -> Result<Vec<Process>, FleetError> {
        // No id, no machine (its root would be every machine's parent).
        if machine.id.is_empty() {
            return Ok(Vec::new());
        }
        let root = self.cloud.root_of(&machine.id);
        Ok(tokio::task::spawn_blocking(move || {
            reap::reap(&root, std::time::Duration::from_secs(10))
        })
        .await
        .unwrap_or_default())
    }
}
