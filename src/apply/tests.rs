//! The walker against the recording fake: ordering, failure isolation,
//! convergence (apply then re-plan is empty), drift, orphans.

use std::sync::Arc;

use proptest::prelude::*;
use tokio::sync::watch;

use super::fake::FakeConfigurator;
use super::*;
use crate::cloud::fake::FakeCloud;
use crate::cloud::{Cloud, Owner};
use crate::fixtures::manifest;
use crate::graph::expand;
use crate::manifest::Manifest;
use crate::plan::{self, Plan};
use crate::state::State;

pub(super) fn key_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("appgrid-apply-tests-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(
        dir.join("keys/id_ed25519.pub"),
        "ssh-ed25519 AAAAtest test\n",
    )
    .unwrap();
    dir
}

pub(super) fn owner(state: &State) -> Owner {
    Owner {
        app: state.app.clone(),
        lineage: state.lineage.clone(),
    }
}

pub(super) async fn make_plan(m: &Manifest, state: &State, cloud: &FakeCloud) -> Plan {
    let observed = cloud.refresh(&owner(state)).await.unwrap();
    plan::make(
        plan::Source {
            manifest_path: "blog.toml",
            manifest_sha256: "",
            manifest: m,
        },
        &expand(m).unwrap(),
        Some(state),
        Some(&observed),
    )
}

pub(super) async fn run(
    cloud: &Arc<FakeCloud>,
    plan: &Plan,
    state: &mut State,
) -> (Outcome, Vec<Event>) {
    let (outcome, events, _) = run_recording(cloud, plan, state).await;
    (outcome, events)
}

/// Also returns what the configurator was asked, stamped on the cloud's clock.
pub(super) async fn run_recording(
    cloud: &Arc<FakeCloud>,
    plan: &Plan,
    state: &mut State,
) -> (Outcome, Vec<Event>, Vec<super::fake::ConfigCall>) {
    let mut checkpoint = MemoryCheckpoint::default();
    let options = ApplyOptions {
        parallelism: 4,
        base_dir: key_dir(),
    };
    let (_tx, rx) = watch::channel(false);
    let mut events = Vec::new();
    let configurator = Arc::new(FakeConfigurator::with_clock(cloud.clock()));
    let outcome = walk(
        Arc::clone(cloud),
        Arc::clone(&configurator),
        plan,
        state,
        &mut checkpoint,
        &options,
        rx,
        &mut |e| events.push(e),
    )
    .await;
    (outcome, events, configurator.calls())
}

pub(super) async fn converge(cloud: &Arc<FakeCloud>, m: &Manifest, state: &mut State) -> Outcome {
    let plan = make_plan(m, state, cloud).await;
    run(cloud, &plan, state).await.0
}

pub(super) fn new_state() -> State {
    State::new("blog", "lineage-1".into())
}

pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn apply_then_replan_is_empty() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(2, Some(1), Some(1));
        let outcome = converge(&cloud, &m, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        assert_eq!(cloud.live_instances().len(), 6);
        assert_eq!(cloud.group_count(), 4);
        let again = make_plan(&m, &state, &cloud).await;
        assert!(!again.has_changes(), "{}", plan::render::text(&again));
    });
}

#[test]
fn identical_instances_in_one_zone_launch_in_one_call() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let mut m = manifest(10, None, None);
        m.provider.zones.truncate(1);
        converge(&cloud, &m, &mut state).await;
        let web_launches: Vec<_> = cloud
            .calls()
            .into_iter()
            .filter(|c| c.operation == "launch" && c.subject.starts_with("web"))
            .collect();
        assert_eq!(web_launches.len(), 1, "{web_launches:?}");
        assert_eq!(web_launches[0].subject, "web[0:10:1]");
    });
}

