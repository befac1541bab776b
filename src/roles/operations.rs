//! Day-two operations on a running app ([`Operations`] for the
//! [`RoleConfigurator`]): status, schema migrations through Slony-I's EXECUTE
//! SCRIPT, the load balancer's counters, and switchover with MOVE SET.
//! None writes state: what they change comes back as [`Changed`] for
//! [`crate::ops::Locked`] to record.

use std::collections::BTreeMap;

use super::RoleError;
use super::configure::{Fleet, RoleConfigurator, cpu_jiffies};
use super::configure_db::node_in;
use super::operations_db::web_releases;
use super::{haproxy, memcached, slony};
use crate::graph::{ResourceAddress, Role};
use crate::ops::backup::{BackupInfo, RepoAccess, RestoreRequest};
use crate::ops::{
    Changed, FailoverOutcome, MigrationReport, OperationError, Operations, Resources,
    ServerCounters,
};
use crate::remote::Remote;
use crate::status::{AppStatus, CacheNode, LbServer, Machine, OriginHealth, ReplicaLag};

/// The name a database node has in state, from its Slony-I node id (which
/// state records: a machine that joined through an online move has a new one).
fn node_name(resources: &Resources, id: u32) -> String {
    resources
        .keys()
        .find(|a| {
            matches!(a, ResourceAddress::Instance { .. }) && node_in(resources, **a) == Some(id)
        })
        .map_or_else(|| format!("node {id}"), |a| a.to_string())
}

impl<F: Fleet> Operations for RoleConfigurator<F> {
    async fn status(&self, resources: &Resources) -> Result<AppStatus, OperationError> {
        self.status_report(resources)
            .await
            .map_err(|e| OperationError::new("status", e))
    }

    async fn migrate(
        &self,
        resources: &Resources,
        sql: &str,
        dry_run: bool,
    ) -> Result<MigrationReport, OperationError> {
        self.migrate_all(resources, sql, dry_run)
            .await
            .map_err(|e| OperationError::new("migrate", e))
    }

    async fn web_counters(
        &self,
        resources: &Resources,
        cpu: bool,
    ) -> Result<Vec<ServerCounters>, OperationError> {
        self.counters(resources, cpu)
            .await
            .map_err(|e| OperationError::new("web counters", e))
    }

    async fn replica_load(
        &self,
        resources: &Resources,
        connections: bool,
    ) -> Result<Vec<crate::ops::ReplicaReading>, OperationError> {
        self.replica_readings(resources, connections)
            .await
            .map_err(|e| OperationError::new("replica load", e))
    }

    async fn switchover(
        &self,
        resources: &Resources,
        to: ResourceAddress,
    ) -> Result<Changed, OperationError> {
        self.switchover_to(resources, to)
            .await
            .map_err(|e| OperationError::new("switchover", e))
    }

    async fn failover(
        &self,
        resources: &Resources,
    ) -> Result<(Changed, FailoverOutcome), OperationError> {
        self.failover_dead_origin(resources)
            .await
            .map_err(|e| OperationError::new("failover", e))
    }

    async fn backup(
        &self,
        resources: &Resources,
        access: &RepoAccess,
        why: &str,
    ) -> Result<BackupInfo, OperationError> {
        self.take_backup(resources, access, why)
            .await
            .map_err(|e| OperationError::new("backup", e))
    }

    async fn backups(
        &self,
        resources: &Resources,
        access: &RepoAccess,
    ) -> Result<Vec<BackupInfo>, OperationError> {
        self.list_backups(resources, access)
            .await
            .map_err(|e| OperationError::new("backups", e))
    }

    async fn restore(
        &self,
        resources: &Resources,
        access: &RepoAccess,
        request: &RestoreRequest,
    ) -> Result<BackupInfo, OperationError> {
        self.restore_backup(resources, access, request)
            .await
            .map_err(|e| OperationError::new("restore", e))
    }

    async fn logs(
        &self,
        resources: &Resources,
        requests: &[super::console::LogRequest],
    ) -> Result<Vec<Vec<super::console::LogFile>>, OperationError> {
        self.redact_app_secrets(resources);
        // Service logs may quote any password state holds (Slony-I's too).
        for record in resources.values() {
            for (key, value) in &record.attributes {
                if key.contains("password") {
                    self.redactor.add(value);
                }
            }
        }
        let mut out = Vec::new();
        for request in requests {
            out.push(
                self.read_logs(resources, request)
                    .await
                    .map_err(|e| OperationError::new("logs", e))?,
            );
        }
        Ok(out)
    }

    async fn console(
        &self,
        resources: &Resources,
        machine: ResourceAddress,
        what: &super::console::ConsoleWhat,
        tty: bool,
    ) -> Result<crate::remote::console::Console, OperationError> {
        self.redact_app_secrets(resources);
        self.open_console(resources, machine, what, tty)
            .await
            .map_err(|e| OperationError::new(what.operation(), e))
    }
}

