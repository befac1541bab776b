//! `appgrid apply` and `appgrid destroy`: plan (or load a saved plan), confirm,
//! walk under the state lock, and report exactly what was and was not done.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use appgrid::apply::Configurator;
use appgrid::apply::{self, ApplyOptions, Outcome};
use appgrid::cloud::Cloud;
use appgrid::engine::{self, Workspace};
use appgrid::graph::ResourceGraph;
use appgrid::plan::{self, Plan, render};

use super::preflight::{self, Reach};
use super::progress::Progress;
use super::term::{self, errln, out, outln};
use super::{Failure, providers};

pub struct Options {
    pub file: PathBuf,
    pub parallelism: usize,
    pub yes: bool,
    pub lock_timeout: Duration,
    pub state: Option<PathBuf>,
    pub destroy: bool,
    /// Issue 8: what to do when the plan would remove the database.
    pub data_loss: super::backup::DataLossFlags,
    /// End a rollback in force: release the manifest's release again.
    pub roll_forward: bool,
}

fn is_saved_plan(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

pub async fn run(o: Options) -> Result<ExitCode, Failure> {
    let saved = if is_saved_plan(&o.file) && !o.destroy {
        Some(plan::file::load(&o.file).map_err(|e| Failure::Message(e.to_string()))?)
    } else {
        None
    };
    let ws = match &saved {
        Some(p) => Workspace::from_plan(p, o.state.as_deref())?,
        None => Workspace::open(&o.file, o.state.as_deref())?,
    };
    execute(&ws, saved, &o, None, None, &mut Terminal::new(true)).await
}

/// Just before the walk of a saved plan, under the state lock, after every
/// check that may refuse it: `appgrid scale` writes the manifest here.
pub type BeforeWalk<'a> = Box<dyn FnOnce(&mut Plan) -> Result<(), Failure> + 'a>;

/// Where an apply's words go: the terminal (`appgrid apply`, `appgrid
/// scale`) or a job of the panel, which streams them to the browser.
pub trait Report {
    /// The plan about to be applied, as `appgrid plan` prints it.
    fn plan(&mut self, text: &str);
    /// A result (stdout on the terminal).
    fn line(&mut self, line: String);
    /// A warning or a failure (stderr on the terminal).
    fn warn(&mut self, line: String);
    /// The walk of `steps` steps starts.
    fn start(&mut self, steps: usize);
    fn event(&mut self, e: &apply::Event);
    /// The walk ended.
    fn finish(&mut self);
}

/// The terminal: the plan coloured, progress bars (or log lines).
pub struct Terminal {
    show_plan: bool,
    progress: Option<Progress>,
}

impl Terminal {
    /// `show_plan: false` when the caller printed the plan already.
    pub fn new(show_plan: bool) -> Terminal {
        Terminal {
            show_plan,
            progress: None,
        }
    }
}

impl Report for Terminal {
    fn plan(&mut self, text: &str) {
        if self.show_plan {
            out!("{}", term::colour_plan(text, term::term().stdout_color));
        }
    }
    fn line(&mut self, line: String) {
        outln!("{line}");
    }
    fn warn(&mut self, line: String) {
        errln!("{line}");
    }
    fn start(&mut self, steps: usize) {
        self.progress = Some(Progress::new(steps, Progress::interactive()));
    }
    fn event(&mut self, e: &apply::Event) {
        match &mut self.progress {
            Some(p) => p.event(e),
            None => super::report::print_event(e),
        }
    }
    fn finish(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
    }
}

/// `appgrid apply` from its workspace on: the preflight, the state lock, the
/// freshness of a saved plan, the plan, confirm, the walk, the release; every
/// word to `report`. `appgrid scale` and the panel run exactly this.
/// `cancel`: who stops the walk (the panel's own); `None`: Ctrl-C and
/// SIGTERM, watched from the walk's start (a Ctrl-C at the confirm still
/// exits at once).
pub async fn execute(
    ws: &Workspace,
    saved: Option<Plan>,
    o: &Options,
    cancel: Option<watch::Receiver<bool>>,
    before_walk: Option<BeforeWalk<'_>>,
    report: &mut dyn Report,
) -> Result<ExitCode, Failure> {
    if let Some(p) = &saved {
        // A stale plan is refused before anything else is looked at.
        plan::file::check_fresh(p, ws.load_state()?.as_ref(), &state_at(ws))
            .map_err(|e| Failure::Message(e.to_string()))?;
    }
    // Before the lock: a refused apply writes nothing, not even a lock file.
    if o.destroy {
        preflight::warn(ws, Reach::Offline).await;
    } else {
        preflight::require(ws).await?;
    }
    let operation = if o.destroy { "destroy" } else { "apply" };
    let lock = ws.lock(operation, o.lock_timeout)?;
    if let Some(note) = lock.takeover_note() {
        tracing::info!("note: {note}");
    }
    let mut existing = ws.load_state()?;
    if o.roll_forward
        && let Some(s) = existing.as_mut()
        && let Some(pin) = s.releases.pinned.take()
    {
        report.line(format!(
            "Rolling forward from v{} (the rollback by {} at {}) to the manifest's release.",
            pin.number, pin.by, pin.at
        ));
    }
    if let Some(p) = &saved {
        plan::file::check_fresh(p, existing.as_ref(), &state_at(ws))
            .map_err(|e| Failure::Message(e.to_string()))?;
    }
    let walk = Walk {
        ws,
        options: o,
        saved,
        existing,
        operation,
        lock,
        cancel,
        before_walk,
        report,
    };
    providers::with_provider(ws, Visit(walk)).await
}

/// Everything a walk needs but the provider.
struct Walk<'a> {
    ws: &'a Workspace,
    options: &'a Options,
    saved: Option<Plan>,
    existing: Option<appgrid::state::State>,
    operation: &'static str,
    lock: appgrid::state::lock::StateLock,
    cancel: Option<watch::Receiver<bool>>,
    before_walk: Option<BeforeWalk<'a>>,
    report: &'a mut dyn Report,
}