#[test]
fn scale_out_and_in() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        converge(&cloud, &manifest(2, None, None), &mut state).await;
        let up = make_plan(&manifest(5, None, None), &state, &cloud).await;
        let creates: Vec<String> = up
            .actions
            .iter()
            .map(|a| format!("{} {}", a.kind.symbol(), a.address))
            .collect();
        assert_eq!(creates, ["+ web[2]", "+ web[3]", "+ web[4]", "~ lb.config"]);
        let (_, _, configs) = run_recording(&cloud, &up, &mut state).await;
        assert_eq!(cloud.live_instances().len(), 6);
        // The load balancer learns of the new servers once they exist.
        let lb = configs
            .iter()
            .find(|c| c.address.to_string() == "lb.config")
            .expect("lb configured");
        let launched = cloud
            .calls()
            .iter()
            .filter(|c| c.operation == "wait_running")
            .map(|c| c.finished)
            .max()
            .unwrap();
        assert!(lb.started > launched);

        let down = make_plan(&manifest(2, None, None), &state, &cloud).await;
        assert_eq!(down.summary().delete, 3);
        assert_eq!(down.summary().update, 1, "lb.config drops the servers");
        let before = cloud.count("terminate");
        let (outcome, _, configs) = run_recording(&cloud, &down, &mut state).await;
        assert!(outcome.is_success());
        // Drained before terminated: the load balancer's update finishes first.
        let lb = configs
            .iter()
            .find(|c| c.address.to_string() == "lb.config")
            .expect("lb configured");
        let terminate = cloud
            .calls()
            .into_iter()
            .rfind(|c| c.operation == "terminate")
            .unwrap();
        assert!(
            lb.finished < terminate.started,
            "lb.config must drop web[2..5] before they are terminated"
        );
        assert_eq!(
            cloud.count("terminate") - before,
            1,
            "one call terminates the batch"
        );
        assert_eq!(cloud.live_instances().len(), 3);
    });
}

#[test]
fn a_failed_step_skips_its_dependents_and_nothing_else() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        cloud.fail_on("create_security_group", "sg.web");
        let mut state = new_state();
        let m = manifest(2, Some(1), Some(1));
        let plan = make_plan(&m, &state, &cloud).await;
        let (outcome, _) = run(&cloud, &plan, &mut state).await;
        assert_eq!(outcome.failed.len(), 1);
        assert!(
            outcome.failed[0].1.contains("InjectedFailure"),
            "{:?}",
            outcome.failed
        );
        // web instances, and the groups and machines that need sg.web, never ran.
        assert!(
            cloud
                .calls()
                .iter()
                .all(|c| !(c.operation == "launch" && c.subject.starts_with("web")))
        );
        let skipped = outcome.skipped.join("; ");
        assert!(
            skipped.contains("web[0:2:1]: launch") || skipped.contains("web[0]: launch"),
            "{skipped}"
        );
        assert!(skipped.contains("sg.db: create"), "{skipped}");
        // The load balancer does not need sg.web: it ran.
        assert!(state.resources.contains_key(&"lb".parse().unwrap()));
        assert!(!state.resources.contains_key(&"sg.web".parse().unwrap()));
    });
}

#[test]
fn instance_terminated_outside_is_recreated() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(2, None, None);
        converge(&cloud, &m, &mut state).await;
        let web1 = state.resources[&"web[1]".parse().unwrap()].id.clone();
        cloud.terminate_outside(&web1);
        let plan = make_plan(&m, &state, &cloud).await;
        let summary: Vec<String> = plan
            .actions
            .iter()
            .map(|a| format!("{} {}: {}", a.kind.symbol(), a.address, a.reason))
            .collect();
        assert_eq!(
            summary,
            [
                format!("+ web[1]: {web1} was deleted outside appgrid"),
                "~ lb.config: web[1] is new: apply it again".to_string(),
            ]
        );
        run(&cloud, &plan, &mut state).await;
        assert!(!make_plan(&m, &state, &cloud).await.has_changes());
    });
}

