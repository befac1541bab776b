//! The offline checks against a machine described in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::manifest::{Manifest, ProviderKind, Release};

#[derive(Default)]
struct FakeHost {
    programs: Vec<&'static str>,
    packages: Option<Vec<&'static str>>,
    dirs: BTreeMap<PathBuf, PathInfo>,
    accounts: Vec<Account>,
    euid: u32,
    umask: u32,
    files: BTreeMap<PathBuf, String>,
}

impl Host for FakeHost {
    fn program(&self, program: &str) -> Option<PathBuf> {
        let name = program.rsplit('/').next().unwrap();
        self.programs
            .contains(&name)
            .then(|| PathBuf::from("/usr/bin").join(name))
    }
    fn package_installed(&self, package: &str) -> Option<bool> {
        self.packages.as_ref().map(|p| p.contains(&package))
    }
    fn path_info(&self, path: &Path) -> Option<PathInfo> {
        self.dirs.get(path).copied()
    }
    fn account(&self, name: &str) -> Option<Account> {
        self.accounts.iter().find(|a| a.name == name).cloned()
    }
    fn euid(&self) -> Option<u32> {
        Some(self.euid)
    }
    fn umask(&self) -> Option<u32> {
        Some(self.umask)
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
}

fn dir(uid: u32, mode: u32) -> PathInfo {
    PathInfo {
        uid,
        gid: uid,
        mode,
        is_dir: true,
    }
}

fn account(name: &str, uid: u32) -> Account {
    Account {
        name: name.into(),
        uid,
        gid: uid,
        groups: Vec::new(),
    }
}

/// A Debian machine with everything the local blog needs, as root.
fn ready() -> FakeHost {
    let mut dirs = BTreeMap::new();
    for d in ["/", "/var", "/var/tmp"] {
        dirs.insert(PathBuf::from(d), dir(0, 0o755));
    }
    dirs.insert(PathBuf::from("/var/tmp"), dir(0, 0o1777));
    let mut files = BTreeMap::new();
    files.insert(
        PathBuf::from("/srv/blog/app/Aptfile"),
        "python3-psycopg2\npython3-pymemcache\n".to_string(),
    );
    FakeHost {
        programs: vec![
            "setsid",
            "setpriv",
            "socat",
            "haproxy",
            "tar",
            "postgres",
            "initdb",
            "psql",
            "slonik",
            "slon",
            "slony1_funcs.2.2.11.so",
            "memcached",
        ],
        packages: Some(vec!["python3-psycopg2", "python3-pymemcache"]),
        dirs,
        accounts: vec![account("postgres", 104), account("nobody", 65534)],
        euid: 0,
        umask: 0o022,
        files,
    }
}

fn local_blog() -> Manifest {
    let mut m = crate::fixtures::manifest(2, Some(1), Some(1));
    m.provider.kind = ProviderKind::Local;
    m.release = Some(Release {
        path: "app".into(),
        build: None,
        start: "/usr/bin/python3 app.py".into(),
        health: "/health".into(),
        release_command: None,
        health_timeout: std::time::Duration::from_secs(60),
    });
    m
}

fn run(host: &FakeHost) -> Report {
    offline(
        &local_blog(),
        Path::new("/srv/blog"),
        Path::new("/var/tmp/appgrid-local"),
        host,
    )
}

fn problems(r: &Report) -> Vec<(String, String)> {
    r.problems()
        .map(|c| match &c.status {
            Status::Missing { problem, fix, .. } => (problem.clone(), fix.clone()),
            Status::Ok { .. } => unreachable!(),
        })
        .collect()
}

#[test]
fn a_ready_machine_passes_every_check() {
    let r = run(&ready());
    assert!(r.is_ok(), "{:#?}", problems(&r));
    let kinds: Vec<CheckKind> = r.checks.iter().map(|c| c.kind).collect();
    for k in [
        CheckKind::Program,
        CheckKind::Package,
        CheckKind::Privileges,
        CheckKind::LocalRoot,
    ] {
        assert!(kinds.contains(&k), "{k:?} not checked: {kinds:?}");
    }
}

#[test]
fn every_missing_program_and_package_is_listed_with_its_package() {
    let mut host = ready();
    host.programs
        .retain(|p| !["slonik", "memcached", "haproxy"].contains(p));
    host.packages = Some(vec!["python3-psycopg2"]);
    let r = run(&host);
    assert_eq!(
        problems(&r),
        [
            (
                "haproxy is not installed (the load balancer); it comes with haproxy".to_string(),
                "apt-get install haproxy".to_string()
            ),
            (
                "slonik is not installed (setting up Slony-I replication); it comes with slony1-2-bin".to_string(),
                "apt-get install slony1-2-bin".to_string()
            ),
            (
                "memcached is not installed (the cache); it comes with memcached".to_string(),
                "apt-get install memcached".to_string()
            ),
            (
                "package python3-pymemcache is not installed (the app (listed in /srv/blog/app/Aptfile))".to_string(),
                "apt-get install python3-pymemcache".to_string()
            ),
        ]
    );
    assert_eq!(
        r.missing_packages(),
        ["haproxy", "slony1-2-bin", "memcached", "python3-pymemcache"]
    );
    // Not root: the fix says sudo, and root itself is missing.
    host.euid = 1000;
    let r = run(&host);
    assert!(problems(&r)[0].1.starts_with("sudo apt-get install "));
    assert!(
        r.problems()
            .any(|c| c.kind == CheckKind::Privileges && c.name == "root")
    );
}

#[test]
fn a_0700_parent_is_named_with_the_chmod_that_fixes_it() {
    let mut host = ready();
    host.dirs.insert(PathBuf::from("/tmp"), dir(0, 0o1777));
    host.dirs.insert(PathBuf::from("/tmp/tmp.x"), dir(0, 0o700));
    let r = offline(
        &local_blog(),
        Path::new("/srv/blog"),
        Path::new("/tmp/tmp.x/machines"),
        &host,
    );
    assert_eq!(
        problems(&r),
        [(
            "/tmp/tmp.x (mode 0700, owner uid 0, group gid 0) cannot be entered by postgres, nobody, so they cannot reach APPGRID_LOCAL_ROOT /tmp/tmp.x/machines".to_string(),
            "chmod o+x /tmp/tmp.x (or set APPGRID_LOCAL_ROOT to a directory every user can enter, e.g. /var/tmp/appgrid-local)".to_string()
        )]
    );
    // Once the directory may be passed, the root (still to be made) is fine.
    host.dirs.insert(PathBuf::from("/tmp/tmp.x"), dir(0, 0o701));
    let r = offline(
        &local_blog(),
        Path::new("/srv/blog"),
        Path::new("/tmp/tmp.x/machines"),
        &host,
    );
    assert!(r.is_ok(), "{:#?}", problems(&r));
}

#[test]
fn a_root_to_be_made_under_umask_077_is_refused() {
    let mut host = ready();
    host.umask = 0o077;
    assert_eq!(
        problems(&run(&host)),
        [(
            "/var/tmp/appgrid-local does not exist, and appgrid would create it with mode 0700 (umask 0077), which postgres, nobody cannot enter".to_string(),
            "(umask 022 && mkdir -p /var/tmp/appgrid-local)".to_string()
        )]
    );
}

#[test]
fn a_bad_aptfile_is_one_problem_and_no_aptfile_none() {
    let mut host = ready();
    host.files.insert(
        PathBuf::from("/srv/blog/app/Aptfile"),
        "python3-psycopg2\n-o APT::Get::Assume-Yes=1\n".into(),
    );
    let p = problems(&run(&host));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].0
            .starts_with("/srv/blog/app/Aptfile: line 2: \"-o APT::Get::Assume-Yes=1\""),
        "{p:?}"
    );
    host.files.clear();
    let r = run(&host);
    assert!(r.is_ok() && !r.checks.iter().any(|c| c.kind == CheckKind::Package));
}

