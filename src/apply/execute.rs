//! One step against the cloud: `prepare` resolves everything the step needs
//! from state (ids of groups, prior ids) into an owned [`Job`]; `run` performs
//! it and reports state changes as soon as they are known.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::launch::Launch;
use super::steps::{Step, StepKind};
use super::{ApplyOptions, ConfigJob, Configurator, MoveJob, StateChange};
use crate::cloud::{Cloud, CloudError, LaunchRequest, Owner, ResolvedRule, ResolvedSource};
use crate::graph::{
    ConfigSpec, Group, IngressRule, KeyPairSpec, ResourceAddress, ResourceSpec, RuleSource,
    SecurityGroupSpec,
};
use crate::plan::Plan;
use crate::state::{ResourceState, State};

pub enum Message {
    Change(StateChange),
    /// A launch found instances besides its answer: recorded ones, terminated ones.
    Verified {
        adopted: Vec<(ResourceAddress, String)>,
        terminated: Vec<(Option<ResourceAddress>, String)>,
    },
    Finished {
        step: usize,
        result: Result<String, String>,
    },
}

/// What every step's preparation shares.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub owner: &'a Owner,
    pub options: &'a ApplyOptions,
    /// The cloud puts machines in security groups ([`Cloud::has_firewalls`]).
    pub firewalls: bool,
    pub still_ours: super::StillOurs,
}

/// A step with everything it needs, owned.
pub struct Job {
    step: usize,
    work: Work,
}

enum Work {
    /// Preparation found a problem: the step fails with this message.
    Invalid(String),
    TerminateOrphans(Vec<String>),
    Record(ResourceAddress, ResourceState),
    AdoptGroup {
        address: ResourceAddress,
        record: ResourceState,
        spec: SecurityGroupSpec,
        group_ids: BTreeMap<Group, String>,
    },
    Forget(ResourceAddress, String),
    ImportKey {
        owner: Owner,
        spec: KeyPairSpec,
        path: PathBuf,
        depends_on: Vec<ResourceAddress>,
    },
    CreateGroup {
        owner: Owner,
        group: Group,
        spec: SecurityGroupSpec,
        depends_on: Vec<ResourceAddress>,
        group_ids: BTreeMap<Group, String>,
    },
    UpdateGroup {
        group: Group,
        record: ResourceState,
        spec: SecurityGroupSpec,
        group_ids: BTreeMap<Group, String>,
    },
    Launch(Launch),
    Terminate {
        targets: Vec<(ResourceAddress, String)>,
        /// Second machines of moves at those addresses (`State::moves`).
        moving: Vec<(ResourceAddress, String)>,
    },
    DeleteGroup(ResourceAddress, String),
    DeleteKey(ResourceAddress, String),
    Configure {
        job: ConfigJob,
        machine: ResourceState,
        depends_on: Vec<ResourceAddress>,
    },
    Unconfigure(ConfigJob),
    MoveIn(Box<MoveIn>),
    MoveOut {
        job: MoveJob,
    },
    /// Nothing left to do (a resumed move past this half).
    Nothing(String),
}

/// The first half of an online move, prepared.
struct MoveIn {
    /// Set when the incoming machine is still to be launched.
    launch: Option<Launch>,
    /// The move as far as state knows it (`moving.machine` is a placeholder
    /// until the launch records the real one).
    job: MoveJob,
    /// What state records now at the address, the configuration and the cluster.
    old_machine: ResourceState,
    config_record: Option<ResourceState>,
    config_depends_on: Vec<ResourceAddress>,
    cluster: Option<ResourceState>,
}

pub fn prepare(index: usize, step: &Step, cx: &Context<'_>, state: &State) -> Job {
    let work = prepare_work(step, cx, state).unwrap_or_else(Work::Invalid);
    Job { step: index, work }
}

fn action<'p>(
    plan: &'p Plan,
    address: &ResourceAddress,
) -> Result<&'p crate::plan::Action, String> {
    plan.actions
        .iter()
        .find(|a| a.address == *address)
        .ok_or_else(|| format!("{address}: no action in the plan"))
}

