//! The replica decision (issue 13): exact reasons, and properties — never
//! outside min/max, never a scale-in on missing or stale readings, the
//! stabilization window respected.

use proptest::prelude::*;

use super::replicas::*;
use crate::manifest::ReplicaMetric;

const NOW: u64 = 1_720_000_000;

fn policy() -> ReplicaPolicy {
    ReplicaPolicy {
        metric: ReplicaMetric::Connections,
        target: 4.0,
        min: 1,
        max: 3,
        scale_out_cooldown_s: 60,
        stabilization_s: 300,
        interval_s: 10,
    }
}

fn at(at: u64, value: f64, reporting: u32) -> ReplicaSample {
    ReplicaSample {
        at,
        value,
        reporting,
    }
}

/// A reading every 10 s over the last `span` s up to `now`.
fn steady(now: u64, span: u64, value: f64, reporting: u32) -> Vec<ReplicaSample> {
    (0..=span / 10)
        .rev()
        .map(|k| at(now - k * 10, value, reporting))
        .collect()
}

#[test]
fn connections_above_the_target_add_replicas_proportionally() {
    let d = decide_replicas(&policy(), &[], &[at(NOW, 9.0, 1)], 1, NOW);
    assert_eq!(d.desired, 3);
    assert_eq!(
        d.reason,
        "connections per replica 9.0 vs target 4 needs 3: 1 → 3"
    );
    let d = decide_replicas(&policy(), &[], &[at(NOW, 30.0, 1)], 1, NOW);
    assert_eq!(d.desired, 3);
    assert_eq!(
        d.reason,
        "connections per replica 30.0 vs target 4 needs 8 (the maximum): 1 → 3"
    );
}

#[test]
fn lag_above_the_target_adds_a_replica_and_the_cooldown_holds_the_next() {
    let p = ReplicaPolicy {
        metric: ReplicaMetric::ReplicationLag,
        target: 2.0,
        ..policy()
    };
    let d = decide_replicas(&p, &[], &[at(NOW, 3.5, 1)], 1, NOW);
    assert_eq!(
        (d.desired, d.reason.as_str()),
        (2, "replication lag 3.5s vs target 2s needs 2: 1 → 2")
    );
    let changes = [ReplicaChange {
        at: NOW - 20,
        from: 1,
        to: 2,
    }];
    let d = decide_replicas(&p, &changes, &[at(NOW, 3.5, 2)], 2, NOW);
    assert_eq!(
        (d.desired, d.reason.as_str()),
        (
            2,
            "replication lag 3.5s vs target 2s needs 4, but the scale-out cooldown (60s) has 40s left: stay at 2"
        )
    );
}

#[test]
fn scale_in_waits_for_a_whole_quiet_window_and_goes_to_its_highest_need() {
    let p = policy();
    // Quiet for 300 s, but a reading 100 s ago needed 2 of the 3.
    let mut samples = steady(NOW, 300, 0.0, 3);
    let i = samples.len() - 11;
    samples[i].value = 2.0;
    let d = decide_replicas(&p, &[], &samples, 3, NOW);
    assert_eq!(d.desired, 2);
    assert_eq!(
        d.reason,
        "connections per replica 0.0 vs target 4 needs 0, stabilized over 300s: 3 → 2"
    );
    // Only 200 s of readings: no scale-in.
    let d = decide_replicas(&p, &[], &steady(NOW, 200, 0.0, 3), 3, NOW);
    assert_eq!(d.desired, 3);
    assert!(d.reason.contains("do not cover the 300s"), "{}", d.reason);
    // A change 100 s ago: the window starts again.
    let changes = [ReplicaChange {
        at: NOW - 100,
        from: 2,
        to: 3,
    }];
    let d = decide_replicas(&p, &changes, &steady(NOW, 600, 0.0, 3), 3, NOW);
    assert_eq!(
        d.reason,
        "connections per replica 0.0 vs target 4 needs 0, but the last change is within the 300s stabilization window (200s left): stay at 3"
    );
    // A pass that took longer than the window (it added a replica): the
    // reading it started with holds until the next, so no scale-in yet.
    let busy = [at(NOW - 40, 8.0, 2), at(NOW - 4, 0.0, 3), at(NOW, 0.0, 3)];
    let p15 = ReplicaPolicy {
        stabilization_s: 15,
        ..p.clone()
    };
    let d = decide_replicas(&p15, &[], &busy, 3, NOW);
    assert_eq!(
        d.reason,
        "connections per replica 0.0 vs target 4 needs 0, but up to 4 were needed in the last 15s: stay at 3"
    );
    // Quiet all along: down to the minimum.
    let d = decide_replicas(&p, &[], &steady(NOW, 600, 0.0, 3), 3, NOW);
    assert_eq!(d.desired, 1);
}

#[test]
fn missing_or_stale_readings_hold_the_count() {
    let p = policy();
    let d = decide_replicas(&p, &[], &[], 2, NOW);
    assert_eq!(
        (d.desired, d.reason.as_str()),
        (2, "no replica readings yet: stay at 2")
    );
    let d = decide_replicas(&p, &[], &steady(NOW - 61, 600, 0.0, 2), 2, NOW);
    assert_eq!(
        (d.desired, d.reason.as_str()),
        (2, "no replica readings for 61s: not scaling in, stay at 2")
    );
    let d = decide_replicas(&p, &[], &[at(NOW, 0.0, 0)], 2, NOW);
    assert_eq!(d.desired, 2);
    // Bounds apply even without readings.
    assert_eq!(decide_replicas(&p, &[], &[], 5, NOW).desired, 3);
    assert_eq!(decide_replicas(&p, &[], &[], 0, NOW).desired, 1);
}