#[test]
fn machines_only_and_remote_providers_check_no_local_programs() {
    let host = FakeHost::default();
    let mut m = local_blog();
    m.provider.configure = false;
    assert!(
        offline(&m, Path::new("/srv"), Path::new("/x"), &host)
            .checks
            .is_empty()
    );
    // aws: the key, looked up relative to the manifest; nothing local.
    let m = crate::fixtures::manifest(1, None, None);
    let r = offline(
        &m,
        Path::new("/nonexistent-appgrid-dir"),
        Path::new("/x"),
        &host,
    );
    assert_eq!(r.checks.len(), 1);
    assert_eq!(r.checks[0].kind, CheckKind::SshKey);
    assert_eq!(r.checks[0].name, "/nonexistent-appgrid-dir/keys/id_ed25519");
}

#[test]
fn the_report_serializes_flat_with_a_status() {
    let mut host = ready();
    host.programs.retain(|p| *p != "haproxy");
    let json = serde_json::to_value(run(&host)).unwrap();
    let haproxy = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "haproxy")
        .unwrap();
    assert_eq!(haproxy["kind"], "program");
    assert_eq!(haproxy["status"], "missing");
    assert_eq!(haproxy["package"], "haproxy");
    assert_eq!(haproxy["fix"], "apt-get install haproxy");
    let tar = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tar")
        .unwrap();
    assert_eq!(tar["status"], "ok");
    assert_eq!(tar["found"], "/usr/bin/tar");
}
