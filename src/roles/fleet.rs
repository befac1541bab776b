//! How roles reach an app's machines: a [`Fleet`] connects to a machine from
//! what state records about it and says where appgrid keeps its files there
//! ([`MachinePlace`]) and what the connection learned (a host key to pin).
//! Implementations: [`super::fleet_local::LocalFleet`] (this machine) and
//! [`super::fleet_ssh::SshFleet`] (`hosts` and `aws`).

use std::collections::BTreeMap;
use std::future::Future;

use crate::cloud::CloudError;
use crate::graph::ResourceAddress;
use crate::remote::{Remote, RemoteError};
use crate::state::ResourceState;

/// Where a machine keeps appgrid's files and which address its services bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePlace {
    /// "" on a real host; the machine's directory for the local provider.
    pub root: String,
    pub addr: String,
}

/// A connection to a machine, and what the connection learned about it (a
/// host key to pin in state).
pub struct Connected<R> {
    pub remote: R,
    pub place: MachinePlace,
    pub learned: BTreeMap<String, String>,
}

/// A machine could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The local provider does not know the machine state names.
    #[error("{machine}: {source}")]
    Local {
        machine: ResourceAddress,
        #[source]
        source: CloudError,
    },
    /// SSH: connect, authenticate, host key, or the first script.
    #[error(transparent)]
    Ssh(#[from] RemoteError),
    #[error("{machine} has no address in state to connect to")]
    NoEndpoint { machine: ResourceAddress },
    #[error(
        "{machine}: cannot tell which address of the machine to bind: SSH_CONNECTION and `hostname -I` gave {answer:?}"
    )]
    BindAddr {
        machine: ResourceAddress,
        answer: String,
    },
}

/// How to reach the machines of one provider.
pub trait Fleet: Send + Sync + 'static {
    type Remote: Remote + 'static;
    fn connect(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
    ) -> impl Future<Output = Result<Connected<Self::Remote>, FleetError>> + Send;
}
