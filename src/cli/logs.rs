//! `appgrid logs FILE [ADDRESS…] [-n N] [--since 10m] [-f]`: the last lines
//! of the app's log on every web server (or of the machines named: `web[i]`
//! the app, `lb` HAProxy, `db.primary` / `db.replica[i]` Postgres and slon,
//! `cache[i]` memcached), merged by the time written in the lines
//! (`appgrid::log_merge`), each prefixed with where it comes from; `-f`
//! then follows them (every second) until Ctrl-C. `--service S` keeps one
//! service's log of a machine (`db.primary --service slon`). Secrets redacted.
//! Read-only: no lock. Nothing keeps running on a machine between two reads
//! (no remote `tail -f`), so an interrupted `-f` leaves nothing behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use appgrid::apply::Configurator;
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::log_merge::{self, Source};
use appgrid::ops::Operations;
use appgrid::roles::console::{LogFile, LogRequest, log_prefixes};
use appgrid::state::State;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::run::{applied, web_server, web_servers};
use super::term::outln;
use super::{Failure, providers};

/// Lines read from each log when `--since` is given and `-n` is not: enough
/// to reach back a while on a busy server.
const SINCE_LINES: usize = 10_000;

/// The services whose logs appgrid reads, by the name `--service` takes,
/// and the prefix of their files under `var/log/appgrid`.
pub const SERVICES: &[(&str, &str)] = &[
    ("app", "app."),
    ("haproxy", "haproxy."),
    ("postgres", "postgres."),
    ("slon", "slon-"),
    ("memcached", "memcached."),
];

/// The log file prefixes to read on `machine`: all its services', or the
/// one `service` names (which must run there).
pub fn service_prefixes(
    machine: ResourceAddress,
    service: Option<&str>,
) -> Result<Vec<&'static str>, Failure> {
    let all = log_prefixes(machine).unwrap_or_default();
    let Some(service) = service else {
        return Ok(all);
    };
    let on_machine: Vec<&str> = SERVICES
        .iter()
        .filter(|(_, p)| all.contains(p))
        .map(|(n, _)| *n)
        .collect();
    match SERVICES.iter().find(|(n, _)| *n == service) {
        Some((_, p)) if all.contains(p) => Ok(vec![*p]),
        _ => Err(Failure::Message(format!(
            "{machine} has no {service} log; its services are: {}",
            on_machine.join(", ")
        ))),
    }
}

pub async fn run(
    file: &Path,
    addresses: &[String],
    service: Option<&str>,
    lines: Option<usize>,
    since: Option<Duration>,
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
            .map(|a| logged_machine(&state, a))
            .collect::<Result<Vec<_>, _>>()?
    };
    let prefixes = machines
        .iter()
        .map(|m| service_prefixes(*m, service))
        .collect::<Result<Vec<_>, _>>()?;
    let since = since
        .map(|d| {
            jiff::SignedDuration::try_from(d)
                .ok()
                .and_then(|d| Timestamp::now().checked_sub(d).ok())
                .ok_or_else(|| Failure::Message("--since reaches too far back".into()))
        })
        .transpose()?;
    let lines = lines.unwrap_or(if since.is_some() { SINCE_LINES } else { 100 });
    providers::with_operations(
        &ws,
        Logs {
            state,
            machines,
            prefixes,
            lines,
            since,
            follow,
        },
    )
    .await
}

/// The lines `appgrid logs FILE MACHINE --service SERVICE -n LINES` prints,
/// as data (the panel's service logs), each prefixed as printed.
pub async fn service_lines(
    ws: &Workspace,
    state: State,
    machine: &str,
    service: Option<&str>,
    lines: usize,
) -> Result<Vec<String>, Failure> {
    let machine = logged_machine(&state, machine)?;
    let prefixes = vec![service_prefixes(machine, service)?];
    let machines = vec![machine];
    let read = providers::with_operations(
        ws,
        ReadOnce {
            state,
            requests: requests(&machines, &prefixes, lines, None),
        },
    )
    .await?;
    Ok(render(&sources(&machines, &read), None, &mut 0))
}

/// One read of the logs `requests` name.
struct ReadOnce {
    state: State,
    requests: Vec<LogRequest>,
}

impl providers::OpsVisitor for ReadOnce {
    type Output = Vec<Vec<LogFile>>;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<Self::Output, Failure> {
        k.logs(&self.state.resources, &self.requests)
            .await
            .map_err(|e| Failure::Message(e.to_string()))
    }
}

/// What to read on each machine: these files, the last `lines` of each (or
/// what follows the offsets).
fn requests(
    machines: &[ResourceAddress],
    prefixes: &[Vec<&'static str>],
    lines: usize,
    offsets: Option<&Vec<BTreeMap<String, u64>>>,
) -> Vec<LogRequest> {
    machines
        .iter()
        .zip(prefixes)
        .enumerate()
        .map(|(i, (m, p))| LogRequest {
            machine: *m,
            prefixes: p.clone(),
            lines,
            offsets: offsets.map(|o| o[i].clone()),
        })
        .collect()
}

/// An address whose logs appgrid reads, checked against state.
fn logged_machine(state: &State, written: &str) -> Result<ResourceAddress, Failure> {
    let address: ResourceAddress = written
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| Failure::Message(e.to_string()))?;
    if let ResourceAddress::Instance {
        role: Role::Web, ..
    } = address
    {
        return web_server(state, written);
    }
    if log_prefixes(address).is_none() || !state.resources.contains_key(&address) {
        let machines: Vec<String> = state
            .resources
            .keys()
            .filter(|a| log_prefixes(**a).is_some())
            .map(ToString::to_string)
            .collect();
        return Err(Failure::Message(format!(
            "{address} is not a machine of this app with logs; name one of: {}",
            if machines.is_empty() {
                "none yet".to_string()
            } else {
                machines.join(", ")
            }
        )));
    }
    Ok(address)
}

