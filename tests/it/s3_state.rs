//! Issue 12: state on S3 (moto's S3 on 127.0.0.1) with conditional-write
//! locking and fencing, driven through the library and the CLI.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use appgrid::state::location::{S3Location, StateLocation};
use appgrid::state::lock::LockError;
use appgrid::state::store::StateError;
use appgrid::state::{State, s3_lock, s3_store};

use super::fault_trials::{appgrid, live_addresses, wanted, write_manifest};
use super::faultproxy::{FaultProxy, Faults};
use super::moto::REGION;

/// A bucket of its own on the shared moto, named for the test.
fn bucket(test: &str) -> String {
    let name = format!("appgrid-{test}-{:x}", fastrand::u32(..));
    let endpoint = super::moto::shared().endpoint.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sdk(&endpoint)
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap();
    });
    name
}

/// A plain S3 client, to look at what appgrid wrote independently.
pub(super) fn sdk(endpoint: &str) -> aws_sdk_s3::Client {
    sdk_as(endpoint, "test", "test")
}

/// A plain S3 client with the access key `id`.
fn sdk_as(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            id, secret, None, None, "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The object at `key` in `bucket` on the moto at `endpoint`, or `None`.
pub(super) fn object_at(endpoint: &str, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let out = sdk(endpoint)
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    })
}

/// The object at `key` on the shared moto, or `None`.
fn object(bucket: &str, key: &str) -> Option<Vec<u8>> {
    object_at(&super::moto::shared().endpoint, bucket, key)
}

/// The location of `key` in `bucket` on moto, connected for this process
/// with the test's static credentials (the environment is never read).
fn location(bucket: &str, key: &str) -> S3Location {
    let at = S3Location {
        bucket: bucket.to_string(),
        key: key.to_string(),
        region: Some(REGION.to_string()),
        endpoint: Some(super::moto::shared().endpoint.clone()),
    };
    s3_store::connect_with_credentials(&at, ("test".into(), "test".into())).unwrap();
    at
}

/// The blog manifest (machines only, EC2 at `ec2`) with its state on S3.
fn s3_manifest(dir: &Path, name: &str, web: u32, ec2: &str, bucket: &str) -> PathBuf {
    s3_manifest_at(dir, name, web, ec2, bucket, &super::moto::shared().endpoint)
}

