//! Day-two operations on a running app: status, schema migrations through
//! Slony-I's EXECUTE SCRIPT, and switchover with MOVE SET.

use std::collections::BTreeMap;

use super::configure::{Fleet, RoleConfigurator};
use super::configure_db::node_id;
use super::{haproxy, memcached, slony};
use crate::graph::{ResourceAddress, Role};
use crate::state::ResourceState;
use crate::status::{AppStatus, CacheNode, LbServer, Machine, ReplicaLag};

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn job(resources: BTreeMap<ResourceAddress, ResourceState>) -> crate::apply::ConfigJob {
    crate::apply::ConfigJob {
        address: ResourceAddress::SlonyCluster,
        spec: crate::graph::ConfigSpec {
            inputs: BTreeMap::new(),
        },
        prior: None,
        resources,
    }
}

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn status_report(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
    ) -> Result<AppStatus, String> {
        let mut status = AppStatus::default();
        for (address, record) in &resources {
            let ResourceAddress::Instance { .. } = address else {
                continue;
            };
            status.machines.push(Machine {
                address: address.to_string(),
                id: record.id.clone(),
                private_ip: record.attributes.get("private_ip").cloned(),
            });
        }
        let lb = ResourceAddress::instance(Role::Lb, 0);
        if resources.contains_key(&ResourceAddress::config(Role::Lb, 0))
            && let Some(record) = resources.get(&lb)
        {
            let c = self.fleet.connect(lb, record).await?;
            for s in haproxy::show_stat(&c.remote, &c.place.root)
                .await
                .map_err(text)?
            {
                if s.name == "FRONTEND" || s.name == "BACKEND" {
                    continue;
                }
                status.load_balancer.push(LbServer {
                    name: s.name,
                    status: s.status,
                    sessions: s.scur,
                    requests: s.req_tot,
                    response_ms: s.rtime,
                });
            }
        }
        if let Some(cache) = &self.manifest.cache {
            for i in 0..cache.nodes {
                let machine = ResourceAddress::instance(Role::Cache, i);
                let (Some(record), true) = (
                    resources.get(&machine),
                    resources.contains_key(&ResourceAddress::config(Role::Cache, i)),
                ) else {
                    continue;
                };
                let c = self.fleet.connect(machine, record).await?;
                let stats = memcached::memcached_stats(&c.remote, &c.place.addr, cache.port)
                    .await
                    .map_err(text)?;
                let get = |k: &str| stats.get(k).and_then(|v| v.parse().ok());
                status.caches.push(CacheNode {
                    address: machine.to_string(),
                    items: get("curr_items"),
                    hits: get("get_hits"),
                    misses: get("get_misses"),
                });
            }
        }
        if resources.contains_key(&ResourceAddress::SlonyCluster) {
            let j = job(resources.clone());
            let (cluster, connections) = self.cluster(&j, None).await?;
            let origin = connections
                .iter()
                .find(|(id, _)| *id == cluster.origin)
                .ok_or("the origin is not connected")?;
            let node_name = |n: u32| match n {
                1 => "db.primary".to_string(),
                n => format!("db.replica[{}]", n - 2),
            };
            for s in slony::status(&cluster, &origin.1.remote)
                .await
                .map_err(text)?
            {
                status.replication.push(ReplicaLag {
                    origin: node_name(cluster.origin),
                    node: node_name(s.node),
                    lag_events: s.lag_events,
                    lag_seconds: s.lag_time.as_secs_f64(),
                });
            }
        }
        Ok(status)
    }

    pub(super) async fn migrate_all(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        sql: String,
    ) -> Result<(), String> {
        let j = job(resources);
        if j.resources.contains_key(&ResourceAddress::SlonyCluster) {
            let (cluster, connections) = self.cluster(&j, None).await?;
            let remotes: slony::Remotes<'_, F::Remote> =
                connections.iter().map(|(n, c)| (*n, &c.remote)).collect();
            return slony::execute_script(&cluster, &remotes, &sql)
                .await
                .map_err(text);
        }
        // No replicas: the primary alone, as the app's role.
        let primary = ResourceAddress::instance(Role::DbPrimary, 0);
        let record = j
            .resources
            .get(&primary)
            .ok_or("db.primary is not in state")?;
        let c = self.fleet.connect(primary, record).await?;
        let node = self.pg_node(&c.place)?;
        let name = super::configure_db::sql_name(&self.manifest.app.name);
        let script = format!("SET ROLE \"{name}\";\n{sql}\n");
        super::postgres::run_secret_sql(&c.remote, &node, &name, "postgres: migrate", &script)
            .await
            .map_err(text)
    }

    pub(super) async fn switchover_to(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        to: ResourceAddress,
    ) -> Result<BTreeMap<String, String>, String> {
        let id = node_id(to).ok_or_else(|| format!("{to} is not a database machine"))?;
        let j = job(resources);
        let (mut cluster, connections) = self.cluster(&j, None).await?;
        if cluster.origin == id {
            return Err(format!("{to} is already the origin"));
        }
        let remotes: slony::Remotes<'_, F::Remote> =
            connections.iter().map(|(n, c)| (*n, &c.remote)).collect();
        slony::move_set(&mut cluster, id, &remotes)
            .await
            .map_err(text)?;
        let mut attributes = j.resources[&ResourceAddress::SlonyCluster]
            .attributes
            .clone();
        attributes.insert("origin".into(), id.to_string());
        Ok(attributes)
    }
}
