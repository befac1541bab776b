//! The walker when the cloud misbehaves or a step panics (issue 10): lost
//! launch answers, launches made twice, tokens, the final listing, panics.

use std::sync::Arc;

use tokio::sync::watch;

use super::fake::FakeConfigurator;
use super::tests::{converge, key_dir, make_plan, new_state, owner, rt, run};
use super::*;
use crate::cloud::fake::FakeCloud;
use crate::cloud::{Cloud, InstanceStatus, launch_token};
use crate::fixtures::manifest;
use crate::graph::{ResourceAddress, Role};

fn web(i: u32) -> ResourceAddress {
    ResourceAddress::instance(Role::Web, i)
}

/// Live instances per address tag, as the cloud holds them.
fn live_addresses(cloud: &FakeCloud) -> Vec<ResourceAddress> {
    let mut v: Vec<_> = cloud
        .live_instances()
        .iter()
        .filter_map(|i| i.address)
        .collect();
    v.sort();
    v
}

#[test]
fn a_launch_made_twice_keeps_one_and_terminates_the_other_in_the_same_apply() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        cloud.double_launches("web[");
        let mut state = new_state();
        let m = manifest(2, None, None);
        let outcome = converge(&cloud, &m, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        // Every address once, each the one state records.
        let live = cloud.live_instances();
        let mut addresses = live_addresses(&cloud);
        addresses.dedup();
        assert_eq!(live.len(), addresses.len(), "{live:?}");
        for i in &live {
            let recorded = &state.resources[&i.address.unwrap()];
            assert_eq!(recorded.id, i.id);
        }
        let mut terminated: Vec<_> = outcome
            .verification
            .terminated
            .iter()
            .map(|t| t.0)
            .collect();
        terminated.sort();
        assert_eq!(terminated, vec![Some(web(0)), Some(web(1))], "{outcome:?}");
        // Nothing left to do.
        let again = make_plan(&m, &state, &cloud).await;
        assert!(!again.has_changes(), "{again:?}");
    });
}

#[test]
fn a_lost_launch_answer_is_found_by_tag_and_recorded() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        cloud.lose_launch_answers("web[");
        let mut state = new_state();
        let m = manifest(2, None, None);
        let outcome = converge(&cloud, &m, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        let mut adopted: Vec<_> = outcome.verification.adopted.iter().map(|a| a.0).collect();
        adopted.sort();
        assert_eq!(adopted, vec![web(0), web(1)]);
        assert_eq!(cloud.live_instances().len(), state_instances(&state));
        assert!(!make_plan(&m, &state, &cloud).await.has_changes());
    });
}

fn state_instances(state: &crate::state::State) -> usize {
    state
        .resources
        .keys()
        .filter(|a| matches!(a, ResourceAddress::Instance { .. }))
        .count()
}

#[test]
fn the_final_listing_terminates_what_a_narrowed_plan_acted_on_and_no_step_recorded() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(1, None, None);
        assert!(converge(&cloud, &m, &mut state).await.is_success());
        // Someone (a lost answer of an earlier attempt) made a second web[0].
        let plan = make_plan(&manifest(2, None, None), &state, &cloud).await;
        let mut request = crate::cloud::LaunchRequest {
            owner: owner(&state),
            spec: match &state.resources[&web(0)].spec {
                crate::graph::ResourceSpec::Instance(s) => s.clone(),
                _ => unreachable!(),
            },
            spec_hash: state.resources[&web(0)].spec.hash(),
            addresses: vec![web(0)],
            group_id: state.resources[&ResourceAddress::SecurityGroup(crate::graph::Group::Web)]
                .id
                .clone(),
            client_token: String::new(),
        };
        request.client_token = "outside".into();
        cloud.launch(&request).await.unwrap();
        let (outcome, _) = run(&cloud, &plan, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        assert_eq!(outcome.verification.terminated.len(), 1, "{outcome:?}");
        assert_eq!(outcome.verification.terminated[0].0, Some(web(0)));
        assert_eq!(live_addresses(&cloud), {
            let mut v: Vec<_> = state
                .resources
                .keys()
                .filter(|a| matches!(a, ResourceAddress::Instance { .. }))
                .copied()
                .collect();
            v.sort();
            v
        });
    });
}

