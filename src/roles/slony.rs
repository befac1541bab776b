//! Slony-I read replicas: one set (id 1) holding every table and sequence of
//! the app schema, replicated from the origin to every other node; one `slon`
//! per node (origin included) run as postgres under the service supervisor.
//!
//! slonik scripts are rendered from `templates/slony/*.slonik` (every value in
//! them is a number, an address or a checked identifier) and fed to slonik on
//! standard input on the origin's machine. Connections between nodes use the
//! [`SLONY_USER`] superuser whose password lives only in each node's 0600
//! `.pgpass` — never in a conninfo string, a script or a log.
//!
//! slonik's exit status is not trusted to mean "replicating" (a subscriber
//! missing a table makes slonik succeed while slon retries forever): every
//! change is followed by polling `_CLUSTER.sl_status` / `sl_subscribe` with a
//! bounded timeout, and a timeout reports the end of the node's slon log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tera::Context;

use super::RoleError;
use super::postgres::{
    PG_BIN, PgNode, SLONY_USER, check_identifier, ensure_login_role, put_pgpass, query,
};
use crate::remote::Remote;
use crate::templates;

/// The one replication set appgrid manages.
pub const SET_ID: u32 = 1;
/// slonik and slon (Debian's slony1-2-bin).
pub const SLONIK: &str = "/usr/bin/slonik";
pub const SLON: &str = "/usr/bin/slon";

/// A database node of the cluster (Slony-I node ids start at 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlonyNode {
    pub id: u32,
    pub node: PgNode,
}

/// A Slony-I cluster replicating one database's app schema.
#[derive(Clone)]
pub struct SlonyCluster {
    /// The cluster name (its schema is `_NAME`); a plain identifier.
    pub name: String,
    /// The replicated database.
    pub database: String,
    /// The app schema whose tables and sequences make the set (`public`).
    pub schema: String,
    /// The [`SLONY_USER`]'s password: keep it in state, register it with the
    /// transports' redactor.
    pub password: String,
    pub nodes: Vec<SlonyNode>,
    pub origin: u32,
    /// Bound for every wait (catch-up, event confirmation).
    pub timeout: Duration,
}

impl std::fmt::Debug for SlonyCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlonyCluster")
            .field("name", &self.name)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("password", &"(sensitive)")
            .field("nodes", &self.nodes)
            .field("origin", &self.origin)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SlonyCluster {
    /// A cluster of one node (the origin) for `database`'s `public` schema.
    pub fn new(name: &str, database: &str, origin: SlonyNode, password: String) -> Self {
        SlonyCluster {
            name: name.to_string(),
            database: database.to_string(),
            schema: "public".to_string(),
            password,
            origin: origin.id,
            nodes: vec![origin],
            timeout: Duration::from_secs(120),
        }
    }

    pub fn node(&self, id: u32) -> Result<&SlonyNode, RoleError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(RoleError::UnknownNode {
                cluster: self.name.clone(),
                node: id,
            })
    }

    fn origin_node(&self) -> Result<&SlonyNode, RoleError> {
        self.node(self.origin)
    }

    /// The cluster's schema, quoted for SQL: `"_name"`.
    fn schema_sql(&self) -> String {
        format!("\"_{}\"", self.name)
    }

    fn service(&self) -> String {
        format!("slon-{}", self.name)
    }

    fn check(&self) -> Result<(), RoleError> {
        check_identifier("slony cluster name", &self.name)?;
        check_identifier("database name", &self.database)?;
        check_identifier("schema name", &self.schema)
    }
}

/// One subscriber's replication health, as the origin's `sl_status` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub node: u32,
    /// Events of the origin the node has not confirmed yet.
    pub lag_events: i64,
    /// Age of the oldest unconfirmed event.
    pub lag_time: Duration,
}

/// The transports to the cluster's machines, by node id.
pub type Remotes<'a, R> = BTreeMap<u32, &'a R>;

fn remote_of<'a, R>(remotes: &Remotes<'a, R>, id: u32) -> Result<&'a R, RoleError> {
    remotes
        .get(&id)
        .copied()
        .ok_or(RoleError::MissingRemote { node: id })
}

/// How slon, slonik and other nodes reach `node`: no password (it is in .pgpass).
fn conninfo(cluster: &SlonyCluster, node: &PgNode) -> String {
    format!(
        "dbname={} host={} port={} user={SLONY_USER} connect_timeout=10",
        cluster.database, node.addr, node.port
    )
}

