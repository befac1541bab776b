//! A backup restored onto another machine than the one it was taken from:
//! the incoming machine of `db restore` into a new primary (issue 8). Its
//! Postgres is replaced by the backup (or a point in time after it) and
//! promoted; archiving stays off there until its first backup turns it on
//! for its own stanza (the restored settings would archive into the old
//! machine's).

use std::collections::BTreeMap;

use super::{BackupError, Repo, conf_value, stanza};
use crate::graph::ResourceAddress;
use crate::ops::backup::RepoAccess;
use crate::remote::Remote;
use crate::roles::configure::{Fleet, RoleConfigurator};
use crate::roles::postgres::PgNode;
use crate::state::MoveRestore;
use crate::state::ResourceState;

impl<F: Fleet> RoleConfigurator<F> {
    /// Before a point-in-time restore from the origin's own stanza: its WAL
    /// up to now is switched and archived, so the time asked for can be
    /// reached. A stanza of a machine that is gone is complete already.
    pub(in crate::roles) async fn archive_now(
        &self,
        resources: &BTreeMap<ResourceAddress, ResourceState>,
        of: &str,
    ) -> Result<(), BackupError> {
        let (repo, keep) = self.repo(&RepoAccess::default())?;
        let (machine, id, c, node) = self.origin_node(resources).await?;
        if stanza(&self.manifest.app.name, &id) != of {
            return Ok(());
        }
        let ctx = self.backup_context(&node, &repo, keep, of)?;
        let script = self.templates.render("backup/archive-now.sh", &ctx)?;
        c.remote
            .run(
                &format!("backup: archive {machine}'s WAL up to now"),
                &script,
            )
            .await
            .map_err(|e| super::explain(&repo, e))?;
        Ok(())
    }

    /// Replace the Postgres on `remote` (`node`) with `restore`'s backup,
    /// promoted. Only directory repositories: the walker that runs a move
    /// holds no S3 credentials (`db restore` refuses an S3 target first).
    pub(in crate::roles) async fn restore_onto(
        &self,
        remote: &F::Remote,
        node: &PgNode,
        restore: &MoveRestore,
    ) -> Result<(), BackupError> {
        let (repo, keep) = self.repo(&RepoAccess::default())?;
        if let Repo::S3(_) = repo {
            return Err(BackupError::NoCredentials);
        }
        conf_value("stanza", &restore.stanza)?;
        conf_value("backup id", &restore.backup)?;
        let mut ctx = self.backup_context(node, &repo, keep, &restore.stanza)?;
        let mut target_args: Vec<String> = vec![format!("--set={}", restore.backup)];
        match &restore.to_time {
            Some(t) => {
                let t = super::check_time(t)?;
                target_args.push("--type=time".into());
                target_args.push(format!("--target={t}"));
            }
            None => target_args.push("--type=immediate".into()),
        }
        target_args.push("--archive-mode=off".into());
        ctx.insert("target_args", &target_args);
        // The WAL switch `pitr` runs checks this machine's cluster against
        // the stanza, which is another machine's: not here.
        ctx.insert("pitr", &false);
        let script = self.templates.render("backup/restore.sh", &ctx)?;
        remote
            .run(
                &format!("restore: {} onto {}", restore.backup, node.endpoint()),
                &script,
            )
            .await
            .map_err(|e| super::explain(&repo, e))?;
        Ok(())
    }
}
