//! `db restore` into a new primary (issue 8): the restoring variant of an
//! online move's move-in. The incoming machine gets Postgres, then the
//! backup (pgBackRest, from the old machine's stanza) with the restored
//! Slony-I schema removed; it becomes the origin of a fresh cluster (node
//! id of the move), and every replica leaves the old cluster and subscribes
//! to it (Slony-I truncates and copies). Until the walker releases the app
//! servers against it, the app keeps writing to the old primary, which the
//! restore never touches but for its slon (stopped, so it no longer feeds
//! the replicas). The move-out that follows drops the old node's schema,
//! stops its Postgres, and the walker terminates it.
//!
//! Resumable: a new machine that already is the origin of the new cluster
//! is not restored again; a replica whose cluster schema already knows the
//! new origin is not torn down again.

use std::collections::BTreeMap;

use super::RoleError;
use super::moves::Incoming;

use super::configure::{Fleet, RoleConfigurator};
use super::configure_db::ip;
use super::postgres::query;
use super::slony::{self, SlonyCluster, SlonyNode};
use crate::apply::{MoveJob, MovedIn};
use crate::graph::{ResourceAddress, Role};
use crate::state::MoveRestore;

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn move_in_restored(
        &self,
        job: &MoveJob,
        restore: &MoveRestore,
    ) -> Result<MovedIn, RoleError> {
        let t = &self.templates;
        let incoming = &job.moving;
        if job.address != ResourceAddress::instance(Role::DbPrimary, 0) {
            return Err(RoleError::WrongAddress {
                address: job.address,
                expected: "only db.primary is restored into a new machine",
            });
        }
        // The app's database too, so the check below can ask it (a fresh
        // server has none); the restore replaces it.
        let Incoming {
            new,
            node,
            old_node,
        } = self
            .incoming_postgres(job, "not a database machine")
            .await?;

        // The cluster as state knows it: the old origin and the replicas.
        let (old_cluster, connections) = self.cluster(&job.resources, None).await?;
        let mut cluster = SlonyCluster::new(
            &old_cluster.name,
            &old_cluster.database,
            SlonyNode {
                id: incoming.node,
                node: node.clone(),
            },
            old_cluster.password.clone(),
        );
        let done = slony::set_origin(t, &cluster, &new.remote, &node).await?;
        if done != Some(incoming.node) {
            let restoring = |e| RoleError::Restore(Box::new(e));
            if restore.to_time.is_some() {
                self.archive_now(&job.resources, &restore.stanza)
                    .await
                    .map_err(restoring)?;
            }
            self.restore_onto(&new.remote, &node, restore)
                .await
                .map_err(restoring)?;
            // The restored database still holds the old cluster's schema
            // and its triggers: they go with it.
            query(
                t,
                &new.remote,
                &node,
                &cluster.database,
                &format!("drop schema if exists \"_{}\" cascade", cluster.name),
            )
            .await?;
            slony::init(t, &cluster, &new.remote).await?;
        } else {
            slony::ensure_slon(t, &new.remote, &cluster, incoming.node).await?;
        }

        // The old origin's slon stops feeding the replicas; its Postgres
        // keeps serving the app until the app servers are released.
        if let Some((_, c)) = connections.iter().find(|(id, _)| *id == old_cluster.origin) {
            let old_pg = old_cluster.node(old_cluster.origin)?;
            slony::stop_slon(t, &c.remote, &old_cluster, &old_pg.node).await?;
        }
        let mut remotes: slony::Remotes<'_, F::Remote> = BTreeMap::new();
        remotes.insert(incoming.node, &new.remote);
        let new_ip = ip(&new.place.addr)?;
        let mut replicas = Vec::new();
        for (id, c) in &connections {
            if *id == old_cluster.origin {
                continue;
            }
            let replica = old_cluster.node(*id)?.clone();
            self.admit(job, *id, c, new_ip).await?;
            let joined = slony::set_origin(t, &cluster, &c.remote, &replica.node).await?;
            let knows_new = match joined {
                None => false,
                Some(_) => {
                    let rows = query(
                        t,
                        &c.remote,
                        &replica.node,
                        &cluster.database,
                        &format!(
                            "select count(*) from \"_{}\".sl_node where no_id = {}",
                            cluster.name, incoming.node
                        ),
                    )
                    .await?;
                    rows.first().and_then(|r| r.first()).map(String::as_str) != Some("0")
                }
            };
            if !knows_new {
                // Out of the old cluster: its slon stopped, the schema (and
                // the triggers that deny writes) dropped; the copy from the
                // new origin truncates its tables.
                slony::stop_slon(t, &c.remote, &old_cluster, &replica.node).await?;
                query(
                    t,
                    &c.remote,
                    &replica.node,
                    &cluster.database,
                    &format!("drop schema if exists \"_{}\" cascade", cluster.name),
                )
                .await?;
            }
            remotes.insert(*id, &c.remote);
            replicas.push(replica);
        }
        for replica in replicas {
            slony::add_subscriber(t, &mut cluster, replica, &remotes).await?;
        }
        Ok(MovedIn {
            attributes: BTreeMap::from([("node".to_string(), incoming.node.to_string())]),
            machine_attributes: new.learned.clone(),
            origin: Some(incoming.node),
            old_node,
        })
    }
}
