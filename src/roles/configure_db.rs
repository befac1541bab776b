//! The database part of the [`RoleConfigurator`]: the primary, the Slony-I
//! cluster and its subscribers. Node ids: the primary is 1, `db.replica[i]`
//! is `i + 2`. Secrets (the app's and Slony's passwords) are generated once,
//! kept in state attributes, and registered with the redactor before use.

use std::collections::BTreeMap;
use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};

use super::RoleError;
use super::configure::{
    Connected, Fleet, MachinePlace, RoleConfigurator, applied, machine_addr, secret_attribute,
};
use super::fleet_ssh::BIND_ADDR;
use super::postgres::{self, AppDatabase, PgNode};
use super::slony::{self, SlonyCluster, SlonyNode};
use crate::apply::{ConfigJob, Configured};
use crate::graph::{ResourceAddress, Role};
use crate::state::ResourceState;

/// Postgres identifiers for the app: its name with `-` as `_`.
pub fn sql_name(app: &str) -> String {
    app.replace('-', "_")
}

pub fn node_id(address: ResourceAddress) -> Option<u32> {
    match address.machine()? {
        ResourceAddress::Instance {
            role: Role::DbPrimary,
            ..
        } => Some(1),
        ResourceAddress::Instance {
            role: Role::DbReplica,
            index,
        } => Some(index + 2),
        _ => None,
    }
}

