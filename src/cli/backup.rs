//! `appgrid db backup`, `db backups`, `db restore`, and the final backup and
//! data-loss guard `apply` and `destroy` run before a plan that would remove
//! the database (issue 8).
//!
//! S3 credentials come from the AWS chain (environment, profile, SSO,
//! instance role), resolved here and handed to the roles as secrets; none is
//! printed. `APPGRID_BACKUP_INSECURE_TLS=1` turns TLS verification of an S3
//! endpoint off: for tests against a self-signed store only.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::ProvideCredentials;
use secrecy::SecretString;

use appgrid::apply::Configurator;
use appgrid::autoscale::{CronExpr, TimeZone};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::manifest::BackupTarget;
use appgrid::ops::Locked;
use appgrid::ops::backup::{BackupInfo, RepoAccess, RestoreRequest, RestoreTarget, S3Credentials};
use appgrid::ops::{Operations, Resources};
use appgrid::plan::data_loss::DataLoss;
use appgrid::roles::backup::{check_time, schedule};
use appgrid::state::MoveRestore;
use appgrid::state::State;

use super::term::{errln, outln};
use super::{Failure, providers};

/// Tests only: do not verify the S3 endpoint's certificate.
const INSECURE_TLS_ENV: &str = "APPGRID_BACKUP_INSECURE_TLS";

/// How `apply`/`destroy` treat a plan that would lose the database.
#[derive(Debug, Clone, Copy, Default)]
pub struct DataLossFlags {
    /// Go ahead even though the data is lost (a final backup is still taken
    /// when the manifest has a target, unless `skip_final_backup`).
    pub allow_data_loss: bool,
    /// Take no final backup.
    pub skip_final_backup: bool,
}

/// The repository's access for this workspace's manifest: credentials from
/// the AWS chain when the target is S3.
async fn access(ws: &Workspace) -> Result<RepoAccess, Failure> {
    let target = ws
        .manifest
        .manifest
        .database
        .as_ref()
        .and_then(|d| d.backup.as_ref())
        .map(|b| &b.to);
    let skip_tls_verify = std::env::var(INSECURE_TLS_ENV).is_ok_and(|v| v == "1");
    let Some(BackupTarget::S3 { region, .. }) = target else {
        return Ok(RepoAccess {
            s3: None,
            skip_tls_verify,
        });
    };
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let s3 = match config.credentials_provider() {
        Some(provider) => match provider.provide_credentials().await {
            Ok(c) => Some(S3Credentials {
                access_key: SecretString::from(c.access_key_id()),
                secret_key: SecretString::from(c.secret_access_key()),
                session_token: c.session_token().map(SecretString::from),
            }),
            Err(e) => {
                tracing::debug!("AWS credential chain: {e}");
                None
            }
        },
        None => None,
    };
    Ok(RepoAccess {
        s3,
        skip_tls_verify,
    })
}

fn applied(ws: &Workspace) -> Result<State, Failure> {
    ws.load_state()?.ok_or_else(|| {
        Failure::Message(format!(
            "no state at {}: apply {} first",
            ws.store_path.display(),
            ws.manifest.path.display()
        ))
    })
}