#[test]
fn instances_missing_from_state_are_adopted_and_duplicates_removed() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(2, None, None);
        converge(&cloud, &m, &mut state).await;
        // An interrupted apply: web[1] launched twice, state never recorded either.
        let lost = state.resources.remove(&"web[1]".parse().unwrap()).unwrap();
        let spec = match &lost.spec {
            crate::graph::ResourceSpec::Instance(s) => s.clone(),
            _ => unreachable!(),
        };
        let request = crate::cloud::LaunchRequest {
            owner: owner(&state),
            spec_hash: lost.spec.hash(),
            spec,
            addresses: vec!["web[1]".parse().unwrap()],
            group_id: state.resources[&"sg.web".parse().unwrap()].id.clone(),
            client_token: "t".into(),
        };
        cloud.launch(&request).await.unwrap();
        let plan = make_plan(&m, &state, &cloud).await;
        let text = plan::render::text(&plan);
        assert_eq!(plan.summary().adopt, 1, "{text}");
        assert_eq!(plan.orphans.len(), 1, "{text}");
        assert!(plan.orphans[0].reason.contains("duplicate"), "{text}");
        run(&cloud, &plan, &mut state).await;
        assert_eq!(cloud.live_instances().len(), 3);
        assert!(!make_plan(&m, &state, &cloud).await.has_changes());
    });
}

#[test]
fn web_replacement_starts_the_new_instance_before_terminating_the_old() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let mut m = manifest(1, Some(1), None);
        converge(&cloud, &m, &mut state).await;
        m.web.instance_type = "t3.medium".into();
        m.database.as_mut().unwrap().instance_type = "m5.xlarge".into();
        let plan = make_plan(&m, &state, &cloud).await;
        assert_eq!(plan.summary().replace, 1, "web[0]");
        assert_eq!(plan.summary().moved, 2, "db.primary and db.replica[0]");
        let start = cloud.calls().len();
        let (outcome, _, configured) = run_recording(&cloud, &plan, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        let calls = &cloud.calls()[start..];
        let pos = |op: &str, subject: &str| {
            calls
                .iter()
                .position(|c| c.operation == op && c.subject.starts_with(subject))
                .unwrap_or_else(|| panic!("no {op} {subject} in {calls:?}"))
        };
        let prior = |address: &str| {
            plan.actions
                .iter()
                .find(|a| a.address.to_string() == address)
                .unwrap()
                .prior
                .as_ref()
                .unwrap()
                .id
                .clone()
        };
        assert!(pos("launch", "web[0]") < pos("terminate", &prior("web[0]")));
        // Never destroy-first for the database: the new machine is launched
        // before the old one goes, for the primary and the replica alike.
        assert!(pos("launch", "db.primary") < pos("terminate", &prior("db.primary")));
        assert!(pos("launch", "db.replica[0]") < pos("terminate", &prior("db.replica[0]")));
        let at = |op: &str, address: &str| {
            configured
                .iter()
                .find(|c| c.operation == op && c.address.to_string() == address)
                .unwrap_or_else(|| panic!("no {op} {address} in {configured:?}"))
                .started
        };
        assert!(at("move-in", "db.primary") < at("move-out", "db.primary"));
        // The configurations the move carries are not applied apart from it.
        assert!(
            !configured
                .iter()
                .any(|c| c.operation == "configure" && c.address.to_string() == "db.primary.config"),
            "{configured:?}"
        );
        assert!(state.moves.is_empty(), "{:?}", state.moves);
        let primary = &state.resources[&"db.primary".parse().unwrap()];
        assert_ne!(primary.id, prior("db.primary"));
        assert_eq!(
            state.resources[&"db.primary.config".parse().unwrap()].id,
            primary.id
        );
        let cluster = &state.resources[&crate::graph::ResourceAddress::SlonyCluster];
        assert_eq!(cluster.id, primary.id);
        assert_eq!(
            cluster.attributes["origin"],
            state.resources[&"db.primary.config".parse().unwrap()].attributes["node"]
        );
        assert!(!make_plan(&m, &state, &cloud).await.has_changes());
    });
}

