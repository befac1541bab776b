//! The state lock: one writer at a time.
//!
//! The lock is a file next to the state, `<state path>.lock`, created with
//! `O_EXCL` (mode 0600) and holding a JSON [`LockHolder`]: who holds it (pid,
//! host), for what, since when, and until when its lease runs. While a
//! [`StateLock`] is alive a background thread renews the lease every third of
//! its length; dropping the lock stops the thread and removes the file — only
//! if the file still names this acquisition.
//!
//! A lock is taken over, never silently (see [`StateLock::takeover_note`]), when
//! - its holder is on this host and its process is no longer running (same
//!   pid and same start time), or
//! - its holder is on another host and its lease has expired (the holder
//!   stopped renewing: crashed, or paused), or
//! - it cannot be parsed and has not been modified for a whole lease.
//!
//! A live process on this host is never taken over, whatever its lease says:
//! a clock that jumps forward must not hand its lock to someone else.
//!
//! Fencing: a holder can lose its lock (paused past its lease, then taken
//! over from another host). [`Fence::hold`] checks, under the guard, that
//! the lock file still names this acquisition and keeps the guard while the
//! caller writes; every state write goes through it, so a holder that lost
//! the lock writes nothing.
//!
//! Every change to an existing lock file (takeover, renewal, release) and
//! every fenced state write happens under an `flock` on `<state path>.lock.guard`, a small file that is never
//! removed. That serializes takers with each other and with the holder, so two
//! processes that both find a dead holder cannot both end up holding the lock.
//! Creating a lock where none exists needs no guard: an exclusive create
//! ([`durable::create_new`]) decides.
//!
//! The caller chooses the lease; [`DEFAULT_LEASE`] (60 s) is the typical value.
//! Leases compare wall clocks (whole unix seconds), so hosts sharing a state
//! directory need clocks that agree to well within a lease.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::s3_lock::RemoteLock;
use crate::durable::{self, FileLock};

/// The typical lease: a holder that stops renewing for this long loses the lock.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Who holds the lock; the content of the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// What the holder is doing: `apply`, `autoscale`, …
    pub operation: String,
    /// Unix seconds.
    pub acquired_at: u64,
    /// Unix seconds; the holder renews it while it works.
    pub lease_until: u64,
    /// Random per acquisition, so two acquisitions by one pid in one second
    /// are told apart.
    #[serde(default)]
    pub nonce: String,
    /// When the holder's process started (clock ticks since boot, from
    /// `/proc/PID/stat`), so a pid reused by another process after the
    /// holder died is not mistaken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_started: Option<u64>,
    /// Who ran it (`$USER`): recorded by the S3 lock, whose holders may be
    /// anyone on the team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl LockHolder {
    /// `pid 4242 on host ci-1 (apply, since 2026-11-28T23:50:01Z)`
    /// (`pid 4242 on host ci-1 as alice (…)` when the user is recorded.)
    pub fn describe(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!(" as {u}"))
            .unwrap_or_default();
        format!(
            "pid {} on host {}{user} ({}, since {})",
            self.pid,
            self.host,
            self.operation,
            format_rfc3339(self.acquired_at)
        )
    }

    /// What `appgrid state unlock FILE LOCK_ID` names: the acquisition's nonce.
    pub fn lock_id(&self) -> &str {
        &self.nonce
    }

    /// Same acquisition: everything but the lease.
    pub(super) fn same_acquisition(&self, other: &LockHolder) -> bool {
        self.pid == other.pid
            && self.host == other.host
            && self.acquired_at == other.acquired_at
            && self.nonce == other.nonce
    }
}

