//! Migrations that create tables or sequences: the DDL goes to every node
//! through EXECUTE SCRIPT, and what it created joins replication the way
//! Slony-I requires — a temporary set on the origin holding the new tables
//! and sequences, subscribed by the same receivers from the same providers as
//! set 1, then MERGE SET into set 1 once every receiver has it.
//!
//! What a migration creates is learned from the catalog, not from its text:
//! [`plan_migration`] runs the SQL on the origin inside a transaction that is
//! rolled back and lists the relations of the app schema that did not exist
//! before. That sees `serial` columns' implicit sequences, `CREATE TABLE … AS`,
//! `LIKE`, partitions, quoted names and `search_path` games that a parser would
//! miss, and a migration that fails there fails before anything ran. The only
//! text check is for transaction control ([`super::statements`]), which both
//! the probe and EXECUTE SCRIPT forbid. A new table without a primary key is
//! refused, naming it, before anything runs.
//!
//! A temporary set left by an interrupted migration (its DDL already ran) is
//! subscribed and merged by the next migration before it does anything else.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tera::Context;

use super::script::execute_script;
use super::slon::slon_log_tail;
use super::slonik::{count, node_context, scalar, slonik, slonik_context};
use super::statements::transaction_control;
use super::sync::wait_in_sync;
use super::{Remotes, SET_ID, SlonyCluster, SlonyNode, remote_of};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::{check_identifier, query};
use crate::templates::Templates;

/// Why a migration was refused before anything ran.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the migration holds `{statement}`, which controls the transaction: Slony-I runs a migration inside its own transaction on every node; remove it (nothing was run)"
    )]
    TransactionControl { statement: String },
    #[error(
        "the migration fails on the origin ({host}), tried in a transaction that was rolled back; nothing was changed:\n{detail}"
    )]
    FailsOnOrigin { host: String, detail: String },
    #[error(
        "the migration creates {} without a primary key: Slony-I replicates only tables with one; add one (… PRIMARY KEY …). Nothing was run.",
        tables.join(", ")
    )]
    NoPrimaryKey { tables: Vec<String> },
}

/// A table or sequence the migration creates, with its Slony-I id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRelation {
    /// `schema.name`.
    pub name: String,
    pub id: u32,
    /// A sequence owned by a column (`serial`): its owner follows the table's.
    #[serde(skip)]
    pub owned_by_column: bool,
}

/// One slonik run (or the DDL) of a migration, for `--dry-run` and progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStep {
    /// The node it runs on (its slonik or psql).
    pub on: u32,
    /// The nodes it reaches, in order with the data.
    pub reaches: Vec<u32>,
    pub what: String,
    /// The slonik script (no secrets: passwords are in .pgpass), or the SQL.
    pub script: String,
}

/// What a migration will do, learned without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationPlan {
    pub origin: u32,
    pub tables: Vec<NewRelation>,
    pub sequences: Vec<NewRelation>,
    /// The temporary set's id (unused when nothing new is created).
    pub temp_set: u32,
    /// (receiver, provider) of set 1, which the temporary set copies.
    pub subscriptions: Vec<(u32, u32)>,
    /// The SQL as it will run: the migration, then the owner of what it creates.
    pub sql: String,
    /// Temporary sets an interrupted migration left, merged first.
    pub pending_sets: Vec<u32>,
    pub steps: Vec<MigrationStep>,
}

