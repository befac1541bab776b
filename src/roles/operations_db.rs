//! The database's day-two operations for the [`RoleConfigurator`]: migrations
//! that replicate the tables they create, failover of a dead origin, and the
//! origin's health for `status`. None writes state: a failover's effects come
//! back as [`Changed`] for [`crate::ops::Locked`] to record.

use std::collections::BTreeMap;

use super::RoleError;
use super::configure::{Connected, Fleet, RoleConfigurator, machine_addr};
use super::configure_db::{RecordedCluster, node_in, sql_name};
use super::slony::{self, SlonyCluster, SlonyNode};
use crate::graph::{ResourceAddress, Role};
use crate::ops::{
    Changed, FAILED_OVER, FailoverOutcome, MigrationReport, MigrationStep, Resources,
};

/// The machine of a Slony-I node id, as state records it (a machine that
/// joined through an online move has a new id; otherwise 1 is the primary
/// and i + 2 is `db.replica[i]`).
pub(super) fn node_machine(resources: &Resources, id: u32) -> ResourceAddress {
    resources
        .keys()
        .copied()
        .find(|a| {
            matches!(a, ResourceAddress::Instance { .. }) && node_in(resources, *a) == Some(id)
        })
        .unwrap_or_else(|| match id {
            1 => ResourceAddress::instance(Role::DbPrimary, 0),
            n => ResourceAddress::instance(Role::DbReplica, n.saturating_sub(2)),
        })
}

/// The name a database node has in state.
pub(super) fn node_name(resources: &Resources, id: u32) -> String {
    node_machine(resources, id).to_string()
}

/// The cluster, with a connection to every node that can be reached; the
/// origin's machine may be unreachable (its node is then built from state).
pub(super) struct ReachableCluster<R> {
    pub cluster: SlonyCluster,
    pub connections: Vec<(u32, Connected<R>)>,
    /// Why the origin's machine could not be reached, if it could not.
    pub origin_unreachable: Option<String>,
}

impl<R> ReachableCluster<R> {
    pub fn remotes(&self) -> slony::Remotes<'_, R> {
        self.connections
            .iter()
            .map(|(n, c)| (*n, &c.remote))
            .collect()
    }

    pub fn origin_remote(&self) -> Option<&R> {
        self.connections
            .iter()
            .find(|(n, _)| *n == self.cluster.origin)
            .map(|(_, c)| &c.remote)
    }
}

/// Every web release state holds: what is released again when the origin
/// moves (the app's `DATABASE_URL` names it).
pub(super) fn web_releases(resources: &Resources) -> Vec<ResourceAddress> {
    resources
        .keys()
        .copied()
        .filter(|a| {
            matches!(
                a,
                ResourceAddress::Config {
                    role: Role::Web,
                    ..
                }
            )
        })
        .collect()
}

/// `machine` was dropped from the cluster by a failover (until the next apply replaces it).
pub(super) fn failed_over(resources: &Resources, machine: ResourceAddress) -> bool {
    resources
        .get(&machine)
        .is_some_and(|r| r.attributes.contains_key(FAILED_OVER))
}