/// Why a lock was taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeoverReason {
    /// The holder was on this host and its pid is not running.
    NotRunning,
    /// The holder's lease had expired.
    LeaseExpired,
    /// The lock file did not parse and had not been modified for a lease.
    Unreadable { detail: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "state is locked by {}; waited {}. Wait for it to finish, or if you are sure it is gone, delete {}",
        holder.describe(),
        format_duration(*waited),
        path.display()
    )]
    Held {
        path: PathBuf,
        holder: Box<LockHolder>,
        waited: Duration,
    },

    #[error(
        "state lock {} exists but cannot be read ({detail}); waited {}. It will be taken over once it \
         has not been modified for the lease ({}); if you are sure no appgrid is running, delete {}",
        path.display(),
        format_duration(*waited),
        format_duration(*lease),
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        detail: String,
        waited: Duration,
        lease: Duration,
    },

    #[error(
        "this run no longer holds the state lock {}: {}; nothing was written. Its lease ran out (was the process paused or the machine suspended?). Run `appgrid plan` to see what the state says now",
        path.display(),
        match now {
            Some(h) => format!("it is held by {}", h.describe()),
            None => "it was taken over and released since".to_string(),
        }
    )]
    Lost {
        path: PathBuf,
        now: Option<Box<LockHolder>>,
    },

    #[error(
        "state at {url} is locked by {} (lock ID {}, lease until {}); waited {}. Wait for it to \
         finish (--lock-timeout), or, if you are sure it is gone, `appgrid state unlock FILE {}`",
        holder.describe(),
        holder.lock_id(),
        format_rfc3339(holder.lease_until),
        format_duration(*waited),
        holder.lock_id()
    )]
    HeldRemote {
        url: String,
        holder: Box<LockHolder>,
        waited: Duration,
    },

    #[error(transparent)]
    Remote(#[from] super::s3::S3Error),

    #[error(
        "could not {action} state lock {}: {source}; check that its directory exists and is writable",
        path.display()
    )]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

/// The lock file for a state file: `<state path>.lock`.
pub fn lock_path(state_path: &Path) -> PathBuf {
    durable::suffixed(state_path, ".lock")
}

fn guard_path(state_path: &Path) -> PathBuf {
    suffixed(state_path, ".lock.guard")
}

use durable::suffixed;

/// A held state lock. Renews its lease while alive; released on drop.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    guard: PathBuf,
    holder: LockHolder,
    /// The holder this lock was taken over from, if it was taken over from a
    /// readable lock (see [`StateLock::takeover_note`] for the message).
    pub taken_over_from: Option<LockHolder>,
    takeover: Option<TakeoverReason>,
    lost: Arc<AtomicBool>,
    renewer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// The lock object, for a state on S3; `None`: the lock file at `path`.
    remote: Option<Arc<RemoteLock>>,
}

/// Acquires the state lock for `state_path`, waiting up to `timeout` for a live
/// holder to finish. `lease` is how long the lock stays valid without renewal
/// (typically [`DEFAULT_LEASE`]); it is renewed every `lease / 3`.
///
/// Creates the state's directory (0700) if it does not exist.
pub fn acquire(
    state_path: &Path,
    operation: &str,
    timeout: Duration,
    lease: Duration,
) -> Result<StateLock, LockError> {
    let path = lock_path(state_path);
    let guard = guard_path(state_path);
    durable::ensure_dir(&durable::parent_dir(&path), 0o700).map_err(|source| LockError::Io {
        path: path.clone(),
        action: "create the directory of",
        source,
    })?;
    let host = hostname();
    let lease_secs = lease_seconds(lease);
    let start = Instant::now();

    loop {
        let now = unix_now();
        let me = LockHolder {
            pid: std::process::id(),
            host: host.clone(),
            operation: operation.to_string(),
            acquired_at: now,
            lease_until: now + lease_secs,
            nonce: format!("{:016x}", fastrand::u64(..)),
            pid_started: process_started(std::process::id()),
            user: None,
        };
        if durable::create_new(&path, &holder_json(&me), 0o600).map_err(|source| LockError::Io {
            path: path.clone(),
            action: "create",
            source,
        })? {
            return Ok(StateLock::start(path, guard, me, None, lease));
        }

        let io_err = |action, source| LockError::Io {
            path: path.clone(),
            action,
            source,
        };
        let Some((bytes, modified)) = read_lock(&path).map_err(|e| io_err("read", e))? else {
            // Released between our create and our read: try again at once.
            continue;
        };
        let blocker = match serde_json::from_slice::<LockHolder>(&bytes) {
            Ok(holder) => match stale_reason(&holder, &host, now) {
                Some(reason) => {
                    if takeover(&guard, &path, &bytes, &me).map_err(|e| io_err("take over", e))? {
                        let mut lock = StateLock::start(path, guard, me, Some(reason), lease);
                        lock.taken_over_from = Some(holder);
                        return Ok(lock);
                    }
                    continue;
                }
                None => Err(holder),
            },
            Err(e) => {
                let idle = SystemTime::now()
                    .duration_since(modified)
                    .unwrap_or(Duration::ZERO);
                if idle > lease {
                    if takeover(&guard, &path, &bytes, &me).map_err(|e| io_err("take over", e))? {
                        let reason = TakeoverReason::Unreadable {
                            detail: e.to_string(),
                        };
                        return Ok(StateLock::start(path, guard, me, Some(reason), lease));
                    }
                    continue;
                }
                Ok(e.to_string())
            }
        };

        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(match blocker {
                Err(holder) => LockError::Held {
                    path,
                    holder: Box::new(holder),
                    waited: timeout,
                },
                Ok(detail) => LockError::Unreadable {
                    path,
                    detail,
                    waited: timeout,
                    lease,
                },
            });
        }
        let poll = Duration::from_millis(fastrand::u64(100..=250));
        std::thread::sleep(poll.min(timeout - elapsed));
    }
}

