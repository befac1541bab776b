//! The autoscaler on the fleet (issue 12), on the host farm with its state on
//! moto's S3: `autoscale install` puts the runner on the load balancer's
//! host, which scales the web tier under load while nothing of appgrid runs
//! on the test's side; `autoscale status` shows its passes; `autoscale
//! uninstall` leaves no process and gives the hosts registry back. Bad input
//! (state not on S3, a machine that does not answer) installs nothing.
//!
//! moto listens on the farm bridge's own address (this machine's end of the
//! farm network), so the hosts reach it; traffic goes nowhere else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::{appgrid, scratch, text};
use super::farm::Farm;
use super::hosts_e2e::{LISTEN, WEB_PORT, blog_roles};
use super::http::{http, served_by};
use super::moto::{Moto, REGION};

struct App {
    dir: PathBuf,
    manifest: PathBuf,
}

impl App {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = appgrid();
        c.args(args)
            .arg(&self.manifest)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    fn run(&self, args: &[&str], tail: &[&str]) -> Output {
        self.cmd(args).args(tail).output().expect("appgrid runs")
    }

    fn must(&self, args: &[&str], tail: &[&str]) -> String {
        let out = self.run(args, tail);
        assert!(
            out.status.success(),
            "appgrid {args:?} {tail:?} failed ({}):\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// State as `state pull` shows it (secrets redacted), read from S3.
    fn state(&self) -> Value {
        serde_json::from_str(&self.must(&["state", "pull"], &[])).unwrap()
    }
}

fn manifest(farm: &Farm, app: &str, state: &str) -> String {
    let hosts: Vec<String> = farm
        .hosts()
        .iter()
        .map(|h| format!("\"{}\"", h.addr))
        .collect();
    format!(
        "[app]\nname = \"{app}\"\n\n[provider]\nkind = \"hosts\"\nssh_user = \"root\"\n\
         ssh_key = \"{}\"\nhosts = [{}]\n{}\n[autoscale]\nmetric = \"requests_per_instance\"\ntarget = 5\n\
         min = 1\nmax = 2\nscale_out_cooldown = \"2s\"\nscale_in_cooldown = \"30m\"\nwarmup = \"1s\"\ninterval = \"2s\"\n{state}",
        farm.client_key().display(),
        hosts.join(", "),
        blog_roles(1, 0, WEB_PORT)
    )
}

/// Pids of appgrid processes in `netns` (the farm's process listing).
fn appgrid_pids(netns: &str) -> Vec<u32> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "appgrid")
        })
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// appgrid processes on the test's side (this network namespace) running
/// the autoscaler of `manifest`.
fn autoscalers_here(manifest: &Path) -> Vec<String> {
    let here = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        if std::fs::read_link(p.join("ns/net")).ok().as_ref() != Some(&here) {
            continue;
        }
        let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" autoscale ") && cmdline.contains(&manifest.display().to_string()) {
            found.push(cmdline);
        }
    }
    found
}

/// Wait for `f`; on timeout the runner's log (kept on the lb host) says why.
fn until(what: &str, limit: Duration, log: &Path, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}; the runner's log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    start.elapsed()
}

/// The object at `key` in `bucket` as JSON, or `None`.
fn object_json(moto: &Moto, bucket: &str, key: &str) -> Option<Value> {
    super::s3_state::object_at(&moto.endpoint, bucket, key)
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
}

