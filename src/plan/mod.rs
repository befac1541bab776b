//! The plan: what must change for the cloud to match the manifest, and why.
//!
//! `diff(graph, state, observed)` is pure. `observed` is what a refresh found;
//! `None` plans from state alone (`--refresh=false`). Every action carries a
//! reason a person can read. Plans can be saved ([`file`]) and rendered as text
//! ([`render`]) or JSON.

pub mod data_loss;
mod diff;
pub mod file;
pub mod lone_move;
pub mod render;

use serde::{Deserialize, Serialize};

use crate::graph::{ResourceAddress, ResourceSpec};
use crate::manifest::Manifest;
use crate::state::ResourceState;

pub use diff::diff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Record a resource an interrupted apply made (found by its tags) in state.
    Adopt,
    Create,
    Update,
    Replace,
    /// Move a database machine online: a new machine joins the cluster,
    /// takes over, and only then does the old one leave (never destroy-first).
    Move,
    Delete,
}

impl ActionKind {
    pub fn symbol(self) -> &'static str {
        match self {
            ActionKind::Adopt => "<=",
            ActionKind::Create => "+",
            ActionKind::Update => "~",
            ActionKind::Replace => "-/+",
            ActionKind::Move => "~>",
            ActionKind::Delete => "-",
        }
    }
}

/// One change to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub address: ResourceAddress,
    pub kind: ActionKind,
    /// Why, in a sentence.
    pub reason: String,
    /// What exists now (from state, or from the refresh for adoptions).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prior: Option<ResourceState>,
    /// `true` when the prior resource is already gone: deleting only forgets it.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub prior_gone: bool,
    /// What it should be (absent for deletes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desired: Option<ResourceSpec>,
    /// Resources that must exist before this one is created or updated.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub depends_on: Vec<ResourceAddress>,
    /// For a replace: the new one is created before the old one is destroyed.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub create_before_destroy: bool,
    /// Field-level changes, for display: (field, before, after).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after: Option<String>,
}

/// An instance carrying the app's tags that nothing in the manifest or state
/// accounts for (a duplicate, or left by an interrupted apply): it is terminated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orphan {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<ResourceAddress>,
    pub reason: String,
}

/// Everything `apply` needs, and nothing it must look up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub app: String,
    /// The manifest the plan was made from, as given on the command line.
    pub manifest_path: String,
    pub manifest_sha256: String,
    pub manifest: Manifest,
    /// The state the plan was made against; a saved plan is refused when these moved.
    pub state_lineage: Option<String>,
    pub state_serial: u64,
    pub refreshed: bool,
    pub actions: Vec<Action>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub orphans: Vec<Orphan>,
    /// Things a reader of the plan should know (e.g. who set the web count).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

pub const PLAN_FORMAT_VERSION: u32 = 1;

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub adopt: usize,
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    /// Online moves of database machines (omitted from JSON when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moved: usize,
    pub delete: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for a in &self.actions {
            match a.kind {
                ActionKind::Adopt => s.adopt += 1,
                ActionKind::Create => s.create += 1,
                ActionKind::Update => s.update += 1,
                ActionKind::Replace => s.replace += 1,
                ActionKind::Move => s.moved += 1,
                ActionKind::Delete => s.delete += 1,
            }
        }
        s.delete += self.orphans.len();
        s
    }

    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty() || !self.orphans.is_empty()
    }
}

/// Where a plan comes from: the manifest as loaded.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub manifest_path: &'a str,
    pub manifest_sha256: &'a str,
    pub manifest: &'a Manifest,
}

/// Plan `source` against `state` (`None`: nothing applied yet) and, unless
/// `None`, what a refresh observed.
pub fn make(
    source: Source<'_>,
    graph: &crate::graph::ResourceGraph,
    state: Option<&crate::state::State>,
    observed: Option<&crate::cloud::Observed>,
) -> Plan {
    let empty;
    let current = match state {
        Some(s) => s,
        None => {
            empty = crate::state::State::new(&source.manifest.app.name, String::new());
            &empty
        }
    };
    let changes = diff(graph, current, observed);
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        app: source.manifest.app.name.clone(),
        manifest_path: source.manifest_path.to_string(),
        manifest_sha256: source.manifest_sha256.to_string(),
        manifest: source.manifest.clone(),
        state_lineage: state.map(|s| s.lineage.clone()),
        state_serial: state.map_or(0, |s| s.serial),
        refreshed: observed.is_some(),
        actions: changes.actions,
        orphans: changes.orphans,
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
