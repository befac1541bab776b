//! The app manifest: what the user wrote (TOML) turned into a validated
//! [`Manifest`] the rest of appgrid can trust.
//!
//! Two stages, as in cargo and just: [`schema`] walks the raw, spanned TOML
//! tree and reports *every* problem at once as a [`Diagnostic`] with
//! file:line:col; only a manifest with no error becomes a [`Manifest`].
//! Nothing here does I/O except [`load`], which reads the one file.

pub mod certificate;
mod diagnostic;
pub mod edit;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use diagnostic::{Diagnostic, Diagnostics, Severity, Style as DiagnosticStyle};
pub use schema::cron::{CronError, CronFields, parse as parse_cron};
pub use schema::duration::{DurationError, MAX_DURATION, parse_duration};

/// A validated manifest. Every field has been checked; defaults are filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub app: App,
    pub provider: Provider,
    pub release: Option<Release>,
    pub web: Web,
    pub load_balancer: LoadBalancer,
    pub database: Option<Database>,
    pub cache: Option<Cache>,
    pub autoscale: Option<Autoscale>,
    /// `[env]`: the app's non-secret config defaults (config vars override).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    /// `[state]`: where state lives; `None` is the local file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateBackend>,
}

/// `[state] backend = …`: the local file (the default) or an S3 object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StateBackend {
    Local,
    S3 {
        bucket: String,
        /// Unset: `appgrid/APP/state.json`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// A DNS label: lowercase letters, digits and `-`, at most 63 characters.
    pub name: String,
    /// A directory (relative to the manifest) whose files replace the embedded
    /// templates of the same name, e.g. `haproxy/haproxy.cfg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// EC2 through aws-sdk-ec2, or any EC2-compatible endpoint.
    Aws,
    /// This machine: every instance a loopback address and a directory.
    Local,
    /// Machines you already have: a pool of SSH addresses.
    Hosts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub kind: ProviderKind,
    pub region: String,
    /// Availability zones instances are spread over, in order. Defaults to
    /// `{region}a`, `{region}b`, `{region}c`.
    pub zones: Vec<String>,
    /// An image name resolved to an AMI at apply time (`debian-12`), or an `ami-…` id.
    pub image: String,
    pub ssh_user: String,
    /// Path of the private key, as written in the manifest (`~` allowed).
    /// The public key is the same path with `.pub`.
    pub ssh_key: String,
    /// CIDRs allowed to reach port 22 on every machine.
    pub ssh_from: Vec<String>,
    /// An EC2-compatible endpoint, e.g. `http://127.0.0.1:5000`.
    pub endpoint: Option<String>,
    /// `hosts` provider: the pool, each `addr` or `addr:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Reach machines through this command (`%h` host, `%p` port, `%i` instance id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_command: Option<String>,
    /// Reach machines through this SSH host (same user and key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_host: Option<String>,
    /// Give machines their roles (Postgres, Slony, memcached, HAProxy, the app).
    /// `false` manages the machines only.
    #[serde(default = "yes")]
    pub configure: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub path: String,
    pub build: Option<String>,
    pub start: String,
    pub health: String,
    /// Run once per release on one web server with the new code and the
    /// app's env, before any server switches (migrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
    /// How long a new release may take to answer its health check with 200
    /// before it is rolled back (default 60 s).
    #[serde(
        default = "default_health_timeout",
        skip_serializing_if = "is_default_health_timeout"
    )]
    pub health_timeout: std::time::Duration,
}

fn default_health_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

fn is_default_health_timeout(d: &std::time::Duration) -> bool {
    *d == default_health_timeout()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Web {
    pub instance_type: String,
    pub count: u32,
    pub port: u16,
    /// `max_connections`: the most requests HAProxy sends one app server at
    /// once (its `maxconn`); the rest wait in HAProxy's queue, which is what
    /// `metric = "queue_time_ms"` reads. `None`: no limit (nothing queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub instance_type: String,
    pub listen: u16,
    pub allow_from: Vec<String>,
    /// `tls_certificate` (+ `tls_port`): HTTPS at the load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// HTTPS at the load balancer: the certificate chain and its key in one PEM
/// file (relative to the manifest), checked by [`certificate::check`] when
/// the manifest is opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    pub certificate: String,
    pub port: u16,
    /// Where `tls_certificate`'s value is in the manifest (for diagnostics).
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replication {
    Slony,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub instance_type: String,
    pub version: u32,
    pub replicas: u32,
    pub replication: Replication,
    pub port: u16,
    /// SQL run once on the primary when its database is created (relative to
    /// the manifest), so the replicated tables exist before the Slony-I set is
    /// made. Later changes go through `appgrid db migrate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `[database.backup]`: where backups go, how many are kept, when they run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// `failover = "auto"`: the autoscale runner fails a dead origin over by
    /// itself. `None`: only `appgrid db failover` does (`"manual"`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<AutoFailover>,
}

/// `failover = "auto"` (issue 8 §3): when the autoscale runner fails the
/// database's origin over by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoFailover {
    /// `failover_checks`: this many checks in a row found the origin down…
    pub checks: u32,
    /// `failover_window`: …the first of them at least this long ago.
    pub window: Duration,
}

/// `[database.backup]` (issue 8): pgBackRest backups of the database origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub to: BackupTarget,
    /// Full backups kept; older ones (and their WAL) are expired.
    pub keep: u32,
    /// A five-field cron expression for scheduled backups, run by the
    /// autoscale runner (`appgrid autoscale --once` or its loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The zone `schedule` is read in.
    pub timezone: String,
}