/// The same, with the state on S3 at `s3`.
fn s3_manifest_at(dir: &Path, name: &str, web: u32, ec2: &str, bucket: &str, s3: &str) -> PathBuf {
    let path = write_manifest(dir, name, web, ec2);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[state]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nregion = \"{REGION}\"\nendpoint = \"{s3}\"\n"
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn state_json(bucket: &str, name: &str) -> Option<State> {
    object(bucket, &format!("appgrid/{name}/state.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// EC2 answers slowly through this proxy, so an apply holds the lock a while.
fn slow_ec2() -> FaultProxy {
    FaultProxy::start(
        &super::moto::shared().endpoint,
        Faults {
            throttle: 0.0,
            error: 0.0,
            lost: 0.0,
            reset: 0.0,
            delay: 1.0,
            max_delay: Duration::from_millis(600),
            seed: 12,
            client_token: true,
        },
    )
}

/// Starts `apply` and returns once it is launching (it holds the lock);
/// the stderr read so far and the rest to read.
// The caller waits for the child it gets back.
#[allow(clippy::zombie_processes)]
fn apply_until_launching(
    manifest: &str,
    lease: &str,
) -> (Child, std::io::BufReader<std::process::ChildStderr>, String) {
    let mut a = appgrid()
        .args(["apply", "--yes", "--parallelism", "1", manifest])
        .env("APPGRID_LOCK_LEASE_SECS", lease)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(a.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "apply ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains(": launch") {
            return (a, err, seen);
        }
    }
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

#[test]
fn s3_lock_admits_one_of_many_racing_acquirers() {
    let b = bucket("race");
    let at = location(&b, "race/state.json");
    let winners: Vec<_> = std::thread::scope(|s| {
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let at = at.clone();
                s.spawn(move || {
                    s3_lock::acquire(&at, "apply", Duration::ZERO, Duration::from_secs(60))
                })
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let held: Vec<_> = winners.iter().filter_map(|w| w.as_ref().ok()).collect();
    assert_eq!(held.len(), 1, "exactly one acquirer wins");
    let holder = held[0].holder().clone();
    for loser in winners.iter().filter_map(|w| w.as_ref().err()) {
        match loser {
            LockError::HeldRemote { holder: h, .. } => assert_eq!(h.lock_id(), holder.lock_id()),
            other => panic!("expected HeldRemote, got {other}"),
        }
        let message = loser.to_string();
        assert!(
            message.contains(&format!("lock ID {}", holder.lock_id())),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
    }
    drop(winners);
    assert_eq!(object(&b, "race/state.json.lock"), None, "released on drop");
}

#[test]
fn s3_lock_expired_lease_is_taken_over_once_and_the_loser_cannot_write() {
    let b = bucket("takeover");
    let at = location(&b, "t/state.json");
    let store_loc = StateLocation::S3(at.clone());
    let old = s3_lock::acquire(&at, "apply", Duration::ZERO, Duration::from_secs(1)).unwrap();
    let old_store = store_loc.store().fenced_by(&old);
    let mut state = State::new("takeover", "lineage-t".into());
    old_store.save(&mut state).unwrap();
    assert_eq!(state.serial, 1);
    // While the holder renews, nobody else gets the lock.
    let early = s3_lock::acquire(&at, "apply", Duration::ZERO, Duration::from_secs(1));
    assert!(
        matches!(early, Err(LockError::HeldRemote { .. })),
        "{early:?}"
    );
    // As if it had been paused: the lock object says its lease expired.
    let mut expired = old.holder().clone();
    expired.lease_until = expired.acquired_at.saturating_sub(10);
    let endpoint = super::moto::shared().endpoint.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sdk(&endpoint)
            .put_object()
            .bucket(&b)
            .key("t/state.json.lock")
            .body(serde_json::to_vec(&expired).unwrap().into())
            .send()
            .await
            .unwrap();
    });
    let new = s3_lock::acquire(
        &at,
        "apply",
        Duration::from_secs(5),
        Duration::from_secs(60),
    )
    .unwrap();
    let note = new.takeover_note().unwrap();
    assert!(
        note.starts_with(&format!(
            "took over the state lock from pid {}",
            std::process::id()
        )),
        "{note}"
    );
    assert!(note.contains("whose lease expired at"), "{note}");

    // The old holder's write is refused, and says why.
    let remote_before = object(&b, "t/state.json").unwrap();
    state.resources.clear();
    let err = old_store.save(&mut state).unwrap_err();
    assert!(
        matches!(err, StateError::LockLost(LockError::Lost { .. })),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("this run no longer holds the state lock"),
        "{message}"
    );
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(object(&b, "t/state.json").unwrap(), remote_before);

    // The new holder writes; the old one's release leaves the new lock alone.
    let new_store = store_loc.store().fenced_by(&new);
    let mut current = new_store.load().unwrap().unwrap();
    new_store.save(&mut current).unwrap();
    drop(old);
    assert!(
        object(&b, "t/state.json.lock").is_some(),
        "the new holder's lock stays"
    );
    assert!(new.still_held());
    drop(new);
    assert!(object(&b, "t/state.json.lock").is_none());
}

#[test]
fn s3_state_writes_are_compare_and_swap_and_keep_five_backups() {
    let b = bucket("cas");
    let store = StateLocation::S3(location(&b, "c/state.json")).store();
    assert_eq!(store.load().unwrap(), None);
    let mut state = State::new("cas", "lineage-c".into());
    for _ in 0..8 {
        state.autoscale = None;
        store.save(&mut state).unwrap();
    }
    assert_eq!(state.serial, 8);
    let on_remote: State = serde_json::from_slice(&object(&b, "c/state.json").unwrap()).unwrap();
    assert_eq!(
        (on_remote.serial, on_remote.lineage.as_str()),
        (8, "lineage-c")
    );
    let backups: Vec<u64> = (0..=8)
        .filter(|n| object(&b, &format!("c/state.json.backup.{n}")).is_some())
        .collect();
    assert_eq!(
        backups,
        vec![3, 4, 5, 6, 7],
        "the newest five serials are kept"
    );
    let backup: State =
        serde_json::from_slice(&object(&b, "c/state.json.backup.7").unwrap()).unwrap();
    assert_eq!(backup.serial, 7);

    // A writer that read serial 8 after another wrote 9 conflicts, and writes nothing.
    let mut stale = state.clone();
    store.save(&mut state).unwrap();
    let err = store.save(&mut stale).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Conflict {
                read: 8,
                on_disk: Some(9),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("s3://{b}/c/state.json")),
        "{err}"
    );
    assert_eq!(stale.serial, 8);
}

#[test]
fn two_applies_on_one_s3_state_one_runs_the_other_names_the_holder_or_waits() {
    let moto = super::moto::shared();
    let name = "its3two";
    let b = bucket("two");
    let dir = super::cli::scratch(name);
    let slow = slow_ec2();
    let manifest = s3_manifest(&dir, name, 1, &slow.endpoint, &b);
    let m = manifest.to_str().unwrap().to_string();

    let (mut a, mut a_err, mut seen) = apply_until_launching(&m, "60");
    let b_run = appgrid()
        .args(["apply", "--yes", "--lock-timeout", "1s", &m])
        .output()
        .unwrap();
    let b_err = text(&b_run.stderr);
    assert_eq!(b_run.status.code(), Some(1), "{b_err}");
    assert!(
        b_err.contains(&format!(
            "s3://{b}/appgrid/{name}/state.json is locked by pid {}",
            a.id()
        )),
        "B names the holder:\n{b_err}"
    );
    assert!(b_err.contains("lock ID "), "{b_err}");
    assert!(b_err.contains("appgrid state unlock"), "{b_err}");

    // C waits for A (up to its --lock-timeout) and then runs.
    let c = appgrid()
        .args(["apply", "--yes", "--lock-timeout", "120s", &m])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = a.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut a_err, &mut rest).unwrap();
    seen.push_str(&rest);
    assert!(status.success(), "{seen}");
    let c = c.wait_with_output().unwrap();
    assert!(c.status.success(), "{}", text(&c.stderr));
    drop(slow);
    assert_eq!(live_addresses(&moto.endpoint, name), wanted(1));
    let state = state_json(&b, name).expect("the state is on S3");
    assert_eq!(state.app, name);
    assert!(
        state.resources.len() >= wanted(1).len(),
        "{:?}",
        state.resources.keys()
    );
    assert!(object(&b, &format!("appgrid/{name}/state.json.lock")).is_none());
    assert!(
        !dir.join(format!(".appgrid/{name}/state.json")).exists(),
        "no local state"
    );
}

#[test]
fn a_killed_holder_is_taken_over_after_its_lease_and_a_paused_one_writes_nothing() {
    let moto = super::moto::shared();
    let name = "its3kill";
    let b = bucket("kill");
    let dir = super::cli::scratch(name);
    let slow = slow_ec2();
    let manifest = s3_manifest(&dir, name, 1, &slow.endpoint, &b);
    let m = manifest.to_str().unwrap().to_string();

    // SIGKILL: the lock object stays until its lease runs out, then the next
    // apply takes over with a note.
    let (mut a, _a_err, _) = apply_until_launching(&m, "3");
    signal(&a, rustix::process::Signal::KILL);
    a.wait().unwrap();
    assert!(object(&b, &format!("appgrid/{name}/state.json.lock")).is_some());
    let straight = s3_manifest(&dir, name, 1, &moto.endpoint, &b);
    let m2 = straight.to_str().unwrap().to_string();
    let b_run = appgrid()
        .args(["apply", "--yes", "--lock-timeout", "30s", &m2])
        .env("APPGRID_LOCK_LEASE_SECS", "3")
        .output()
        .unwrap();
    let b_err = text(&b_run.stderr);
    assert!(b_run.status.success(), "{b_err}");
    assert!(
        b_err.contains(&format!(
            "note: took over the state lock from pid {}",
            a.id()
        )),
        "{b_err}"
    );
    assert!(b_err.contains("whose lease expired at"), "{b_err}");
    assert_eq!(live_addresses(&moto.endpoint, name), wanted(1));

    // SIGSTOP past the lease: another apply takes over and finishes; the
    // paused one, resumed, writes nothing and says why.
    let slow_manifest = s3_manifest(&dir, name, 2, &slow.endpoint, &b);
    let m3 = slow_manifest.to_str().unwrap().to_string();
    let (mut p, mut p_err, mut seen) = apply_until_launching(&m3, "2");
    signal(&p, rustix::process::Signal::STOP);
    std::thread::sleep(Duration::from_secs(4));
    s3_manifest(&dir, name, 2, &moto.endpoint, &b);
    let q = appgrid()
        .args(["apply", "--yes", "--lock-timeout", "30s", &m3])
        .output()
        .unwrap();
    let q_err = text(&q.stderr);
    assert!(q.status.success(), "{q_err}");
    assert!(
        q_err.contains(&format!(
            "note: took over the state lock from pid {}",
            p.id()
        )),
        "{q_err}"
    );
    let after_q = object(&b, &format!("appgrid/{name}/state.json")).unwrap();
    signal(&p, rustix::process::Signal::CONT);
    let status = p.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut p_err, &mut rest).unwrap();
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(
        seen.contains("this run no longer holds the state lock"),
        "{seen}"
    );
    assert!(seen.contains("nothing was written"), "{seen}");
    assert_eq!(
        object(&b, &format!("appgrid/{name}/state.json")).unwrap(),
        after_q,
        "the paused apply wrote nothing"
    );
    drop(slow);
    let settle = appgrid().args(["apply", "--yes", &m3]).output().unwrap();
    assert!(settle.status.success(), "{}", text(&settle.stderr));
    assert_eq!(live_addresses(&moto.endpoint, name), wanted(2));
}

#[test]
fn migrate_local_to_s3_and_back_keeps_lineage_and_serial_and_stale_plans_are_refused() {
    let moto = super::moto::shared();
    let name = "its3move";
    let b = bucket("move");
    let dir = super::cli::scratch(name);
    let manifest = write_manifest(&dir, name, 1, &moto.endpoint);
    let local_only = std::fs::read_to_string(&manifest).unwrap();
    let m = manifest.to_str().unwrap().to_string();
    let run = |args: &[&str]| appgrid().args(args).output().unwrap();

    let a = run(&["apply", "--yes", &m]);
    assert!(a.status.success(), "{}", text(&a.stderr));
    let local = dir.join(format!(".appgrid/{name}/state.json"));
    let before: State = serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();

    let url = format!("s3://{b}/teams/{name}.json");
    let migrate_args = [
        "state",
        "migrate",
        &m,
        "--to",
        &url,
        "--endpoint",
        &moto.endpoint,
        "--region",
        REGION,
    ];
    // An autoscaler installed on the state's place: refused, nothing moves.
    use appgrid::autoscale::fleet::Installed;
    use appgrid::autoscale::fleet_record::{RecordPlace, write_installed};
    let place = RecordPlace::of(&StateLocation::File(local.clone()));
    let runner = Installed::for_test("lb", "ann@laptop");
    assert!(write_installed(&place, &runner, None).unwrap());
    let refused = run(&migrate_args);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("the autoscaler installed on lb (10.0.0.1)")
            && text(&refused.stderr).contains("appgrid autoscale uninstall"),
        "{}",
        text(&refused.stderr)
    );
    assert!(local.exists(), "nothing moved");
    assert!(object(&b, &format!("teams/{name}.json")).is_none());
    appgrid::autoscale::fleet_record::remove(&place).unwrap();

    let moved = run(&migrate_args);
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert!(
        text(&moved.stdout).contains(&format!(
            "lineage {}, serial {}",
            before.lineage, before.serial
        )),
        "{}",
        text(&moved.stdout)
    );
    let remote: State =
        serde_json::from_slice(&object(&b, &format!("teams/{name}.json")).unwrap()).unwrap();
    assert_eq!(remote, before, "the same state, lineage and serial");
    assert!(!local.exists(), "the local file is moved aside");
    // The old place refuses to be used, naming where the state went.
    let stale_use = run(&["plan", &m]);
    assert_eq!(stale_use.status.code(), Some(1));
    assert!(
        text(&stale_use.stderr).contains(&format!("was moved to {url}")),
        "{}",
        text(&stale_use.stderr)
    );

    // With [state] pointing at it, plan is clean and pull shows it (redacted).
    std::fs::write(
        &manifest,
        format!(
            "{local_only}\n[state]\nbackend = \"s3\"\nbucket = \"{b}\"\nkey = \"teams/{name}.json\"\n\
             region = \"{REGION}\"\nendpoint = \"{}\"\n",
            moto.endpoint
        ),
    )
    .unwrap();
    let plan = run(&["plan", "--detailed-exitcode", &m]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}{}",
        text(&plan.stdout),
        text(&plan.stderr)
    );
    let pull = run(&["state", "pull", &m]);
    assert!(pull.status.success(), "{}", text(&pull.stderr));
    let pulled: State = serde_json::from_slice(&pull.stdout).unwrap();
    assert_eq!(
        (pulled.lineage.as_str(), pulled.serial),
        (before.lineage.as_str(), before.serial)
    );
    let raw = run(&["state", "pull", "--raw", &m]);
    assert_eq!(
        raw.status.code(),
        Some(1),
        "--raw without a terminal needs --yes"
    );
    assert!(
        text(&raw.stderr).contains("pass --yes"),
        "{}",
        text(&raw.stderr)
    );

    // A plan saved now is refused once the remote state moves on.
    let saved = dir.join("grow.plan.json");
    let grow = local_only.replace("count = 1", "count = 2");
    std::fs::write(
        &manifest,
        format!(
            "{grow}\n[state]\nbackend = \"s3\"\nbucket = \"{b}\"\nkey = \"teams/{name}.json\"\n\
             region = \"{REGION}\"\nendpoint = \"{}\"\n",
            moto.endpoint
        ),
    )
    .unwrap();
    let p = run(&["plan", "-o", saved.to_str().unwrap(), &m]);
    assert!(p.status.success(), "{}", text(&p.stderr));
    let now = run(&["apply", "--yes", &m]);
    assert!(now.status.success(), "{}", text(&now.stderr));
    let refused = run(&["apply", saved.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("saved plan is stale"),
        "{}",
        text(&refused.stderr)
    );
    let after: State =
        serde_json::from_slice(&object(&b, &format!("teams/{name}.json")).unwrap()).unwrap();
    assert_eq!(after.lineage, before.lineage);

    // And back: the local file again, same lineage and serial; S3 keeps a note.
    let back = run(&["state", "migrate", &m, "--to", "local"]);
    assert!(back.status.success(), "{}", text(&back.stderr));
    let again: State = serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();
    assert_eq!(again, after);
    assert!(object(&b, &format!("teams/{name}.json")).is_none());
    assert!(object(&b, &format!("teams/{name}.json.moved")).is_some());
    std::fs::write(&manifest, &grow).unwrap();
    let plan = run(&["plan", "--detailed-exitcode", &m]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}{}",
        text(&plan.stdout),
        text(&plan.stderr)
    );
}

