//! `diff(graph, state, observed)`: the pure heart of `plan`.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::{InstanceStatus, Observed, ObservedInstance};
use crate::graph::{
    InstanceSpec, ResourceAddress, ResourceGraph, ResourceSpec, Role, SecurityGroupSpec,
};
use crate::state::{MoveDirection, ResourceState, State};

use super::{Action, ActionKind, FieldChange, Orphan};

/// What must change. Actions are in address order; orphans in id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub actions: Vec<Action>,
    pub orphans: Vec<Orphan>,
}

/// Compare the desired graph with what state records and (unless `None`)
/// what the refresh observed.
pub fn diff(graph: &ResourceGraph, state: &State, observed: Option<&Observed>) -> Changes {
    let view = observed.map(|o| ObservedView::new(o, state));
    let mut changes = Changes::default();

    for resource in graph.resources() {
        let address = resource.address;
        let desired = &resource.spec;
        let depends_on = graph.dependencies(&address);
        let action = |kind, reason: String| Action {
            address,
            kind,
            reason,
            prior: None,
            prior_gone: false,
            desired: Some(desired.clone()),
            depends_on: depends_on.clone(),
            create_before_destroy: false,
            changes: Vec::new(),
        };
        match state.resources.get(&address) {
            None => {
                if let Some(adopted) = view.as_ref().and_then(|v| v.adoptable(address, desired)) {
                    let mut a = action(
                        ActionKind::Adopt,
                        format!(
                            "{} exists with appgrid's tags but is missing from state (an interrupted apply made it)",
                            adopted.id
                        ),
                    );
                    a.prior = Some(adopted);
                    changes.actions.push(a);
                } else {
                    changes
                        .actions
                        .push(action(ActionKind::Create, "does not exist yet".into()));
                }
            }
            Some(prior) => {
                if let Some(v) = &view
                    && let Some(why) = v.gone(address, prior)
                {
                    let mut a = action(ActionKind::Create, why);
                    a.prior = Some(prior.redacted());
                    a.prior_gone = true;
                    changes.actions.push(a);
                    continue;
                }
                // A failed-over machine is out of the cluster: it cannot move
                // online, it is replaced and its successor joins as a replica.
                let failed = failed_over(prior);
                let drift = view
                    .as_ref()
                    .and_then(|v| v.instance_drift(prior))
                    .or_else(|| failed.clone());
                let movable = failed.is_none()
                    && graph
                        .get(&ResourceAddress::config(Role::DbPrimary, 0))
                        .is_some();
                let compared = compare(address, prior, desired, drift, movable);
                if let Some(mut a) = resume_move(state, address, prior, desired).or(compared) {
                    a.depends_on = depends_on.clone();
                    changes.actions.push(a);
                }
            }
        }
    }

    for (address, prior) in &state.resources {
        if graph.get(address).is_some() {
            continue;
        }
        let gone = view.as_ref().and_then(|v| v.gone(*address, prior));
        changes.actions.push(Action {
            address: *address,
            kind: ActionKind::Delete,
            reason: match &gone {
                Some(why) => {
                    format!("no longer in the manifest; {why}, so it is only removed from state")
                }
                None => delete_reason(*address),
            },
            prior: Some(prior.redacted()),
            prior_gone: gone.is_some(),
            desired: None,
            depends_on: Vec::new(),
            create_before_destroy: false,
            changes: Vec::new(),
        });
    }
    reconfigure_on_new_machines(graph, state, &mut changes.actions);
    changes.actions.sort_by_key(|a| a.address);

    if let Some(v) = &view {
        let adopted: BTreeSet<&str> = changes
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Adopt)
            .filter_map(|a| a.prior.as_ref().map(|p| p.id.as_str()))
            .collect();
        changes.orphans = v.orphans(graph, &adopted);
    }
    changes
}

