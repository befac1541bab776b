//! The supervisor library (templates/lib/service.sh) through the local transport.

use std::path::Path;

use super::local::LocalTransport;
use super::{Redactor, Remote};

fn script(root: &Path, body: &str) -> String {
    let lib = crate::templates::EMBEDDED
        .iter()
        .find(|(n, _)| *n == "lib/service.sh")
        .map(|(_, s)| *s)
        .unwrap();
    format!(
        "set -eu\nROOT={}\n{lib}\n{body}\n",
        crate::templates::shell_quote(root.to_str().unwrap())
    )
}

/// Processes whose environment says they belong to `root`, read from /proc
/// here (not through the library under test).
fn marked(root: &Path) -> Vec<u32> {
    let mark = format!("APPGRID_ROOT={}", root.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|e| e == mark.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// [`marked`] once it has settled: a starting daemon's shell forks briefly
/// (`$(id -u)`) before it execs the service, and that child is marked too.
async fn settled(root: &Path, expected: usize) -> Vec<u32> {
    let mut now = marked(root);
    for _ in 0..100 {
        if now.len() == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        now = marked(root);
    }
    now
}

/// No process of `root` runs any more; its directory goes.
fn nothing_left(root: &Path) {
    let left = marked(root);
    assert!(left.is_empty(), "left running: {left:?}");
    let _ = std::fs::remove_dir_all(root);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn root(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("appgrid-svc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

#[test]
fn starts_once_stops_and_reports() {
    runtime().block_on(async {
        let root = root("once");
        let t = LocalTransport::new("local", Redactor::new());
        let start = script(&root, "svc_start sleeper root sleep 30\nsvc_start sleeper root sleep 30\nsvc_running sleeper && echo running");
        let out = t.run("start", &start).await.unwrap();
        assert_eq!(out.stdout, "running\n");
        let pid = std::fs::read_to_string(root.join("run/appgrid/sleeper.pid")).unwrap();
        assert_eq!(settled(&root, 1).await, [pid.trim().parse::<u32>().unwrap()]);
        let out = t.run("stop", &script(&root, "svc_stop sleeper\nsvc_running sleeper || echo stopped")).await.unwrap();
        assert_eq!(out.stdout, "stopped\n");
        assert!(
            out.stderr.contains(&format!("stopped sleeper: {} (sleep 30)", pid.trim())),
            "{}",
            out.stderr
        );
        assert!(marked(&root).is_empty(), "process gone");
        let err = t.run("wait", &script(&root, "wait_for 1 'a miracle' false")).await.unwrap_err();
        assert!(err.to_string().ends_with("timed out after 1s waiting for a miracle"), "{err}");
        let _ = std::fs::remove_dir_all(root);
    });
}

/// Issue 15: starts of one service from several scripts at once make one
/// daemon, and one stop leaves no process.
#[test]
fn concurrent_starts_make_one_daemon_and_one_stop_ends_it() {
    runtime().block_on(async {
        let root = root("concurrent");
        let t = LocalTransport::new("local", Redactor::new());
        let start = script(&root, "svc_start sleeper root sleep 300");
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let start = start.clone();
            starts.spawn(async move {
                let t = LocalTransport::new("local", Redactor::new());
                t.run("start", &start).await
            });
        }
        for out in starts.join_all().await {
            out.unwrap();
        }
        let running = settled(&root, 1).await;
        assert_eq!(running.len(), 1, "one daemon, not {running:?}");
        t.run("stop", &script(&root, "svc_stop sleeper"))
            .await
            .unwrap();
        nothing_left(&root);
    });
}

/// Issue 15: a lost pid file (and a watchdog that restarts its worker) still
/// leaves nothing running after a stop, and the stop says what it stopped.
#[test]
fn a_lost_pid_file_still_stops_the_service_and_its_children() {
    runtime().block_on(async {
        let root = root("lost");
        let t = LocalTransport::new("local", Redactor::new());
        let watchdog = "svc_start dog root sh -c 'while :; do sleep 300 & wait $!; done'";
        t.run("start", &script(&root, watchdog)).await.unwrap();
        // The worker may take a moment to appear: wait for the watchdog and it.
        let before = settled(&root, 2).await;
        assert_eq!(before.len(), 2, "{before:?}");
        std::fs::remove_file(root.join("run/appgrid/dog.pid")).unwrap();
        // A start finds the stray (no pid file) and replaces it: still one watchdog.
        t.run("start", &script(&root, watchdog)).await.unwrap();
        let after = settled(&root, 2).await;
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(
            before.iter().all(|p| !after.contains(p)),
            "{before:?} {after:?}"
        );
        std::fs::remove_file(root.join("run/appgrid/dog.pid")).unwrap();
        let out = t.run("stop", &script(&root, "svc_stop dog")).await.unwrap();
        assert!(out.stderr.contains("stopped dog: "), "{}", out.stderr);
        nothing_left(&root);
    });
}

/// Hosts that share this kernel's process table but not its network (the
/// test farm's hosts, containers) are other machines: their services, marked
/// alike, are not this machine's to stop.
#[test]
fn a_marked_process_in_another_network_namespace_is_left_alone() {
    runtime().block_on(async {
        let root = root("otherns");
        let mut other = std::process::Command::new("unshare")
            .args(["--net", "sleep", "300"])
            .env("APPGRID_ROOT", &root)
            .env("APPGRID_SERVICE", "sleeper")
            .spawn()
            .unwrap();
        // unshare execs sleep: once it has, the process is marked in its own namespace.
        let theirs = settled(&root, 1).await;
        assert_eq!(theirs.len(), 1, "{theirs:?}");
        let t = LocalTransport::new("local", Redactor::new());
        let out = t
            .run(
                "stop",
                &script(
                    &root,
                    "svc_stop sleeper\nsvc_start sleeper root sleep 300\nsvc_stop sleeper",
                ),
            )
            .await
            .unwrap();
        assert!(!out.stderr.contains("(sleep 300) "), "{}", out.stderr);
        assert_eq!(
            marked(&root),
            theirs,
            "the other namespace's process still runs"
        );
        other.kill().unwrap();
        other.wait().unwrap();
        let _ = std::fs::remove_dir_all(root);
    });
}

/// A daemon started by an appgrid from before the mark (no environment
/// mark; only its pid file) is still stopped, with its whole session.
#[test]
fn a_daemon_from_before_the_mark_is_stopped_by_its_pid_file() {
    runtime().block_on(async {
        let root = root("legacy");
        let t = LocalTransport::new("local", Redactor::new());
        let legacy = "mkdir -p \"$ROOT/run/appgrid\"\n\
                      setsid sh -c 'sleep 300 & exec sleep 301' </dev/null >/dev/null 2>&1 &\n\
                      echo $! > \"$ROOT/run/appgrid/old.pid\"";
        t.run("start", &script(&root, legacy)).await.unwrap();
        let pid: u32 = std::fs::read_to_string(root.join("run/appgrid/old.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = |p: u32| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(alive(pid));
        let out = t.run("stop", &script(&root, "svc_stop old")).await.unwrap();
        assert!(out.stderr.contains("(sleep 300)"), "{}", out.stderr);
        assert!(out.stderr.contains("(sleep 301)"), "{}", out.stderr);
        assert!(!alive(pid));
        assert!(!root.join("run/appgrid/old.pid").exists());
        let _ = std::fs::remove_dir_all(root);
    });
}
