//! Reaching the `local` provider's machines: scripts run here, with the
//! machine's root directory as ROOT.

use std::sync::Arc;

use super::configure::{Connected, Fleet, MachinePlace};
use crate::cloud::local::LocalCloud;
use crate::graph::ResourceAddress;
use crate::remote::local::LocalTransport;
use crate::remote::{LogSink, Redactor};
use crate::state::ResourceState;

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
    ) -> Result<Connected<LocalTransport>, String> {
        let m = self
            .cloud
            .machine(&machine.id)
            .map_err(|e| format!("{address}: {e}"))?;
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
}
