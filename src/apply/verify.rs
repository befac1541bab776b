//! The end of an apply that launched or terminated machines: one tagged
//! listing of the lineage's instances, compared with state.
//!
//! - An instance state does not hold, at an address state holds under
//!   another id, is a duplicate: terminated.
//! - One at an address the plan wanted an instance of exactly its spec, that
//!   state lacks, is adopted (a launch whose answer was lost).
//! - One at an address the plan acted on otherwise is terminated.
//! - One the plan never touched (a narrowed plan, as the autoscaler's) is
//!   left alone: it is the next full plan's orphan.
//! - An instance state holds that the listing lacks is a mismatch: the
//!   listing is asked again (EC2's listings lag behind launches), and if it
//!   still lacks it the apply fails saying so.
//!
//! Pure decision ([`judge`]) from the listing; the walker performs it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::StateChange;
use crate::cloud::{Cloud, CloudError, ObservedInstance, Owner};
use crate::graph::{ResourceAddress, ResourceSpec};
use crate::plan::Plan;
use crate::retry::RetryPolicy;
use crate::state::{ResourceState, State};

/// What the final check did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verification {
    /// The check ran (the apply launched or terminated machines).
    pub ran: bool,
    /// Instances found and recorded: (address, id).
    pub adopted: Vec<(ResourceAddress, String)>,
    /// Instances terminated because nothing wanted them: (address, id).
    pub terminated: Vec<(Option<ResourceAddress>, String)>,
    /// The cloud and state still disagree: why (the apply fails).
    pub mismatch: Option<String>,
}

/// The decision for one listing.
#[derive(Debug, Default, PartialEq)]
pub struct Judgement {
    pub adopt: Vec<(ResourceAddress, ResourceState)>,
    pub terminate: Vec<(Option<ResourceAddress>, String)>,
    /// Instances state holds that the listing lacks: (address, id).
    pub missing: Vec<(ResourceAddress, String)>,
}

/// Compare `listing` (the lineage's live instances) with `state`, for `plan`.
pub fn judge(plan: &Plan, state: &State, listing: &[ObservedInstance]) -> Judgement {
    let mut out = Judgement::default();
    // The second machine of an online move is held too.
    let held: BTreeSet<&str> = state
        .resources
        .values()
        .chain(state.moves.values().map(|m| &m.machine))
        .map(|r| r.id.as_str())
        .collect();
    let listed: BTreeSet<&str> = listing.iter().map(|i| i.id.as_str()).collect();
    let acted: BTreeMap<ResourceAddress, &crate::plan::Action> =
        plan.actions.iter().map(|a| (a.address, a)).collect();

    let mut taken: BTreeSet<ResourceAddress> = BTreeSet::new();
    let mut unaccounted: Vec<&ObservedInstance> = listing
        .iter()
        .filter(|i| i.status.is_alive() && !held.contains(i.id.as_str()))
        .collect();
    // Deterministic: running ones first, then by id.
    unaccounted.sort_by_key(|i| {
        (
            !matches!(i.status, crate::cloud::InstanceStatus::Running),
            i.id.clone(),
        )
    });
    for i in unaccounted {
        let Some(address) = i.address else {
            // Unreadable launch tag: the next plan lists it as an orphan.
            continue;
        };
        if state.resources.contains_key(&address) || taken.contains(&address) {
            out.terminate.push((Some(address), i.id.clone()));
            continue;
        }
        let Some(action) = acted.get(&address) else {
            continue;
        };
        match &action.desired {
            Some(spec @ ResourceSpec::Instance(_))
                if i.spec_hash.as_deref() == Some(spec.hash().as_str()) =>
            {
                let mut attributes = BTreeMap::new();
                attributes.insert("zone".to_string(), i.zone.clone());
                attributes.insert(
                    "status".to_string(),
                    match i.status {
                        crate::cloud::InstanceStatus::Running => "running",
                        _ => "pending",
                    }
                    .to_string(),
                );
                if let Some(ip) = &i.private_ip {
                    attributes.insert("private_ip".to_string(), ip.clone());
                }
                if let Some(image) = &i.image_id {
                    attributes.insert("image_id".to_string(), image.clone());
                }
                taken.insert(address);
                out.adopt.push((
                    address,
                    ResourceState {
                        spec: spec.clone(),
                        id: i.id.clone(),
                        depends_on: action.depends_on.clone(),
                        attributes,
                    },
                ));
            }
            _ => out.terminate.push((Some(address), i.id.clone())),
        }
    }
    for (address, r) in state
        .resources
        .iter()
        .chain(state.moves.iter().map(|(a, m)| (a, &m.machine)))
    {
        if matches!(address, ResourceAddress::Instance { .. }) && !listed.contains(r.id.as_str()) {
            out.missing.push((*address, r.id.clone()));
        }
    }
    out
}

/// The listing is asked again while it lacks instances state holds: from
/// 0.5 s, at most 4 s apart, 20 s in all.
#[cfg(not(test))]
const CATCH_UP: RetryPolicy = RetryPolicy::new(
    Duration::from_millis(500),
    Duration::from_secs(4),
    Duration::from_secs(20),
);
/// Unit tests' fake cloud has no lag to wait out.
#[cfg(test)]
const CATCH_UP: RetryPolicy = RetryPolicy::new(
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(200),
);

/// List the lineage's instances (again, while some state holds are missing)
/// and judge them.
pub async fn check<C: Cloud>(
    cloud: &C,
    owner: &Owner,
    plan: &Plan,
    state: &State,
) -> Result<Judgement, CloudError> {
    let attempt = || async {
        let listing = cloud.refresh_instances(owner).await.map_err(Err)?;
        let j = judge(plan, state, &listing);
        if j.missing.is_empty() {
            Ok(j)
        } else {
            Err(Ok(j))
        }
    };
    match CATCH_UP.run(attempt, |e| e.is_ok()).await {
        Ok(j) => Ok(j),
        Err(e) => e.error,
    }
}

/// The state changes an adoption makes.
pub fn changes(j: &Judgement) -> Vec<StateChange> {
    j.adopt
        .iter()
        .map(|(a, r)| StateChange::Put(*a, Box::new(r.clone())))
        .collect()
}
