//! Apply: walk a plan's steps against a [`Cloud`], saving state after every
//! completed step.
//!
//! The walk is OpenTofu's: each step waits for its dependencies; throughput
//! is bounded by `parallelism`, outside the graph; a step whose dependency
//! failed is skipped as "upstream failed" and never runs. On cancellation
//! (Ctrl-C) no new step starts, running steps finish, and state is saved, so
//! a failed or interrupted apply leaves a state that says exactly what exists.
//! Launches verify what they made by tag, and a walk that changed machines
//! ends by listing them: "Apply complete" means the cloud matches the state.

mod execute;
pub mod fake;
mod launch;
pub mod steps;
pub mod verify;
mod walk;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use execute::resolve_path;
pub use steps::{Step, StepKind};
pub use verify::Verification;
pub use walk::walk;

use crate::graph::{ConfigSpec, ResourceAddress};
use crate::state::ResourceState;

/// One configuration to apply or undo, with what state knows. `Debug` shows
/// no attribute value (state's attributes hold passwords).
#[derive(Clone)]
pub struct ConfigJob {
    pub address: ResourceAddress,
    /// The spec to apply (for an undo: the one last applied).
    pub spec: ConfigSpec,
    /// What state records for it now, secrets included (never printed).
    pub prior: Option<ResourceState>,
    /// Every machine and configuration in state, secrets included.
    pub resources: BTreeMap<ResourceAddress, ResourceState>,
}

/// Attributes for `Debug`: the names, never the values.
struct Names<'a>(&'a BTreeMap<String, String>);

impl std::fmt::Debug for Names<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl std::fmt::Debug for ConfigJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigJob")
            .field("address", &self.address)
            .field("spec", &self.spec)
            .field(
                "prior",
                &self.prior.as_ref().map(|p| (&p.id, Names(&p.attributes))),
            )
            .field(
                "resources",
                &self
                    .resources
                    .iter()
                    .map(|(a, r)| (a, (&r.id, Names(&r.attributes))))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

/// What applying a configuration learned, to keep in state. `Debug` shows
/// attribute names only (a generated password is one of them).
#[derive(Clone, Default, PartialEq)]
pub struct Configured {
    /// Attributes of the configuration (e.g. a generated password).
    pub attributes: BTreeMap<String, String>,
    /// Attributes to merge into its machine's record (e.g. the pinned host key).
    pub machine_attributes: BTreeMap<String, String>,
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configured")
            .field("attributes", &Names(&self.attributes))
            .field("machine_attributes", &Names(&self.machine_attributes))
            .finish()
    }
}

/// Which half of a configuration's life failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigStep {
    /// Apply it (create or update).
    Configure,
    /// Undo it before its machine goes.
    Unconfigure,
    /// Make sure nothing of it runs on a machine that left.
    Sweep,
}

impl std::fmt::Display for ConfigStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigStep::Configure => "configure",
            ConfigStep::Unconfigure => "remove",
            ConfigStep::Sweep => "sweep",
        })
    }
}

/// A configuration that failed: which one, on which machine, in which step,
/// and why (the source, typed by the configurator: a role's error for the
/// real one). The text is the source's: the walker's progress line already
/// names the address and the step.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct ConfigError {
    /// The configuration (`web[0].release`).
    pub address: ResourceAddress,
    /// The machine it lives on (`web[0]`).
    pub machine: Option<ResourceAddress>,
    pub step: ConfigStep,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl ConfigError {
    pub fn new(
        address: ResourceAddress,
        step: ConfigStep,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        ConfigError {
            address,
            machine: address.machine(),
            step,
            source: source.into(),
        }
    }
}

/// Gives machines their roles: the real one runs `roles` over `remote`;
/// unit tests use a recording fake. Only what the walker needs: day-two
/// operations on a running app are [`crate::ops::Operations`].
pub trait Configurator: Send + Sync + 'static {
    fn configure(
        &self,
        job: ConfigJob,
    ) -> impl Future<Output = Result<Configured, ConfigError>> + Send;
    /// Undo before the machine goes: drop a replica from the cluster, stop a service.
    fn unconfigure(&self, job: ConfigJob) -> impl Future<Output = Result<(), ConfigError>> + Send;
    /// A database machine's online move, first half (the incoming machine is
    /// launched): Postgres on it, subscribed, caught up, and for the primary
    /// the set moved to it. Resumable: each part is skipped when done.
    fn move_in(&self, job: MoveJob) -> impl Future<Output = Result<MovedIn, ConfigError>> + Send;
    /// Second half (after the switchover): drop the outgoing node from the
    /// cluster and stop its Postgres, before its machine is terminated.
    fn move_out(&self, job: MoveJob) -> impl Future<Output = Result<(), ConfigError>> + Send;
    /// After these machines left the app (terminated, or given back to a
    /// pool): stop whatever appgrid started that still runs on them, and say
    /// what that was (issue 15). Empty: nothing of the app was left.
    fn sweep(
        &self,
        machines: Vec<(ResourceAddress, ResourceState)>,
    ) -> impl Future<Output = Result<Vec<Stopped>, ConfigError>> + Send;
}

