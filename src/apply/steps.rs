//! From a plan to the steps the walker runs, and their order.
//!
//! Pure. One step may serve several actions: instances with the same spec in
//! the same zone are launched by one step (one RunInstances call), and the
//! instances of a role that go away are terminated by one step.
//!
//! Edges:
//! - a create, update or adopt waits for the steps that provide what it
//!   depends on (its desired dependencies);
//! - a removal of X waits for the removal of everything that depended on X,
//!   and for the update of everything that depended on X and stays (the load
//!   balancer drops a web server before that server goes);
//! - a web replacement's new instance starts before the old one goes; other
//!   replacements remove the old one first (and their dependents are applied
//!   again on the new one, so the old one does not wait for them).

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::{arithmetic_runs, encode_batch_address};
use crate::graph::{ResourceAddress, ResourceSpec, Role};
use crate::plan::{Action, ActionKind, Plan};

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
    /// Apply a configuration on its machine (create or update).
    Configure {
        address: ResourceAddress,
    },
    /// Undo a configuration before its machine goes (drop a replica from the
    /// cluster, stop a service).
    Unconfigure {
        address: ResourceAddress,
    },
    /// The first half of a database machine's online move: launch the new
    /// machine, configure Postgres on it, subscribe it through Slony-I, wait
    /// until it caught up and (for the primary) MOVE SET to it. It provides
    /// the machine and the configurations on it.
    MoveIn {
        address: ResourceAddress,
    },
    /// The second half, once what points at the database was applied again:
    /// drop the old node from the cluster and terminate its machine.
    MoveOut {
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
            StepKind::DeleteGroup { address } | StepKind::DeleteKey { address } => {
                format!("{address}: delete")
            }
            StepKind::Configure { address } => format!("{address}: configure"),
            StepKind::Unconfigure { address } => format!("{address}: remove"),
            StepKind::MoveIn { address } => {
                format!("{address}: move online (new node, subscribe, switch over)")
            }
            StepKind::MoveOut { address } => format!("{address}: retire the old machine"),
        }
    }

    /// What the step does, one word, for logs: `launch`, `terminate`, `configure`…
    pub fn action(&self) -> &'static str {
        match &self.kind {
            StepKind::TerminateOrphans { .. } => "terminate-orphans",
            StepKind::Adopt { .. } => "adopt",
            StepKind::Forget { .. } => "forget",
            StepKind::ImportKey { .. } => "import",
            StepKind::CreateGroup { .. } => "create",
            StepKind::UpdateGroup { .. } => "update",
            StepKind::Launch { .. } => "launch",
            StepKind::Terminate { .. } => "terminate",
            StepKind::DeleteGroup { .. } | StepKind::DeleteKey { .. } => "delete",
            StepKind::Configure { .. } => "configure",
            StepKind::Unconfigure { .. } => "unconfigure",
            StepKind::MoveIn { .. } => "move-in",
            StepKind::MoveOut { .. } => "move-out",
        }
    }

    /// What the step acts on, for logs: an address, a launch batch
    /// (`web[0:12:3]`), or `orphans`.
    pub fn subject(&self) -> String {
        match &self.kind {
            StepKind::TerminateOrphans { .. } => "orphans".to_string(),
            StepKind::Launch { addresses } => encode_batch_address(addresses),
            _ => list(&self.addresses()),
        }
    }

    /// Whether the step launches or terminates machines (the apply then
    /// verifies what exists against state at its end).
    pub fn changes_machines(&self) -> bool {
        matches!(
            self.kind,
            StepKind::TerminateOrphans { .. }
                | StepKind::Launch { .. }
                | StepKind::Terminate { .. }
                | StepKind::MoveIn { .. }
                | StepKind::MoveOut { .. }
                | StepKind::Adopt {
                    address: ResourceAddress::Instance { .. }
                }
        )
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
            | StepKind::DeleteKey { address }
            | StepKind::Configure { address }
            | StepKind::Unconfigure { address }
            | StepKind::MoveIn { address }
            | StepKind::MoveOut { address } => vec![*address],
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

fn is_config(address: ResourceAddress) -> bool {
    matches!(
        address,
        ResourceAddress::Config { .. } | ResourceAddress::SlonyCluster
    )
}

/// How an address leaves: the step that removes it, and whether the removal
/// is the first half of a replacement that does not wait for its dependents.
#[derive(Clone, Copy)]
struct Removal {
    step: usize,
    waits_for_dependents: bool,
}

#[derive(Default)]
struct Builder {
    steps: Vec<Step>,
    /// The step that creates, updates or adopts each address.
    providers: BTreeMap<ResourceAddress, usize>,
    /// The step that removes each (prior) address.
    removals: BTreeMap<ResourceAddress, Removal>,
}

impl Builder {
    fn push(&mut self, kind: StepKind) -> usize {
        self.steps.push(Step {
            kind,
            deps: BTreeSet::new(),
        });
        self.steps.len() - 1
    }

    fn provide(&mut self, address: ResourceAddress, kind: StepKind) -> usize {
        let step = self.push(kind);
        self.providers.insert(address, step);
        step
    }

    fn remove(
        &mut self,
        address: ResourceAddress,
        kind: StepKind,
        waits_for_dependents: bool,
    ) -> usize {
        let step = self.push(kind);
        self.removals.insert(
            address,
            Removal {
                step,
                waits_for_dependents,
            },
        );
        step
    }
}

/// The steps for `plan`, with dependency edges by index (acyclic).
pub fn build(plan: &Plan) -> Vec<Step> {
    let mut b = Builder::default();
    let actions: BTreeMap<ResourceAddress, &Action> =
        plan.actions.iter().map(|a| (a.address, a)).collect();

    let orphans = (!plan.orphans.is_empty()).then(|| {
        b.push(StepKind::TerminateOrphans {
            ids: plan.orphans.iter().map(|o| o.id.clone()).collect(),
        })
    });

    let mut launches: BTreeMap<String, Vec<ResourceAddress>> = BTreeMap::new();
    // Instances leaving, per role: before their replacement, after it, or for good.
    let mut first_out: BTreeMap<Role, Vec<ResourceAddress>> = BTreeMap::new();
    let mut last_out: BTreeMap<Role, Vec<ResourceAddress>> = BTreeMap::new();
    let mut deletes: BTreeMap<Role, Vec<ResourceAddress>> = BTreeMap::new();

    // Online moves: each machine's move-in provides it and the configurations
    // on it; its move-out waits for what depends on it (below).
    // Replicas move before the primary: after the primary's switchover the
    // app servers are released against the new origin at once, since writes
    // through them fail until then (the old origin refuses them).
    let mut moving: Vec<ResourceAddress> = plan
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Move)
        .map(|a| a.address)
        .collect();
    moving.sort_by_key(|a| (a.machine() == ResourceAddress::SlonyCluster.machine(), *a));
    let mut move_in: BTreeMap<ResourceAddress, usize> = BTreeMap::new();
    let (mut previous_in, mut previous_out): (Option<usize>, Option<usize>) = (None, None);
    for &address in &moving {
        let mi = b.provide(address, StepKind::MoveIn { address });
        let mo = b.remove(address, StepKind::MoveOut { address }, true);
        b.steps[mo].deps.insert(mi);
        // One node joins, and one leaves, at a time (a drop talks to every
        // node that remains).
        b.steps[mi].deps.extend(previous_in);
        b.steps[mo].deps.extend(previous_out);
        (previous_in, previous_out) = (Some(mi), Some(mo));
        move_in.insert(address, mi);
    }

    for a in &plan.actions {
        let address = a.address;
        let group = matches!(address, ResourceAddress::SecurityGroup(_));
        // A configuration on a moving machine is applied by its move-in.
        if is_config(address)
            && matches!(a.kind, ActionKind::Create | ActionKind::Update)
            && let Some(&mi) = address.machine().and_then(|m| move_in.get(&m))
        {
            b.providers.insert(address, mi);
            continue;
        }
        match (a.kind, address) {
            // Its move-in and move-out steps are made above.
            (ActionKind::Move, _) => {}
            (ActionKind::Adopt, _) => {
                b.provide(address, StepKind::Adopt { address });
            }
            (ActionKind::Delete, _) if a.prior_gone => {
                b.remove(address, StepKind::Forget { address }, true);
            }
            (ActionKind::Create | ActionKind::Update | ActionKind::Replace, _)
                if is_config(address) =>
            {
                b.provide(address, StepKind::Configure { address });
            }
            (ActionKind::Delete, _) if is_config(address) => {
                b.remove(address, StepKind::Unconfigure { address }, true);
            }
            (ActionKind::Create, ResourceAddress::Instance { .. }) => {
                launches.entry(spec_key(a)).or_default().push(address);
            }
            (ActionKind::Replace, ResourceAddress::Instance { role, .. }) => {
                launches.entry(spec_key(a)).or_default().push(address);
                let out = if a.create_before_destroy {
                    &mut last_out
                } else {
                    &mut first_out
                };
                out.entry(role).or_default().push(address);
            }
            (ActionKind::Delete, ResourceAddress::Instance { role, .. }) => {
                deletes.entry(role).or_default().push(address)
            }
            (ActionKind::Update, ResourceAddress::Instance { .. }) => {}
            (ActionKind::Create, _) => {
                let kind = if group {
                    StepKind::CreateGroup { address }
                } else {
                    StepKind::ImportKey { address }
                };
                b.provide(address, kind);
            }
            (ActionKind::Update, _) => {
                b.provide(address, StepKind::UpdateGroup { address });
            }
            (ActionKind::Replace, _) => {
                let delete = if group {
                    StepKind::DeleteGroup { address }
                } else {
                    StepKind::DeleteKey { address }
                };
                let d = b.push(delete);
                let create = if group {
                    StepKind::CreateGroup { address }
                } else {
                    StepKind::ImportKey { address }
                };
                // Replaced in place under the same name: what uses it is unaffected.
                let c = b.provide(address, create);
                b.steps[c].deps.insert(d);
            }
            (ActionKind::Delete, _) => {
                let delete = if group {
                    StepKind::DeleteGroup { address }
                } else {
                    StepKind::DeleteKey { address }
                };
                b.remove(address, delete, true);
            }
        }
    }

    for addresses in first_out.into_values() {
        let step = b.push(StepKind::Terminate {
            addresses: addresses.clone(),
        });
        for a in addresses {
            b.removals.insert(
                a,
                Removal {
                    step,
                    waits_for_dependents: false,
                },
            );
        }
    }
    for (_, addresses) in launches {
        for run in arithmetic_runs(&addresses) {
            let step = b.push(StepKind::Launch {
                addresses: run.clone(),
            });
            for a in &run {
                b.providers.insert(*a, step);
                if let Some(old) = b.removals.get(a) {
                    b.steps[step].deps.insert(old.step);
                }
            }
        }
    }
    for addresses in last_out.into_values() {
        let step = b.push(StepKind::Terminate {
            addresses: addresses.clone(),
        });
        for a in &addresses {
            let launch = b.providers[a];
            b.steps[step].deps.insert(launch);
            b.removals.insert(
                *a,
                Removal {
                    step,
                    waits_for_dependents: true,
                },
            );
        }
    }
    for addresses in deletes.into_values() {
        let step = b.push(StepKind::Terminate {
            addresses: addresses.clone(),
        });
        for a in addresses {
            b.removals.insert(
                a,
                Removal {
                    step,
                    waits_for_dependents: true,
                },
            );
        }
    }

    // Rolling: releases of running web servers go one after another, so only
    // one server at a time is out of the load balancer.
    let mut previous: Option<usize> = None;
    for a in &plan.actions {
        if let (
            ActionKind::Update,
            ResourceAddress::Config {
                role: Role::Web, ..
            },
        ) = (a.kind, a.address)
            && let Some(&step) = b.providers.get(&a.address)
        {
            if let Some(p) = previous {
                b.steps[step].deps.insert(p);
            }
            previous = Some(step);
        }
    }

    // Replicas leave the cluster one at a time: each drop talks to every node
    // that remains, so two at once would each find the other half gone.
    let mut previous: Option<usize> = None;
    for a in plan.actions.iter().rev() {
        if let (
            ActionKind::Delete,
            ResourceAddress::Config {
                role: Role::DbReplica,
                ..
            },
        ) = (a.kind, a.address)
            && let Some(r) = b.removals.get(&a.address)
        {
            if let Some(p) = previous {
                b.steps[r.step].deps.insert(p);
            }
            previous = Some(r.step);
        }
    }

    // Providers wait for what they depend on.
    let provided: Vec<(ResourceAddress, usize)> =
        b.providers.iter().map(|(a, s)| (*a, *s)).collect();
    for (address, step) in provided {
        let Some(action) = actions.get(&address) else {
            continue;
        };
        let moves_in = move_in.values().any(|&mi| mi == step);
        for d in &action.depends_on {
            if let Some(&p) = b.providers.get(d)
                && p != step
            {
                // A move-in waits for no other move-in through the
                // configurations it carries (the primary's names the
                // replicas as peers): they are ordered one after another above.
                if moves_in && move_in.values().any(|&mi| mi == p) {
                    continue;
                }
                b.steps[step].deps.insert(p);
            }
        }
    }

    // Removals wait for everything that depended on what they remove, directly
    // or through others (web[4] ← web[4].release ← lb.config): removed ones go
    // first, updated ones stop depending on it first.
    let mut dependents: BTreeMap<ResourceAddress, Vec<&Action>> = BTreeMap::new();
    for a in &plan.actions {
        for d in a.prior.iter().flat_map(|p| &p.depends_on) {
            dependents.entry(*d).or_default().push(a);
        }
    }
    let removals: Vec<(ResourceAddress, Removal)> =
        b.removals.iter().map(|(a, r)| (*a, *r)).collect();
    for &(address, removal) in &removals {
        if !removal.waits_for_dependents {
            continue;
        }
        let mut seen = BTreeSet::from([address]);
        let mut queue = vec![address];
        while let Some(x) = queue.pop() {
            for a in dependents.get(&x).into_iter().flatten() {
                if !seen.insert(a.address) {
                    continue;
                }
                queue.push(a.address);
                let before = match a.kind {
                    ActionKind::Delete => b.removals.get(&a.address).map(|r| r.step),
                    ActionKind::Update => b.providers.get(&a.address).copied(),
                    _ => None,
                };
                if let Some(s) = before.filter(|&s| s != removal.step) {
                    b.steps[removal.step].deps.insert(s);
                }
            }
        }
        if matches!(address, ResourceAddress::SecurityGroup(_)) {
            b.steps[removal.step].deps.extend(orphans);
        }
    }
    b.steps
}

/// Launch batches share spec (which includes the zone) exactly.
fn spec_key(a: &Action) -> String {
    a.desired
        .as_ref()
        .map(ResourceSpec::hash)
        .unwrap_or_default()
}
