//! `appgrid logs FILE [ADDRESS…] [-n N]`: the last lines of the app's log on
//! every web server (or those named), each line prefixed with its machine's
//! address; secrets redacted. Read-only: no lock.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use appgrid::apply::Configurator;
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::ops::Operations;
use appgrid::state::State;

use super::run::{applied, web_server, web_servers};
use super::term::outln;
use super::{Failure, providers};

pub async fn run(
    file: &Path,
    addresses: &[String],
    lines: usize,
    state_path: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let state = applied(&ws)?;
    let machines = if addresses.is_empty() {
        web_servers(&state)
    } else {
        addresses
            .iter()
            .map(|a| web_server(&state, a))
            .collect::<Result<Vec<_>, _>>()?
    };
    providers::with_operations(
        &ws,
        Logs {
            state,
            machines,
            lines,
        },
    )
    .await
}

struct Logs {
    state: State,
    machines: Vec<ResourceAddress>,
    lines: usize,
}

impl providers::OpsVisitor for Logs {
    type Output = ExitCode;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        let logs = k
            .app_logs(&self.state.resources, &self.machines, self.lines)
            .await
            .map_err(|e| Failure::Message(e.to_string()))?;
        let width = logs
            .iter()
            .map(|(a, _)| a.to_string().len())
            .max()
            .unwrap_or(0);
        for (machine, text) in logs {
            for line in text.lines() {
                outln!("{:<width$} | {line}", machine.to_string());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