#[test]
fn an_instance_state_holds_that_the_cloud_lost_fails_the_apply() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(1, None, None);
        assert!(converge(&cloud, &m, &mut state).await.is_success());
        let plan = make_plan(&manifest(2, None, None), &state, &cloud).await;
        // Gone between the plan and the end of the apply.
        cloud.terminate_outside(&state.resources[&web(0)].id);
        let (outcome, _) = run(&cloud, &plan, &mut state).await;
        let mismatch = outcome.verification.mismatch.clone().unwrap_or_default();
        assert!(mismatch.starts_with("state holds web[0] ("), "{outcome:?}");
        assert!(!outcome.is_success());
    });
}

#[test]
fn launch_tokens_are_stable_for_one_launch_and_new_for_the_next() {
    rt().block_on(async {
        let o = |l: &str| crate::cloud::Owner {
            app: "blog".into(),
            lineage: l.into(),
        };
        let a = [web(0), web(1)];
        let t = launch_token(&o("L"), &a, "h", 0, 0);
        assert_eq!(
            t,
            launch_token(&o("L"), &a, "h", 0, 0),
            "same intent, same token"
        );
        assert!(t.len() <= 64 && t.is_ascii());
        for other in [
            launch_token(&o("M"), &a, "h", 0, 0),
            launch_token(&o("L"), &a[..1], "h", 0, 0),
            launch_token(&o("L"), &a, "g", 0, 0),
            launch_token(&o("L"), &a, "h", 1, 0),
            launch_token(&o("L"), &a, "h", 0, 1),
        ] {
            assert_ne!(t, other);
        }

        // A relaunch after the address was removed sends another token.
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        assert!(
            converge(&cloud, &manifest(2, None, None), &mut state)
                .await
                .is_success()
        );
        assert!(
            converge(&cloud, &manifest(1, None, None), &mut state)
                .await
                .is_success()
        );
        assert!(
            converge(&cloud, &manifest(2, None, None), &mut state)
                .await
                .is_success()
        );
        let tokens = cloud.tokens();
        let web1: Vec<&String> = tokens.iter().rev().take(1).collect();
        assert!(
            tokens[..tokens.len() - 1].iter().all(|t| t != web1[0]),
            "{tokens:?}"
        );
        assert_eq!(state.generations.get(&web(1)), Some(&1));
    });
}

#[test]
fn a_panicking_step_fails_with_its_address_and_the_walk_ends() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(2, None, None);
        let plan = make_plan(&m, &state, &cloud).await;
        let configurator = Arc::new(FakeConfigurator::new());
        configurator.panic_on(ResourceAddress::config(Role::Lb, 0));
        let mut checkpoint = MemoryCheckpoint::default();
        let (_tx, rx) = watch::channel(false);
        let options = ApplyOptions {
            parallelism: 1,
            base_dir: key_dir(),
        };
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            walk(
                Arc::clone(&cloud),
                configurator,
                &plan,
                &mut state,
                &mut checkpoint,
                &options,
                rx,
                &mut |_| {},
            ),
        )
        .await
        .expect("the walk ends");
        let (label, error) = outcome
            .failed
            .iter()
            .find(|(l, _)| l.starts_with("lb.config"))
            .unwrap_or_else(|| panic!("{outcome:?}"));
        assert_eq!(label, "lb.config: configure");
        assert!(
            error.starts_with("panicked: injected panic configuring lb.config"),
            "{error}"
        );
        assert!(!outcome.is_success());
        // State was saved and says what exists.
        let saved = checkpoint.saved.last().unwrap();
        for i in cloud.live_instances() {
            assert!(
                saved.resources.values().any(|r| r.id == i.id),
                "{} not in state",
                i.id
            );
        }
        assert!(
            cloud
                .live_instances()
                .iter()
                .all(|i| i.status == InstanceStatus::Running)
        );
    });
}
