use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::graph::{Group, ResourceAddress, ResourceSpec, spec::KeyPairSpec};
use crate::state::{ResourceState, State, new_lineage};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "appgrid-store-{name}-{}-{}-{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sample_state() -> State {
    let mut state = State::new("blog", new_lineage());
    state.resources.insert(
        ResourceAddress::KeyPair,
        ResourceState {
            spec: ResourceSpec::KeyPair(KeyPairSpec {
                name: "blog".into(),
                public_key_path: "~/.ssh/id_ed25519.pub".into(),
            }),
            id: "blog".into(),
            depends_on: vec![ResourceAddress::SecurityGroup(Group::Web)],
            attributes: [("status".to_string(), "available".to_string())].into(),
        },
    );
    state
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn backup_serials(dir: &Path) -> Vec<u64> {
    let mut serials: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("state.json.backup.")
                .map(|s| s.parse().unwrap())
        })
        .collect();
    serials.sort();
    serials
}

fn serde_detail(bytes: &[u8]) -> String {
    serde_json::from_slice::<State>(bytes)
        .unwrap_err()
        .to_string()
}

#[test]
fn default_path_is_next_to_the_manifest() {
    assert_eq!(
        default_path(Path::new("apps/blog/appgrid.toml"), "blog"),
        PathBuf::from("apps/blog/.appgrid/blog/state.json")
    );
    assert_eq!(
        default_path(Path::new("appgrid.toml"), "shop"),
        PathBuf::from(".appgrid/shop/state.json")
    );
}

#[test]
fn load_of_a_missing_file_is_none() {
    let tmp = TempDir::new("missing");
    let store = StateStore::new(tmp.path().join("nope/state.json"));
    assert_eq!(store.load().unwrap(), None);
}

#[test]
fn save_then_load_round_trips() {
    let tmp = TempDir::new("roundtrip");
    let store = StateStore::new(tmp.path().join(".appgrid/blog/state.json"));
    assert_eq!(store.path(), tmp.path().join(".appgrid/blog/state.json"));
    let mut state = sample_state();
    store.save(&mut state).unwrap();
    assert_eq!(store.load().unwrap(), Some(state.clone()));

    let text = fs::read_to_string(store.path()).unwrap();
    assert!(text.ends_with("}\n"), "ends with a newline: {text:?}");
    assert!(text.contains("\n  \"lineage\": "), "pretty-printed: {text}");
    assert_eq!(
        mode(&tmp.path().join(".appgrid/blog")),
        0o700,
        "created state dir is private"
    );
}

#[test]
fn each_save_increments_serial_by_exactly_one() {
    let tmp = TempDir::new("serial");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    assert_eq!(state.serial, 0);
    for expected in 1..=4 {
        store.save(&mut state).unwrap();
        assert_eq!(state.serial, expected);
        assert_eq!(store.load().unwrap().unwrap().serial, expected);
    }
}

#[test]
fn state_file_and_backups_are_mode_0600() {
    let tmp = TempDir::new("mode");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    store.save(&mut state).unwrap();
    store.save(&mut state).unwrap();
    assert_eq!(mode(store.path()), 0o600);
    let backup = tmp.path().join("state.json.backup.1");
    assert_eq!(mode(&backup), 0o600);
    // The backup holds the previous serial's content.
    let backed_up: State = serde_json::from_slice(&fs::read(&backup).unwrap()).unwrap();
    assert_eq!(backed_up.serial, 1);
}

