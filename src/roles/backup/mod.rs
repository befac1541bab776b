//! Backups and restore of the database origin with pgBackRest (issue 8 §2).
//!
//! Layout on a database machine: `$ROOT/etc/appgrid/pgbackrest/pgbackrest.conf`
//! (rendered from `templates/backup/pgbackrest.conf`), S3 credentials in
//! `conf.d/s3.conf` (0600, postgres's), logs under
//! `$ROOT/var/log/appgrid/pgbackrest`. Each machine's cluster is its own
//! stanza, `APP.MACHINE-ID` (a Slony-I node is a separate Postgres cluster
//! with its own system id and WAL; a machine that is replaced gets a new
//! stanza). WAL archiving is turned on by the first backup with `ALTER
//! SYSTEM` (postgresql.auto.conf), so appgrid's postgresql.conf and its
//! configuration digests stay as they are.
//!
//! Backups are taken from the origin: an in-place restore needs a backup of
//! the very cluster it replaces (pgBackRest's `backup-standby` needs a
//! physical standby, which a Slony-I subscriber is not).
//!
//! Invariants: nothing secret in a script, a command line or a message (S3
//! keys only in the 0600 file, put with `Remote::put`); a restore refuses
//! before it stops anything when the backup is unknown or of another machine.

mod info;
mod onto;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::ExposeSecret;
use serde::Serialize;
use tera::Context;

use super::RoleError;
use super::configure::{Fleet, RoleConfigurator};
use super::postgres::{self, PgNode};
use crate::graph::{ResourceAddress, Role};
use crate::manifest::{BackupTarget, ProviderKind};
use crate::ops::backup::{BackupInfo, RepoAccess, RestoreRequest, RestoreTarget};
use crate::remote::Remote;
use crate::state::ResourceState;

pub use info::parse_info;

/// A backup operation that cannot go ahead, or failed on the machine.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "the manifest has no [database.backup]: add one with `to = \"s3://bucket/prefix\"` \
         (or a directory, for the local provider)"
    )]
    NoTarget,
    #[error(
        "[database.backup] `to` is the directory {path:?}, but the aws provider's machines take \
         their disks with them: back up to `s3://bucket/prefix` instead"
    )]
    DirectoryOnAws { path: String },
    #[error(
        "no AWS credentials for the S3 backup target: set them up as for the AWS CLI \
         (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, SSO or an instance role)"
    )]
    NoCredentials,
    #[error("no backup {id} of {app} in {target}; `appgrid db backups` lists them{}",
        if known.is_empty() { " (there are none yet)".to_string() } else { format!(" (known: {})", known.join(", ")) })]
    UnknownBackup {
        id: String,
        app: String,
        target: String,
        known: Vec<String>,
    },
    #[error(
        "backup {id} was taken from {origin} on machine {machine}, but the origin now is {now} on \
         machine {now_machine}: an in-place restore needs a backup of the machine it replaces"
    )]
    OtherMachine {
        id: String,
        origin: String,
        machine: String,
        now: String,
        now_machine: String,
    },
    #[error(
        "{app} has {replicas} replica(s): an in-place restore of the origin would leave them \
         ahead of it; remove the replicas first (`replicas = 0`, apply), restore, then add them back"
    )]
    InPlaceWithReplicas { app: String, replicas: usize },
    #[error(
        "restoring into a new primary is not supported yet: pass --in-place to restore over \
         the running origin (its current data is replaced; take a backup first)"
    )]
    NewPrimaryUnsupported,
    #[error("`--to-time` {0:?} is not a time: write e.g. \"2026-12-02 14:05:00+00\"")]
    BadTime(String),
    #[error(
        "the S3 bucket {bucket} does not exist (or these credentials cannot see it): create it, or fix `to` in [database.backup]; nothing was changed"
    )]
    NoSuchBucket { bucket: String },
    #[error("the backup target {target} cannot be reached from {host}: {detail}")]
    Unreachable {
        target: String,
        host: String,
        detail: String,
    },
    #[error("pgBackRest's answer on {host} could not be read: {detail}")]
    BadInfo { host: String, detail: String },
    #[error("the backup on {host} finished, but pgBackRest lists no backup from it")]
    NoNewBackup { host: String },
    /// Boxed: a `RoleError` is large, and this error is returned often.
    #[error(transparent)]
    Role(Box<RoleError>),
}

