//! State as an S3 object: the same contract as the file store
//! ([`super::store`]), with S3's conditional writes in place of rename.
//!
//! - A save reads the object and its ETag, refuses unless it holds the
//!   serial this writer read ([`StateError::Conflict`]), copies it to
//!   `KEY.backup.SERIAL`, and writes the new state with `If-Match` on that
//!   ETag (`If-None-Match: *` for the first): if anyone wrote in between,
//!   the write fails and nothing is changed. The newest
//!   [`BACKUPS_KEPT`](super::store::BACKUPS_KEPT) copies are kept (object
//!   versions too, where the bucket has versioning).
//! - A state moved elsewhere by `state migrate` leaves `KEY.moved` naming
//!   where it went; loading finds it and says so ([`StateError::Moved`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::State;
use super::location::S3Location;
use super::s3::{Object, S3Error, S3Objects, Write, Written};
use super::store::{BACKUPS_KEPT, StateError, parse_state};

/// The connected bucket of `location`, shared by every store and lock of
/// this process (one credential lookup and one HeadBucket per location).
/// A failure is not kept: the next call tries again.
pub fn objects(location: &S3Location) -> Result<S3Objects, S3Error> {
    if let Some(o) = connected().lock().expect("s3 cache").get(location) {
        return Ok(o.clone());
    }
    let o = S3Objects::connect(location)?;
    connected()
        .lock()
        .expect("s3 cache")
        .insert(location.clone(), o.clone());
    Ok(o)
}

fn connected() -> &'static Mutex<HashMap<S3Location, S3Objects>> {
    static CONNECTED: OnceLock<Mutex<HashMap<S3Location, S3Objects>>> = OnceLock::new();
    CONNECTED.get_or_init(Default::default)
}

/// Connects to `location` with static credentials (access key id, secret)
/// instead of the AWS chain, for every store and lock of it in this
/// process: for tests and embedders, which must not touch the environment.
pub fn connect_with_credentials(
    location: &S3Location,
    credentials: (String, String),
) -> Result<(), S3Error> {
    let o = S3Objects::connect_with(location, Some(credentials))?;
    connected()
        .lock()
        .expect("s3 cache")
        .insert(location.clone(), o);
    Ok(())
}

/// The note a moved state leaves behind (`state.json.moved`, `KEY.moved`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedMarker {
    pub moved_to: String,
    /// RFC 3339.
    pub moved_at: String,
    pub lineage: String,
    pub serial: u64,
}

impl MovedMarker {
    pub fn error(&self, from: String) -> StateError {
        StateError::Moved {
            from,
            to: self.moved_to.clone(),
            at: self.moved_at.clone(),
        }
    }
}

/// One state object.
#[derive(Debug, Clone)]
pub struct S3Store {
    location: Arc<S3Location>,
}