#[test]
fn only_the_newest_five_backups_are_kept() {
    let tmp = TempDir::new("prune");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    for _ in 0..9 {
        store.save(&mut state).unwrap();
    }
    assert_eq!(state.serial, 9);
    assert_eq!(backup_serials(tmp.path()), vec![4, 5, 6, 7, 8]);
    // No temp files are left behind.
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn corrupt_state_names_the_newest_readable_backup() {
    let tmp = TempDir::new("corrupt");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    for _ in 0..4 {
        store.save(&mut state).unwrap();
    }
    let full = fs::read(store.path()).unwrap();
    let truncated = &full[..full.len() / 2];
    fs::write(store.path(), truncated).unwrap();

    let err = store.load().unwrap_err();
    let backup = tmp.path().join("state.json.backup.3");
    match &err {
        StateError::Corrupt {
            path,
            newest_readable_backup,
            ..
        } => {
            assert_eq!(path, store.path());
            assert_eq!(newest_readable_backup.as_deref(), Some(backup.as_path()));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "state file {} is corrupt: {}; the newest readable backup is {} (serial 3): \
             inspect it and copy it over the state file to restore",
            store.path().display(),
            serde_detail(truncated),
            backup.display()
        )
    );

    // Saving over it is refused, the file is untouched and the serial unchanged.
    let mut again = state.clone();
    let err = store.save(&mut again).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert_eq!(again.serial, state.serial);
    assert_eq!(fs::read(store.path()).unwrap(), truncated);
}

#[test]
fn corrupt_state_without_backups_says_so() {
    let tmp = TempDir::new("nobackup");
    let store = StateStore::new(tmp.path().join("state.json"));
    fs::write(store.path(), b"garbage\n").unwrap();
    let err = store.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "state file {} is corrupt: {}; no readable backup was found",
            store.path().display(),
            serde_detail(b"garbage\n"),
        )
    );
}

#[test]
fn wrong_version_is_corrupt() {
    let tmp = TempDir::new("version");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    state.version = 99;
    fs::write(store.path(), serde_json::to_vec(&state).unwrap()).unwrap();
    let err = store.load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "state file {} is corrupt: unsupported state version 99 (this appgrid reads version 1); \
             no readable backup was found",
            store.path().display(),
        )
    );
}

#[test]
fn garbled_newest_backup_is_skipped_for_the_next_readable_one() {
    let tmp = TempDir::new("garbled-backup");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    for _ in 0..4 {
        store.save(&mut state).unwrap();
    }
    // serial 4 on disk; backups 1, 2, 3. Garble backup 3, truncate the state.
    fs::write(
        tmp.path().join("state.json.backup.3"),
        b"{\"version\": 1, \"lin",
    )
    .unwrap();
    let full = fs::read(store.path()).unwrap();
    fs::write(store.path(), &full[..10]).unwrap();

    let err = store.load().unwrap_err();
    let backup = tmp.path().join("state.json.backup.2");
    assert_eq!(
        err.to_string(),
        format!(
            "state file {} is corrupt: {}; the newest readable backup is {} (serial 2): \
             inspect it and copy it over the state file to restore",
            store.path().display(),
            serde_detail(&full[..10]),
            backup.display()
        )
    );
}

#[test]
fn failed_save_when_parent_is_a_file_keeps_serial() {
    let tmp = TempDir::new("parent-file");
    let blocker = tmp.path().join("blocker");
    fs::write(&blocker, b"not a directory").unwrap();
    let store = StateStore::new(blocker.join("state.json"));
    let mut state = sample_state();
    // Looking for the previous state already fails (ENOTDIR): nothing is written.
    let err = store.save(&mut state).unwrap_err();
    match &err {
        StateError::Read { path, .. } => assert_eq!(path, store.path()),
        other => panic!("expected Read, got {other:?}"),
    }
    assert_eq!(state.serial, 0);
    assert_eq!(fs::read(&blocker).unwrap(), b"not a directory");
}

#[test]
fn failed_save_when_the_directory_cannot_be_created_keeps_serial() {
    let tmp = TempDir::new("parent-file-deep");
    // The state file's parent is a dangling symlink: the state reads as missing
    // (ENOENT), then creating the directory fails (EEXIST, not a directory).
    let link = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("missing/sub"), &link).unwrap();
    let store = StateStore::new(link.join("state.json"));
    let mut state = sample_state();
    let err = store.save(&mut state).unwrap_err();
    match &err {
        StateError::Write { path, .. } => assert_eq!(path, &link),
        other => panic!("expected Write, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("could not write {}: ", link.display())),
        "{err}"
    );
    assert_eq!(state.serial, 0);
    assert!(!tmp.path().join("missing").exists());
}

