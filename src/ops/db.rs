//! What the database operations report, as data: a migration's steps (what
//! runs on which node, for `db migrate --dry-run` and after a real run) and
//! a failover's outcome (who took over, what was lost, how long it took).

use serde::Serialize;

/// One step of a migration: where it runs, what it reaches, its script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStep {
    /// The machine it runs on (`db.primary`, `db.replica[0]`, …).
    pub on: String,
    /// The machines it reaches, in order with the data.
    pub reaches: Vec<String>,
    pub what: String,
    /// The slonik script or the SQL (no secrets: passwords live in .pgpass).
    pub script: String,
}

/// A migration: what it creates and the steps it takes (or took).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MigrationReport {
    /// Nothing ran (`--dry-run`).
    pub dry_run: bool,
    /// `schema.table` of every table it creates, each added to replication.
    pub new_tables: Vec<String>,
    pub new_sequences: Vec<String>,
    pub steps: Vec<MigrationStep>,
}

/// A failover of a dead origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverOutcome {
    /// The machine that was the origin (dropped from the cluster).
    pub failed: String,
    /// The machine that is the origin now.
    pub to: String,
    /// The old origin's last SYNC the new origin had applied, and the last
    /// event of the old origin any survivor had heard of.
    pub applied_event: i64,
    pub seen_event: i64,
    pub applied_at: Option<String>,
    pub seen_at: Option<String>,
    /// Replication lag at the moment of failure: the writes committed on the
    /// old origin in this window are not on the new one.
    pub lag_events: i64,
    pub lag_seconds: f64,
    /// From FAILOVER to the survivors replicating from the new origin.
    pub took_seconds: f64,
}

/// The attribute a failed-over machine carries in state until the next apply
/// replaces it (its value says why).
pub const FAILED_OVER: &str = "failed_over";
