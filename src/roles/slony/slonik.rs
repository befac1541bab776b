//! Rendering slonik scripts and running them on a node's machine, and the
//! small SQL helpers the cluster operations poll with.

use serde::Serialize;
use tera::Context;

use super::{SET_ID, SLONIK, SlonyCluster, SlonyNode, conninfo};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::{PG_BIN, PgNode, query};
use crate::templates::Templates;

/// A node slonik administers (its `node N admin conninfo`).
#[derive(Serialize)]
struct Admin {
    id: u32,
    conninfo: String,
}

/// A `store path` between two nodes.
#[derive(Serialize)]
pub(super) struct SlonikPath {
    pub server: u32,
    pub client: u32,
    pub conninfo: String,
}

/// The context every slonik template starts from: the cluster, the nodes it
/// may talk to, the origin and the set.
pub(super) fn slonik_context(cluster: &SlonyCluster, nodes: &[&SlonyNode]) -> Context {
    let admin: Vec<Admin> = nodes
        .iter()
        .map(|n| Admin {
            id: n.id,
            conninfo: conninfo(cluster, &n.node),
        })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("cluster", &cluster.name);
    ctx.insert("admin", &admin);
    ctx.insert("origin", &cluster.origin);
    ctx.insert("set", &SET_ID);
    ctx.insert("timeout", &cluster.timeout.as_secs());
    ctx
}

/// Render `template` and run it with slonik on `at` (a node's machine).
pub(super) async fn slonik<R: Remote>(
    t: &Templates,
    remote: &R,
    at: &PgNode,
    step: &str,
    template: &str,
    ctx: &Context,
) -> Result<(), RoleError> {
    let script = t.render(template, ctx)?;
    let mut sh = node_context(at);
    sh.insert("script", script.trim_end());
    sh.insert("slonik", SLONIK);
    let sh = t.render("slony/slonik.sh", &sh)?;
    remote.run(step, &sh).await?;
    Ok(())
}

/// The context of a node-local script: its root, Postgres programs and port.
pub(super) fn node_context(node: &PgNode) -> Context {
    let mut ctx = Context::new();
    ctx.insert("root", &node.root);
    ctx.insert("pg_bin", PG_BIN);
    ctx.insert("port", &node.port);
    ctx
}

/// The first field of the first row of `sql`'s answer ("" when none).
pub(super) async fn scalar<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    db: &str,
    sql: &str,
) -> Result<String, RoleError> {
    let rows = query(t, remote, node, db, sql).await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default())
}

/// `sql`'s answer as a number.
pub(super) async fn count<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    db: &str,
    sql: &str,
) -> Result<i64, RoleError> {
    let v = scalar(t, remote, node, db, sql).await?;
    v.trim().parse().map_err(|_| RoleError::UnexpectedAnswer {
        host: remote.host().to_string(),
        what: format!("a count from `{sql}`"),
        answer: v,
    })
}