/// Learn what `sql` creates (dry, on the origin), refuse what Slony-I cannot
/// replicate, and lay out the steps. `owner`: the role that owns the app's
/// tables (new ones are handed to it: the DDL runs as the Slony-I superuser).
/// Changes nothing.
pub async fn plan_migration<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
    sql: &str,
    owner: &str,
) -> Result<MigrationPlan, RoleError> {
    cluster.check()?;
    check_identifier("owner role name", owner)?;
    if let Some(statement) = transaction_control(sql) {
        return Err(MigrationError::TransactionControl { statement }.into());
    }
    let origin = cluster.origin_node()?;
    let remote = remote_of(remotes, origin.id)?;
    let created = probe(t, cluster, origin, remote, sql).await?;
    let missing: Vec<String> = created
        .iter()
        .filter(|r| r.kind != "S" && !r.has_pk)
        .map(|r| r.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(MigrationError::NoPrimaryKey { tables: missing }.into());
    }
    let cs = cluster.schema_sql();
    let db = &cluster.database;
    let max = |sql: String| async move { count(t, remote, &origin.node, db, &sql).await };
    let first_table = max(format!(
        "select coalesce(max(tab_id), 0) from {cs}.sl_table"
    ))
    .await?;
    let first_seq = max(format!(
        "select coalesce(max(seq_id), 0) from {cs}.sl_sequence"
    ))
    .await?;
    let pending_sets: Vec<u32> = query(
        t,
        remote,
        &origin.node,
        db,
        &format!(
            "select set_id from {cs}.sl_set where set_id <> {SET_ID} and set_origin = {} order by set_id",
            origin.id
        ),
    )
    .await?
    .iter()
    .filter_map(|r| r.first()?.parse().ok())
    .collect();
    let max_set = max(format!("select coalesce(max(set_id), 1) from {cs}.sl_set")).await?;
    let subscriptions = subscriptions_of(t, cluster, remote, SET_ID).await?;

    let mut tables = Vec::new();
    let mut sequences = Vec::new();
    for r in &created {
        let (list, base) = match r.kind.as_str() {
            "S" => (&mut sequences, first_seq),
            _ => (&mut tables, first_table),
        };
        let id = u32::try_from(base).unwrap_or(0) + 1 + list.len() as u32;
        list.push(NewRelation {
            name: r.name.clone(),
            id,
            owned_by_column: r.owned_by_column,
        });
    }
    let mut run = format!("{}\n;\n", sql.trim_end());
    for r in &tables {
        run.push_str(&format!("ALTER TABLE {} OWNER TO \"{owner}\";\n", r.name));
    }
    for r in sequences.iter().filter(|s| !s.owned_by_column) {
        run.push_str(&format!(
            "ALTER SEQUENCE {} OWNER TO \"{owner}\";\n",
            r.name
        ));
    }
    let mut plan = MigrationPlan {
        origin: origin.id,
        tables,
        sequences,
        temp_set: u32::try_from(max_set).unwrap_or(1) + 1,
        subscriptions,
        sql: run,
        pending_sets,
        steps: Vec::new(),
    };
    plan.steps = steps(t, cluster, &plan)?;
    Ok(plan)
}

/// Run a migration laid out by [`plan_migration`]: merge what an interrupted
/// one left, EXECUTE SCRIPT, then (if it creates anything) the temporary set,
/// its subscriptions, MERGE SET, and a SYNC every node confirms.
pub async fn migrate<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
    plan: &MigrationPlan,
) -> Result<(), RoleError> {
    for set in &plan.pending_sets {
        subscribe_and_merge(t, cluster, remotes, *set, &plan.subscriptions).await?;
    }
    execute_script(t, cluster, remotes, &plan.sql).await?;
    if plan.tables.is_empty() && plan.sequences.is_empty() {
        return Ok(());
    }
    let origin = cluster.origin_node()?;
    let remote = remote_of(remotes, origin.id)?;
    slonik(
        t,
        remote,
        &origin.node,
        &format!("slony: create set {} for the new tables", plan.temp_set),
        "slony/create-set.slonik",
        &create_set_context(cluster, plan),
    )
    .await?;
    subscribe_and_merge(t, cluster, remotes, plan.temp_set, &plan.subscriptions).await
}

/// A relation the probe saw created.
struct Created {
    kind: String,
    name: String,
    has_pk: bool,
    owned_by_column: bool,
}

const MARK: &str = "appgrid-new-relation";

