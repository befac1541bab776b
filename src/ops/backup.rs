//! What the backup operations (issue 8 §2) take and return, as data: the
//! CLI renders it, the roles produce it (`crate::roles::backup`).

use secrecy::SecretString;
use serde::Serialize;

/// One backup in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    /// pgBackRest's label, e.g. `20261202-133700F`: what `db restore` takes.
    pub id: String,
    /// The repository's name for the machine's cluster (`APP.MACHINE-ID`).
    pub stanza: String,
    /// The node it was taken from, as state names it (`db.primary`).
    pub origin: String,
    /// The machine's id (instance id, or the local/hosts provider's).
    pub machine: String,
    /// Unix seconds: start and end of the backup.
    pub started: i64,
    pub stopped: i64,
    /// The database's size, and what the backup takes in the repository.
    pub size: u64,
    pub repo_size: u64,
    /// SHA-256 of the backup's manifest (which holds every file's checksum).
    pub checksum: Option<String>,
}

/// S3 credentials from the AWS chain, handed to pgBackRest on the machine in
/// a 0600 file; never printed.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key: SecretString,
    pub secret_key: SecretString,
    pub session_token: Option<SecretString>,
}

/// How the repository is reached: S3 credentials (from the AWS chain) and,
/// for tests against a self-signed store only, no TLS verification.
#[derive(Debug, Clone, Default)]
pub struct RepoAccess {
    pub s3: Option<S3Credentials>,
    pub skip_tls_verify: bool,
}

/// Where a restore lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Over the running origin (`--in-place`).
    InPlace,
}

/// What a restore asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    pub id: String,
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00`: replay WAL to this time.
    pub to_time: Option<String>,
    pub target: RestoreTarget,
}
