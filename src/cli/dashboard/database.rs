//! The Database page's engine side: the read-only query box run on the
//! replica's machine (psql through `Operations::console`, the console `db
//! psql` opens: over SSH on aws/hosts, a local process on `local`), and the
//! backups (`db backups`' list, `db backup`'s "back up now" under the state
//! lock). The HTTP handlers for the backups are here too; routes.rs only
//! routes to them.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Extension, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use tera::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use appgrid::apply::Configurator;
use appgrid::cloud::Cloud;
use appgrid::dashboard::auth::Session;
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::manifest::BackupTarget;
use appgrid::ops::Operations;
use appgrid::ops::backup::BackupInfo;
use appgrid::roles::console::ConsoleWhat;
use appgrid::state::State;

use super::jobs::Job;
use super::routes::{self, Panel};
use super::worker::{Engine, Work};
use crate::cli::{Failure, backup, providers, report};

/// psql's options for the query box: unaligned, tab-separated, no footer,
/// stop at the first error; no `.psqlrc`.
const PSQL_ARGS: [&str; 9] = [
    "-X",
    "-q",
    "-A",
    "-F",
    "\t",
    "-P",
    "footer=off",
    "-v",
    "ON_ERROR_STOP=1",
];

/// How long a query may take, connection included, before it is given up
/// (the statement timeout inside is shorter).
const QUERY_LIMIT: Duration = Duration::from_secs(20);

fn gone() -> String {
    "the panel's engine thread stopped".to_string()
}

async fn ask<T>(
    engine: &Engine,
    work: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Work,
) -> Result<T, String> {
    let (reply, rx) = oneshot::channel();
    engine.send(work(reply))?;
    rx.await.map_err(|_| gone())?
}

/// Run a checked query's script on `replica` (the engine thread does it).
pub async fn query(
    engine: &Engine,
    replica: ResourceAddress,
    script: String,
) -> Result<Vec<Vec<String>>, String> {
    ask(engine, |reply| Work::Query {
        replica,
        script,
        reply,
    })
    .await
}

/// Engine side of [`query`]: psql as the app's user on the replica's own
/// machine, the script on its stdin; rows as psql prints them.
pub async fn run_query(
    file: &Path,
    state: Option<&Path>,
    replica: ResourceAddress,
    script: String,
) -> Result<Vec<Vec<String>>, String> {
    let run = async {
        let ws = Workspace::open(file, state)?;
        let state = ws
            .load_state()?
            .ok_or_else(|| Failure::Message("nothing applied yet".into()))?;
        providers::with_operations(
            &ws,
            Query {
                state,
                replica,
                script,
            },
        )
        .await
    };
    run.await.map_err(|e| report::plain_text(&e))
}

struct Query {
    state: State,
    replica: ResourceAddress,
    script: String,
}

