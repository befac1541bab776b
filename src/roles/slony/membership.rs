//! Who is in the cluster: initialise it on the origin, add a subscriber
//! online (schema copy, node, paths, subscription, catch-up), drop one.
//! Each step is skipped when already done, so a retry resumes.

use std::time::{Duration, Instant};

use super::slon::{ensure_credentials, ensure_slon, slon_log_tail, stop_slon};
use super::slonik::{SlonikPath, count, node_context, scalar, slonik, slonik_context};
use super::sync::wait_caught_up;
use super::{Remotes, SET_ID, SlonyCluster, SlonyNode, conninfo, remote_of};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::{PgNode, SLONY_USER, check_identifier, query};
use crate::templates::Templates;

/// Initialise the cluster on its origin: the Slony-I user, the cluster schema,
/// set 1 with every table (each must have a primary key) and sequence of the
/// app schema, and the origin's slon. A cluster already initialised is left
/// as it is (its slon is ensured).
pub async fn init<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remote: &R,
) -> Result<(), RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?;
    let db = &cluster.database;
    let exists = count(
        t,
        remote,
        &origin.node,
        db,
        &format!(
            "select count(*) from pg_namespace where nspname = '_{}'",
            cluster.name
        ),
    )
    .await?;
    if exists == 0 {
        let rows = query(
            t,
            remote,
            &origin.node,
            db,
            &format!(
                "select c.relkind, c.relname, \
                 exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary) \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname = '{}' and c.relkind in ('r', 'p', 'S') and c.relpersistence = 'p' \
                 order by c.relname",
                cluster.schema
            ),
        )
        .await?;
        let mut tables = Vec::new();
        let mut sequences = Vec::new();
        for row in &rows {
            let [kind, name, has_pk] = row.as_slice() else {
                return Err(RoleError::UnexpectedAnswer {
                    host: remote.host().to_string(),
                    what: "the app schema's tables".to_string(),
                    answer: row.join("|"),
                });
            };
            let qualified = format!("{}.{name}", cluster.schema);
            if kind != "S" && has_pk != "t" {
                return Err(RoleError::TableWithoutPrimaryKey { table: qualified });
            }
            check_identifier("replicated table or sequence name", name)?;
            if kind == "S" {
                sequences.push(qualified);
            } else {
                tables.push(qualified);
            }
        }
        ensure_credentials(t, remote, cluster, &origin.node).await?;
        let mut ctx = slonik_context(cluster, &[origin]);
        ctx.insert("schema", &cluster.schema);
        ctx.insert("tables", &tables);
        ctx.insert("sequences", &sequences);
        slonik(
            t,
            remote,
            &origin.node,
            &format!("slony: init cluster {} on node {}", cluster.name, origin.id),
            "slony/init.slonik",
            &ctx,
        )
        .await?;
    } else {
        ensure_credentials(t, remote, cluster, &origin.node).await?;
    }
    ensure_slon(t, remote, cluster, origin.id).await
}

