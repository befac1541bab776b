//! The planner's own cases: reasons, rendering, saved-plan freshness.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::cloud::{InstanceStatus, Observed, ObservedInstance};
use crate::fixtures::manifest;
use crate::graph::{ResourceGraph, expand};
use crate::state::{ResourceState, State};

fn source(m: &Manifest) -> Source<'_> {
    Source {
        manifest_path: "blog.toml",
        manifest_sha256: "abc",
        manifest: m,
    }
}

/// A state that records exactly `graph`, with made-up ids.
fn recorded(graph: &ResourceGraph) -> State {
    let mut state = State::new("blog", "lineage-1".into());
    for (n, r) in graph.resources().enumerate() {
        // A configuration records the machine it was applied on.
        let id = match r.address.machine().filter(|m| *m != r.address) {
            Some(machine) => state.resources[&machine].id.clone(),
            None => format!("id-{n}"),
        };
        state.resources.insert(
            r.address,
            ResourceState {
                spec: r.spec.clone(),
                id,
                depends_on: graph.dependencies(&r.address),
                attributes: BTreeMap::new(),
            },
        );
    }
    state.serial = 7;
    state
}

fn observed(state: &State) -> Observed {
    let mut o = Observed::default();
    for (address, r) in &state.resources {
        match (address, &r.spec) {
            (
                crate::graph::ResourceAddress::Instance { .. },
                crate::graph::ResourceSpec::Instance(i),
            ) => o.instances.push(ObservedInstance {
                id: r.id.clone(),
                address: Some(*address),
                spec_hash: Some(r.spec.hash()),
                instance_type: i.instance_type.clone(),
                zone: i.zone.clone(),
                status: InstanceStatus::Running,
                private_ip: None,
                image_id: None,
            }),
            (crate::graph::ResourceAddress::SecurityGroup(g), _) => {
                o.groups.push(crate::cloud::ObservedGroup {
                    id: r.id.clone(),
                    name: String::new(),
                    group: Some(*g),
                })
            }
            (crate::graph::ResourceAddress::KeyPair, _) => {
                o.key_pair = Some(crate::cloud::ObservedKeyPair {
                    name: r.id.clone(),
                    fingerprint: None,
                })
            }
            _ => {}
        }
    }
    o
}

#[test]
fn a_recorded_and_present_app_has_no_changes() {
    let m = manifest(2, Some(1), Some(1));
    let g = expand(&m).unwrap();
    let state = recorded(&g);
    let plan = make(source(&m), &g, Some(&state), Some(&observed(&state)));
    assert!(!plan.has_changes());
    assert_eq!(
        render::text(&plan),
        "No changes. blog matches its manifest.\n"
    );
    // And from state alone, without a refresh.
    assert!(!make(source(&m), &g, Some(&state), None).has_changes());
}

#[test]
fn renders_replace_update_and_delete_with_reasons() {
    let m = manifest(2, Some(1), None);
    let state = recorded(&expand(&m).unwrap());
    let mut changed = manifest(1, Some(1), None);
    changed.web.instance_type = "t3.medium".into();
    changed.web.port = 9090;
    let g = expand(&changed).unwrap();
    let plan = make(source(&changed), &g, Some(&state), Some(&observed(&state)));
    assert_eq!(
        render::text(&plan),
        "appgrid will make these changes to blog:

    ~ sg.web             update: ingress rules changed
        - rule: tcp/8080 from sg.lb
        + rule: tcp/9090 from sg.lb
  -/+ web[0]             replace: instance_type changed, which needs a new instance; the new one starts before the old one is destroyed
        instance_type: t3.small -> t3.medium
    - web[1]             delete: no longer in the manifest (web.count went down)
    ~ lb.config          update: port, servers changed: apply it again
        port: 8080 -> 9090
        servers: web[0],web[1] -> web[0]
    ~ db.primary.config  update: clients changed: apply it again
        clients: web[0],web[1] -> web[0]

Plan: 0 to add, 3 to change, 1 to replace, 1 to destroy.
"
    );
}

