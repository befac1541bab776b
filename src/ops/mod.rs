//! Day-two operations on a running app — status, schema migrations, the load
//! balancer's counters, switchover, backups and restore, and (later) failover, moves,
//! releases and rollback, logs, one-off commands — and the one path by which
//! they change machines and state.
//!
//! Two seams:
//! - [`Operations`]: what an operation does on the machines. One method per
//!   operation, no defaults: a provider whose machines appgrid does not
//!   configure (`configure = false`) has no `Operations` at all, and the CLI
//!   says so before connecting anywhere. The real implementation is
//!   [`crate::roles::configure::RoleConfigurator`].
//! - [`Locked`]: an operation that changes anything runs under the state lock
//!   from start to end; what it learned is recorded ([`Locked::record`]) and
//!   the configurations that read it are applied again through the walker
//!   ([`Locked::reconfigure`]: rolling, each result recorded and saved as it
//!   finishes, a failure leaving state that says what was done).
//!
//! Invariant: no operation configures a machine outside [`Locked::reconfigure`]
//! (and so outside the walker); read-only operations (status, counters) take
//! no lock.

pub mod backup;
mod db;
mod locked;

use std::collections::BTreeMap;
use std::future::Future;

use crate::graph::ResourceAddress;
use crate::state::ResourceState;

pub use db::{FAILED_OVER, FailoverOutcome, MigrationReport, MigrationStep};
pub use locked::{Locked, LockedError};

/// Every machine and configuration state records, secrets included.
pub type Resources = BTreeMap<ResourceAddress, ResourceState>;

/// One web server's counters at the load balancer (HAProxy `show stat`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerCounters {
    /// `web{i}`, the server's name at the load balancer.
    pub name: String,
    pub up: bool,
    /// Requests since the server was added (a counter).
    pub requests: u64,
    /// Average response time over the last 1,024 requests, ms.
    pub response_ms: u64,
    /// Average time the last 1,024 requests waited in the load balancer's
    /// queue, ms (HAProxy's `qtime`).
    #[serde(default)]
    pub queue_ms: u64,
    pub sessions: u64,
    pub queued: u64,
    /// (busy, total) CPU jiffies of the server's machine, when asked for.
    #[serde(default)]
    pub cpu: Option<(u64, u64)>,
}

/// One read replica's load as the autoscaler reads it (issue 13).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaReading {
    /// `db.replica[i]`.
    pub address: ResourceAddress,
    /// How far behind the origin it is (Slony-I `sl_status` `st_lag_time`), s.
    pub lag_s: Option<f64>,
    /// The app's client connections to it, the mean of a few looks.
    pub connections: Option<f64>,
}

/// What an operation changed on the machines, for [`Locked`] to record and
/// follow up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changed {
    /// Attributes to set on these resources in state (others are kept).
    pub attributes: BTreeMap<ResourceAddress, BTreeMap<String, String>>,
    /// Configurations that read what changed and must be applied again, in
    /// this order (e.g. every web release after the origin moved).
    pub reconfigure: Vec<ResourceAddress>,
    /// Why, for the progress lines and the plan-like record.
    pub reason: String,
}

/// An operation that failed, and which. The text is the source's (it names
/// the machine or the state entry at fault); `operation` is for programs.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct OperationError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl OperationError {
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        OperationError {
            operation,
            source: source.into(),
        }
    }
}

/// Day-two operations on the machines of a running app (see the module doc).
/// Each takes what state records now; none writes state itself.
pub trait Operations: Send + Sync + 'static {
    /// What the running app looks like: its machines and services.
    fn status(
        &self,
        resources: &Resources,
    ) -> impl Future<Output = Result<crate::status::AppStatus, OperationError>> + Send;

    /// Run a schema change on every database node, in order with the data;
    /// the tables and sequences it creates join replication. `dry_run`: only
    /// say what would run where (the SQL is tried on the origin in a
    /// transaction that is rolled back). A table without a primary key is
    /// refused before anything runs.
    fn migrate(
        &self,
        resources: &Resources,
        sql: &str,
        dry_run: bool,
    ) -> impl Future<Output = Result<MigrationReport, OperationError>> + Send;

    /// Counters of the web tier as the load balancer sees them now.
    /// `cpu`: also read each web machine's CPU counters.
    fn web_counters(
        &self,
        resources: &Resources,
        cpu: bool,
    ) -> impl Future<Output = Result<Vec<ServerCounters>, OperationError>> + Send;

    /// Every read replica's lag and, when `connections`, its client
    /// connections (issue 13). A replica that cannot be asked is left out.
    fn replica_load(
        &self,
        resources: &Resources,
        connections: bool,
    ) -> impl Future<Output = Result<Vec<ReplicaReading>, OperationError>> + Send;

    /// Make `to` (a replica) the origin of the replicated set. Returns what to
    /// record (`slony.cluster`'s origin) and what to apply again (every web
    /// release: the app's `DATABASE_URL` names the origin).
    fn switchover(
        &self,
        resources: &Resources,
        to: ResourceAddress,
    ) -> impl Future<Output = Result<Changed, OperationError>> + Send;

    /// The origin is gone (its machine or its Postgres does not answer):
    /// FAILOVER to the most advanced subscriber and drop the dead node.
    /// Refused, changing nothing, while the origin answers anyone. Returns
    /// what to record (the new origin; the dead machine marked
    /// [`FAILED_OVER`], so the next apply replaces it with a new replica) and
    /// to apply again (every web release), and what was lost.
    fn failover(
        &self,
        resources: &Resources,
    ) -> impl Future<Output = Result<(Changed, FailoverOutcome), OperationError>> + Send;

    /// A full backup of the database origin to the manifest's
    /// `[database.backup]` target (issue 8). `origin`: annotation naming why
    /// (`manual`, `final`, `scheduled`).
    fn backup(
        &self,
        resources: &Resources,
        access: &backup::RepoAccess,
        why: &str,
    ) -> impl Future<Output = Result<backup::BackupInfo, OperationError>> + Send;

    /// Every backup of this app in the target, oldest first.
    fn backups(
        &self,
        resources: &Resources,
        access: &backup::RepoAccess,
    ) -> impl Future<Output = Result<Vec<backup::BackupInfo>, OperationError>> + Send;

    /// Restore a backup (or a point in time after it).
    fn restore(
        &self,
        resources: &Resources,
        access: &backup::RepoAccess,
        request: &backup::RestoreRequest,
    ) -> impl Future<Output = Result<backup::BackupInfo, OperationError>> + Send;

    /// `appgrid logs`: the logs each request names, in that order (one
    /// entry per request). Redacted.
    fn logs(
        &self,
        resources: &Resources,
        requests: &[crate::roles::console::LogRequest],
    ) -> impl Future<Output = Result<Vec<Vec<crate::roles::console::LogFile>>, OperationError>> + Send;

    /// `appgrid run` (streamed or on a terminal), `ssh`, `db psql`: a process
    /// here that runs `what` on `machine` (see [`crate::remote::console`]).
    fn console(
        &self,
        resources: &Resources,
        machine: ResourceAddress,
        what: &crate::roles::console::ConsoleWhat,
        tty: bool,
    ) -> impl Future<Output = Result<crate::remote::console::Console, OperationError>> + Send;
}
