//! The JSON files in which the `local` and `hosts` providers keep their
//! machines (what EC2 keeps for `aws`): read whole, written through the one
//! atomic path ([`crate::durable`]), changed under a file lock so two
//! processes (an apply and an `autoscale --once`, two shells) never lose each
//! other's launches.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CloudError;
use crate::durable::{self, FileLock};

fn error(operation: &str, code: &str, detail: String) -> CloudError {
    CloudError::Api {
        operation: operation.to_string(),
        code: code.to_string(),
        message: detail,
    }
}

/// The registry at `path`, or the empty one when there is none yet.
/// `code` names the provider in errors.
pub fn read<T: DeserializeOwned + Default>(path: &Path, code: &str) -> Result<T, CloudError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            error(
                "read registry",
                code,
                format!("{} is corrupt: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(error(
            "read registry",
            code,
            format!("{}: {e}", path.display()),
        )),
    }
}

/// Directories a registry creates stay reachable (0755): the `local`
/// provider's machine roots below them are used by services running as
/// their own users. The registry files themselves are 0600.
const DIR_MODE: u32 = 0o755;

/// Write atomically and durably, mode 0600: a crash leaves the old file or the new.
pub fn write<T: Serialize>(path: &Path, value: &T, code: &str) -> Result<(), CloudError> {
    let json = serde_json::to_vec_pretty(value).expect("registries serialize");
    durable::ensure_dir(&durable::parent_dir(path), DIR_MODE)
        .and_then(|()| durable::replace(path, &json, 0o600).map_err(Into::into))
        .map_err(|e| error("write registry", code, format!("{}: {e}", path.display())))
}

/// The lock every read-modify-write of the registry at `path` holds.
pub fn lock(path: &Path, code: &str) -> Result<FileLock, CloudError> {
    let guard: PathBuf = durable::suffixed(path, ".lock");
    durable::ensure_dir(&durable::parent_dir(path), DIR_MODE)
        .and_then(|()| FileLock::exclusive(&guard))
        .map_err(|e| error("lock registry", code, format!("{}: {e}", guard.display())))
}
