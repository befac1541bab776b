//! The slon daemons: the Slony-I credentials they read, starting and stopping
//! a node's slon under the service supervisor, and the end of its log.

use secrecy::ExposeSecret;

use super::slonik::node_context;
use super::{SLON, SlonyCluster, conninfo};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::{PgNode, SLONY_USER, ensure_login_role, put_pgpass};
use crate::templates::Templates;

/// Ensure the Slony-I superuser with the cluster's password and the 0600
/// `.pgpass` slon, slonik and pg_dump read it from.
pub async fn ensure_credentials<R: Remote>(
    t: &Templates,
    remote: &R,
    cluster: &SlonyCluster,
    node: &PgNode,
) -> Result<(), RoleError> {
    ensure_login_role(t, remote, node, SLONY_USER, &cluster.password, true, None).await?;
    put_pgpass(
        t,
        remote,
        node,
        SLONY_USER,
        cluster.password.expose_secret(),
    )
    .await
}

/// Ensure node `id`'s slon runs (`slon -s 200 -t 2000`, as postgres).
pub async fn ensure_slon<R: Remote>(
    t: &Templates,
    remote: &R,
    cluster: &SlonyCluster,
    id: u32,
) -> Result<(), RoleError> {
    let node = &cluster.node(id)?.node;
    let mut ctx = node_context(node);
    ctx.insert("service", &cluster.service());
    ctx.insert("slon", SLON);
    ctx.insert("cluster", &cluster.name);
    ctx.insert("conninfo", &conninfo(cluster, node));
    let script = t.render("slony/slon-start.sh", &ctx)?;
    remote
        .run(
            &format!("slony: slon for node {id} on {}", node.endpoint()),
            &script,
        )
        .await?;
    Ok(())
}

/// Stop the slon on `node`'s machine.
pub async fn stop_slon<R: Remote>(
    t: &Templates,
    remote: &R,
    cluster: &SlonyCluster,
    node: &PgNode,
) -> Result<(), RoleError> {
    let mut ctx = node_context(node);
    ctx.insert("service", &cluster.service());
    let script = t.render("slony/slon-stop.sh", &ctx)?;
    remote
        .run(&format!("slony: stop slon on {}", node.endpoint()), &script)
        .await?;
    Ok(())
}

/// The end of `node`'s slon log, for a timeout's message (never fails: what
/// went wrong reading it is the text).
pub(super) async fn slon_log_tail<R: Remote>(
    t: &Templates,
    remote: &R,
    cluster: &SlonyCluster,
    node: &PgNode,
) -> String {
    let mut ctx = node_context(node);
    ctx.insert("service", &cluster.service());
    ctx.insert("lines", &15);
    let script = match t.render("slony/slon-log.sh", &ctx) {
        Ok(script) => script,
        Err(e) => return format!("(cannot read it: {e})"),
    };
    match remote.run("slony: slon log", &script).await {
        Ok(out) => out.stdout.trim_end().to_string(),
        Err(e) => format!("(cannot read it: {e})"),
    }
}
