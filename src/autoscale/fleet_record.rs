//! Where an app's autoscaler is installed, and its last heartbeat, kept
//! beside the state (issue 12) so every teammate who can read the state
//! sees them:
//!
//! - `KEY.autoscaler.json` (`state.json.autoscaler.json` beside a state
//!   file): the [`Installed`] record `autoscale install` writes and
//!   `autoscale uninstall` removes. A second install on another machine
//!   reads it and is refused ([`InstallRefused`]); its write is conditional
//!   on the version read before the install, so of two installs racing on
//!   two machines one is undone.
//! - `KEY.autoscaler-heartbeat.json` (state on S3 only): the runner's
//!   [`Heartbeat`] after every pass, a plain put (no secrets: times, counts,
//!   the last pass's entry or why it failed). `autoscale status` reads it
//!   first and falls back to `heartbeat.json` on the runner's machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::fleet::{Heartbeat, Installed};
use crate::state::location::{S3Location, StateLocation};
use crate::state::s3::{S3Error, Write, Written};
use crate::state::s3_store::objects;

/// Where the records of one app's state are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordPlace {
    /// Files beside the state file: the install record only (the runner
    /// of a file state is on this machine, its heartbeat in its directory).
    File { installed: PathBuf },
    S3 {
        location: S3Location,
        installed: String,
        heartbeat: String,
    },
}

impl RecordPlace {
    pub fn of(state: &StateLocation) -> RecordPlace {
        match state {
            StateLocation::File(path) => RecordPlace::File {
                installed: crate::durable::suffixed(path, ".autoscaler.json"),
            },
            StateLocation::S3(s3) => RecordPlace::S3 {
                installed: format!("{}.autoscaler.json", s3.key),
                heartbeat: format!("{}.autoscaler-heartbeat.json", s3.key),
                location: s3.clone(),
            },
        }
    }
}

impl std::fmt::Display for RecordPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordPlace::File { installed } => write!(f, "{}", installed.display()),
            RecordPlace::S3 {
                location,
                installed,
                ..
            } => write!(f, "s3://{}/{installed}", location.bucket),
        }
    }
}

/// The runner's heartbeat as published beside an S3 state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedBeat {
    /// The machine it runs on (`lb`…), from its `installed.json`.
    pub on: String,
    pub heartbeat: Heartbeat,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error(
        "{at} is not a readable autoscaler record ({detail}); remove it if no autoscaler of \
         the app is installed, then retry"
    )]
    Unreadable { at: String, detail: String },
}

/// The install record and its version (an ETag, or the file's SHA-256), or
/// `None` when there is none.
pub fn read_installed(place: &RecordPlace) -> Result<Option<(Installed, String)>, RecordError> {
    let (bytes, version) = match place {
        RecordPlace::File { installed } => match std::fs::read(installed) {
            Ok(bytes) => {
                let version = crate::hash::sha256_hex(&bytes);
                (bytes, version)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(RecordError::File {
                    path: installed.display().to_string(),
                    detail: e.to_string(),
                });
            }
        },
        RecordPlace::S3 {
            location,
            installed,
            ..
        } => match objects(location)?.get(installed)? {
            Some(o) => (o.bytes, o.etag),
            None => return Ok(None),
        },
    };
    let record = serde_json::from_slice(&bytes).map_err(|e| RecordError::Unreadable {
        at: place.to_string(),
        detail: e.to_string(),
    })?;
    Ok(Some((record, version)))
}

/// Writes `record` if the record is still the version `previous` read
/// (`None`: still absent): `Ok(false)` when another install wrote first.
pub fn write_installed(
    place: &RecordPlace,
    record: &Installed,
    previous: Option<&str>,
) -> Result<bool, RecordError> {
    let bytes = serde_json::to_vec_pretty(record).expect("records serialize");
    match place {
        RecordPlace::File { installed } => {
            let path_text = installed.display().to_string();
            let file_err = |detail: String| RecordError::File {
                path: path_text.clone(),
                detail,
            };
            let guard = crate::durable::suffixed(installed, ".lock");
            crate::durable::ensure_dir(&crate::durable::parent_dir(installed), 0o700)
                .map_err(|e| file_err(e.to_string()))?;
            let _held =
                crate::durable::FileLock::exclusive(&guard).map_err(|e| file_err(e.to_string()))?;
            let now = match std::fs::read(installed) {
                Ok(b) => Some(crate::hash::sha256_hex(&b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(file_err(e.to_string())),
            };
            if now.as_deref() != previous {
                return Ok(false);
            }
            crate::durable::replace(installed, &bytes, 0o600)
                .map_err(|e| file_err(e.source.to_string()))?;
            Ok(true)
        }
        RecordPlace::S3 {
            location,
            installed,
            ..
        } => {
            let condition = match previous {
                Some(etag) => Write::Replace(etag),
                None => Write::Create,
            };
            Ok(matches!(
                objects(location)?.put(installed, &bytes, condition)?,
                Written::Done(_)
            ))
        }
    }
}

/// Removes the install record and the published heartbeat (nothing when
/// they are not there).
pub fn remove(place: &RecordPlace) -> Result<(), RecordError> {
    match place {
        RecordPlace::File { installed } => match std::fs::remove_file(installed) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RecordError::File {
                path: installed.display().to_string(),
                detail: e.to_string(),
            }),
        },
        RecordPlace::S3 {
            location,
            installed,
            heartbeat,
        } => {
            let o = objects(location)?;
            o.delete(heartbeat, None)?;
            o.delete(installed, None)?;
            Ok(())
        }
    }
}