fn prior_id(plan: &Plan, address: &ResourceAddress) -> Result<String, String> {
    action(plan, address)?
        .prior
        .as_ref()
        .map(|p| p.id.clone())
        .ok_or_else(|| format!("{address}: nothing recorded to remove"))
}

fn group_ids(state: &State) -> BTreeMap<Group, String> {
    state
        .resources
        .iter()
        .filter_map(|(a, r)| match a {
            ResourceAddress::SecurityGroup(g) => Some((*g, r.id.clone())),
            _ => None,
        })
        .collect()
}

fn prepare_work(step: &Step, cx: &Context<'_>, state: &State) -> Result<Work, String> {
    let (plan, owner, options) = (cx.plan, cx.owner, cx.options);
    Ok(match &step.kind {
        StepKind::TerminateOrphans { ids } => Work::TerminateOrphans(ids.clone()),
        StepKind::Adopt { address } => {
            let a = action(plan, address)?;
            let mut record = a
                .prior
                .clone()
                .ok_or_else(|| format!("{address}: nothing to adopt"))?;
            record.depends_on = a.depends_on.clone();
            match (address, &a.desired) {
                (ResourceAddress::SecurityGroup(_), Some(ResourceSpec::SecurityGroup(spec))) => {
                    Work::AdoptGroup {
                        address: *address,
                        record,
                        spec: spec.clone(),
                        group_ids: group_ids(state),
                    }
                }
                _ => Work::Record(*address, record),
            }
        }
        StepKind::Forget { address } => Work::Forget(*address, prior_id(plan, address)?),
        StepKind::ImportKey { address } => {
            let a = action(plan, address)?;
            let Some(ResourceSpec::KeyPair(spec)) = &a.desired else {
                return Err(format!("{address}: not a key pair"));
            };
            Work::ImportKey {
                owner: owner.clone(),
                spec: spec.clone(),
                path: resolve_path(&spec.public_key_path, &options.base_dir),
                depends_on: a.depends_on.clone(),
            }
        }
        StepKind::CreateGroup { address } => {
            let a = action(plan, address)?;
            let (ResourceAddress::SecurityGroup(group), Some(ResourceSpec::SecurityGroup(spec))) =
                (address, &a.desired)
            else {
                return Err(format!("{address}: not a security group"));
            };
            Work::CreateGroup {
                owner: owner.clone(),
                group: *group,
                spec: spec.clone(),
                depends_on: a.depends_on.clone(),
                group_ids: group_ids(state),
            }
        }
        StepKind::UpdateGroup { address } => {
            let a = action(plan, address)?;
            let (ResourceAddress::SecurityGroup(group), Some(ResourceSpec::SecurityGroup(spec))) =
                (address, &a.desired)
            else {
                return Err(format!("{address}: not a security group"));
            };
            let record = state
                .resources
                .get(address)
                .cloned()
                .ok_or_else(|| format!("{address}: not in state"))?;
            Work::UpdateGroup {
                group: *group,
                record,
                spec: spec.clone(),
                group_ids: group_ids(state),
            }
        }
        StepKind::Launch { addresses } => {
            let first = action(plan, &addresses[0])?;
            let Some(ResourceSpec::Instance(spec)) = &first.desired else {
                return Err(format!("{}: not an instance", addresses[0]));
            };
            // Only machines of a cloud with firewalls sit in a security group.
            let group_id = if cx.firewalls {
                group_ids(state).get(&spec.group).cloned().ok_or_else(|| {
                    format!(
                        "sg.{} has no id in state, so {} cannot launch",
                        spec.group.as_str(),
                        addresses[0]
                    )
                })?
            } else {
                String::new()
            };
            let mut depends_on = BTreeMap::new();
            for address in addresses {
                depends_on.insert(*address, action(plan, address)?.depends_on.clone());
            }
            Work::Launch(Launch {
                request: LaunchRequest {
                    owner: owner.clone(),
                    spec: spec.clone(),
                    spec_hash: ResourceSpec::Instance(spec.clone()).hash(),
                    addresses: addresses.clone(),
                    group_id,
                    // Set per try by the launch (see `cloud::launch_token`).
                    client_token: String::new(),
                },
                depends_on,
                generation: state.generation(addresses),
                known_ids: state.resources.values().map(|r| r.id.clone()).collect(),
                still_ours: cx.still_ours.clone(),
            })
        }
        StepKind::Terminate { addresses } => {
            let mut targets = Vec::new();
            let mut moving = Vec::new();
            for address in addresses {
                targets.push((*address, prior_id(plan, address)?));
                // The other machine of a move in progress goes with it.
                if let Some(m) = state.moves.get(address) {
                    moving.push((*address, m.machine.id.clone()));
                }
            }
            Work::Terminate { targets, moving }
        }
        StepKind::DeleteGroup { address } => Work::DeleteGroup(*address, prior_id(plan, address)?),
        StepKind::DeleteKey { address } => Work::DeleteKey(*address, prior_id(plan, address)?),
        StepKind::Configure { address } => {
            let a = action(plan, address)?;
            let Some(ResourceSpec::Config(spec)) = &a.desired else {
                return Err(format!("{address}: not a configuration"));
            };
            let machine_address = address
                .machine()
                .ok_or_else(|| format!("{address}: no machine"))?;
            let machine = state
                .resources
                .get(&machine_address)
                .cloned()
                .ok_or_else(|| {
                    format!("{address}: its machine {machine_address} is not in state")
                })?;
            Work::Configure {
                job: ConfigJob {
                    address: *address,
                    spec: spec.clone(),
                    prior: state.resources.get(address).cloned(),
                    resources: machines_and_configs(state),
                },
                machine,
                depends_on: a.depends_on.clone(),
            }
        }
        StepKind::Unconfigure { address } => {
            let prior = state
                .resources
                .get(address)
                .cloned()
                .ok_or_else(|| format!("{address}: not in state"))?;
            let ResourceSpec::Config(spec) = &prior.spec else {
                return Err(format!("{address}: state records no configuration"));
            };
            Work::Unconfigure(ConfigJob {
                address: *address,
                spec: spec.clone(),
                prior: Some(prior.clone()),
                resources: machines_and_configs(state),
            })
        }
        StepKind::MoveIn { address } => prepare_move_in(*address, cx, state)?,
        StepKind::MoveOut { address } => prepare_move_out(*address, cx, state)?,
    })
}

