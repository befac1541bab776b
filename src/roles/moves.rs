//! Online moves of database machines (issue 8): the database is never
//! destroyed first. The incoming machine gets Postgres and the app's
//! database, joins the Slony-I cluster as a new node (every existing node's
//! pg_hba admits it first), catches up, and — for the primary — the set is
//! moved to it (LOCK SET + MOVE SET: the one short window where writes
//! wait). Later, once the app servers point at it, the outgoing node is
//! dropped from the cluster and its Postgres stopped; the walker terminates
//! its machine. Every part is skipped when already done, so a move an
//! interrupted apply left halfway resumes.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;

use super::RoleError;
use super::configure::{Fleet, RoleConfigurator, applied, machine_addr, secret_attribute};
use super::configure_db::{ip, node_in, sql_name};
use super::fleet::Connected;
use super::postgres::{self, AppDatabase, PgNode};
use super::slony::{self, SlonyNode};
use crate::apply::{ConfigJob, MoveJob, MovedIn};
use crate::graph::{ResourceAddress, ResourceSpec, Role};

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn move_in_db(&self, job: &MoveJob) -> Result<MovedIn, RoleError> {
        if let Some(restore) = &job.moving.restore {
            return self.move_in_restored(job, restore).await;
        }
        let t = &self.templates;
        let incoming = &job.moving;
        let is_primary = job.address == ResourceAddress::instance(Role::DbPrimary, 0);
        let Incoming {
            new,
            node,
            old_node,
        } = self
            .incoming_postgres(job, "not a database machine (db.primary or db.replica[i])")
            .await?;

        let (mut cluster, connections) = self.cluster(&job.resources, None).await?;
        // Every node admits the new one before it is stored in the cluster.
        let new_ip = ip(&new.place.addr)?;
        for (id, c) in &connections {
            self.admit(job, *id, c, new_ip).await?;
        }
        let mut remotes: slony::Remotes<'_, F::Remote> =
            connections.iter().map(|(n, c)| (*n, &c.remote)).collect();
        remotes.insert(incoming.node, &new.remote);

        let seen = slony::set_origin(t, &cluster, &new.remote, &node).await?;
        let origin = if is_primary && seen == Some(incoming.node) {
            // A resumed move: the switchover happened, its state write did not.
            incoming.node
        } else {
            let joining = SlonyNode {
                id: incoming.node,
                node,
            };
            slony::add_subscriber(t, &mut cluster, joining, &remotes).await?;
            if is_primary {
                slony::move_set(t, &mut cluster, incoming.node, &remotes).await?;
            }
            cluster.origin
        };
        Ok(MovedIn {
            attributes: BTreeMap::from([("node".to_string(), incoming.node.to_string())]),
            machine_attributes: new.learned.clone(),
            origin: is_primary.then_some(origin),
            old_node,
        })
    }

    /// Let `connected` (a node of the cluster) admit `peer` in its pg_hba:
    /// its server ensured again with the peers state names and the new one.
    pub(super) async fn admit(
        &self,
        job: &MoveJob,
        id: u32,
        connected: &super::configure::Connected<F::Remote>,
        peer: std::net::IpAddr,
    ) -> Result<(), RoleError> {
        let machine = job
            .resources
            .keys()
            .find(|a| {
                matches!(a, ResourceAddress::Instance { .. })
                    && node_in(&job.resources, **a) == Some(id)
            })
            .copied();
        let Some(ResourceAddress::Instance { role, index }) = machine else {
            return Ok(());
        };
        let config = ResourceAddress::config(role, index);
        let Some(ResourceSpec::Config(spec)) = job.resources.get(&config).map(|r| &r.spec) else {
            return Ok(());
        };
        let view = ConfigJob {
            address: config,
            spec: spec.clone(),
            prior: job.resources.get(&config).cloned(),
            resources: job.resources.clone(),
        };
        let (clients, mut peers) = self.pg_access(&view, &connected.place).await?;
        peers.push(peer);
        let node = self.pg_node(&connected.place)?;
        postgres::ensure_server(&self.templates, &connected.remote, &node, &clients, &peers)
            .await?;
        Ok(())
    }

    pub(super) async fn move_out_db(&self, job: &MoveJob) -> Result<(), RoleError> {
        let t = &self.templates;
        let outgoing = &job.moving;
        let old = self.fleet.connect(job.address, &outgoing.machine).await?;
        let old_pg = self.pg_node(&old.place)?;
        let (mut cluster, connections) = self.cluster(&job.resources, None).await?;
        // The other halves of moves in progress are nodes too (an old
        // replica may still receive the set through the old primary).
        let mut others = Vec::new();
        for (address, m) in &job.moves {
            if m.node == outgoing.node || cluster.nodes.iter().any(|n| n.id == m.node) {
                continue;
            }
            let c = self.fleet.connect(*address, &m.machine).await?;
            cluster.nodes.push(SlonyNode {
                id: m.node,
                node: self.pg_node(&c.place)?,
            });
            others.push((m.node, c));
        }
        if !cluster.nodes.iter().any(|n| n.id == outgoing.node) {
            cluster.nodes.push(SlonyNode {
                id: outgoing.node,
                node: old_pg.clone(),
            });
        }
        let mut remotes: slony::Remotes<'_, F::Remote> = connections
            .iter()
            .chain(&others)
            .map(|(n, c)| (*n, &c.remote))
            .collect();
        remotes.insert(outgoing.node, &old.remote);
        // Nobody may receive the set through the node that leaves.
        slony::resubscribe_from_origin(t, &cluster, outgoing.node, &remotes).await?;
        // Refuses when the outgoing node is still the origin: nothing leaves with the data.
        slony::drop_subscriber(t, &mut cluster, outgoing.node, &remotes).await?;
        postgres::stop_server(t, &old.remote, &old_pg).await
    }
}

