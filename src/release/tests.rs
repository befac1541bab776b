use std::collections::BTreeMap;

use super::*;
use crate::graph::ConfigSpec;

fn content(code: &str, start: &str) -> ReleaseContent {
    let spec = ResourceSpec::Config(ConfigSpec {
        inputs: BTreeMap::from([
            ("release".to_string(), code.to_string()),
            ("start".to_string(), start.to_string()),
            ("health".to_string(), "/health".to_string()),
        ]),
    });
    content_of(&spec).unwrap()
}

fn when(at: &str) -> When {
    When {
        at: at.to_string(),
        by: "ann@build1".to_string(),
    }
}

fn on(c: &ReleaseContent, dir: &str) -> Option<(ReleaseContent, Option<String>)> {
    Some((c.clone(), Some(dir.to_string())))
}

#[test]
fn a_rollout_that_reached_every_server_is_the_active_release() {
    let mut r = Releases::default();
    let a = content("aaa", "./run");
    assert_eq!(
        r.book(&a, &[on(&a, "d1"), on(&a, "d1")], None, &when("t1")),
        Some(1)
    );
    // The same again: nothing new.
    assert_eq!(
        r.book(&a, &[on(&a, "d1"), on(&a, "d1")], None, &when("t2")),
        None
    );
    // New code: v2 active, v1 superseded.
    let b = content("bbb", "./run");
    assert_eq!(
        r.book(&b, &[on(&b, "d2"), on(&b, "d2")], None, &when("t3")),
        Some(2)
    );
    assert_eq!(r.get(1).unwrap().status, ReleaseStatus::Superseded);
    let v2 = r.active().unwrap();
    assert_eq!(
        (v2.number, v2.dir.as_deref(), v2.at.as_str()),
        (2, Some("d2"), "t3")
    );
    assert_eq!(v2.by, "ann@build1");
    // A new start command alone is a new release too (same code, other config).
    let c = content("bbb", "./run --fast");
    assert_ne!(c.config, b.config);
    assert_eq!(
        r.book(&c, &[on(&c, "d2"), on(&c, "d2")], None, &when("t4")),
        Some(3)
    );
}

#[test]
fn a_failed_rollout_is_recorded_failed_and_the_active_one_stays() {
    let mut r = Releases::default();
    let a = content("aaa", "./run");
    r.book(&a, &[on(&a, "d1"), on(&a, "d1")], None, &when("t1"));
    let bad = content("bad", "./run");
    let n = r.book(
        &bad,
        &[on(&a, "d1"), on(&a, "d1")],
        Some("web[0].release: release x failed"),
        &when("t2"),
    );
    assert_eq!(n, Some(2));
    let v2 = r.get(2).unwrap();
    assert_eq!(v2.status, ReleaseStatus::Failed);
    assert_eq!(v2.note, "web[0].release: release x failed");
    assert_eq!(r.active().unwrap().number, 1);
    // Interrupted without a failure: nothing booked.
    assert_eq!(r.book(&bad, &[on(&a, "d1"), None], None, &when("t3")), None);
    assert_eq!(r.records.len(), 2);
}

#[test]
fn status_reads_as_words_and_records_round_trip_through_json() {
    assert_eq!(ReleaseStatus::RolledBack.to_string(), "rolled back");
    let mut r = Releases::default();
    let a = content("aaa", "./run");
    r.book(&a, &[on(&a, "d1")], None, &when("t1"));
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"status\":\"active\""), "{json}");
    let back: Releases = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn a_booked_release_keeps_the_config_vars_of_its_time_and_a_rollback_spec_carries_their_digest() {
    use secrecy::SecretString;
    let mut vars = config_vars::ConfigVars::default();
    vars.set(vec![("A".to_string(), SecretString::from("1"))], || {
        "salt".to_string()
    })
    .unwrap();
    let mut r = Releases::default();
    // Released with those vars: their digest is an input of its spec.
    let a = content_of(&ResourceSpec::Config(ConfigSpec {
        inputs: BTreeMap::from([
            ("release".to_string(), "aaa".to_string()),
            ("start".to_string(), "./run".to_string()),
            ("health".to_string(), "/health".to_string()),
            ("config".to_string(), vars.digest()),
        ]),
    }))
    .unwrap();
    let n = r.book(&a, &[on(&a, "d1")], None, &when("t1")).unwrap();
    r.keep_config(n, vars.clone());
    let record = r.get(n).unwrap().clone();
    assert_eq!(record.config_vars.as_ref(), Some(&vars));
    // Kept in state as JSON (the 0600 file), read back the same.
    let json = serde_json::to_string(&r).unwrap();
    let back: Releases = serde_json::from_str(&json).unwrap();
    assert_eq!(back.get(n).unwrap().config_vars.as_ref(), Some(&vars));

    // A spec made with other vars goes back to this release's.
    let spec = ResourceSpec::Config(ConfigSpec {
        inputs: BTreeMap::from([
            ("release".to_string(), "bbb".to_string()),
            ("start".to_string(), "./run".to_string()),
            ("health".to_string(), "/health".to_string()),
            ("config".to_string(), "other-digest".to_string()),
        ]),
    });
    let pinned = pinned_spec(&spec, &record);
    let ResourceSpec::Config(c) = &pinned else {
        panic!()
    };
    assert_eq!(c.inputs.get("config"), Some(&vars.digest()));
    assert_eq!(content_of(&pinned).unwrap().config, record.content.config);
    // A release made without vars takes them away.
    r.keep_config(n, config_vars::ConfigVars::default());
    let ResourceSpec::Config(c) = pinned_spec(&spec, r.get(n).unwrap()) else {
        panic!()
    };
    assert!(!c.inputs.contains_key("config"));
}
