//! The autoscaler's pass over the database read tier (issue 13): read the
//! replicas (lag, connections) → a sample → `decide_replicas` (pure) → when
//! the count changes, record it in state under the lock and apply the
//! database tier and the web releases through the walker. Adding is launch,
//! Postgres, subscribe and catch up, then every app server is released again
//! with the new `DATABASE_REPLICA_URLS`; removing releases the app servers
//! without the replica first, then drops it from the cluster, then the
//! machine goes (the walker's order: a removal waits for what depended on it).

use std::sync::Arc;
use std::time::Duration;

use appgrid::apply::Configurator;
use appgrid::autoscale::live::{Entry, Record};
use appgrid::autoscale::{self as scaling, Policy, ReplicaPolicy};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::manifest::ReplicaMetric;
use appgrid::ops::Operations;
use appgrid::state::AutoscaledReplicas;

use super::Failure;

/// Addresses a replica change may touch: the replicas, the cluster, the
/// primary's access list, and the web releases that name the replicas.
fn replica_tier(address: ResourceAddress) -> bool {
    matches!(
        address,
        ResourceAddress::Instance {
            role: Role::DbReplica,
            ..
        } | ResourceAddress::Config {
            role: Role::DbReplica | Role::DbPrimary | Role::Web,
            ..
        } | ResourceAddress::SlonyCluster
    )
}

/// One pass over the read tier, or `None` without `[autoscale.replicas]`.
pub(super) async fn pass<C: Cloud, K: Configurator + Operations>(
    ws: &Workspace,
    web: &Policy,
    cloud: &Arc<C>,
    k: &Arc<K>,
    record: &mut Record,
    at: u64,
) -> Result<Option<Entry>, Failure> {
    let Some(r) = ws
        .manifest
        .manifest
        .autoscale
        .as_ref()
        .and_then(|a| a.replicas.as_ref())
    else {
        return Ok(None);
    };
    let policy = ReplicaPolicy::new(r, web.interval_s);
    let state = ws
        .load_state()?
        .ok_or_else(|| Failure::Message("the state went away".into()))?;
    let current = ws
        .effective(Some(&state))
        .0
        .database
        .map_or(0, |d| d.replicas);
    let readings = k
        .replica_load(&state.resources, r.metric == ReplicaMetric::Connections)
        .await;
    let sample = match readings {
        Ok(readings) => record.observe_replicas(r.metric, &readings, at),
        // Missing data: no decision on older readings, nothing changes.
        Err(e) => {
            return Ok(Some(Entry {
                at,
                metric: scaling::replica_metric_name(r.metric),
                value: None,
                from: current,
                to: current,
                reason: format!("the replicas could not be read ({e}): stay at {current}"),
            }));
        }
    };
    let decision = scaling::decide_replicas(
        &policy,
        &record.replica_changes(),
        &record.replica_samples,
        current,
        at,
    );
    let mut entry = Entry {
        at,
        metric: scaling::replica_metric_name(r.metric),
        value: sample.map(|s| s.value),
        from: current,
        to: decision.desired,
        reason: decision.reason.clone(),
    };
    if decision.desired != current {
        let chosen = AutoscaledReplicas {
            replicas: decision.desired,
            at,
            reason: decision.reason,
        };
        // Adding a replica copies the data: the lock may be held a while.
        let lock_timeout = Duration::from_secs(web.interval_s.max(30));
        super::autoscale::scale(
            ws,
            (cloud, k),
            lock_timeout,
            |state| state.autoscale_replicas = Some(chosen),
            replica_tier,
            &mut entry,
        )
        .await?;
    }
    Ok(Some(entry))
}