struct Logs {
    state: State,
    machines: Vec<ResourceAddress>,
    /// The log file prefixes to read on each machine.
    prefixes: Vec<Vec<&'static str>>,
    lines: usize,
    since: Option<Timestamp>,
    follow: bool,
}

/// What a file's lines are prefixed with: the machine, and on machines with
/// several logs (database: Postgres and slon) the log's name.
fn label(machine: ResourceAddress, file: &str) -> String {
    match log_prefixes(machine) {
        Some(p) if p.len() > 1 => {
            format!("{machine} {}", file.strip_suffix(".log").unwrap_or(file))
        }
        _ => machine.to_string(),
    }
}

/// The files read, as merge sources, in the order of the machines.
fn sources(machines: &[ResourceAddress], read: &[Vec<LogFile>]) -> Vec<Source> {
    machines
        .iter()
        .zip(read)
        .flat_map(|(m, files)| {
            files.iter().map(|f| Source {
                label: label(*m, &f.name),
                lines: f.text.lines().map(ToString::to_string).collect(),
                modified: Timestamp::from_second(f.modified).ok(),
            })
        })
        .collect()
}

/// The zone for times written without one: this machine's (`/etc/localtime`),
/// else UTC. Servers keep UTC as a rule; a machine in another zone that
/// writes local times without saying so is placed by this machine's zone.
fn local_zone() -> TimeZone {
    std::fs::read("/etc/localtime")
        .ok()
        .and_then(|b| TimeZone::tzif("localtime", &b).ok())
        .unwrap_or(TimeZone::UTC)
}

/// Merged lines, each prefixed with its source (aligned to the widest label
/// seen so far).
fn render(sources: &[Source], since: Option<Timestamp>, width: &mut usize) -> Vec<String> {
    let zone = local_zone();
    *width = sources
        .iter()
        .map(|s| s.label.len())
        .max()
        .unwrap_or(0)
        .max(*width);
    log_merge::merge(sources, &zone, since)
        .into_iter()
        .map(|line| {
            format!(
                "{:<w$} | {}",
                sources[line.source].label,
                line.text,
                w = *width
            )
        })
        .collect()
}

fn print(sources: &[Source], since: Option<Timestamp>, width: &mut usize) {
    for line in render(sources, since, width) {
        outln!("{line}");
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
            prefixes,
            lines,
            since,
            follow,
        } = self;
        let request = |offsets: Option<&Vec<BTreeMap<String, u64>>>| {
            requests(&machines, &prefixes, lines, offsets)
        };
        let read = |requests: Vec<LogRequest>| {
            let k = Arc::clone(&k);
            let resources = &state.resources;
            async move {
                k.logs(resources, &requests)
                    .await
                    .map_err(|e| Failure::Message(e.to_string()))
            }
        };
        let first = read(request(None)).await?;
        let mut width = 0;
        print(&sources(&machines, &first), since, &mut width);
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        // Offsets are the files' sizes, not the printed text's (redaction
        // changes lengths); a line still being written shows in two parts.
        let offsets_of = |read: &[Vec<LogFile>]| -> Vec<BTreeMap<String, u64>> {
            read.iter()
                .map(|files| files.iter().map(|f| (f.name.clone(), f.end)).collect())
                .collect()
        };
        let mut offsets = offsets_of(&first);
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let more = tokio::select! {
                _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
                more = read(request(Some(&offsets))) => more?,
            };
            print(&sources(&machines, &more), None, &mut width);
            offsets = offsets_of(&more);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_picks_its_files_on_a_machine_that_runs_it() {
        let primary = ResourceAddress::instance(Role::DbPrimary, 0);
        assert_eq!(
            service_prefixes(primary, None).unwrap(),
            vec!["postgres.", "slon-"]
        );
        assert_eq!(
            service_prefixes(primary, Some("slon")).unwrap(),
            vec!["slon-"]
        );
        let lb = ResourceAddress::instance(Role::Lb, 0);
        assert_eq!(
            service_prefixes(lb, Some("haproxy")).unwrap(),
            vec!["haproxy."]
        );
        for (machine, service, says) in [
            (
                lb,
                "postgres",
                "lb has no postgres log; its services are: haproxy",
            ),
            (
                primary,
                "nginx",
                "db.primary has no nginx log; its services are: postgres, slon",
            ),
        ] {
            match service_prefixes(machine, Some(service)) {
                Err(Failure::Message(m)) => assert_eq!(m, says),
                other => panic!("{service}: {other:?}"),
            }
        }
    }
}