/// A move interrupted after its switchover (state holds the outgoing
/// machine) is finished by the next apply: the old machine is kept (state
/// names it, the end-of-walk check does not terminate it), then leaves.
#[test]
fn an_interrupted_move_is_finished_by_the_next_apply() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let mut m = manifest(1, Some(1), None);
        converge(&cloud, &m, &mut state).await;
        m.database.as_mut().unwrap().instance_type = "m5.xlarge".into();
        let primary: crate::graph::ResourceAddress = "db.primary".parse().unwrap();
        let old = state.resources[&primary].id.clone();

        let plan = make_plan(&m, &state, &cloud).await;
        let configurator = Arc::new(FakeConfigurator::with_clock(cloud.clock()));
        configurator.fail_move_out_on(primary);
        let mut checkpoint = MemoryCheckpoint::default();
        let options = ApplyOptions {
            parallelism: 4,
            base_dir: key_dir(),
        };
        let (_tx, rx) = watch::channel(false);
        let outcome = walk(
            Arc::clone(&cloud),
            Arc::clone(&configurator),
            &plan,
            &mut state,
            &mut checkpoint,
            &options,
            rx,
            &mut |_| {},
        )
        .await;
        assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
        assert_eq!(outcome.failed[0].0, "db.primary: retire the old machine");
        let moving = &state.moves[&primary];
        assert_eq!(moving.direction, crate::state::MoveDirection::Outgoing);
        assert_eq!(moving.machine.id, old);
        assert_ne!(state.resources[&primary].id, old);
        let listed = cloud.refresh(&owner(&state)).await.unwrap();
        assert!(
            listed.instances.iter().any(|i| i.id == old && i.status.is_alive()),
            "the outgoing machine was terminated before it left the cluster"
        );

        let resumed = make_plan(&m, &state, &cloud).await;
        let text = plan::render::text(&resumed);
        assert!(
            text.contains(&format!(
                "move online: finish the interrupted move: {} took over; drop {old} (node 1) from the cluster and terminate it",
                state.resources[&primary].id
            )),
            "{text}"
        );
        let (outcome, _, calls) = run_recording(&cloud, &resumed, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        assert!(
            calls.iter().any(|c| c.operation == "move-out" && c.machine_id == old),
            "{calls:?}"
        );
        assert!(!calls.iter().any(|c| c.operation == "move-in"), "{calls:?}");
        assert!(state.moves.is_empty());
        let listed = cloud.refresh(&owner(&state)).await.unwrap();
        assert!(!listed.instances.iter().any(|i| i.id == old && i.status.is_alive()));
        assert!(!make_plan(&m, &state, &cloud).await.has_changes());
    });
}

#[test]
fn cancelled_walk_starts_nothing_and_says_so() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(2, None, None);
        let plan = make_plan(&m, &state, &cloud).await;
        let (tx, rx) = watch::channel(false);
        tx.send(true).unwrap();
        let mut checkpoint = MemoryCheckpoint::default();
        let outcome = walk(
            Arc::clone(&cloud),
            Arc::new(FakeConfigurator::new()),
            &plan,
            &mut state,
            &mut checkpoint,
            &ApplyOptions::default(),
            rx,
            &mut |_| {},
        )
        .await;
        assert!(!outcome.is_success());
        assert!(outcome.done.is_empty());
        assert_eq!(outcome.not_started.len(), steps::build(&plan).len());
        assert_eq!(cloud.calls().len(), 1, "only the refresh ran");
    });
}

