//! The JSON files in which the `local` and `hosts` providers keep their
//! machines (what EC2 keeps for `aws`): read whole, written atomically.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CloudError;

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

/// Write through a temp file and a rename: a crash leaves the old file or the new.
pub fn write<T: Serialize>(path: &Path, value: &T, code: &str) -> Result<(), CloudError> {
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(value).expect("registries serialize");
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, json))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| error("write registry", code, format!("{}: {e}", path.display())))
}