#[test]
fn failed_save_leaves_the_previous_state_file_intact() {
    let tmp = TempDir::new("failed-save");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut state = sample_state();
    store.save(&mut state).unwrap();
    let before = fs::read(store.path()).unwrap();

    // A non-empty directory where the backup of serial 1 must go: the rename fails.
    let obstacle = tmp.path().join("state.json.backup.1");
    fs::create_dir_all(obstacle.join("inside")).unwrap();

    state.resources.clear();
    let err = store.save(&mut state).unwrap_err();
    match &err {
        StateError::Write { path, .. } => assert_eq!(path, &obstacle),
        other => panic!("expected Write, got {other:?}"),
    }
    assert_eq!(state.serial, 1, "serial restored to match disk");
    assert_eq!(fs::read(store.path()).unwrap(), before);
    assert_eq!(store.load().unwrap().unwrap().serial, 1);

    // Once the obstacle is gone the same state saves as serial 2.
    fs::remove_dir_all(&obstacle).unwrap();
    store.save(&mut state).unwrap();
    assert_eq!(state.serial, 2);
    assert_eq!(store.load().unwrap(), Some(state));
}

#[test]
fn unreadable_state_path_is_a_read_error() {
    let tmp = TempDir::new("read-error");
    let store = StateStore::new(tmp.path().join("state.json"));
    fs::create_dir(store.path()).unwrap();
    let err = store.load().unwrap_err();
    assert!(
        matches!(&err, StateError::Read { path, .. } if path == store.path()),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "could not read state file {}: ",
            store.path().display()
        )),
        "{err}"
    );
}

#[test]
fn a_save_refuses_when_another_writer_moved_the_serial() {
    let tmp = TempDir::new("conflict");
    let store = StateStore::new(tmp.path().join("state.json"));
    let mut mine = sample_state();
    store.save(&mut mine).unwrap();
    // Another writer reads serial 1 and saves serial 2.
    let mut theirs = store.load().unwrap().unwrap();
    theirs.resources.clear();
    store.save(&mut theirs).unwrap();
    let on_disk = fs::read(store.path()).unwrap();

    let err = store.save(&mut mine).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Conflict {
                read: 1,
                on_disk: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mine.serial, 1, "nothing written, serial unchanged");
    assert_eq!(fs::read(store.path()).unwrap(), on_disk);
    assert_eq!(
        err.to_string(),
        format!(
            "state file {} changed underneath this run: it is at serial 2, this run read serial 1; \
             another appgrid wrote it meanwhile, so nothing was written. Run `appgrid plan` to see the state as it is now",
            store.path().display()
        )
    );
}

#[test]
fn a_fenced_save_writes_nothing_once_the_lock_is_lost() {
    use crate::state::lock::{self, LockHolder};
    let tmp = TempDir::new("fenced");
    let path = tmp.path().join("state.json");
    let held = lock::acquire(
        &path,
        "apply",
        std::time::Duration::ZERO,
        lock::DEFAULT_LEASE,
    )
    .unwrap();
    let store = StateStore::new(&path).fenced_by(&held);
    let mut state = sample_state();
    store.save(&mut state).unwrap();
    assert!(store.check_fence().is_ok());

    // Taken over from another host while this writer was paused.
    let thief = LockHolder {
        host: "elsewhere".into(),
        nonce: "other".into(),
        ..held.holder().clone()
    };
    fs::write(lock::lock_path(&path), serde_json::to_vec(&thief).unwrap()).unwrap();
    let before = fs::read(&path).unwrap();
    state.resources.clear();
    let err = store.save(&mut state).unwrap_err();
    assert!(matches!(err, StateError::LockLost(_)), "{err:?}");
    assert!(err.to_string().contains("it is held by pid"), "{err}");
    assert!(err.to_string().contains("on host elsewhere"), "{err}");
    assert_eq!(state.serial, 1);
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
    assert!(store.check_fence().is_err());
}