/// The configuration on a database machine, and the spec to apply: the
/// plan's (a move applies it again) or, failing that, what state records.
fn config_of_move(
    plan: &Plan,
    state: &State,
    address: ResourceAddress,
) -> Result<(ResourceAddress, ConfigSpec, Vec<ResourceAddress>), String> {
    let ResourceAddress::Instance { role, index } = address else {
        return Err(format!("{address}: only machines move"));
    };
    let config = ResourceAddress::config(role, index);
    let planned = plan.actions.iter().find(|a| a.address == config);
    let recorded = state.resources.get(&config);
    let spec = planned
        .and_then(|a| a.desired.as_ref())
        .or(recorded.map(|r| &r.spec));
    let Some(ResourceSpec::Config(spec)) = spec else {
        return Err(format!(
            "{address} cannot move online: state records no {config} (appgrid did not configure its database)"
        ));
    };
    let depends_on = planned
        .map(|a| a.depends_on.clone())
        .or(recorded.map(|r| r.depends_on.clone()))
        .unwrap_or_default();
    Ok((config, spec.clone(), depends_on))
}

/// A Slony-I node id no node of the cluster has had: above every id state
/// knows (configurations' `node`, moves) and above the range replicas take
/// by index (`index + 2`), so it never meets one.
pub(crate) fn next_node(state: &State) -> u32 {
    let recorded = state
        .resources
        .values()
        .filter_map(|r| r.attributes.get("node"))
        .filter_map(|n| n.parse::<u32>().ok())
        .chain(state.moves.values().map(|m| m.node));
    recorded.max().unwrap_or(0).max(99) + 1
}