struct Visit<'a>(Walk<'a>);

impl providers::Visitor for Visit<'_> {
    type Output = Result<ExitCode, Failure>;

    async fn visit<C: Cloud, K: Configurator>(
        self,
        cloud: Arc<C>,
        configurator: Arc<K>,
    ) -> Self::Output {
        self.0.run(cloud, configurator).await
    }
}

impl Walk<'_> {
    async fn run<C: Cloud, K: Configurator>(
        self,
        cloud: Arc<C>,
        configurator: Arc<K>,
    ) -> Result<ExitCode, Failure> {
        let Walk {
            ws,
            options: o,
            saved,
            existing,
            operation,
            lock,
            cancel,
            before_walk,
            report,
        } = self;
        let mut plan = match saved {
            Some(p) => p,
            None => {
                let graph = if o.destroy {
                    ResourceGraph::default()
                } else {
                    ws.graph_for(existing.as_ref())?
                };
                ws.plan(&graph, existing.as_ref(), cloud.as_ref()).await?
            }
        };
        report.plan(&render::text(&plan));
        if !plan.has_changes() {
            drop(lock);
            return Ok(ExitCode::SUCCESS);
        }
        // Issue 8: a primary moves only through a Slony-I cluster.
        if let Some(lone) = appgrid::plan::lone_move::lone_move(&plan, existing.as_ref()) {
            return Err(Failure::Message(lone.explain()));
        }
        // Issue 8: the database is never lost by itself.
        let loss = appgrid::plan::data_loss::data_loss(&plan);
        let final_backup = match &loss {
            Some(loss) => super::backup::guard(ws, loss, o.data_loss)?,
            None => false,
        };
        if !o.yes && !is_saved_plan(&o.file) {
            confirm(operation)?;
        }
        if let Some(f) = before_walk {
            f(&mut plan)?;
        }
        if let (Some(loss), true) = (&loss, final_backup) {
            let resources = existing
                .as_ref()
                .map(|s| s.resources.clone())
                .unwrap_or_default();
            super::backup::final_backup(ws, loss, &resources).await?;
        }

        // Every write checks that this run still holds the lock.
        let mut store = ws.store().fenced_by(&lock);
        // Every machine state names, a move's second one included.
        let before = existing
            .as_ref()
            .map(apply::machines_of)
            .unwrap_or_default();
        let mut state = engine::state_for_apply(&store, existing, &plan.app)?;
        engine::adopt_new_lineage(&mut plan, &state);
        let cancel = cancel.unwrap_or_else(|| {
            let (cancel_tx, cancel_rx) = watch::channel(false);
            tokio::spawn(watch_signals(cancel_tx));
            cancel_rx
        });
        let options = ApplyOptions {
            parallelism: o.parallelism,
            base_dir: ws.base_dir.clone(),
        };
        report.start(apply::steps::build(&plan).len());
        let outcome = apply::walk(
            cloud,
            Arc::clone(&configurator),
            &plan,
            &mut state,
            &mut store,
            &options,
            cancel,
            &mut |e| report.event(&e),
        )
        .await;
        report.finish();
        // Issue 15: nothing appgrid started survives a machine that left.
        let removed = apply::removed_machines(&before, &apply::machines_of(&state));
        if !removed.is_empty() {
            let n = removed.len();
            print_sweep(report, &plan.app, n, configurator.sweep(removed).await);
        }
        // Issue 9: the web rollout becomes a numbered release (or a failed one).
        let booked = if o.destroy {
            None
        } else {
            appgrid::release::book_apply(
                &plan,
                &outcome.failed,
                &mut state,
                &appgrid::release::now_by_this_user(),
            )
        };
        if let Some(n) = booked
            && let Err(e) = store.save(&mut state)
        {
            report.warn(format!(
                "warning: release v{n} could not be recorded in state: {e}"
            ));
        }
        drop(lock);
        let code = summarize(
            report,
            &plan,
            &outcome,
            state.serial,
            &ws.store_path,
            o.destroy,
        );
        if let Some(record) = booked.and_then(|n| state.releases.get(n)) {
            let active = state
                .releases
                .active()
                .map_or_else(|| "no release".to_string(), |a| format!("v{}", a.number));
            if record.status == appgrid::release::ReleaseStatus::Active {
                report.line(format!(
                    "Release v{} is active on every web server.",
                    record.number
                ));
            } else {
                report.warn(format!(
                    "Release v{} {}; {active} still serves (`appgrid releases` lists them).",
                    record.number, record.status
                ));
            }
        }
        if outcome.is_success()
            && !o.destroy
            && let Some(url) = super::report::endpoint(&state)
        {
            report.line(format!("The app answers at {url}"));
        }
        Ok(code)
    }
}

