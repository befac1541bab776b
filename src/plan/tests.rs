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
fn stopped_or_retyped_outside_appgrid_is_replaced() {
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
            format!(
                "-/+ db.primary: {db} was changed outside appgrid to m5.24xlarge (state says m5.large); the old one is destroyed first"
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
