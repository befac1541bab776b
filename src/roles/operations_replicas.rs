//! The read tier's load for the replica autoscaler (issue 13): every
//! replica's lag from the origin's `sl_status`, and the app's client
//! connections on each replica from its `pg_stat_activity`.

use std::time::Duration;

use super::RoleError;
use super::configure::{Fleet, RoleConfigurator};
use super::configure_db::sql_name;
use super::operations_db::node_machine;
use super::postgres::{self, config::sql_literal};
use super::slony;
use crate::graph::{ResourceAddress, Role};
use crate::ops::{ReplicaReading, Resources};

/// Looks at `pg_stat_activity` per reading, and the pause between them: one
/// look sees only the requests in flight at that instant.
const LOOKS: u32 = 5;
const BETWEEN_LOOKS: Duration = Duration::from_millis(100);

/// The app's client connections in a `pg_stat_activity` count (ours and
/// Slony-I's, which connect as other roles, left out).
fn connections_sql(user: &str) -> String {
    format!(
        "select count(*) from pg_stat_activity \
         where datname = current_database() and backend_type = 'client backend' \
         and pid <> pg_backend_pid() and usename = {}",
        sql_literal(user)
    )
}

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn replica_readings(
        &self,
        resources: &Resources,
        connections: bool,
    ) -> Result<Vec<ReplicaReading>, RoleError> {
        if !resources.contains_key(&ResourceAddress::SlonyCluster) {
            return Ok(Vec::new());
        }
        let reach = self.reachable_cluster(resources).await?;
        let cluster = &reach.cluster;
        let lags = match reach.origin_remote() {
            Some(origin) => slony::status(&self.templates, cluster, origin).await?,
            None => Vec::new(),
        };
        let user = resources
            .get(&ResourceAddress::config(Role::DbPrimary, 0))
            .and_then(|r| r.attributes.get("user").cloned())
            .unwrap_or_else(|| sql_name(&self.manifest.app.name));
        let sql = connections_sql(&user);
        let mut out = Vec::new();
        for n in cluster.nodes.iter().filter(|n| n.id != cluster.origin) {
            let address = node_machine(resources, n.id);
            if !matches!(
                address,
                ResourceAddress::Instance {
                    role: Role::DbReplica | Role::DbPrimary,
                    ..
                }
            ) {
                continue;
            }
            let lag_s = lags
                .iter()
                .find(|l| l.node == n.id)
                .map(|l| l.lag_time.as_secs_f64());
            let mut count = None;
            if connections
                && let Some((_, c)) = reach.connections.iter().find(|(id, _)| *id == n.id)
            {
                let mut sum = 0.0;
                for look in 0..LOOKS {
                    if look > 0 {
                        tokio::time::sleep(BETWEEN_LOOKS).await;
                    }
                    let rows = postgres::query(
                        &self.templates,
                        &c.remote,
                        &n.node,
                        &cluster.database,
                        &sql,
                    )
                    .await?;
                    let seen: f64 = rows
                        .first()
                        .and_then(|r| r.first())
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| RoleError::UnexpectedAnswer {
                            host: c.place.addr.clone(),
                            what: "pg_stat_activity".to_string(),
                            answer: format!("{rows:?}"),
                        })?;
                    sum += seen;
                }
                count = Some(sum / f64::from(LOOKS));
            }
            out.push(ReplicaReading {
                address,
                lag_s,
                connections: count,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_count_leaves_out_other_roles_and_quotes_the_user() {
        let sql = super::connections_sql("it's");
        assert!(sql.contains("usename = 'it''s'"), "{sql}");
        assert!(sql.contains("pid <> pg_backend_pid()"), "{sql}");
    }
}
