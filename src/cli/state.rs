//! `state pull` (the state as JSON, secrets redacted unless `--raw`),
//! `state unlock` (remove a stuck lock, naming it and asking first) and
//! `state migrate` (move the state between the local file and S3).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use appgrid::engine::Workspace;
use appgrid::state::location::{S3Location, StateLocation};
use appgrid::state::lock::{self, LockHolder};
use appgrid::state::{migrate, s3_lock};

use super::Failure;
use super::term::{self, errln, outln};

/// Asks on the terminal for `yes`; without a terminal, only `--yes` will do.
fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message(format!(
            "refusing without confirmation ({question}): stdin is not a terminal; pass --yes"
        )));
    }
    term::write_stderr(format_args!("{question} Only 'yes' will be accepted: "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() != "yes" {
        return Err(Failure::Message("cancelled; nothing was changed".into()));
    }
    Ok(())
}

/// `appgrid state pull FILE [--raw [--yes]]`.
pub fn pull(
    file: &Path,
    state_path: Option<&Path>,
    raw: bool,
    yes: bool,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let mut state = ws.load_state()?.ok_or_else(|| {
        Failure::Message(format!(
            "no state at {}: nothing has been applied for {} yet",
            ws.state_location,
            file.display()
        ))
    })?;
    if raw {
        confirm(
            "Print the state with its secrets (passwords, keys) in clear?",
            yes,
        )?;
    } else {
        for r in state.resources.values_mut() {
            *r = r.redacted();
        }
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&state).expect("state serializes")
    );
    Ok(ExitCode::SUCCESS)
}

/// `appgrid state unlock FILE LOCK_ID [--yes]`.
pub fn unlock(
    file: &Path,
    lock_id: &str,
    state_path: Option<&Path>,
    yes: bool,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let lock_err = |e: lock::LockError| Failure::Message(e.to_string());
    let (holder, remove): (LockHolder, Box<dyn FnOnce() -> Result<bool, Failure>>) =
        match &ws.state_location {
            StateLocation::S3(s3) => {
                let Some((holder, etag)) = s3_lock::current(s3).map_err(lock_err)? else {
                    return Err(no_lock(&ws.state_location));
                };
                let s3 = s3.clone();
                (
                    holder,
                    Box::new(move || s3_lock::remove(&s3, &etag).map_err(lock_err)),
                )
            }
            StateLocation::File(path) => {
                let Some(holder) = lock::current(path).map_err(lock_err)? else {
                    return Err(no_lock(&ws.state_location));
                };
                let (path, seen) = (path.clone(), holder.clone());
                (
                    holder,
                    Box::new(move || lock::remove(&path, &seen).map_err(lock_err)),
                )
            }
        };
    if holder.lock_id() != lock_id {
        return Err(Failure::Message(format!(
            "the state lock of {} has ID {}, not {lock_id}: it is held by {}; nothing was removed",
            ws.state_location,
            holder.lock_id(),
            holder.describe()
        )));
    }
    errln!(
        "The state lock {lock_id} of {} is held by {}, lease until {}.",
        ws.state_location,
        holder.describe(),
        lock::format_rfc3339(holder.lease_until)
    );
    errln!("Removing it while that run is alive lets two runs change the app at once.");
    confirm("Remove this lock?", yes)?;
    if !remove()? {
        return Err(Failure::Message(format!(
            "the state lock of {} changed while you were asked (renewed or taken over); nothing \
             was removed: run `appgrid state unlock` again if it is still stuck",
            ws.state_location
        )));
    }
    outln!(
        "removed the state lock {lock_id} of {} (held by {})",
        ws.state_location,
        holder.describe()
    );
    Ok(ExitCode::SUCCESS)
}

fn no_lock(location: &StateLocation) -> Failure {
    Failure::Message(format!(
        "the state at {location} is not locked; nothing to unlock"
    ))
}

/// What `state migrate --to` accepts.
pub struct MigrateOptions {
    pub file: PathBuf,
    pub to: String,
    pub state: Option<PathBuf>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub lock_timeout: Duration,
}

/// `appgrid state migrate FILE --to s3://bucket/key | local | PATH`.
pub fn migrate(o: MigrateOptions) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(&o.file, o.state.as_deref())?;
    let to = match o.to.as_str() {
        "local" => StateLocation::File(ws.store_path.clone()),
        url if url.starts_with("s3://") => {
            let mut s3 = S3Location::parse_url(url).map_err(Failure::Message)?;
            // The flags, else what [state] says of the same bucket.
            let (region, endpoint) = match &ws.state_location {
                StateLocation::S3(current) if current.bucket == s3.bucket => {
                    (current.region.clone(), current.endpoint.clone())
                }
                _ => (None, None),
            };
            s3.region = o.region.or(region);
            s3.endpoint = o.endpoint.or(endpoint);
            StateLocation::S3(s3)
        }
        path => StateLocation::File(PathBuf::from(path)),
    };
    refuse_with_a_runner(&ws.state_location, &o.file)?;
    let now = jiff::Timestamp::now().to_string();
    let state = migrate::migrate(&ws.state_location, &to, o.lock_timeout, ws.lease(), &now)
        .map_err(|e| Failure::Message(e.to_string()))?;
    outln!(
        "moved the state of {} (lineage {}, serial {}) from {} to {}",
        state.app,
        state.lineage,
        state.serial,
        ws.state_location,
        to
    );
    let next = match &to {
        StateLocation::S3(s3) => format!(
            "now put `[state]` with `backend = \"s3\"`, `bucket = \"{}\"`, `key = \"{}\"`{}{} in {}",
            s3.bucket,
            s3.key,
            s3.region
                .as_ref()
                .map(|r| format!(", `region = \"{r}\"`"))
                .unwrap_or_default(),
            s3.endpoint
                .as_ref()
                .map(|e| format!(", `endpoint = \"{e}\"`"))
                .unwrap_or_default(),
            o.file.display()
        ),
        StateLocation::File(p) if *p == ws.store_path => {
            format!("now remove `[state]` from {}", o.file.display())
        }
        StateLocation::File(p) => format!("now pass --state {} to appgrid", p.display()),
    };
    errln!("note: {next}; the old place keeps a `.moved` note and refuses to be used");
    Ok(ExitCode::SUCCESS)
}

/// An installed autoscaler reads the state where it is now and its install
/// record lies beside it: moving the state under it would leave a runner
/// failing on a `.moved` note, and a second install possible at the new
/// place. Refused, with the way round, before anything moves.
fn refuse_with_a_runner(state: &StateLocation, file: &Path) -> Result<(), Failure> {
    let place = appgrid::autoscale::fleet_record::RecordPlace::of(state);
    let installed = appgrid::autoscale::fleet_record::read_installed(&place)
        .map_err(|e| Failure::Message(e.to_string()))?;
    match installed {
        None => Ok(()),
        Some((runner, _)) => Err(Failure::Message(format!(
            "the autoscaler installed on {} ({}) reads the state at {state} (recorded in {place}); \
             moving the state would strand it. Run `appgrid autoscale uninstall {f}`, migrate, \
             then `appgrid autoscale install {f} --on {}` again",
            runner.on,
            runner.host,
            runner.on,
            f = file.display()
        ))),
    }
}
