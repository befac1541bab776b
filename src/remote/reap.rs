//! The processes of a `local` machine on this host, found by what identifies
//! them rather than by pid files (issue 15): the supervisor's mark in their
//! environment (`APPGRID_ROOT=<root>`, inherited by what they fork), a
//! command-line argument naming a path under the root, a working directory
//! under it, or an open file under it (a daemon's log). [`reap`] ends them:
//! TERM (again each second, for watchdogs that restart workers), then KILL.
//!
//! Only this host's `/proc` is read; only the `local` provider's machines
//! (directories on this host) are looked for this way. Machines reached over
//! SSH are swept by `templates/lib/sweep.sh`, by the mark alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A process found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Its command line (arguments joined by spaces), cut to 80 characters.
    pub command: String,
}

/// Whether `path` (as `/proc` shows it: maybe ending in ` (deleted)`) is `root`
/// or under it.
fn under(path: &Path, root: &Path) -> bool {
    let text = path.to_string_lossy();
    let path = Path::new(text.strip_suffix(" (deleted)").unwrap_or(&text));
    path.starts_with(root)
}

/// Whether a command-line argument names `root` or a path under it
/// (`/r/m1/etc/x`, `config_file=/r/m1/etc/x`), and not a sibling (`/r/m10`).
fn names(arg: &str, root: &str) -> bool {
    let mut from = 0;
    while let Some(i) = arg[from..].find(root) {
        let end = from + i + root.len();
        if arg[end..].is_empty() || arg[end..].starts_with('/') {
            return true;
        }
        from = from + i + 1;
    }
    false
}

/// Does process `dir` (`/proc/PID`) belong to `root`?
fn belongs(dir: &Path, root: &Path, mark: &[u8]) -> bool {
    if std::fs::read(dir.join("environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == mark))
    {
        return true;
    }
    let root_text = root.to_string_lossy();
    if std::fs::read(dir.join("cmdline")).is_ok_and(|cmd| {
        cmd.split(|b| *b == 0)
            .any(|a| names(&String::from_utf8_lossy(a), &root_text))
    }) {
        return true;
    }
    if std::fs::read_link(dir.join("cwd")).is_ok_and(|cwd| under(&cwd, root)) {
        return true;
    }
    std::fs::read_dir(dir.join("fd")).is_ok_and(|fds| {
        fds.flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| under(&target, root))
    })
}

fn command(dir: &Path) -> String {
    let raw = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let text: String = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    text.chars().take(80).collect()
}

/// Every process on this host that belongs to the machine at `root` (this
/// process excepted).
pub fn of_root(root: &Path) -> Vec<Process> {
    let mark = format!("APPGRID_ROOT={}", root.display()).into_bytes();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Process> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let dir: PathBuf = e.path();
            (pid != me && belongs(&dir, root, &mark)).then(|| Process {
                pid,
                command: command(&dir),
            })
        })
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // The process may already be gone: that is what we want.
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// End every process of the machine at `root`: TERM (re-sent each second),
/// and after `grace`, KILL. Returns every process it found, in pid order;
/// an empty list means nothing of the machine was running.
pub fn reap(root: &Path, grace: Duration) -> Vec<Process> {
    let started = Instant::now();
    let mut seen: Vec<Process> = Vec::new();
    let mut last_term: Option<Instant> = None;
    loop {
        let now = of_root(root);
        if now.is_empty() {
            break;
        }
        for p in &now {
            if !seen.iter().any(|s| s.pid == p.pid) {
                seen.push(p.clone());
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= grace {
            for p in &now {
                signal(p.pid, rustix::process::Signal::KILL);
            }
            if elapsed >= grace + Duration::from_secs(5) {
                // Unkillable (another user's, or stuck in the kernel): say so by
                // returning it; the caller reports what it found.
                break;
            }
        } else if last_term.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            for p in &now {
                signal(p.pid, rustix::process::Signal::TERM);
            }
            last_term = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen.sort_by_key(|p| p.pid);
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_root_or_paths_under_it_only() {
        let root = "/var/tmp/x/machines/local-3";
        assert!(names("/var/tmp/x/machines/local-3", root));
        assert!(names("-D/var/tmp/x/machines/local-3/var/lib", root));
        assert!(names(
            "config_file=/var/tmp/x/machines/local-3/etc/p.conf",
            root
        ));
        assert!(!names("/var/tmp/x/machines/local-30/etc", root));
        assert!(!names("/var/tmp/x/machines/local-", root));
        assert!(under(
            Path::new("/var/tmp/x/machines/local-3/log (deleted)"),
            Path::new(root)
        ));
        assert!(!under(
            Path::new("/var/tmp/x/machines/local-30/log"),
            Path::new(root)
        ));
    }

    /// A daemon found by its open log alone (no mark, no argument, no cwd):
    /// the slon of issue 15, whose log had been deleted with its root.
    #[test]
    fn a_process_holding_a_deleted_file_under_the_root_is_found_and_ended() {
        let root = std::env::temp_dir().join(format!("appgrid-reap-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let log = std::fs::File::create(root.join("daemon.log")).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .current_dir("/")
            .stdout(log)
            .spawn()
            .unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let found = of_root(&root);
        assert_eq!(
            found,
            [Process {
                pid: child.id(),
                command: "sleep 300".into()
            }]
        );
        let reaped = reap(&root, Duration::from_secs(5));
        assert_eq!(reaped, found);
        // Ended by TERM: the child reports the signal.
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(15)
        );
        assert!(of_root(&root).is_empty());
        assert!(reap(&root, Duration::from_secs(5)).is_empty());
    }
}