/// Where backups are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackupTarget {
    /// `s3://bucket/prefix`; credentials from the AWS chain, never the manifest.
    S3 {
        bucket: String,
        /// Without leading or trailing '/'; may be empty.
        prefix: String,
        /// An S3-compatible endpoint (`https://host:port`); AWS's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        region: String,
    },
    /// A directory on the machine appgrid runs on (the `local` provider),
    /// relative to the manifest unless absolute.
    Directory { path: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    pub instance_type: String,
    pub nodes: u32,
    /// Memory for memcached in MiB; `None` sizes it from the instance.
    pub memory_mb: Option<u32>,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    RequestsPerInstance,
    ResponseTimeMs,
    CpuPercent,
    /// HAProxy's `qtime`: the average time (ms) the last 1,024 requests
    /// waited in the load balancer's queue for a server.
    QueueTimeMs,
}

impl Metric {
    /// A time measured per request (response or queue time): it is no load
    /// that a forecast could carry forward.
    pub fn is_time(self) -> bool {
        matches!(self, Metric::ResponseTimeMs | Metric::QueueTimeMs)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoscale {
    pub metric: Metric,
    pub target: f64,
    pub min: u32,
    pub max: u32,
    #[serde(with = "duration_ms")]
    pub scale_out_cooldown: Duration,
    #[serde(with = "duration_ms")]
    pub scale_in_cooldown: Duration,
    #[serde(with = "duration_ms")]
    pub warmup: Duration,
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    pub schedule: Vec<Schedule>,
    /// Scale out ahead of a predictable rise (daily and weekly seasonality).
    #[serde(default)]
    pub predictive: bool,
    /// How the count is chosen: reacting to the metric, or from a forecast.
    #[serde(default)]
    pub policy: PolicyKind,
    /// Seconds from asking for a server to it serving, for `policy =
    /// "forecast"`; `None`: measured from real scale-outs.
    #[serde(default, with = "duration_ms_opt")]
    pub boot: Option<Duration>,
    /// For `policy = "forecast"`: the quantile of its recent errors the
    /// margin covers (default 0.9).
    #[serde(default)]
    pub forecast_quantile: Option<f64>,
    /// Shadow mode: the reactive policy acts; the forecast policy (with
    /// `boot` and `forecast_quantile`) decides beside it, recorded only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forecast_only: bool,
    /// `[autoscale.replicas]`: the database read tier's policy (issue 13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaAutoscale>,
}

/// `[autoscale.replicas]`: how many Slony-I read replicas the autoscaler
/// keeps. When present it owns `[database] replicas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaAutoscale {
    pub metric: ReplicaMetric,
    /// Seconds of lag, or client connections per replica.
    pub target: f64,
    pub min: u32,
    pub max: u32,
    #[serde(with = "duration_ms")]
    pub scale_out_cooldown: Duration,
    /// How long the readings must have allowed fewer replicas before one goes.
    #[serde(with = "duration_ms")]
    pub stabilization: Duration,
}

/// `[autoscale.replicas] metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaMetric {
    /// The most any replica is behind the origin (Slony-I `sl_status`
    /// `st_lag_time`), seconds.
    ReplicationLag,
    /// The app's client connections per replica (`pg_stat_activity`).
    Connections,
}

impl ReplicaMetric {
    /// As the manifest and the history name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaMetric::ReplicationLag => "replication_lag",
            ReplicaMetric::Connections => "connections",
        }
    }
}

/// `[autoscale] policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Target tracking on the current metric, with cooldowns and a
    /// stabilization window for scale-in (the default).
    #[default]
    Reactive,
    /// Provide now for the load forecast over the next boot (+ interval).
    Forecast,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Five cron fields: minute hour day-of-month month day-of-week.
    pub cron: String,
    pub timezone: String,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub desired: Option<u32>,
}

/// A manifest together with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// sha256 of the file's bytes, recorded in plans.
    pub source_hash: String,
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has {} error(s)", diagnostics.error_count())]
    Invalid {
        path: PathBuf,
        diagnostics: Diagnostics,
    },
}

/// Read and validate the manifest at `path`.
pub fn load(path: &Path) -> Result<LoadedManifest, ManifestError> {
    load_text(path).map(|(loaded, _)| loaded)
}

fn load_text(path: &Path) -> Result<(LoadedManifest, String), ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let manifest = parse(path, &text).map_err(|diagnostics| ManifestError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })?;
    let loaded = LoadedManifest {
        path: path.to_path_buf(),
        manifest,
        source_hash: crate::hash::sha256_hex(text.as_bytes()),
    };
    Ok((loaded, text))
}

/// [`load`], and the files the manifest names that must be checked before
/// anything runs: `[load_balancer] tls_certificate` (parses, has its key,
/// not expired at `now`), each problem at its file:line:col.
pub fn load_at(
    path: &Path,
    now: jiff::Timestamp,
) -> Result<(LoadedManifest, Option<certificate::Certificate>), ManifestError> {
    let (loaded, text) = load_text(path)?;
    let certificate = match &loaded.manifest.load_balancer.tls {
        None => None,
        Some(tls) => Some(
            certificate::check(path, &text, &tls.certificate, tls.span.clone(), now).map_err(
                |d| ManifestError::Invalid {
                    path: path.to_path_buf(),
                    diagnostics: Diagnostics(vec![*d]),
                },
            )?,
        ),
    };
    Ok((loaded, certificate))
}

/// Validate manifest text. `path` is only used to label diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    schema::check(path, text)
}

/// An optional duration, as [`duration_ms`].
mod duration_ms_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// Durations in plans and state are whole milliseconds, so `"500ms"` survives.
mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