#[derive(Serialize)]
struct Admin {
    id: u32,
    conninfo: String,
}

#[derive(Serialize)]
struct Path {
    server: u32,
    client: u32,
    conninfo: String,
}

fn slonik_context(cluster: &SlonyCluster, nodes: &[&SlonyNode]) -> Context {
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
async fn slonik<R: Remote>(
    remote: &R,
    at: &PgNode,
    step: &str,
    template: &str,
    ctx: &Context,
) -> Result<(), RoleError> {
    let script = templates::render(template, ctx)?;
    let mut sh = node_context(at);
    sh.insert("script", script.trim_end());
    sh.insert("slonik", SLONIK);
    let sh = templates::render("slony/slonik.sh", &sh)?;
    remote.run(step, &sh).await?;
    Ok(())
}

fn node_context(node: &PgNode) -> Context {
    let mut ctx = Context::new();
    ctx.insert("root", &node.root);
    ctx.insert("pg_bin", PG_BIN);
    ctx.insert("port", &node.port);
    ctx
}

/// Ensure the Slony-I superuser with the cluster's password and the 0600
/// `.pgpass` slon, slonik and pg_dump read it from.
pub async fn ensure_credentials<R: Remote>(
    remote: &R,
    cluster: &SlonyCluster,
    node: &PgNode,
) -> Result<(), RoleError> {
    ensure_login_role(remote, node, SLONY_USER, &cluster.password, true, None).await?;
    put_pgpass(remote, node, SLONY_USER, &cluster.password).await
}

/// Ensure node `id`'s slon runs (`slon -s 200 -t 2000`, as postgres).
pub async fn ensure_slon<R: Remote>(
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
    let script = templates::render("slony/slon-start.sh", &ctx)?;
    remote
        .run(
            &format!("slony: slon for node {id} on {}", node.endpoint()),
            &script,
        )
        .await?;
    Ok(())
}

/// Stop node `id`'s slon.
pub async fn stop_slon<R: Remote>(
    remote: &R,
    cluster: &SlonyCluster,
    node: &PgNode,
) -> Result<(), RoleError> {
    let mut ctx = node_context(node);
    ctx.insert("service", &cluster.service());
    let script = templates::render("slony/slon-stop.sh", &ctx)?;
    remote
        .run(&format!("slony: stop slon on {}", node.endpoint()), &script)
        .await?;
    Ok(())
}

async fn slon_log_tail<R: Remote>(remote: &R, cluster: &SlonyCluster, node: &PgNode) -> String {
    let mut ctx = node_context(node);
    ctx.insert("service", &cluster.service());
    ctx.insert("lines", &15);
    let Ok(script) = templates::render("slony/slon-log.sh", &ctx) else {
        return String::new();
    };
    match remote.run("slony: slon log", &script).await {
        Ok(out) => out.stdout.trim_end().to_string(),
        Err(e) => format!("(cannot read it: {e})"),
    }
}

async fn scalar<R: Remote>(
    remote: &R,
    node: &PgNode,
    db: &str,
    sql: &str,
) -> Result<String, RoleError> {
    let rows = query(remote, node, db, sql).await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default())
}

async fn count<R: Remote>(
    remote: &R,
    node: &PgNode,
    db: &str,
    sql: &str,
) -> Result<i64, RoleError> {
    let v = scalar(remote, node, db, sql).await?;
    v.trim().parse().map_err(|_| RoleError::UnexpectedAnswer {
        host: remote.host().to_string(),
        what: format!("a count from `{sql}`"),
        answer: v,
    })
}

/// Initialise the cluster on its origin: the Slony-I user, the cluster schema,
/// set 1 with every table (each must have a primary key) and sequence of the
/// app schema, and the origin's slon. A cluster already initialised is left
/// as it is (its slon is ensured).
pub async fn init<R: Remote>(cluster: &SlonyCluster, remote: &R) -> Result<(), RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?;
    let db = &cluster.database;
    let exists = count(
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
        ensure_credentials(remote, cluster, &origin.node).await?;
        let mut ctx = slonik_context(cluster, &[origin]);
        ctx.insert("schema", &cluster.schema);
        ctx.insert("tables", &tables);
        ctx.insert("sequences", &sequences);
        slonik(
            remote,
            &origin.node,
            &format!("slony: init cluster {} on node {}", cluster.name, origin.id),
            "slony/init.slonik",
            &ctx,
        )
        .await?;
    } else {
        ensure_credentials(remote, cluster, &origin.node).await?;
    }
    ensure_slon(remote, cluster, origin.id).await
}