/// A database machine moving online (see [`crate::state::Moving`]).
/// `Debug` shows no attribute value.
#[derive(Clone)]
pub struct MoveJob {
    /// The machine address (`db.primary`, `db.replica[1]`).
    pub address: ResourceAddress,
    /// Its configuration (`db.primary.config`, `db.replica[1].subscription`)
    /// and the spec to apply on the new machine.
    pub config: ResourceAddress,
    pub spec: ConfigSpec,
    /// The other machine: incoming for [`Configurator::move_in`], outgoing
    /// for [`Configurator::move_out`].
    pub moving: crate::state::Moving,
    /// Every machine and configuration in state, secrets included: the
    /// machine in service at `address`.
    pub resources: BTreeMap<ResourceAddress, ResourceState>,
    /// Every move in progress (this one included): their machines are
    /// nodes of the cluster too until they leave.
    pub moves: BTreeMap<ResourceAddress, crate::state::Moving>,
}

impl std::fmt::Debug for MoveJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoveJob")
            .field("address", &self.address)
            .field("config", &self.config)
            .field("moving", &(&self.moving.machine.id, self.moving.node))
            .finish()
    }
}

/// What the first half of a move learned, to keep in state once the new
/// machine takes the address. `Debug` shows attribute names only.
#[derive(Clone, Default, PartialEq)]
pub struct MovedIn {
    /// Attributes of the configuration on the new machine (its node id).
    pub attributes: BTreeMap<String, String>,
    /// Attributes to merge into the new machine's record (a pinned host key).
    pub machine_attributes: BTreeMap<String, String>,
    /// For the primary: the set's origin is now the new node.
    pub origin: Option<u32>,
    /// The node id of the machine the new one replaces.
    pub old_node: u32,
}

impl std::fmt::Debug for MovedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovedIn")
            .field("attributes", &Names(&self.attributes))
            .field("machine_attributes", &Names(&self.machine_attributes))
            .field("origin", &self.origin)
            .finish()
    }
}

/// A process [`Configurator::sweep`] found still running on a machine that
/// had left the app, and stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub machine: ResourceAddress,
    pub pid: u32,
    pub command: String,
}

/// Every record state holds, keyed by address, and the second machine of a
/// move in progress (`State::moves`) keyed as its address too: what
/// [`removed_machines`] compares, so a machine that is still the old (or
/// new) half of a move is not swept.
pub fn machines_of(state: &crate::state::State) -> BTreeMap<ResourceAddress, Vec<ResourceState>> {
    let mut out: BTreeMap<ResourceAddress, Vec<ResourceState>> = BTreeMap::new();
    for (a, r) in &state.resources {
        out.entry(*a).or_default().push(r.clone());
    }
    // A restore's incoming machine before its launch has no id: no machine.
    for (a, m) in state.moves.iter().filter(|(_, m)| !m.machine.id.is_empty()) {
        out.entry(*a).or_default().push(m.machine.clone());
    }
    out
}

/// The machines `before` recorded that `after` no longer has: those a walk
/// removed, for [`Configurator::sweep`].
pub fn removed_machines(
    before: &BTreeMap<ResourceAddress, Vec<ResourceState>>,
    after: &BTreeMap<ResourceAddress, Vec<ResourceState>>,
) -> Vec<(ResourceAddress, ResourceState)> {
    before
        .iter()
        .filter(|(a, _)| matches!(a, ResourceAddress::Instance { .. }))
        .flat_map(|(a, records)| records.iter().map(move |r| (*a, r)))
        .filter(|(a, r)| {
            after
                .get(a)
                .is_none_or(|now| now.iter().all(|n| n.id != r.id))
        })
        .map(|(a, r)| (a, r.clone()))
        .collect()
}