async fn probe<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    origin: &SlonyNode,
    remote: &R,
    sql: &str,
) -> Result<Vec<Created>, RoleError> {
    let schema = &cluster.schema;
    let in_schema = format!(
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = '{schema}'"
    );
    let text = format!(
        "BEGIN;\n\
         CREATE TEMP TABLE appgrid_probe_before ON COMMIT DROP AS SELECT c.oid AS relid {in_schema};\n\
         {sql}\n;\n\
         SELECT '{MARK}', c.relkind, c.relname, \
         exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary), \
         exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid \
         and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')) \
         {in_schema} and c.relkind in ('r', 'p', 'S') and c.relpersistence = 'p' \
         and c.oid not in (select relid from pg_temp.appgrid_probe_before) order by c.relname;\n\
         ROLLBACK;\n"
    );
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let file = format!(
        "{}/.appgrid-probe-{}-{nanos}.sql",
        origin.node.etc_dir(),
        std::process::id()
    );
    remote.put(&file, text.as_bytes(), 0o600).await?;
    let mut ctx = node_context(&origin.node);
    ctx.insert("db", &cluster.database);
    ctx.insert("sql_file", &file);
    let script = t.render("slony/probe-ddl.sh", &ctx)?;
    let out = remote
        .run(
            "slony: try the migration on the origin (rolled back)",
            &script,
        )
        .await
        .map_err(|e| MigrationError::FailsOnOrigin {
            host: remote.host().to_string(),
            detail: e.to_string(),
        })?;
    let mut created = Vec::new();
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        let [MARK, kind, name, pk, owned] = fields.as_slice() else {
            continue;
        };
        check_identifier("new table or sequence name", name)?;
        created.push(Created {
            kind: kind.to_string(),
            name: format!("{schema}.{name}"),
            has_pk: *pk == "t",
            owned_by_column: *owned == "t",
        });
    }
    Ok(created)
}

/// (receiver, provider) of every subscription of `set`, as the origin knows them.
async fn subscriptions_of<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remote: &R,
    set: u32,
) -> Result<Vec<(u32, u32)>, RoleError> {
    let origin = cluster.origin_node()?;
    let rows = query(
        t,
        remote,
        &origin.node,
        &cluster.database,
        &format!(
            "select sub_receiver, sub_provider from {}.sl_subscribe where sub_set = {set} order by sub_receiver",
            cluster.schema_sql()
        ),
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
        .collect())
}

fn create_set_context(cluster: &SlonyCluster, plan: &MigrationPlan) -> Context {
    let origin: Vec<&SlonyNode> = cluster
        .nodes
        .iter()
        .filter(|n| n.id == cluster.origin)
        .collect();
    let mut ctx = slonik_context(cluster, &origin);
    ctx.insert("temp_set", &plan.temp_set);
    ctx.insert("tables", &plan.tables);
    ctx.insert("sequences", &plan.sequences);
    ctx
}

fn subscribe_context(cluster: &SlonyCluster, set: u32, receiver: u32, provider: u32) -> Context {
    let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
    let mut ctx = slonik_context(cluster, &all);
    ctx.insert("temp_set", &set);
    ctx.insert("receiver", &receiver);
    ctx.insert("provider", &provider);
    ctx
}

fn merge_context(cluster: &SlonyCluster, set: u32) -> Context {
    let all: Vec<&SlonyNode> = cluster.nodes.iter().collect();
    let mut ctx = slonik_context(cluster, &all);
    ctx.insert("temp_set", &set);
    ctx
}

/// The steps of `plan`, each with the script it runs (for `--dry-run`).
fn steps(
    t: &Templates,
    cluster: &SlonyCluster,
    plan: &MigrationPlan,
) -> Result<Vec<MigrationStep>, RoleError> {
    let receivers: Vec<u32> = plan.subscriptions.iter().map(|(r, _)| *r).collect();
    let mut out = Vec::new();
    let merge_steps = |set: u32, out: &mut Vec<MigrationStep>| -> Result<(), RoleError> {
        for (receiver, provider) in &plan.subscriptions {
            out.push(MigrationStep {
                on: plan.origin,
                reaches: vec![*receiver],
                what: format!("subscribe node {receiver} to set {set} (from node {provider})"),
                script: t.render(
                    "slony/subscribe-temp-set.slonik",
                    &subscribe_context(cluster, set, *receiver, *provider),
                )?,
            });
        }
        out.push(MigrationStep {
            on: plan.origin,
            reaches: receivers.clone(),
            what: format!("merge set {set} into set {SET_ID}"),
            script: t.render("slony/merge-set.slonik", &merge_context(cluster, set))?,
        });
        Ok(())
    };
    for set in &plan.pending_sets {
        merge_steps(*set, &mut out)?;
    }
    out.push(MigrationStep {
        on: plan.origin,
        reaches: receivers.clone(),
        what: "the SQL through EXECUTE SCRIPT, in order with the data".to_string(),
        script: plan.sql.clone(),
    });
    if !(plan.tables.is_empty() && plan.sequences.is_empty()) {
        out.push(MigrationStep {
            on: plan.origin,
            reaches: Vec::new(),
            what: format!(
                "create set {} with the new tables and sequences",
                plan.temp_set
            ),
            script: t.render(
                "slony/create-set.slonik",
                &create_set_context(cluster, plan),
            )?,
        });
        merge_steps(plan.temp_set, &mut out)?;
    }
    Ok(out)
}

