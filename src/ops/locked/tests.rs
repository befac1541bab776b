//! The locked, recorded path against the recording fakes: results recorded
//! and saved, rolling order, a failure leaving state that says what was done,
//! the lock held throughout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::apply::fake::FakeConfigurator;
use crate::cloud::fake::FakeCloud;
use crate::graph::{ConfigSpec, InstanceSpec, Role};
use crate::state::ResourceState;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local app with three web servers released and a database, applied.
fn workspace(name: &str) -> (Dir, Workspace) {
    let dir = std::env::temp_dir().join(format!("appgrid-locked-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("blog.toml");
    std::fs::write(
        &manifest,
        "[app]\nname = \"blog\"\n\n[provider]\nkind = \"local\"\n\n\
         [web]\ninstance_type = \"t3.small\"\ncount = 3\nport = 8080\n\n\
         [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n",
    )
    .unwrap();
    let ws = Workspace::open(&manifest, None).unwrap();
    let mut state = State::new("blog", crate::state::new_lineage());
    let instance = |role: Role| {
        ResourceSpec::Instance(InstanceSpec {
            role,
            instance_type: "t3.small".into(),
            image: String::new(),
            zone: "local".into(),
            key_name: String::new(),
            group: role.group(),
            user_data: String::new(),
        })
    };
    let config = ResourceSpec::Config(ConfigSpec {
        inputs: BTreeMap::from([("release".to_string(), "abc".to_string())]),
    });
    let mut put = |address, spec, id: &str, attributes: &[(&str, &str)]| {
        state.resources.insert(
            address,
            ResourceState {
                spec,
                id: id.to_string(),
                depends_on: Vec::new(),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    };
    for i in 0..3 {
        let id = format!("local-web-{i}");
        put(
            ResourceAddress::instance(Role::Web, i),
            instance(Role::Web),
            &id,
            &[],
        );
        put(
            ResourceAddress::config(Role::Web, i),
            config.clone(),
            &id,
            &[("release", "old")],
        );
    }
    put(
        ResourceAddress::instance(Role::DbPrimary, 0),
        instance(Role::DbPrimary),
        "local-db",
        &[],
    );
    put(
        ResourceAddress::config(Role::DbPrimary, 0),
        config.clone(),
        "local-db",
        &[("user", "blog")],
    );
    ws.store().save(&mut state).unwrap();
    (Dir(dir), ws)
}

fn on_disk(ws: &Workspace) -> State {
    ws.load_state().unwrap().unwrap()
}

#[tokio::test]
async fn reconfigure_records_every_result_and_holds_the_lock() {
    let (_dir, ws) = workspace("records");
    let serial = on_disk(&ws).serial;
    let mut locked = Locked::acquire(&ws, "test", Duration::from_secs(1)).unwrap();
    // Held: nobody else gets the lock meanwhile.
    assert!(ws.lock("other", Duration::ZERO).is_err());
    let k = Arc::new(FakeConfigurator::new());
    let primary = ResourceAddress::config(Role::DbPrimary, 0);
    let mut events = Vec::new();
    let outcome = locked
        .reconfigure(
            Arc::new(FakeCloud::new()),
            Arc::clone(&k),
            &[primary],
            "a test",
            &mut |e| events.push(e),
        )
        .await
        .unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.done, ["db.primary.config: configure"]);
    // What the step returned is in state on disk: the fake's generated
    // password replaced the recorded attributes, and the serial moved.
    let saved = on_disk(&ws);
    assert!(saved.serial > serial);
    let record = &saved.resources[&primary];
    assert!(record.attributes.contains_key("password"), "{record:?}");
    assert!(!record.attributes.contains_key("user"));
    assert_eq!(&saved, locked.state());
    assert!(events.iter().any(|e| matches!(e, Event::Saved { .. })));
    locked.release();
    assert!(ws.lock("other", Duration::ZERO).is_ok());
}

#[tokio::test]
async fn web_releases_roll_and_a_failure_stops_the_rest_with_state_saying_so() {
    let (_dir, ws) = workspace("rolling");
    let mut locked = Locked::acquire(&ws, "test", Duration::from_secs(1)).unwrap();
    let k = Arc::new(FakeConfigurator::new());
    k.fail_on(ResourceAddress::config(Role::Web, 1));
    let web: Vec<ResourceAddress> = (0..3)
        .map(|i| ResourceAddress::config(Role::Web, i))
        .collect();
    let changed = Changed {
        attributes: BTreeMap::from([(
            ResourceAddress::config(Role::DbPrimary, 0),
            BTreeMap::from([("origin".to_string(), "2".to_string())]),
        )]),
        reconfigure: web.clone(),
        reason: "a test".into(),
    };
    let outcome = locked
        .apply(
            Arc::new(FakeCloud::new()),
            Arc::clone(&k),
            &changed,
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(outcome.done, ["web[0].release: configure"]);
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].0, "web[1].release: configure");
    assert!(
        outcome.failed[0].1.contains("injected failure"),
        "{outcome:?}"
    );
    assert_eq!(outcome.skipped, ["web[2].release: configure"]);
    // One at a time, in order: web[1] started after web[0] finished.
    let calls = k.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].finished < calls[1].started);
    let saved = on_disk(&ws);
    // Recorded: the attribute merged, web[0]'s new result, web[1] and web[2] as they were.
    let primary = &saved.resources[&ResourceAddress::config(Role::DbPrimary, 0)];
    assert_eq!(primary.attributes["origin"], "2");
    assert_eq!(primary.attributes["user"], "blog");
    assert!(!saved.resources[&web[0]].attributes.contains_key("release"));
    assert_eq!(saved.resources[&web[1]].attributes["release"], "old");
    assert_eq!(saved.resources[&web[2]].attributes["release"], "old");
}

#[tokio::test]
async fn nothing_changes_when_an_address_is_not_in_state() {
    let (_dir, ws) = workspace("missing");
    let before = on_disk(&ws);
    let mut locked = Locked::acquire(&ws, "test", Duration::from_secs(1)).unwrap();
    let cache = ResourceAddress::config(Role::Cache, 0);
    let err = locked
        .record(&BTreeMap::from([
            (
                ResourceAddress::config(Role::Web, 0),
                BTreeMap::from([("x".to_string(), "1".to_string())]),
            ),
            (cache, BTreeMap::new()),
        ]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cache[0].config is not in state; `appgrid state list` shows what is"
    );
    let k = Arc::new(FakeConfigurator::new());
    let err = locked
        .reconfigure(
            Arc::new(FakeCloud::new()),
            Arc::clone(&k),
            &[cache],
            "x",
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LockedError::NotInState { address } if address == cache));
    let err = locked
        .reconfigure(
            Arc::new(FakeCloud::new()),
            Arc::clone(&k),
            &[ResourceAddress::instance(Role::Web, 0)],
            "x",
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LockedError::NotAConfiguration { .. }));
    assert!(k.calls().is_empty());
    assert_eq!(on_disk(&ws), before);
}

#[test]
fn an_app_never_applied_is_refused() {
    let (dir, ws) = workspace("none");
    std::fs::remove_file(&ws.store_path).unwrap();
    let err = Locked::acquire(&ws, "test", Duration::from_secs(1))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "no state at {}: apply {} first",
            ws.store_path.display(),
            dir.0.join("blog.toml").display()
        )
    );
}
