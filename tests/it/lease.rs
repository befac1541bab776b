//! Issue 10, fencing: an apply paused (SIGSTOP) past its lease loses the
//! state lock to an apply on another host; resumed, it writes nothing and
//! says why, and terminates nothing the new holder made.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::fault_trials::{appgrid, live_addresses, wanted, write_manifest};
use super::faultproxy::{FaultProxy, Faults};

#[test]
fn an_apply_paused_past_its_lease_writes_nothing_once_resumed_and_says_why() {
    let moto = super::moto::shared();
    let name = "itpaused";
    let dir = super::cli::scratch(name);
    // Every request delayed, so the paused apply is mid-walk for a while.
    let slow = FaultProxy::start(
        &moto.endpoint,
        Faults {
            throttle: 0.0,
            error: 0.0,
            lost: 0.0,
            reset: 0.0,
            delay: 1.0,
            max_delay: Duration::from_millis(600),
            seed: 9,
            client_token: true,
        },
    );
    let manifest = write_manifest(&dir, name, 2, &slow.endpoint);
    let m = manifest.to_str().unwrap().to_string();
    let state_path = dir.join(format!(".appgrid/{name}/state.json"));

    let mut a = appgrid()
        .args(["apply", "--yes", "--parallelism", "1", &m])
        .env("APPGRID_LOCK_LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut a_err = std::io::BufReader::new(a.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            a_err.read_line(&mut line).unwrap() > 0,
            "A ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains(": launch") {
            break;
        }
    }
    let pid = rustix::process::Pid::from_raw(a.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    std::thread::sleep(Duration::from_secs(4));

    // B, on "another host" (its own UTS namespace), straight to moto.
    write_manifest(&dir, name, 2, &moto.endpoint);
    let bin = env!("CARGO_BIN_EXE_appgrid");
    let b = Command::new("unshare")
        .args([
            "--uts",
            "sh",
            "-c",
            "hostname appgrid-other-host && exec \"$0\" \"$@\"",
        ])
        .arg(bin)
        .args(["apply", "--yes", "--lock-timeout", "30s", &m])
        .envs(
            appgrid()
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .env_remove("AWS_ENDPOINT_URL_EC2")
        .output()
        .unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr).into_owned();
    assert!(b.status.success(), "B failed:\n{b_err}");
    assert!(
        b_err.contains(&format!(
            "note: took over the state lock from pid {}",
            a.id()
        )),
        "{b_err}"
    );
    assert!(b_err.contains("whose lease expired at"), "{b_err}");
    let after_b = std::fs::read(&state_path).unwrap();
    assert_eq!(live_addresses(&moto.endpoint, name), wanted(2));

    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let status = a.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut a_err, &mut rest).unwrap();
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(
        seen.contains("this run no longer holds the state lock"),
        "A must say why it stopped:\n{seen}"
    );
    assert!(seen.contains("nothing was written"), "{seen}");
    assert_eq!(
        std::fs::read(&state_path).unwrap(),
        after_b,
        "A wrote nothing"
    );
    drop(slow);

    // Whatever A launched before it stopped is the next apply's to settle.
    let c = appgrid().args(["apply", "--yes", &m]).output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert_eq!(live_addresses(&moto.endpoint, name), wanted(2));
    let plan = appgrid()
        .args(["plan", "--detailed-exitcode", &m])
        .output()
        .unwrap();
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}