/// Add `new` as a subscriber, online: Slony-I user and .pgpass on it, the app
/// schema copied from the origin (`pg_dump --schema-only`, without Slony-I's
/// triggers), store node, paths both ways with every node, its slon, subscribe
/// set — then wait until it has caught up (`sl_status`, bounded by
/// `cluster.timeout`). Each step is skipped when already done, so a retry
/// resumes. Precondition: the new node's server and app database exist
/// ([`super::postgres::ensure_server`], [`super::postgres::ensure_app_database`]) and every
/// node's pg_hba admits the new node as a db peer. `remotes` must hold every node.
pub async fn add_subscriber<R: Remote>(
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

    ensure_credentials(new_remote, cluster, &new.node).await?;
    for n in &cluster.nodes {
        if n.id != new.id {
            ensure_slon(remote_of(remotes, n.id)?, cluster, n.id).await?;
        }
    }

    let stored = count(
        origin_remote,
        &origin.node,
        &db,
        &format!("select count(*) from {cs}.sl_node where no_id = {}", new.id),
    )
    .await?;
    if stored == 0 {
        let tables = count(
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
                new_remote,
                &new.node,
                &db,
                &format!(
                    "select count(*) from pg_namespace where nspname = '{}'",
                    cluster.schema
                ),
            )
            .await?;
            copy_schema(cluster, &origin.node, &new, new_remote, schema_exists == 0).await?;
        }
        let mut paths = Vec::new();
        for n in cluster.nodes.iter().filter(|n| n.id != new.id) {
            paths.push(Path {
                server: n.id,
                client: new.id,
                conninfo: conninfo(cluster, &n.node),
            });
            paths.push(Path {
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
            stop_slon(remote, cluster, &n.node).await?;
            ensure_slon(remote, cluster, n.id).await?;
        }
    }
    if !cluster.nodes.iter().any(|n| n.id == new.id) {
        cluster.nodes.push(new.clone());
    }
    ensure_slon(new_remote, cluster, new.id).await?;

    let subscribed = count(
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
        let active = scalar(new_remote, &new.node, &db, &sql).await.ok();
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
                slon_log: slon_log_tail(new_remote, cluster, &new.node).await,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let remaining = cluster.timeout.saturating_sub(started.elapsed());
    wait_caught_up(cluster, remotes, &[new.id], remaining).await
}

async fn copy_schema<R: Remote>(
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
    let script = templates::render("slony/copy-schema.sh", &ctx)?;
    new_remote
        .run(
            &format!("slony: copy schema {} to node {}", cluster.schema, new.id),
            &script,
        )
        .await?;
    Ok(())
}

/// Poll the origin's `sl_status` until every node in `ids` has caught up, for
/// at most `timeout`: `st_lag_num_events = 0`, or — under a steady write load,
/// where a new SYNC every 200 ms keeps that number rarely at 0 — a confirmed
/// event at least as recent as the origin's last event when the wait began.
pub async fn wait_caught_up<R: Remote>(
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
    ids: &[u32],
    timeout: Duration,
) -> Result<(), RoleError> {
    let origin_remote = remote_of(remotes, cluster.origin)?;
    let origin = cluster.origin_node()?;
    let cs = cluster.schema_sql();
    let target = count(
        origin_remote,
        &origin.node,
        &cluster.database,
        &format!(
            "select coalesce(max(ev_seqno), 0) from {cs}.sl_event where ev_origin = {}",
            origin.id
        ),
    )
    .await?;
    let started = Instant::now();
    loop {
        let statuses = status(cluster, origin_remote).await?;
        let confirmed = query(
            origin_remote,
            &origin.node,
            &cluster.database,
            &format!(
                "select con_received, max(con_seqno) from {cs}.sl_confirm \
                 where con_origin = {} group by con_received",
                origin.id
            ),
        )
        .await?;
        let reached = |id: u32| {
            confirmed.iter().any(|row| {
                row.first().map(String::as_str) == Some(id.to_string().as_str())
                    && row
                        .get(1)
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| v >= target)
            })
        };
        let behind: Vec<&u32> = ids
            .iter()
            .filter(|id| {
                !statuses.iter().any(|s| s.node == **id && s.lag_events == 0) && !reached(**id)
            })
            .collect();
        let Some(first) = behind.first() else {
            return Ok(());
        };
        if started.elapsed() > timeout {
            let node = cluster.node(**first)?;
            let slon_log = match remotes.get(first) {
                Some(r) => slon_log_tail(*r, cluster, &node.node).await,
                None => String::new(),
            };
            return Err(RoleError::Timeout {
                node: node.id,
                host: node.node.endpoint(),
                what: "catch up with the origin",
                waited_s: started.elapsed().as_secs(),
                last: format!("{statuses:?}"),
                slon_log,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Generate a SYNC on the origin and wait until every subscriber confirmed
/// it: everything committed on the origin before the call is then on every node.
pub async fn wait_in_sync<R: Remote>(
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
) -> Result<(), RoleError> {
    let origin = cluster.origin_node()?;
    let origin_remote = remote_of(remotes, origin.id)?;
    let ctx = slonik_context(cluster, &[origin]);
    slonik(
        origin_remote,
        &origin.node,
        "slony: sync",
        "slony/sync.slonik",
        &ctx,
    )
    .await?;
    let ids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| *id != cluster.origin)
        .collect();
    wait_caught_up(cluster, remotes, &ids, cluster.timeout).await
}

/// Every subscriber's lag, from the origin's `sl_status`.
pub async fn status<R: Remote>(
    cluster: &SlonyCluster,
    remote_of_origin: &R,
) -> Result<Vec<NodeStatus>, RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?;
    let rows = query(
        remote_of_origin,
        &origin.node,
        &cluster.database,
        &format!(
            "select st_received, st_lag_num_events, \
             coalesce(extract(epoch from st_lag_time), 0) \
             from {cs}.sl_status \
             where st_received in (select no_id from {cs}.sl_node where no_active) \
             order by st_received",
            cs = cluster.schema_sql()
        ),
    )
    .await?;
    rows.iter()
        .map(|row| {
            let bad = || RoleError::UnexpectedAnswer {
                host: remote_of_origin.host().to_string(),
                what: "sl_status".to_string(),
                answer: row.join("|"),
            };
            let [node, events, secs] = row.as_slice() else {
                return Err(bad());
            };
            let secs: f64 = secs.parse().map_err(|_| bad())?;
            Ok(NodeStatus {
                node: node.parse().map_err(|_| bad())?,
                lag_events: events.parse().map_err(|_| bad())?,
                lag_time: Duration::from_secs_f64(secs.max(0.0)),
            })
        })
        .collect()
}

/// Remove subscriber `id` from the cluster before its machine goes: drop node
/// (from the origin), stop its slon and remove the cluster schema from its
/// database when its remote is given. The remaining nodes keep replicating.
pub async fn drop_subscriber<R: Remote>(
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
            let active = count(remote, &n.node, &cluster.database, &sql).await?;
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
                    slon_log: slon_log_tail(remote, cluster, &n.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_slon(remote, cluster, &n.node).await?;
        ensure_slon(remote, cluster, n.id).await?;
    }
    if let Some(remote) = remotes.get(&id) {
        stop_slon(*remote, cluster, &dropped.node).await?;
        query(
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

/// Run DDL through slonik EXECUTE SCRIPT so every node applies it in order
/// with the data; returns when every subscriber has it.
pub async fn execute_script<R: Remote>(
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
    let secure = templates::render("postgres/secure-file.sh", &ctx)?;
    let result = async {
        origin_remote
            .run("slony: hand the DDL to postgres", &secure)
            .await?;
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("file", &file);
        slonik(
            origin_remote,
            &origin.node,
            "slony: execute script",
            "slony/execute-script.slonik",
            &ctx,
        )
        .await
    }
    .await;
    let remove = templates::render("slony/remove-file.sh", &ctx)?;
    let removed = origin_remote
        .run("slony: remove the DDL file", &remove)
        .await;
    result?;
    removed?;
    wait_in_sync(cluster, remotes).await
}

/// Switchover: LOCK SET + MOVE SET from the current origin to `to` (a
/// subscriber); returns once both nodes see `to` as the set's origin. The
/// former origin becomes a subscriber (writes there are refused).
pub async fn move_set<R: Remote>(
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
    if scalar(new_remote, &new.node, &cluster.database, &sql).await? != to.to_string() {
        let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
        let mut ctx = slonik_context(cluster, &all);
        ctx.insert("to", &to);
        slonik(
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
            let seen = scalar(remote, &node.node, &cluster.database, &sql).await?;
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
                    slon_log: slon_log_tail(remote, cluster, &node.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.origin = to;
    Ok(())
}
