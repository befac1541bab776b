//! Where an app's state lives: a file beside the manifest (the default) or
//! an object on S3 (`[state] backend = "s3"`), and `s3://bucket/key` URLs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::lock::{self, LockError, StateLock};
use super::s3_lock;
use super::store::StateStore;

/// The state of one app: a local file, or an S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    File(PathBuf),
    S3(S3Location),
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::File(p) => write!(f, "{}", p.display()),
            StateLocation::S3(s) => s.fmt(f),
        }
    }
}

impl StateLocation {
    /// The store of the state here.
    pub fn store(&self) -> StateStore {
        StateStore::at(self)
    }

    /// The state lock here (the file lock beside a file, the lock object
    /// beside an S3 object), waiting up to `timeout` for a live holder.
    pub fn lock(
        &self,
        operation: &str,
        timeout: Duration,
        lease: Duration,
    ) -> Result<StateLock, LockError> {
        match self {
            StateLocation::File(path) => lock::acquire(path, operation, timeout, lease),
            StateLocation::S3(s3) => s3_lock::acquire(s3, operation, timeout, lease),
        }
    }

    /// `s3://bucket/key`, or a file path.
    pub fn parse(text: &str) -> Result<StateLocation, String> {
        if text.starts_with("s3://") {
            S3Location::parse_url(text).map(StateLocation::S3)
        } else {
            Ok(StateLocation::File(PathBuf::from(text)))
        }
    }
}

/// An S3 object holding state; its lock is `KEY.lock`, its backups
/// `KEY.backup.SERIAL`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    /// Unset: the AWS chain's region (`AWS_REGION`, the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An S3-compatible endpoint (path-style requests); unset: AWS's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The key a state object has when `[state]` names none.
pub fn default_key(app: &str) -> String {
    format!("appgrid/{app}/state.json")
}

/// Whether `name` is a bucket name S3 accepts: 3–63 lowercase letters,
/// digits, `-` and `.`, starting and ending with a letter or digit.
pub fn valid_bucket(name: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
        && !name.contains("..")
}

/// Whether `key` is a usable object key: not empty, not starting or ending
/// with `/`, at most 1000 bytes (room for the `.backup.N` siblings), no
/// control characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1000
        && !key.starts_with('/')
        && !key.ends_with('/')
        && !key.chars().any(char::is_control)
}

impl S3Location {
    /// Parses `s3://bucket/key`; region and endpoint are left unset.
    pub fn parse_url(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3:// URL; write s3://BUCKET/KEY"))?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url:?} names no key; write s3://BUCKET/KEY"))?;
        if !valid_bucket(bucket) {
            return Err(format!(
                "{bucket:?} is not a valid bucket name: use 3 to 63 lowercase letters, digits, '-' and '.'"
            ));
        }
        if !valid_key(key) {
            return Err(format!(
                "{key:?} is not a usable object key: not empty, no leading or trailing '/'"
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
            region: None,
            endpoint: None,
        })
    }

    /// The lock object: `KEY.lock`.
    pub fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }

    /// The copy of serial `serial`: `KEY.backup.SERIAL`.
    pub fn backup_key(&self, serial: u64) -> String {
        format!("{}.backup.{serial}", self.key)
    }

    /// The marker left when the state moved elsewhere: `KEY.moved`.
    pub fn moved_key(&self) -> String {
        format!("{}.moved", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls_and_refuses_what_s3_would() {
        let l = S3Location::parse_url("s3://team-state/appgrid/blog/state.json").unwrap();
        assert_eq!(l.bucket, "team-state");
        assert_eq!(l.key, "appgrid/blog/state.json");
        assert_eq!(l.to_string(), "s3://team-state/appgrid/blog/state.json");
        assert_eq!(l.lock_key(), "appgrid/blog/state.json.lock");
        assert_eq!(l.backup_key(7), "appgrid/blog/state.json.backup.7");
        for bad in [
            "team-state/key",
            "s3://team-state",
            "s3://team-state/",
            "s3://Team/key",
            "s3://ab/key",
            "s3://-ab/key",
            "s3://team-state//abs",
        ] {
            assert!(S3Location::parse_url(bad).is_err(), "{bad}");
        }
        assert_eq!(default_key("blog"), "appgrid/blog/state.json");
    }
}
