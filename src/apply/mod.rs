//! Apply: walk a plan's steps against a [`Cloud`], saving state after every
//! completed step.
//!
//! The walk is OpenTofu's: each step waits for its dependencies; throughput
//! is bounded by `parallelism`, outside the graph; a step whose dependency
//! failed is skipped as "upstream failed" and never runs. On cancellation
//! (Ctrl-C) no new step starts, running steps finish, and state is saved, so
//! a failed or interrupted apply leaves a state that says exactly what exists.

mod execute;
pub mod fake;
pub mod steps;
mod walk;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use execute::resolve_path;
pub use steps::{Step, StepKind};
pub use walk::walk;

use crate::graph::{ConfigSpec, ResourceAddress};
use crate::state::ResourceState;

/// One configuration to apply or undo, with what state knows.
#[derive(Debug, Clone)]
pub struct ConfigJob {
    pub address: ResourceAddress,
    /// The spec to apply (for an undo: the one last applied).
    pub spec: ConfigSpec,
    /// What state records for it now, secrets included (never printed).
    pub prior: Option<ResourceState>,
    /// Every machine and configuration in state, secrets included.
    pub resources: BTreeMap<ResourceAddress, ResourceState>,
}

/// What applying a configuration learned, to keep in state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Configured {
    /// Attributes of the configuration (e.g. a generated password).
    pub attributes: BTreeMap<String, String>,
    /// Attributes to merge into its machine's record (e.g. the pinned host key).
    pub machine_attributes: BTreeMap<String, String>,
}

/// Gives machines their roles: the real one runs `roles` over `remote`;
/// unit tests use a recording fake.
pub trait Configurator: Send + Sync + 'static {
    fn configure(&self, job: ConfigJob) -> impl Future<Output = Result<Configured, String>> + Send;
    /// Undo before the machine goes: drop a replica from the cluster, stop a service.
    fn unconfigure(&self, job: ConfigJob) -> impl Future<Output = Result<(), String>> + Send;

    /// What the running app looks like: its machines and services.
    fn status(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
    ) -> impl Future<Output = Result<crate::status::AppStatus, String>> + Send {
        let _ = resources;
        async { Err("this provider's machines are not configured by appgrid".to_string()) }
    }

    /// Run a schema change on every database node, in order with the data.
    fn migrate(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        sql: String,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let _ = (resources, sql);
        async { Err("this provider's machines are not configured by appgrid".to_string()) }
    }

    /// Counters of the web tier as the load balancer sees them now.
    /// `cpu`: also read each web machine's CPU counters.
    fn web_counters(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        cpu: bool,
    ) -> impl Future<Output = Result<Vec<ServerCounters>, String>> + Send {
        let _ = (resources, cpu);
        async { Err("this provider's load balancer is not configured by appgrid".to_string()) }
    }

    /// Make `to` (a replica) the origin of the replicated set; returns the
    /// attributes to record on `slony.cluster`.
    fn switchover(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        to: ResourceAddress,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, String>> + Send {
        let _ = (resources, to);
        async { Err("this provider's machines are not configured by appgrid".to_string()) }
    }
}

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
    pub sessions: u64,
    pub queued: u64,
    /// (busy, total) CPU jiffies of the server's machine, when asked for.
    #[serde(default)]
    pub cpu: Option<(u64, u64)>,
}

/// For graphs with no configuration (`configure = false`): any job is an error.
#[derive(Debug, Default)]
pub struct NoConfigurator;

impl Configurator for NoConfigurator {
    async fn configure(&self, job: ConfigJob) -> Result<Configured, String> {
        Err(format!(
            "{}: this provider cannot configure machines; set `configure = false` in [provider]",
            job.address
        ))
    }
    async fn unconfigure(&self, job: ConfigJob) -> Result<(), String> {
        Err(format!(
            "{}: this provider cannot configure machines",
            job.address
        ))
    }
}

/// A change to state that a step reports as soon as it knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Put(ResourceAddress, Box<ResourceState>),
    /// Remove the entry only if it still records this id (a replacement may
    /// already have put its successor there).
    RemoveIfId(ResourceAddress, String),
}

/// Saves state; the walker calls it after every batch of changes.
pub trait Checkpoint {
    fn checkpoint(&mut self, state: &mut crate::state::State) -> Result<(), String>;
}

impl Checkpoint for crate::state::store::StateStore {
    fn checkpoint(&mut self, state: &mut crate::state::State) -> Result<(), String> {
        self.save(state).map_err(|e| e.to_string())
    }
}

/// Keeps every checkpointed serial in memory (for tests).
#[derive(Debug, Default)]
pub struct MemoryCheckpoint {
    pub saved: Vec<crate::state::State>,
}

impl Checkpoint for MemoryCheckpoint {
    fn checkpoint(&mut self, state: &mut crate::state::State) -> Result<(), String> {
        state.serial += 1;
        self.saved.push(state.clone());
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Steps running at once (default 10, as OpenTofu, to stay clear of throttling).
    pub parallelism: usize,
    /// Relative paths in the manifest (the public key) are relative to this.
    pub base_dir: PathBuf,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 10,
            base_dir: PathBuf::from("."),
        }
    }
}

/// Progress, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        label: String,
    },
    Finished {
        label: String,
        elapsed: Duration,
        detail: String,
    },
    Failed {
        label: String,
        error: String,
    },
    Skipped {
        label: String,
        reason: String,
    },
    Saved {
        serial: u64,
    },
}

/// What a walk did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub done: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
    pub not_started: Vec<String>,
    pub interrupted: bool,
    /// A checkpoint failed: the walk stopped; the error says why.
    pub checkpoint_error: Option<String>,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
            && self.skipped.is_empty()
            && self.not_started.is_empty()
            && !self.interrupted
            && self.checkpoint_error.is_none()
    }
}

#[cfg(test)]
mod tests;
