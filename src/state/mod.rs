//! What appgrid believes exists: `State { lineage, serial, resources }`.
//!
//! `lineage` is fixed when the state is created and ties plans, tags and
//! backups to one deployment; `serial` grows by one on every write. The
//! [`store`] writes it atomically (temp file, fsync, rename) with mode 0600 and
//! keeps the last few serials as backups; the [`lock`] keeps writers to one,
//! and fences every write (see [`store`]). With `[state] backend = "s3"` the
//! same contract holds on S3 ([`s3_store`], [`s3_lock`]: conditional writes
//! on the ETag), and [`location`] says which one an app uses.

pub mod location;
pub mod lock;
pub mod migrate;
pub mod s3;
pub mod s3_lock;
pub mod s3_store;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::{ResourceAddress, ResourceSpec};

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub lineage: String,
    pub serial: u64,
    pub app: String,
    pub resources: BTreeMap<ResourceAddress, ResourceState>,
    /// The web count the autoscaler chose; with `[autoscale]` in the manifest
    /// it wins over `[web] count`, so a manual plan does not call it drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaledCount>,
    /// The read replica count the autoscaler chose (issue 13); with
    /// `[autoscale.replicas]` in the manifest it wins over `[database] replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale_replicas: Option<AutoscaledReplicas>,
    /// How many times the instance at each address was replaced or removed:
    /// part of the launch token, so launching an address again is a new
    /// launch while retrying the same launch is not.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generations: BTreeMap<ResourceAddress, u64>,
    /// Database machines in the middle of an online move (issue 8): the
    /// second machine at an address, so state names every machine that
    /// exists while old and new both run. See [`Moving`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moves: BTreeMap<ResourceAddress, Moving>,
    /// The numbered releases of the app (issue 9), see [`crate::release`].
    #[serde(default, skip_serializing_if = "crate::release::Releases::is_empty")]
    pub releases: crate::release::Releases,
    /// The app's config vars (`appgrid config set`): values only here (0600)
    /// and in the web servers' env files.
    #[serde(
        default,
        skip_serializing_if = "crate::release::config_vars::ConfigVars::is_empty"
    )]
    pub config: crate::release::config_vars::ConfigVars,
    /// `appgrid maintenance FILE on`: the load balancer answers 503 until
    /// `off` (kept by every apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::Maintenance>,
}

/// The other machine of a database address being moved online.
///
/// Before the switchover it is the *incoming* machine (launched, being
/// configured and subscribed; `resources` still holds the one in service);
/// from the switchover on, the new machine is in `resources` and this is the
/// *outgoing* one, still a node of the cluster until it is dropped and
/// terminated. An apply that finds an entry here resumes the move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moving {
    pub direction: MoveDirection,
    /// The machine's record (as `resources` would hold it).
    pub machine: ResourceState,
    /// Its Slony-I node id.
    pub node: u32,
    /// Set when the move is `db restore` into a new primary (issue 8): the
    /// incoming machine is restored from this backup rather than
    /// subscribed, and becomes the origin of a new Slony-I cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<MoveRestore>,
}

/// The backup a restoring move brings up on its incoming machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRestore {
    /// pgBackRest's label of the backup.
    pub backup: String,
    /// The stanza it is in (the old machine's cluster).
    pub stanza: String,
    /// Replay WAL up to this time (as the user wrote it, checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_time: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveDirection {
    Incoming,
    Outgoing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoscaledCount {
    pub web: u32,
    /// Unix seconds of the decision.
    pub at: u64,
    pub reason: String,
}

/// The autoscaler's choice of read replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoscaledReplicas {
    pub replicas: u32,
    /// Unix seconds of the decision.
    pub at: u64,
    pub reason: String,
}

/// One resource that exists in the cloud (or did, at the last refresh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The spec it was created from.
    pub spec: ResourceSpec,
    /// The cloud's id: `i-…`, `sg-…`, or the key pair's name.
    pub id: String,
    /// What it needed when it was created; deletes run in the reverse order.
    #[serde(default)]
    pub depends_on: Vec<ResourceAddress>,
    /// Facts the cloud reported: zone, private_ip, image_id, status.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Attribute keys whose values are secrets: kept in the (0600) state file,
/// never printed, never copied into a plan.
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "private_key"]
        .iter()
        .any(|s| k.contains(s))
}

pub const REDACTED: &str = "(sensitive)";

impl ResourceState {
    /// A copy safe to print or save in a plan: sensitive attributes masked.
    pub fn redacted(&self) -> ResourceState {
        let mut r = self.clone();
        for (k, v) in r.attributes.iter_mut() {
            if is_sensitive(k) {
                *v = REDACTED.to_string();
            }
        }
        r
    }
}

impl State {
    /// A fresh, empty state with a new lineage.
    pub fn new(app: &str, lineage: String) -> Self {
        State {
            version: STATE_VERSION,
            lineage,
            serial: 0,
            app: app.to_string(),
            resources: BTreeMap::new(),
            autoscale: None,
            autoscale_replicas: None,
            generations: BTreeMap::new(),
            moves: BTreeMap::new(),
            releases: Default::default(),
            config: Default::default(),
            maintenance: None,
        }
    }

    /// The generation of the instances at `addresses`, see [`State::generations`].
    pub fn generation(&self, addresses: &[ResourceAddress]) -> u64 {
        addresses
            .iter()
            .map(|a| self.generations.get(a).copied().unwrap_or(0))
            .sum()
    }
}

/// A new random lineage: a UUIDv4.
pub fn new_lineage() -> String {
    uuid::Uuid::new_v4().to_string()
}