/// An online move that an earlier apply started and did not finish (state
/// holds the second machine of `address`): the next apply carries it on.
fn resume_move(
    state: &State,
    address: ResourceAddress,
    prior: &ResourceState,
    desired: &ResourceSpec,
) -> Option<Action> {
    let moving = state.moves.get(&address)?;
    let reason = match (moving.direction, &moving.restore) {
        // `db restore` into a new primary (issue 8).
        (MoveDirection::Incoming, Some(r)) => format!(
            "restore backup {} into a new machine (node {}); the replicas subscribe to it, then {} is retired",
            r.backup, moving.node, prior.id
        ),
        (MoveDirection::Incoming, None)
            if address.machine() == ResourceAddress::SlonyCluster.machine() =>
        {
            format!(
                "resume the interrupted move: {} (node {}) is joining; subscribe it, switch over, retire {}",
                moving.machine.id, moving.node, prior.id
            )
        }
        (MoveDirection::Incoming, None) => format!(
            "resume the interrupted move: {} (node {}) is joining; subscribe it, then {} leaves",
            moving.machine.id, moving.node, prior.id
        ),
        (MoveDirection::Outgoing, _) => format!(
            "finish the interrupted move: {} took over; drop {} (node {}) from the cluster and terminate it",
            prior.id, moving.machine.id, moving.node
        ),
    };
    Some(Action {
        address,
        kind: ActionKind::Move,
        reason,
        prior: Some(prior.redacted()),
        prior_gone: false,
        desired: Some(desired.clone()),
        depends_on: Vec::new(),
        create_before_destroy: true,
        changes: Vec::new(),
    })
}

/// How a database machine moves: the steps, as the plan shows them.
fn move_steps(role: Role) -> &'static str {
    match role {
        Role::DbPrimary => "(new node, subscribe, switch over, retire the old one)",
        _ => "(new subscriber first, then the old one leaves)",
    }
}

/// A configuration is applied again when a machine it runs on or points at is
/// new (created, replaced or moved), or was applied on a machine that has since been
/// replaced; and so, in turn, is what depends on that configuration.
fn reconfigure_on_new_machines(graph: &ResourceGraph, state: &State, actions: &mut Vec<Action>) {
    let mut renewed: BTreeMap<ResourceAddress, String> = actions
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                ActionKind::Create | ActionKind::Replace | ActionKind::Move
            )
        })
        .map(|a| match a.kind {
            ActionKind::Move => (a.address, format!("{} moves online", a.address)),
            _ => (a.address, format!("{} is new", a.address)),
        })
        .collect();
    let acted: BTreeSet<ResourceAddress> = actions.iter().map(|a| a.address).collect();
    for address in graph.topological() {
        if !matches!(
            address,
            ResourceAddress::Config { .. } | ResourceAddress::SlonyCluster
        ) {
            continue;
        }
        // Already acted on: a create or replace is in `renewed`; an update for
        // its inputs leaves what depends on it unaffected.
        if acted.contains(&address) {
            continue;
        }
        let Some(prior) = state.resources.get(&address) else {
            continue;
        };
        let machine_now = address
            .machine()
            .and_then(|m| state.resources.get(&m))
            .map(|m| m.id.as_str());
        let cause = graph
            .dependencies(&address)
            .into_iter()
            .find_map(|d| renewed.get(&d).cloned())
            .or_else(|| {
                (machine_now.is_some_and(|id| id != prior.id))
                    .then(|| format!("it was applied on {}, which has been replaced", prior.id))
            });
        let Some(cause) = cause else { continue };
        let desired = graph.get(&address).map(|r| r.spec.clone());
        renewed.insert(address, format!("{address} is applied again"));
        actions.push(Action {
            address,
            kind: ActionKind::Update,
            reason: format!("{cause}: apply it again"),
            prior: Some(prior.redacted()),
            prior_gone: false,
            desired,
            depends_on: graph.dependencies(&address),
            create_before_destroy: false,
            changes: Vec::new(),
        });
    }
}

/// A database machine `db failover` dropped from the cluster is replaced:
/// its data is behind the new origin's, and Slony-I cannot take it back.
fn failed_over(prior: &ResourceState) -> Option<String> {
    let why = prior.attributes.get(crate::ops::FAILED_OVER)?;
    Some(format!(
        "{} {why}; a new machine joins as a replica",
        prior.id
    ))
}

