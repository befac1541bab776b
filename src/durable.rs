//! Files appgrid writes: one way to replace a file, one way to create one
//! that must not exist yet, one way to hold a file lock.
//!
//! Every file appgrid keeps (state and its backups, the state lock, the
//! `local`/`hosts` registries, the autoscale record, plans) is written by
//! [`replace`] or [`create_new`]: the bytes go to a temp file in the target's
//! directory, created with the final mode (so a secret is never readable by
//! others, not even for a moment), fsynced, renamed (or, for `create_new`,
//! hard-linked) into place, and the directory is fsynced so the rename
//! survives a power cut. A reader sees the old file or the new one, never a
//! torn one; a crash leaves at most a `.NAME.*.tmp` file beside it.
//!
//! Read-modify-write cycles are serialized with [`FileLock`], an exclusive
//! `flock` on a sidecar file that is never removed (removing it would let two
//! processes lock two different inodes of the same name).
//!
//! `tempfile` owns temp names and cleanup; `rustix` owns `flock` — no
//! `unsafe` here.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A failed write, and whether the target had already been replaced (the
/// rename happened, syncing the directory then failed).
#[derive(Debug)]
pub struct WriteError {
    pub source: io::Error,
    pub replaced: bool,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        e.source
    }
}

fn before(source: io::Error) -> WriteError {
    WriteError {
        source,
        replaced: false,
    }
}

/// The directory a file lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and its missing parents with `mode` (existing ones are left as they are).
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// A synced temp file holding `bytes`, beside `path`, created with `mode`.
fn staged(path: &Path, bytes: &[u8], mode: u32) -> io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(&dir)?;
    // The umask may have removed bits the caller asked for.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Replaces `path` with `bytes` (mode `mode`), atomically and durably.
/// On error before the rename the target is untouched and the temp file removed.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let tmp = staged(path, bytes, mode).map_err(before)?;
    tmp.persist(path).map_err(|e| before(e.error))?;
    sync_dir(&parent_dir(path)).map_err(|source| WriteError {
        source,
        replaced: true,
    })
}

/// Creates `path` holding `bytes` (mode `mode`) only if nothing is there:
/// `Ok(false)` when it already exists. The file appears whole or not at all
/// (a hard link of a synced temp file), so a reader never sees it empty.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    let tmp = staged(path, bytes, mode)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e.error),
    }
    sync_dir(&parent_dir(path))?;
    Ok(true)
}

/// fsyncs a directory so a rename in it is durable. Filesystems that cannot
/// sync directories (EINVAL) are accepted.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// An exclusive `flock` on a sidecar file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for an exclusive lock on `path` (created 0600 if missing; its
    /// directory must exist). Blocks the calling thread.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        let file = open_lock_file(path)?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The lock if nobody holds it now, else `None`.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// `path` with `suffix` appended to its file name (`state.json` → `state.json.lock`).
pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn replace_writes_whole_files_with_the_mode_asked_for() {
        let d = dir();
        let path = d.path().join("state.json");
        replace(&path, b"one", 0o600).unwrap();
        replace(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        replace(&path, b"three", 0o644).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn a_failed_replace_leaves_the_target_and_no_temp_file() {
        let d = dir();
        let path = d.path().join("f");
        replace(&path, b"kept", 0o600).unwrap();
        // A directory in the way of the rename.
        let blocked = d.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        let e = replace(&blocked, b"new", 0o600).unwrap_err();
        assert!(!e.replaced);
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn create_new_never_clobbers_and_one_of_many_racers_wins() {
        let d = dir();
        let path = Arc::new(d.path().join("lock"));
        let barrier = Arc::new(Barrier::new(8));
        let winners: Vec<bool> = (0..8u8)
            .map(|i| {
                let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    create_new(&path, &[i], 0o600).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(winners.iter().filter(|w| **w).count(), 1);
        let winner = winners.iter().position(|w| *w).unwrap() as u8;
        assert_eq!(std::fs::read(&*path).unwrap(), vec![winner]);
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn file_locks_exclude_each_other() {
        let d = dir();
        let path = d.path().join("x.lock");
        let held = FileLock::exclusive(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
    }
}