/// [`RoleConfigurator::incoming_postgres`]'s result.
pub(super) struct Incoming<R> {
    pub new: Connected<R>,
    pub node: PgNode,
    /// The node id the outgoing machine has in the cluster.
    pub old_node: u32,
}

impl<F: Fleet> RoleConfigurator<F> {
    /// The incoming machine of a move (or a restore) with Postgres and the
    /// app's database: its pg_hba admits the app's clients and peers as the
    /// cluster will be with it at the address, plus the outgoing machine,
    /// which stays a peer until it leaves.
    pub(super) async fn incoming_postgres(
        &self,
        job: &MoveJob,
        not_a_database: &'static str,
    ) -> Result<Incoming<F::Remote>, RoleError> {
        let t = &self.templates;
        let old_node = node_in(&job.resources, job.address).ok_or(RoleError::WrongAddress {
            address: job.address,
            expected: not_a_database,
        })?;
        let new = self.fleet.connect(job.address, &job.moving.machine).await?;
        let node = self.pg_node(&new.place)?;
        let old_addr = ip(&machine_addr(&job.resources, job.address)?)?;

        // What the cluster will look like: the new machine at the address.
        let mut after = job.resources.clone();
        let mut machine = job.moving.machine.clone();
        machine.attributes.extend(new.learned.clone());
        after.insert(job.address, machine);
        let view = ConfigJob {
            address: job.config,
            spec: job.spec.clone(),
            prior: job.resources.get(&job.config).cloned(),
            resources: after,
        };
        let (clients, mut peers) = self.pg_access(&view, &new.place).await?;
        peers.push(old_addr);
        postgres::ensure_server(t, &new.remote, &node, &clients, &peers).await?;
        let primary_config = ResourceAddress::config(Role::DbPrimary, 0);
        let primary = applied(&job.resources, primary_config, job.config)?;
        let password = secret_attribute(primary, primary_config, "password")?;
        self.redactor.add(password.expose_secret());
        let name = sql_name(&self.manifest.app.name);
        let db = AppDatabase {
            name: name.clone(),
            user: name,
            password,
        };
        postgres::ensure_app_database(t, &new.remote, &node, &db).await?;
        Ok(Incoming {
            new,
            node,
            old_node,
        })
    }
}
