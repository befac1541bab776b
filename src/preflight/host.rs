//! The machine the local checks look at: programs on PATH, installed Debian
//! packages, file modes, accounts, the effective uid and umask. [`Host`] is
//! what the checks ask; [`ThisMachine`] answers for the machine appgrid runs
//! on (std::fs, `/etc/passwd`, `/etc/group`, `/proc/self/status`,
//! `dpkg-query`), with no `unsafe` and no change to anything.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a path is, following symlinks (as the kernel does when it walks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o755`).
    pub mode: u32,
    pub is_dir: bool,
}

/// A user account: its uid, primary gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// What the local checks may ask about a machine.
pub trait Host {
    /// A program by name on PATH, or by absolute path; where it is.
    fn program(&self, program: &str) -> Option<PathBuf>;
    /// Whether a Debian package is installed; `None` when that cannot be told.
    fn package_installed(&self, package: &str) -> Option<bool>;
    fn path_info(&self, path: &Path) -> Option<PathInfo>;
    fn account(&self, name: &str) -> Option<Account>;
    fn euid(&self) -> Option<u32>;
    /// The umask new directories are created with.
    fn umask(&self) -> Option<u32>;
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The machine appgrid runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThisMachine;

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A `Name:\tvalue…` line of `/proc/self/status`.
fn proc_status(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

impl Host for ThisMachine {
    fn program(&self, program: &str) -> Option<PathBuf> {
        if program.starts_with('/') {
            // Shared objects (Slony-I's functions) are files, not programs.
            return Path::new(program).is_file().then(|| PathBuf::from(program));
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| executable(p))
    }

    fn package_installed(&self, package: &str) -> Option<bool> {
        let dpkg_query = self.program("dpkg-query")?;
        let out = std::process::Command::new(dpkg_query)
            .args(["-W", "-f=${Status}", "--", package])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        // Exit 1 with no output: dpkg has never heard of the package.
        Some(out.status.success() && String::from_utf8_lossy(&out.stdout).ends_with(" installed"))
    }

    fn path_info(&self, path: &Path) -> Option<PathInfo> {
        let m = std::fs::metadata(path).ok()?;
        Some(PathInfo {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
            is_dir: m.is_dir(),
        })
    }

    fn account(&self, name: &str) -> Option<Account> {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        account_from(name, &passwd, &groups)
    }

    fn euid(&self) -> Option<u32> {
        // `Uid:` is real, effective, saved, filesystem.
        proc_status("Uid")?.split_whitespace().nth(1)?.parse().ok()
    }

    fn umask(&self) -> Option<u32> {
        u32::from_str_radix(&proc_status("Umask")?, 8).ok()
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// `name`'s account from the text of `/etc/passwd` and `/etc/group`.
pub(super) fn account_from(name: &str, passwd: &str, group: &str) -> Option<Account> {
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == name)?;
    let uid = fields[2].parse().ok()?;
    let gid = fields[3].parse().ok()?;
    let groups = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    Some(Account {
        name: name.to_string(),
        uid,
        gid,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_read_with_their_groups() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:110:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let group = "root:x:0:\nssl-cert:x:109:postgres\npostgres:x:110:\nnogroup:x:65534:\n";
        assert_eq!(
            account_from("postgres", passwd, group),
            Some(Account {
                name: "postgres".into(),
                uid: 104,
                gid: 110,
                groups: vec![109],
            })
        );
        assert_eq!(account_from("nobody", passwd, group).unwrap().uid, 65534);
        assert_eq!(account_from("post", passwd, group), None);
    }

    #[test]
    fn this_machine_answers_about_itself() {
        let m = ThisMachine;
        assert!(m.program("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(m.program("appgrid-no-such-program"), None);
        assert!(m.euid().is_some());
        assert!(m.umask().is_some_and(|u| u <= 0o777));
        assert!(m.account("root").is_some_and(|a| a.uid == 0));
        assert!(
            m.path_info(Path::new("/"))
                .is_some_and(|i| i.is_dir && i.uid == 0)
        );
    }
}
