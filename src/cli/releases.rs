//! `appgrid releases FILE [vN] [--json]`: the numbered releases state keeps
//! (issue 9), newest first, or one of them in full (read-only: no lock);
//! `appgrid rollback FILE [vN]`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use appgrid::engine::Workspace;
use appgrid::ops::Locked;
use appgrid::release::{self, ReleaseRecord, Releases};

use super::reconfigure::{self, Configurations};
use super::term::outln;
use super::{Failure, report};

/// `v3` or `3` → 3.
pub fn parse_number(s: &str) -> Result<u32, Failure> {
    s.strip_prefix('v')
        .unwrap_or(s)
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Failure::Message(format!(
                "`{s}` is not a release number; write it as v3 (`appgrid releases FILE` lists them)"
            ))
        })
}

/// The releases to show: without the config vars each record keeps (their
/// values are secrets; they stay in the state file).
fn load(file: &Path, state_path: Option<&Path>) -> Result<Releases, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let mut releases = ws.load_state()?.map(|s| s.releases).unwrap_or_default();
    for r in &mut releases.records {
        r.config_vars = None;
    }
    Ok(releases)
}

pub fn run(
    file: &Path,
    which: Option<&str>,
    state_path: Option<&Path>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let releases = load(file, state_path)?;
    if let Some(which) = which {
        let n = parse_number(which)?;
        let r = releases.get(n).ok_or_else(|| {
            Failure::Message(format!(
                "there is no release v{n} in state; `appgrid releases {}` lists them",
                file.display()
            ))
        })?;
        if json {
            outln!("{}", serde_json::to_string_pretty(r).expect("json"));
        } else {
            show(r);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&releases.records).expect("json")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if releases.is_empty() {
        outln!(
            "No releases yet: `appgrid apply {}` makes v1.",
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!("release  status       code          config        when                  by");
    for r in releases.records.iter().rev() {
        outln!(
            "{:<8} {:<12} {:<13} {:<13} {:<21} {}{}",
            format!("v{}", r.number),
            r.status.to_string(),
            short(&r.content.code),
            short(&r.content.config),
            r.at,
            r.by,
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.note)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn show(r: &ReleaseRecord) {
    outln!("release  v{}", r.number);
    outln!("status   {}", r.status);
    outln!("code     {}", r.content.code);
    outln!("config   {}", r.content.config);
    if let Some(build) = &r.content.build {
        outln!("build    {build}");
    }
    outln!("start    {}", r.content.start);
    outln!("health   {}", r.content.health);
    if let Some(dir) = &r.dir {
        outln!("dir      releases/{dir} on the web servers");
    }
    outln!("when     {}", r.at);
    outln!("by       {}", r.by);
    if !r.note.is_empty() {
        outln!("note     {}", r.note);
    }
}

/// `appgrid rollback FILE [vN]`: run a kept release again on every web
/// server, rolling and drained like any release, under the state lock; the
/// manifest is not edited (the release stays pinned until `apply
/// --roll-forward` or a change of the manifest's release).
pub async fn rollback(
    file: &Path,
    which: Option<&str>,
    state_path: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    rollback_reporting(
        file,
        which,
        state_path,
        lock_timeout,
        &mut |line: String| outln!("{line}"),
        &mut |e: appgrid::apply::Event| report::print_event(&e),
    )
    .await
}

/// [`rollback`], saying what it does to `say` and each step's progress to
/// `progress` (the panel streams both to the browser).
pub async fn rollback_reporting(
    file: &Path,
    which: Option<&str>,
    state_path: Option<&Path>,
    lock_timeout: Duration,
    say: &mut (dyn FnMut(String) + Send),
    progress: &mut (dyn FnMut(appgrid::apply::Event) + Send),
) -> Result<ExitCode, Failure> {
    let which = which.map(parse_number).transpose()?;
    let ws = Workspace::open(file, state_path)?;
    let manifest = ws.manifest_release()?.ok_or_else(|| {
        Failure::Message(format!(
            "{} has no [release]: there is nothing to roll back",
            file.display()
        ))
    })?;
    let mut locked = Locked::acquire(&ws, "rollback", lock_timeout).map_err(super::ops::locked)?;
    let target = locked
        .state()
        .releases
        .rollback_target(which)
        .map_err(|e| Failure::Message(format!("cannot roll back: {e}; nothing was changed")))?
        .clone();
    let specs = reconfigure::web_releases(locked.state(), |recorded| {
        release::pinned_spec(recorded, &target)
    });
    if specs.is_empty() {
        return Err(Failure::Message(
            "no web server is in state: nothing to roll back".to_string(),
        ));
    }
    // The config vars of the release's time go back into state first: the
    // configurator reads them from there when it is made, for the env files.
    if let Some(vars) = &target.config_vars
        && *vars != locked.state().config
    {
        locked
            .update(|s| s.config = vars.clone())
            .map_err(super::ops::locked)?;
    }
    let n = target.number;
    let started = std::time::Instant::now();
    say(format!(
        "Rolling back to v{n} on {} web server(s), one at a time…",
        specs.len()
    ));
    let (mut locked, outcome) = reconfigure::under_lock(
        &ws,
        locked,
        Configurations::Changed(specs),
        &format!("rollback to v{n}"),
        progress,
    )
    .await?;
    if let Some(undone) = reconfigure::undone(&outcome, "not done") {
        return Err(Failure::Message(format!(
            "the rollback to v{n} stopped: {undone}; the servers not rolled back still run the \
             release they ran (`appgrid plan` shows which)"
        )));
    }
    let when = release::now_by_this_user();
    locked
        .update(|s| s.releases.rolled_back(n, &manifest, &when))
        .map_err(super::ops::locked)?;
    say(format!(
        "Release v{n} is active on every web server ({:.1}s). The manifest is unchanged: \
         `appgrid apply --roll-forward` releases it again.",
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}
