//! `appgrid ssh FILE ADDRESS [-- CMD…]`: a shell (or one command) on any of
//! the app's machines through the same transport as apply (proxy command,
//! jump host) with the host key pinned in state; for the `local` provider, a
//! shell in the machine's directory. `appgrid db psql FILE [--replica N]
//! [-- PSQL ARGS…]`: psql as the app's user to the primary or a replica, run
//! on that database machine. Read-only for state: no lock.

use std::path::Path;
use std::process::ExitCode;

use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::ops::{OperationError, Operations};
use appgrid::roles::console::ConsoleWhat;
use appgrid::state::State;

use super::run::applied;
use super::{Failure, providers, session};

/// A machine state holds, by its address (`web[0]`, `lb`, `db.primary`).
fn machine(state: &State, written: &str) -> Result<ResourceAddress, Failure> {
    let address: ResourceAddress = written
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| Failure::Message(e.to_string()))?;
    let machines: Vec<String> = state
        .resources
        .keys()
        .filter(|a| matches!(a, ResourceAddress::Instance { .. }))
        .map(ToString::to_string)
        .collect();
    if !matches!(address, ResourceAddress::Instance { .. })
        || !state.resources.contains_key(&address)
    {
        return Err(Failure::Message(format!(
            "{address} is not a machine of this app; its machines are: {}",
            if machines.is_empty() {
                "none yet".to_string()
            } else {
                machines.join(", ")
            }
        )));
    }
    Ok(address)
}

pub async fn ssh(
    file: &Path,
    address: &str,
    argv: Vec<String>,
    state_path: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let state = applied(&ws)?;
    let machine = machine(&state, address)?;
    session(&ws, state, machine, ConsoleWhat::Shell { argv }).await
}

pub async fn psql(
    file: &Path,
    replica: Option<u32>,
    argv: Vec<String>,
    state_path: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let state = applied(&ws)?;
    let machine = match replica {
        None => ResourceAddress::instance(Role::DbPrimary, 0),
        Some(i) => ResourceAddress::instance(Role::DbReplica, i),
    };
    if !state.resources.contains_key(&machine) {
        let replicas = state
            .resources
            .keys()
            .filter_map(|a| match a {
                ResourceAddress::Instance {
                    role: Role::DbReplica,
                    index,
                } => Some(index.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>();
        return Err(Failure::Message(match replica {
            None => format!(
                "{machine} is not in state: this app has no database, or it is not applied yet"
            ),
            Some(_) => format!(
                "{machine} is not in state; the replicas are: {}",
                if replicas.is_empty() {
                    "none".to_string()
                } else {
                    replicas.join(", ")
                }
            ),
        }));
    }
    session(&ws, state, machine, ConsoleWhat::Psql { argv }).await
}

/// A console on `machine` (also `appgrid run`'s), attached to the user.
pub(super) async fn session(
    ws: &Workspace,
    state: State,
    machine: ResourceAddress,
    what: ConsoleWhat,
) -> Result<ExitCode, Failure> {
    let tty = session::on_terminal();
    let console = providers::ask(
        ws,
        Console {
            state,
            machine,
            what: &what,
            tty,
        },
    )
    .await?;
    session::attach(console, tty, &format!("{} on {machine}", what.operation())).await
}

struct Console<'a> {
    state: State,
    machine: ResourceAddress,
    what: &'a ConsoleWhat,
    tty: bool,
}

impl providers::Ask for Console<'_> {
    type Answer = appgrid::remote::console::Console;
    async fn ask<K: Operations>(self, k: &K) -> Result<Self::Answer, OperationError> {
        k.console(&self.state.resources, self.machine, self.what, self.tty)
            .await
    }
}