#[test]
fn stopped_or_retyped_outside_appgrid_is_replaced_or_moved() {
    let m = manifest(1, Some(0), None);
    let g = expand(&m).unwrap();
    let state = recorded(&g);
    let mut o = observed(&state);
    for i in &mut o.instances {
        if i.address == Some("web[0]".parse().unwrap()) {
            i.status = InstanceStatus::Stopped;
        }
        if i.address == Some("db.primary".parse().unwrap()) {
            i.instance_type = "m5.24xlarge".into();
        }
    }
    let plan = make(source(&m), &g, Some(&state), Some(&o));
    let reasons: Vec<String> = plan
        .actions
        .iter()
        .map(|a| format!("{} {}: {}", a.kind.symbol(), a.address, a.reason))
        .collect();
    let web = &state.resources[&"web[0]".parse().unwrap()].id;
    let db = &state.resources[&"db.primary".parse().unwrap()].id;
    assert_eq!(
        reasons,
        [
            format!(
                "-/+ web[0]: {web} was stopped outside appgrid; the new one starts before the old one is destroyed"
            ),
            // Never destroyed first: a database machine moves online (issue 8).
            format!(
                "~> db.primary: {db} was changed outside appgrid to m5.24xlarge (state says m5.large) (new node, subscribe, switch over, retire the old one)"
            ),
            "~ lb.config: web[0] is new: apply it again".to_string(),
            "~ db.primary.config: web[0] is new: apply it again".to_string(),
        ]
    );
}

#[test]
fn deleting_what_is_already_gone_only_forgets_it() {
    let m = manifest(2, None, None);
    let state = recorded(&expand(&m).unwrap());
    let mut o = observed(&state);
    let gone = state.resources[&"web[1]".parse().unwrap()].id.clone();
    o.instances.retain(|i| i.id != gone);
    let smaller = manifest(1, None, None);
    let plan = make(
        source(&smaller),
        &expand(&smaller).unwrap(),
        Some(&state),
        Some(&o),
    );
    assert_eq!(
        plan.actions.len(),
        2,
        "web[1] forgotten, lb.config drops it"
    );
    assert_eq!(plan.actions[1].address.to_string(), "lb.config");
    assert!(plan.actions[0].prior_gone);
    assert_eq!(
        plan.actions[0].reason,
        format!(
            "no longer in the manifest; {gone} was deleted outside appgrid, so it is only removed from state"
        )
    );
}