fn bucket(moto: &Moto, name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        super::s3_state::sdk(&moto.endpoint)
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn the_autoscaler_installed_on_the_load_balancer_scales_the_farm() {
    let farm = Farm::new(5); // lb, db.primary, cache, web[0], and one spare
    let gateway = format!("{}.1", farm.hosts()[0].addr.rsplit_once('.').unwrap().0);
    let moto = Moto::dedicated_at(&gateway);
    let app_name = "fleetscale";
    let bucket_name = format!("appgrid-fleet-{:x}", fastrand::u32(..));
    bucket(&moto, &bucket_name);
    let dir = scratch(app_name);
    let app = App {
        manifest: dir.join("appgrid.toml"),
        dir: dir.clone(),
    };
    let s3 = format!(
        "\n[state]\nbackend = \"s3\"\nbucket = \"{bucket_name}\"\nregion = \"{REGION}\"\nendpoint = \"{}\"\n",
        moto.endpoint
    );

    // Bad input: state in a local file cannot serve a runner elsewhere.
    std::fs::write(&app.manifest, manifest(&farm, app_name, "")).unwrap();
    let out = app.run(&["autoscale", "install"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("put state on S3 first"), "{err}");
    for i in 0..farm.hosts().len() {
        assert!(
            !farm.private_dir(i, "var/lib/appgrid/autoscale").exists(),
            "something was installed on h{i}"
        );
    }

    std::fs::write(&app.manifest, manifest(&farm, app_name, &s3)).unwrap();
    app.must(&["apply", "--yes"], &[]);
    let state = app.state();
    let lb_addr = state["resources"]["lb"]["attributes"]["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    let lb_host = farm.hosts().iter().position(|h| h.addr == lb_addr).unwrap();
    let lb_netns = farm.hosts()[lb_host].netns.clone();
    let runner_dir = farm.private_dir(lb_host, "var/lib/appgrid/autoscale");
    let log = farm
        .private_dir(lb_host, "var/log/appgrid")
        .join("appgrid-autoscale.log");
    let lb = format!("{lb_addr}:{LISTEN}");
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    let creds = creds.display().to_string();

    // Bad input: the load balancer's host does not answer.
    farm.cut(lb_host);
    let started = Instant::now();
    let out = app.run(&["autoscale", "install"], &["--credentials", &creds]);
    farm.restore(lb_host);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach lb to install the autoscaler")
            && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    assert!(!runner_dir.exists(), "a partial install stayed behind");

    // Install: the binary arrives intact and runs on the load balancer's host.
    let started = Instant::now();
    let out = app
        .cmd(&["autoscale", "install"])
        .args(["--credentials", &creds])
        .env("APPGRID_LOG", "appgrid=debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let installed = text(&out.stdout);
    let phases: Vec<String> = text(&out.stderr)
        .lines()
        .filter(|l| l.contains("install: "))
        .map(str::to_string)
        .collect();
    eprintln!(
        "autoscale install: {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        phases.join("\n")
    );
    assert!(
        installed.starts_with("Installed the autoscaler of fleetscale on lb ("),
        "{installed}"
    );
    let binary = std::fs::read(env!("CARGO_BIN_EXE_appgrid")).unwrap();
    let sha = appgrid::hash::sha256_hex(&binary);
    assert!(installed.contains(&sha[..12]), "{installed}");
    let meta = std::fs::metadata(runner_dir.join("credentials")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    until(
        "the runner on the lb host",
        Duration::from_secs(10),
        &log,
        || appgrid_pids(&lb_netns).len() == 1,
    );
    let first = appgrid_pids(&lb_netns);

    // Installing again replaces the runner: still exactly one.
    let started = Instant::now();
    app.must(&["autoscale", "install"], &["--credentials", &creds]);
    eprintln!(
        "autoscale install again (binary already there): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    until(
        "the new runner alone",
        Duration::from_secs(40),
        &log,
        || {
            let now = appgrid_pids(&lb_netns);
            now.len() == 1 && now != first
        },
    );
    until("a pass recorded", Duration::from_secs(30), &log, || {
        app.must(&["autoscale", "status"], &[])
            .contains("heartbeat: ")
    });

    // A second runner on another machine is refused, naming where the
    // first runs; nothing is put on that machine, the first runs on.
    let install_key = "appgrid/fleetscale/state.json.autoscaler.json";
    let beat_key = "appgrid/fleetscale/state.json.autoscaler-heartbeat.json";
    let web_addr = state["resources"]["web[0]"]["attributes"]["private_ip"]
        .as_str()
        .unwrap();
    let web_host = farm
        .hosts()
        .iter()
        .position(|h| h.addr == web_addr)
        .unwrap();
    let record_before = object_json(&moto, &bucket_name, install_key).expect("install record");
    assert_eq!(record_before["on"], "lb", "{record_before}");
    let runner_now = appgrid_pids(&lb_netns);
    let out = app.run(
        &["autoscale", "install"],
        &["--on", "web[0]", "--credentials", &creds],
    );
    let err = super::cli::refused(
        &out,
        &format!("the autoscaler of fleetscale already runs on lb ({lb_addr})"),
    );
    assert!(
        err.contains("autoscale uninstall")
            && err.contains(&format!("s3://{bucket_name}/{install_key}"))
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(
        !farm
            .private_dir(web_host, "var/lib/appgrid/autoscale")
            .exists(),
        "something was installed on web[0]"
    );
    assert_eq!(appgrid_pids(&lb_netns), runner_now);
    assert_eq!(
        object_json(&moto, &bucket_name, install_key),
        Some(record_before)
    );

    // The runner's heartbeat is beside the state, where teammates read it.
    until(
        "a heartbeat beside the state",
        Duration::from_secs(30),
        &log,
        || {
            object_json(&moto, &bucket_name, beat_key)
                .is_some_and(|b| b["on"] == "lb" && b["heartbeat"]["passes"].as_u64() >= Some(1))
        },
    );

    // Load through the load balancer: the runner scales the web tier out.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = {
        let (lb, stop, seen) = (lb.clone(), Arc::clone(&stop), Arc::clone(&seen));
        rt.spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match http(&lb, "GET", "/", "").await {
                    Ok((200, body)) => {
                        ok += 1;
                        seen.lock().unwrap().insert(served_by(&body));
                    }
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    let load_started = Instant::now();
    let mut here = Vec::new();
    until(
        "a scale-out by the runner",
        Duration::from_secs(120),
        &log,
        || {
            here.extend(autoscalers_here(&app.manifest));
            !app.state()["resources"]["web[1]"].is_null()
        },
    );
    let to_scale_out = load_started.elapsed();
    eprintln!(
        "load to web[1] in state: {:.1} s",
        to_scale_out.as_secs_f64()
    );
    assert!(
        here.is_empty(),
        "an autoscaler ran on the test's side: {here:?}"
    );
    until(
        "the new server serving",
        Duration::from_secs(90),
        &log,
        || seen.lock().unwrap().len() >= 2,
    );
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = rt.block_on(load).unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed while scaling out, first: {:?}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(3)]
    );
    assert_eq!(
        app.state()["autoscale"]["web"],
        2,
        "the runner recorded its choice"
    );

    // Status: where, which binary, its passes.
    let status = app.must(&["autoscale", "status"], &[]);
    assert!(
        status.starts_with(&format!(
            "autoscaler of fleetscale on lb ({lb_addr}): running (pid {}), loop mode\n",
            appgrid_pids(&lb_netns)[0]
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!("(sha256 {})", &sha[..12])),
        "{status}"
    );
    assert!(status.contains("last pass: "), "{status}");
    let passes: u64 = status
        .split(" passes)")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pass count: {status}"));
    assert!(passes >= 2, "{status}");
    assert!(!status.contains("STALE"), "{status}");
    assert!(
        status.contains(&format!(
            "heartbeat read from s3://{bucket_name}/{beat_key}\n"
        )),
        "{status}"
    );

    // A teammate who cannot reach the machine still sees where it runs and
    // its last pass, from beside the state.
    farm.cut(lb_host);
    let started = Instant::now();
    let out = app.run(&["autoscale", "status"], &[]);
    farm.restore(lb_host);
    eprintln!(
        "autoscale status with lb cut off: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cut_status = text(&out.stdout);
    assert!(out.status.success(), "{cut_status}{}", text(&out.stderr));
    assert!(
        cut_status.starts_with(&format!(
            "autoscaler of fleetscale on lb ({lb_addr}): unknown (cannot reach it: "
        )),
        "{cut_status}"
    );
    assert!(cut_status.contains("last pass: "), "{cut_status}");
    assert!(cut_status.contains(" passes)"), "{cut_status}");
    assert!(
        cut_status.contains(&format!(
            "heartbeat read from s3://{bucket_name}/{beat_key}\n"
        )),
        "{cut_status}"
    );

    // Uninstall: nothing left running there, the claims come back here.
    let out = app.must(&["autoscale", "uninstall"], &[]);
    assert_eq!(
        out,
        format!("Removed the autoscaler of fleetscale from lb ({lb_addr}).\n")
    );
    assert_eq!(appgrid_pids(&lb_netns), Vec::<u32>::new());
    assert!(!runner_dir.exists());
    let claims: Value = serde_json::from_str(
        &std::fs::read_to_string(app.dir.join(".appgrid/fleetscale/hosts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["claims"].as_array().unwrap().len(), 5, "{claims}");
    assert_eq!(object_json(&moto, &bucket_name, install_key), None);
    assert_eq!(object_json(&moto, &bucket_name, beat_key), None);
    let again = app.must(&["autoscale", "uninstall"], &[]);
    assert!(again.contains("not installed on lb"), "{again}");
    let status = app.must(&["autoscale", "status"], &[]);
    assert!(status.contains("is not installed on lb"), "{status}");

    app.must(&["destroy", "--yes", "--allow-data-loss"], &[]);
    for h in farm.hosts() {
        assert_eq!(appgrid_pids(&h.netns), Vec::<u32>::new(), "{}", h.addr);
    }
}

/// Processes running the binary under `dir` (the runner's copy).
fn running_from(dir: &Path) -> Vec<String> {
    let needle = dir.join("appgrid").display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with(&needle) {
            found.push(cmdline);
        }
    }
    found
}

/// The `local` provider: the runner runs on this machine under appgrid's
/// supervisor, in the load balancer machine's root, with the state file
/// where it is (no S3 needed); its passes land in the same record `autoscale
/// history` reads; uninstall stops it; a destroy without uninstall reaps it
/// with its machine.
#[test]
fn on_the_local_provider_the_runner_is_a_supervised_service_of_the_lb_machine() {
    let dir = scratch("fleetlocal");
    let machines = dir.join("machines");
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let app = App {
        manifest: dir.join("appgrid.toml"),
        dir: dir.clone(),
    };
    std::fs::write(
        &app.manifest,
        format!(
            "[app]\nname = \"fleetlocal\"\n[provider]\nkind = \"local\"\n\
             [release]\npath = \"{}\"\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = 8080\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
             [database]\ninstance_type = \"m5.large\"\nschema = \"{}/schema.sql\"\n\
             [autoscale]\nmetric = \"requests_per_instance\"\ntarget = 5\nmin = 1\nmax = 2\ninterval = \"1s\"\n\
             scale_out_cooldown = \"2s\"\nscale_in_cooldown = \"30m\"\nwarmup = \"1s\"\n",
            app_dir.display(),
            app_dir.display()
        ),
    )
    .unwrap();
    // Whatever happens, nothing of this app stays running.
    struct Cleanup(PathBuf, PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = appgrid()
                .args(["destroy", "--yes", "--allow-data-loss"])
                .arg(&self.0)
                .env("APPGRID_LOCAL_ROOT", &self.1)
                .output();
        }
    }
    let _cleanup = Cleanup(app.manifest.clone(), machines.clone());
    let local = |args: &[&str]| {
        let out = app
            .cmd(args)
            .env("APPGRID_LOCAL_ROOT", &machines)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "appgrid {args:?}:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    local(&["apply", "--yes"]);
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".appgrid/fleetlocal/state.json")).unwrap(),
    )
    .unwrap();
    let lb_id = state["resources"]["lb"]["id"].as_str().unwrap().to_string();
    let runner_dir = machines
        .join("fleetlocal/machines")
        .join(&lb_id)
        .join("var/lib/appgrid/autoscale");
    let log = machines
        .join("fleetlocal/machines")
        .join(&lb_id)
        .join("var/log/appgrid/appgrid-autoscale.log");

    let installed = local(&["autoscale", "install"]);
    assert!(
        installed.contains("loop under appgrid's supervisor"),
        "{installed}"
    );
    until("the runner", Duration::from_secs(10), &log, || {
        running_from(&runner_dir).len() == 1
    });
    // Its passes are in the record beside the state file, as a local loop's.
    until(
        "two passes in the history",
        Duration::from_secs(30),
        &log,
        || local(&["autoscale", "history"]).lines().count() >= 2,
    );
    let status = local(&["autoscale", "status"]);
    assert!(status.contains("): running (pid "), "{status}");
    assert!(status.contains("last pass: "), "{status}");
    // A second runner on another machine of the app is refused.
    let record = dir.join(".appgrid/fleetlocal/state.json.autoscaler.json");
    let before = std::fs::read(&record).expect("install record beside the state");
    let out = app
        .cmd(&["autoscale", "install"])
        .args(["--on", "web[0]"])
        .env("APPGRID_LOCAL_ROOT", &machines)
        .output()
        .unwrap();
    super::cli::refused(&out, "the autoscaler of fleetlocal already runs on lb");
    let web_id = state["resources"]["web[0]"]["id"].as_str().unwrap();
    assert!(
        !machines
            .join("fleetlocal/machines")
            .join(web_id)
            .join("var/lib/appgrid/autoscale")
            .exists()
    );
    assert_eq!(std::fs::read(&record).unwrap(), before);
    assert_eq!(running_from(&runner_dir).len(), 1);

    // A second autoscaler here too, under load: the two take turns (the
    // record's lock around each pass, the state lock around each change),
    // so the tier is scaled out once, not once by each.
    let mut second = app
        .cmd(&["autoscale"])
        .env("APPGRID_LOCAL_ROOT", &machines)
        .stdout(std::fs::File::create(dir.join("second.out")).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lb = format!(
        "{}:8000",
        state["resources"]["lb"]["attributes"]["private_ip"]
            .as_str()
            .unwrap()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = {
        let (lb, stop) = (lb.clone(), Arc::clone(&stop));
        rt.spawn(async move {
            let mut failed = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                if let Err(e) = http(&lb, "GET", "/", "").await {
                    failed.push(e);
                }
            }
            failed
        })
    };
    let web_count = || {
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(".appgrid/fleetlocal/state.json")).unwrap(),
        )
        .unwrap();
        state["resources"]["web[1].release"].is_object()
    };
    until("a scale-out", Duration::from_secs(120), &log, web_count);
    // Both keep passing a while longer under the same load.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let failed = rt.block_on(load).unwrap();
    let _ = second.kill();
    let _ = second.wait();
    assert!(failed.is_empty(), "{failed:?}");
    let second_passes = std::fs::read_to_string(dir.join("second.out")).unwrap();
    assert!(
        second_passes.lines().count() >= 2,
        "the second autoscaler made passes: {second_passes}"
    );
    let history = local(&["autoscale", "history"]);
    let outs: Vec<&str> = history.lines().filter(|l| l.contains(" 1 -> 2 ")).collect();
    assert_eq!(outs.len(), 1, "{history}");
    assert!(!history.contains("the apply failed"), "{history}");
    assert!(
        history.lines().filter(|l| l.contains(" 2 -> 2 ")).count() >= 2,
        "passes after the scale-out see its count: {history}"
    );

    // A runner that stopped passing: its heartbeat ages and status says so.
    assert_eq!(running_from(&runner_dir).len(), 1);
    let status = local(&["autoscale", "status"]);
    let pid: i32 = status
        .split("running (pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let beat_path = runner_dir.join("heartbeat.json");
    let mut beat: Value =
        serde_json::from_str(&std::fs::read_to_string(&beat_path).unwrap()).unwrap();
    beat["at"] = (beat["at"].as_u64().unwrap() - 600).into();
    std::fs::write(&beat_path, beat.to_string()).unwrap();
    let out = app
        .cmd(&["autoscale", "status"])
        .env("APPGRID_LOCAL_ROOT", &machines)
        .output()
        .unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains(" s ago (pid ") && stdout.contains("): STALE\n"),
        "{stdout}"
    );
    assert!(stderr.contains("made no pass for 6"), "{stderr}");

    let out = local(&["autoscale", "uninstall"]);
    assert!(
        out.starts_with("Removed the autoscaler of fleetlocal from lb"),
        "{out}"
    );
    assert_eq!(running_from(&runner_dir), Vec::<String>::new());
    assert!(!runner_dir.exists());
    assert!(!record.exists());

    // Installed again and never uninstalled: the machine's removal ends it.
    local(&["autoscale", "install"]);
    until("the runner again", Duration::from_secs(10), &log, || {
        running_from(&runner_dir).len() == 1
    });
    local(&["destroy", "--yes", "--allow-data-loss"]);
    assert_eq!(running_from(&runner_dir), Vec::<String>::new());
}

/// The install record on S3 is written only over the version read, so of
/// two installs on two machines racing, one loses (and is undone); the
/// heartbeat is published beside it and both go with `remove`.
#[test]
fn the_install_record_on_s3_admits_one_of_two_racing_installs() {
    use appgrid::autoscale::fleet::{Heartbeat, Installed};
    use appgrid::autoscale::fleet_record::{self, PublishedBeat, RecordPlace};
    use appgrid::state::location::{S3Location, StateLocation};

    let moto = super::moto::shared();
    let name = format!("appgrid-record-{:x}", fastrand::u32(..));
    bucket(moto, &name);
    let at = S3Location {
        bucket: name.clone(),
        key: "appgrid/rec/state.json".into(),
        region: Some(REGION.into()),
        endpoint: Some(moto.endpoint.clone()),
    };
    appgrid::state::s3_store::connect_with_credentials(&at, ("test".into(), "test".into()))
        .unwrap();
    let place = RecordPlace::of(&StateLocation::S3(at));
    let installed = |on: &str| Installed::for_test(on, "ann@laptop");
    assert!(fleet_record::read_installed(&place).unwrap().is_none());
    // Both read "nothing"; the first write wins, the second is refused.
    assert!(fleet_record::write_installed(&place, &installed("lb"), None).unwrap());
    assert!(!fleet_record::write_installed(&place, &installed("web[0]"), None).unwrap());
    let (got, etag) = fleet_record::read_installed(&place).unwrap().unwrap();
    assert_eq!(got.on, "lb");
    // An upgrade in place over the version read; a stale version loses.
    // (The ETag is the content's MD5: the upgrade's record differs, as a
    // real one does in its time and binary.)
    let upgraded = Installed {
        at: 6,
        ..installed("lb")
    };
    assert!(fleet_record::write_installed(&place, &upgraded, Some(&etag)).unwrap());
    assert!(!fleet_record::write_installed(&place, &installed("web[0]"), Some(&etag)).unwrap());
    let beat = PublishedBeat {
        on: "lb".into(),
        heartbeat: Heartbeat {
            at: 9,
            pid: 42,
            passes: 3,
            last: Err("the apply failed".into()),
            interval_s: 2,
        },
    };
    fleet_record::publish_beat(&place, &beat).unwrap();
    let (read, from) = fleet_record::read_beat(&place).unwrap().unwrap();
    assert_eq!(read, beat);
    assert_eq!(
        from,
        format!("s3://{name}/appgrid/rec/state.json.autoscaler-heartbeat.json")
    );
    assert!(object_json(moto, &name, "appgrid/rec/state.json.autoscaler.json").is_some());
    fleet_record::remove(&place).unwrap();
    assert!(fleet_record::read_installed(&place).unwrap().is_none());
    assert!(fleet_record::read_beat(&place).unwrap().is_none());
}
