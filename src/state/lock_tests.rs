use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "appgrid-lock-{name}-{}-{}-{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const LEASE: Duration = Duration::from_secs(60);

fn holder(pid: u32, host: &str, acquired_at: u64, lease_until: u64) -> LockHolder {
    LockHolder {
        pid,
        host: host.to_string(),
        operation: "apply".to_string(),
        acquired_at,
        lease_until,
        nonce: "feedface".to_string(),
        pid_started: None,
        user: None,
    }
}

fn write_holder(state: &Path, h: &LockHolder) {
    fs::write(lock_path(state), serde_json::to_vec(h).unwrap()).unwrap();
}

fn read_holder(state: &Path) -> LockHolder {
    serde_json::from_slice(&fs::read(lock_path(state)).unwrap()).unwrap()
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Polls `cond` for up to 20 s; the result tells whether it became true.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[test]
fn acquire_writes_a_private_lock_file_naming_us() {
    let tmp = TempDir::new("basic");
    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    let path = lock_path(&tmp.state());
    assert_eq!(lock.path(), path);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let on_disk = read_holder(&tmp.state());
    assert_eq!(&on_disk, lock.holder());
    assert_eq!(on_disk.pid, std::process::id());
    assert_eq!(on_disk.host, hostname());
    assert_eq!(on_disk.operation, "apply");
    assert_eq!(on_disk.lease_until, on_disk.acquired_at + 60);
    assert_eq!(lock.taken_over_from, None);
    assert_eq!(lock.takeover_note(), None);
    assert!(lock.still_held());
}

#[test]
fn acquire_creates_the_state_directory() {
    let tmp = TempDir::new("mkdir");
    let state = tmp.0.join(".appgrid/blog/state.json");
    let _lock = acquire(&state, "plan", Duration::ZERO, LEASE).unwrap();
    assert!(lock_path(&state).is_file());
    assert_eq!(
        fs::metadata(tmp.0.join(".appgrid/blog"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn second_acquire_times_out_naming_the_holder() {
    let tmp = TempDir::new("held");
    let first = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    let err = acquire(&tmp.state(), "plan", Duration::from_millis(300), LEASE).unwrap_err();
    match &err {
        LockError::Held { path, holder, .. } => {
            assert_eq!(path, &lock_path(&tmp.state()));
            assert_eq!(&**holder, first.holder());
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let h = first.holder();
    assert_eq!(
        err.to_string(),
        format!(
            "state is locked by pid {} on host {} (apply, since {}); waited 300ms. \
             Wait for it to finish, or if you are sure it is gone, delete {}",
            std::process::id(),
            hostname(),
            format_rfc3339(h.acquired_at),
            lock_path(&tmp.state()).display()
        )
    );
    // The holder's lock is untouched.
    assert_eq!(&read_holder(&tmp.state()), first.holder());
}

#[test]
fn held_message_matches_the_documented_example() {
    let err = LockError::Held {
        path: PathBuf::from(".appgrid/blog/state.json.lock"),
        holder: Box::new(holder(4242, "ci-1", 1_795_909_801, 1_795_909_861)),
        waited: Duration::from_secs(5),
    };
    assert_eq!(
        err.to_string(),
        "state is locked by pid 4242 on host ci-1 (apply, since 2026-11-28T23:50:01Z); waited 5s. \
         Wait for it to finish, or if you are sure it is gone, delete .appgrid/blog/state.json.lock"
    );
}

#[test]
fn lock_of_a_dead_pid_on_this_host_is_taken_over() {
    let tmp = TempDir::new("dead");
    let now = unix_now();
    let dead = holder(dead_pid(), &hostname(), now - 5, now + 3600);
    write_holder(&tmp.state(), &dead);

    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    assert_eq!(lock.taken_over_from.as_ref(), Some(&dead));
    assert_eq!(lock.takeover_reason(), Some(&TakeoverReason::NotRunning));
    assert_eq!(
        lock.takeover_note().unwrap(),
        format!(
            "took over the state lock from pid {} on host {} (apply, since {}), which is no longer running",
            dead.pid,
            dead.host,
            format_rfc3339(dead.acquired_at)
        )
    );
    assert_eq!(&read_holder(&tmp.state()), lock.holder());
}

/// A clock that jumps forward makes every lease look expired: a live
/// process on this host keeps its lock all the same (issue 10).
#[test]
fn a_live_pid_on_this_host_is_never_taken_over_even_past_its_lease() {
    let tmp = TempDir::new("live-expired");
    let now = unix_now();
    let mut live = holder(std::process::id(), &hostname(), now - 7200, now - 3600);
    live.pid_started = process_started(std::process::id());
    write_holder(&tmp.state(), &live);
    let err = acquire(&tmp.state(), "apply", Duration::from_millis(300), LEASE).unwrap_err();
    assert!(
        matches!(&err, LockError::Held { holder, .. } if **holder == live),
        "{err:?}"
    );
    assert_eq!(read_holder(&tmp.state()), live);
}

/// A pid that is running but started after the holder did is another
/// process that reused the number: the holder is gone.
#[test]
fn a_reused_pid_on_this_host_is_taken_over() {
    let tmp = TempDir::new("reused");
    let now = unix_now();
    let mut reused = holder(std::process::id(), &hostname(), now, now + 3600);
    reused.pid_started = process_started(std::process::id()).map(|t| t.wrapping_sub(1));
    assert!(reused.pid_started.is_some(), "/proc is readable");
    write_holder(&tmp.state(), &reused);
    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    assert_eq!(lock.takeover_reason(), Some(&TakeoverReason::NotRunning));
}

#[test]
fn the_fence_holds_while_ours_and_names_whoever_took_the_lock() {
    let tmp = TempDir::new("fence");
    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    let fence = lock.fence();
    drop(fence.hold().unwrap());
    assert!(!fence.is_lost());

    let now = unix_now();
    let other = holder(4242, "ci-2", now, now + 60);
    write_holder(&tmp.state(), &other);
    let err = fence.hold().unwrap_err();
    assert!(
        matches!(&err, LockError::Lost { now: Some(h), .. } if **h == other),
        "{err:?}"
    );
    assert!(fence.is_lost());
    assert!(!lock.still_held());
    assert_eq!(
        err.to_string(),
        format!(
            "this run no longer holds the state lock {}: it is held by pid 4242 on host ci-2 (apply, since {}); \
             nothing was written. Its lease ran out (was the process paused or the machine suspended?). \
             Run `appgrid plan` to see what the state says now",
            lock_path(&tmp.state()).display(),
            format_rfc3339(now)
        )
    );
    fs::remove_file(lock_path(&tmp.state())).unwrap();
    assert!(matches!(
        fence.hold(),
        Err(LockError::Lost { now: None, .. })
    ));
}

#[test]
fn dead_pid_on_another_host_is_not_taken_over_before_its_lease_ends() {
    let tmp = TempDir::new("dead-elsewhere");
    let now = unix_now();
    let other = holder(dead_pid(), "some-other-host.invalid", now, now + 3600);
    write_holder(&tmp.state(), &other);
    let err = acquire(&tmp.state(), "apply", Duration::from_millis(300), LEASE).unwrap_err();
    assert!(
        matches!(&err, LockError::Held { holder, .. } if **holder == other),
        "{err:?}"
    );
    assert_eq!(read_holder(&tmp.state()), other);
}

#[test]
fn expired_lease_is_taken_over() {
    let tmp = TempDir::new("expired");
    let now = unix_now();
    // A live pid (ours) on another host, whose lease ran out 10 s ago.
    let expired = holder(std::process::id(), "ci-1", now - 70, now - 10);
    write_holder(&tmp.state(), &expired);

    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    assert_eq!(lock.taken_over_from.as_ref(), Some(&expired));
    assert_eq!(lock.takeover_reason(), Some(&TakeoverReason::LeaseExpired));
    assert_eq!(
        lock.takeover_note().unwrap(),
        format!(
            "took over the state lock from pid {} on host ci-1 (apply, since {}), whose lease expired at {}",
            expired.pid,
            format_rfc3339(expired.acquired_at),
            format_rfc3339(expired.lease_until)
        )
    );
}

#[test]
fn fresh_garbled_lock_is_held_and_an_old_one_is_taken_over() {
    let tmp = TempDir::new("garbled");
    let path = lock_path(&tmp.state());
    fs::write(&path, b"{\"pid\": 12").unwrap();
    let detail = serde_json::from_slice::<LockHolder>(b"{\"pid\": 12")
        .unwrap_err()
        .to_string();

    let err = acquire(
        &tmp.state(),
        "apply",
        Duration::from_millis(200),
        Duration::from_secs(30),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "state lock {} exists but cannot be read ({detail}); waited 200ms. It will be taken over \
             once it has not been modified for the lease (30s); if you are sure no appgrid is running, \
             delete {}",
            path.display(),
            path.display()
        )
    );

    let old = SystemTime::now() - Duration::from_secs(31);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let lock = acquire(
        &tmp.state(),
        "apply",
        Duration::ZERO,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(lock.taken_over_from, None);
    assert_eq!(
        lock.takeover_reason(),
        Some(&TakeoverReason::Unreadable {
            detail: detail.clone()
        })
    );
    assert_eq!(&read_holder(&tmp.state()), lock.holder());
}

#[test]
fn drop_and_release_remove_the_lock_file() {
    let tmp = TempDir::new("drop");
    let path = lock_path(&tmp.state());
    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    assert!(path.exists());
    drop(lock);
    assert!(!path.exists());

    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    assert!(path.exists());
    lock.release();
    assert!(!path.exists());
    // And it can be acquired again at once.
    acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
}

#[test]
fn drop_leaves_a_lock_someone_else_took_over() {
    let tmp = TempDir::new("not-ours");
    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE).unwrap();
    let now = unix_now();
    // Same pid, host and second, but another acquisition (nonce differs).
    let thief = LockHolder {
        nonce: "someone-else".into(),
        ..lock.holder().clone()
    };
    write_holder(&tmp.state(), &thief);
    drop(lock);
    assert_eq!(read_holder(&tmp.state()), thief);

    let other = holder(1, "ci-2", now, now + 60);
    write_holder(&tmp.state(), &other);
    let lock = acquire(&tmp.state(), "apply", Duration::ZERO, LEASE);
    assert!(lock.is_err(), "ci-2 holds it");
    assert_eq!(read_holder(&tmp.state()), other);
}

#[test]
fn the_lease_is_renewed_while_the_lock_is_held() {
    let tmp = TempDir::new("renew");
    let lock = acquire(
        &tmp.state(),
        "apply",
        Duration::ZERO,
        Duration::from_secs(2),
    )
    .unwrap();
    let first = lock.holder().lease_until;
    assert!(
        eventually(|| read_holder(&tmp.state()).lease_until > first),
        "lease_until never moved past {first}"
    );
    let renewed = read_holder(&tmp.state());
    assert!(renewed.same_acquisition(lock.holder()));
    assert_eq!(
        fs::metadata(lock_path(&tmp.state()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(lock.still_held());
}

#[test]
fn renewal_notices_a_takeover_and_stops() {
    let tmp = TempDir::new("lost");
    let lock = acquire(
        &tmp.state(),
        "apply",
        Duration::ZERO,
        Duration::from_millis(300),
    )
    .unwrap();
    let now = unix_now();
    let other = holder(1, "ci-2", now, now + 60);
    write_holder(&tmp.state(), &other);
    assert!(eventually(|| !lock.still_held()), "loss never noticed");
    assert_eq!(
        read_holder(&tmp.state()),
        other,
        "renewal did not overwrite it"
    );
    drop(lock);
    assert_eq!(read_holder(&tmp.state()), other);
}

/// Threads racing for one lock, which starts out held by a dead pid: exactly
/// one of them takes it over, and no two ever hold it at once.
#[test]
fn concurrent_acquirers_never_both_hold_the_lock() {
    let tmp = TempDir::new("race");
    let now = unix_now();
    write_holder(
        &tmp.state(),
        &holder(dead_pid(), &hostname(), now, now + 3600),
    );

    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let takeovers = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let state = tmp.state();
            let (inside, max_inside, takeovers, rounds) = (
                inside.clone(),
                max_inside.clone(),
                takeovers.clone(),
                rounds.clone(),
            );
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let lock = acquire(&state, "apply", Duration::from_secs(60), LEASE).unwrap();
                    if lock.taken_over_from.is_some() {
                        takeovers.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max_inside.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..20)));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    rounds.fetch_add(1, Ordering::SeqCst);
                    drop(lock);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(rounds.load(Ordering::SeqCst), 20);
    assert_eq!(max_inside.load(Ordering::SeqCst), 1);
    assert_eq!(takeovers.load(Ordering::SeqCst), 1);
    assert!(!lock_path(&tmp.state()).exists());
}

#[test]
fn rfc3339_known_dates() {
    assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(59), "1970-01-01T00:00:59Z");
    assert_eq!(format_rfc3339(86_399), "1970-01-01T23:59:59Z");
    assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(format_rfc3339(951_868_800), "2000-03-01T00:00:00Z");
    assert_eq!(format_rfc3339(1_000_000_000), "2001-09-09T01:46:40Z");
    assert_eq!(format_rfc3339(1_234_567_890), "2009-02-13T23:31:30Z");
    assert_eq!(format_rfc3339(1_709_208_000), "2024-02-29T12:00:00Z");
    assert_eq!(format_rfc3339(1_795_909_801), "2026-11-28T23:50:01Z");
    assert_eq!(format_rfc3339(1_796_082_601), "2026-11-30T23:50:01Z");
    assert_eq!(format_rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    assert_eq!(format_rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    // jiff's last instant (its range ends 9999-12-30T22:00:00Z).
    assert_eq!(format_rfc3339(253_402_207_200), "9999-12-30T22:00:00Z");
}

#[test]
fn durations_format_for_people() {
    assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
    assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    assert_eq!(format_duration(Duration::ZERO), "0ms");
}

/// Days since 1970-01-01 from a civil date (Hinnant's `days_from_civil`), the
/// inverse the formatter is checked against.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

proptest! {
    #[test]
    fn rfc3339_parses_back_to_the_same_instant(secs in 0u64..=253_402_207_200) {
        let s = format_rfc3339(secs);
        prop_assert_eq!(s.len(), 20, "{}", s);
        let n = |r: std::ops::Range<usize>| s[r].parse::<u64>().unwrap();
        prop_assert_eq!(&s[4..5], "-");
        prop_assert_eq!(&s[10..11], "T");
        prop_assert_eq!(&s[19..], "Z");
        let days = days_from_civil(n(0..4) as i64, n(5..7) as u32, n(8..10) as u32);
        let back = days as u64 * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
        prop_assert_eq!(back, secs);
        prop_assert!(n(11..13) < 24 && n(14..16) < 60 && n(17..19) < 60);
    }
}