impl providers::OpsVisitor for Query {
    type Output = Vec<Vec<String>>;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<Self::Output, Failure> {
        let say = |m: String| Failure::Message(m);
        let what = ConsoleWhat::Psql {
            argv: PSQL_ARGS.iter().map(ToString::to_string).collect(),
        };
        let mut console = k
            .console(&self.state.resources, self.replica, &what, false)
            .await
            .map_err(|e| say(e.to_string()))?;
        // The console's transport redacts what it knows; the password too,
        // whatever psql says.
        if let Some(p) = self
            .state
            .resources
            .get(&ResourceAddress::config(Role::DbPrimary, 0))
            .and_then(|c| c.attributes.get("password"))
        {
            console.redactor.add(p);
        }
        console.stdio(Stdio::piped(), Stdio::piped(), Stdio::piped());
        console.command.kill_on_drop(true);
        let mut child = console
            .command
            .spawn()
            .map_err(|e| say(format!("cannot start psql on {}: {e}", self.replica)))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(self.script.as_bytes())
            .await
            .map_err(|e| say(format!("psql on {}: {e}", self.replica)))?;
        drop(stdin);
        let out = tokio::time::timeout(QUERY_LIMIT, child.wait_with_output())
            .await
            .map_err(|_| {
                say(format!(
                    "the query did not finish within {} s",
                    QUERY_LIMIT.as_secs()
                ))
            })?
            .map_err(|e| say(format!("psql on {}: {e}", self.replica)))?;
        let redact = |b: &[u8]| console.redactor.redact(&String::from_utf8_lossy(b));
        if !out.status.success() {
            return Err(say(redact(&out.stderr).trim().to_string()));
        }
        Ok(redact(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }
}

/// The backups the manifest's target holds (the engine thread lists them).
pub async fn backups(engine: &Engine) -> Result<Vec<BackupInfo>, String> {
    ask(engine, Work::Backups).await
}

/// Engine side of [`backups`]: `db backups`' list.
pub async fn list_backups(file: &Path, state: Option<&Path>) -> Result<Vec<BackupInfo>, String> {
    let run = async {
        let ws = Workspace::open(file, state)?;
        backup::list(&ws).await
    };
    run.await.map_err(|e| report::plain_text(&e))
}

/// Engine side of "Back up now": `db backup`'s function, under the state
/// lock, its progress on the job.
pub async fn back_up(file: &Path, state: Option<&Path>, lock_timeout: Duration, job: Arc<Job>) {
    job.push("Taking a full backup of the database origin…".to_string());
    match backup::take_now(file, state, lock_timeout).await {
        Ok(b) => {
            job.push(format!("Backup {} of {} taken:", b.id, b.origin));
            job.push(format!("  {}", backup::describe(&b)));
            job.finish(true, None);
        }
        Err(e) => job.finish(false, Some(report::plain_text(&e))),
    }
}

/// A backup as the page lists it.
#[derive(serde::Serialize)]
struct BackupRow {
    id: String,
    kind: &'static str,
    when: String,
    size: String,
    stored: String,
    origin: String,
}

fn row(b: &BackupInfo) -> BackupRow {
    BackupRow {
        id: b.id.clone(),
        // pgBackRest's label ends with the type: Full, Diff, Incr.
        kind: match b.id.chars().last() {
            Some('F') => "full",
            Some('D') => "differential",
            Some('I') => "incremental",
            _ => "-",
        },
        when: backup::when(b.stopped),
        size: backup::mib(b.size),
        stored: backup::mib(b.repo_size),
        origin: b.origin.clone(),
    }
}

/// Where `[database.backup]` keeps backups, as the page names it; `None`
/// without one.
fn target(ws: &Workspace) -> Option<String> {
    let b = ws.manifest.manifest.database.as_ref()?.backup.as_ref()?;
    Some(match &b.to {
        BackupTarget::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        BackupTarget::Directory { path } => format!("the directory {path}"),
    })
}

/// The Database page's backup section: the target and its backups, or how
/// to enable them.
pub async fn context(panel: &Panel, ctx: &mut Context) {
    let ws = match routes::load_state(panel).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            ctx.insert("backups_error", &e);
            return;
        }
    };
    ctx.insert("file", &panel.file.display().to_string());
    let Some(target) = target(&ws) else {
        ctx.insert("backup_target", &None::<String>);
        return;
    };
    ctx.insert("backup_target", &Some(target));
    match backups(&panel.engine).await {
        Ok(list) => {
            let rows: Vec<BackupRow> = list.iter().rev().map(row).collect();
            ctx.insert("backups", &rows);
        }
        Err(e) => ctx.insert("backups_error", &e),
    }
}

/// POST `/database/backup`: a confirm, then the job.
pub async fn back_up_now(
    Shared(panel): Shared<Arc<Panel>>,
    Extension(s): Extension<Session>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !routes::csrf_ok(&s, &form) {
        return routes::forbidden_csrf();
    }
    let ws = match routes::load_state(&panel).await {
        Ok((ws, _)) => ws,
        Err(e) => return routes::failed(&panel, &s, "Back up", &e),
    };
    let Some(target) = target(&ws) else {
        let mut r = routes::failed(
            &panel,
            &s,
            "Back up",
            "backups are not configured: add [database.backup] to the manifest first",
        );
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    if form.get("confirm").map(String::as_str) != Some("yes") {
        let mut ctx = routes::context(&panel, &s, "confirm", "Back up now");
        ctx.insert(
            "question",
            &format!(
                "Take a full backup of the database origin now, to {target}? It runs under \
                 the state lock, like `appgrid db backup`."
            ),
        );
        ctx.insert("action", "/database/backup");
        ctx.insert("fields", &Vec::<(String, String)>::new());
        ctx.insert("button", "Back up now");
        ctx.insert("back", "/database");
        return routes::render("confirm", &ctx);
    }
    let (id, job) = panel.jobs.start("Back up now".to_string());
    if let Err(e) = panel.engine.send(Work::Backup { job }) {
        return routes::failed(&panel, &s, "Back up", &e);
    }
    Redirect::to(&format!("/jobs/{id}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_row_names_its_type_size_and_time() {
        let b = BackupInfo {
            id: "20261202-133700F".into(),
            stanza: "blog.m-1".into(),
            origin: "db.primary".into(),
            machine: "m-1".into(),
            started: 1_764_682_600,
            stopped: 1_764_682_620,
            size: 3 * 1024 * 1024,
            repo_size: 1024 * 1024 / 2,
            checksum: None,
        };
        let r = row(&b);
        assert_eq!(r.kind, "full");
        assert_eq!(r.size, "3.0 MiB");
        assert_eq!(r.stored, "0.5 MiB");
        assert_eq!(r.when, "2025-12-02 13:37:00 UTC");
        let r = row(&BackupInfo {
            id: "20261202-133700F_20261202-140000I".into(),
            ..b
        });
        assert_eq!(r.kind, "incremental");
    }
}
