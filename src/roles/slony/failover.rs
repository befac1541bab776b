//! Failover of a dead origin: Slony-I FAILOVER to the most advanced
//! subscriber, then DROP NODE of the dead one, so the survivors replicate from
//! the new origin at once.
//!
//! Invariant: never while the origin answers. [`origin_answers`] asks from
//! appgrid's side (a `select 1` run on the origin's machine, if it can be
//! reached at all) and from every survivor's machine (as the Slony-I user):
//! any answer refuses the failover — an origin that answers gets a
//! switchover (MOVE SET), which loses nothing.
//!
//! What is lost is what the new origin had not applied when the old one died:
//! [`LagAtFailure`] is read from the survivors' own catalogs (the old origin's
//! last SYNC each applied, `sl_setsync`, and the last event of it each had
//! heard of, `sl_event`) — the old origin cannot be asked.

use std::time::{Duration, Instant};

use serde::Serialize;
use tera::Context;

use super::slon::{ensure_slon, slon_log_tail, stop_slon};
use super::slonik::{count, node_context, scalar, slonik, slonik_context};
use super::{Remotes, SET_ID, SlonyCluster, SlonyNode, conninfo, remote_of};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::query;
use crate::templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error(
        "the origin, node {node} ({endpoint}), answers {from}: failover is only for an origin that is gone (use `appgrid db switchover` to move a live origin, which loses nothing). Nothing was changed."
    )]
    OriginAnswers {
        node: u32,
        endpoint: String,
        from: String,
    },
    #[error(
        "there is no replica to fail over to: failover needs `replicas` of 1 or more under [database] (applied); nothing was changed"
    )]
    NoReplicas,
    #[error("cluster {cluster} has no subscriber left to take over from node {node}")]
    NoSubscriber { cluster: String, node: u32 },
}

/// How far behind the new origin was when the old one died.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagAtFailure {
    /// The old origin's last SYNC the new origin applied, and when the old
    /// origin made it (RFC 3339; absent if the event was already cleaned up).
    pub applied_event: i64,
    pub applied_at: Option<String>,
    /// The old origin's last event any survivor had heard of, and its time.
    pub seen_event: i64,
    pub seen_at: Option<String>,
    /// Events between the two: their transactions were committed on the old
    /// origin and are not on the new one.
    pub lag_events: i64,
    /// `seen_at - applied_at`: the window of committed writes that is lost
    /// (writes after the last event heard of may be lost too).
    pub lag_seconds: f64,
}

/// What [`failover`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverReport {
    pub failed: u32,
    pub to: u32,
    pub lag: LagAtFailure,
    /// From the FAILOVER to the survivors replicating from `to`.
    pub took_seconds: f64,
}

/// Does the origin answer, and to whom? `origin_remote`: its machine, if it
/// could be reached; `survivors`: the other nodes' machines. `Some(who)` if it
/// answered anyone.
pub async fn origin_answers<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    origin_remote: Option<&R>,
    survivors: &Remotes<'_, R>,
) -> Result<Option<String>, RoleError> {
    let origin = cluster.origin_node()?;
    let target = conninfo(cluster, &origin.node);
    let mut askers: Vec<(String, &R, &SlonyNode)> = Vec::new();
    if let Some(r) = origin_remote {
        askers.push(("to appgrid on its own machine".to_string(), r, origin));
    }
    for (id, r) in survivors {
        if *id != origin.id {
            askers.push((format!("to node {id}"), *r, cluster.node(*id)?));
        }
    }
    for (who, remote, at) in askers {
        let mut ctx = node_context(&at.node);
        ctx.insert("conninfo", &target);
        let script = t.render("slony/reach-node.sh", &ctx)?;
        let step = format!("slony: does node {} answer?", origin.id);
        let answered = tokio::time::timeout(Duration::from_secs(20), remote.run(&step, &script))
            .await
            .is_ok_and(|r| r.is_ok_and(|out| out.stdout.trim() == "1"));
        if answered {
            return Ok(Some(who));
        }
    }
    Ok(None)
}