/// Add `new` as a subscriber, online: Slony-I user and .pgpass on it, the app
/// schema copied from the origin (`pg_dump --schema-only`, without Slony-I's
/// triggers), store node, paths both ways with every node, its slon, subscribe
/// set — then wait until it has caught up (`sl_status`, bounded by
/// `cluster.timeout`). Each step is skipped when already done, so a retry
/// resumes. Precondition: the new node's server and app database exist
/// ([`crate::roles::postgres::ensure_server`],
/// [`crate::roles::postgres::ensure_app_database`]) and every node's pg_hba
/// admits the new node as a db peer. `remotes` must hold every node.
pub async fn add_subscriber<R: Remote>(
    t: &Templates,
    cluster: &mut SlonyCluster,
    new: SlonyNode,
    remotes: &Remotes<'_, R>,
) -> Result<(), RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?.clone();
    let origin_remote = remote_of(remotes, origin.id)?;
    let new_remote = remote_of(remotes, new.id)?;
    let db = cluster.database.clone();
    let cs = cluster.schema_sql();

    ensure_credentials(t, new_remote, cluster, &new.node).await?;
    for n in &cluster.nodes {
        if n.id != new.id {
            ensure_slon(t, remote_of(remotes, n.id)?, cluster, n.id).await?;
        }
    }

    let stored = count(
        t,
        origin_remote,
        &origin.node,
        &db,
        &format!("select count(*) from {cs}.sl_node where no_id = {}", new.id),
    )
    .await?;
    if stored == 0 {
        let tables = count(
            t,
            new_remote,
            &new.node,
            &db,
            &format!(
                "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname = '{}' and c.relkind in ('r', 'p', 'S')",
                cluster.schema
            ),
        )
        .await?;
        if tables == 0 {
            let schema_exists = count(
                t,
                new_remote,
                &new.node,
                &db,
                &format!(
                    "select count(*) from pg_namespace where nspname = '{}'",
                    cluster.schema
                ),
            )
            .await?;
            copy_schema(
                t,
                cluster,
                &origin.node,
                &new,
                new_remote,
                schema_exists == 0,
            )
            .await?;
        }
        let mut paths = Vec::new();
        for n in cluster.nodes.iter().filter(|n| n.id != new.id) {
            paths.push(SlonikPath {
                server: n.id,
                client: new.id,
                conninfo: conninfo(cluster, &n.node),
            });
            paths.push(SlonikPath {
                server: new.id,
                client: n.id,
                conninfo: conninfo(cluster, &new.node),
            });
        }
        let mut all: Vec<&SlonyNode> = cluster.nodes.iter().filter(|n| n.id != new.id).collect();
        all.push(&new);
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("node", &new.id);
        ctx.insert("paths", &paths);
        slonik(
            t,
            origin_remote,
            &origin.node,
            &format!("slony: store node {} and its paths", new.id),
            "slony/store-node.slonik",
            &ctx,
        )
        .await?;
        // A slon learns of the new node before its path and then waits 10 s
        // before listening to it again; a restart listens at once.
        for n in cluster.nodes.iter().filter(|n| n.id != new.id) {
            let remote = remote_of(remotes, n.id)?;
            stop_slon(t, remote, cluster, &n.node).await?;
            ensure_slon(t, remote, cluster, n.id).await?;
        }
    }
    if !cluster.nodes.iter().any(|n| n.id == new.id) {
        cluster.nodes.push(new.clone());
    }
    ensure_slon(t, new_remote, cluster, new.id).await?;

    let subscribed = count(
        t,
        origin_remote,
        &origin.node,
        &db,
        &format!(
            "select count(*) from {cs}.sl_subscribe where sub_set = {SET_ID} and sub_receiver = {}",
            new.id
        ),
    )
    .await?;
    if subscribed == 0 {
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("node", &new.id);
        slonik(
            t,
            origin_remote,
            &origin.node,
            &format!("slony: subscribe node {} to set {SET_ID}", new.id),
            "slony/subscribe.slonik",
            &ctx,
        )
        .await?;
    }

    // The copy is done when the subscriber itself sees its subscription active.
    let started = Instant::now();
    let sql = format!(
        "select coalesce(bool_or(sub_active), false) from {cs}.sl_subscribe \
         where sub_set = {SET_ID} and sub_receiver = {}",
        new.id
    );
    loop {
        let active = scalar(t, new_remote, &new.node, &db, &sql).await.ok();
        if active.as_deref() == Some("t") {
            break;
        }
        if started.elapsed() > cluster.timeout {
            return Err(RoleError::Timeout {
                node: new.id,
                host: new_remote.host().to_string(),
                what: "finish copying the set",
                waited_s: started.elapsed().as_secs(),
                last: format!("sub_active = {}", active.unwrap_or_default()),
                slon_log: slon_log_tail(t, new_remote, cluster, &new.node).await,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let remaining = cluster.timeout.saturating_sub(started.elapsed());
    wait_caught_up(t, cluster, remotes, &[new.id], remaining).await
}

async fn copy_schema<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    origin: &PgNode,
    new: &SlonyNode,
    new_remote: &R,
    create_schema: bool,
) -> Result<(), RoleError> {
    let mut ctx = node_context(&new.node);
    ctx.insert("create_schema", if create_schema { "yes" } else { "no" });
    ctx.insert("origin_addr", &origin.addr.to_string());
    ctx.insert("origin_port", &origin.port);
    ctx.insert("slony_user", SLONY_USER);
    ctx.insert("schema", &cluster.schema);
    ctx.insert("db", &cluster.database);
    ctx.insert("trigger_prefix", &format!("_{}_", cluster.name));
    let script = t.render("slony/copy-schema.sh", &ctx)?;
    new_remote
        .run(
            &format!("slony: copy schema {} to node {}", cluster.schema, new.id),
            &script,
        )
        .await?;
    Ok(())
}

/// Remove subscriber `id` from the cluster before its machine goes: drop node
/// (from the origin), stop its slon and remove the cluster schema from its
/// database when its remote is given. The remaining nodes keep replicating.
pub async fn drop_subscriber<R: Remote>(
    t: &Templates,
    cluster: &mut SlonyCluster,
    id: u32,
    remotes: &Remotes<'_, R>,
) -> Result<(), RoleError> {
    cluster.check()?;
    if id == cluster.origin {
        return Err(RoleError::NodeIsOrigin {
            cluster: cluster.name.clone(),
            node: id,
        });
    }
    let origin = cluster.origin_node()?.clone();
    let origin_remote = remote_of(remotes, origin.id)?;
    let dropped = cluster.node(id)?.clone();
    let cs = cluster.schema_sql();
    let known = count(
        t,
        origin_remote,
        &origin.node,
        &cluster.database,
        &format!("select count(*) from {cs}.sl_node where no_id = {id}"),
    )
    .await?;
    if known > 0 {
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("node", &id);
        slonik(
            t,
            origin_remote,
            &origin.node,
            &format!("slony: drop node {id}"),
            "slony/drop-node.slonik",
            &ctx,
        )
        .await?;
    }
    // Each remaining slon restarts its worker 20 s after processing the drop;
    // once a node has processed it, restart its slon so replication resumes now.
    let started = Instant::now();
    for n in cluster.nodes.iter().filter(|n| n.id != id) {
        let remote = remote_of(remotes, n.id)?;
        let sql = format!("select count(*) from {cs}.sl_node where no_id = {id} and no_active");
        loop {
            let active = count(t, remote, &n.node, &cluster.database, &sql).await?;
            if active == 0 {
                break;
            }
            if started.elapsed() > cluster.timeout {
                return Err(RoleError::Timeout {
                    node: n.id,
                    host: remote.host().to_string(),
                    what: "process the drop of a node",
                    waited_s: started.elapsed().as_secs(),
                    last: format!("node {id} still active there"),
                    slon_log: slon_log_tail(t, remote, cluster, &n.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_slon(t, remote, cluster, &n.node).await?;
        ensure_slon(t, remote, cluster, n.id).await?;
    }
    if let Some(remote) = remotes.get(&id) {
        stop_slon(t, *remote, cluster, &dropped.node).await?;
        query(
            t,
            *remote,
            &dropped.node,
            &cluster.database,
            &format!("drop schema if exists {cs} cascade"),
        )
        .await?;
    }
    cluster.nodes.retain(|n| n.id != id);
    Ok(())
}
