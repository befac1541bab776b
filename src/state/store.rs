//! The state file on disk: `<manifest dir>/.appgrid/<app>/state.json`.
//!
//! Writes are atomic and durable: the new state goes to a temp file in the
//! same directory (mode 0600), is synced, renamed over the state file, and the
//! directory is synced. Before the state file is replaced, its current content
//! is kept as `state.json.backup.<serial>` (mode 0600); the newest
//! [`BACKUPS_KEPT`] backups are kept, older ones are deleted.
//!
//! A state file that does not parse is never overwritten: [`StateStore::load`]
//! and [`StateStore::save`] refuse with [`StateError::Corrupt`], which names the
//! newest backup that actually parses, so a person can inspect and restore it.
//!
//! Writers hold a [`StateLock`](super::lock::StateLock) around load → change
//! → save, and every save is fenced: it writes only if the serial on disk is
//! the one this writer read (`state.serial`), and — for a store made
//! [`fenced_by`](StateStore::fenced_by) a lock — only while that lock still
//! names this writer ([`Fence::hold`]). Otherwise nothing is written and the
//! error says who changed the state or took the lock.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::location::StateLocation;
use super::lock::{Fence, LockError};
use super::s3_store::{MovedMarker, S3Store};
use super::{STATE_VERSION, State};
use crate::durable;

/// How many backups (`state.json.backup.<serial>`) are kept next to the state file.
pub const BACKUPS_KEPT: usize = 5;

/// Errors from reading or writing the state file. Each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "could not read state file {}: {source}; check that it is a regular file you may read",
        path.display()
    )]
    Read { path: PathBuf, source: io::Error },

    #[error(
        "could not write {}: {source}; check that the directory exists, is writable and has free space, then retry",
        path.display()
    )]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "state file {} is corrupt: {detail}; {}",
        path.display(),
        backup_advice(newest_readable_backup.as_deref())
    )]
    Corrupt {
        path: PathBuf,
        detail: String,
        newest_readable_backup: Option<PathBuf>,
    },

    #[error(
        "state file {} changed underneath this run: it is at serial {}, this run read serial {read}; \
         another appgrid wrote it meanwhile, so nothing was written. Run `appgrid plan` to see the state as it is now",
        path.display(),
        match on_disk { Some(s) => s.to_string(), None => "none (the file is gone)".to_string() }
    )]
    Conflict {
        path: PathBuf,
        read: u64,
        on_disk: Option<u64>,
    },

    #[error(transparent)]
    LockLost(#[from] LockError),

    #[error(
        "the state at {from} was moved to {to} at {at} (`appgrid state migrate`); point the \
         manifest's [state] at {to}, or pass --state {to}"
    )]
    Moved {
        from: String,
        to: String,
        at: String,
    },

    #[error(transparent)]
    Remote(#[from] super::s3::S3Error),
}

fn backup_advice(backup: Option<&Path>) -> String {
    match backup {
        Some(b) => {
            let serial = b
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once(".backup."))
                .map(|(_, s)| s)
                .unwrap_or("?");
            format!(
                "the newest readable backup is {} (serial {serial}): inspect it and copy it over the state file to restore",
                b.display()
            )
        }
        None => "no readable backup was found".to_string(),
    }
}

/// The default state path for an app: `<manifest dir>/.appgrid/<app>/state.json`.
pub fn default_path(manifest_path: &Path, app: &str) -> PathBuf {
    let dir = manifest_path.parent().unwrap_or(Path::new(""));
    dir.join(".appgrid").join(app).join("state.json")
}

/// Reads and writes one state file.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
    fence: Option<Fence>,
    /// Set for a state on S3 ([`StateStore::at`]); `path` is then its URL.
    remote: Option<S3Store>,
}