fn prepare_move_in(
    address: ResourceAddress,
    cx: &Context<'_>,
    state: &State,
) -> Result<Work, String> {
    use crate::state::{MoveDirection, Moving};
    let plan = cx.plan;
    let a = action(plan, &address)?;
    if let Some(m) = state.moves.get(&address)
        && m.direction == MoveDirection::Outgoing
    {
        return Ok(Work::Nothing(format!(
            "switched over already; {} (node {}) is leaving",
            m.machine.id, m.node
        )));
    }
    let old_machine = state
        .resources
        .get(&address)
        .cloned()
        .ok_or_else(|| format!("{address}: not in state, so there is nothing to move"))?;
    let (config, spec, config_depends_on) = config_of_move(plan, state, address)?;
    let cluster = state.resources.get(&ResourceAddress::SlonyCluster).cloned();
    if cluster.is_none() {
        return Err(format!(
            "{address} cannot move online without the Slony-I cluster, which replicates the data to the new machine: set [database] replicas = 1 (or more), apply, then change the machine"
        ));
    }
    let (launch, moving) = match state.moves.get(&address) {
        // Launched already (an id recorded): resume.
        Some(m) if !m.machine.id.is_empty() => (None, m.clone()),
        // None, or a restore `db restore` asked for whose machine is not
        // launched yet.
        pending => {
            let Some(ResourceSpec::Instance(spec)) = &a.desired else {
                return Err(format!("{address}: not an instance"));
            };
            let group_id = if cx.firewalls {
                group_ids(state).get(&spec.group).cloned().ok_or_else(|| {
                    format!(
                        "sg.{} has no id in state, so {address} cannot launch",
                        spec.group.as_str()
                    )
                })?
            } else {
                String::new()
            };
            let launch = Launch {
                request: LaunchRequest {
                    owner: cx.owner.clone(),
                    spec: spec.clone(),
                    spec_hash: ResourceSpec::Instance(spec.clone()).hash(),
                    addresses: vec![address],
                    group_id,
                    client_token: String::new(),
                },
                depends_on: BTreeMap::from([(address, a.depends_on.clone())]),
                // The machine that will follow the one at the address now.
                generation: state.generation(&[address]) + 1,
                known_ids: state
                    .resources
                    .values()
                    .chain(state.moves.values().map(|m| &m.machine))
                    .map(|r| r.id.clone())
                    .collect(),
                still_ours: cx.still_ours.clone(),
            };
            let placeholder = Moving {
                direction: MoveDirection::Incoming,
                machine: ResourceState {
                    spec: ResourceSpec::Instance(spec.clone()),
                    id: String::new(),
                    depends_on: a.depends_on.clone(),
                    attributes: BTreeMap::new(),
                },
                node: pending.map_or_else(|| next_node(state), |m| m.node),
                restore: pending.and_then(|m| m.restore.clone()),
            };
            (Some(launch), placeholder)
        }
    };
    Ok(Work::MoveIn(Box::new(MoveIn {
        launch,
        job: MoveJob {
            address,
            config,
            spec,
            moving,
            resources: machines_and_configs(state),
            moves: state.moves.clone(),
        },
        config_record: state.resources.get(&config).cloned(),
        old_machine,
        config_depends_on,
        cluster,
    })))
}

fn prepare_move_out(
    address: ResourceAddress,
    cx: &Context<'_>,
    state: &State,
) -> Result<Work, String> {
    use crate::state::MoveDirection;
    let Some(moving) = state.moves.get(&address) else {
        return Ok(Work::Nothing("no old machine left".into()));
    };
    if moving.direction != MoveDirection::Outgoing {
        return Err(format!(
            "{address}: {} has not taken over yet, so the old machine stays",
            moving.machine.id
        ));
    }
    let (config, spec, _) = config_of_move(cx.plan, state, address)?;
    Ok(Work::MoveOut {
        job: MoveJob {
            address,
            config,
            spec,
            moving: moving.clone(),
            resources: machines_and_configs(state),
            moves: state.moves.clone(),
        },
    })
}

