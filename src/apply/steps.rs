//! From a plan to the steps the walker runs, and their order.
//!
//! Pure. One step may serve several actions: instances with the same spec in
//! the same zone are launched by one step (one RunInstances call), and the
//! instances of a role that go away are terminated by one step. Edges:
//! creates wait for what they depend on; deletes wait for everything that
//! depended on what they delete; a web replacement's new instance starts
//! before its old one is terminated, other replacements terminate first.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::{arithmetic_runs, encode_batch_address};
use crate::graph::{ResourceAddress, ResourceSpec, Role};
use crate::plan::{ActionKind, Plan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Terminate tagged instances nothing accounts for.
    TerminateOrphans {
        ids: Vec<String>,
    },
    /// Record a resource found by its tags (a group also gets its rules set).
    Adopt {
        address: ResourceAddress,
    },
    /// Remove from state a resource that is already gone.
    Forget {
        address: ResourceAddress,
    },
    ImportKey {
        address: ResourceAddress,
    },
    CreateGroup {
        address: ResourceAddress,
    },
    UpdateGroup {
        address: ResourceAddress,
    },
    /// Launch identical instances in one call.
    Launch {
        addresses: Vec<ResourceAddress>,
    },
    /// Terminate the recorded instances at these addresses (their prior ids).
    Terminate {
        addresses: Vec<ResourceAddress>,
    },
    DeleteGroup {
        address: ResourceAddress,
    },
    DeleteKey {
        address: ResourceAddress,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    /// Indices of steps that must succeed first.
    pub deps: BTreeSet<usize>,
}

impl Step {
    /// A short label for progress lines and summaries.
    pub fn label(&self) -> String {
        match &self.kind {
            StepKind::TerminateOrphans { ids } => format!("terminate orphans {}", ids.join(", ")),
            StepKind::Adopt { address } => format!("{address}: adopt"),
            StepKind::Forget { address } => format!("{address}: forget (already gone)"),
            StepKind::ImportKey { address } => format!("{address}: import"),
            StepKind::CreateGroup { address } => format!("{address}: create"),
            StepKind::UpdateGroup { address } => format!("{address}: update rules"),
            StepKind::Launch { addresses } => {
                format!("{}: launch", encode_batch_address(addresses))
            }
            StepKind::Terminate { addresses } => format!("{}: terminate", list(addresses)),
            StepKind::DeleteGroup { address } => format!("{address}: delete"),
            StepKind::DeleteKey { address } => format!("{address}: delete"),
        }
    }

    /// The addresses this step changes.
    pub fn addresses(&self) -> Vec<ResourceAddress> {
        match &self.kind {
            StepKind::TerminateOrphans { .. } => Vec::new(),
            StepKind::Launch { addresses } | StepKind::Terminate { addresses } => addresses.clone(),
            StepKind::Adopt { address }
            | StepKind::Forget { address }
            | StepKind::ImportKey { address }
            | StepKind::CreateGroup { address }
            | StepKind::UpdateGroup { address }
            | StepKind::DeleteGroup { address }
            | StepKind::DeleteKey { address } => vec![*address],
        }
    }
}

fn list(addresses: &[ResourceAddress]) -> String {
    addresses
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The steps for `plan`, with dependency edges by index (acyclic).
pub fn build(plan: &Plan) -> Vec<Step> {
    let mut b = Builder::default();
    let actions: BTreeMap<ResourceAddress, &crate::plan::Action> =
        plan.actions.iter().map(|a| (a.address, a)).collect();

    // 1. Orphans go first: nothing depends on them, groups wait for them.
    let orphans = (!plan.orphans.is_empty()).then(|| {
        b.push(
            StepKind::TerminateOrphans {
                ids: plan.orphans.iter().map(|o| o.id.clone()).collect(),
            },
            [],
        )
    });

    // 2. Old instances that must go before their replacement (stateful roles), per role.
    let mut first_out: BTreeMap<Role, Vec<ResourceAddress>> = BTreeMap::new();
    // 3. Instances to launch, grouped by identical spec.
    let mut launches: BTreeMap<String, Vec<ResourceAddress>> = BTreeMap::new();
    // 4. Old instances that go after their replacement (web), and plain deletes, per role.
    let mut last_out: BTreeMap<Role, Vec<ResourceAddress>> = BTreeMap::new();
    let mut deletes: BTreeMap<Role, Vec<ResourceAddress>> = BTreeMap::new();

    for a in &plan.actions {
        let instance_role = match a.address {
            ResourceAddress::Instance { role, .. } => Some(role),
            _ => None,
        };
        match (a.kind, instance_role) {
            (ActionKind::Adopt, _) => {
                b.provide(a.address, StepKind::Adopt { address: a.address });
            }
            (ActionKind::Delete, _) if a.prior_gone => {
                b.push(StepKind::Forget { address: a.address }, []);
            }
            (ActionKind::Create, Some(_)) => {
                launches.entry(spec_key(a)).or_default().push(a.address);
            }
            (ActionKind::Replace, Some(role)) => {
                launches.entry(spec_key(a)).or_default().push(a.address);
                if a.create_before_destroy {
                    last_out.entry(role).or_default().push(a.address);
                } else {
                    first_out.entry(role).or_default().push(a.address);
                }
            }
            (ActionKind::Delete, Some(role)) => deletes.entry(role).or_default().push(a.address),
            (ActionKind::Update, Some(_)) => {}
            (kind, None) => b.non_instance(a.address, kind),
        }
    }

    let mut first_out_steps = BTreeMap::new();
    for (_, addresses) in first_out {
        let step = b.push(
            StepKind::Terminate {
                addresses: addresses.clone(),
            },
            [],
        );
        for a in addresses {
            first_out_steps.insert(a, step);
        }
    }

    let mut launch_steps = BTreeMap::new();
    for (_, addresses) in launches {
        for run in arithmetic_runs(&addresses) {
            let mut deps: BTreeSet<usize> = BTreeSet::new();
            for a in &run {
                for d in &actions[a].depends_on {
                    deps.extend(b.provider(d));
                }
                deps.extend(first_out_steps.get(a));
            }
            let step = b.push(
                StepKind::Launch {
                    addresses: run.clone(),
                },
                deps,
            );
            for a in run {
                b.providers.insert(a, step);
                launch_steps.insert(a, step);
            }
        }
    }
    // Provider edges for non-instance creates whose dependencies were only now known.
    b.resolve_pending(&actions);

    let mut removals: Vec<(ResourceAddress, usize)> = Vec::new();
    for (_, addresses) in last_out {
        let deps: BTreeSet<usize> = addresses
            .iter()
            .filter_map(|a| launch_steps.get(a).copied())
            .collect();
        let step = b.push(
            StepKind::Terminate {
                addresses: addresses.clone(),
            },
            deps,
        );
        removals.extend(addresses.into_iter().map(|a| (a, step)));
    }
    for (_, addresses) in deletes {
        let step = b.push(
            StepKind::Terminate {
                addresses: addresses.clone(),
            },
            [],
        );
        removals.extend(addresses.into_iter().map(|a| (a, step)));
    }
    removals.extend(first_out_steps.iter().map(|(a, s)| (*a, *s)));

    // Group and key deletes wait for every removal of something that depended on them.
    b.finish_deletes(&actions, &removals, orphans);
    b.steps
}

/// Launch batches share spec (which includes the zone) exactly.
fn spec_key(a: &crate::plan::Action) -> String {
    a.desired
        .as_ref()
        .map(ResourceSpec::hash)
        .unwrap_or_default()
}

#[derive(Default)]
struct Builder {
    steps: Vec<Step>,
    /// The step that creates, updates or adopts each address in this plan.
    providers: BTreeMap<ResourceAddress, usize>,
    /// Create/update steps of groups and keys, to wire after all providers exist.
    pending: Vec<(ResourceAddress, usize)>,
    /// Delete steps of groups and keys that leave for good (not replaced).
    deletes: Vec<(ResourceAddress, usize)>,
}

impl Builder {
    fn push(&mut self, kind: StepKind, deps: impl IntoIterator<Item = usize>) -> usize {
        self.steps.push(Step {
            kind,
            deps: deps.into_iter().collect(),
        });
        self.steps.len() - 1
    }

    fn provide(&mut self, address: ResourceAddress, kind: StepKind) -> usize {
        let step = self.push(kind, []);
        self.providers.insert(address, step);
        self.pending.push((address, step));
        step
    }

    fn provider(&self, address: &ResourceAddress) -> Option<usize> {
        self.providers.get(address).copied()
    }

    fn non_instance(&mut self, address: ResourceAddress, kind: ActionKind) {
        let is_group = matches!(address, ResourceAddress::SecurityGroup(_));
        match kind {
            ActionKind::Create => {
                let k = if is_group {
                    StepKind::CreateGroup { address }
                } else {
                    StepKind::ImportKey { address }
                };
                self.provide(address, k);
            }
            ActionKind::Update => {
                self.provide(address, StepKind::UpdateGroup { address });
            }
            ActionKind::Replace => {
                let delete = if is_group {
                    StepKind::DeleteGroup { address }
                } else {
                    StepKind::DeleteKey { address }
                };
                // Replaced in place under the same name: instances that use it are
                // unaffected, so the delete waits for nothing.
                let d = self.push(delete, []);
                let create = if is_group {
                    StepKind::CreateGroup { address }
                } else {
                    StepKind::ImportKey { address }
                };
                let c = self.provide(address, create);
                self.steps[c].deps.insert(d);
            }
            ActionKind::Delete => {
                let delete = if is_group {
                    StepKind::DeleteGroup { address }
                } else {
                    StepKind::DeleteKey { address }
                };
                let d = self.push(delete, []);
                self.deletes.push((address, d));
            }
            ActionKind::Adopt => {}
        }
    }

    /// Steps are pushed in address order, so a group's dependency on another
    /// group may point forward; record it now that every provider is known.
    fn resolve_pending(&mut self, actions: &BTreeMap<ResourceAddress, &crate::plan::Action>) {
        for (address, step) in std::mem::take(&mut self.pending) {
            for d in &actions[&address].depends_on {
                if let Some(p) = self.provider(d)
                    && p != step
                {
                    self.steps[step].deps.insert(p);
                }
            }
        }
    }

    fn finish_deletes(
        &mut self,
        actions: &BTreeMap<ResourceAddress, &crate::plan::Action>,
        removals: &[(ResourceAddress, usize)],
        orphans: Option<usize>,
    ) {
        let deletes = std::mem::take(&mut self.deletes);
        let mut all_removals: Vec<(ResourceAddress, usize)> = removals.to_vec();
        all_removals.extend(deletes.iter().copied());
        for &(address, step) in &deletes {
            let mut deps: BTreeSet<usize> = BTreeSet::new();
            for &(removed, by) in &all_removals {
                if by == step {
                    continue;
                }
                let depended = actions
                    .get(&removed)
                    .and_then(|a| a.prior.as_ref())
                    .is_some_and(|p| p.depends_on.contains(&address));
                if depended {
                    deps.insert(by);
                }
            }
            if matches!(address, ResourceAddress::SecurityGroup(_)) {
                deps.extend(orphans);
            }
            self.steps[step].deps.extend(deps);
        }
    }
}
