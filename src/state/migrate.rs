//! `appgrid state migrate`: move an app's state between the local file and
//! S3 (either way), keeping its lineage and serial.
//!
//! Both locks are held throughout. The copy is created only where no state
//! is (an existing state at the destination is never overwritten); then the
//! source is marked moved (`.moved`, naming the destination) and its state
//! kept as the backup of its serial, so a later run against the old place
//! stops with [`StateError::Moved`] instead of starting a second lineage.

use std::time::Duration;

use super::State;
use super::location::StateLocation;
use super::lock::LockError;
use super::s3_store::MovedMarker;
use super::store::StateError;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no state at {from}: nothing to migrate")]
    NoState { from: String },
    #[error("{from} and {to} are the same place")]
    Same { from: String, to: String },
    #[error(
        "{to} already holds a state (lineage {lineage}, serial {serial}); nothing was moved. \
         Migrate to another key, or remove that state first if it is an abandoned one"
    )]
    Occupied {
        to: String,
        lineage: String,
        serial: u64,
    },
}

/// Moves the state at `from` to `to`; returns it as it now is at `to`.
/// `now` (RFC 3339) is recorded in the moved note.
pub fn migrate(
    from: &StateLocation,
    to: &StateLocation,
    timeout: Duration,
    lease: Duration,
    now: &str,
) -> Result<State, MigrateError> {
    if from == to {
        return Err(MigrateError::Same {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    let from_lock = from.lock("state migrate", timeout, lease)?;
    let to_lock = to.lock("state migrate", timeout, lease)?;
    let source = from.store().fenced_by(&from_lock);
    let destination = to.store().fenced_by(&to_lock);
    let state = source.load()?.ok_or_else(|| MigrateError::NoState {
        from: from.to_string(),
    })?;
    match destination.load() {
        Ok(Some(existing)) => {
            return Err(MigrateError::Occupied {
                to: to.to_string(),
                lineage: existing.lineage,
                serial: existing.serial,
            });
        }
        // Moved away from there earlier: it may come back.
        Ok(None) | Err(StateError::Moved { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    destination.check_fence()?;
    destination.create_copy(&state)?;
    source.check_fence()?;
    let marker = MovedMarker {
        moved_to: to.to_string(),
        moved_at: now.to_string(),
        lineage: state.lineage.clone(),
        serial: state.serial,
    };
    source.mark_moved(&marker, &state)?;
    drop(to_lock);
    drop(from_lock);
    Ok(state)
}