impl From<RoleError> for BackupError {
    fn from(e: RoleError) -> Self {
        BackupError::Role(Box::new(e))
    }
}

/// pgBackRest's failures people can act on, told plainly; the rest as they came.
fn explain(repo: &Repo, e: crate::remote::RemoteError) -> BackupError {
    if let crate::remote::RemoteError::Script {
        host, stderr_tail, ..
    } = &e
    {
        if let (Repo::S3(s), true) = (repo, stderr_tail.contains("<Code>NoSuchBucket</Code>")) {
            return BackupError::NoSuchBucket {
                bucket: s.bucket.clone(),
            };
        }
        let unreachable = [
            "unable to connect",
            "Connection refused",
            "[049]",
            "timeout after",
        ];
        if let Some(line) = stderr_tail
            .lines()
            .find(|l| unreachable.iter().any(|u| l.contains(u)))
        {
            return BackupError::Unreachable {
                target: repo.describe(),
                host: host.clone(),
                detail: line.trim().to_string(),
            };
        }
    }
    e.into()
}

impl From<crate::remote::RemoteError> for BackupError {
    fn from(e: crate::remote::RemoteError) -> Self {
        RoleError::from(e).into()
    }
}

impl From<crate::templates::TemplateError> for BackupError {
    fn from(e: crate::templates::TemplateError) -> Self {
        RoleError::from(e).into()
    }
}

impl From<super::FleetError> for BackupError {
    fn from(e: super::FleetError) -> Self {
        RoleError::from(e).into()
    }
}

/// The repository as the configuration file names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct S3Repo {
    bucket: String,
    prefix: String,
    host: String,
    port: u16,
    region: String,
    verify_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repo {
    Directory(String),
    S3(S3Repo),
}