/// Subscribe every receiver of set 1 to `set` (from the same provider), wait
/// until each has copied it, MERGE SET, and wait until every node has it.
async fn subscribe_and_merge<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
    set: u32,
    subscriptions: &[(u32, u32)],
) -> Result<(), RoleError> {
    let origin = cluster.origin_node()?;
    let origin_remote = remote_of(remotes, origin.id)?;
    let cs = cluster.schema_sql();
    let db = &cluster.database;
    for (receiver, provider) in subscriptions {
        let subscribed = count(
            t,
            origin_remote,
            &origin.node,
            db,
            &format!(
                "select count(*) from {cs}.sl_subscribe where sub_set = {set} and sub_receiver = {receiver}"
            ),
        )
        .await?;
        if subscribed == 0 {
            slonik(
                t,
                origin_remote,
                &origin.node,
                &format!("slony: subscribe node {receiver} to set {set}"),
                "slony/subscribe-temp-set.slonik",
                &subscribe_context(cluster, set, *receiver, *provider),
            )
            .await?;
        }
    }
    // MERGE SET needs every subscription of the new set active on its receiver.
    let started = Instant::now();
    for (receiver, _) in subscriptions {
        let node = cluster.node(*receiver)?;
        let remote = remote_of(remotes, *receiver)?;
        let sql = format!(
            "select coalesce(bool_or(sub_active), false) from {cs}.sl_subscribe \
             where sub_set = {set} and sub_receiver = {receiver}"
        );
        loop {
            let active = scalar(t, remote, &node.node, db, &sql).await.ok();
            if active.as_deref() == Some("t") {
                break;
            }
            if started.elapsed() > cluster.timeout {
                return Err(RoleError::Timeout {
                    node: *receiver,
                    host: remote.host().to_string(),
                    what: "copy the migration's new tables",
                    waited_s: started.elapsed().as_secs(),
                    last: format!("set {set}: sub_active = {}", active.unwrap_or_default()),
                    slon_log: slon_log_tail(t, remote, cluster, &node.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // slonik checks the subscriptions as the origin sees them.
    let active =
        format!("select count(*) from {cs}.sl_subscribe where sub_set = {set} and sub_active");
    loop {
        let seen = count(t, origin_remote, &origin.node, db, &active).await?;
        if seen >= subscriptions.len() as i64 {
            break;
        }
        if started.elapsed() > cluster.timeout {
            return Err(RoleError::Timeout {
                node: origin.id,
                host: origin_remote.host().to_string(),
                what: "see the new set's subscriptions active",
                waited_s: started.elapsed().as_secs(),
                last: format!("{seen} of {} active", subscriptions.len()),
                slon_log: slon_log_tail(t, origin_remote, cluster, &origin.node).await,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exists = count(
        t,
        origin_remote,
        &origin.node,
        db,
        &format!("select count(*) from {cs}.sl_set where set_id = {set}"),
    )
    .await?;
    if exists > 0 {
        slonik(
            t,
            origin_remote,
            &origin.node,
            &format!("slony: merge set {set} into set {SET_ID}"),
            "slony/merge-set.slonik",
            &merge_context(cluster, set),
        )
        .await?;
    }
    // Done when no node knows the temporary set any more.
    let started = Instant::now();
    for node in &cluster.nodes {
        let remote = remote_of(remotes, node.id)?;
        let sql = format!("select count(*) from {cs}.sl_set where set_id = {set}");
        loop {
            let left = count(t, remote, &node.node, db, &sql).await?;
            if left == 0 {
                break;
            }
            if started.elapsed() > cluster.timeout {
                return Err(RoleError::Timeout {
                    node: node.id,
                    host: remote.host().to_string(),
                    what: "process the merge of the migration's set",
                    waited_s: started.elapsed().as_secs(),
                    last: format!("set {set} still there"),
                    slon_log: slon_log_tail(t, remote, cluster, &node.node).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    wait_in_sync(t, cluster, remotes).await
}