/// What the check of the machines that left found.
fn print_sweep(
    report: &mut dyn Report,
    app: &str,
    machines: usize,
    swept: Result<Vec<apply::Stopped>, apply::ConfigError>,
) {
    match swept {
        Ok(stopped) if stopped.is_empty() => report.line(format!(
            "Nothing of {app} is left running on the {machines} machine(s) it no longer has."
        )),
        Ok(stopped) => {
            report.line(format!(
                "Stopped what of {app} was still running on machines it no longer has:"
            ));
            for s in stopped {
                report.line(format!("  {}: pid {} ({})", s.machine, s.pid, s.command));
            }
        }
        Err(e) => report.warn(format!(
            "warning: could not check {} for processes left behind: {e}",
            e.machine.unwrap_or(e.address)
        )),
    }
}

/// Where the state is, for messages: its file, or `s3://bucket/key`.
fn state_at(ws: &Workspace) -> PathBuf {
    PathBuf::from(ws.state_location.to_string())
}

pub fn confirm(operation: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message(format!(
            "refusing to {operation} without confirmation: stdin is not a terminal; pass --yes, or apply a saved plan"
        )));
    }
    term::write_stderr(format_args!(
        "\nDo you want to {operation} these changes? Only 'yes' will be accepted: "
    ));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() != "yes" {
        return Err(Failure::Message(format!(
            "{operation} cancelled; nothing was changed"
        )));
    }
    Ok(())
}

