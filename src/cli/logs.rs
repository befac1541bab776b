//! `appgrid logs FILE [ADDRESS…] [-n N] [-f]`: the last lines of the app's
//! log on every web server (or those named), each line prefixed with its
//! machine's address; `-f` then follows them (every second) until Ctrl-C.
//! Secrets redacted. Read-only: no lock.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use appgrid::apply::Configurator;
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::ops::Operations;
use appgrid::roles::app::{LogChunk, LogFrom};
use appgrid::state::State;

use super::run::{applied, web_server, web_servers};
use super::term::outln;
use super::{Failure, providers};

pub async fn run(
    file: &Path,
    addresses: &[String],
    lines: usize,
    follow: bool,
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
            follow,
        },
    )
    .await
}

struct Logs {
    state: State,
    machines: Vec<ResourceAddress>,
    lines: usize,
    follow: bool,
}

/// Print the lines of a piece of a log, prefixed with its machine.
fn print_lines(machine: &ResourceAddress, width: usize, text: &str) {
    for line in text.lines() {
        outln!("{:<width$} | {line}", machine.to_string());
    }
}

impl providers::OpsVisitor for Logs {
    type Output = ExitCode;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        let Logs {
            state,
            machines,
            lines,
            follow,
        } = self;
        let read = |from: Vec<(ResourceAddress, LogFrom)>| {
            let k = Arc::clone(&k);
            let resources = &state.resources;
            async move {
                k.app_logs(resources, &from)
                    .await
                    .map_err(|e| Failure::Message(e.to_string()))
            }
        };
        let width = machines
            .iter()
            .map(|a| a.to_string().len())
            .max()
            .unwrap_or(0);
        let first: Vec<LogChunk> = read(
            machines
                .iter()
                .map(|m| (*m, LogFrom::Last(lines)))
                .collect(),
        )
        .await?;
        let mut offsets = Vec::new();
        for (machine, chunk) in machines.iter().zip(&first) {
            print_lines(machine, width, &chunk.text);
            offsets.push(chunk.end);
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let from = machines
                .iter()
                .zip(&offsets)
                .map(|(m, o)| (*m, LogFrom::Offset(*o)))
                .collect();
            let chunks = read(from).await?;
            // Offsets are the log's sizes, not the printed text's (redaction
            // changes lengths); a line still being written shows in two parts.
            for ((machine, chunk), offset) in machines.iter().zip(chunks).zip(offsets.iter_mut()) {
                print_lines(machine, width, &chunk.text);
                *offset = chunk.end;
            }
        }
    }
}
