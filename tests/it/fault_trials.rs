//! One trial of issue 10's yardstick: `appgrid apply` of an app through the
//! fault proxy in front of moto, then what exists counted at moto directly.
//! Shared by the `faults` tests (a handful of seeds) and `benches/faults.rs`
//! (hundreds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;

use super::faultproxy::{FaultProxy, Faults, Stats};

/// What one trial saw.
#[derive(Debug, Clone)]
pub struct Trial {
    pub seed: u64,
    pub client_token: bool,
    /// The faulty apply's exit code.
    pub exit: Option<i32>,
    pub wanted: Vec<String>,
    /// Live instances of the app at moto after the faulty apply, by address.
    pub after_apply: Vec<String>,
    /// After the faulty apply (and, if it failed, one more apply without
    /// faults): live instances by address.
    pub settled: Vec<String>,
    /// `plan --detailed-exitcode` against moto after settling (0: no changes).
    pub replan: Option<i32>,
    pub stats: Stats,
    pub elapsed: Duration,
    pub stderr: String,
}

impl Trial {
    /// Instances beyond one per wanted address, after the faulty apply.
    pub fn duplicates(&self) -> usize {
        self.after_apply
            .len()
            .saturating_sub(dedup(&self.after_apply).len())
    }

    /// Live instances at addresses nothing wants, after the faulty apply.
    pub fn orphans(&self) -> usize {
        self.after_apply
            .iter()
            .filter(|a| !self.wanted.contains(a))
            .count()
    }

    /// HTTP requests the apply sent, per EC2 action.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.stats
            .iter()
            .map(|(action, kinds)| {
                let n = ["ok", "throttle", "error", "lost", "reset"]
                    .iter()
                    .map(|k| kinds.get(k).copied().unwrap_or(0))
                    .sum();
                (action.clone(), n)
            })
            .collect()
    }
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut d = v.to_vec();
    d.dedup();
    d
}

/// The binary under test (`APPGRID_BIN` lets the bench measure another build).
pub fn appgrid() -> Command {
    let bin =
        std::env::var_os("APPGRID_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_appgrid").into());
    let mut c = Command::new(bin);
    c.env_remove("AWS_ENDPOINT_URL_EC2")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/appgrid-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/appgrid-test-credentials",
        );
    c
}

/// The blog example with `web` app servers (4 + web machines), pointed at
/// `endpoint`, machines only.
pub fn write_manifest(dir: &Path, name: &str, web: u32, endpoint: &str) -> PathBuf {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog/appgrid.toml"),
    )
    .unwrap();
    let mut out = String::new();
    let mut section = String::new();
    for line in example.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let line = match (section.as_str(), key) {
            ("[app]", "name") => format!("name = \"{name}\""),
            ("[provider]", "image") => "image = \"ami-12c6146b\"".to_string(),
            ("[provider]", "ssh_key") => "ssh_key = \"id_ed25519\"".to_string(),
            ("[web]", "count") => format!("count = {web}"),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
        if trimmed == "[provider]" {
            out.push_str(&format!("endpoint = \"{endpoint}\"\nconfigure = false\n"));
        }
    }
    let manifest = dir.join("appgrid.toml");
    std::fs::write(&manifest, out).unwrap();
    let key = dir.join("id_ed25519");
    if !key.exists() {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "appgrid-test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen runs")
            .success();
        assert!(ok);
    }
    manifest
}

pub fn wanted(web: u32) -> Vec<String> {
    let mut v: Vec<String> = ["lb", "db.primary", "db.replica[0]", "cache[0]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend((0..web).map(|i| format!("web[{i}]")));
    v.sort();
    v
}

/// Live instances of `app` at `endpoint`, by address (a batch tag resolved
/// by launch index), sorted; counted with a client of the test's own.
pub fn live_addresses(endpoint: &str, app: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        let client = aws_sdk_ec2::Client::from_conf(config);
        let mut pages = client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag:appgrid:app")
                    .values(app)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .build(),
            )
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for r in page.expect("moto answers").reservations() {
                for i in r.instances() {
                    let tag = i
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some(appgrid::cloud::TAG_ADDRESS))
                        .and_then(|t| t.value())
                        .unwrap_or("");
                    let index = i.ami_launch_index().unwrap_or(0) as u32;
                    let address = tag
                        .parse::<appgrid::graph::ResourceAddress>()
                        .ok()
                        .or_else(|| appgrid::cloud::decode_batch_address(tag, index))
                        .map_or_else(|| format!("?{tag}"), |a| a.to_string());
                    out.push(address);
                }
            }
        }
        out.sort();
        out
    })
}

fn run(c: &mut Command) -> Output {
    c.output().expect("appgrid runs")
}

/// Apply an app of `4 + web` machines through a proxy with `faults`, then
/// settle (apply again without faults if it failed) and re-plan.
pub fn run_trial(moto: &str, dir: &Path, name: &str, web: u32, faults: Faults) -> Trial {
    let proxy = FaultProxy::start(moto, faults);
    let manifest = write_manifest(dir, name, web, &proxy.endpoint);
    let m = manifest.to_str().unwrap().to_string();
    let started = Instant::now();
    let out = run(appgrid().args(["apply", "--yes", &m]));
    let elapsed = started.elapsed();
    let stats = proxy.stats();
    drop(proxy);
    let after_apply = live_addresses(moto, name);

    // Settle without faults: a failed apply must leave a state the next one finishes from.
    write_manifest(dir, name, web, moto);
    if out.status.code() != Some(0) {
        let again = run(appgrid().args(["apply", "--yes", &m]));
        assert!(
            again.status.success(),
            "seed {}: the apply after a failed one failed too:\n{}",
            faults.seed,
            String::from_utf8_lossy(&again.stderr)
        );
    }
    let settled = live_addresses(moto, name);
    let replan = run(appgrid().args(["plan", "--detailed-exitcode", &m]))
        .status
        .code();
    Trial {
        seed: faults.seed,
        client_token: faults.client_token,
        exit: out.status.code(),
        wanted: wanted(web),
        after_apply,
        settled,
        replan,
        stats,
        elapsed,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
