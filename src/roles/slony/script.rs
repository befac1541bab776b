//! Changes the whole cluster takes in order with the data: DDL through
//! slonik EXECUTE SCRIPT, and switchover (LOCK SET + MOVE SET).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tera::Context;

use super::slon::slon_log_tail;
use super::slonik::{scalar, slonik, slonik_context};
use super::sync::wait_in_sync;
use super::{Remotes, SET_ID, SlonyCluster, SlonyNode, remote_of};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::templates::Templates;

/// Run DDL through slonik EXECUTE SCRIPT so every node applies it in order
/// with the data; returns when every subscriber has it.
pub async fn execute_script<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
    sql: &str,
) -> Result<(), RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?;
    let origin_remote = remote_of(remotes, origin.id)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let file = format!(
        "{}/etc/appgrid/slony/ddl-{}-{nanos}.sql",
        origin.node.root,
        std::process::id()
    );
    if file.contains(['\'', '\\']) || file.chars().any(char::is_control) {
        return Err(RoleError::InvalidValue {
            what: "machine root",
            value: origin.node.root.clone(),
            rule: "no quote, backslash or control character (it goes into a slonik string)",
        });
    }
    origin_remote.put(&file, sql.as_bytes(), 0o600).await?;
    let mut ctx = Context::new();
    ctx.insert("file", &file);
    let secure = t.render("postgres/secure-file.sh", &ctx)?;
    let result = async {
        origin_remote
            .run("slony: hand the DDL to postgres", &secure)
            .await?;
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("file", &file);
        slonik(
            t,
            origin_remote,
            &origin.node,
            "slony: execute script",
            "slony/execute-script.slonik",
            &ctx,
        )
        .await
    }
    .await;
    let remove = t.render("slony/remove-file.sh", &ctx)?;
    let removed = origin_remote
        .run("slony: remove the DDL file", &remove)
        .await;
    result?;
    removed?;
    wait_in_sync(t, cluster, remotes).await
}

/// Switchover: LOCK SET + MOVE SET from the current origin to `to` (a
/// subscriber); returns once both nodes see `to` as the set's origin. The
/// former origin becomes a subscriber (writes there are refused).
pub async fn move_set<R: Remote>(
    t: &Templates,
    cluster: &mut SlonyCluster,
    to: u32,
    remotes: &Remotes<'_, R>,
) -> Result<(), RoleError> {
    cluster.check()?;
    let old = cluster.origin_node()?.clone();
    let new = cluster.node(to)?.clone();
    if to == old.id {
        return Ok(());
    }
    let old_remote = remote_of(remotes, old.id)?;
    let new_remote = remote_of(remotes, to)?;
    let cs = cluster.schema_sql();
    let sql = format!("select set_origin from {cs}.sl_set where set_id = {SET_ID}");
    if scalar(t, new_remote, &new.node, &cluster.database, &sql).await? != to.to_string() {
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("to", &to);
        slonik(
            t,
            old_remote,
            &old.node,
            &format!("slony: move set {SET_ID} from node {} to node {to}", old.id),
            "slony/move-set.slonik",
            &ctx,
        )
        .await?;
    }
    let started = Instant::now();
    for (remote, node) in [(new_remote, &new), (old_remote, &old)] {
        loop {
            let seen = scalar(t, remote, &node.node, &cluster.database, &sql).await?;
            if seen == to.to_string() {
                break;
            }
            if started.elapsed() > cluster.timeout {
                return Err(RoleError::Timeout {
                    node: node.id,
                    host: remote.host().to_string(),
                    what: "see the set's new origin",
                    waited_s: started.elapsed().as_secs(),
                    last: format!("set_origin = {seen}"),
                    slon_log: slon_log_tail(t, remote, cluster, &node.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.origin = to;
    Ok(())
}