#[test]
fn saved_plans_roundtrip_and_refuse_a_moved_state() {
    let m = manifest(2, None, None);
    let g = expand(&m).unwrap();
    let mut state = recorded(&g);
    let plan = make(source(&m), &g, Some(&state), None);
    let dir = std::env::temp_dir().join(format!("appgrid-plan-tests-{}", std::process::id()));
    let path = dir.join("p.plan.json");
    file::save(&plan, &path).unwrap();
    assert_eq!(file::load(&path).unwrap(), plan);
    let state_path = Path::new("s.json");
    file::check_fresh(&plan, Some(&state), state_path).unwrap();

    state.serial += 1;
    assert_eq!(
        file::check_fresh(&plan, Some(&state), state_path)
            .unwrap_err()
            .to_string(),
        "saved plan is stale: it was made at state serial 7, but the state at s.json is now at serial 8 (something was applied since). Make a new plan with `appgrid plan -o`"
    );
    state.lineage = "other".into();
    assert_eq!(
        file::check_fresh(&plan, Some(&state), state_path)
            .unwrap_err()
            .to_string(),
        "saved plan is for another state: it was made for lineage lineage-1, but the state at s.json has lineage other. Make a new plan with `appgrid plan -o`"
    );
    // A plan made before any state is stale once a state exists.
    let fresh = make(source(&m), &g, None, None);
    assert!(file::check_fresh(&fresh, None, state_path).is_ok());
    assert!(file::check_fresh(&fresh, Some(&state), state_path).is_err());

    std::fs::write(&path, "{\"format_version\": 99}").unwrap();
    assert_eq!(
        file::load(&path).unwrap_err().to_string(),
        format!(
            "{} has plan format 99; this appgrid reads format 1. Make a new plan with `appgrid plan -o`",
            path.display()
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 8: a primary `db failover` dropped from the cluster is replaced on
/// the next plan (with or without a refresh), and what ran on it is applied again.
#[test]
fn a_failed_over_database_machine_is_replaced() {
    let m = manifest(1, Some(1), None);
    let g = expand(&m).unwrap();
    let mut state = recorded(&g);
    let primary: crate::graph::ResourceAddress = "db.primary".parse().unwrap();
    state
        .resources
        .get_mut(&primary)
        .unwrap()
        .attributes
        .insert(
            crate::ops::FAILED_OVER.into(),
            "failed and was dropped from the Slony-I cluster (db.replica[0] took over)".into(),
        );
    let id = state.resources[&primary].id.clone();
    for observed in [Some(observed(&state)), None] {
        let plan = make(source(&m), &g, Some(&state), observed.as_ref());
        let replace: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Replace)
            .map(|a| format!("{}: {}", a.address, a.reason))
            .collect();
        assert_eq!(
            replace,
            [format!(
                "db.primary: {id} failed and was dropped from the Slony-I cluster (db.replica[0] took over); a new machine joins as a replica; the old one is destroyed first"
            )]
        );
        assert!(
            plan.actions
                .iter()
                .any(|a| a.address.to_string() == "db.primary.config"
                    && a.kind == ActionKind::Update),
            "{:?}",
            plan.actions
        );
    }
}

/// Issue 8: a database machine that needs a new instance moves online; the
/// plan never destroys it first, and says what the move does.
#[test]
fn a_database_instance_type_change_moves_online() {
    let m = manifest(1, Some(1), None);
    let state = recorded(&expand(&m).unwrap());
    let mut changed = m.clone();
    changed.database.as_mut().unwrap().instance_type = "m5.xlarge".into();
    let g = expand(&changed).unwrap();
    let plan = make(source(&changed), &g, Some(&state), Some(&observed(&state)));
    assert_eq!(
        render::text(&plan),
        "appgrid will make these changes to blog:

   ~> db.primary                  move online: m5.large → m5.xlarge (new node, subscribe, switch over, retire the old one)
        instance_type: m5.large -> m5.xlarge
   ~> db.replica[0]               move online: m5.large → m5.xlarge (new subscriber first, then the old one leaves)
        instance_type: m5.large -> m5.xlarge
    ~ db.primary.config           update: db.primary moves online: apply it again
    ~ db.replica[0].subscription  update: db.replica[0] moves online: apply it again
    ~ slony.cluster               update: db.primary.config is applied again: apply it again

Plan: 0 to add, 3 to change, 0 to replace, 0 to destroy, 2 to move online.
"
    );
    assert!(!plan.actions.iter().any(|a| matches!(
        (a.kind, a.address),
        (
            ActionKind::Replace | ActionKind::Delete,
            crate::graph::ResourceAddress::Instance { .. }
        )
    )));
    let json = serde_json::to_value(&plan).unwrap();
    let primary = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "db.primary")
        .unwrap();
    assert_eq!(primary["kind"], "move");
    assert_eq!(primary["create_before_destroy"], true);
    assert_eq!(
        primary["reason"],
        "m5.large → m5.xlarge (new node, subscribe, switch over, retire the old one)"
    );
}

#[test]
fn replacing_a_cache_node_says_its_contents_are_lost() {
    let m = manifest(1, None, Some(2));
    let state = recorded(&expand(&m).unwrap());
    let mut changed = manifest(1, None, Some(1));
    changed.cache.as_mut().unwrap().instance_type = "r5.xlarge".into();
    let g = expand(&changed).unwrap();
    let plan = make(source(&changed), &g, Some(&state), Some(&observed(&state)));
    let reasons: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.address.to_string().starts_with("cache["))
        .map(|a| format!("{} {}: {}", a.kind.symbol(), a.address, a.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            "-/+ cache[0]: instance_type changed, which needs a new instance; the old one is destroyed first; its cache contents are lost",
            "- cache[1]: no longer in the manifest (cache.nodes went down); its cache contents are lost",
            "~ cache[0].config: cache[0] is new: apply it again",
            "- cache[1].config: no longer in the manifest",
        ]
    );
}