fn machines_and_configs(state: &State) -> BTreeMap<ResourceAddress, ResourceState> {
    state
        .resources
        .iter()
        .filter(|(a, _)| a.machine().is_some())
        .map(|(a, r)| (*a, r.clone()))
        .collect()
}

/// `~/x` is under $HOME; a relative path is relative to the manifest's directory.
pub fn resolve_path(path: &str, base_dir: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = PathBuf::from(path);
    if p.is_absolute() { p } else { base_dir.join(p) }
}

fn resolve_rules(
    rules: &[IngressRule],
    group_ids: &BTreeMap<Group, String>,
) -> Result<Vec<ResolvedRule>, String> {
    rules
        .iter()
        .map(|r| {
            let from = match &r.from {
                RuleSource::Cidr(c) => ResolvedSource::Cidr(c.clone()),
                RuleSource::Group(g) => {
                    ResolvedSource::GroupId(group_ids.get(g).cloned().ok_or_else(|| {
                        format!("rule {r} needs sg.{}, which has no id in state", g.as_str())
                    })?)
                }
            };
            Ok(ResolvedRule { port: r.port, from })
        })
        .collect()
}

pub(super) fn put(
    tx: &mpsc::UnboundedSender<Message>,
    address: ResourceAddress,
    record: ResourceState,
) {
    let _ = tx.send(Message::Change(StateChange::Put(address, Box::new(record))));
}

fn remove(tx: &mpsc::UnboundedSender<Message>, address: ResourceAddress, id: String) {
    let _ = tx.send(Message::Change(StateChange::RemoveIfId(address, id)));
}

pub async fn run<C: Cloud, K: Configurator>(
    cloud: &C,
    configurator: &K,
    job: Job,
    tx: mpsc::UnboundedSender<Message>,
) {
    let result = perform(cloud, configurator, job.work, &tx).await;
    let _ = tx.send(Message::Finished {
        step: job.step,
        result: result.map_err(|e| e.to_string()),
    });
}

async fn configure<K: Configurator>(
    configurator: &K,
    job: ConfigJob,
    mut machine: ResourceState,
    depends_on: Vec<ResourceAddress>,
    tx: &mpsc::UnboundedSender<Message>,
) -> Result<String, StepError> {
    let address = job.address;
    let spec = job.spec.clone();
    let machine_address = address.machine().expect("configurations live on machines");
    let configured = configurator.configure(job).await?;
    if !configured.machine_attributes.is_empty() {
        machine.attributes.extend(configured.machine_attributes);
        put(tx, machine_address, machine.clone());
    }
    put(
        tx,
        address,
        ResourceState {
            spec: ResourceSpec::Config(spec),
            // A configuration records the machine it was applied on.
            id: machine.id.clone(),
            depends_on,
            attributes: configured.attributes,
        },
    );
    Ok(format!("on {machine_address} ({})", machine.id))
}

#[derive(Debug)]
pub(super) enum StepError {
    Cloud(CloudError),
    Config(super::ConfigError),
    Other(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Cloud(e) => e.fmt(f),
            StepError::Config(e) => e.fmt(f),
            StepError::Other(s) => f.write_str(s),
        }
    }
}

impl From<super::ConfigError> for StepError {
    fn from(e: super::ConfigError) -> Self {
        StepError::Config(e)
    }
}

impl From<CloudError> for StepError {
    fn from(e: CloudError) -> Self {
        StepError::Cloud(e)
    }
}

impl From<String> for StepError {
    fn from(e: String) -> Self {
        StepError::Other(e)
    }
}