/// The survivor that applied the most of the old origin's data: the highest
/// SYNC of set 1 in its `sl_setsync` (ties: the lowest node id), with that
/// number for every survivor.
pub async fn pick_successor<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    survivors: &Remotes<'_, R>,
) -> Result<(u32, Vec<(u32, i64)>), RoleError> {
    let cs = cluster.schema_sql();
    let mut applied = Vec::new();
    for n in cluster.nodes.iter().filter(|n| n.id != cluster.origin) {
        let Some(remote) = survivors.get(&n.id) else {
            continue;
        };
        let seqno = count(
            t,
            *remote,
            &n.node,
            &cluster.database,
            &format!(
                "select coalesce(max(ssy_seqno), 0) from {cs}.sl_setsync where ssy_setid = {SET_ID}"
            ),
        )
        .await?;
        applied.push((n.id, seqno));
    }
    let best = applied
        .iter()
        .max_by_key(|(id, seqno)| (*seqno, std::cmp::Reverse(*id)))
        .map(|(id, _)| *id)
        .ok_or(FailoverError::NoSubscriber {
            cluster: cluster.name.clone(),
            node: cluster.origin,
        })?;
    Ok((best, applied))
}

/// Fail the dead origin over to `to` (see [`pick_successor`]): FAILOVER,
/// wait until every survivor has `to` as the set's origin, DROP NODE the dead
/// one, restart the survivors' slons. `survivors` holds every node's machine
/// but the dead one's; `dead`: its machine if it can still be reached (its
/// slon is stopped). The caller has checked [`origin_answers`]. Resumes a
/// failover that was interrupted after FAILOVER.
pub async fn failover<R: Remote>(
    t: &Templates,
    cluster: &mut SlonyCluster,
    to: u32,
    survivors: &Remotes<'_, R>,
    dead: Option<&R>,
) -> Result<FailoverReport, RoleError> {
    cluster.check()?;
    let failed = cluster.origin_node()?.clone();
    let new = cluster.node(to)?.clone();
    let new_remote = remote_of(survivors, to)?;
    let lag = lag_at_failure(t, cluster, survivors, to).await?;
    if let Some(r) = dead {
        // Best effort: its slon can do nothing without its database.
        let _ = stop_slon(t, r, cluster, &failed.node).await;
    }
    let cs = cluster.schema_sql();
    let db = cluster.database.clone();
    let living: Vec<SlonyNode> = cluster
        .nodes
        .iter()
        .filter(|n| n.id != failed.id)
        .cloned()
        .collect();
    let started = Instant::now();
    let origin_sql = format!("select set_origin from {cs}.sl_set where set_id = {SET_ID}");
    if scalar(t, new_remote, &new.node, &db, &origin_sql).await? != to.to_string() {
        let admin: Vec<&SlonyNode> = living.iter().collect();
        let mut ctx = slonik_context(cluster, &admin);
        ctx.insert("failed", &failed.id);
        ctx.insert("to", &to);
        slonik(
            t,
            new_remote,
            &new.node,
            &format!("slony: failover from node {} to node {to}", failed.id),
            "slony/failover.slonik",
            &ctx,
        )
        .await?;
    }
    for n in &living {
        let remote = remote_of(survivors, n.id)?;
        wait_for(
            t,
            cluster,
            remote,
            n,
            &origin_sql,
            &to.to_string(),
            "see the new origin",
        )
        .await?;
    }
    // The dead node leaves the cluster (Slony-I 2.2 keeps it, inactive, until dropped).
    cluster.origin = to;
    cluster.nodes.retain(|n| n.id != failed.id);
    let known = count(
        t,
        new_remote,
        &new.node,
        &db,
        &format!(
            "select count(*) from {cs}.sl_node where no_id = {}",
            failed.id
        ),
    )
    .await?;
    if known > 0 {
        let admin: Vec<&SlonyNode> = living.iter().collect();
        let mut ctx: Context = slonik_context(cluster, &admin);
        ctx.insert("node", &failed.id);
        slonik(
            t,
            new_remote,
            &new.node,
            &format!("slony: drop the failed node {}", failed.id),
            "slony/drop-node.slonik",
            &ctx,
        )
        .await?;
    }
    let gone = format!(
        "select count(*) from {cs}.sl_node where no_id = {}",
        failed.id
    );
    for n in &living {
        let remote = remote_of(survivors, n.id)?;
        wait_for(t, cluster, remote, n, &gone, "0", "forget the failed node").await?;
        // A slon restarts its worker 20 s after processing a drop: now instead.
        stop_slon(t, remote, cluster, &n.node).await?;
        ensure_slon(t, remote, cluster, n.id).await?;
    }
    Ok(FailoverReport {
        failed: failed.id,
        to,
        lag,
        took_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Poll `sql` on `node` until it answers `want`, for at most the cluster's timeout.
async fn wait_for<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remote: &R,
    node: &SlonyNode,
    sql: &str,
    want: &str,
    what: &'static str,
) -> Result<(), RoleError> {
    let started = Instant::now();
    loop {
        let seen = scalar(t, remote, &node.node, &cluster.database, sql).await?;
        if seen == want {
            return Ok(());
        }
        if started.elapsed() > cluster.timeout {
            return Err(RoleError::Timeout {
                node: node.id,
                host: remote.host().to_string(),
                what,
                waited_s: started.elapsed().as_secs(),
                last: format!("`{sql}` = {seen}"),
                slon_log: slon_log_tail(t, remote, cluster, &node.node).await,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the survivors know of the old origin's events (see [`LagAtFailure`]).
async fn lag_at_failure<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    survivors: &Remotes<'_, R>,
    to: u32,
) -> Result<LagAtFailure, RoleError> {
    let cs = cluster.schema_sql();
    let f = cluster.origin;
    let epoch = |field: Option<&String>| field.and_then(|v| v.trim().parse::<f64>().ok());
    let mut lag = LagAtFailure {
        applied_event: 0,
        applied_at: None,
        seen_event: 0,
        seen_at: None,
        lag_events: 0,
        lag_seconds: 0.0,
    };
    let (mut applied_epoch, mut seen_epoch) = (None, None);
    for n in cluster.nodes.iter().filter(|n| n.id != f) {
        let Some(remote) = survivors.get(&n.id) else {
            continue;
        };
        let rows = query(
            t,
            *remote,
            &n.node,
            &cluster.database,
            &format!(
                "select s.ssy_seqno, extract(epoch from (select ev_timestamp from {cs}.sl_event \
                 where ev_origin = {f} and ev_seqno = s.ssy_seqno)), \
                 (select max(ev_seqno) from {cs}.sl_event where ev_origin = {f}), \
                 (select extract(epoch from max(ev_timestamp)) from {cs}.sl_event where ev_origin = {f}) \
                 from {cs}.sl_setsync s where s.ssy_setid = {SET_ID}"
            ),
        )
        .await?;
        let Some(row) = rows.first() else { continue };
        let seen: i64 = row.get(2).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if seen > lag.seen_event {
            lag.seen_event = seen;
            seen_epoch = epoch(row.get(3));
        }
        if n.id == to {
            lag.applied_event = row.first().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            applied_epoch = epoch(row.get(1));
        }
    }
    lag.seen_event = lag.seen_event.max(lag.applied_event);
    lag.lag_events = lag.seen_event - lag.applied_event;
    let rfc3339 = |e: f64| {
        jiff::Timestamp::from_microsecond((e * 1e6) as i64)
            .ok()
            .map(|t| t.to_string())
    };
    lag.applied_at = applied_epoch.and_then(rfc3339);
    lag.seen_at = seen_epoch.and_then(rfc3339);
    if let (Some(a), Some(s)) = (applied_epoch, seen_epoch) {
        lag.lag_seconds = (s - a).max(0.0);
    }
    Ok(lag)
}