fn arb_policy() -> impl Strategy<Value = ReplicaPolicy> {
    (
        1u32..4,
        0u32..4,
        0.5f64..20.0,
        0u64..200,
        0u64..900,
        1u64..60,
        any::<bool>(),
    )
        .prop_map(
            |(min, extra, target, out, stab, interval, lag)| ReplicaPolicy {
                metric: if lag {
                    ReplicaMetric::ReplicationLag
                } else {
                    ReplicaMetric::Connections
                },
                target,
                min,
                max: min + extra,
                scale_out_cooldown_s: out,
                stabilization_s: stab,
                interval_s: interval,
            },
        )
}

fn arb_samples() -> impl Strategy<Value = Vec<ReplicaSample>> {
    proptest::collection::vec((0u64..1_200, 0.0f64..50.0, 0u32..5), 0..40).prop_map(|mut v| {
        v.sort_by_key(|s| s.0);
        v.dedup_by_key(|s| s.0);
        v.into_iter()
            .map(|(ago, value, reporting)| at(NOW - 1_200 + ago, value, reporting))
            .collect()
    })
}

proptest! {
    #[test]
    fn never_outside_min_and_max(
        p in arb_policy(),
        samples in arb_samples(),
        current in 0u32..8,
        last in proptest::option::of(0u64..1_200),
    ) {
        let changes: Vec<ReplicaChange> = last
            .map(|ago| ReplicaChange { at: NOW - ago, from: 1, to: 2 })
            .into_iter()
            .collect();
        let d = decide_replicas(&p, &changes, &samples, current, NOW);
        prop_assert!((p.min..=p.max).contains(&d.desired), "{d:?}");
        if (p.min..=p.max).contains(&current) && d.desired != current {
            let tail = format!("{} → {}", current, d.desired);
            prop_assert!(d.reason.ends_with(&tail), "{}", d.reason);
        }
    }

    #[test]
    fn never_scales_in_on_missing_or_stale_readings(
        p in arb_policy(),
        samples in arb_samples(),
        current in 1u32..8,
    ) {
        prop_assume!((p.min..=p.max).contains(&current));
        let latest = samples.last().copied();
        let stale = latest.is_none_or(|s| NOW - s.at > p.stale_after_s() || s.reporting == 0);
        let d = decide_replicas(&p, &[], &samples, current, NOW);
        if stale {
            prop_assert_eq!(d.desired, current, "{}", d.reason);
        }
    }

    #[test]
    fn scale_in_only_after_the_whole_window_allowed_it(
        p in arb_policy(),
        samples in arb_samples(),
        current in 1u32..8,
        last in proptest::option::of(0u64..1_200),
    ) {
        prop_assume!((p.min..=p.max).contains(&current));
        let changes: Vec<ReplicaChange> = last
            .map(|ago| ReplicaChange { at: NOW - ago, from: 1, to: 2 })
            .into_iter()
            .collect();
        let d = decide_replicas(&p, &changes, &samples, current, NOW);
        if d.desired < current {
            let from = NOW - p.stabilization_s;
            if let Some(c) = changes.first() {
                prop_assert!(NOW - c.at >= p.stabilization_s);
            }
            // Some reading at or before the window's start, and every reading
            // in the window needed no more than the new count.
            let entering = samples.iter().rev().find(|s| s.at <= from);
            prop_assert!(entering.is_some());
            for s in entering.into_iter().chain(samples.iter().filter(|s| s.at >= from)) {
                prop_assert!(replicas_needed(&p, s) <= d.desired, "{s:?} {}", d.reason);
            }
        }
    }
}

/// The autoscaler's replica count enters the graph (clamped to the policy's
/// bounds) through `Workspace::effective`, with a note, like the web count.
#[test]
fn the_chosen_count_enters_the_graph_within_the_bounds() {
    use crate::graph::{ResourceAddress, ResourceSpec, Role};
    use crate::state::{AutoscaledReplicas, State};
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("appgrid.toml");
    std::fs::write(
        &manifest,
        "[app]\nname = \"blog\"\n[provider]\nkind = \"local\"\n\
         [web]\ninstance_type = \"t3.small\"\ncount = 1\nmax_connections = 2\n\
         [load_balancer]\ninstance_type = \"t3.small\"\n\
         [database]\ninstance_type = \"m5.large\"\nreplicas = 1\n\
         [autoscale]\nmetric = \"queue_time_ms\"\ntarget = 20\nmin = 1\nmax = 2\n\
         [autoscale.replicas]\nmetric = \"replication_lag\"\ntarget = 2\nmin = 1\nmax = 3\n",
    )
    .unwrap();
    let ws = crate::engine::Workspace::open(&manifest, None).unwrap();
    let mut state = State::new("blog", "lineage".into());
    let peers = |state: &State| {
        let g = ws.graph_for(Some(state)).unwrap();
        match &g
            .get(&ResourceAddress::config(Role::DbPrimary, 0))
            .unwrap()
            .spec
        {
            ResourceSpec::Config(c) => c.inputs["peers"].clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(peers(&state), "db.replica[0]");
    state.autoscale_replicas = Some(AutoscaledReplicas {
        replicas: 2,
        at: NOW,
        reason: "lag".into(),
    });
    assert_eq!(peers(&state), "db.replica[0],db.replica[1]");
    let g = ws.graph_for(Some(&state)).unwrap();
    assert!(
        g.get(&ResourceAddress::config(Role::DbReplica, 1))
            .is_some()
    );
    assert_eq!(
        ws.effective(Some(&state)).1.as_deref(),
        Some("database.replicas is 2, set by the autoscaler (lag); the manifest says 1")
    );
    state.autoscale_replicas.as_mut().unwrap().replicas = 9;
    assert_eq!(
        peers(&state),
        "db.replica[0],db.replica[1],db.replica[2]",
        "held to max = 3"
    );
}
