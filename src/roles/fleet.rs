//! How roles reach an app's machines: a [`Fleet`] connects to a machine from
//! what state records about it and says where appgrid keeps its files there
//! ([`MachinePlace`]) and what the connection learned (a host key to pin).
//! Implementations: [`super::fleet_local::LocalFleet`] (this machine) and
//! [`super::fleet_ssh::SshFleet`] (`hosts` and `aws`).

use std::collections::BTreeMap;
use std::future::Future;

use crate::cloud::CloudError;
use crate::graph::ResourceAddress;
use crate::remote::reap::Process;
use crate::remote::{Remote, RemoteError};
use crate::state::ResourceState;
use crate::templates::Templates;

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
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
    #[error("{machine}: the sweep printed {line:?}, not `PID COMMAND`")]
    SweepAnswer {
        machine: ResourceAddress,
        line: String,
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

    /// After `machine` left the app (terminated, or given back to a pool):
    /// stop whatever appgrid started that still runs there (TERM, then KILL);
    /// what it found. A machine that no longer exists has nothing left.
    fn sweep(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
        templates: &Templates,
    ) -> impl Future<Output = Result<Vec<Process>, FleetError>> + Send;
}

/// `PID COMMAND` lines (what `lib/sweep.sh` prints).
pub fn parse_swept(machine: ResourceAddress, stdout: &str) -> Result<Vec<Process>, FleetError> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (pid, command) = line.split_once(' ').unwrap_or((line, ""));
            let pid = pid.parse().map_err(|_| FleetError::SweepAnswer {
                machine,
                line: line.to_string(),
            })?;
            Ok(Process {
                pid,
                command: command.trim_end().to_string(),
            })
        })
        .collect()
}
