//! The tail day-two commands share (`config set`/`unset`, `rollback`,
//! `maintenance`, `db switchover`/`failover`): configurations applied again
//! through the walker under the state lock the command already holds, and
//! what the walk left undone, said one way.
//!
//! The lock comes back with the outcome, so the command records what followed
//! (a release booked, a rollback noted) before it lets go.

use std::sync::Arc;

use appgrid::apply::{Configurator, Event, Outcome};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, ResourceSpec, Role};
use appgrid::ops::{Locked, Operations};
use appgrid::state::State;

use super::{Failure, providers};

/// Which configurations to apply again.
pub(super) enum Configurations {
    /// As state records them.
    Recorded(Vec<ResourceAddress>),
    /// Each changed to the spec given (a rollback's, a config change's).
    Changed(Vec<(ResourceAddress, ResourceSpec)>),
}

/// Every web release state holds, each with the spec `change` makes of its
/// recorded one (a new config, a rollback's release).
pub(super) fn web_releases(
    state: &State,
    change: impl Fn(&ResourceSpec) -> ResourceSpec,
) -> Vec<(ResourceAddress, ResourceSpec)> {
    state
        .resources
        .iter()
        .filter(|(a, _)| {
            matches!(
                a,
                ResourceAddress::Config {
                    role: Role::Web,
                    ..
                }
            )
        })
        .map(|(a, r)| (*a, change(&r.spec)))
        .collect()
}

/// Apply `configurations` again, one at a time, under `locked` (each result
/// saved as it finishes; a failure skips the rest). `reason` names the
/// change in the plan the walk runs; `progress` hears each step.
pub(super) async fn under_lock<'w>(
    ws: &'w Workspace,
    locked: Locked<'w>,
    configurations: Configurations,
    reason: &str,
    progress: &mut (dyn FnMut(Event) + Send),
) -> Result<(Locked<'w>, Outcome), Failure> {
    providers::with_operations(
        ws,
        Walk {
            locked,
            configurations,
            reason,
            progress,
        },
    )
    .await
}

/// What a walk left undone, `address: why` each (a skipped one: `address:
/// {skipped}`), joined by "; "; `None` when everything was done.
pub(super) fn undone(outcome: &Outcome, skipped: &str) -> Option<String> {
    if outcome.is_success() {
        return None;
    }
    let undone: Vec<String> = outcome
        .failed
        .iter()
        .map(|(l, e)| format!("{l}: {e}"))
        .chain(outcome.skipped.iter().map(|l| format!("{l}: {skipped}")))
        .collect();
    Some(undone.join("; "))
}

struct Walk<'w, 'a> {
    locked: Locked<'w>,
    configurations: Configurations,
    reason: &'a str,
    progress: &'a mut (dyn FnMut(Event) + Send),
}

impl<'w> providers::OpsVisitor for Walk<'w, '_> {
    type Output = (Locked<'w>, Outcome);
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        cloud: Arc<C>,
        k: Arc<K>,
    ) -> Result<Self::Output, Failure> {
        let Walk {
            mut locked,
            configurations,
            reason,
            progress,
        } = self;
        let outcome = match &configurations {
            Configurations::Recorded(addresses) => {
                locked
                    .reconfigure(cloud, k, addresses, reason, progress)
                    .await
            }
            Configurations::Changed(specs) => {
                locked
                    .reconfigure_to(cloud, k, specs, reason, progress)
                    .await
            }
        }
        .map_err(super::ops::locked)?;
        Ok((locked, outcome))
    }
}