#[test]
fn destroy_removes_everything() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        converge(&cloud, &manifest(3, Some(1), Some(2)), &mut state).await;
        let observed = cloud.refresh(&owner(&state)).await.unwrap();
        let plan = plan::make(
            plan::Source {
                manifest_path: "blog.toml",
                manifest_sha256: "",
                manifest: &manifest(3, Some(1), Some(2)),
            },
            &crate::graph::ResourceGraph::default(),
            Some(&state),
            Some(&observed),
        );
        let (outcome, _) = run(&cloud, &plan, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        assert!(state.resources.is_empty());
        assert_eq!(cloud.live_instances().len(), 0);
        assert_eq!(cloud.group_count(), 0);
        assert_eq!(cloud.key_count(), 0);
    });
}

/// Checks the recorded calls: a launch never started before the calls that
/// made what it needs (key pair, its group, the primary for a replica) finished.
fn assert_dependencies_first(cloud: &FakeCloud) {
    use crate::graph::{ResourceAddress, Role};
    let calls = cloud.calls();
    let finished = |op: &str, subject: &str| {
        calls
            .iter()
            .find(|c| c.operation == op && c.ok && c.subject.starts_with(subject))
            .map(|c| c.finished)
    };
    for launch in calls.iter().filter(|c| c.operation == "launch" && c.ok) {
        let Some(ResourceAddress::Instance { role, .. }) =
            crate::cloud::decode_batch_address(&launch.subject, 0)
        else {
            panic!("launch subject {} is not a batch address", launch.subject);
        };
        let key = finished("import_key_pair", "appgrid-blog").expect("key imported");
        assert!(
            key < launch.started,
            "{} launched before the key pair existed",
            launch.subject
        );
        let group = finished(
            "create_security_group",
            &format!("sg.{}", role.group().as_str()),
        )
        .expect("group created");
        assert!(
            group < launch.started,
            "{} launched before its group existed",
            launch.subject
        );
        if role == Role::DbReplica {
            let primary = calls
                .iter()
                .find(|c| c.operation == "launch" && c.subject == "db.primary")
                .expect("primary launched");
            assert!(
                primary.finished < launch.started,
                "{} launched before the primary",
                launch.subject
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any manifest, then any other: applying and re-planning gives no changes,
    /// and no launch ever starts before its groups exist.
    #[test]
    fn any_sequence_of_manifests_converges(
        first in (1u32..8, proptest::option::of(0u32..3), proptest::option::of(1u32..3)),
        second in (1u32..8, proptest::option::of(0u32..3), proptest::option::of(1u32..3)),
        bigger in any::<bool>(),
    ) {
        rt().block_on(async {
            let cloud = Arc::new(FakeCloud::new());
            let mut state = new_state();
            let m1 = manifest(first.0, first.1, first.2);
            let o1 = converge(&cloud, &m1, &mut state).await;
            assert!(o1.is_success(), "{o1:?}");
            assert_dependencies_first(&cloud);
            let mut m2 = manifest(second.0, second.1, second.2);
            if bigger {
                m2.web.instance_type = "t3.large".into();
            }
            let o2 = converge(&cloud, &m2, &mut state).await;
            assert!(o2.is_success(), "{o2:?}");
            let again = make_plan(&m2, &state, &cloud).await;
            assert!(!again.has_changes(), "{}", plan::render::text(&again));
            let expected = 1 + second.0 as usize + second.1.map_or(0, |r| 1 + r as usize) + second.2.unwrap_or(0) as usize;
            assert_eq!(cloud.live_instances().len(), expected);
            // Configurations: lb.config, the primary's, the cluster and one per replica, one per cache node.
            let configs = 1 + second.1.map_or(0, |r| 1 + usize::from(r > 0) + r as usize) + second.2.unwrap_or(0) as usize;
            assert_eq!(state.resources.len(), expected + configs + 1 + 2 + usize::from(second.1.is_some()) + usize::from(second.2.is_some()));
        });
    }
}

/// The order of an online move of both database machines: the replica's
/// node joins first, then the primary's (whose switchover the app servers
/// follow at once); every app server is released against the new origin
/// before either old node leaves; old nodes leave one at a time.
#[test]
fn a_database_move_releases_the_app_servers_before_an_old_node_goes() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let mut m = manifest(2, Some(1), None);
        m.release = Some(crate::manifest::Release {
            path: "app".into(),
            build: None,
            start: "/usr/bin/python3 app.py".into(),
            health: "/health".into(),
            release_command: None,
            health_timeout: std::time::Duration::from_secs(60),
        });
        converge(&cloud, &m, &mut state).await;
        m.database.as_mut().unwrap().instance_type = "m5.xlarge".into();
        let plan = make_plan(&m, &state, &cloud).await;
        let steps = steps::build(&plan);
        let index = |label: &str| {
            steps
                .iter()
                .position(|s| s.label() == label)
                .unwrap_or_else(|| panic!("no step {label}"))
        };
        // Whether step `a` waits for step `b`, directly or not.
        let waits = |a: usize, b: usize| {
            let mut seen = std::collections::BTreeSet::new();
            let mut queue = vec![a];
            while let Some(x) = queue.pop() {
                for &d in &steps[x].deps {
                    if d == b {
                        return true;
                    }
                    if seen.insert(d) {
                        queue.push(d);
                    }
                }
            }
            false
        };
        let replica_in = index("db.replica[0]: move online (new node, subscribe, switch over)");
        let primary_in = index("db.primary: move online (new node, subscribe, switch over)");
        let replica_out = index("db.replica[0]: retire the old machine");
        let primary_out = index("db.primary: retire the old machine");
        assert!(waits(primary_in, replica_in));
        assert!(waits(primary_out, replica_out));
        for web in ["web[0].release: configure", "web[1].release: configure"] {
            let release = index(web);
            assert!(waits(release, primary_in), "{web} before the switchover");
            assert!(
                waits(replica_out, release),
                "old replica leaves before {web}"
            );
            assert!(
                waits(primary_out, release),
                "old primary leaves before {web}"
            );
        }
        // The configurations on the moving machines are the move-ins' work.
        assert!(
            !steps.iter().any(|s| matches!(
                s.label().as_str(),
                "db.primary.config: configure"
                    | "slony.cluster: configure"
                    | "db.replica[0].subscription: configure"
            )),
            "{:?}",
            steps.iter().map(Step::label).collect::<Vec<_>>()
        );
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s.kind, StepKind::Terminate { .. }))
        );
    });
}