#[test]
fn unlock_removes_only_the_named_lock_after_saying_what_it_is() {
    let moto = super::moto::shared();
    let name = "its3unlock";
    let b = bucket("unlock");
    let dir = super::cli::scratch(name);
    let manifest = s3_manifest(&dir, name, 1, &moto.endpoint, &b);
    let m = manifest.to_str().unwrap().to_string();
    let at = location(&b, &format!("appgrid/{name}/state.json"));
    let held = s3_lock::acquire(&at, "apply", Duration::ZERO, Duration::from_secs(300)).unwrap();
    let id = held.holder().lock_id().to_string();

    let wrong = appgrid()
        .args(["state", "unlock", &m, "0000", "--yes"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).contains(&format!("has ID {id}, not 0000")),
        "{}",
        text(&wrong.stderr)
    );
    let unasked = appgrid()
        .args(["state", "unlock", &m, &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        unasked.status.code(),
        Some(1),
        "asks first; no terminal, no --yes"
    );
    assert!(object(&b, &format!("appgrid/{name}/state.json.lock")).is_some());

    let ok = appgrid()
        .args(["state", "unlock", &m, &id, "--yes"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stderr).contains(&format!("pid {}", std::process::id())),
        "{}",
        text(&ok.stderr)
    );
    assert!(object(&b, &format!("appgrid/{name}/state.json.lock")).is_none());
    // The holder that lost its lock finds out before its next write.
    let err = StateLocation::S3(at)
        .store()
        .fenced_by(&held)
        .check_fence()
        .unwrap_err();
    assert!(
        err.to_string().contains("no longer holds the state lock"),
        "{err}"
    );
}

#[test]
fn a_missing_bucket_no_credentials_or_a_silent_endpoint_stop_before_any_change() {
    let moto = super::moto::shared();
    let name = "its3bad";
    let dir = super::cli::scratch(name);
    let manifest = s3_manifest(&dir, name, 1, &moto.endpoint, "appgrid-no-such-bucket");
    let m = manifest.to_str().unwrap().to_string();

    let missing = appgrid().args(["apply", "--yes", &m]).output().unwrap();
    let e = super::cli::refused(
        &missing,
        "the bucket of s3://appgrid-no-such-bucket/appgrid/its3bad/state.json does not exist",
    );
    assert!(e.contains("Nothing was changed"), "{e}");
    assert!(
        live_addresses(&moto.endpoint, name).is_empty(),
        "nothing launched"
    );

    let no_creds = appgrid()
        .args(["state", "pull", &m])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    super::cli::refused(&no_creds, "no AWS credentials for the state at s3://");

    let port = super::moto::free_port();
    let silent_manifest = s3_manifest_at(
        &dir,
        name,
        1,
        &moto.endpoint,
        "appgrid-silent",
        &format!("http://127.0.0.1:{port}"),
    );
    let silent = appgrid()
        .args(["apply", "--yes", silent_manifest.to_str().unwrap()])
        .output()
        .unwrap();
    super::cli::refused(
        &silent,
        &format!("cannot reach the S3 endpoint http://127.0.0.1:{port}"),
    );
    assert!(
        live_addresses(&moto.endpoint, name).is_empty(),
        "nothing launched"
    );
    assert!(!dir.join(format!(".appgrid/{name}/state.json")).exists());
}

/// Sets up, on a moto that enforces IAM after 4 unauthenticated actions,
/// a bucket and a user allowed everything on it but `s3:PutObject` on
/// `denied_key`; returns the user's access key id and secret.
fn iam_user_denied_put(endpoint: &str, bucket: &str, denied_key: &str) -> (String, String) {
    const SETUP: &str = r#"
import boto3, json, sys
endpoint, bucket, denied = sys.argv[1:4]
root = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test")
boto3.client("s3", **root).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **root)
iam.create_user(UserName="teammate")
iam.put_user_policy(UserName="teammate", PolicyName="state", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
        {"Effect": "Deny", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/{denied}"},
    ]}))
