//! The whole engine through the `appgrid` binary against moto's EC2 server:
//! apply, re-plan, scale out and in, drift, destroy, and SIGKILL mid-launch.
//! Every check of what exists uses an independent DescribeInstances.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aws_sdk_ec2::types::Filter;

use super::cli::{appgrid, scratch, text};

/// A copy of the blog example pointed at moto, with its own key and app name.
struct App {
    name: String,
    dir: PathBuf,
    manifest: PathBuf,
    endpoint: String,
}

impl App {
    fn new(name: &str, web: u32) -> App {
        let dir = scratch(name);
        let endpoint = super::moto::shared().endpoint.clone();
        let key = dir.join("id_ed25519");
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "appgrid-test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen runs (apt-get install openssh-client)");
        assert!(keygen.success());
        let app = App {
            name: name.to_string(),
            manifest: dir.join("appgrid.toml"),
            dir,
            endpoint,
        };
        app.write(web);
        app
    }

    fn write(&self, web: u32) {
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog/appgrid.toml"),
        )
        .unwrap();
        let mut out = String::new();
        for line in example.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            let line = match key {
                "name" if out.contains("[app]") && !out.contains("[provider]") => {
                    format!("name = \"{}\"", self.name)
                }
                "image" => "image = \"ami-12c6146b\"".to_string(),
                "ssh_key" => "ssh_key = \"id_ed25519\"".to_string(),
                "count" if out.ends_with_section("[web]") => format!("count = {web}"),
                _ => line.to_string(),
            };
            out.push_str(&line);
            out.push('\n');
            if line.trim() == "[provider]" {
                out.push_str(&format!("endpoint = \"{}\"\n", self.endpoint));
                // Machines only: moto's instances are not real machines to configure.
                out.push_str("configure = false\n");
            }
        }
        std::fs::write(&self.manifest, out).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = appgrid();
        c.args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("no-credentials"),
            );
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let m = self.manifest.to_str().unwrap().to_string();
        let mut full: Vec<&str> = args.to_vec();
        full.push(&m);
        self.cmd(&full).output().unwrap()
    }

    fn apply(&self) -> Output {
        let out = self.run(&["apply", "--yes"]);
        assert!(
            out.status.success(),
            "apply failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn plan(&self) -> Output {
        self.run(&["plan", "--detailed-exitcode"])
    }

    /// Live instances of this app by address tag, seen by a client of the test's own.
    fn instances(&self) -> Vec<(String, String, String, String)> {
        block_on(async {
            let client = super::moto::shared().sdk();
            let mut out = Vec::new();
            let mut pages = client
                .describe_instances()
                .filters(app_tag(&self.name))
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .build(),
                )
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for r in page.unwrap().reservations() {
                    for i in r.instances() {
                        let tag = |k: &str| {
                            i.tags()
                                .iter()
                                .find(|t| t.key() == Some(k))
                                .and_then(|t| t.value())
                                .unwrap_or("")
                                .to_string()
                        };
                        // One launch shares one tag (`web[0:6:2]`): the
                        // launch index says which address each instance is.
                        let batch = tag("appgrid:address");
                        let address = batch
                            .parse::<appgrid::graph::ResourceAddress>()
                            .ok()
                            .or_else(|| {
                                appgrid::cloud::decode_batch_address(
                                    &batch,
                                    i.ami_launch_index().unwrap_or(0) as u32,
                                )
                            })
                            .map_or(batch, |a| a.to_string());
                        out.push((
                            address,
                            i.instance_type()
                                .map(|t| t.as_str().to_string())
                                .unwrap_or_default(),
                            i.placement()
                                .and_then(|p| p.availability_zone())
                                .unwrap_or("")
                                .to_string(),
                            tag("appgrid:lineage"),
                        ));
                    }
                }
            }
            out.sort();
            out
        })
    }

    fn addresses(&self) -> Vec<String> {
        self.instances().into_iter().map(|i| i.0).collect()
    }

    fn terminate(&self, address: &str) -> String {
        block_on(async {
            let client = super::moto::shared().sdk();
            let r = client
                .describe_instances()
                .filters(app_tag(&self.name))
                .filters(
                    Filter::builder()
                        .name("tag:appgrid:address")
                        .values(address)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("running")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            let id = r.reservations()[0].instances()[0]
                .instance_id()
                .unwrap()
                .to_string();
            client
                .terminate_instances()
                .instance_ids(&id)
                .send()
                .await
                .unwrap();
            id
        })
    }
}