async fn perform<C: Cloud, K: Configurator>(
    cloud: &C,
    configurator: &K,
    work: Work,
    tx: &mpsc::UnboundedSender<Message>,
) -> Result<String, StepError> {
    match work {
        Work::Invalid(message) => Err(StepError::Other(message)),
        Work::Configure {
            job,
            machine,
            depends_on,
        } => configure(configurator, job, machine, depends_on, tx).await,
        Work::Unconfigure(job) => {
            let (address, id) = (
                job.address,
                job.prior.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
            );
            configurator.unconfigure(job).await?;
            remove(tx, address, id.clone());
            Ok(id)
        }
        Work::TerminateOrphans(ids) => {
            cloud.terminate(&ids).await?;
            Ok(ids.join(", "))
        }
        Work::Record(address, record) => {
            let id = record.id.clone();
            put(tx, address, record);
            Ok(id)
        }
        Work::AdoptGroup {
            address,
            mut record,
            spec,
            mut group_ids,
        } => {
            if let ResourceAddress::SecurityGroup(g) = address {
                group_ids.insert(g, record.id.clone());
            }
            put(tx, address, record.clone());
            let rules = resolve_rules(&spec.rules, &group_ids)?;
            cloud.set_ingress(&record.id, &rules, &[]).await?;
            record.spec = ResourceSpec::SecurityGroup(spec);
            let id = record.id.clone();
            put(tx, address, record);
            Ok(id)
        }
        Work::Forget(address, id) => {
            remove(tx, address, id.clone());
            Ok(id)
        }
        Work::ImportKey {
            owner,
            spec,
            path,
            depends_on,
        } => {
            let public_key = std::fs::read_to_string(&path).map_err(|e| CloudError::PublicKey {
                path: path.display().to_string(),
                private: path.with_extension("").display().to_string(),
                detail: e.to_string(),
            })?;
            let name = cloud
                .import_key_pair(&owner, &spec, public_key.trim())
                .await?;
            put(
                tx,
                ResourceAddress::KeyPair,
                ResourceState {
                    spec: ResourceSpec::KeyPair(spec),
                    id: name.clone(),
                    depends_on,
                    attributes: BTreeMap::new(),
                },
            );
            Ok(name)
        }
        Work::CreateGroup {
            owner,
            group,
            spec,
            depends_on,
            mut group_ids,
        } => {
            let address = ResourceAddress::SecurityGroup(group);
            let id = cloud.create_security_group(&owner, group, &spec).await?;
            // Recorded with no rules first: if authorizing fails, state says so.
            let mut empty = spec.clone();
            empty.rules.clear();
            let mut record = ResourceState {
                spec: ResourceSpec::SecurityGroup(empty),
                id: id.clone(),
                depends_on,
                attributes: BTreeMap::new(),
            };
            put(tx, address, record.clone());
            group_ids.insert(group, id.clone());
            let rules = resolve_rules(&spec.rules, &group_ids)?;
            cloud.set_ingress(&id, &rules, &[]).await?;
            record.spec = ResourceSpec::SecurityGroup(spec);
            put(tx, address, record);
            Ok(id)
        }
        Work::UpdateGroup {
            group,
            mut record,
            spec,
            mut group_ids,
        } => {
            group_ids.insert(group, record.id.clone());
            let ResourceSpec::SecurityGroup(old) = &record.spec else {
                return Err(StepError::Other(format!(
                    "sg.{}: state records no group",
                    group.as_str()
                )));
            };
            let previous = resolve_rules(&old.rules, &group_ids)?;
            let rules = resolve_rules(&spec.rules, &group_ids)?;
            cloud.set_ingress(&record.id, &rules, &previous).await?;
            record.spec = ResourceSpec::SecurityGroup(spec);
            let id = record.id.clone();
            put(tx, ResourceAddress::SecurityGroup(group), record);
            Ok(id)
        }
        Work::Launch(launch) => super::launch::perform(cloud, launch, tx).await,
        Work::Nothing(detail) => Ok(detail),
        Work::MoveIn(m) => move_in(cloud, configurator, *m, tx).await,
        Work::MoveOut { job } => {
            let (address, old) = (job.address, job.moving.machine.id.clone());
            configurator.move_out(job).await?;
            cloud.terminate(std::slice::from_ref(&old)).await?;
            let _ = tx.send(Message::Change(StateChange::Moving(address, None)));
            Ok(format!("{old} left the cluster and was terminated"))
        }
        Work::Terminate { targets, moving } => {
            let ids: Vec<String> = targets
                .iter()
                .chain(&moving)
                .map(|(_, id)| id.clone())
                .collect();
            cloud.terminate(&ids).await?;
            for (address, id) in targets {
                remove(tx, address, id);
            }
            for (address, _) in moving {
                let _ = tx.send(Message::Change(StateChange::Moving(address, None)));
            }
            Ok(ids.join(", "))
        }
        Work::DeleteGroup(address, id) => {
            cloud.delete_security_group(&id).await?;
            remove(tx, address, id.clone());
            Ok(id)
        }
        Work::DeleteKey(address, id) => {
            cloud.delete_key_pair(&id).await?;
            remove(tx, address, id.clone());
            Ok(id)
        }
    }
}

