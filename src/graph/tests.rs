use super::*;
use crate::fixtures::manifest;
use proptest::prelude::*;

#[test]
fn blog_expands_to_the_expected_resources() {
    let g = expand(&manifest(2, Some(1), Some(1))).unwrap();
    let addresses: Vec<String> = g.resources().map(|r| r.address.to_string()).collect();
    assert_eq!(
        addresses,
        [
            "keypair",
            "sg.lb",
            "sg.web",
            "sg.db",
            "sg.cache",
            "lb",
            "web[0]",
            "web[1]",
            "db.primary",
            "db.replica[0]",
            "cache[0]",
            "lb.config",
            "db.primary.config",
            "db.replica[0].subscription",
            "cache[0].config",
            "slony.cluster"
        ]
    );
}

#[test]
fn web_and_replicas_spread_across_zones() {
    let g = expand(&manifest(3, Some(2), None)).unwrap();
    let zone = |a: &str| match &g.get(&a.parse().unwrap()).unwrap().spec {
        ResourceSpec::Instance(i) => i.zone.clone(),
        _ => unreachable!(),
    };
    assert_eq!(zone("web[0]"), "us-east-1a");
    assert_eq!(zone("web[1]"), "us-east-1b");
    assert_eq!(zone("web[2]"), "us-east-1a");
    assert_eq!(zone("db.primary"), "us-east-1a");
    assert_eq!(
        zone("db.replica[0]"),
        "us-east-1b",
        "first replica is never in the primary's zone"
    );
}

#[test]
fn groups_are_least_privilege() {
    let g = expand(&manifest(2, Some(1), Some(1))).unwrap();
    let rules = |a: &str| match &g.get(&a.parse().unwrap()).unwrap().spec {
        ResourceSpec::SecurityGroup(s) => s.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        _ => unreachable!(),
    };
    assert_eq!(
        rules("sg.lb"),
        ["tcp/22 from 203.0.113.0/24", "tcp/80 from 0.0.0.0/0"]
    );
    assert_eq!(
        rules("sg.web"),
        ["tcp/22 from 203.0.113.0/24", "tcp/8080 from sg.lb"]
    );
    assert_eq!(
        rules("sg.db"),
        [
            "tcp/22 from 203.0.113.0/24",
            "tcp/5432 from sg.web",
            "tcp/5432 from sg.db"
        ]
    );
    assert_eq!(
        rules("sg.cache"),
        ["tcp/22 from 203.0.113.0/24", "tcp/11211 from sg.web"]
    );
}

