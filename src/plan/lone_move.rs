//! A move of `db.primary` with nobody to move through (issue 8 §1): an
//! online move subscribes the new machine to the Slony-I cluster and moves
//! the set to it, and an app with `replicas = 0` has no cluster. Such a plan
//! is refused before anything changes (it would launch a machine and stop
//! halfway), saying how to get there: a replica first, then the change.
//!
//! Pure: takes the plan and the state it was made against.

use crate::graph::{ResourceAddress, Role};
use crate::state::State;

use super::{ActionKind, Plan};

/// `db.primary` must move, and the state has no Slony-I cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoneMove {
    /// The plan's reason for the move (what changed).
    pub reason: String,
}

impl LoneMove {
    /// What `apply` says when it refuses.
    pub fn explain(&self) -> String {
        format!(
            "db.primary needs a new machine ({}), and an online move copies the data to it \
             through Slony-I, which an app with `replicas = 0` does not run; nothing was \
             changed. Ways out:\n  \
             - undo the change for now, set `replicas = 1` in [database] and apply (a replica \
             subscribes and the cluster starts), then make the change again and apply: the \
             primary moves online (you may go back to `replicas = 0` afterwards), or\n  \
             - for a machine changed or stopped outside appgrid: start it again as it was, then \
             as above",
            self.reason
        )
    }
}

/// `Some` when `plan` starts a move of `db.primary` while `state` has no
/// Slony-I cluster. A move already under way (in `state.moves`) is left to
/// resume.
pub fn lone_move(plan: &Plan, state: Option<&State>) -> Option<LoneMove> {
    let primary = ResourceAddress::instance(Role::DbPrimary, 0);
    let state = state?;
    if state.resources.contains_key(&ResourceAddress::SlonyCluster)
        || state.moves.contains_key(&primary)
    {
        return None;
    }
    plan.actions
        .iter()
        .find(|a| a.address == primary && a.kind == ActionKind::Move)
        .map(|a| LoneMove {
            reason: a.reason.clone(),
        })
}