/// Launch the incoming machine (unless a resumed move has it), record it,
/// let the configurator subscribe it and switch over, then swap it into the
/// address in one state change: from there on the old machine is the
/// outgoing one.
async fn move_in<C: Cloud, K: Configurator>(
    cloud: &C,
    configurator: &K,
    m: MoveIn,
    tx: &mpsc::UnboundedSender<Message>,
) -> Result<String, StepError> {
    use crate::state::{MoveDirection, Moving};
    let MoveIn {
        launch,
        mut job,
        old_machine,
        config_record,
        config_depends_on,
        cluster,
    } = m;
    let address = job.address;
    if let Some(mut launch) = launch {
        let launched = super::launch::run_instances(cloud, &mut launch).await?;
        let l = launched
            .iter()
            .find(|l| l.address == address)
            .ok_or_else(|| format!("{address}: the launch answered no instance for it"))?;
        job.moving.machine = super::launch::record(
            &launch,
            address,
            &l.id,
            "pending",
            &l.zone,
            l.private_ip.as_ref(),
            l.image_id.as_ref(),
        );
        let _ = tx.send(Message::Change(StateChange::Moving(
            address,
            Some(Box::new(job.moving.clone())),
        )));
    }
    let incoming = job.moving.clone();
    let moved = configurator.move_in(job.clone()).await?;

    let mut machine = incoming.machine.clone();
    machine.attributes.extend(moved.machine_attributes.clone());
    let mut config_attributes = config_record
        .as_ref()
        .map(|r| r.attributes.clone())
        .unwrap_or_default();
    config_attributes.extend(moved.attributes.clone());
    let mut swap = vec![
        StateChange::Put(address, Box::new(machine.clone())),
        StateChange::Moving(
            address,
            Some(Box::new(Moving {
                direction: MoveDirection::Outgoing,
                machine: old_machine.clone(),
                node: moved.old_node,
                restore: incoming.restore.clone(),
            })),
        ),
        StateChange::Put(
            job.config,
            Box::new(ResourceState {
                spec: ResourceSpec::Config(job.spec.clone()),
                id: machine.id.clone(),
                depends_on: config_depends_on,
                attributes: config_attributes,
            }),
        ),
    ];
    if let Some(mut cluster) = cluster {
        let mut changed = false;
        if let Some(origin) = moved.origin {
            cluster
                .attributes
                .insert("origin".to_string(), origin.to_string());
            changed = true;
        }
        // The cluster lives on the primary's machine.
        if ResourceAddress::SlonyCluster.machine() == Some(address) {
            cluster.id = machine.id.clone();
            changed = true;
        }
        if changed {
            swap.push(StateChange::Put(
                ResourceAddress::SlonyCluster,
                Box::new(cluster),
            ));
        }
    }
    let _ = tx.send(Message::Change(StateChange::Together(swap)));
    Ok(format!(
        "{} (node {}) took over from {} (node {})",
        incoming.machine.id, incoming.node, old_machine.id, moved.old_node
    ))
}
