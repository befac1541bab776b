//! The `appgrid` binary: golden plans of the examples, and exact error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn appgrid() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_appgrid"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("AWS_ENDPOINT_URL_EC2")
        .env_remove("AWS_ENDPOINT_URL");
    c
}

pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// A command that must have failed (exit 1) saying `says` on stderr: its
/// stderr.
pub fn refused(out: &std::process::Output, says: &str) -> String {
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains(says), "{e}");
    e
}

/// A fresh directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("appgrid-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    appgrid().args(args).output().expect("appgrid runs")
}

/// `APPGRID_BLESS=1 cargo test golden` rewrites the golden files; review the diff.
fn check_golden(path: &str, actual: &str) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("APPGRID_BLESS").is_some() {
        std::fs::write(&full, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{path}: {e}; run with APPGRID_BLESS=1 to create it"));
    if actual != expected {
        let (n, (now, golden)) = actual
            .lines()
            .chain(std::iter::repeat("(end)"))
            .zip(expected.lines().chain(std::iter::repeat("(end)")))
            .enumerate()
            .find(|(_, (a, e))| a != e)
            .expect("the texts differ somewhere");
        panic!(
            "{path} differs from the plan appgrid makes now, first at line {}:\n  golden: {golden}\n  now:    {now}\nIf the change is intended, rerun with APPGRID_BLESS=1 and review the diff",
            n + 1
        );
    }
}

#[test]
fn golden_plans_of_the_examples() {
    for example in ["blog", "shop"] {
        let dir = scratch(&format!("golden-{example}"));
        let saved = dir.join("p.plan.json");
        let manifest = format!("examples/{example}/appgrid.toml");
        let out = run(&[
            "plan",
            "--refresh=false",
            &manifest,
            "--state",
            dir.join("none.json").to_str().unwrap(),
            "-o",
            saved.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        check_golden(&format!("plans/{example}.plan.txt"), &text(&out.stdout));
        check_golden(
            &format!("plans/{example}.plan.json"),
            &std::fs::read_to_string(&saved).unwrap(),
        );
    }
}

#[test]
fn detailed_exitcode_is_2_when_there_are_changes() {
    let dir = scratch("exitcode");
    let out = run(&[
        "plan",
        "--refresh=false",
        "--detailed-exitcode",
        "examples/blog/appgrid.toml",
        "--state",
        dir.join("none.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn missing_manifest_is_one_clear_error() {
    let out = run(&["plan", "--refresh=false", "no/such/appgrid.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: cannot read manifest no/such/appgrid.toml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn invalid_manifest_reports_every_error_and_changes_nothing() {
    let dir = scratch("invalid");
    let m = dir.join("bad.toml");
    std::fs::write(
        &m,
        "[app]\nname = \"Blog\"\n[provider]\nkind = \"gcp\"\nregion = \"us-east-1\"\nimage = \"ami-1234abcd\"\nssh_key = \"k\"\nssh_from = [\"10.0.0.0/8\"]\n[web]\ninstance_type = \"t3.small\"\ncount = 0\n[load_balancer]\ninstance_type = \"t3.small\"\n",
    )
    .unwrap();
    let out = run(&["validate", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let p = m.display();
    assert!(stderr.contains(&format!(" --> {p}:2:8\n")), "{stderr}");
    assert!(stderr.contains(&format!(" --> {p}:4:8\n")), "{stderr}");
    assert!(stderr.contains(&format!("--> {p}:11:9\n")), "{stderr}");
    assert!(
        stderr.ends_with(&format!("error: {p} has 3 error(s); nothing was changed\n")),
        "{stderr}"
    );
}

#[test]
fn corrupt_state_is_refused() {
    let dir = scratch("corrupt");
    let state = dir.join("state.json");
    std::fs::write(&state, "{ not json").unwrap();
    let out = run(&[
        "plan",
        "--refresh=false",
        "examples/blog/appgrid.toml",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: state file {} is corrupt: ",
            state.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("no readable backup was found"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "{ not json",
        "state untouched"
    );
}

#[test]
fn saved_plan_for_another_lineage_is_refused() {
    let dir = scratch("lineage");
    let state = dir.join("state.json");
    let saved = dir.join("p.plan.json");
    let out = run(&[
        "plan",
        "--refresh=false",
        "examples/blog/appgrid.toml",
        "--state",
        state.to_str().unwrap(),
        "-o",
        saved.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Make it a plan of a state with another lineage; the state on disk has its own.
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    plan["state_lineage"] = "11111111-1111-4111-8111-111111111111".into();
    plan["state_serial"] = 1.into();
    std::fs::write(&saved, serde_json::to_string(&plan).unwrap()).unwrap();
    std::fs::write(
        &state,
        r#"{"version":1,"lineage":"22222222-2222-4222-8222-222222222222","serial":1,"app":"blog","resources":{}}"#,
    )
    .unwrap();
    let out = run(&[
        "apply",
        saved.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: saved plan is for another state: it was made for lineage 11111111-1111-4111-8111-111111111111, but the state at {} has lineage 22222222-2222-4222-8222-222222222222. Make a new plan with `appgrid plan -o`\n",
            state.display()
        )
    );
}

#[test]
fn graph_is_dot() {
    let out = run(&["graph", "examples/blog/appgrid.toml"]);
    assert!(out.status.success());
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph \"blog\" {"), "{dot}");
    assert!(
        dot.contains("\"db.primary\" -> \"db.replica[0]\";"),
        "{dot}"
    );
}

/// `[app] templates = DIR`: a project's template replaces the embedded one,
/// and only the configurations that render it see their inputs change.
#[test]
fn project_templates_override_exactly_what_they_name() {
    let dir = scratch("templates");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let manifest = |extra: &str| {
        format!(
            "[app]\nname = \"tpl\"\n{extra}[provider]\nkind = \"local\"\n[release]\npath = \"{}\"\nstart = \"run\"\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 1\n[load_balancer]\ninstance_type = \"t3.small\"\n[cache]\ninstance_type = \"r5.large\"\n",
            app.display()
        )
    };
    let plan = |name: &str, body: &str| -> serde_json::Value {
        let m = dir.join(name);
        std::fs::write(&m, body).unwrap();
        let out = run(&[
            "plan",
            "--refresh=false",
            "--json",
            m.to_str().unwrap(),
            "--state",
            dir.join("none.json").to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let inputs = |p: &serde_json::Value, address: &str| {
        p["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["address"] == address)
            .unwrap()["desired"]["inputs"]["templates"]
            .clone()
    };
    let embedded = plan("a.toml", &manifest(""));
    std::fs::create_dir_all(dir.join("templates/haproxy")).unwrap();
    let cfg = appgrid::templates::EMBEDDED
        .iter()
        .find(|(n, _)| *n == "haproxy/haproxy.cfg")
        .unwrap()
        .1;
    std::fs::write(
        dir.join("templates/haproxy/haproxy.cfg"),
        format!("# ours\n{cfg}"),
    )
    .unwrap();
    let own = plan("b.toml", &manifest("templates = \"templates\"\n"));
    assert_ne!(inputs(&embedded, "lb.config"), inputs(&own, "lb.config"));
    assert_eq!(
        inputs(&embedded, "cache[0].config"),
        inputs(&own, "cache[0].config")
    );
    assert_eq!(
        inputs(&embedded, "web[0].release"),
        inputs(&own, "web[0].release")
    );

    // `state forget-host-key` opens the workspace twice in one process (issue
    // 11: it failed when the manifest named a templates directory).
    let pinned = dir.join("pinned.json");
    let mut s = appgrid::state::State::new("tpl", appgrid::state::new_lineage());
    let lb = appgrid::graph::ResourceAddress::instance(appgrid::graph::Role::Lb, 0);
    s.resources.insert(
        lb,
        appgrid::state::ResourceState {
            spec: appgrid::graph::ResourceSpec::Instance(appgrid::graph::InstanceSpec {
                role: appgrid::graph::Role::Lb,
                instance_type: "t3.small".into(),
                image: String::new(),
                zone: "local".into(),
                key_name: String::new(),
                group: appgrid::graph::Role::Lb.group(),
                user_data: String::new(),
            }),
            id: "local-lb".into(),
            depends_on: Vec::new(),
            attributes: [("host_key".to_string(), "a-pinned-key".to_string())].into(),
        },
    );
    appgrid::state::store::StateStore::new(&pinned)
        .save(&mut s)
        .unwrap();
    let out = run(&[
        "state",
        "forget-host-key",
        dir.join("b.toml").to_str().unwrap(),
        "lb",
        "--state",
        pinned.to_str().unwrap(),
    ]);
    assert_eq!(
        text(&out.stdout),
        "lb: forgot the pinned host key a-pinned-key; the next apply pins the key it presents\n",
        "{}",
        text(&out.stderr)
    );
    assert!(out.status.success());
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pinned).unwrap()).unwrap();
    assert!(
        after["resources"]["lb"]["attributes"]["host_key"].is_null(),
        "{after}"
    );

    let m = dir.join("b.toml");
    let sql = dir.join("change.sql");
    std::fs::write(&sql, "SELECT 1;\n").unwrap();
    let state = dir.join("none.json");
    let out = run(&[
        "db",
        "migrate",
        m.to_str().unwrap(),
        sql.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: no state at {}: apply {} first\n",
            state.display(),
            m.display()
        )
    );

    std::fs::write(dir.join("templates/haproxy/haproxy.conf"), "typo").unwrap();
    let m = dir.join("c.toml");
    std::fs::write(&m, manifest("templates = \"templates\"\n")).unwrap();
    let out = run(&["plan", "--refresh=false", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: template {}: haproxy/haproxy.conf overrides no template appgrid has; name it like one of: ",
            dir.join("templates").display()
        )),
        "{stderr}"
    );
}

/// `appgrid scale`: with `[autoscale]` the web count is the autoscaler's and
/// with `[autoscale.replicas]` the replica count; both refused, the file
/// untouched, nothing applied.
#[test]
fn scale_is_refused_where_the_autoscaler_owns_the_count() {
    let mut blog = super::local_e2e::Blog::new("scale-autoscaled");
    let mut manifest = std::fs::read_to_string(&blog.manifest).unwrap();
    manifest.push_str(
        "# The autoscaler owns the counts.\n\
         [autoscale]\nmetric = \"requests_per_instance\"\ntarget = 100\nmin = 2\nmax = 6\n\
         [autoscale.replicas]\nmetric = \"connections\"\ntarget = 10\nmin = 1\nmax = 3\n",
    );
    std::fs::write(&blog.manifest, &manifest).unwrap();
    for (args, says) in [
        (
            ["scale", "--web", "3", "--yes"],
            "the web count is the autoscaler's (min = 2, max = 6)",
        ),
        (
            ["scale", "--replicas", "2", "--yes"],
            "the replica count is the autoscaler's (min = 1, max = 3)",
        ),
    ] {
        let out = blog.run(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(std::fs::read_to_string(&blog.manifest).unwrap(), manifest);
        assert!(!blog.dir.join(".appgrid").exists(), "nothing applied");
    }
}

/// `appgrid scale` shows the plan `appgrid plan` prints for the manifest
/// with the new count, and without a terminal (or --yes) goes no further:
/// the manifest is not written, nothing is applied.
#[test]
fn scale_shows_the_plan_for_the_new_count_and_asks_first() {
    let mut blog = super::local_e2e::Blog::new("scale-asks");
    let original = std::fs::read_to_string(&blog.manifest)
        .unwrap()
        .replace("count = 2\n", "count = 2 # app servers\n");
    std::fs::write(&blog.manifest, &original).unwrap();
    let out = blog.run(&["scale", "--web", "3"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to scale without confirmation"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&blog.manifest).unwrap(), original);
    assert!(!blog.dir.join(".appgrid").exists(), "nothing applied");
    let shown = text(&out.stdout);
    std::fs::write(
        &blog.manifest,
        original.replace("count = 2 #", "count = 3 #"),
    )
    .unwrap();
    let planned = blog.ok(&["plan"]);
    std::fs::write(&blog.manifest, &original).unwrap();
    assert_eq!(shown, planned);
    assert!(shown.contains("web[2]"), "{shown}");
    // Out of range: refused by the argument parser, before anything is read.
    let out = blog.run(&["scale", "--web", "0", "--yes"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--web"), "{}", text(&out.stderr));
    // Nothing asked: a usage error.
    let out = blog.run(&["scale", "--yes"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("say what to scale"));
}