#[test]
fn dependencies_point_at_what_must_exist_first() {
    let g = expand(&manifest(1, Some(1), None)).unwrap();
    let deps = |a: &str| {
        g.dependencies(&a.parse().unwrap())
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(deps("web[0]"), ["keypair", "sg.web"]);
    assert_eq!(deps("db.replica[0]"), ["keypair", "sg.db", "db.primary"]);
    assert_eq!(deps("sg.web"), ["sg.lb"]);
    assert_eq!(deps("sg.db"), ["sg.web"]);
}

#[test]
fn configuration_waits_for_what_it_points_at() {
    let mut m = manifest(2, Some(1), Some(1));
    m.release = Some(crate::manifest::Release {
        path: "./app".into(),
        build: None,
        start: "./run".into(),
        health: "/health".into(),
        release_command: None,
        health_timeout: std::time::Duration::from_secs(60),
    });
    let g = expand(&m).unwrap();
    let deps = |a: &str| {
        g.dependencies(&a.parse().unwrap())
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        deps("db.primary.config"),
        ["web[0]", "web[1]", "db.primary", "db.replica[0]"]
    );
    assert_eq!(deps("slony.cluster"), ["db.primary.config"]);
    assert_eq!(
        deps("db.replica[0].subscription"),
        ["db.replica[0]", "slony.cluster"]
    );
    assert_eq!(
        deps("web[1].release"),
        [
            "web[1]",
            "db.primary.config",
            "db.replica[0].subscription",
            "cache[0].config"
        ]
    );
    assert_eq!(
        deps("lb.config"),
        ["lb", "web[0].release", "web[1].release"]
    );
}

#[test]
fn template_digests_are_inputs_of_exactly_their_configurations() {
    let m = manifest(2, Some(1), Some(1));
    let embedded = crate::templates::Templates::embedded();
    let before = expand_with(&m, &Inputs::default(), &embedded).unwrap();
    let mut inputs = Inputs::default();
    inputs
        .templates
        .insert("memcached".into(), "new-digest".into());
    let after = expand_with(&m, &inputs, &embedded).unwrap();
    let changed = changed(&before, &after);
    assert_eq!(changed, ["cache[0].config"]);
}

/// Two template sets in one process: each expansion renders user data from
/// its own (no process-wide choice of templates).
#[test]
fn the_graph_expands_twice_in_one_process_with_different_templates() {
    use crate::templates::Templates;
    let m = manifest(1, None, None);
    let dir = std::env::temp_dir().join(format!("appgrid-graph-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let embedded = Templates::embedded();
    let user_data = embedded.source("user-data.sh").unwrap();
    std::fs::write(dir.join("user-data.sh"), format!("{user_data}\n# ours\n")).unwrap();
    let own = Templates::with_overrides(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let web_user_data = |g: &ResourceGraph| match &g
        .get(&ResourceAddress::instance(Role::Web, 0))
        .unwrap()
        .spec
    {
        ResourceSpec::Instance(i) => i.user_data.clone(),
        other => panic!("{other:?}"),
    };
    let a = expand_with(&m, &Inputs::default(), &embedded).unwrap();
    let b = expand_with(&m, &Inputs::default(), &own).unwrap();
    let c = expand_with(&m, &Inputs::default(), &embedded).unwrap();
    assert!(!web_user_data(&a).contains("# ours"));
    assert!(
        web_user_data(&b).ends_with("# ours\n"),
        "{}",
        web_user_data(&b)
    );
    assert_eq!(web_user_data(&a), web_user_data(&c));
}

#[test]
fn dot_lists_nodes_and_edges() {
    let g = expand(&manifest(1, None, None)).unwrap();
    let dot = g.to_dot("blog");
    assert!(dot.starts_with("digraph \"blog\" {"));
    assert!(dot.contains("  \"sg.web\" -> \"web[0]\";\n"), "{dot}");
    assert!(dot.contains("  \"keypair\" -> \"lb\";\n"), "{dot}");
}

proptest! {
    #[test]
    fn every_edge_respects_a_topological_order(web in 1u32..30, replicas in proptest::option::of(0u32..5), cache in proptest::option::of(1u32..5)) {
        let g = expand(&manifest(web, replicas, cache)).unwrap();
        let expected = 1 + 2 + usize::from(replicas.is_some()) + usize::from(cache.is_some())
            + 1 + web as usize + replicas.map_or(0, |r| 1 + r as usize) + cache.unwrap_or(0) as usize;
        // Configurations: lb.config, the primary's, the cluster and a subscription per replica, one per cache node.
        let configs = 1 + replicas.map_or(0, |r| 1 + usize::from(r > 0) + r as usize) + cache.unwrap_or(0) as usize;
        prop_assert_eq!(g.len(), expected + configs);
        for (from, to) in g.edges() {
            prop_assert!(g.get(&from).is_some() && g.get(&to).is_some());
            prop_assert_ne!(from, to);
        }
    }
}

/// A renewed certificate (a new digest) is an update of `lb.config` alone.
#[test]
fn the_certificate_digest_is_an_input_of_the_load_balancer_only() {
    let mut m = manifest(2, Some(1), Some(1));
    m.load_balancer.tls = Some(crate::manifest::Tls {
        certificate: "tls.pem".into(),
        port: 8443,
        span: 0..0,
    });
    let embedded = crate::templates::Templates::embedded();
    let with = |digest: &str| Inputs {
        tls: Some(digest.into()),
        ..Inputs::default()
    };
    let before = expand_with(&m, &with("aaa"), &embedded).unwrap();
    let after = expand_with(&m, &with("bbb"), &embedded).unwrap();
    let changed = changed(&before, &after);
    assert_eq!(changed, ["lb.config"]);
    match &after
        .get(&ResourceAddress::config(Role::Lb, 0))
        .unwrap()
        .spec
    {
        ResourceSpec::Config(c) => {
            assert_eq!(c.inputs["tls"], "bbb");
            assert_eq!(c.inputs["tls_port"], "8443");
        }
        other => panic!("{other:?}"),
    }
}

/// `[web] max_connections` is an input of `lb.config` alone, and only when
/// set: manifests without it plan exactly as before.
#[test]
fn max_connections_is_an_input_of_the_load_balancer_only_when_set() {
    let unset = manifest(2, Some(1), Some(1));
    let mut set = unset.clone();
    set.web.max_connections = Some(2);
    let embedded = crate::templates::Templates::embedded();
    let before = expand_with(&unset, &Inputs::default(), &embedded).unwrap();
    let after = expand_with(&set, &Inputs::default(), &embedded).unwrap();
    let changed = changed(&before, &after);
    assert_eq!(changed, ["lb.config"]);
    let inputs =
        |g: &ResourceGraph| match &g.get(&ResourceAddress::config(Role::Lb, 0)).unwrap().spec {
            ResourceSpec::Config(c) => c.inputs.clone(),
            other => panic!("{other:?}"),
        };
    assert_eq!(inputs(&after)["max_connections"], "2");
    assert!(!inputs(&before).contains_key("max_connections"));
}

/// The addresses whose spec differs from `before` to `after`.
fn changed(before: &ResourceGraph, after: &ResourceGraph) -> Vec<String> {
    after
        .resources()
        .filter(|r| before.get(&r.address).map(|b| &b.spec) != Some(&r.spec))
        .map(|r| r.address.to_string())
        .collect()
}
