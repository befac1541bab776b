//! Running the preflight for a command and saying what it found: `apply`
//! refuses (before it takes the lock, so nothing is written), `plan` and
//! `destroy` warn. The checks themselves are the library's
//! [`appgrid::preflight`].

use std::path::{Path, PathBuf};

use appgrid::cloud::local::LocalCloud;
use appgrid::engine::Workspace;
use appgrid::manifest::ProviderKind;
use appgrid::preflight::{self, Report, Status, ThisMachine};

use super::Failure;

/// How far the checks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// This machine only: programs, packages, the local root, the SSH key.
    Offline,
    /// Also the cloud: AWS credentials and the image (read-only calls).
    Cloud,
}

/// The local provider's root, absolute (relative to the working directory
/// when `APPGRID_LOCAL_ROOT` is relative, as the provider itself reads it).
pub fn local_root() -> PathBuf {
    let base = LocalCloud::default_base();
    std::path::absolute(&base).unwrap_or(base)
}

/// Every check for the workspace's manifest.
pub async fn report(ws: &Workspace, reach: Reach) -> Report {
    let m = &ws.manifest.manifest;
    let mut report = preflight::offline(m, &ws.base_dir, &local_root(), &ThisMachine);
    if reach == Reach::Cloud && m.provider.kind == ProviderKind::Aws {
        report.extend(preflight::aws::check(&m.provider).await);
    }
    report
}

/// Refuse when anything is missing: the failure lists every problem.
pub async fn require(ws: &Workspace) -> Result<(), Failure> {
    let report = report(ws, Reach::Cloud).await;
    if report.is_ok() {
        return Ok(());
    }
    Err(Failure::Preflight {
        manifest: ws.manifest.path.clone(),
        report,
    })
}

/// Warn about what is missing; never fails.
pub async fn warn(ws: &Workspace, reach: Reach) {
    let report = report(ws, reach).await;
    if !report.is_ok() {
        tracing::warn!(
            problems = report.problems().count(),
            "{}",
            render(
                &report,
                &format!(
                    "{} cannot be applied on this machine yet:",
                    ws.manifest.path.display()
                ),
                &ws.manifest.path
            )
        );
    }
}

/// A headline, then every problem with its fix; packages are gathered into
/// one `apt-get install` (and `appgrid doctor --install`) at the end.
pub fn render(report: &Report, headline: &str, manifest: &Path) -> String {
    let mut out = format!("{headline}\n");
    for check in report.problems() {
        let Status::Missing {
            problem,
            fix,
            package,
        } = &check.status
        else {
            continue;
        };
        out.push_str(&format!("  - {problem}\n"));
        if package.is_none() {
            out.push_str(&format!("    fix: {fix}\n"));
        }
    }
    let packages = report.missing_packages();
    if !packages.is_empty() {
        let root = preflight::Host::euid(&ThisMachine) == Some(0);
        out.push_str(&format!(
            "Install the missing packages with:\n  appgrid doctor {} --install\nor:\n  {}\n",
            appgrid::templates::shell_quote(&manifest.display().to_string()),
            preflight::apt_install_command(&packages, root)
        ));
    }
    out.trim_end().to_string()
}