fn delete_reason(address: ResourceAddress) -> String {
    match address {
        ResourceAddress::Instance {
            role: Role::Web, ..
        } => "no longer in the manifest (web.count went down)".into(),
        ResourceAddress::Instance {
            role: Role::DbReplica,
            ..
        } => "no longer in the manifest (database.replicas went down)".into(),
        ResourceAddress::Instance {
            role: Role::Cache, ..
        } => {
            "no longer in the manifest (cache.nodes went down); its cache contents are lost".into()
        }
        _ => "no longer in the manifest".into(),
    }
}

/// Compare a recorded resource with its desired spec. `movable`: the
/// database is configured by appgrid (Postgres + Slony-I), so its machines
/// move online instead of being replaced.
fn compare(
    address: ResourceAddress,
    prior: &ResourceState,
    desired: &ResourceSpec,
    drift: Option<String>,
    movable: bool,
) -> Option<Action> {
    let mut action = Action {
        address,
        kind: ActionKind::Update,
        reason: String::new(),
        prior: Some(prior.redacted()),
        prior_gone: false,
        desired: Some(desired.clone()),
        depends_on: Vec::new(),
        create_before_destroy: false,
        changes: Vec::new(),
    };
    match (&prior.spec, desired) {
        (ResourceSpec::Instance(old), ResourceSpec::Instance(new)) => {
            action.changes = instance_changes(old, new);
            if movable
                && matches!(new.role, Role::DbPrimary | Role::DbReplica)
                && (drift.is_some() || !action.changes.is_empty())
            {
                // A database machine is never destroyed first: it moves online.
                action.kind = ActionKind::Move;
                action.create_before_destroy = true;
                let what = match drift {
                    Some(why) => why,
                    None => move_what(&action.changes),
                };
                action.reason = format!("{what} {}", move_steps(new.role));
                return Some(action);
            }
            let stateless = new.role == Role::Web;
            action.create_before_destroy = stateless;
            let order = match new.role {
                Role::Web => "the new one starts before the old one is destroyed",
                Role::Cache => "the old one is destroyed first; its cache contents are lost",
                _ => "the old one is destroyed first",
            };
            if let Some(why) = drift {
                action.kind = ActionKind::Replace;
                action.reason = format!("{why}; {order}");
            } else if !action.changes.is_empty() {
                let fields: Vec<&str> = action.changes.iter().map(|c| c.field.as_str()).collect();
                action.kind = ActionKind::Replace;
                action.reason = format!(
                    "{} changed, which needs a new instance; {order}",
                    fields.join(", ")
                );
            } else {
                return None;
            }
        }
        (ResourceSpec::SecurityGroup(old), ResourceSpec::SecurityGroup(new)) => {
            if old.name != new.name {
                action.kind = ActionKind::Replace;
                action
                    .changes
                    .push(field("name", Some(&old.name), Some(&new.name)));
                action.reason = "the group's name changed, which needs a new group".into();
            } else if old.rules != new.rules {
                action.changes = rule_changes(old, new);
                action.reason = "ingress rules changed".into();
            } else {
                return None;
            }
        }
        (ResourceSpec::Config(old), ResourceSpec::Config(new)) => {
            if old == new {
                return None;
            }
            let keys: BTreeSet<&String> = old.inputs.keys().chain(new.inputs.keys()).collect();
            for key in keys {
                let (a, b) = (old.inputs.get(key), new.inputs.get(key));
                if a != b {
                    action
                        .changes
                        .push(field(key, a.map(String::as_str), b.map(String::as_str)));
                }
            }
            let fields: Vec<&str> = action.changes.iter().map(|c| c.field.as_str()).collect();
            action.reason = format!("{} changed: apply it again", fields.join(", "));
        }
        (ResourceSpec::KeyPair(old), ResourceSpec::KeyPair(new)) => {
            if old == new {
                return None;
            }
            if old.name != new.name {
                action
                    .changes
                    .push(field("name", Some(&old.name), Some(&new.name)));
            }
            if old.public_key_path != new.public_key_path {
                action.changes.push(field(
                    "public_key_path",
                    Some(&old.public_key_path),
                    Some(&new.public_key_path),
                ));
            }
            action.kind = ActionKind::Replace;
            action.reason = "the key changed, which needs a new key pair".into();
        }
        _ => {
            action.kind = ActionKind::Replace;
            action.reason = format!(
                "state records a {} at this address, the manifest wants a {}",
                prior.spec.kind_name(),
                desired.kind_name()
            );
        }
    }
    Some(action)
}

