//! The SSH transport against real sshds in a host farm (see `farm.rs`).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appgrid::remote::ssh::{SshTarget, SshTransport};
use appgrid::remote::{LogSink, Redactor, Remote, RemoteError};

use crate::farm::Farm;

const TOTAL: Duration = Duration::from_secs(20);

async fn connect(target: SshTarget) -> SshTransport {
    let host = target.host.clone();
    SshTransport::connect(target, Redactor::new(), None, TOTAL)
        .await
        .unwrap_or_else(|e| panic!("connect to {host}: {e}"))
}

/// `SHA256:…` of a public key file, as OpenSSH computes it.
fn ssh_keygen_fingerprint(pub_line: &str, dir: &std::path::Path) -> String {
    let file = dir.join(format!("fp-{}.pub", fastrand::u32(..)));
    std::fs::write(&file, format!("{pub_line}\n")).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_scripts_streams_redacted_lines_and_reports_failures() {
    let farm = Farm::new(1);
    let redactor = Redactor::new();
    redactor.add("pa55word-xyz-123");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let log: LogSink = Arc::new(move |h: &str, s: &str, l: &str| {
        sink.lock().unwrap().push(format!("{h} {s} {l}"))
    });
    let started = Instant::now();
    let t = SshTransport::connect(farm.target(0), redactor, Some(log), TOTAL)
        .await
        .unwrap();
    eprintln!("connect + auth: {:?}", started.elapsed());
    assert_eq!(t.host(), "h0");

    let out = t
        .run(
            "greet",
            "hostname; echo to-stderr >&2; printf 'no newline'; echo ' pa55word-xyz-123 end'",
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "h0\nno newline (sensitive) end\n");
    assert_eq!(out.stderr, "to-stderr\n");

    let err = t
        .run("fail", "echo ok; echo 'using pa55word-xyz-123' >&2; exit 3")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "on h0, `fail` failed with exit status 3: using (sensitive)"
    );
    let err = t.run("sig", "kill -TERM $$").await.unwrap_err();
    assert_eq!(err.to_string(), "on h0, `sig` failed with signal TERM: ");

    // Data that follows a late exit status, and a large script with output.
    let big: String = (0..5000).map(|i| format!("echo line-{i}\n")).collect();
    let out = t.run("big", &big).await.unwrap();
    assert_eq!(out.stdout.lines().count(), 5000);
    assert_eq!(out.stdout.lines().last(), Some("line-4999"));

    let logged = lines.lock().unwrap().clone();
    assert!(logged.contains(&"h0 out h0".to_string()), "{logged:?}");
    assert!(
        logged.contains(&"h0 err to-stderr".to_string()),
        "{logged:?}"
    );
    assert!(
        logged.contains(&"h0 err using (sensitive)".to_string()),
        "{logged:?}"
    );
    assert!(logged.iter().all(|l| !l.contains("pa55word")), "{logged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_files_atomically_with_their_mode() {
    let farm = Farm::new(1);
    let t = connect(farm.target(0)).await;
    let dir = farm.dir().join("h0-data/etc");
    let path = dir.join("app.env");
    let p = path.to_str().unwrap();
    t.put(p, b"DATABASE_URL=postgres://x\n", 0o600)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "DATABASE_URL=postgres://x\n"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);

    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    t.put(p, &big, 0o640).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), big);
    assert_eq!(mode(&path), 0o640);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["app.env".to_string()], "no temp file left");

    let err = t
        .put("/proc/appgrid-no/such", b"x", 0o600)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("on h0, `put /proc/appgrid-no/such` failed with exit status 1: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_runs_share_one_connection() {
    let farm = Farm::new(1);
    let t = Arc::new(connect(farm.target(0)).await);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let t = Arc::clone(&t);
        set.spawn(async move {
            let out = t
                .run(&format!("step {i}"), &format!("sleep 0.2; echo {i}"))
                .await
                .unwrap();
            assert_eq!(out.stdout, format!("{i}\n"));
            i
        });
    }
    let mut done = Vec::new();
    while let Some(r) = set.join_next().await {
        done.push(r.unwrap());
    }
    eprintln!("20 concurrent runs: {:?}", started.elapsed());
    done.sort();
    assert_eq!(done, (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_trusted_on_first_use_then_pinned() {
    let mut farm = Farm::new(1);
    let first = connect(farm.target(0)).await;
    let presented = first.presented_host_key();
    assert_eq!(presented, farm.host_key(0));
    drop(first);

    let mut pinned = farm.target(0);
    pinned.pinned_host_key = Some(presented.clone());
    let again = connect(pinned.clone()).await;
    assert_eq!(again.run("x", "echo ok").await.unwrap().stdout, "ok\n");
    drop(again);

    let old = ssh_keygen_fingerprint(&presented, farm.dir());
    farm.regenerate_host_key(0);
    let new = ssh_keygen_fingerprint(&farm.host_key(0), farm.dir());
    assert_ne!(old, new);
    let err = SshTransport::connect(pinned, Redactor::new(), None, TOTAL)
        .await
        .err()
        .expect("a changed host key must be refused");
    assert_eq!(
        err,
        RemoteError::HostKeyChanged {
            host: "h0".to_string(),
            pinned: old.clone(),
            presented: new.clone(),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "host key of h0 changed: state pinned {old}, the host presented {new}. \
             If the machine was rebuilt on purpose, remove its pin with `appgrid state forget-host-key`; \
             otherwise someone may be intercepting the connection"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_key_is_refused_and_rsa_keys_work() {
    let farm = Farm::new(1);
    let keygen = |name: &str, kind: &str| {
        let path = farm.dir().join(name);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        path
    };
    let stranger = keygen("stranger", "ed25519");
    let mut target = farm.target(0);
    target.key_path = stranger.clone();
    let err = SshTransport::connect(target, Redactor::new(), None, TOTAL)
        .await
        .err()
        .expect("an unauthorized key must be refused");
    match &err {
        RemoteError::Auth { host, user, key } => {
            assert_eq!((host.as_str(), user.as_str()), ("h0", "root"));
            assert!(key.starts_with(stranger.to_str().unwrap()), "{key}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }

    let rsa = keygen("rsa_key", "rsa");
    let public = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let mut authorized = std::fs::OpenOptions::new()
        .append(true)
        .open(farm.dir().join("authorized_keys"))
        .unwrap();
    std::io::Write::write_all(&mut authorized, public.as_bytes()).unwrap();
    let mut target = farm.target(0);
    target.key_path = rsa;
    let t = connect(target).await;
    assert_eq!(t.run("x", "echo rsa").await.unwrap().stdout, "rsa\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_host_fails_after_bounded_retries_and_works_once_restored() {
    let farm = Farm::new(1);
    farm.cut(0);
    let err = SshTransport::connect(
        farm.target(0),
        Redactor::new(),
        None,
        Duration::from_secs(3),
    )
    .await
    .err()
    .expect("a cut host cannot answer");
    match &err {
        RemoteError::Connect { host, detail } => {
            assert_eq!(host, "h0");
            assert!(detail.contains(&farm.hosts()[0].addr), "{detail}");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    farm.restore(0);
    let t = connect(farm.target(0)).await;
    assert_eq!(t.run("x", "hostname").await.unwrap().stdout, "h0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_commands_and_jump_hosts_reach_the_target() {
    let farm = Farm::new(2);
    let jump_addr = farm.hosts()[0].addr.clone();
    let client_addr = |out: &str| out.split_whitespace().next().unwrap_or("").to_string();

    // A plain proxy command.
    let mut target = farm.target(1);
    target.proxy_command = Some("socat - TCP:%h:%p".to_string());
    let started = Instant::now();
    let t = connect(target).await;
    eprintln!("connect through socat: {:?}", started.elapsed());
    let out = t
        .run("who", "hostname; echo $SSH_CONNECTION")
        .await
        .unwrap();
    assert!(out.stdout.starts_with("h1\n"), "{}", out.stdout);
    drop(t);

    // An SSM-style tunnel keyed by instance id: the connection leaves from
    // inside host 0's namespace, which proves the command carried it.
    let mut target = farm.target(1);
    target.instance_id = Some("i-0f00 with space".to_string());
    target.proxy_command = Some(format!(
        "[ %i = 'i-0f00 with space' ] && exec ip netns exec {} socat - TCP:%h:%p",
        farm.hosts()[0].netns
    ));
    let t = connect(target).await;
    let out = t.run("who", "echo $SSH_CONNECTION").await.unwrap();
    assert_eq!(client_addr(&out.stdout), jump_addr);
    drop(t);

    // A proxy command that never connects: bounded, with what it said.
    let mut target = farm.target(1);
    target.proxy_command = Some("echo 'tunnel refused' >&2; exit 1".to_string());
    let err = SshTransport::connect(target, Redactor::new(), None, Duration::from_secs(2))
        .await
        .err()
        .expect("no tunnel, no connection");
    assert!(err.to_string().contains("tunnel refused"), "{err}");

    // A native jump host: host 1 seen from host 0.
    let mut target = farm.target(1);
    target.jump = Some(Box::new(farm.target(0)));
    let started = Instant::now();
    let t = connect(target).await;
    eprintln!("connect through a jump host: {:?}", started.elapsed());
    let out = t
        .run("who", "hostname; echo $SSH_CONNECTION")
        .await
        .unwrap();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("h1"));
    assert_eq!(client_addr(lines.next().unwrap()), jump_addr);
    assert_eq!(t.presented_host_key(), farm.host_key(1));
    assert_eq!(t.jump().unwrap().presented_host_key(), farm.host_key(0));
    t.put(
        farm.dir().join("via-jump/file").to_str().unwrap(),
        b"hi",
        0o600,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(farm.dir().join("via-jump/file")).unwrap(),
        b"hi"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_of_five_comes_up_and_goes_away() {
    let started = Instant::now();
    let farm = Farm::new(5);
    eprintln!("farm of 5 up: {:?}", started.elapsed());
    let names: Vec<String> = farm.hosts().iter().map(|h| h.netns.clone()).collect();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let target = farm.target(i);
        set.spawn(async move {
            let t = connect(target).await;
            t.run("name", "hostname").await.unwrap().stdout
        });
    }
    let mut seen = Vec::new();
    while let Some(r) = set.join_next().await {
        seen.push(r.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (0..5).map(|i| format!("h{i}\n")).collect::<Vec<_>>());
    let started = Instant::now();
    drop(farm);
    eprintln!("farm of 5 down: {:?}", started.elapsed());
    let left = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for n in names {
        assert!(!left.contains(&n), "{n} left behind: {left}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_waits_for_sshd_to_come_up() {
    let mut farm = Farm::new(1);
    farm.stop_sshd(0);
    let target = farm.target(0);
    let pending = tokio::spawn(SshTransport::connect(target, Redactor::new(), None, TOTAL));
    // Refused for a while: the connection attempts are retried meanwhile.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!pending.is_finished(), "gave up while sshd was down");
    farm.start_sshd(0);
    let t = pending.await.unwrap().expect("connects once sshd answers");
    assert_eq!(t.run("x", "hostname").await.unwrap().stdout, "h0\n");
}

/// Issue 10: the jump host's key is pinned like any machine's — learned on
/// first contact and recorded on the machine, then a changed one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_hosts_changed_key_is_refused() {
    use appgrid::graph::{ResourceAddress, ResourceSpec, Role};
    use appgrid::roles::fleet::Fleet;
    use appgrid::roles::fleet_ssh::{JUMP_HOST_KEY, SshFleet};

    let mut farm = Farm::new(2);
    let jump = &farm.hosts()[0];
    let mut provider = crate::moto::provider_at("http://127.0.0.1:9");
    provider.ssh_user = "root".into();
    provider.jump_host = Some(format!("{}:{}", jump.addr, jump.port));
    let fleet = SshFleet::new(&provider, farm.client_key(), Redactor::new(), None);
    let address = ResourceAddress::instance(Role::Web, 0);
    let target = &farm.hosts()[1];
    let mut machine = appgrid::state::ResourceState {
        spec: ResourceSpec::KeyPair(appgrid::graph::KeyPairSpec {
            name: "k".into(),
            public_key_path: "k.pub".into(),
        }),
        id: "i-farm1".into(),
        depends_on: Vec::new(),
        attributes: [(
            "ssh".to_string(),
            format!("{}:{}", target.addr, target.port),
        )]
        .into(),
    };
    let first = fleet
        .connect(address, &machine)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.learned.get(JUMP_HOST_KEY), Some(&farm.host_key(0)));
    machine.attributes.extend(first.learned.clone());
    drop(first);

    let old = ssh_keygen_fingerprint(&farm.host_key(0), farm.dir());
    farm.regenerate_host_key(0);
    let new = ssh_keygen_fingerprint(&farm.host_key(0), farm.dir());
    // A fleet of a new process: only the machine's record pins the jump host.
    let fleet = SshFleet::new(&provider, farm.client_key(), Redactor::new(), None);
    let err = match fleet.connect(address, &machine).await {
        Ok(_) => panic!("a changed jump host key must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("state pinned {old}, the host presented {new}")),
        "{err}"
    );
    assert!(err.starts_with("host key of jump host "), "{err}");
}

/// Issue 10: a script that prints nothing for longer than the transport's
/// inactivity limit is stopped; the error names the step, the machine and
/// its last line of output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_script_is_stopped_naming_step_machine_and_last_line() {
    let farm = Farm::new(1);
    let mut t = connect(farm.target(0)).await;
    t.set_script_inactivity(Duration::from_secs(1));
    let started = Instant::now();
    let err = t
        .run(
            "wait for the database",
            "echo starting; echo almost there >&2; sleep 30; echo never",
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err,
        RemoteError::Stalled {
            host: "h0".into(),
            step: "wait for the database".into(),
            idle_s: 1,
            last_line: "almost there".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "on h0, `wait for the database` printed nothing for 1 s and was stopped (last output: almost there)"
    );
    // The connection still serves the next script.
    assert_eq!(t.run("x", "echo ok").await.unwrap().stdout, "ok\n");
}