impl StateLock {
    fn start(
        path: PathBuf,
        guard: PathBuf,
        holder: LockHolder,
        takeover: Option<TakeoverReason>,
        lease: Duration,
    ) -> StateLock {
        let (renew_path, renew_guard) = (path.clone(), guard.clone());
        Self::run(
            path,
            guard,
            holder,
            takeover,
            lease,
            None,
            // An I/O error is retried at the next interval; the lease
            // leaves room for two misses.
            move |renewed| renew(&renew_guard, &renew_path, renewed).ok(),
        )
    }

    /// A lock held on S3 (see [`super::s3_lock`]); `url` names its object.
    pub(super) fn start_remote(
        url: String,
        holder: LockHolder,
        takeover: Option<TakeoverReason>,
        taken_over_from: Option<LockHolder>,
        lease: Duration,
        remote: RemoteLock,
    ) -> StateLock {
        let remote = Arc::new(remote);
        let renewer = Arc::clone(&remote);
        let mut lock = Self::run(
            PathBuf::from(url),
            PathBuf::new(),
            holder,
            takeover,
            lease,
            Some(remote),
            move |renewed| renewer.renew(renewed).ok(),
        );
        lock.taken_over_from = taken_over_from;
        lock
    }

    /// Starts the renewing thread: `renew` answers `Some(false)` once the
    /// lock is someone else's, `None` on an error worth retrying.
    fn run(
        path: PathBuf,
        guard: PathBuf,
        holder: LockHolder,
        takeover: Option<TakeoverReason>,
        lease: Duration,
        remote: Option<Arc<RemoteLock>>,
        renew: impl Fn(&LockHolder) -> Option<bool> + Send + 'static,
    ) -> StateLock {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let interval = (lease / 3).max(Duration::from_millis(10));
        let lease_secs = lease_seconds(lease);
        let thread = {
            let (holder, lost) = (holder.clone(), lost.clone());
            std::thread::Builder::new()
                .name("appgrid-state-lock".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval)
                    {
                        let renewed = LockHolder {
                            lease_until: unix_now() + lease_secs,
                            ..holder.clone()
                        };
                        if let Some(false) = renew(&renewed) {
                            lost.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                })
        };
        // If no thread can be spawned the lock still works; it just is not
        // renewed, and can be taken over once the lease runs out.
        let renewer = thread.ok().map(|t| (stop, t));
        StateLock {
            path,
            guard,
            holder,
            taken_over_from: None,
            takeover,
            lost,
            renewer,
            remote,
        }
    }

    /// The holder recorded in the lock file at acquisition (the lease in the
    /// file moves on as it is renewed).
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the lock was taken over, if it was.
    pub fn takeover_reason(&self) -> Option<&TakeoverReason> {
        self.takeover.as_ref()
    }

