//! Migrations that create tables, on real Postgres 15 + Slony-I 2.2 (the
//! roles through the local transport, as in `roles_pg`): the new tables join
//! replication (temporary set, subscriptions, MERGE SET) and rows written on
//! the origin reach every replica; what Slony-I cannot replicate is refused
//! before anything runs.

use std::time::{Duration, Instant};

use appgrid::roles::RoleError;
use appgrid::roles::slony::{self, MigrationError};

use super::roles_pg::{Env, PORT, app_psql, cluster, rt, tpl, v4, wait_for_value};

const CREATES: &str = "-- comments on items, and a ticket counter\n\
    create table comments (id bigserial primary key, item bigint not null, body text not null);\n\
    create sequence tickets2 start 100;\n";

#[test]
fn a_migration_that_creates_tables_replicates_them_to_every_replica() {
    rt().block_on(async {
        let mut env = Env::new(7, "migrate");
        let (db, cluster) = cluster(&mut env, 3).await;
        let primary = v4(&env.node(1).pg);
        let exists = "select count(*) from pg_class where relname = 'comments'";

        // The plan (a dry run) names what is created and changes nothing.
        let plan = env.ok(
            slony::plan_migration(&tpl(), &cluster, &env.remotes(), CREATES, "blog").await,
        );
        let names = |v: &[slony::NewRelation]| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&plan.tables), ["public.comments"]);
        assert_eq!(
            names(&plan.sequences),
            ["public.comments_id_seq", "public.tickets2"]
        );
        assert_eq!(plan.temp_set, 2);
        assert_eq!(plan.subscriptions, [(2, 1), (3, 1)]);
        let whats: Vec<&str> = plan.steps.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "the SQL through EXECUTE SCRIPT, in order with the data",
                "create set 2 with the new tables and sequences",
                "subscribe node 2 to set 2 (from node 1)",
                "subscribe node 3 to set 2 (from node 1)",
                "merge set 2 into set 1",
            ]
        );
        assert!(
            plan.steps[1].script.contains("fully qualified name = 'public.comments'"),
            "{}",
            plan.steps[1].script
        );
        for id in [1, 2, 3] {
            assert_eq!(env.scalar(id, "blog", exists).await, "0", "node {id}");
        }

        let started = Instant::now();
        env.ok(slony::migrate(&tpl(), &cluster, &env.remotes(), &plan).await);
        eprintln!(
            "measure: migrate creating 1 table + 2 sequences on 3 nodes (execute script, set, 2 subscriptions, merge): {:?}",
            started.elapsed()
        );
        // One set again, holding the new table; the app owns it and writes to it.
        for id in [1, 2, 3] {
            assert_eq!(
                env.scalar(id, "blog", "select string_agg(set_id::text, ',') from _appgrid.sl_set").await,
                "1",
                "node {id}"
            );
            assert_eq!(
                env.scalar(id, "blog", "select count(*) from _appgrid.sl_table where tab_relname = 'comments' and tab_set = 1").await,
                "1",
                "node {id}"
            );
        }
        app_psql(
            &env,
            primary,
            PORT,
            &db,
            "insert into comments (item, body) select g, 'c' || g from generate_series(1, 50) g; select nextval('tickets2');",
        )
        .await
        .expect("the app writes to the new table");
        let sum = "select count(*) || ':' || sum(item) from comments";
        let want = env.scalar(1, "blog", sum).await;
        assert_eq!(want, "50:1275");
        for id in [2, 3] {
            let took = wait_for_value(&env, id, sum, &want, Duration::from_secs(20)).await;
            eprintln!("measure: 50 rows of the new table on node {id} after {took:?}");
            wait_for_value(
                &env,
                id,
                "select last_value from tickets2",
                "100",
                Duration::from_secs(20),
            )
            .await;
        }
        // Subscribers refuse writes to it, as to every replicated table.
        let refused = app_psql(
            &env,
            v4(&env.node(2).pg),
            PORT,
            &db,
            "insert into comments (item, body) values (1, 'x')",
        )
        .await
        .unwrap_err();
        assert!(refused.contains("Slony-I"), "{refused}");

        // A second migration with a new table: ids continue, one set again.
        let plan = env.ok(
            slony::plan_migration(
                &tpl(),
                &cluster,
                &env.remotes(),
                "create table likes (comment bigint primary key references comments(id));",
                "blog",
            )
            .await,
        );
        assert_eq!(plan.tables[0].id, 4, "items, tags, comments before it");
        env.ok(slony::migrate(&tpl(), &cluster, &env.remotes(), &plan).await);
        app_psql(&env, primary, PORT, &db, "insert into likes values (7)")
            .await
            .unwrap();
        wait_for_value(&env, 3, "select count(*) from likes", "1", Duration::from_secs(20)).await;
        env.assert_no_secrets();
    });
}

#[test]
fn a_migration_slony_cannot_replicate_is_refused_before_anything_runs() {
    rt().block_on(async {
        let mut env = Env::new(8, "migrate-refused");
        let (_db, cluster) = cluster(&mut env, 2).await;
        let table_count = "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'";
        let before = env.scalar(1, "blog", table_count).await;

        let err = env
            .keep(
                slony::plan_migration(
                    &tpl(),
                    &cluster,
                    &env.remotes(),
                    "create table ok1 (id int primary key);\ncreate table audit (at timestamptz, what text);\ncreate table events (id int, at timestamptz);",
                    "blog",
                )
                .await,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the migration creates public.audit, public.events without a primary key: Slony-I replicates only tables with one; add one (… PRIMARY KEY …). Nothing was run."
        );
        assert!(matches!(
            err,
            RoleError::Migration(MigrationError::NoPrimaryKey { ref tables }) if tables.len() == 2
        ));

        let err = env
            .keep(
                slony::plan_migration(
                    &tpl(),
                    &cluster,
                    &env.remotes(),
                    "begin;\ncreate table t2 (id int primary key);\ncommit;",
                    "blog",
                )
                .await,
            )
            .unwrap_err();
        assert!(
            matches!(err, RoleError::Migration(MigrationError::TransactionControl { ref statement }) if statement == "begin"),
            "{err}"
        );

        let err = env
            .keep(
                slony::plan_migration(
                    &tpl(),
                    &cluster,
                    &env.remotes(),
                    "create table t3 (id int primary key);\nalter table nope add column x int;",
                    "blog",
                )
                .await,
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("the migration fails on the origin") && text.contains("\"nope\" does not exist"),
            "{text}"
        );

        // Nothing ran anywhere: same relations on the origin, none on the replica.
        assert_eq!(env.scalar(1, "blog", table_count).await, before);
        for name in ["ok1", "audit", "events", "t2", "t3"] {
            for id in [1, 2] {
                assert_eq!(
                    env.scalar(id, "blog", &format!("select count(*) from pg_class where relname = '{name}'")).await,
                    "0",
                    "{name} on node {id}"
                );
            }
        }
        // A change that creates nothing still goes through EXECUTE SCRIPT, with no set.
        let plan = env.ok(
            slony::plan_migration(&tpl(), &cluster, &env.remotes(), "alter table items add column n int;", "blog").await,
        );
        assert!(plan.tables.is_empty() && plan.sequences.is_empty());
        assert_eq!(plan.steps.len(), 1);
        env.ok(slony::migrate(&tpl(), &cluster, &env.remotes(), &plan).await);
        assert_eq!(
            env.scalar(2, "blog", "select count(*) from information_schema.columns where table_name = 'items' and column_name = 'n'").await,
            "1"
        );
        env.assert_no_secrets();
    });
}
