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
//! The store does no locking of its own; writers hold a
//! [`StateLock`](super::lock::StateLock) around load → change → save.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{STATE_VERSION, State};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateStore { path: path.into() }
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
        match self.read_current()? {
            None => Ok(None),
            Some((_, state)) => Ok(Some(state)),
        }
    }

    /// Writes `state` as serial `state.serial + 1`, atomically.
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
        // Refuse to replace a state file we cannot read or parse.
        let previous = self.read_current()?;

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
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
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
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Failed::before(&dir, source))?;

        if let Some((bytes, prev)) = previous {
            let backup = self.backup_path(prev.serial);
            write_atomic(&dir, &backup, bytes)
                .map_err(|(source, _)| Failed::before(&backup, source))?;
        }

        let mut json = serde_json::to_vec_pretty(state).map_err(|e| {
            Failed::before(&self.path, io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        json.push(b'\n');
        write_atomic(&dir, &self.path, &json).map_err(|(source, replaced)| Failed {
            error: StateError::Write {
                path: self.path.clone(),
                source,
            },
            replaced,
        })?;

        self.prune_backups();
        Ok(())
    }

    /// The directory holding the state file (`.` for a bare file name).
    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
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
fn parse_state(bytes: &[u8]) -> Result<State, String> {
    let state: State = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version != STATE_VERSION {
        return Err(format!(
            "unsupported state version {} (this appgrid reads version {STATE_VERSION})",
            state.version
        ));
    }
    Ok(state)
}

/// Writes `bytes` to `target` atomically: a 0600 temp file in `dir`, synced,
/// renamed over `target`, then `dir` synced. The temp file is removed on failure.
/// The error's flag says whether `target` had already been replaced.
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), (io::Error, bool)> {
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{base}.tmp.{}.{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err((e, false));
    }
    sync_dir(dir).map_err(|e| (e, true))
}

/// fsyncs a directory so a rename in it is durable. Filesystems that cannot
/// sync directories (EINVAL) are accepted.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
