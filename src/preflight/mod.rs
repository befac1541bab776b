//! Preflight: everything appgrid can know is missing before it changes
//! anything, each with the exact command that fixes it.
//!
//! `apply` runs it before it takes the state lock (so a refused apply leaves
//! no state file and no directory under the local root), `plan` and
//! `destroy` print its problems as warnings, and `appgrid doctor` shows every
//! check. The checks:
//!
//! - `local` provider: the programs the roles run and the packages the app's
//!   `Aptfile` lists ([`crate::requirements`]), root when Postgres runs as its
//!   own user, and a local root every service user can reach ([`local_root`]);
//! - `aws` and `hosts`: the SSH key pair ([`ssh_key`]);
//! - `aws`: credentials through aws-config's chain, and the image, resolved
//!   in the manifest's region ([`aws`]).
//!
//! The local checks take the machine as a [`Host`] (the real one is
//! [`ThisMachine`]), so they are plain functions of what they are shown.

pub mod aws;
mod host;
pub mod local_root;
pub mod ssh_key;

use std::path::Path;

use serde::Serialize;

pub use host::{Account, Host, PathInfo, ThisMachine};

use crate::manifest::{Manifest, ProviderKind};
use crate::requirements::{self, Requirement};

/// What a check looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Program,
    Package,
    Aptfile,
    Privileges,
    LocalRoot,
    SshKey,
    AwsCredentials,
    AwsImage,
}

/// One check and how it came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub kind: CheckKind,
    /// The program, package, path or setting checked.
    pub name: String,
    /// Why appgrid needs it.
    pub why: String,
    #[serde(flatten)]
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Present; `found` says where or what.
    Ok { found: String },
    /// Missing or wrong: what is wrong, the command that fixes it, and the
    /// Debian package that brings it when a package does.
    Missing {
        problem: String,
        fix: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        package: Option<String>,
    },
}

impl Check {
    pub fn ok(
        kind: CheckKind,
        name: impl Into<String>,
        why: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Check {
            kind,
            name: name.into(),
            why: why.into(),
            status: Status::Ok {
                found: found.into(),
            },
        }
    }

    pub fn missing(
        kind: CheckKind,
        name: impl Into<String>,
        why: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            kind,
            name: name.into(),
            why: why.into(),
            status: Status::Missing {
                problem: problem.into(),
                fix: fix.into(),
                package: None,
            },
        }
    }

    fn in_package(mut self, p: &str) -> Self {
        if let Status::Missing { package, .. } = &mut self.status {
            *package = Some(p.to_string());
        }
        self
    }

    pub fn is_ok(&self) -> bool {
        matches!(self.status, Status::Ok { .. })
    }

    /// The Debian package that would fix this check, if one would.
    pub fn package(&self) -> Option<&str> {
        match &self.status {
            Status::Missing { package, .. } => package.as_deref(),
            Status::Ok { .. } => None,
        }
    }
}

/// Every check made for one manifest, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(Check::is_ok)
    }

    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.is_ok())
    }

    /// The Debian packages that fix what is missing, each once, in order.
    pub fn missing_packages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.checks.iter().filter_map(Check::package) {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_string());
            }
        }
        out
    }

    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }
}

/// `apt-get install` for `packages`, as this user would type it.
pub fn apt_install_command(packages: &[String], root: bool) -> String {
    let sudo = if root { "" } else { "sudo " };
    format!("{sudo}apt-get install {}", packages.join(" "))
}

/// The checks that need no network: programs, packages, privileges and the
/// local root for `local`; the SSH key for `aws` and `hosts`.
/// `base_dir` is the manifest's directory; `local_root` is where the local
/// provider keeps its machines (`APPGRID_LOCAL_ROOT`).
pub fn offline(m: &Manifest, base_dir: &Path, local_root: &Path, host: &dyn Host) -> Report {
    let mut report = Report::default();
    match m.provider.kind {
        ProviderKind::Local => {
            if m.provider.configure {
                let root = host.euid() == Some(0);
                report.extend(programs(&requirements::requirements(m), host, root));
                report.extend(aptfile(m, base_dir, host, root));
                report.extend(privileges(m, host));
                report.extend(local_root::check(m, local_root, host));
            }
        }
        ProviderKind::Aws | ProviderKind::Hosts => {
            let needs_public = m.provider.kind == ProviderKind::Aws;
            report.extend(ssh_key::check(&m.provider.ssh_key, base_dir, needs_public));
        }
    }
    report
}

fn programs(requirements: &[Requirement], host: &dyn Host, root: bool) -> Vec<Check> {
    requirements
        .iter()
        .map(|r| {
            let name = r.program.rsplit('/').next().unwrap_or(&r.program);
            match host.program(&r.program) {
                Some(at) => Check::ok(CheckKind::Program, name, r.why, at.display().to_string()),
                None => Check::missing(
                    CheckKind::Program,
                    name,
                    r.why,
                    format!(
                        "{name} is not installed ({}); it comes with {}",
                        r.why, r.package
                    ),
                    apt_install_command(&[r.package.to_string()], root),
                )
                .in_package(r.package),
            }
        })
        .collect()
}

/// The packages the release's Aptfile lists.
fn aptfile(m: &Manifest, base_dir: &Path, host: &dyn Host, root: bool) -> Vec<Check> {
    let Some(release) = &m.release else {
        return Vec::new();
    };
    let path = base_dir.join(&release.path).join(requirements::APTFILE);
    let text = match host.read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            return vec![Check::missing(
                CheckKind::Aptfile,
                path.display().to_string(),
                "the app's Debian packages",
                format!("cannot read {}: {e}", path.display()),
                format!("make {} readable", path.display()),
            )];
        }
    };
    let packages = match requirements::aptfile(&text) {
        Ok(p) => p,
        Err(e) => {
            return vec![Check::missing(
                CheckKind::Aptfile,
                path.display().to_string(),
                "the app's Debian packages",
                format!("{}: {e}", path.display()),
                format!("list one Debian package a line in {}", path.display()),
            )];
        }
    };
    let why = format!("the app (listed in {})", path.display());
    packages
        .into_iter()
        .map(|p| match host.package_installed(&p) {
            Some(true) => Check::ok(CheckKind::Package, &p, &why, "installed"),
            Some(false) => Check::missing(
                CheckKind::Package,
                &p,
                &why,
                format!("package {p} is not installed ({why})"),
                apt_install_command(std::slice::from_ref(&p), root),
            )
            .in_package(&p),
            None => Check::missing(
                CheckKind::Package,
                &p,
                &why,
                format!("cannot tell whether package {p} is installed: dpkg-query is not on PATH"),
                format!("install {p} with this system's package manager"),
            ),
        })
        .collect()
}

/// Postgres runs as the `postgres` user, which only root can switch to.
fn privileges(m: &Manifest, host: &dyn Host) -> Vec<Check> {
    if m.database.is_none() {
        return Vec::new();
    }
    let why = "Postgres and the app run as their own users (setpriv), which takes root";
    vec![match host.euid() {
        Some(0) => Check::ok(CheckKind::Privileges, "root", why, "running as root"),
        uid => Check::missing(
            CheckKind::Privileges,
            "root",
            why,
            format!(
                "appgrid runs as uid {}, not root; the local provider starts Postgres as the postgres user",
                uid.map_or_else(|| "?".to_string(), |u| u.to_string())
            ),
            "run appgrid as root (e.g. `sudo -i`, then the same command)",
        ),
    }]
}

#[cfg(test)]
mod tests;