/// An apply that stopped halfway through a move left the incoming machine
/// in state: the next plan carries the move on, and counts it as known.
#[test]
fn an_interrupted_move_is_resumed() {
    let m = manifest(1, Some(1), None);
    let g = expand(&m).unwrap();
    let mut state = recorded(&g);
    let replica: crate::graph::ResourceAddress = "db.replica[0]".parse().unwrap();
    let mut incoming = state.resources[&replica].clone();
    incoming.id = "i-incoming".into();
    state.moves.insert(
        replica,
        crate::state::Moving {
            direction: crate::state::MoveDirection::Incoming,
            machine: incoming.clone(),
            node: 100,
            restore: None,
        },
    );
    let mut o = observed(&state);
    let mut seen = o
        .instances
        .iter()
        .find(|i| i.address == Some(replica))
        .unwrap()
        .clone();
    seen.id = "i-incoming".into();
    o.instances.push(seen);
    let plan = make(source(&m), &g, Some(&state), Some(&o));
    assert!(plan.orphans.is_empty(), "{:?}", plan.orphans);
    let old = &state.resources[&replica].id;
    let reasons: Vec<String> = plan
        .actions
        .iter()
        .map(|a| format!("{} {}: {}", a.kind.symbol(), a.address, a.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            format!(
                "~> db.replica[0]: resume the interrupted move: i-incoming (node 100) is joining; subscribe it, then {old} leaves"
            ),
            // The primary admits the new machine as a peer (pg_hba).
            "~ db.primary.config: db.replica[0] moves online: apply it again".to_string(),
            "~ db.replica[0].subscription: db.replica[0] moves online: apply it again".to_string(),
            "~ slony.cluster: db.primary.config is applied again: apply it again".to_string(),
        ]
    );
}

/// A primary without replicas has no Slony-I cluster to move through: the
/// plan still says "move", and `lone_move` is what makes `apply` refuse it
/// before anything changes; with a replica the move goes ahead.
#[test]
fn moving_a_primary_without_replicas_is_refused_with_a_way_out() {
    let plan_for = |replicas: u32| {
        let m = manifest(1, Some(replicas), None);
        let state = recorded(&expand(&m).unwrap());
        let mut changed = m.clone();
        changed.database.as_mut().unwrap().instance_type = "m5.xlarge".into();
        let g = expand(&changed).unwrap();
        let plan = make(source(&changed), &g, Some(&state), Some(&observed(&state)));
        (plan, state)
    };
    let (plan, mut state) = plan_for(0);
    let lone = lone_move::lone_move(&plan, Some(&state)).expect("refused");
    assert_eq!(
        lone.reason,
        "m5.large → m5.xlarge (new node, subscribe, switch over, retire the old one)"
    );
    let text = lone.explain();
    assert!(
        text.starts_with("db.primary needs a new machine (m5.large → m5.xlarge (new node")
            && text.contains("nothing was changed")
            && text.contains("set `replicas = 1` in [database] and apply"),
        "{text}"
    );
    // A move already under way is left to resume.
    let primary = crate::graph::ResourceAddress::instance(crate::graph::Role::DbPrimary, 0);
    let machine = state.resources[&primary].clone();
    state.moves.insert(
        primary,
        crate::state::Moving {
            direction: crate::state::MoveDirection::Incoming,
            machine,
            node: 100,
            restore: None,
        },
    );
    assert_eq!(lone_move::lone_move(&plan, Some(&state)), None);

    let (plan, state) = plan_for(1);
    assert!(
        plan.actions
            .iter()
            .any(|a| a.address == primary && a.kind == ActionKind::Move)
    );
    assert_eq!(lone_move::lone_move(&plan, Some(&state)), None);
    assert_eq!(lone_move::lone_move(&plan, None), None);
}