/// The Slony-I node id of a database machine as state records it: the
/// `node` attribute of its configuration (a machine that joined through an
/// online move has a new one), else [`node_id`]'s.
pub fn node_in(
    resources: &BTreeMap<ResourceAddress, ResourceState>,
    machine: ResourceAddress,
) -> Option<u32> {
    let default = node_id(machine)?;
    let ResourceAddress::Instance { role, index } = machine.machine()? else {
        return None;
    };
    Some(
        resources
            .get(&ResourceAddress::config(role, index))
            .and_then(|c| c.attributes.get("node"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(default),
    )
}

pub(super) fn ip(addr: &str) -> Result<IpAddr, RoleError> {
    addr.parse().map_err(|_| RoleError::InvalidValue {
        what: "machine address",
        value: addr.to_string(),
        rule: "an IP address",
    })
}

/// The secret in `prior`'s attributes, or a new one.
fn secret(prior: Option<&ResourceState>) -> SecretString {
    prior
        .and_then(|p| p.attributes.get("password"))
        .map(|p| SecretString::from(p.as_str()))
        .unwrap_or_else(postgres::generate_password)
}

/// The recorded origin of the cluster, when it is not the primary (node 1).
fn moved_origin(resources: &BTreeMap<ResourceAddress, ResourceState>) -> Option<u32> {
    let primary = node_in(resources, ResourceAddress::instance(Role::DbPrimary, 0)).unwrap_or(1);
    resources
        .get(&ResourceAddress::SlonyCluster)?
        .attributes
        .get("origin")?
        .parse()
        .ok()
        .filter(|o| *o != primary)
}

/// What state records of the Slony-I cluster ([`RoleConfigurator::recorded_cluster`]).
pub(super) struct RecordedCluster {
    pub password: SecretString,
    /// The origin's node id.
    pub origin: u32,
    /// `db.primary[0]`, then every replica state holds.
    pub members: Vec<ResourceAddress>,
}

impl<F: Fleet> RoleConfigurator<F> {
    fn db(&self) -> Result<&crate::manifest::Database, RoleError> {
        self.manifest
            .database
            .as_ref()
            .ok_or(RoleError::ManifestLacks { table: "database" })
    }

    pub(super) fn pg_node(&self, place: &MachinePlace) -> Result<PgNode, RoleError> {
        Ok(PgNode::new(
            place.root.clone(),
            ip(&place.addr)?,
            self.db()?.port,
        ))
    }

    /// The address `machine` binds: from state, or, before its own
    /// configuration has run (an SSH fleet learns `bind_addr` on first
    /// contact), from a connection made now. `None`: not in state.
    async fn peer_addr(
        &self,
        job: &ConfigJob,
        place: &MachinePlace,
        machine: ResourceAddress,
    ) -> Result<Option<String>, RoleError> {
        let Some(record) = job.resources.get(&machine) else {
            return Ok(None);
        };
        if job.address.machine() == Some(machine) {
            return Ok(Some(place.addr.clone()));
        }
        if record.attributes.contains_key(BIND_ADDR) {
            return machine_addr(&job.resources, machine).map(Some);
        }
        Ok(Some(self.fleet.connect(machine, record).await?.place.addr))
    }

    /// Who may connect to a database node: every web machine, and the other database nodes.
    pub(super) async fn pg_access(
        &self,
        job: &ConfigJob,
        place: &MachinePlace,
    ) -> Result<(Vec<String>, Vec<IpAddr>), RoleError> {
        let mut clients = Vec::new();
        if self.manifest.provider.kind == crate::manifest::ProviderKind::Local {
            // One machine: every connection comes from 127.0.0.1 whatever the
            // "machine", so only the loopback range can be told apart.
            clients.push("127.0.0.0/8".to_string());
        }
        // The clients the primary's spec names; a replica admits the same ones.
        let primary_spec = match job.address {
            ResourceAddress::Config {
                role: Role::DbPrimary,
                ..
            } => Some(job.spec.clone()),
            _ => job
                .resources
                .get(&ResourceAddress::config(Role::DbPrimary, 0))
                .and_then(|r| match &r.spec {
                    crate::graph::ResourceSpec::Config(c) => Some(c.clone()),
                    _ => None,
                }),
        };
        let web: Vec<u32> = primary_spec
            .as_ref()
            .map(|spec| super::configure::web_indices(spec, "clients"))
            .unwrap_or_else(|| (0..self.manifest.web.count).collect());
        for i in web {
            let web = ResourceAddress::instance(Role::Web, i);
            if let Some(addr) = self.peer_addr(job, place, web).await? {
                clients.push(format!("{addr}/32"));
            }
        }
        let mut peers = Vec::new();
        let db = self.db()?;
        // The replicas the primary's spec names (the autoscaler may have chosen them).
        let replicas = primary_spec
            .as_ref()
            .and_then(|spec| super::configure::listed(spec, "peers", Role::DbReplica))
            .unwrap_or_else(|| (0..db.replicas).collect());
        for machine in std::iter::once(ResourceAddress::instance(Role::DbPrimary, 0)).chain(
            replicas
                .into_iter()
                .map(|i| ResourceAddress::instance(Role::DbReplica, i)),
        ) {
            if let Some(addr) = self.peer_addr(job, place, machine).await? {
                peers.push(ip(&addr)?);
            }
        }
        Ok((clients, peers))
    }

    /// The Slony-I cluster as state records it: its password (from now on
    /// redacted), the origin's node id, and every database machine, the
    /// primary first (failed-over ones too: each caller decides).
    pub(super) fn recorded_cluster(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
    ) -> Result<RecordedCluster, RoleError> {
        let record =
            resources
                .get(&ResourceAddress::SlonyCluster)
                .ok_or(RoleError::NotInState {
                    address: ResourceAddress::SlonyCluster,
                    needed_by: None,
                })?;
        let password = secret_attribute(record, ResourceAddress::SlonyCluster, "password")?;
        self.redactor.add(password.expose_secret());
        let origin: u32 = record
            .attributes
            .get("origin")
            .and_then(|o| o.parse().ok())
            .unwrap_or(1);
        let mut members: Vec<ResourceAddress> = vec![ResourceAddress::instance(Role::DbPrimary, 0)];
        for address in resources.keys() {
            if let ResourceAddress::Config {
                role: Role::DbReplica,
                index,
            } = address
            {
                members.push(ResourceAddress::instance(Role::DbReplica, *index));
            }
        }
        Ok(RecordedCluster {
            password,
            origin,
            members,
        })
    }

    /// The cluster as state records it (`resources`): the origin and every
    /// subscribed replica (but `except`), each connected.
    pub(super) async fn cluster(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
        except: Option<u32>,
    ) -> Result<(SlonyCluster, Vec<(u32, Connected<F::Remote>)>), RoleError> {
        let RecordedCluster {
            password,
            origin,
            members,
        } = self.recorded_cluster(resources)?;
        let mut nodes = Vec::new();
        let mut connections = Vec::new();
        for machine in members {
            let id = node_in(resources, machine).expect("database machines have node ids");
            if Some(id) == except || super::operations_db::failed_over(resources, machine) {
                continue;
            }
            let connected = self.connect_to(resources, machine).await?;
            nodes.push(SlonyNode {
                id,
                node: self.pg_node(&connected.place)?,
            });
            connections.push((id, connected));
        }
        let cluster = self.slony_cluster(nodes, origin, password)?;
        Ok((cluster, connections))
    }

    /// The app's Slony-I cluster of these `nodes`, `origin` (a node id) among them.
    pub(super) fn slony_cluster(
        &self,
        nodes: Vec<SlonyNode>,
        origin: u32,
        password: SecretString,
    ) -> Result<SlonyCluster, RoleError> {
        let name = sql_name(&self.manifest.app.name);
        let origin_node =
            nodes
                .iter()
                .find(|n| n.id == origin)
                .cloned()
                .ok_or(RoleError::UnknownNode {
                    cluster: name.clone(),
                    node: origin,
                })?;
        let mut cluster = SlonyCluster::new(&name, &name, origin_node, password);
        cluster.nodes = nodes;
        Ok(cluster)
    }

    pub(super) async fn configure_database(
        &self,
        address: ResourceAddress,
        job: &ConfigJob,
        remote: &F::Remote,
        place: &MachinePlace,
        mut configured: Configured,
    ) -> Result<Configured, RoleError> {
        let t = &self.templates;
        let node = self.pg_node(place)?;
        let (clients, peers) = self.pg_access(job, place).await?;
        let name = sql_name(&self.manifest.app.name);
        match address {
            ResourceAddress::Config {
                role: Role::DbPrimary,
                ..
            } => {
                postgres::ensure_server(t, remote, &node, &clients, &peers).await?;
                let password = secret(job.prior.as_ref());
                self.redactor.add(password.expose_secret());
                let db = AppDatabase {
                    name: name.clone(),
                    user: name.clone(),
                    password: password.clone(),
                };
                postgres::ensure_app_database(t, remote, &node, &db).await?;
                if let Some(origin) = moved_origin(&job.resources) {
                    // A failover or switchover moved the origin away: this
                    // machine (a new one after a failover) is a subscriber.
                    self.join_as_subscriber(job, remote, node.clone(), origin)
                        .await?;
                }
                let applied = job
                    .prior
                    .as_ref()
                    .and_then(|p| p.attributes.get("schema"))
                    .cloned();
                if let Some(schema) = &self.db()?.schema {
                    let path = self.base_dir.join(schema);
                    let sql =
                        std::fs::read_to_string(&path).map_err(|source| RoleError::ReadFile {
                            what: "the schema",
                            path: path.clone(),
                            source,
                        })?;
                    let digest = crate::hash::sha256_hex(sql.as_bytes())[..16].to_string();
                    if applied.is_none() {
                        // Owned by the app's role, so the app can use and change it.
                        let script = format!("SET ROLE \"{name}\";\n{sql}\n");
                        postgres::run_secret_sql(
                            t,
                            remote,
                            &node,
                            &name,
                            &format!("postgres: schema {schema}"),
                            &script,
                        )
                        .await?;
                        configured.attributes.insert("schema".into(), digest);
                    } else if let Some(a) = applied {
                        configured.attributes.insert("schema".into(), a);
                    }
                }
                configured
                    .attributes
                    .insert("password".into(), password.expose_secret().to_string());
                configured.attributes.insert("user".into(), name.clone());
                configured.attributes.insert("database".into(), name);
            }
            ResourceAddress::SlonyCluster => {
                let password = secret(job.prior.as_ref());
                self.redactor.add(password.expose_secret());
                // The primary's node id (new after an online move) and the
                // origin as recorded (a switchover or a move changed it):
                // applying the cluster again keeps both.
                let id = node_in(
                    &job.resources,
                    ResourceAddress::instance(Role::DbPrimary, 0),
                )
                .unwrap_or(1);
                let origin = job
                    .prior
                    .as_ref()
                    .and_then(|p| p.attributes.get("origin"))
                    .cloned()
                    .unwrap_or_else(|| id.to_string());
                let cluster =
                    SlonyCluster::new(&name, &name, SlonyNode { id, node }, password.clone());
                slony::ensure_credentials(t, remote, &cluster, &cluster.nodes[0].node).await?;
                // Initialised once, on the first origin; after a failover the
                // primary's machine joined as a subscriber instead.
                if origin == id.to_string() {
                    slony::init(t, &cluster, remote).await?;
                }
                slony::ensure_slon(t, remote, &cluster, id).await?;
                configured
                    .attributes
                    .insert("password".into(), password.expose_secret().to_string());
                configured.attributes.insert("origin".into(), origin);
            }
            ResourceAddress::Config {
                role: Role::DbReplica,
                ..
            } => {
                postgres::ensure_server(t, remote, &node, &clients, &peers).await?;
                // The same database and role as on the primary, so the app reads here as itself.
                let primary_config = ResourceAddress::config(Role::DbPrimary, 0);
                let primary = applied(&job.resources, primary_config, address)?;
                let password = secret_attribute(primary, primary_config, "password")?;
                self.redactor.add(password.expose_secret());
                let db = AppDatabase {
                    name: name.clone(),
                    user: name.clone(),
                    password,
                };
                postgres::ensure_app_database(t, remote, &node, &db).await?;
                let id = node_in(&job.resources, address).expect("replicas have node ids");
                if moved_origin(&job.resources) == Some(id) {
                    // A switchover or failover made this replica the origin:
                    // there is nothing to subscribe to, only its slon to keep.
                    let (cluster, _) = self.cluster(&job.resources, None).await?;
                    slony::ensure_credentials(t, remote, &cluster, &node).await?;
                    slony::ensure_slon(t, remote, &cluster, id).await?;
                    configured.attributes.insert("node".into(), id.to_string());
                    return Ok(configured);
                }
                let (mut cluster, connections) = self.cluster(&job.resources, Some(id)).await?;
                let mut remotes: slony::Remotes<'_, F::Remote> = BTreeMap::new();
                for (nid, c) in &connections {
                    remotes.insert(*nid, &c.remote);
                }
                remotes.insert(id, remote);
                slony::add_subscriber(t, &mut cluster, SlonyNode { id, node }, &remotes).await?;
                configured.attributes.insert("node".into(), id.to_string());
            }
            other => {
                return Err(RoleError::WrongAddress {
                    address: other,
                    expected: "not a database configuration",
                });
            }
        }
        Ok(configured)
    }

    /// Subscribe the primary's machine (node 1) to the cluster whose origin
    /// is `origin`; done already, this only checks it is caught up.
    async fn join_as_subscriber(
        &self,
        job: &ConfigJob,
        remote: &F::Remote,
        node: PgNode,
        origin: u32,
    ) -> Result<(), RoleError> {
        let id = node_in(
            &job.resources,
            ResourceAddress::instance(Role::DbPrimary, 0),
        )
        .unwrap_or(1);
        let (mut cluster, connections) = self.cluster(&job.resources, Some(id)).await?;
        debug_assert_eq!(cluster.origin, origin);
        let mut remotes: slony::Remotes<'_, F::Remote> = BTreeMap::new();
        for (nid, c) in &connections {
            remotes.insert(*nid, &c.remote);
        }
        remotes.insert(id, remote);
        slony::add_subscriber(
            &self.templates,
            &mut cluster,
            SlonyNode { id, node },
            &remotes,
        )
        .await
    }

    pub(super) async fn unconfigure_database(
        &self,
        address: ResourceAddress,
        job: &ConfigJob,
        remote: &F::Remote,
        place: &MachinePlace,
    ) -> Result<(), RoleError> {
        let t = &self.templates;
        let node = self.pg_node(place)?;
        match address {
            ResourceAddress::Config {
                role: Role::DbReplica,
                ..
            } => {
                let id = node_in(&job.resources, address).expect("replicas have node ids");
                // The cluster still counts this node: drop it before its machine goes.
                let (mut cluster, connections) = self.cluster(&job.resources, None).await?;
                let remotes: slony::Remotes<'_, F::Remote> =
                    connections.iter().map(|(n, c)| (*n, &c.remote)).collect();
                if cluster.origin == id {
                    // A switchover made this replica the origin: hand the set
                    // back to the primary first, so no data leaves with it
                    // (and `destroy` after a switchover can drop it).
                    let primary = node_in(
                        &job.resources,
                        ResourceAddress::instance(Role::DbPrimary, 0),
                    )
                    .expect("the primary has a node id");
                    slony::move_set(t, &mut cluster, primary, &remotes).await?;
                }
                slony::resubscribe_from_origin(t, &cluster, id, &remotes).await?;
                slony::drop_subscriber(t, &mut cluster, id, &remotes).await?;
                postgres::stop_server(t, remote, &node).await
            }
            ResourceAddress::SlonyCluster => {
                // Only this node's slon stops: the cluster's other members
                // (and the origin state recorded before they left) are not needed.
                let name = sql_name(&self.manifest.app.name);
                let record = job.prior.as_ref().ok_or(RoleError::NotInState {
                    address: ResourceAddress::SlonyCluster,
                    needed_by: None,
                })?;
                let password = secret_attribute(record, ResourceAddress::SlonyCluster, "password")?;
                self.redactor.add(password.expose_secret());
                let id = node_in(
                    &job.resources,
                    ResourceAddress::instance(Role::DbPrimary, 0),
                )
                .expect("the primary has a node id");
                let cluster = SlonyCluster::new(
                    &name,
                    &name,
                    SlonyNode {
                        id,
                        node: node.clone(),
                    },
                    password,
                );
                slony::stop_slon(t, remote, &cluster, &node).await
            }
            ResourceAddress::Config {
                role: Role::DbPrimary,
                ..
            } => postgres::stop_server(t, remote, &node).await,
            other => Err(RoleError::WrongAddress {
                address: other,
                expected: "not a database configuration",
            }),
        }
    }
}
