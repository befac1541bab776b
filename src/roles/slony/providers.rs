//! Before a node leaves, nobody may receive the set through it: Slony-I
//! refuses to drop a node that is still a data provider ("Node N is still
//! configured as a data provider"). After MOVE SET the other subscribers keep
//! the provider they had (the old origin), so an online move resubscribes
//! them to the origin (slonik RESUBSCRIBE NODE, Slony-I 2.2) first.

use std::time::{Duration, Instant};

use super::slon::slon_log_tail;
use super::slonik::{count, slonik, slonik_context};
use super::{Remotes, SET_ID, SlonyCluster, SlonyNode, remote_of};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::templates::Templates;

/// Make every node that receives the set from `leaving` receive it from the
/// origin instead, and wait until each of them says so.
pub async fn resubscribe_from_origin<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    leaving: u32,
    remotes: &Remotes<'_, R>,
) -> Result<(), RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?.clone();
    let origin_remote = remote_of(remotes, origin.id)?;
    let cs = cluster.schema_sql();
    let receivers = |receiver: u32| {
        format!(
            "select count(*) from {cs}.sl_subscribe where sub_set = {SET_ID} \
             and sub_provider = {leaving} and sub_receiver = {receiver}"
        )
    };
    for n in cluster
        .nodes
        .iter()
        .filter(|n| n.id != origin.id && n.id != leaving)
    {
        let through = count(
            t,
            origin_remote,
            &origin.node,
            &cluster.database,
            &receivers(n.id),
        )
        .await?;
        if through == 0 {
            continue;
        }
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("node", &n.id);
        slonik(
            t,
            origin_remote,
            &origin.node,
            &format!(
                "slony: node {} receives set {SET_ID} from the origin {}",
                n.id, origin.id
            ),
            "slony/resubscribe.slonik",
            &ctx,
        )
        .await?;
        // Done when the receiver itself has taken the new provider.
        let remote = remote_of(remotes, n.id)?;
        let started = Instant::now();
        loop {
            let left = count(t, remote, &n.node, &cluster.database, &receivers(n.id)).await?;
            if left == 0 {
                break;
            }
            if started.elapsed() > cluster.timeout {
                return Err(RoleError::Timeout {
                    node: n.id,
                    host: remote.host().to_string(),
                    what: "receive the set from the origin",
                    waited_s: started.elapsed().as_secs(),
                    last: format!("still subscribed through node {leaving}"),
                    slon_log: slon_log_tail(t, remote, cluster, &n.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