/// `db restore` into a new primary records a move whose machine has no id
/// yet; the next apply launches it, moves in and out, and retires the old
/// primary. Until the launch, the record is no machine (nothing to sweep).
#[test]
fn a_pending_restore_launches_a_new_primary_and_retires_the_old_one() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(1, Some(1), None);
        converge(&cloud, &m, &mut state).await;
        let primary: crate::graph::ResourceAddress = "db.primary".parse().unwrap();
        let old = state.resources[&primary].id.clone();
        let restore = crate::state::MoveRestore {
            backup: "20261202-120000F".into(),
            stanza: format!("blog.{old}"),
            to_time: None,
        };
        let pending = super::restore_move(&state, primary, restore.clone()).unwrap();
        assert!(pending.machine.id.is_empty());
        assert!(pending.node >= 100, "{}", pending.node);
        state.moves.insert(primary, pending);
        assert_eq!(
            super::machines_of(&state)[&primary].len(),
            1,
            "a restore not launched yet is no machine"
        );

        let plan = make_plan(&m, &state, &cloud).await;
        assert_eq!(plan.summary().moved, 1, "{plan:?}");
        let text = plan::render::text(&plan);
        assert!(
            text.contains(&format!(
                "restore backup 20261202-120000F into a new machine (node {}); the replicas subscribe to it, then {old} is retired",
                state.moves[&primary].node
            )),
            "{text}"
        );
        let start = cloud.calls().len();
        let (outcome, _, configured) = run_recording(&cloud, &plan, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        let calls = &cloud.calls()[start..];
        assert!(
            calls
                .iter()
                .any(|c| c.operation == "launch" && c.subject.starts_with("db.primary")),
            "{calls:?}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c.operation == "terminate" && c.subject.starts_with(&old)),
            "{calls:?}"
        );
        for op in ["move-in", "move-out"] {
            assert!(
                configured
                    .iter()
                    .any(|c| c.operation == op && c.address == primary),
                "no {op} in {configured:?}"
            );
        }
        assert!(state.moves.is_empty(), "{:?}", state.moves);
        assert_ne!(state.resources[&primary].id, old);
        assert!(!make_plan(&m, &state, &cloud).await.has_changes());
    });
}