    /// A line for the CLI to print after `note: `, if the lock was taken over:
    /// `took over the state lock from pid 123 on host x (apply, since …), which is no longer running`.
    pub fn takeover_note(&self) -> Option<String> {
        let reason = self.takeover.as_ref()?;
        Some(match (reason, &self.taken_over_from) {
            (TakeoverReason::NotRunning, Some(h)) => format!(
                "took over the state lock from {}, which is no longer running",
                h.describe()
            ),
            (TakeoverReason::LeaseExpired, Some(h)) => format!(
                "took over the state lock from {}, whose lease expired at {}",
                h.describe(),
                format_rfc3339(h.lease_until)
            ),
            (TakeoverReason::Unreadable { detail }, _) => format!(
                "took over the state lock {}, which could not be read ({detail}) and had not been modified for a whole lease",
                self.path.display()
            ),
            (_, None) => format!("took over the state lock {}", self.path.display()),
        })
    }

    /// False once renewal found the lock file taken over by someone else
    /// (our lease ran out): stop writing state.
    pub fn still_held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
    }

    /// What a state write checks first: see [`Fence::hold`].
    pub fn fence(&self) -> Fence {
        Fence {
            path: self.path.clone(),
            guard: self.guard.clone(),
            holder: self.holder.clone(),
            lost: Arc::clone(&self.lost),
            remote: self.remote.clone(),
        }
    }

    /// Stops renewing and removes the lock file if it is still ours.
    pub fn release(self) {
        drop(self)
    }
}

/// The proof a writer checks before each state write: that its acquisition
/// of the state lock still holds it.
#[derive(Debug, Clone)]
pub struct Fence {
    path: PathBuf,
    guard: PathBuf,
    holder: LockHolder,
    lost: Arc<AtomicBool>,
    remote: Option<Arc<RemoteLock>>,
}

/// What [`Fence::hold`] keeps while a write goes on: the guard's `flock`
/// for a lock file (a takeover waits for it); nothing for S3, where the
/// write itself is conditional.
#[derive(Debug)]
pub struct FenceHeld(#[allow(dead_code)] Option<FileLock>);

impl Fence {
    /// Checks, under the guard, that the lock file still names this
    /// acquisition, and keeps the guard until the returned value is dropped:
    /// a takeover waits for the write that follows, and then reads what it
    /// wrote. [`LockError::Lost`] when the lock is gone or someone else's.
    pub fn hold(&self) -> Result<FenceHeld, LockError> {
        if let Some(remote) = &self.remote {
            let now = match remote.check(&self.holder)? {
                None => return Ok(FenceHeld(None)),
                Some(now) => now.map(Box::new),
            };
            self.lost.store(true, Ordering::SeqCst);
            return Err(LockError::Lost {
                path: self.path.clone(),
                now,
            });
        }
        let io_err = |action, source| LockError::Io {
            path: self.path.clone(),
            action,
            source,
        };
        let guard = lock_guard(&self.guard).map_err(|e| io_err("lock the guard of", e))?;
        let now = match read_lock(&self.path).map_err(|e| io_err("read", e))? {
            None => None,
            Some((bytes, _)) => match serde_json::from_slice::<LockHolder>(&bytes) {
                Ok(h) if h.same_acquisition(&self.holder) => return Ok(FenceHeld(Some(guard))),
                Ok(h) => Some(Box::new(h)),
                Err(_) => None,
            },
        };
        self.lost.store(true, Ordering::SeqCst);
        Err(LockError::Lost {
            path: self.path.clone(),
            now,
        })
    }

    /// False once a renewal or a write found the lock lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.renewer.take() {
            drop(stop);
            let _ = thread.join();
        }
        match &self.remote {
            Some(remote) => remote.release(),
            None => {
                let _ = remove_if_ours(&self.guard, &self.path, &self.holder);
            }
        }
    }
}

/// Whether `holder`'s lock may be taken over now. On this host the process
/// decides (alive: never, whatever the clock says); elsewhere the lease does.
fn stale_reason(holder: &LockHolder, host: &str, now: u64) -> Option<TakeoverReason> {
    if holder.host == host {
        (!holder_is_running(holder)).then_some(TakeoverReason::NotRunning)
    } else if now > holder.lease_until {
        Some(TakeoverReason::LeaseExpired)
    } else {
        None
    }
}

fn holder_json(holder: &LockHolder) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(holder).expect("a lock holder always serializes");
    json.push(b'\n');
    json
}

/// The lock file's bytes and mtime, or `None` if there is none.
fn read_lock(path: &Path) -> io::Result<Option<(Vec<u8>, SystemTime)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let modified = file.metadata()?.modified()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some((bytes, modified)))
}

