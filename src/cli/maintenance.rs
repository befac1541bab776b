//! `appgrid maintenance FILE on|off [--message "…"]` (issue 9): the load
//! balancer answers 503 with the message (and `Retry-After`) while the app
//! servers keep running. The record is saved in state under the lock, then
//! `lb.config` is configured again through the walker, which changes the
//! running HAProxy's maintenance map through the runtime API (no reload).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::maintenance::{self, Maintenance};
use appgrid::ops::Locked;

use super::reconfigure::{self, Configurations};
use super::term::outln;
use super::{Failure, report};

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

pub async fn run(
    file: &Path,
    switch: Switch,
    message: Option<String>,
    state_path: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let record = match (switch, message) {
        (Switch::Off, Some(_)) => {
            return Err(Failure::Message(
                "--message goes with `on`; `maintenance FILE off` takes none".to_string(),
            ));
        }
        (Switch::Off, None) => None,
        (Switch::On, message) => {
            let message = message.unwrap_or_else(|| maintenance::DEFAULT_MESSAGE.to_string());
            maintenance::check_message(&message)
                .map_err(|e| Failure::Message(format!("{e}; nothing was changed")))?;
            Some(Maintenance {
                since: jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
                message,
            })
        }
    };
    let ws = Workspace::open(file, state_path)?;
    let mut locked =
        Locked::acquire(&ws, "maintenance", lock_timeout).map_err(super::ops::locked)?;
    let lb = ResourceAddress::config(Role::Lb, 0);
    if !locked.state().resources.contains_key(&lb) {
        return Err(Failure::Message(format!(
            "the load balancer is not configured yet: `appgrid apply {}` first; nothing was changed",
            file.display()
        )));
    }
    let previous = locked.state().maintenance.clone();
    // Turning it on again with a new message keeps the first `since`.
    let record = record.map(|mut r| {
        if let Some(p) = &previous {
            r.since = p.since.clone();
        }
        r
    });
    let what = match &record {
        Some(m) => format!("on since {}", m.since),
        None => "off".to_string(),
    };
    locked
        .update(|s| s.maintenance = record)
        .map_err(super::ops::locked)?;
    let (_locked, outcome) = reconfigure::under_lock(
        &ws,
        locked,
        Configurations::Recorded(vec![lb]),
        &format!("maintenance {what}"),
        &mut |e| report::print_event(&e),
    )
    .await?;
    if let Some(undone) = reconfigure::undone(&outcome, "not done") {
        return Err(Failure::Message(format!(
            "maintenance {what} is recorded in state, but the load balancer was not changed: {undone}; \
             run the command again (or `appgrid apply`)"
        )));
    }
    outln!("Maintenance {what}.");
    Ok(ExitCode::SUCCESS)
}