impl S3Store {
    pub fn new(location: S3Location) -> Self {
        S3Store {
            location: Arc::new(location),
        }
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// `s3://bucket/key`, as a path for the errors the file store shares.
    pub fn url_path(&self) -> PathBuf {
        PathBuf::from(self.location.to_string())
    }

    fn objects(&self) -> Result<S3Objects, StateError> {
        Ok(objects(&self.location)?)
    }

    /// The state object and its parse, or `None` when there is none (and no
    /// note says it moved).
    pub fn read(&self) -> Result<Option<(Object, State)>, StateError> {
        let objects = self.objects()?;
        let Some(object) = objects.get(&self.location.key)? else {
            if let Some(marker) = objects.get(&self.location.moved_key())?
                && let Ok(marker) = serde_json::from_slice::<MovedMarker>(&marker.bytes)
            {
                return Err(marker.error(self.location.to_string()));
            }
            return Ok(None);
        };
        match parse_state(&object.bytes) {
            Ok(state) => Ok(Some((object, state))),
            Err(detail) => Err(StateError::Corrupt {
                path: self.url_path(),
                detail,
                newest_readable_backup: self.newest_readable_backup(&objects),
            }),
        }
    }

    pub fn load(&self) -> Result<Option<State>, StateError> {
        Ok(self.read()?.map(|(_, s)| s))
    }

    /// Writes `state` as serial `state.serial + 1` if the object still holds
    /// `state.serial` (or is absent for serial 0), conditional on the ETag
    /// read here; see the module docs. On error `state.serial` is unchanged.
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        let objects = self.objects()?;
        let current = self.read()?;
        let on_remote = current.as_ref().map(|(_, s)| s.serial);
        if on_remote.unwrap_or(0) != state.serial {
            return Err(self.conflict(state.serial, on_remote));
        }
        let mut next = state.clone();
        next.serial += 1;
        let json = to_json(&next);
        let written = match &current {
            Some((object, previous)) => {
                objects.put(
                    &self.location.backup_key(previous.serial),
                    &object.bytes,
                    Write::Overwrite,
                )?;
                objects.put(&self.location.key, &json, Write::Replace(&object.etag))?
            }
            None => objects.put(&self.location.key, &json, Write::Create)?,
        };
        if written == Written::Precondition {
            let now = self.load().ok().flatten().map(|s| s.serial);
            return Err(self.conflict(state.serial, now));
        }
        state.serial = next.serial;
        // Best effort, as for files: the copy that fell out of the window.
        if let Some(old) = state.serial.checked_sub(BACKUPS_KEPT as u64 + 1) {
            let _ = objects.delete(&self.location.backup_key(old), None);
        }
        Ok(())
    }

    /// Writes `state` as it is (lineage and serial kept), only where no state
    /// is: the destination of `state migrate`. A `.moved` note left here by
    /// an earlier move is removed.
    pub fn create_copy(&self, state: &State) -> Result<(), StateError> {
        let objects = self.objects()?;
        match objects.put(&self.location.key, &to_json(state), Write::Create)? {
            Written::Done(_) => {
                let _ = objects.delete(&self.location.moved_key(), None);
                Ok(())
            }
            Written::Precondition => {
                Err(self.conflict(0, self.load().ok().flatten().map(|s| s.serial)))
            }
        }
    }

    /// Leaves the note that the state moved to `marker.moved_to`, then removes
    /// the state object, if it is still the version `expected` holds.
    pub fn mark_moved(&self, marker: &MovedMarker, expected: &State) -> Result<(), StateError> {
        let objects = self.objects()?;
        let Some((object, state)) = self.read()? else {
            return Err(self.conflict(expected.serial, None));
        };
        if state.serial != expected.serial || state.lineage != expected.lineage {
            return Err(self.conflict(expected.serial, Some(state.serial)));
        }
        let note = serde_json::to_vec_pretty(marker).expect("a marker serializes");
        objects.put(&self.location.moved_key(), &note, Write::Overwrite)?;
        objects.put(
            &self.location.backup_key(state.serial),
            &object.bytes,
            Write::Overwrite,
        )?;
        match objects.delete(&self.location.key, Some(&object.etag))? {
            Written::Done(_) => Ok(()),
            Written::Precondition => Err(self.conflict(expected.serial, None)),
        }
    }

    fn conflict(&self, read: u64, on_disk: Option<u64>) -> StateError {
        StateError::Conflict {
            path: self.url_path(),
            read,
            on_disk,
        }
    }

    /// The newest `KEY.backup.N` that parses as serial N.
    fn newest_readable_backup(&self, objects: &S3Objects) -> Option<PathBuf> {
        let prefix = format!("{}.backup.", self.location.key);
        let mut serials: Vec<u64> = objects
            .list(&prefix)
            .ok()?
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.parse().ok())
            .collect();
        serials.sort_unstable_by(|a, b| b.cmp(a));
        serials.into_iter().find_map(|n| {
            let key = self.location.backup_key(n);
            let object = objects.get(&key).ok()??;
            let state = parse_state(&object.bytes).ok()?;
            (state.serial == n)
                .then(|| PathBuf::from(format!("s3://{}/{key}", self.location.bucket)))
        })
    }
}

fn to_json(state: &State) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
    json.push(b'\n');
    json
}