fn lock_guard(guard: &Path) -> io::Result<FileLock> {
    FileLock::exclusive(guard)
}

/// Replaces the stale lock whose content was `seen` by ours. `Ok(false)` if the
/// lock changed meanwhile or another acquirer created one first.
fn takeover(guard: &Path, path: &Path, seen: &[u8], me: &LockHolder) -> io::Result<bool> {
    let _guard = lock_guard(guard)?;
    match read_lock(path)? {
        Some((bytes, _)) if bytes == seen => {}
        _ => return Ok(false),
    }
    // Replace in one rename: were the stale lock removed first, an unguarded
    // `create_new` could slip into the gap and win without the takeover being
    // recorded (seen under load in `concurrent_acquirers_never_both_hold_the_lock`).
    replace_lock(path, me)?;
    Ok(true)
}

/// Replaces the lock file with `holder`, atomically.
fn replace_lock(path: &Path, holder: &LockHolder) -> io::Result<()> {
    durable::replace(path, &holder_json(holder), 0o600).map_err(io::Error::from)
}

/// Rewrites the lock with a new lease if it is still ours; `Ok(false)` if not.
fn renew(guard: &Path, path: &Path, renewed: &LockHolder) -> io::Result<bool> {
    let _guard = lock_guard(guard)?;
    if !is_ours(path, renewed)? {
        return Ok(false);
    }
    replace_lock(path, renewed).map(|()| true)
}

fn is_ours(path: &Path, holder: &LockHolder) -> io::Result<bool> {
    Ok(match read_lock(path)? {
        Some((bytes, _)) => serde_json::from_slice::<LockHolder>(&bytes)
            .is_ok_and(|current| current.same_acquisition(holder)),
        None => false,
    })
}

fn remove_if_ours(guard: &Path, path: &Path, holder: &LockHolder) -> io::Result<()> {
    let _guard = lock_guard(guard)?;
    if is_ours(path, holder)? {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// The holder of the lock file of `state_path`, if it is locked and readable
/// (for `state unlock`).
pub fn current(state_path: &Path) -> Result<Option<LockHolder>, LockError> {
    let path = lock_path(state_path);
    let bytes = read_lock(&path).map_err(|source| LockError::Io {
        path: path.clone(),
        action: "read",
        source,
    })?;
    Ok(bytes.and_then(|(b, _)| serde_json::from_slice(&b).ok()))
}

/// Removes the lock file of `state_path` if it still names `holder`'s
/// acquisition (under the guard): `Ok(false)` if it changed meanwhile.
pub fn remove(state_path: &Path, holder: &LockHolder) -> Result<bool, LockError> {
    let path = lock_path(state_path);
    let guard = guard_path(state_path);
    let io_err = |source| LockError::Io {
        path: path.clone(),
        action: "remove",
        source,
    };
    let _guard = lock_guard(&guard).map_err(io_err)?;
    if !is_ours(&path, holder).map_err(io_err)? {
        return Ok(false);
    }
    fs::remove_file(&path).map_err(io_err)?;
    Ok(true)
}

/// Whether the holder's process (on this host) is still running: its pid
/// exists and, when the lock recorded it, started when the holder did.
fn holder_is_running(holder: &LockHolder) -> bool {
    if !pid_is_running(holder.pid) {
        return false;
    }
    match (holder.pid_started, process_started(holder.pid)) {
        (Some(recorded), Some(now)) => recorded == now,
        _ => true,
    }
}

/// Whether a process with this pid exists (on this host).
fn pid_is_running(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists, but belongs to someone else.
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/PID/stat`); `None` where there is no such file.
fn process_started(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// This machine's host name, or `unknown`.
pub fn hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lease in whole seconds, rounded up, at least 1.
pub(super) fn lease_seconds(lease: Duration) -> u64 {
    let secs = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
    secs.max(1)
}

/// `5s`, `300ms`, `1.5s`, `2m`.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Unix seconds as RFC 3339 UTC: `2026-11-28T23:50:01Z`.
pub fn format_rfc3339(unix_secs: u64) -> String {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| format!("@{unix_secs}"), |t| t.to_string())
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
