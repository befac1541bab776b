//! Day-two commands: `appgrid status`, `appgrid db migrate`, `appgrid db switchover`.
//!
//! Each runs through [`providers::with_operations`]; one that changes machines
//! holds the state lock from start to end ([`Locked`]) and records what it
//! did, re-applying what depends on it through the walker.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use appgrid::apply::Configurator;
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::ops::{Locked, LockedError, OperationError, Operations};
use appgrid::state::State;

use super::term::outln;
use super::{Failure, providers, report};

/// The workspace's state, which these commands need to exist.
fn applied(ws: &Workspace) -> Result<State, Failure> {
    ws.load_state()?.ok_or_else(|| {
        Failure::Message(format!(
            "no state at {}: apply {} first",
            ws.store_path.display(),
            ws.manifest.path.display()
        ))
    })
}

fn operation(e: OperationError) -> Failure {
    Failure::Message(e.to_string())
}

pub(super) fn locked(e: LockedError) -> Failure {
    match e {
        LockedError::Engine(e) => Failure::Engine(e),
        other => Failure::Message(other.to_string()),
    }
}

struct Status {
    state: State,
    json: bool,
}

impl providers::OpsVisitor for Status {
    type Output = ExitCode;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        let Status { state, json } = self;
        let (app, serial, count) = (&state.app, state.serial, state.resources.len());
        let status = k.status(&state.resources).await.map_err(operation)?;
        if json {
            let mut value = serde_json::to_value(&status).expect("status serializes");
            value["app"] = app.as_str().into();
            value["serial"] = serial.into();
            value["resources"] = count.into();
            outln!("{}", serde_json::to_string_pretty(&value).expect("json"));
            return Ok(ExitCode::SUCCESS);
        }
        outln!("{app} (state serial {serial}, {count} resources)");
        for line in status.lines() {
            outln!("{line}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `json`: the same facts as one JSON object.
pub async fn status(file: &Path, state: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let state = applied(&ws)?;
    providers::with_operations(&ws, Status { state, json }).await
}

struct Migrate(State, String);

impl providers::OpsVisitor for Migrate {
    type Output = ExitCode;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        k.migrate(&self.0.resources, &self.1)
            .await
            .map_err(operation)?;
        outln!("Migration applied on every database node.");
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn migrate(
    file: &Path,
    sql: &Path,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let _lock = ws.lock("db migrate", lock_timeout)?;
    let s = applied(&ws)?;
    let text = std::fs::read_to_string(sql)
        .map_err(|e| Failure::Message(format!("cannot read {}: {e}", sql.display())))?;
    providers::with_operations(&ws, Migrate(s, text)).await
}

struct Switchover<'w> {
    locked: Locked<'w>,
    to: ResourceAddress,
}

impl providers::OpsVisitor for Switchover<'_> {
    type Output = ExitCode;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        cloud: Arc<C>,
        k: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        let Switchover { mut locked, to } = self;
        let changed = k
            .switchover(&locked.state().resources, to)
            .await
            .map_err(operation)?;
        // The set has moved: recorded before anything else can fail.
        locked.record(&changed.attributes).map_err(self::locked)?;
        outln!("{to} is now the origin: writes go there. Pointing the app servers at it…");
        let outcome = locked
            .reconfigure(cloud, k, &changed.reconfigure, &changed.reason, &mut |e| {
                report::print_event(&e)
            })
            .await
            .map_err(self::locked)?;
        if !outcome.is_success() {
            let failed: Vec<String> = outcome
                .failed
                .iter()
                .map(|(l, e)| format!("{l}: {e}"))
                .chain(outcome.skipped.iter().map(|l| format!("{l}: skipped")))
                .collect();
            return Err(Failure::Message(format!(
                "{to} is the origin, but not every app server points at it yet ({}); \
                 `appgrid apply` releases them again",
                failed.join("; ")
            )));
        }
        outln!(
            "Every app server writes to {to} ({} released again).",
            outcome.done.len()
        );
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn switchover(
    file: &Path,
    to: &str,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let to: ResourceAddress = to
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| Failure::Message(e.to_string()))?;
    let ws = Workspace::open(file, state)?;
    let locked = Locked::acquire(&ws, "db switchover", lock_timeout).map_err(locked)?;
    providers::with_operations(&ws, Switchover { locked, to }).await
}
