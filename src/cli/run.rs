//! `appgrid run FILE [--on web[1]] -- CMD ARGS…`: a one-off process on a web
//! server, in the current release's directory with the app's env; its output
//! streamed as it comes (redacted) and its exit status are appgrid's; on a
//! terminal, an interactive session (see `session`). Read-only for state: no
//! lock.

use std::path::Path;
use std::process::ExitCode;

use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::roles::console::ConsoleWhat;
use appgrid::state::State;

use super::Failure;

/// The web servers state holds whose release is applied, in order.
pub fn web_servers(state: &State) -> Vec<ResourceAddress> {
    state
        .resources
        .keys()
        .filter_map(|a| match a {
            ResourceAddress::Config {
                role: Role::Web,
                index,
            } => Some(ResourceAddress::instance(Role::Web, *index)),
            _ => None,
        })
        .filter(|m| state.resources.contains_key(m))
        .collect()
}

/// `web[1]` → that machine, checked to be a web server with a release.
pub fn web_server(state: &State, written: &str) -> Result<ResourceAddress, Failure> {
    let servers = web_servers(state);
    let listed = servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let address: ResourceAddress = written
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| Failure::Message(e.to_string()))?;
    if !servers.contains(&address) {
        return Err(Failure::Message(format!(
            "{address} is not a web server with a release; the web servers are: {}",
            if listed.is_empty() {
                "none yet"
            } else {
                &listed
            }
        )));
    }
    Ok(address)
}

pub(super) fn applied(ws: &Workspace) -> Result<State, Failure> {
    ws.load_state()?.ok_or_else(|| {
        Failure::Message(format!(
            "no state at {}: apply {} first",
            ws.store_path.display(),
            ws.manifest.path.display()
        ))
    })
}

pub async fn run(
    file: &Path,
    on: Option<&str>,
    argv: Vec<String>,
    state_path: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let state = applied(&ws)?;
    let machine = match on {
        Some(on) => web_server(&state, on)?,
        None => *web_servers(&state).first().ok_or_else(|| {
            Failure::Message("no web server has a release yet: apply the manifest first".into())
        })?,
    };
    if argv.is_empty() {
        return Err(Failure::Message(
            "no command: write it after `--`, e.g. `appgrid run FILE -- printenv`".into(),
        ));
    }
    super::ssh::session(&ws, state, machine, ConsoleWhat::App { argv }).await
}
