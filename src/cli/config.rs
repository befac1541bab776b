//! `appgrid config FILE [--show]`, `config set FILE KEY=VALUE… | KEY` (the
//! value from stdin), `config unset FILE KEY…` (issue 9). Values live in the
//! 0600 state and the web servers' 0600 env files; they are never printed
//! unless `--show` asks (confirmed on a terminal). A change is a new release:
//! every web server, one at a time, drained, health-gated, rolled back on
//! failure.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use appgrid::engine::Workspace;
use appgrid::graph::ResourceSpec;
use appgrid::ops::Locked;
use appgrid::release::{self, config_vars::ConfigVars};
use secrecy::{ExposeSecret, SecretString};

use super::reconfigure::{self, Configurations};
use super::term::{self, outln};
use super::{Failure, report};

/// `config FILE [--show]`.
pub fn list(file: &Path, state_path: Option<&Path>, show: bool) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state_path)?;
    let vars = ws.load_state()?.map(|s| s.config).unwrap_or_default();
    if vars.is_empty() {
        outln!(
            "No config vars: `appgrid config set {} KEY=VALUE` sets one.",
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if show && std::io::stdin().is_terminal() {
        term::write_stderr(format_args!(
            "Print the values of {} config var(s)? Only 'yes' will be accepted: ",
            vars.names().count()
        ));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            return Err(Failure::Message("not shown".to_string()));
        }
    }
    for (name, value) in vars.secrets() {
        if show {
            outln!("{name}={}", value.expose_secret());
        } else {
            outln!("{name}=(hidden)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `KEY=VALUE` pairs; a lone `KEY` takes its value from stdin (only one).
fn assignments(args: &[String]) -> Result<Vec<(String, SecretString)>, Failure> {
    let lone: Vec<&String> = args.iter().filter(|a| !a.contains('=')).collect();
    if lone.len() > 1 {
        return Err(Failure::Message(format!(
            "only one KEY can read its value from stdin, found {}; write the others as KEY=VALUE",
            lone.len()
        )));
    }
    let mut out = Vec::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), SecretString::from(v.to_string()))),
            None => {
                if std::io::stdin().is_terminal() {
                    term::write_stderr(format_args!("Value of {a} (not echoed to the log): "));
                    let _ = std::io::stderr().flush();
                }
                let mut value = String::new();
                std::io::stdin()
                    .read_to_string(&mut value)
                    .map_err(|e| Failure::Message(format!("cannot read the value of {a}: {e}")))?;
                let value = value
                    .strip_suffix('\n')
                    .map(|v| v.strip_suffix('\r').unwrap_or(v))
                    .unwrap_or(&value)
                    .to_string();
                out.push((a.clone(), SecretString::from(value)));
            }
        }
    }
    Ok(out)
}

fn salt() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// `config set` and `config unset`: change the vars in state (checked
/// first: a bad key changes nothing), then release every web server again.
pub async fn change(
    file: &Path,
    set: Option<&[String]>,
    unset: Option<&[String]>,
    state_path: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let values = set.map(assignments).transpose()?;
    let ws = Workspace::open(file, state_path)?;
    let mut locked = Locked::acquire(&ws, "config", lock_timeout).map_err(super::ops::locked)?;
    let mut vars: ConfigVars = locked.state().config.clone();
    let what = match (values, unset) {
        (Some(values), _) => {
            let names: Vec<String> = values.iter().map(|(k, _)| k.clone()).collect();
            vars.set(values, salt)
                .map_err(|e| Failure::Message(format!("{e}; nothing was changed")))?;
            format!("set {}", names.join(", "))
        }
        (None, Some(names)) => {
            vars.unset(names)
                .map_err(|e| Failure::Message(format!("{e}; nothing was changed")))?;
            format!("unset {}", names.join(", "))
        }
        (None, None) => return Err(Failure::Message("nothing to set or unset".to_string())),
    };
    let digest = vars.digest();
    let specs = reconfigure::web_releases(locked.state(), |recorded| {
        let mut spec = recorded.clone();
        if let ResourceSpec::Config(c) = &mut spec {
            if digest.is_empty() {
                c.inputs.remove("config");
            } else {
                c.inputs.insert("config".to_string(), digest.clone());
            }
        }
        spec
    });
    locked
        .update(|s| s.config = vars)
        .map_err(super::ops::locked)?;
    outln!("Config vars {what}.");
    if specs.is_empty() {
        outln!("No web server is in state yet: the next `appgrid apply` uses them.");
        return Ok(ExitCode::SUCCESS);
    }
    let started = std::time::Instant::now();
    outln!(
        "Releasing {} web server(s) with the new config, one at a time…",
        specs.len()
    );
    let wanted = release::content_of(&specs[0].1);
    let (mut locked, outcome) = reconfigure::under_lock(
        &ws,
        locked,
        Configurations::Changed(specs),
        &format!("config {what}"),
        &mut |e| report::print_event(&e),
    )
    .await?;
    let failure = outcome
        .failed
        .first()
        .map(|(l, e)| format!("{l}: {}", e.lines().next().unwrap_or("")));
    let when = release::now_by_this_user();
    let mut booked = None;
    if let Some(wanted) = wanted {
        locked
            .update(|s| booked = release::book_state(s, &wanted, failure.as_deref(), &when))
            .map_err(super::ops::locked)?;
    }
    if let Some(undone) = reconfigure::undone(&outcome, "not done") {
        return Err(Failure::Message(format!(
            "the new config is saved, but not every web server runs it: {undone}; `appgrid apply` tries again"
        )));
    }
    let n = booked.map_or_else(String::new, |n| format!("release v{n}, "));
    outln!(
        "Every web server runs the new config ({n}{:.1}s).",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
