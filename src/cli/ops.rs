//! Day-two commands: `appgrid status`, `appgrid db migrate`, `appgrid db switchover`,
//! `appgrid db failover`.
//!
//! Each runs through [`providers::with_operations`]; one that changes machines
//! holds the state lock from start to end ([`Locked`]) and records what it
//! did, re-applying what depends on it through the walker.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use appgrid::apply::{Configurator, Outcome};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::ops::{
    FailoverOutcome, Locked, LockedError, MigrationReport, OperationError, Operations,
};
use appgrid::state::State;

use super::term::outln;
use super::{Failure, providers, reconfigure, report};

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

/// The roles' [`AppStatus`](appgrid::status::AppStatus) with the state it
/// was read from, the failover command filled in when the origin does not
/// answer.
struct StatusOf {
    state: State,
    /// The manifest as the user named it, for the commands status suggests.
    manifest: String,
}

impl providers::Ask for StatusOf {
    type Answer = (State, appgrid::status::AppStatus);
    async fn ask<K: Operations>(self, k: &K) -> Result<Self::Answer, OperationError> {
        let StatusOf { state, manifest } = self;
        let mut status = k.status(&state.resources).await?;
        if let Some(origin) = status.origin.as_mut().filter(|o| !o.answers) {
            origin.command = Some(format!("appgrid db failover {manifest}"));
        }
        status.maintenance = state.maintenance.clone();
        Ok((state, status))
    }
}

async fn status_in(
    ws: &Workspace,
    file: &Path,
) -> Result<(State, appgrid::status::AppStatus), Failure> {
    let state = applied(ws)?;
    let manifest = file.display().to_string();
    providers::ask(ws, StatusOf { state, manifest }).await
}

/// `appgrid status` as data: the state it was read from and the report (the
/// panel draws its overview from these).
pub async fn status_data(
    file: &Path,
    state: Option<&Path>,
) -> Result<(State, appgrid::status::AppStatus), Failure> {
    status_in(&Workspace::open(file, state)?, file).await
}

/// `json`: the same facts as one JSON object.
pub async fn status(file: &Path, state: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let (state, mut status) = status_in(&ws, file).await?;
    status.tls = ws
        .certificate
        .as_ref()
        .map(|c| appgrid::status::TlsStatus::of(c, jiff::Timestamp::now()));
    let (app, serial, count) = (&state.app, state.serial, state.resources.len());
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

struct Migrate {
    state: State,
    sql: String,
    dry_run: bool,
}

impl providers::Ask for Migrate {
    type Answer = MigrationReport;
    async fn ask<K: Operations>(self, k: &K) -> Result<MigrationReport, OperationError> {
        k.migrate(&self.state.resources, &self.sql, self.dry_run)
            .await
    }
}

/// What a migration creates and its steps (every script with `--dry-run`).
fn migration_lines(report: &MigrationReport) -> Vec<String> {
    let mut lines = Vec::new();
    let created: Vec<String> = report
        .new_tables
        .iter()
        .map(|t| format!("table {t}"))
        .chain(report.new_sequences.iter().map(|s| format!("sequence {s}")))
        .collect();
    if report.dry_run {
        lines.push("Dry run: nothing was changed. The migration would run like this:".to_string());
        for (i, step) in report.steps.iter().enumerate() {
            let reaches = match step.reaches.is_empty() {
                true => String::new(),
                false => format!(" -> {}", step.reaches.join(", ")),
            };
            lines.push(format!("{}. on {}{reaches}: {}", i + 1, step.on, step.what));
            lines.extend(step.script.trim_end().lines().map(|l| format!("   | {l}")));
        }
    } else {
        lines.push("Migration applied on every database node.".to_string());
    }
    if !created.is_empty() {
        let verb = if report.dry_run {
            "would join"
        } else {
            "joined"
        };
        lines.push(format!(
            "New, and {verb} replication (a temporary set merged into set 1): {}.",
            created.join(", ")
        ));
    }
    lines
}

pub async fn migrate(
    file: &Path,
    sql: &Path,
    dry_run: bool,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    // A dry run changes nothing: like status, it takes no lock.
    let _lock = match dry_run {
        true => None,
        false => Some(ws.lock("db migrate", lock_timeout)?),
    };
    let s = applied(&ws)?;
    let text = std::fs::read_to_string(sql)
        .map_err(|e| Failure::Message(format!("cannot read {}: {e}", sql.display())))?;
    let report = providers::ask(
        &ws,
        Migrate {
            state: s,
            sql: text,
            dry_run,
        },
    )
    .await?;
    for line in migration_lines(&report) {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
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
        app_servers_follow(&outcome, &to)
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

struct Failover<'w> {
    locked: Locked<'w>,
}

impl providers::OpsVisitor for Failover<'_> {
    type Output = ExitCode;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        cloud: Arc<C>,
        k: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        fail_over(self.locked, cloud, k)
            .await
            .map(|_| ExitCode::SUCCESS)
    }
}

/// Fail the dead origin over under the state lock (`db failover`, and the
/// autoscale runner with `failover = "auto"`): FAILOVER, the new origin
/// recorded, every app server released against it.
pub(super) async fn fail_over<C: Cloud, K: Configurator + Operations>(
    mut locked: Locked<'_>,
    cloud: Arc<C>,
    k: Arc<K>,
) -> Result<FailoverOutcome, Failure> {
    let (changed, outcome) = k
        .failover(&locked.state().resources)
        .await
        .map_err(operation)?;
    // The cluster has a new origin: recorded before anything else can fail.
    locked.record(&changed.attributes).map_err(self::locked)?;
    let (failed, to) = (&outcome.failed, &outcome.to);
    outln!(
        "{failed} did not answer; {to} is the origin now (Slony-I FAILOVER, {:.1} s).",
        outcome.took_seconds
    );
    outln!(
        "Lost: replication lag at the moment of failure was {} event(s), {:.1} s: writes {failed} committed after {} are not on {to} (last event heard of: {}).",
        outcome.lag_events,
        outcome.lag_seconds,
        outcome
            .applied_at
            .as_deref()
            .unwrap_or("its last replicated SYNC"),
        outcome.seen_at.as_deref().unwrap_or("unknown"),
    );
    outln!(
        "{failed} was dropped from the cluster; the next `appgrid apply` replaces its machine with a new replica."
    );
    outln!("Pointing the app servers at {to}…");
    let outcome_walk = locked
        .reconfigure(cloud, k, &changed.reconfigure, &changed.reason, &mut |e| {
            report::print_event(&e)
        })
        .await
        .map_err(self::locked)?;
    app_servers_follow(&outcome_walk, to)?;
    Ok(outcome)
}

pub async fn failover(
    file: &Path,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let locked = Locked::acquire(&ws, "db failover", lock_timeout).map_err(locked)?;
    providers::with_operations(&ws, Failover { locked }).await
}

/// After the origin moved to `to` (switchover or failover): success when the
/// walk re-released every app server against it, else what is left to do.
fn app_servers_follow(outcome: &Outcome, to: &dyn std::fmt::Display) -> Result<ExitCode, Failure> {
    if let Some(undone) = reconfigure::undone(outcome, "skipped") {
        return Err(Failure::Message(format!(
            "{to} is the origin, but not every app server points at it yet ({undone}); \
             `appgrid apply` releases them again"
        )));
    }
    outln!(
        "Every app server writes to {to} ({} released again).",
        outcome.done.len()
    );
    Ok(ExitCode::SUCCESS)
}
