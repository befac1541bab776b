//! `appgrid scale FILE [--web N] [--replicas M] [--yes]`: scaling as a
//! manifest change made for the user, as `heroku ps:scale` changes the
//! formation. The plan for the manifest with those counts is shown (the text
//! `appgrid plan` prints), then, after a confirm, the counts are written into
//! the file in place (comments kept, refused if the file changed since the
//! plan) and exactly that plan is applied by [`apply::execute`], the function
//! `appgrid apply PLANFILE` runs, under the state lock. The panel's Scale
//! page and its Releases deploy run [`propose`] and [`carry_out`] too.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

use appgrid::engine::{EngineError, Workspace};
use appgrid::manifest::edit::{self, Counts};
use appgrid::manifest::{self, ManifestError};
use appgrid::plan::{Plan, render};

use super::Failure;
use super::apply::{self, BeforeWalk, Report};
use super::term::{self, out, outln};

pub struct Options {
    pub file: PathBuf,
    pub counts: Counts,
    pub yes: bool,
    pub lock_timeout: Duration,
    pub state: Option<PathBuf>,
}

/// A plan shown and waiting for its confirm: the counts it writes into the
/// manifest (none for a deploy) and the plan's text as shown.
pub struct Proposal {
    pub plan: Plan,
    pub text: String,
    pub counts: Counts,
    /// The manifest's text with the counts set; `None` when it stays as is.
    pub edited: Option<String>,
}

pub async fn run(o: Options) -> Result<ExitCode, Failure> {
    if o.counts == Counts::default() {
        return Err(Failure::Message(
            "say what to scale: --web N (app servers) and/or --replicas M (database replicas)"
                .to_string(),
        ));
    }
    let p = propose(&o.file, o.state.as_deref(), o.counts).await?;
    out!("{}", term::colour_plan(&p.text, term::term().stdout_color));
    if !o.yes && (p.plan.has_changes() || p.edited.is_some()) {
        apply::confirm("scale")?;
    }
    let mut terminal = apply::Terminal::new(false);
    let (code, wrote) = carry_out(
        &o.file,
        o.state.as_deref(),
        o.lock_timeout,
        p,
        None,
        &mut terminal,
    )
    .await?;
    if wrote {
        outln!("{} now says {}.", o.file.display(), said(o.counts));
    }
    Ok(code)
}

/// `[web] count = N`, `[database] replicas = M`: what a scale writes.
pub fn said(c: Counts) -> String {
    let mut parts = Vec::new();
    if let Some(w) = c.web {
        parts.push(format!("[web] count = {w}"));
    }
    if let Some(r) = c.replicas {
        parts.push(format!("[database] replicas = {r}"));
    }
    parts.join(" and ")
}

/// The plan `appgrid plan` prints for the manifest with `counts` set (the
/// manifest's own plan when none are). The edited text is checked as the
/// manifest is (ranges, with file:line:col), so what is planned is exactly
/// what will be written.
pub async fn propose(
    file: &Path,
    state_path: Option<&Path>,
    counts: Counts,
) -> Result<Proposal, Failure> {
    let text = std::fs::read_to_string(file).map_err(|source| {
        EngineError::from(ManifestError::Read {
            path: file.to_path_buf(),
            source,
        })
    })?;
    let mut ws = Workspace::open(file, state_path)?;
    if ws.manifest.source_hash != appgrid::hash::sha256_hex(text.as_bytes()) {
        return Err(Failure::Message(format!(
            "{} changed while it was read; nothing was changed: run the command again",
            file.display()
        )));
    }
    refuse_autoscaled(file, &ws.manifest.manifest, counts)?;
    let edited = if counts == Counts::default() {
        None
    } else {
        let edited = edit::set_counts(file, &text, counts).map_err(|e| e.to_string())?;
        let parsed = manifest::parse(file, &edited).map_err(|diagnostics| {
            EngineError::from(ManifestError::Invalid {
                path: file.to_path_buf(),
                diagnostics,
            })
        })?;
        ws.manifest.manifest = parsed;
        (edited != text).then_some(edited)
    };
    let state = ws.load_state()?;
    let plan = super::plan::make(&ws, state.as_ref(), true).await?;
    Ok(Proposal {
        text: render::text(&plan),
        plan,
        counts,
        edited,
    })
}

/// With `[autoscale]` the web count is the autoscaler's (and with
/// `[autoscale.replicas]` the replica count): a count set by hand would be
/// undone at its next decision, so it is refused before anything is read.
fn refuse_autoscaled(
    file: &Path,
    m: &appgrid::manifest::Manifest,
    counts: Counts,
) -> Result<(), Failure> {
    let Some(a) = &m.autoscale else {
        return Ok(());
    };
    if counts.web.is_some() {
        return Err(Failure::Message(format!(
            "{} has [autoscale]: the web count is the autoscaler's (min = {}, max = {}); \
             change [autoscale] min/max (or its schedules) in the manifest and apply it \
             instead; nothing was changed",
            file.display(),
            a.min,
            a.max
        )));
    }
    if let (Some(_), Some(r)) = (counts.replicas, &a.replicas) {
        return Err(Failure::Message(format!(
            "{} has [autoscale.replicas]: the replica count is the autoscaler's \
             (min = {}, max = {}); change [autoscale.replicas] min/max in the manifest \
             and apply it instead; nothing was changed",
            file.display(),
            r.min,
            r.max
        )));
    }
    Ok(())
}

/// Applies a shown [`Proposal`] exactly, as `appgrid apply PLANFILE` applies
/// a saved plan: refused if the state moved since it was made. The counts
/// are written into the manifest under the state lock, after every check
/// that may refuse the plan and just before the walk (refused, and nothing
/// changed, if the file changed since the plan). Returns whether the
/// manifest was written.
pub async fn carry_out(
    file: &Path,
    state_path: Option<&Path>,
    lock_timeout: Duration,
    p: Proposal,
    cancel: Option<watch::Receiver<bool>>,
    report: &mut dyn Report,
) -> Result<(ExitCode, bool), Failure> {
    let Proposal {
        mut plan,
        counts,
        edited,
        ..
    } = p;
    let wrote = Cell::new(false);
    let write = |plan: &mut Plan| -> Result<(), Failure> {
        let text = edit::rewrite(file, &plan.manifest_sha256, counts).map_err(|e| e.to_string())?;
        plan.manifest_sha256 = appgrid::hash::sha256_hex(text.as_bytes());
        wrote.set(true);
        Ok(())
    };
    if !plan.has_changes() {
        // Nothing to apply (the machines are there already): only the file.
        if edited.is_some() {
            write(&mut plan)?;
        }
        return Ok((ExitCode::SUCCESS, wrote.get()));
    }
    let ws = Workspace::from_plan(&plan, state_path)?;
    let o = apply::Options {
        file: file.to_path_buf(),
        parallelism: 10,
        yes: true,
        lock_timeout,
        state: state_path.map(Path::to_path_buf),
        destroy: false,
        data_loss: Default::default(),
        roll_forward: false,
    };
    let before: Option<BeforeWalk<'_>> = edited.map(|_| Box::new(write) as BeforeWalk<'_>);
    let code = apply::execute(&ws, Some(plan), &o, cancel, before, report).await?;
    Ok((code, wrote.get()))
}