/// First Ctrl-C (or SIGTERM): start nothing new, let running steps finish.
/// Second: exit at once.
async fn watch_signals(cancel: watch::Sender<bool>) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    let mut interrupts = 0;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            _ = term.recv() => {}
        }
        interrupts += 1;
        if interrupts == 1 {
            tracing::warn!(
                "interrupted: letting running steps finish and saving state; no new steps will start (interrupt again to exit at once)"
            );
            let _ = cancel.send(true);
        } else {
            tracing::warn!("exiting at once; state holds every step that finished");
            std::process::exit(130);
        }
    }
}

/// What verifying the machines adopted and terminated, a line each.
fn print_verification(report: &mut dyn Report, outcome: &Outcome) {
    let v = &outcome.verification;
    let name = |a: &Option<appgrid::graph::ResourceAddress>, id: &str| match a {
        Some(a) => format!("{a} {id}"),
        None => id.to_string(),
    };
    if !v.adopted.is_empty() {
        let list: Vec<String> = v
            .adopted
            .iter()
            .map(|(a, id)| name(&Some(*a), id))
            .collect();
        report.line(format!(
            "Found and recorded (launched, but the answer was lost): {}",
            list.join(", ")
        ));
    }
    if !v.terminated.is_empty() {
        let list: Vec<String> = v.terminated.iter().map(|(a, id)| name(a, id)).collect();
        report.line(format!(
            "Terminated (duplicates no address wanted): {}",
            list.join(", ")
        ));
    }
}

fn summarize(
    report: &mut dyn Report,
    plan: &Plan,
    outcome: &Outcome,
    serial: u64,
    state_path: &std::path::Path,
    destroy: bool,
) -> ExitCode {
    print_verification(report, outcome);
    let s = plan.summary();
    if outcome.is_success() {
        let verb = if destroy { "Destroy" } else { "Apply" };
        let mut adopted = if s.adopt > 0 {
            format!(", {} adopted", s.adopt)
        } else {
            String::new()
        };
        if s.moved > 0 {
            adopted.push_str(&format!(", {} moved online", s.moved));
        }
        report.line(format!(
            "\n{verb} complete: {} added, {} changed, {} replaced, {} destroyed{adopted}. State: {} (serial {serial}).",
            s.create,
            s.update,
            s.replace,
            s.delete,
            state_path.display()
        ));
        return ExitCode::SUCCESS;
    }
    report.warn(String::new());
    for (label, error) in &outcome.failed {
        report.warn(format!("error: {label}: {error}"));
    }
    if let Some(e) = &outcome.checkpoint_error {
        report.warn(format!(
            "error: saving state failed, so the walk stopped: {e}"
        ));
    }
    if let Some(e) = &outcome.verification.mismatch {
        report.warn(format!("error: the cloud does not match the state: {e}"));
    }
    let headline = if outcome.interrupted {
        "Interrupted"
    } else {
        "Apply failed"
    };
    report.warn(format!(
        "{headline}: {} steps done, {} failed, {} skipped because an upstream step failed, {} not started.",
        outcome.done.len(),
        outcome.failed.len(),
        outcome.skipped.len(),
        outcome.not_started.len()
    ));
    for label in outcome.skipped.iter().chain(&outcome.not_started) {
        report.warn(format!("  not done: {label}"));
    }
    report.warn(format!(
        "State at {} (serial {serial}) records exactly what exists. Run the same command again to finish.",
        state_path.display()
    ));
    if outcome.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::from(1)
    }
}