impl Repo {
    fn describe(&self) -> String {
        match self {
            Repo::Directory(p) => p.clone(),
            Repo::S3(s) if s.prefix.is_empty() => format!("s3://{}", s.bucket),
            Repo::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

/// The stanza of a machine's cluster: `APP.MACHINE-ID`, with anything but
/// letters, digits and '-' in the id made '-'.
pub fn stanza(app: &str, machine_id: &str) -> String {
    let id: String = machine_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{app}.{id}")
}

/// The node the replicated set's origin is on (where writes go), from
/// `slony.cluster`'s `origin` attribute (none: the primary): the database
/// machine whose node id that is (a machine that came through an online
/// move or a restore has an id of 100 or more), else by the ids replicas
/// take by index.
fn origin(resources: &BTreeMap<ResourceAddress, ResourceState>) -> ResourceAddress {
    let attribute = resources
        .get(&ResourceAddress::SlonyCluster)
        .and_then(|r| r.attributes.get("origin"))
        .map(String::as_str);
    if let Some(id) = attribute.and_then(|o| o.parse::<u32>().ok()) {
        let machine = resources.keys().copied().find(|a| {
            matches!(
                a,
                ResourceAddress::Instance {
                    role: Role::DbPrimary | Role::DbReplica,
                    ..
                }
            ) && crate::roles::configure_db::node_in(resources, *a) == Some(id)
        });
        if let Some(m) = machine {
            return m;
        }
    }
    origin_of(attribute)
}

fn origin_of(attribute: Option<&str>) -> ResourceAddress {
    match attribute.and_then(|o| o.parse::<u32>().ok()).unwrap_or(1) {
        0 | 1 => ResourceAddress::instance(Role::DbPrimary, 0),
        n => ResourceAddress::instance(Role::DbReplica, n - 2),
    }
}

/// Checks a value going into pgbackrest.conf (a line-based format).
fn conf_value(what: &'static str, value: &str) -> Result<(), BackupError> {
    if value.is_empty() || value.chars().any(|c| c.is_control()) {
        return Err(RoleError::InvalidValue {
            what,
            value: value.to_string(),
            rule: "not empty, no control characters",
        }
        .into());
    }
    Ok(())
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `YYYY-MM-DD HH:MM:SS[.f]` with a zone offset, checked with jiff;
/// normalised to UTC as pgBackRest takes it.
pub fn check_time(t: &str) -> Result<String, BackupError> {
    let parsed: Result<jiff::Timestamp, _> = t.parse();
    match parsed {
        Ok(ts) => Ok(ts.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string()),
        Err(_) => Err(BackupError::BadTime(t.to_string())),
    }
}

impl<F: Fleet> RoleConfigurator<F> {
    fn repo(&self, access: &RepoAccess) -> Result<(Repo, u32), BackupError> {
        let backup = self
            .manifest
            .database
            .as_ref()
            .and_then(|d| d.backup.as_ref())
            .ok_or(BackupError::NoTarget)?;
        let repo = match &backup.to {
            BackupTarget::Directory { path } => {
                if self.manifest.provider.kind == ProviderKind::Aws {
                    return Err(BackupError::DirectoryOnAws { path: path.clone() });
                }
                let p = Path::new(path);
                let abs = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    self.base_dir.join(p)
                };
                let abs = abs.display().to_string();
                conf_value("backup directory", &abs)?;
                Repo::Directory(abs)
            }
            BackupTarget::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let (host, port) = match endpoint {
                    Some(e) => {
                        let hostport = e.trim_start_matches("https://").trim_end_matches('/');
                        let ep = crate::endpoint::Endpoint::parse(hostport);
                        let port = if hostport.ends_with(&format!(":{}", ep.port)) {
                            ep.port
                        } else {
                            443
                        };
                        (ep.host, port)
                    }
                    None => (format!("s3.{region}.amazonaws.com"), 443),
                };
                for (what, v) in [
                    ("S3 bucket", bucket.as_str()),
                    ("S3 endpoint", host.as_str()),
                    ("S3 region", region.as_str()),
                ] {
                    conf_value(what, v)?;
                }
                if access.s3.is_none() {
                    return Err(BackupError::NoCredentials);
                }
                Repo::S3(S3Repo {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    host,
                    port,
                    region: region.clone(),
                    verify_tls: !access.skip_tls_verify,
                })
            }
        };
        Ok((repo, backup.keep))
    }

    /// The context every backup script renders with.
    fn backup_context(
        &self,
        node: &PgNode,
        repo: &Repo,
        keep: u32,
        stanza: &str,
    ) -> Result<Context, BackupError> {
        let mut conf = Context::new();
        conf.insert("root", &node.root);
        conf.insert("port", &node.port);
        conf.insert("keep", &keep);
        conf.insert("stanza", stanza);
        conf.insert("io_timeout", &10);
        match repo {
            Repo::Directory(p) => {
                conf.insert("repo_path", p);
                conf.insert("s3", &Option::<S3Repo>::None);
            }
            Repo::S3(s) => {
                conf.insert("repo_path", "");
                conf.insert("s3", s);
            }
        }
        let rendered = self.templates.render("backup/pgbackrest.conf", &conf)?;
        let mut ctx = Context::new();
        ctx.insert("root", &node.root);
        ctx.insert("pg_bin", postgres::PG_BIN);
        ctx.insert("port", &node.port);
        ctx.insert("stanza", stanza);
        ctx.insert("conf", rendered.trim_end());
        ctx.insert("directory_repo", &matches!(repo, Repo::Directory(_)));
        ctx.insert(
            "repo_path",
            match repo {
                Repo::Directory(p) => p.as_str(),
                Repo::S3(_) => "",
            },
        );
        Ok(ctx)
    }

    /// Connect to the origin; its node, and its stanza.
    async fn origin_node(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
    ) -> Result<
        (
            ResourceAddress,
            String,
            super::fleet::Connected<F::Remote>,
            PgNode,
        ),
        BackupError,
    > {
        let machine = origin(resources);
        let record = resources.get(&machine).ok_or(RoleError::NotInState {
            address: machine,
            needed_by: None,
        })?;
        let id = record.id.clone();
        let connected = self.connect_to(resources, machine).await?;
        let node = self.pg_node(&connected.place)?;
        Ok((machine, id, connected, node))
    }

    /// Put the S3 credentials where pgBackRest (and the archiver) read them.
    async fn put_credentials(
        &self,
        remote: &F::Remote,
        node: &PgNode,
        access: &RepoAccess,
    ) -> Result<(), BackupError> {
        let Some(c) = &access.s3 else {
            return Ok(());
        };
        let mut text = format!(
            "[global]\nrepo1-s3-key={}\nrepo1-s3-key-secret={}\n",
            c.access_key.expose_secret(),
            c.secret_key.expose_secret()
        );
        if let Some(t) = &c.session_token {
            text.push_str(&format!("repo1-s3-token={}\n", t.expose_secret()));
        }
        for secret in [&c.access_key, &c.secret_key] {
            self.redactor.add(secret.expose_secret());
        }
        if text.lines().count() > 4 || text.contains('\r') {
            return Err(RoleError::InvalidValue {
                what: "S3 credentials",
                value: "(sensitive)".to_string(),
                rule: "no newlines",
            }
            .into());
        }
        let path = format!("{}/etc/appgrid/pgbackrest/conf.d/s3.conf", node.root);
        remote.put(&path, text.as_bytes(), 0o600).await?;
        let mut ctx = Context::new();
        ctx.insert("file", &path);
        let script = self.templates.render("postgres/secure-file.sh", &ctx)?;
        remote
            .run(
                &format!("backup: credentials on {}", node.endpoint()),
                &script,
            )
            .await?;
        Ok(())
    }

    pub(super) async fn take_backup(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
        access: &RepoAccess,
        why: &str,
    ) -> Result<BackupInfo, BackupError> {
        let (repo, keep) = self.repo(access)?;
        let (machine, id, c, node) = self.origin_node(resources).await?;
        let stanza = stanza(&self.manifest.app.name, &id);
        self.put_credentials(&c.remote, &node, access).await?;
        let mut ctx = self.backup_context(&node, &repo, keep, &stanza)?;
        let archive = format!(
            "pgbackrest --config={root}/etc/appgrid/pgbackrest/pgbackrest.conf \
             --config-include-path={root}/etc/appgrid/pgbackrest/conf.d --stanza={stanza} archive-push %p",
            root = node.root
        );
        conf_value("archive command", &archive)?;
        ctx.insert("archive_command", &archive);
        ctx.insert("alter_mode", "ALTER SYSTEM SET archive_mode = on");
        ctx.insert(
            "alter_command",
            &format!(
                "ALTER SYSTEM SET archive_command = {}",
                sql_literal(&archive)
            ),
        );
        let annotations = vec![
            format!("appgrid-origin={machine}"),
            format!("appgrid-machine={id}"),
            format!("appgrid-why={why}"),
        ];
        ctx.insert("annotations", &annotations);
        let script = self.templates.render("backup/backup.sh", &ctx)?;
        let out = c
            .remote
            .run(
                &format!("backup: {machine} to {}", repo.describe()),
                &script,
            )
            .await
            .map_err(|e| explain(&repo, e))?;
        let host = c.remote.host().to_string();
        let list = parse_info(&out.stdout).map_err(|detail| BackupError::BadInfo {
            host: host.clone(),
            detail,
        })?;
        list.into_iter()
            .filter(|b| b.stanza == stanza)
            .max_by_key(|b| (b.stopped, b.id.clone()))
            .ok_or(BackupError::NoNewBackup { host })
    }

    pub(super) async fn list_backups(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
        access: &RepoAccess,
    ) -> Result<Vec<BackupInfo>, BackupError> {
        let (repo, keep) = self.repo(access)?;
        let (_, id, c, node) = self.origin_node(resources).await?;
        let stanza = stanza(&self.manifest.app.name, &id);
        self.put_credentials(&c.remote, &node, access).await?;
        let ctx = self.backup_context(&node, &repo, keep, &stanza)?;
        let script = self.templates.render("backup/info.sh", &ctx)?;
        let out = c
            .remote
            .run(&format!("backup: list {}", repo.describe()), &script)
            .await
            .map_err(|e| explain(&repo, e))?;
        let prefix = format!("{}.", self.manifest.app.name);
        let mut list: Vec<BackupInfo> = parse_info(&out.stdout)
            .map_err(|detail| BackupError::BadInfo {
                host: c.remote.host().to_string(),
                detail,
            })?
            .into_iter()
            .filter(|b| b.stanza.starts_with(&prefix))
            .collect();
        list.sort_by_key(|b| (b.started, b.id.clone()));
        Ok(list)
    }

    pub(super) async fn restore_backup(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
        access: &RepoAccess,
        request: &RestoreRequest,
    ) -> Result<BackupInfo, BackupError> {
        let RestoreTarget::InPlace = request.target;
        let to_time = request.to_time.as_deref().map(check_time).transpose()?;
        let replicas = resources
            .keys()
            .filter(|a| {
                matches!(
                    a,
                    ResourceAddress::Instance {
                        role: Role::DbReplica,
                        ..
                    }
                )
            })
            .count();
        if replicas > 0 {
            return Err(BackupError::InPlaceWithReplicas {
                app: self.manifest.app.name.clone(),
                replicas,
            });
        }
        let known = self.list_backups(resources, access).await?;
        let (repo, keep) = self.repo(access)?;
        let Some(backup) = known.iter().find(|b| b.id == request.id).cloned() else {
            return Err(BackupError::UnknownBackup {
                id: request.id.clone(),
                app: self.manifest.app.name.clone(),
                target: repo.describe(),
                known: known.iter().map(|b| b.id.clone()).collect(),
            });
        };
        let (machine, id, c, node) = self.origin_node(resources).await?;
        let stanza = stanza(&self.manifest.app.name, &id);
        if backup.stanza != stanza {
            return Err(BackupError::OtherMachine {
                id: backup.id,
                origin: backup.origin,
                machine: backup.machine,
                now: machine.to_string(),
                now_machine: id,
            });
        }
        let mut ctx = self.backup_context(&node, &repo, keep, &stanza)?;
        let target_args: Vec<String> = match &to_time {
            Some(t) => vec![
                format!("--set={}", backup.id),
                "--type=time".into(),
                format!("--target={t}"),
            ],
            None => vec![format!("--set={}", backup.id), "--type=immediate".into()],
        };
        ctx.insert("target_args", &target_args);
        ctx.insert("pitr", &to_time.is_some());
        let script = self.templates.render("backup/restore.sh", &ctx)?;
        c.remote
            .run(&format!("restore: {} over {machine}", backup.id), &script)
            .await
            .map_err(|e| explain(&repo, e))?;
        Ok(backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_are_app_dot_machine_with_odd_characters_replaced() {
        assert_eq!(stanza("blog", "i-0abc"), "blog.i-0abc");
        assert_eq!(stanza("blog", "local-3"), "blog.local-3");
        assert_eq!(stanza("blog", "10.77.0.11:22"), "blog.10-77-0-11-22");
    }

    #[test]
    fn the_origin_follows_the_slony_cluster_record() {
        assert_eq!(origin(&BTreeMap::new()).to_string(), "db.primary");
        assert_eq!(origin_of(Some("1")).to_string(), "db.primary");
        assert_eq!(origin_of(Some("3")).to_string(), "db.replica[1]");
    }

    #[test]
    fn the_origin_is_found_by_its_node_id_after_a_move() {
        use crate::graph::{KeyPairSpec, ResourceSpec};
        let record = |attributes: &[(&str, &str)]| ResourceState {
            spec: ResourceSpec::KeyPair(KeyPairSpec {
                name: "unused".into(),
                public_key_path: "unused.pub".into(),
            }),
            id: "local-9".into(),
            depends_on: Vec::new(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut resources = BTreeMap::new();
        let primary = ResourceAddress::instance(Role::DbPrimary, 0);
        resources.insert(primary, record(&[]));
        resources.insert(
            ResourceAddress::config(Role::DbPrimary, 0),
            record(&[("node", "100")]),
        );
        resources.insert(ResourceAddress::instance(Role::DbReplica, 0), record(&[]));
        resources.insert(ResourceAddress::SlonyCluster, record(&[("origin", "100")]));
        assert_eq!(origin(&resources), primary);
        resources.insert(ResourceAddress::SlonyCluster, record(&[("origin", "2")]));
        assert_eq!(origin(&resources).to_string(), "db.replica[0]");
    }

    #[test]
    fn times_are_normalised_to_utc_and_nonsense_is_refused() {
        assert_eq!(
            check_time("2026-12-02T14:05:00+01:00").unwrap(),
            "2026-12-02 13:05:00.000000+00"
        );
        assert!(matches!(
            check_time("yesterday"),
            Err(BackupError::BadTime(_))
        ));
    }
}