pub(super) fn when(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(super) fn describe(b: &BackupInfo) -> String {
    format!(
        "{}  {}  {} ({} stored)  from {} ({})  sha256:{}",
        b.id,
        when(b.stopped),
        mib(b.size),
        mib(b.repo_size),
        b.origin,
        b.machine,
        b.checksum.as_deref().unwrap_or("-")
    )
}

enum Run {
    Backup { why: &'static str },
    List,
    Restore(RestoreRequest),
}

enum Done {
    One(BackupInfo),
    Many(Vec<BackupInfo>),
}

struct Visit {
    resources: Resources,
    access: RepoAccess,
    run: Run,
}

impl providers::OpsVisitor for Visit {
    type Output = Done;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<Done, Failure> {
        let e = |e: appgrid::ops::OperationError| Failure::Message(e.to_string());
        Ok(match self.run {
            Run::Backup { why } => Done::One(
                k.backup(&self.resources, &self.access, why)
                    .await
                    .map_err(e)?,
            ),
            Run::List => Done::Many(k.backups(&self.resources, &self.access).await.map_err(e)?),
            Run::Restore(r) => Done::One(
                k.restore(&self.resources, &self.access, &r)
                    .await
                    .map_err(e)?,
            ),
        })
    }
}

async fn run(ws: &Workspace, resources: Resources, run: Run) -> Result<Done, Failure> {
    let access = access(ws).await?;
    providers::with_operations(
        ws,
        Visit {
            resources,
            access,
            run,
        },
    )
    .await
}

/// A full backup of the origin; `why` is recorded with it.
async fn take(
    ws: &Workspace,
    resources: Resources,
    why: &'static str,
) -> Result<BackupInfo, Failure> {
    match run(ws, resources, Run::Backup { why }).await? {
        Done::One(b) => Ok(b),
        Done::Many(_) => Err(Failure::Message("a backup answered with a list".into())),
    }
}

/// A full backup now, under the state lock (`db backup`, and the panel's
/// "Back up now").
pub(super) async fn take_now(
    file: &Path,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<BackupInfo, Failure> {
    let ws = Workspace::open(file, state)?;
    let _lock = ws.lock("db backup", lock_timeout)?;
    let s = applied(&ws)?;
    take(&ws, s.resources, "manual").await
}

/// `appgrid db backup FILE`: a full backup now.
pub async fn backup(
    file: &Path,
    state: Option<&Path>,
    lock_timeout: Duration,
    json: bool,
) -> Result<ExitCode, Failure> {
    let b = take_now(file, state, lock_timeout).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&b).expect("json"));
    } else {
        outln!("Backup {} of {} taken:", b.id, b.origin);
        outln!("  {}", describe(&b));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the target holds for this app, oldest first (`db backups`, and the
/// panel's Database page).
pub(super) async fn list(ws: &Workspace) -> Result<Vec<BackupInfo>, Failure> {
    let s = applied(ws)?;
    let Done::Many(list) = run(ws, s.resources, Run::List).await? else {
        return Err(Failure::Message(
            "a listing answered with one backup".into(),
        ));
    };
    Ok(list)
}

/// `appgrid db backups FILE`: what the target holds for this app.
pub async fn backups(file: &Path, state: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let list = list(&ws).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&list).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        outln!("No backups of {} yet.", ws.manifest.manifest.app.name);
    }
    for b in &list {
        outln!("{}", describe(b));
    }
    Ok(ExitCode::SUCCESS)
}

/// `appgrid db restore FILE BACKUP [--to-time T] [--in-place]`.
pub async fn restore(
    file: &Path,
    id: &str,
    to_time: Option<String>,
    in_place: bool,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    if !in_place {
        return restore_new_primary(file, id, to_time, state, lock_timeout).await;
    }
    let ws = Workspace::open(file, state)?;
    let _lock = ws.lock("db restore", lock_timeout)?;
    let s = applied(&ws)?;
    let request = RestoreRequest {
        id: id.to_string(),
        to_time: to_time.clone(),
        target: RestoreTarget::InPlace,
    };
    let Done::One(b) = run(&ws, s.resources, Run::Restore(request)).await? else {
        return Err(Failure::Message("a restore answered with a list".into()));
    };
    match to_time {
        Some(t) => outln!(
            "Restored {} in place from backup {} to {t}.",
            b.origin,
            b.id
        ),
        None => outln!("Restored {} in place to backup {}.", b.origin, b.id),
    }
    Ok(ExitCode::SUCCESS)
}

/// `appgrid db restore FILE BACKUP [--to-time T]`: into a new primary. Every
/// check (the backup is known, the cluster is there, no move under way)
/// comes before state changes; then the restore is recorded as a move of
/// `db.primary` (`State::moves`, with the backup) and an apply carries it
/// out: launch, restore, new cluster, replicas subscribed again, app servers
/// released against it, the old primary retired. An apply that is
/// interrupted resumes the restore.
async fn restore_new_primary(
    file: &Path,
    id: &str,
    to_time: Option<String>,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    if let Some(BackupTarget::S3 { .. }) = ws
        .manifest
        .manifest
        .database
        .as_ref()
        .and_then(|d| d.backup.as_ref())
        .map(|b| &b.to)
    {
        return Err(Failure::Message(
            "restoring into a new primary from an S3 repository is not supported yet; \
             nothing was changed: pass --in-place to restore over the running origin"
                .into(),
        ));
    }
    if let Some(t) = &to_time {
        check_time(t).map_err(|e| Failure::Message(e.to_string()))?;
    }
    let mut locked =
        Locked::acquire(&ws, "db restore", lock_timeout).map_err(super::ops::locked)?;
    let s = locked.state().clone();
    let primary = ResourceAddress::instance(Role::DbPrimary, 0);
    if !s.resources.contains_key(&primary) {
        return Err(Failure::Message(format!(
            "state holds no {primary}: there is nothing to restore into; nothing was changed"
        )));
    }
    if !s.moves.is_empty() {
        let names: Vec<String> = s.moves.keys().map(|a| a.to_string()).collect();
        return Err(Failure::Message(format!(
            "a move of {} is under way: run `appgrid apply` to finish it first; nothing was changed",
            names.join(", ")
        )));
    }
    if !s.resources.contains_key(&ResourceAddress::SlonyCluster) {
        return Err(Failure::Message(
            "restoring into a new primary needs the Slony-I cluster (`[database] replicas` of 1 \
             or more); nothing was changed: pass --in-place to restore over the running origin"
                .into(),
        ));
    }
    let Done::Many(known) = run(&ws, s.resources.clone(), Run::List).await? else {
        return Err(Failure::Message(
            "a listing answered with one backup".into(),
        ));
    };
    let Some(backup) = known.iter().find(|b| b.id == id) else {
        let ids: Vec<&str> = known.iter().map(|b| b.id.as_str()).collect();
        return Err(Failure::Message(format!(
            "no backup {id} of {}; `appgrid db backups` lists them{}; nothing was changed",
            ws.manifest.manifest.app.name,
            if ids.is_empty() {
                " (there are none yet)".to_string()
            } else {
                format!(" (known: {})", ids.join(", "))
            }
        )));
    };
    let restore = MoveRestore {
        backup: backup.id.clone(),
        stanza: backup.stanza.clone(),
        to_time: to_time.clone(),
    };
    let moving = appgrid::apply::restore_move(&s, primary, restore)
        .ok_or_else(|| Failure::Message(format!("state holds no {primary}")))?;
    let node = moving.node;
    locked
        .update(|st| {
            st.moves.insert(primary, moving);
        })
        .map_err(super::ops::locked)?;
    locked.release();
    match &to_time {
        Some(t) => outln!(
            "Restoring backup {} (taken from {}) to {t} into a new primary (Slony-I node {node})…",
            backup.id,
            backup.origin
        ),
        None => outln!(
            "Restoring backup {} (taken from {}) into a new primary (Slony-I node {node})…",
            backup.id,
            backup.origin
        ),
    }
    super::apply::run(super::apply::Options {
        file: file.to_path_buf(),
        parallelism: 10,
        yes: true,
        lock_timeout,
        state: state.map(Path::to_path_buf),
        destroy: false,
        data_loss: DataLossFlags::default(),
        roll_forward: false,
    })
    .await
}

/// The guard `apply` and `destroy` run once the plan is known and before
/// anything changes (and before asking): a plan that loses the database goes
/// ahead only after a final backup, or with `--allow-data-loss`. `Ok(true)`:
/// take the final backup ([`final_backup`]) once the user has confirmed.
pub fn guard(ws: &Workspace, loss: &DataLoss, flags: DataLossFlags) -> Result<bool, Failure> {
    let has_target = ws
        .manifest
        .manifest
        .database
        .as_ref()
        .is_some_and(|d| d.backup.is_some());
    let names = loss.names();
    if has_target && !flags.skip_final_backup {
        return Ok(true);
    }
    if flags.allow_data_loss {
        let why = if flags.skip_final_backup {
            "--skip-final-backup"
        } else {
            "the manifest has no [database.backup]"
        };
        errln!(
            "WARNING: no final backup ({why}): the data on {names} is lost for good \
             (--allow-data-loss)."
        );
        return Ok(false);
    }
    let ways = if flags.skip_final_backup {
        "  - drop --skip-final-backup, so a final backup is taken first, or\n  \
         - pass --allow-data-loss as well, to go ahead without one"
    } else {
        "  - add [database.backup] with `to = \"s3://bucket/prefix\"` (or a directory, for the \
         local provider): a final backup is then taken first, or\n  \
         - take a backup with `appgrid db backup` (with [database.backup]) and then pass \
         --allow-data-loss, or\n  \
         - pass --allow-data-loss to go ahead without a backup"
    };
    Err(Failure::Message(format!(
        "this would destroy the data on {names}, and no final backup would be taken; \
         nothing was changed. Ways out:\n{ways}"
    )))
}

/// The final backup before a plan that loses the database; its failure
/// stops the plan before anything changes.
pub async fn final_backup(
    ws: &Workspace,
    loss: &DataLoss,
    resources: &Resources,
) -> Result<(), Failure> {
    let names = loss.names();
    outln!("Taking a final backup of {names} before they go…");
    match take(ws, resources.clone(), "final").await {
        Ok(b) => {
            outln!("Final backup taken: {}", describe(&b));
            Ok(())
        }
        Err(e) => Err(Failure::Message(format!(
            "the final backup of {names} failed, so nothing was changed: {}\n\
             Fix the backup target, or pass --skip-final-backup --allow-data-loss to go \
             ahead without one (the data is lost)",
            failure_text(&e)
        ))),
    }
}

/// Scheduled backups, run by the autoscale runner after each pass: one when
/// `[database.backup] schedule` has started since the newest backup in the
/// repository. `None`: nothing due (or nothing to back up).
pub async fn scheduled(ws: &Workspace, now: i64) -> Result<Option<BackupInfo>, Failure> {
    let Some(b) = ws
        .manifest
        .manifest
        .database
        .as_ref()
        .and_then(|d| d.backup.as_ref())
    else {
        return Ok(None);
    };
    let Some(cron) = &b.schedule else {
        return Ok(None);
    };
    let cron = CronExpr::parse(cron)
        .map_err(|e| Failure::Message(format!("[database.backup] schedule: {e}")))?;
    let zone = TimeZone::load(&b.timezone)
        .map_err(|e| Failure::Message(format!("[database.backup] timezone: {e}")))?;
    let rule = schedule::rule(cron, zone);
    let Some(state) = ws.load_state()? else {
        return Ok(None);
    };
    if !state
        .resources
        .contains_key(&ResourceAddress::instance(Role::DbPrimary, 0))
    {
        return Ok(None);
    }
    let Done::Many(list) = run(ws, state.resources.clone(), Run::List).await? else {
        return Err(Failure::Message(
            "a listing answered with one backup".into(),
        ));
    };
    let newest = list.iter().map(|b| b.started).max();
    if schedule::due(&rule, newest, now).is_none() {
        return Ok(None);
    }
    take(ws, state.resources, "scheduled").await.map(Some)
}

/// A line for a scheduled backup's report.
pub fn scheduled_line(b: &BackupInfo) -> String {
    format!("Scheduled backup taken: {}", describe(b))
}

/// A failure's text, for a line that goes on after it.
pub(super) fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Message(m) => m.clone(),
        Failure::Engine(e) => e.to_string(),
        Failure::Preflight { .. } => "the preflight failed".to_string(),
    }
}