key = iam.create_access_key(UserName="teammate")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
    let out = std::process::Command::new(super::moto::python())
        .args(["-c", SETUP, endpoint, bucket, denied_key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (id, secret) = stdout.trim().split_once(' ').expect("KEY SECRET");
    (id.to_string(), secret.to_string())
}

/// The keys in `bucket`, listed with the access key `id`.
fn keys_as(endpoint: &str, bucket: &str, id: &str, secret: &str) -> Vec<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let listed = sdk_as(endpoint, id, secret)
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .unwrap();
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        })
}

#[test]
fn a_key_without_permission_to_write_the_state_stops_before_any_change() {
    // The IAM setup is the only unauthenticated budget: 4 actions.
    let iam =
        super::moto::Moto::dedicated_with("127.0.0.1", &[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
    let ec2 = super::moto::shared();
    let name = "its3denied";
    let b = format!("appgrid-denied-{:x}", fastrand::u32(..));
    let key = format!("appgrid/{name}/state.json");
    let (id, secret) = iam_user_denied_put(&iam.endpoint, &b, &key);
    let dir = super::cli::scratch(name);
    let manifest = s3_manifest_at(&dir, name, 1, &ec2.endpoint, &b, &iam.endpoint);

    // The key works for the bucket (HeadBucket, reads)…
    let pull = appgrid()
        .args(["state", "pull", manifest.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .output()
        .unwrap();
    let e = text(&pull.stderr);
    assert!(
        e.contains(&format!("no state at s3://{b}/{key}")),
        "reading is allowed: {e}"
    );

    // …but may not write the state: apply stops before anything changes.
    let apply = appgrid()
        .args(["apply", "--yes", manifest.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .output()
        .unwrap();
    let e = super::cli::refused(
        &apply,
        &format!(
            "access to s3://{b}/{key} was denied: the credentials in use lack s3:PutObject on it"
        ),
    );
    assert!(e.contains("Nothing was changed"), "{e}");
    assert!(
        live_addresses(&ec2.endpoint, name).is_empty(),
        "nothing launched"
    );
    // Nothing in the bucket: no state, no lock left behind (read with the
    // same key, which may list).
    let keys = || keys_as(&iam.endpoint, &b, &id, &secret);
    assert_eq!(keys(), Vec::<String>::new());

    // The check is the lock's: whatever command takes it with this key
    // stops there, before it holds the lock or writes anything.
    let at = S3Location {
        bucket: b.clone(),
        key: key.clone(),
        region: Some(REGION.to_string()),
        endpoint: Some(iam.endpoint.clone()),
    };
    s3_store::connect_with_credentials(&at, (id.clone(), secret.clone())).unwrap();
    let Err(err) = s3_lock::acquire(&at, "test", Duration::ZERO, Duration::from_secs(30)) else {
        panic!("the lock was taken with a key that may not write the state");
    };
    assert!(
        err.to_string()
            .contains("the credentials in use lack s3:PutObject on it"),
        "{err}"
    );
    assert_eq!(keys(), Vec::<String>::new());
}

/// An S3-compatible store that ignores conditional writes (a proxy in front
/// of moto dropping `If-Match` and `If-None-Match`): taking the lock is
/// refused at its write check, and the check lost nothing: the state object
/// keeps its bytes and no backup object appears.
#[test]
fn a_store_that_ignores_conditions_is_refused_and_loses_nothing() {
    const PROXY: &str = r#"
import http.client, http.server, sys
upstream = sys.argv[1].split("//", 1)[1]
class Drop(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "if-match", "if-none-match")}
        c = http.client.HTTPConnection(upstream, timeout=30)
        c.request(self.command, self.path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
    do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = forward
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drop)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let moto = super::moto::shared();
    let b = bucket("nocond");
    let mut proxy = std::process::Command::new(super::moto::python())
        .args(["-c", PROXY, &moto.endpoint])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let key = "apps/nocond/state.json";
    let at = S3Location {
        bucket: b.clone(),
        key: key.to_string(),
        region: Some(REGION.to_string()),
        endpoint: Some(format!("http://127.0.0.1:{}", port.trim())),
    };
    let state = br#"{"the state": "kept"}"#;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        sdk(&moto.endpoint)
            .put_object()
            .bucket(&b)
            .key(key)
            .body(state.to_vec().into())
            .send(),
    )
    .unwrap();

    s3_store::connect_with_credentials(&at, ("test".into(), "test".into())).unwrap();
    let taken = s3_lock::acquire(&at, "test", Duration::ZERO, Duration::from_secs(30));
    let _ = proxy.kill();
    let _ = proxy.wait();
    let Err(err) = taken else {
        panic!("the lock was taken on a store that ignores conditional writes");
    };
    assert!(
        err.to_string()
            .contains("ignored `If-Match` on a write check"),
        "{err}"
    );
    assert_eq!(
        object(&b, key).as_deref(),
        Some(&state[..]),
        "the state kept"
    );
    assert_eq!(
        object(&b, &format!("{key}.backup.0")),
        None,
        "no backup made"
    );
    assert_eq!(object(&b, &format!("{key}.lock")), None, "no lock left");
}