impl StateStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateStore {
            path: path.into(),
            fence: None,
            remote: None,
        }
    }

    /// The store of a state wherever it lives: a file, or an S3 object.
    pub fn at(location: &StateLocation) -> Self {
        match location {
            StateLocation::File(path) => Self::new(path),
            StateLocation::S3(s3) => {
                let remote = S3Store::new(s3.clone());
                StateStore {
                    path: remote.url_path(),
                    fence: None,
                    remote: Some(remote),
                }
            }
        }
    }

    /// Every save checks first that `lock` still holds the state lock.
    pub fn fenced_by(mut self, lock: &super::lock::StateLock) -> Self {
        self.fence = Some(lock.fence());
        self
    }

    /// Whether this store may still write: its lock (if any) is not known lost.
    pub fn check_fence(&self) -> Result<(), StateError> {
        match &self.fence {
            Some(f) => f.hold().map(drop).map_err(StateError::from),
            None => Ok(()),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state, or `Ok(None)` when there is no state file yet.
    ///
    /// A file that does not parse as a [`State`] of [`STATE_VERSION`] is
    /// [`StateError::Corrupt`], naming the newest backup that does parse.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        if let Some(remote) = &self.remote {
            return remote.load();
        }
        match self.read_current()? {
            None => Ok(None),
            Some((_, state)) => Ok(Some(state)),
        }
    }

    /// Writes `state` as serial `state.serial + 1`, atomically, if the file
    /// on disk is still at `state.serial` (or absent for serial 0) and the
    /// store's lock, if any, is still held ([`StateError::Conflict`],
    /// [`StateError::LockLost`]: nothing written).
    ///
    /// On success `state.serial` is the serial now on disk. On error the state
    /// file is left as it was and `state.serial` is unchanged — with one
    /// exception: if the new file was renamed into place but syncing the
    /// directory then failed, the error is returned and `state.serial` keeps
    /// the new value, which is what the file holds. A state file that is
    /// corrupt is not replaced ([`StateError::Corrupt`]).
    ///
    /// Deleting backups beyond the newest [`BACKUPS_KEPT`] is best effort: a
    /// backup that cannot be deleted does not fail the save.
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        // Held until the write is done: a takeover waits for it.
        let _fence = match &self.fence {
            Some(f) => Some(f.hold()?),
            None => None,
        };
        if let Some(remote) = &self.remote {
            return remote.save(state);
        }
        // Refuse to replace a state file we cannot read or parse.
        let previous = self.read_current()?;
        let on_disk = previous.as_ref().map(|(_, s)| s.serial);
        if on_disk.unwrap_or(0) != state.serial {
            return Err(StateError::Conflict {
                path: self.path.clone(),
                read: state.serial,
                on_disk,
            });
        }

        state.serial += 1;
        let previous = previous.as_ref().map(|(bytes, s)| (&bytes[..], s));
        match self.write_new(state, previous) {
            Ok(()) => Ok(()),
            Err(Failed { error, replaced }) => {
                if !replaced {
                    state.serial -= 1;
                }
                Err(error)
            }
        }
    }

    /// Reads and parses the state file: `(raw bytes, state)`, or `None` if absent.
    fn read_current(&self) -> Result<Option<(Vec<u8>, State)>, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return match self.moved_marker() {
                    Some(marker) => Err(marker.error(self.path.display().to_string())),
                    None => Ok(None),
                };
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        match parse_state(&bytes) {
            Ok(state) => Ok(Some((bytes, state))),
            Err(detail) => Err(StateError::Corrupt {
                path: self.path.clone(),
                detail,
                newest_readable_backup: self.newest_readable_backup(),
            }),
        }
    }

    fn write_new(&self, state: &State, previous: Option<(&[u8], &State)>) -> Result<(), Failed> {
        let dir = self.dir();
        durable::ensure_dir(&dir, 0o700).map_err(|source| Failed::before(&dir, source))?;

        if let Some((bytes, prev)) = previous {
            let backup = self.backup_path(prev.serial);
            durable::replace(&backup, bytes, 0o600)
                .map_err(|e| Failed::before(&backup, e.source))?;
        }

        let mut json = serde_json::to_vec_pretty(state).map_err(|e| {
            Failed::before(&self.path, io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        json.push(b'\n');
        durable::replace(&self.path, &json, 0o600).map_err(|e| Failed {
            error: StateError::Write {
                path: self.path.clone(),
                source: e.source,
            },
            replaced: e.replaced,
        })?;

        self.prune_backups();
        Ok(())
    }

    /// `state.json.moved`, the note `state migrate` leaves.
    fn moved_path(&self) -> PathBuf {
        durable::suffixed(&self.path, ".moved")
    }

    fn moved_marker(&self) -> Option<MovedMarker> {
        let bytes = fs::read(self.moved_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes `state` as it is (lineage and serial kept), only where there is
    /// no state yet: the destination of `state migrate`. Removes a `.moved`
    /// note an earlier move left here.
    pub fn create_copy(&self, state: &State) -> Result<(), StateError> {
        if let Some(remote) = &self.remote {
            return remote.create_copy(state);
        }
        match self.read_current() {
            Ok(Some((_, existing))) => {
                return Err(StateError::Conflict {
                    path: self.path.clone(),
                    read: 0,
                    on_disk: Some(existing.serial),
                });
            }
            // Moved away earlier: it may come back.
            Ok(None) | Err(StateError::Moved { .. }) => {}
            Err(e) => return Err(e),
        }
        let dir = self.dir();
        durable::ensure_dir(&dir, 0o700).map_err(|source| StateError::Write {
            path: dir.clone(),
            source,
        })?;
        let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
        json.push(b'\n');
        let created =
            durable::create_new(&self.path, &json, 0o600).map_err(|source| StateError::Write {
                path: self.path.clone(),
                source,
            })?;
        if !created {
            return Err(StateError::Conflict {
                path: self.path.clone(),
                read: 0,
                on_disk: self.load().ok().flatten().map(|s| s.serial),
            });
        }
        let _ = fs::remove_file(self.moved_path());
        Ok(())
    }

    /// Leaves `marker` (where the state went) and moves the state file aside
    /// as the backup of its serial, if it still holds `expected`.
    pub fn mark_moved(&self, marker: &MovedMarker, expected: &State) -> Result<(), StateError> {
        if let Some(remote) = &self.remote {
            return remote.mark_moved(marker, expected);
        }
        let Some((bytes, state)) = self.read_current()? else {
            return Err(StateError::Conflict {
                path: self.path.clone(),
                read: expected.serial,
                on_disk: None,
            });
        };
        if state.serial != expected.serial || state.lineage != expected.lineage {
            return Err(StateError::Conflict {
                path: self.path.clone(),
                read: expected.serial,
                on_disk: Some(state.serial),
            });
        }
        let write_err = |path: &Path, source| StateError::Write {
            path: path.to_path_buf(),
            source,
        };
        let note = serde_json::to_vec_pretty(marker).expect("a marker serializes");
        let moved = self.moved_path();
        durable::replace(&moved, &note, 0o600).map_err(|e| write_err(&moved, e.source))?;
        let backup = self.backup_path(state.serial);
        durable::replace(&backup, &bytes, 0o600).map_err(|e| write_err(&backup, e.source))?;
        fs::remove_file(&self.path).map_err(|e| write_err(&self.path, e))?;
        durable::sync_dir(&self.dir()).map_err(|e| write_err(&self.dir(), e))?;
        Ok(())
    }

    /// The directory holding the state file (`.` for a bare file name).
    fn dir(&self) -> PathBuf {
        durable::parent_dir(&self.path)
    }

    fn file_name(&self) -> OsString {
        self.path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| OsString::from("state.json"))
    }

    fn backup_path(&self, serial: u64) -> PathBuf {
        let mut name = self.file_name();
        name.push(format!(".backup.{serial}"));
        self.dir().join(name)
    }

    /// Existing backups as `(serial, path)`, newest serial first.
    fn backups(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return Vec::new();
        };
        let mut prefix = self.file_name();
        prefix.push(".backup.");
        let prefix = prefix.to_string_lossy().into_owned();
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                let digits = name.strip_prefix(&prefix)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((digits.parse().ok()?, e.path()))
            })
            .collect();
        found.sort_by_key(|b| std::cmp::Reverse(b.0));
        found
    }

    /// The newest backup that parses as a state whose serial matches its name.
    fn newest_readable_backup(&self) -> Option<PathBuf> {
        self.backups().into_iter().find_map(|(serial, path)| {
            let bytes = fs::read(&path).ok()?;
            let state = parse_state(&bytes).ok()?;
            (state.serial == serial).then_some(path)
        })
    }

    fn prune_backups(&self) {
        for (_, path) in self.backups().into_iter().skip(BACKUPS_KEPT) {
            let _ = fs::remove_file(path);
        }
    }
}

/// A failed write, and whether the state file had already been replaced.
struct Failed {
    error: StateError,
    replaced: bool,
}

impl Failed {
    fn before(path: &Path, source: io::Error) -> Self {
        Failed {
            error: StateError::Write {
                path: path.to_path_buf(),
                source,
            },
            replaced: false,
        }
    }
}

/// Parses a state file's bytes; the error is a one-line detail for [`StateError::Corrupt`].
pub(super) fn parse_state(bytes: &[u8]) -> Result<State, String> {
    let state: State = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version != STATE_VERSION {
        return Err(format!(
            "unsupported state version {} (this appgrid reads version {STATE_VERSION})",
            state.version
        ));
    }
    Ok(state)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