impl<F: Fleet> RoleConfigurator<F> {
    /// The app's secrets (the database password, config vars) into the
    /// transport's redactor, before a command or a log is read from a web server.
    fn redact_app_secrets(&self, resources: &Resources) {
        use secrecy::ExposeSecret;
        if let Some(password) = resources
            .get(&ResourceAddress::config(Role::DbPrimary, 0))
            .and_then(|r| r.attributes.get("password"))
        {
            self.redactor.add(password);
        }
        for value in self.config_vars.values() {
            if value.expose_secret().len() >= 4 {
                self.redactor.add(value.expose_secret());
            }
        }
    }

    async fn status_report(&self, resources: &Resources) -> Result<AppStatus, RoleError> {
        let t = &self.templates;
        let mut status = AppStatus::default();
        for (address, record) in resources {
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
            && resources.contains_key(&lb)
        {
            let c = self.connect_to(resources, lb).await?;
            for s in haproxy::show_stat(t, &c.remote, &c.place.root).await? {
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
                if !(resources.contains_key(&machine)
                    && resources.contains_key(&ResourceAddress::config(Role::Cache, i)))
                {
                    continue;
                }
                let c = self.connect_to(resources, machine).await?;
                let stats =
                    memcached::memcached_stats(t, &c.remote, &c.place.addr, cache.port).await?;
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
            let reach = self.reachable_cluster(resources).await?;
            let cluster = &reach.cluster;
            let down = self.origin_down(&reach).await?;
            status.origin = Some(OriginHealth {
                node: node_name(resources, cluster.origin),
                answers: down.is_none(),
                problem: down.clone(),
                command: None,
            });
            let origin = match (down, reach.origin_remote()) {
                (None, Some(remote)) => remote,
                _ => return Ok(status),
            };
            for s in slony::status(t, cluster, origin).await? {
                status.replication.push(ReplicaLag {
                    origin: node_name(resources, cluster.origin),
                    node: node_name(resources, s.node),
                    lag_events: s.lag_events,
                    lag_seconds: s.lag_time.as_secs_f64(),
                });
            }
        }
        Ok(status)
    }

    async fn counters(
        &self,
        resources: &Resources,
        cpu: bool,
    ) -> Result<Vec<ServerCounters>, RoleError> {
        let c = self
            .connect_to(resources, ResourceAddress::instance(Role::Lb, 0))
            .await?;
        let stats = haproxy::show_stat(&self.templates, &c.remote, &c.place.root).await?;
        let mut out = Vec::new();
        for s in stats.into_iter().filter(|s| s.name.starts_with("web")) {
            // CPU is read from the machine itself: its /proc/stat totals.
            let cpu = match (cpu, s.name[3..].parse::<u32>()) {
                (true, Ok(index)) => {
                    let machine = ResourceAddress::instance(Role::Web, index);
                    match resources.contains_key(&machine) {
                        true => {
                            let m = self.connect_to(resources, machine).await?;
                            let stat = m
                                .remote
                                .run("read /proc/stat", "head -n 1 /proc/stat\n")
                                .await?;
                            cpu_jiffies(&stat.stdout)
                        }
                        false => None,
                    }
                }
                _ => None,
            };
            out.push(ServerCounters {
                up: s.is_up(),
                name: s.name,
                requests: s.req_tot,
                response_ms: s.rtime,
                queue_ms: s.qtime,
                sessions: s.scur,
                queued: s.qcur,
                cpu,
            });
        }
        Ok(out)
    }

    async fn switchover_to(
        &self,
        resources: &Resources,
        to: ResourceAddress,
    ) -> Result<Changed, RoleError> {
        let id = node_in(resources, to).ok_or(RoleError::WrongAddress {
            address: to,
            expected: "not a database machine (db.primary or db.replica[i])",
        })?;
        let (mut cluster, connections) = self.cluster(resources, None).await?;
        if cluster.origin == id {
            return Err(RoleError::AlreadyOrigin { address: to });
        }
        let remotes: slony::Remotes<'_, F::Remote> =
            connections.iter().map(|(n, c)| (*n, &c.remote)).collect();
        slony::move_set(&self.templates, &mut cluster, id, &remotes).await?;
        // The app's DATABASE_URL names the origin: every web server is released again.
        let web = web_releases(resources);
        Ok(Changed {
            attributes: BTreeMap::from([(
                ResourceAddress::SlonyCluster,
                BTreeMap::from([("origin".to_string(), id.to_string())]),
            )]),
            reconfigure: web,
            reason: format!("{to} is the origin now: DATABASE_URL names it"),
        })
    }
}