/// What changed, for a move's reason: `m5.large → m5.xlarge` when only the
/// instance type did, else each field with its values.
fn move_what(changes: &[FieldChange]) -> String {
    let arrow = |c: &FieldChange| {
        format!(
            "{} → {}",
            c.before.as_deref().unwrap_or("(none)"),
            c.after.as_deref().unwrap_or("(none)")
        )
    };
    match changes {
        [only] if only.field == "instance_type" => arrow(only),
        _ => changes
            .iter()
            .map(|c| format!("{} {}", c.field, arrow(c)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn field(name: &str, before: Option<&str>, after: Option<&str>) -> FieldChange {
    FieldChange {
        field: name.to_string(),
        before: before.map(str::to_string),
        after: after.map(str::to_string),
    }
}

fn instance_changes(old: &InstanceSpec, new: &InstanceSpec) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut cmp = |name: &str, a: &str, b: &str| {
        if a != b {
            out.push(field(name, Some(a), Some(b)));
        }
    };
    cmp("instance_type", &old.instance_type, &new.instance_type);
    cmp("image", &old.image, &new.image);
    cmp("zone", &old.zone, &new.zone);
    cmp("key_name", &old.key_name, &new.key_name);
    cmp("group", old.group.as_str(), new.group.as_str());
    if old.role != new.role {
        out.push(field(
            "role",
            Some(old.role.as_str()),
            Some(new.role.as_str()),
        ));
    }
    if old.user_data != new.user_data {
        // The script itself is long: show its digest, not its text.
        let digest = |s: &str| crate::hash::sha256_hex(s.as_bytes())[..12].to_string();
        out.push(field(
            "user_data",
            Some(&digest(&old.user_data)),
            Some(&digest(&new.user_data)),
        ));
    }
    out
}

fn rule_changes(old: &SecurityGroupSpec, new: &SecurityGroupSpec) -> Vec<FieldChange> {
    let before: BTreeSet<_> = old.rules.iter().collect();
    let after: BTreeSet<_> = new.rules.iter().collect();
    let mut out: Vec<FieldChange> = before
        .difference(&after)
        .map(|r| field("rule", Some(&r.to_string()), None))
        .collect();
    out.extend(
        after
            .difference(&before)
            .map(|r| field("rule", None, Some(&r.to_string()))),
    );
    out
}

/// The refresh, indexed for the questions `diff` asks of it.
struct ObservedView<'a> {
    observed: &'a Observed,
    instances_by_id: BTreeMap<&'a str, &'a ObservedInstance>,
    /// Ids that state already accounts for.
    known_ids: BTreeSet<&'a str>,
}

impl<'a> ObservedView<'a> {
    fn new(observed: &'a Observed, state: &'a State) -> Self {
        ObservedView {
            observed,
            instances_by_id: observed
                .instances
                .iter()
                .filter(|i| {
                    i.status.is_alive()
                        || i.status == InstanceStatus::Stopped
                        || i.status == InstanceStatus::Stopping
                })
                .map(|i| (i.id.as_str(), i))
                .collect(),
            // The second machine of an online move is accounted for too.
            known_ids: state
                .resources
                .values()
                .chain(state.moves.values().map(|m| &m.machine))
                .map(|r| r.id.as_str())
                .collect(),
        }
    }

    /// Why `prior` no longer exists, if it doesn't.
    fn gone(&self, address: ResourceAddress, prior: &ResourceState) -> Option<String> {
        let present = match address {
            ResourceAddress::Instance { .. } => {
                self.instances_by_id.contains_key(prior.id.as_str())
            }
            ResourceAddress::SecurityGroup(_) => {
                self.observed.groups.iter().any(|g| g.id == prior.id)
            }
            ResourceAddress::KeyPair => self
                .observed
                .key_pair
                .as_ref()
                .is_some_and(|k| k.name == prior.id),
            // A configuration records the machine it was applied on.
            ResourceAddress::Config { .. } | ResourceAddress::SlonyCluster => {
                let present = self
                    .instances_by_id
                    .get(prior.id.as_str())
                    .is_some_and(|i| i.status.is_alive());
                return (!present).then(|| format!("its machine {} is gone", prior.id));
            }
        };
        (!present).then(|| format!("{} was deleted outside appgrid", prior.id))
    }

    /// Drift of a recorded, present instance that forces its replacement.
    fn instance_drift(&self, prior: &ResourceState) -> Option<String> {
        let ResourceSpec::Instance(spec) = &prior.spec else {
            return None;
        };
        let seen = self.instances_by_id.get(prior.id.as_str())?;
        if matches!(
            seen.status,
            InstanceStatus::Stopped | InstanceStatus::Stopping
        ) {
            return Some(format!("{} was stopped outside appgrid", seen.id));
        }
        if seen.instance_type != spec.instance_type {
            return Some(format!(
                "{} was changed outside appgrid to {} (state says {})",
                seen.id, seen.instance_type, spec.instance_type
            ));
        }
        None
    }

    /// A tagged, unrecorded resource that is exactly what `address` should be.
    fn adoptable(&self, address: ResourceAddress, desired: &ResourceSpec) -> Option<ResourceState> {
        let hash = desired.hash();
        match address {
            ResourceAddress::Instance { .. } => {
                let mut candidates: Vec<&&ObservedInstance> = self
                    .instances_by_id
                    .values()
                    .filter(|i| i.status.is_alive())
                    .filter(|i| !self.known_ids.contains(i.id.as_str()))
                    .filter(|i| {
                        i.address == Some(address) && i.spec_hash.as_deref() == Some(hash.as_str())
                    })
                    .collect();
                candidates.sort_by_key(|i| i.id.as_str());
                let i = candidates.first()?;
                let mut attributes = BTreeMap::new();
                attributes.insert("zone".to_string(), i.zone.clone());
                if let Some(ip) = &i.private_ip {
                    attributes.insert("private_ip".to_string(), ip.clone());
                }
                if let Some(image) = &i.image_id {
                    attributes.insert("image_id".to_string(), image.clone());
                }
                Some(ResourceState {
                    spec: desired.clone(),
                    id: i.id.clone(),
                    depends_on: Vec::new(),
                    attributes,
                })
            }
            ResourceAddress::SecurityGroup(group) => {
                let ResourceSpec::SecurityGroup(spec) = desired else {
                    return None;
                };
                let g = self.observed.groups.iter().find(|g| {
                    g.group == Some(group)
                        && g.name == spec.name
                        && !self.known_ids.contains(g.id.as_str())
                })?;
                // Its rules are unknown: record it with none, so the apply authorizes them all.
                let mut recorded = spec.clone();
                recorded.rules.clear();
                Some(ResourceState {
                    spec: ResourceSpec::SecurityGroup(recorded),
                    id: g.id.clone(),
                    depends_on: Vec::new(),
                    attributes: BTreeMap::new(),
                })
            }
            ResourceAddress::Config { .. } | ResourceAddress::SlonyCluster => None,
            ResourceAddress::KeyPair => {
                let ResourceSpec::KeyPair(spec) = desired else {
                    return None;
                };
                let k = self
                    .observed
                    .key_pair
                    .as_ref()
                    .filter(|k| k.name == spec.name)?;
                Some(ResourceState {
                    spec: desired.clone(),
                    id: k.name.clone(),
                    depends_on: Vec::new(),
                    attributes: BTreeMap::new(),
                })
            }
        }
    }

    /// Tagged instances that neither state nor an adoption accounts for.
    fn orphans(&self, graph: &ResourceGraph, adopted: &BTreeSet<&str>) -> Vec<Orphan> {
        let mut out: Vec<Orphan> = self
            .instances_by_id
            .values()
            .filter(|i| !self.known_ids.contains(i.id.as_str()) && !adopted.contains(i.id.as_str()))
            .map(|i| Orphan {
                id: i.id.clone(),
                address: i.address,
                reason: match i.address {
                    Some(a) if graph.get(&a).is_some() => format!(
                        "carries appgrid's tags for {a}, which another instance already is (a duplicate from an interrupted apply)"
                    ),
                    Some(a) => format!("carries appgrid's tags for {a}, which is not in the manifest"),
                    None => "carries appgrid's tags but no readable address".into(),
                },
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