/// Publishes the runner's heartbeat beside an S3 state (nothing for a
/// state file).
pub fn publish_beat(place: &RecordPlace, beat: &PublishedBeat) -> Result<(), RecordError> {
    if let RecordPlace::S3 {
        location,
        heartbeat,
        ..
    } = place
    {
        let bytes = serde_json::to_vec(beat).expect("heartbeats serialize");
        objects(location)?.put(heartbeat, &bytes, Write::Overwrite)?;
    }
    Ok(())
}

/// What the runner whose heartbeat file is `heartbeat_path` publishes
/// after a pass: `heartbeat`, tagged with the machine its `installed.json`
/// (beside the heartbeat) names. Nothing for a state file, or for a runner
/// not installed by `autoscale install`.
pub fn publish_runner_beat(
    state: &StateLocation,
    heartbeat_path: &std::path::Path,
    heartbeat: &Heartbeat,
) -> Result<(), RecordError> {
    let place = RecordPlace::of(state);
    if matches!(place, RecordPlace::File { .. }) {
        return Ok(());
    }
    let installed_path = heartbeat_path.with_file_name("installed.json");
    let Ok(bytes) = std::fs::read(&installed_path) else {
        return Ok(());
    };
    let installed: Installed =
        serde_json::from_slice(&bytes).map_err(|e| RecordError::Unreadable {
            at: installed_path.display().to_string(),
            detail: e.to_string(),
        })?;
    publish_beat(
        &place,
        &PublishedBeat {
            on: installed.on,
            heartbeat: heartbeat.clone(),
        },
    )
}

/// The heartbeat published beside an S3 state, if any, and where it was read.
pub fn read_beat(place: &RecordPlace) -> Result<Option<(PublishedBeat, String)>, RecordError> {
    let RecordPlace::S3 {
        location,
        heartbeat,
        ..
    } = place
    else {
        return Ok(None);
    };
    let at = format!("s3://{}/{heartbeat}", location.bucket);
    match objects(location)?.get(heartbeat)? {
        None => Ok(None),
        Some(o) => serde_json::from_slice(&o.bytes)
            .map(|b| Some((b, at.clone())))
            .map_err(|e| RecordError::Unreadable {
                at,
                detail: e.to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(on: &str) -> Installed {
        Installed::for_test(on, "me@here")
    }

    #[test]
    fn the_file_record_is_written_only_over_the_version_read() {
        let dir = tempfile::tempdir().unwrap();
        let place = RecordPlace::of(&StateLocation::File(dir.path().join("state.json")));
        assert_eq!(
            place.to_string(),
            dir.path()
                .join("state.json.autoscaler.json")
                .display()
                .to_string()
        );
        assert!(read_installed(&place).unwrap().is_none());
        assert!(write_installed(&place, &installed("lb"), None).unwrap());
        // A second first install lost the race: refused, record unchanged.
        assert!(!write_installed(&place, &installed("web[0]"), None).unwrap());
        let (got, version) = read_installed(&place).unwrap().unwrap();
        assert_eq!(got.on, "lb");
        assert!(write_installed(&place, &installed("lb"), Some(&version)).unwrap());
        assert!(!write_installed(&place, &installed("lb"), Some("stale")).unwrap());
        remove(&place).unwrap();
        remove(&place).unwrap();
        assert!(read_installed(&place).unwrap().is_none());
        // Nothing to publish beside a file.
        assert!(read_beat(&place).unwrap().is_none());
    }

    #[test]
    fn records_sit_beside_an_s3_state() {
        let place = RecordPlace::of(&StateLocation::S3(
            S3Location::parse_url("s3://team/appgrid/blog/state.json").unwrap(),
        ));
        assert_eq!(
            place.to_string(),
            "s3://team/appgrid/blog/state.json.autoscaler.json"
        );
        let RecordPlace::S3 { heartbeat, .. } = &place else {
            panic!("{place:?}")
        };
        assert_eq!(
            heartbeat,
            "appgrid/blog/state.json.autoscaler-heartbeat.json"
        );
    }
}