trait EndsWithSection {
    fn ends_with_section(&self, section: &str) -> bool;
}

impl EndsWithSection for String {
    /// Whether the last table header written so far is `section`.
    fn ends_with_section(&self, section: &str) -> bool {
        self.lines()
            .rev()
            .find(|l| l.trim_start().starts_with('['))
            .is_some_and(|l| l.trim() == section)
    }
}

/// Run `f` to its end on a runtime of its own (the tests here are not async).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// What EC2 lists of the app `name`: what its tag says.
fn app_tag(name: &str) -> Filter {
    Filter::builder()
        .name("tag:appgrid:app")
        .values(name)
        .build()
}

fn blog_addresses(web: u32) -> Vec<String> {
    let mut v: Vec<String> = ["lb", "db.primary", "db.replica[0]", "cache[0]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend((0..web).map(|i| format!("web[{i}]")));
    v.sort();
    v
}

#[test]
fn blog_lifecycle_on_moto() {
    let app = App::new("itblog", 2);
    app.apply();

    // Exactly the expected instances, with the right tags, types and zones.
    let seen = app.instances();
    let by_address: BTreeMap<_, _> = seen.iter().map(|i| (i.0.clone(), i)).collect();
    assert_eq!(
        seen.iter().map(|i| i.0.clone()).collect::<Vec<_>>(),
        blog_addresses(2)
    );
    assert_eq!(by_address["web[0]"].1, "t3.small");
    assert_eq!(by_address["web[0]"].2, "us-east-1a");
    assert_eq!(by_address["web[1]"].2, "us-east-1b");
    assert_eq!(by_address["db.primary"].1, "m5.large");
    assert_eq!(by_address["db.replica[0]"].2, "us-east-1b");
    let lineage = &by_address["lb"].3;
    assert_eq!(lineage.len(), 36, "lineage tag on every instance");
    assert!(seen.iter().all(|i| &i.3 == lineage));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app.dir.join(".appgrid/itblog/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["lineage"].as_str(), Some(lineage.as_str()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(app.dir.join(".appgrid/itblog/state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Plan again: nothing to do.
    let out = app.plan();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "No changes. itblog matches its manifest.\n"
    );

    // 2 → 5: three creates, one apply makes them.
    app.write(5);
    let out = app.plan();
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy.\n"),
        "{stdout}"
    );
    for i in 2..5 {
        assert!(stdout.contains(&format!("+ web[{i}]")), "{stdout}");
    }
    app.apply();
    assert_eq!(app.addresses(), blog_addresses(5));

    // 5 → 2: three deletes.
    app.write(2);
    let out = app.plan();
    assert!(
        text(&out.stdout).contains("Plan: 0 to add, 0 to change, 0 to replace, 3 to destroy.\n"),
        "{}",
        text(&out.stdout)
    );
    app.apply();
    assert_eq!(app.addresses(), blog_addresses(2));

    // Terminated behind appgrid's back: planned for re-creation, and recreated.
    let id = app.terminate("web[1]");
    let out = app.plan();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("web[1]  create: {id} was deleted outside appgrid")),
        "{stdout}"
    );
    app.apply();
    assert_eq!(app.addresses(), blog_addresses(2));
    assert_eq!(app.plan().status.code(), Some(0));

    // Destroy: nothing of the app is left.
    let out = app.run(&["destroy", "--yes", "--allow-data-loss"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(app.instances().is_empty());
    block_on(async {
        let client = super::moto::shared().sdk();
        let groups = client
            .describe_security_groups()
            .filters(app_tag("itblog"))
            .send()
            .await
            .unwrap();
        assert!(
            groups.security_groups().is_empty(),
            "{:?}",
            groups.security_groups()
        );
        let keys = client.describe_key_pairs().send().await.unwrap();
        assert!(
            keys.key_pairs()
                .iter()
                .all(|k| k.key_name() != Some("appgrid-itblog"))
        );
    });
}

#[test]
fn sigkill_during_launch_then_apply_converges() {
    let app = App::new("itkill", 12);
    let m = app.manifest.to_str().unwrap().to_string();
    let mut child = app
        .cmd(&["apply", "--yes", "--parallelism", "1", &m])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it as soon as the first web launch is under way.
    let stderr = child.stderr.take().unwrap();
    let mut reader = std::io::BufReader::new(stderr);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.starts_with("web[") && line.contains("launch") {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "apply was killed, not finished:\n{seen}");

    // Whatever the kill left, the next apply converges: every address once, nothing else.
    app.apply();
    assert_eq!(app.addresses(), blog_addresses(12));
    assert_eq!(app.plan().status.code(), Some(0));
    let out = app.run(&["destroy", "--yes", "--allow-data-loss"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn unreachable_endpoint_fails_after_bounded_retries_and_leaves_state_untouched() {
    let mut app = App::new("itdown", 1);
    app.apply();
    let state_path = app.dir.join(".appgrid/itdown/state.json");
    let before = std::fs::read(&state_path).unwrap();
    let port = super::moto::free_port();
    app.endpoint = format!("http://127.0.0.1:{port}");
    app.write(1);
    let m = app.manifest.to_str().unwrap().to_string();
    for args in [vec!["plan", m.as_str()], vec!["apply", "--yes", m.as_str()]] {
        let out = app
            .cmd(&args)
            .env("APPGRID_AWS_MAX_ATTEMPTS", "2")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        let stderr = text(&out.stderr);
        // apply's preflight asks the endpoint before anything else (issue 7).
        if args[0] == "apply" {
            assert!(
                stderr.starts_with(&format!("error: {m} cannot be applied on this machine yet; nothing was changed:\n  - cannot reach the EC2 API at http://127.0.0.1:{port} (DescribeImages, 2 attempts): connection refused; ")),
                "{stderr}"
            );
            continue;
        }
        // The refresh lists instances, groups and keys at once: any of them may fail first.
        let operation = stderr
            .strip_prefix(&format!("error: refresh failed: cannot reach the EC2 API at http://127.0.0.1:{port} ("))
            .and_then(|rest| rest.strip_suffix(", 2 attempts): connection refused; check `endpoint` in [provider] or AWS_ENDPOINT_URL_EC2\n"))
            .unwrap_or_else(|| panic!("unexpected error text: {stderr}"));
        assert!(
            [
                "DescribeInstances",
                "DescribeSecurityGroups",
                "DescribeKeyPairs"
            ]
            .contains(&operation),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(&state_path).unwrap(),
        before,
        "state untouched"
    );
    assert!(
        !app.dir.join(".appgrid/itdown/state.json.lock").exists(),
        "lock released"
    );
}

#[test]
fn a_second_apply_waits_for_the_lock_then_names_the_holder() {
    let app = App::new("itlock", 1);
    let state_path = app.dir.join(".appgrid/itlock/state.json");
    let lock = appgrid::state::lock::acquire(
        &state_path,
        "apply",
        std::time::Duration::ZERO,
        appgrid::state::lock::DEFAULT_LEASE,
    )
    .unwrap();
    let out = app.run(&["apply", "--yes", "--lock-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = format!(
        "error: state is locked by {}; waited 1s. Wait for it to finish, or if you are sure it is gone, delete {}.lock\n",
        lock.holder().describe(),
        state_path.display()
    );
    assert_eq!(stderr, expected);
    drop(lock);
    app.apply();
    assert_eq!(app.addresses().len(), 4 + 1);
}

#[test]
fn ctrl_c_finishes_running_steps_saves_state_and_says_what_was_not_done() {
    let app = App::new("itint", 4);
    let m = app.manifest.to_str().unwrap().to_string();
    let mut child = app
        .cmd(&["apply", "--yes", "--parallelism", "1", &m])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut sent = false;
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if !sent && line.starts_with("sg.lb: create…") {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            sent = true;
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("interrupted: letting running steps finish"),
        "{seen}"
    );
    assert!(
        seen.contains("sg.lb: create: done"),
        "the running step finished:\n{seen}"
    );
    assert!(seen.contains("\nInterrupted: "), "{seen}");
    assert!(seen.contains("not started."), "{seen}");
    assert!(seen.contains("  not done: "), "{seen}");
    // What was done is in state; the rest comes with the next apply.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app.dir.join(".appgrid/itint/state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["resources"]["sg.lb"]["id"].is_string(), "{state}");
    assert!(state["resources"]["web[0]"].is_null(), "{state}");
    app.apply();
    assert_eq!(app.addresses(), blog_addresses(4));
}