/// A restore whose move-in fails (Postgres, pgBackRest, Slony-I) leaves the
/// old primary in service and state naming the launched machine as the
/// incoming one; the next apply resumes without launching another.
#[test]
fn a_failed_restore_keeps_the_old_primary_and_resumes_without_a_second_launch() {
    rt().block_on(async {
        let cloud = Arc::new(FakeCloud::new());
        let mut state = new_state();
        let m = manifest(1, Some(1), None);
        converge(&cloud, &m, &mut state).await;
        let primary: crate::graph::ResourceAddress = "db.primary".parse().unwrap();
        let old = state.resources[&primary].id.clone();
        let restore = crate::state::MoveRestore {
            backup: "20261202-120000F".into(),
            stanza: format!("blog.{old}"),
            to_time: None,
        };
        let pending = super::restore_move(&state, primary, restore).unwrap();
        state.moves.insert(primary, pending);

        let plan = make_plan(&m, &state, &cloud).await;
        let configurator = Arc::new(FakeConfigurator::with_clock(cloud.clock()));
        configurator.fail_on(primary);
        let mut checkpoint = MemoryCheckpoint::default();
        let options = ApplyOptions {
            parallelism: 4,
            base_dir: key_dir(),
        };
        let (_tx, rx) = watch::channel(false);
        let outcome = walk(
            Arc::clone(&cloud),
            Arc::clone(&configurator),
            &plan,
            &mut state,
            &mut checkpoint,
            &options,
            rx,
            &mut |_| {},
        )
        .await;
        assert!(!outcome.is_success(), "{outcome:?}");
        assert_eq!(
            state.resources[&primary].id, old,
            "the old primary serves on"
        );
        let incoming = state.moves[&primary].clone();
        assert_eq!(incoming.direction, crate::state::MoveDirection::Incoming);
        assert!(
            !incoming.machine.id.is_empty(),
            "the launched machine is named"
        );
        assert!(incoming.restore.is_some());
        let listed = cloud.refresh(&owner(&state)).await.unwrap();
        for id in [&old, &incoming.machine.id] {
            assert!(
                listed
                    .instances
                    .iter()
                    .any(|i| &i.id == id && i.status.is_alive()),
                "{id} is not running"
            );
        }

        let launches = |cloud: &FakeCloud| {
            cloud
                .calls()
                .iter()
                .filter(|c| c.operation == "launch" && c.subject.starts_with("db.primary"))
                .count()
        };
        let before = launches(&cloud);
        let resumed = make_plan(&m, &state, &cloud).await;
        let (outcome, _, _) = run_recording(&cloud, &resumed, &mut state).await;
        assert!(outcome.is_success(), "{outcome:?}");
        assert_eq!(launches(&cloud), before, "no second machine launched");
        assert_eq!(state.resources[&primary].id, incoming.machine.id);
        assert!(state.moves.is_empty());
        let listed = cloud.refresh(&owner(&state)).await.unwrap();
        assert!(
            !listed
                .instances
                .iter()
                .any(|i| i.id == old && i.status.is_alive())
        );
    });
}
