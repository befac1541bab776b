//! `appgrid doctor FILE [--install [--yes]] [--json]`: every preflight
//! check for the manifest — what is there and what is missing, each missing
//! thing with the command that fixes it — and, with `--install`, the
//! missing Debian packages installed. Exit 0 when everything is there.

use std::path::Path;
use std::process::ExitCode;

use appgrid::engine::Workspace;
use appgrid::preflight::{Report, Status};

use super::Failure;
use super::install;
use super::preflight::{self, Reach};
use super::term::{Paint, errln, outln, paint, term};

pub async fn run(file: &Path, install: bool, yes: bool, json: bool) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, None)?;
    let mut report = preflight::report(&ws, Reach::Cloud).await;
    if install {
        let packages = report.missing_packages();
        if packages.is_empty() {
            errln!("Nothing to install: no Debian package is missing.");
        } else {
            install::run(&packages, yes)?;
            report = preflight::report(&ws, Reach::Cloud).await;
        }
    }
    if json {
        print_json(&ws, &report);
    } else {
        print_text(&ws, &report);
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_json(ws: &Workspace, report: &Report) {
    let packages = report.missing_packages();
    let value = serde_json::json!({
        "manifest": ws.manifest.path.display().to_string(),
        "ok": report.is_ok(),
        "checks": report.checks,
        "missing_packages": packages,
    });
    outln!("{}", serde_json::to_string_pretty(&value).expect("json"));
}

fn print_text(ws: &Workspace, report: &Report) {
    let color = term().stdout_color;
    let width = report
        .checks
        .iter()
        .map(|c| c.name.rsplit('/').next().unwrap_or(&c.name).len())
        .max()
        .unwrap_or(0)
        .min(24);
    for check in &report.checks {
        let name = if check.name.starts_with('/')
            && check.kind != appgrid::preflight::CheckKind::LocalRoot
        {
            check.name.rsplit('/').next().unwrap_or(&check.name)
        } else {
            &check.name
        };
        match &check.status {
            Status::Ok { found } => outln!(
                "{}       {name:<width$} {found}",
                paint("ok", Paint::Green, color)
            ),
            Status::Missing { problem, .. } => outln!(
                "{}  {name:<width$} {problem}",
                paint("missing", Paint::Red, color)
            ),
        }
    }
    let path = &ws.manifest.path;
    if report.is_ok() {
        outln!("Everything {} needs is here.", path.display());
        return;
    }
    let headline = format!("\nWhat {} still needs:", path.display());
    outln!("{}", preflight::render(report, &headline, path));
}