/// The record `db restore` (into a new primary, issue 8) puts in
/// `State::moves` for `address` before the apply that carries it out: an
/// incoming machine not launched yet (no id), the Slony-I node it will be,
/// and the backup it is restored from. `None` when state does not hold
/// `address`.
pub fn restore_move(
    state: &crate::state::State,
    address: ResourceAddress,
    restore: crate::state::MoveRestore,
) -> Option<crate::state::Moving> {
    let current = state.resources.get(&address)?;
    Some(crate::state::Moving {
        direction: crate::state::MoveDirection::Incoming,
        machine: ResourceState {
            spec: current.spec.clone(),
            id: String::new(),
            depends_on: current.depends_on.clone(),
            attributes: BTreeMap::new(),
        },
        node: execute::next_node(state),
        restore: Some(restore),
    })
}

/// Kept here for the callers that knew it as `apply::ServerCounters`.
pub use crate::ops::ServerCounters;

/// Refuses every job: for graphs with no configuration (`configure = false`),
/// where the walker never plans one.
#[derive(Debug, Default)]
pub struct NoConfigurator;

/// What [`NoConfigurator`] says.
#[derive(Debug, thiserror::Error)]
#[error("this provider cannot configure machines; set `configure = false` in [provider]")]
pub struct CannotConfigure;

impl Configurator for NoConfigurator {
    async fn configure(&self, job: ConfigJob) -> Result<Configured, ConfigError> {
        Err(ConfigError::new(
            job.address,
            ConfigStep::Configure,
            CannotConfigure,
        ))
    }
    async fn unconfigure(&self, job: ConfigJob) -> Result<(), ConfigError> {
        Err(ConfigError::new(
            job.address,
            ConfigStep::Unconfigure,
            CannotConfigure,
        ))
    }
    async fn move_in(&self, job: MoveJob) -> Result<MovedIn, ConfigError> {
        Err(ConfigError::new(
            job.config,
            ConfigStep::Configure,
            CannotConfigure,
        ))
    }
    async fn move_out(&self, job: MoveJob) -> Result<(), ConfigError> {
        Err(ConfigError::new(
            job.config,
            ConfigStep::Unconfigure,
            CannotConfigure,
        ))
    }
    /// Nothing: appgrid started nothing on machines it does not configure.
    async fn sweep(
        &self,
        _: Vec<(ResourceAddress, ResourceState)>,
    ) -> Result<Vec<Stopped>, ConfigError> {
        Ok(Vec::new())
    }
}

/// A change to state that a step reports as soon as it knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Put(ResourceAddress, Box<ResourceState>),
    /// Remove the entry only if it still records this id (a replacement may
    /// already have put its successor there).
    RemoveIfId(ResourceAddress, String),
    /// Set (or, with `None`, clear) the second machine of an online move.
    Moving(ResourceAddress, Option<Box<crate::state::Moving>>),
    /// Changes that must reach state together (a switchover's swap of the
    /// old and new machine): never checkpointed halfway.
    Together(Vec<StateChange>),
}

/// Whether this run may still change things: `Err(why)` once its state lock
/// was taken over. Steps ask before a change nobody planned (terminating a
/// launch's duplicates).
pub type StillOurs = std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Saves state; the walker calls it after every batch of changes.
pub trait Checkpoint {
    fn checkpoint(&mut self, state: &mut crate::state::State) -> Result<(), String>;

    /// Whether a write now would be allowed (the state lock is still held);
    /// the walker asks before starting steps, so a writer that lost the lock
    /// starts nothing new.
    fn writable(&self) -> Result<(), String> {
        Ok(())
    }

    /// The same question, for steps running apart from the walker.
    fn still_ours(&self) -> StillOurs {
        std::sync::Arc::new(|| Ok(()))
    }
}

impl Checkpoint for crate::state::store::StateStore {
    fn checkpoint(&mut self, state: &mut crate::state::State) -> Result<(), String> {
        self.save(state).map_err(|e| e.to_string())
    }

    fn writable(&self) -> Result<(), String> {
        self.check_fence().map_err(|e| e.to_string())
    }

    fn still_ours(&self) -> StillOurs {
        let store = self.clone();
        std::sync::Arc::new(move || store.check_fence().map_err(|e| e.to_string()))
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
    /// What verifying the machines found and did (launch steps and the end).
    pub verification: Verification,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
            && self.skipped.is_empty()
            && self.not_started.is_empty()
            && !self.interrupted
            && self.checkpoint_error.is_none()
            && self.verification.mismatch.is_none()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fault_tests;