impl<F: Fleet> RoleConfigurator<F> {
    /// Like `cluster`, but an origin whose machine cannot be reached is no error.
    pub(super) async fn reachable_cluster(
        &self,
        resources: &Resources,
    ) -> Result<ReachableCluster<F::Remote>, RoleError> {
        let RecordedCluster {
            password,
            origin,
            mut members,
        } = self.recorded_cluster(resources)?;
        members.retain(|m| !failed_over(resources, *m));
        let mut nodes = Vec::new();
        let mut connections = Vec::new();
        let mut origin_unreachable = None;
        for machine in members {
            let id = node_in(resources, machine).expect("database machines have node ids");
            match self.connect_to(resources, machine).await {
                Ok(c) => {
                    nodes.push(SlonyNode {
                        id,
                        node: self.pg_node(&c.place)?,
                    });
                    connections.push((id, c));
                }
                Err(e) if id == origin => {
                    origin_unreachable = Some(e.to_string());
                    let addr = machine_addr(resources, machine)?;
                    let place = super::fleet::MachinePlace {
                        root: String::new(),
                        addr,
                    };
                    nodes.push(SlonyNode {
                        id,
                        node: self.pg_node(&place)?,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let cluster = self.slony_cluster(nodes, origin, password)?;
        Ok(ReachableCluster {
            cluster,
            connections,
            origin_unreachable,
        })
    }

    /// Is the origin down? `Ok(None)` when it answers (to appgrid or to any
    /// other node), `Ok(Some(why))` when nobody reaches it.
    pub(super) async fn origin_down(
        &self,
        reach: &ReachableCluster<F::Remote>,
    ) -> Result<Option<String>, RoleError> {
        let remotes = reach.remotes();
        let answers = slony::origin_answers(
            &self.templates,
            &reach.cluster,
            reach.origin_remote(),
            &remotes,
        )
        .await?;
        Ok(match answers {
            Some(_) => None,
            None => Some(
                reach
                    .origin_unreachable
                    .clone()
                    .unwrap_or_else(|| "its Postgres does not answer".to_string()),
            ),
        })
    }

    pub(super) async fn migrate_all(
        &self,
        resources: &Resources,
        sql: &str,
        dry_run: bool,
    ) -> Result<MigrationReport, RoleError> {
        let t = &self.templates;
        let owner = sql_name(&self.manifest.app.name);
        if resources.contains_key(&ResourceAddress::SlonyCluster) {
            let (cluster, connections) = self.cluster(resources, None).await?;
            let remotes: slony::Remotes<'_, F::Remote> =
                connections.iter().map(|(n, c)| (*n, &c.remote)).collect();
            let plan = slony::plan_migration(t, &cluster, &remotes, sql, &owner).await?;
            if !dry_run {
                slony::migrate(t, &cluster, &remotes, &plan).await?;
            }
            return Ok(MigrationReport {
                dry_run,
                new_tables: plan.tables.iter().map(|r| r.name.clone()).collect(),
                new_sequences: plan.sequences.iter().map(|r| r.name.clone()).collect(),
                steps: plan
                    .steps
                    .into_iter()
                    .map(|s| MigrationStep {
                        on: node_name(resources, s.on),
                        reaches: s
                            .reaches
                            .into_iter()
                            .map(|r| node_name(resources, r))
                            .collect(),
                        what: s.what,
                        script: s.script,
                    })
                    .collect(),
            });
        }
        // No replicas: the primary alone, as the app's role.
        let script = format!("SET ROLE \"{owner}\";\n{sql}\n");
        let report = MigrationReport {
            dry_run,
            steps: vec![MigrationStep {
                on: node_name(resources, 1),
                reaches: Vec::new(),
                what: format!("the SQL as role {owner}"),
                script: script.clone(),
            }],
            ..MigrationReport::default()
        };
        if dry_run {
            return Ok(report);
        }
        let c = self
            .connect_to(resources, ResourceAddress::instance(Role::DbPrimary, 0))
            .await?;
        let node = self.pg_node(&c.place)?;
        super::postgres::run_secret_sql(t, &c.remote, &node, &owner, "postgres: migrate", &script)
            .await?;
        Ok(report)
    }

    pub(super) async fn failover_dead_origin(
        &self,
        resources: &Resources,
    ) -> Result<(Changed, FailoverOutcome), RoleError> {
        let t = &self.templates;
        if !resources.contains_key(&ResourceAddress::SlonyCluster) {
            return Err(slony::FailoverError::NoReplicas.into());
        }
        let reach = self.reachable_cluster(resources).await?;
        let origin = reach.cluster.origin;
        let survivors: slony::Remotes<'_, F::Remote> = reach
            .connections
            .iter()
            .filter(|(n, _)| *n != origin)
            .map(|(n, c)| (*n, &c.remote))
            .collect();
        if let Some(from) =
            slony::origin_answers(t, &reach.cluster, reach.origin_remote(), &survivors).await?
        {
            let node = reach.cluster.node(origin)?;
            return Err(slony::FailoverError::OriginAnswers {
                node: origin,
                endpoint: format!("{}, {}", node_name(resources, origin), node.node.endpoint()),
                from,
            }
            .into());
        }
        let mut cluster = reach.cluster.clone();
        let (to, _) = slony::pick_successor(t, &cluster, &survivors).await?;
        let report =
            slony::failover(t, &mut cluster, to, &survivors, reach.origin_remote()).await?;
        let failed = node_machine(resources, report.failed);
        let new_origin = node_machine(resources, report.to);
        let mut attributes = BTreeMap::from([(
            ResourceAddress::SlonyCluster,
            BTreeMap::from([("origin".to_string(), report.to.to_string())]),
        )]);
        if resources.contains_key(&failed) {
            attributes.insert(
                failed,
                BTreeMap::from([(
                    FAILED_OVER.to_string(),
                    format!(
                        "failed and was dropped from the Slony-I cluster ({new_origin} took over)"
                    ),
                )]),
            );
        }
        let web = web_releases(resources);
        let changed = Changed {
            attributes,
            reconfigure: web,
            reason: format!("{new_origin} is the origin now: DATABASE_URL names it"),
        };
        let lag = report.lag;
        Ok((
            changed,
            FailoverOutcome {
                failed: failed.to_string(),
                to: new_origin.to_string(),
                applied_event: lag.applied_event,
                seen_event: lag.seen_event,
                applied_at: lag.applied_at,
                seen_at: lag.seen_at,
                lag_events: lag.lag_events,
                lag_seconds: lag.lag_seconds,
                took_seconds: report.took_seconds,
            },
        ))
    }
}
