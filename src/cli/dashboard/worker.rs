//! The panel's engine thread: every action and every look at the machines
//! runs here, through the functions the CLI commands run (`status`,
//! `rollback`, the logs' `Operations::app_logs`), on a runtime of its own,
//! so the HTTP side never holds an engine future (which need not be `Send`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use appgrid::apply::{Configurator, Event};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::ops::Operations;
use appgrid::roles::app::{LogChunk, LogFrom};
use appgrid::roles::console::LogRequest;
use appgrid::state::State;
use appgrid::status::AppStatus;
use std::collections::BTreeMap;

use super::jobs::Job;
use super::scale::JobReport;
use crate::cli::scale::{self, Proposal};
use crate::cli::{Failure, ops, providers, releases, report, run};
use appgrid::manifest::edit::Counts;

pub enum Work {
    Status(oneshot::Sender<Result<(State, AppStatus), String>>),
    /// The app's log on every web server: the last lines (`None`), or what
    /// follows these offsets.
    Logs {
        after: Option<Vec<(ResourceAddress, u64)>>,
        reply: oneshot::Sender<Result<Vec<(ResourceAddress, LogChunk)>, String>>,
    },
    Rollback {
        release: String,
        job: Arc<Job>,
    },
    /// A checked query's script, run on a replica's machine.
    Query {
        replica: ResourceAddress,
        script: String,
        reply: oneshot::Sender<Result<Vec<Vec<String>>, String>>,
    },
    /// The backups `db backups` lists.
    Backups(oneshot::Sender<Result<Vec<appgrid::ops::backup::BackupInfo>, String>>),
    /// `db backup`, its progress on the job.
    Backup {
        job: Arc<Job>,
    },
    /// `appgrid logs FILE MACHINE --service S -n LINES`'s lines.
    ServiceLogs {
        machine: String,
        service: String,
        lines: usize,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// The plan `appgrid plan` prints for the manifest with these counts
    /// (`appgrid scale`'s proposal).
    Propose {
        counts: Counts,
        reply: oneshot::Sender<Result<Proposal, String>>,
    },
    /// Apply a proposal shown and confirmed, as `appgrid scale` does.
    Carry {
        proposal: Box<Proposal>,
        job: Arc<Job>,
    },
}

/// Where the engine thread takes work.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Work>,
}

impl Engine {
    pub fn start(file: PathBuf, state: Option<PathBuf>, lock_timeout: Duration) -> Engine {
        let (tx, mut rx) = mpsc::unbounded_channel::<Work>();
        let ctx = Arc::new(Ctx {
            file,
            state,
            lock_timeout,
        });
        std::thread::Builder::new()
            .name("appgrid-panel-engine".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the panel's engine runtime starts");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    while let Some(work) = rx.recv().await {
                        tokio::task::spawn_local(Arc::clone(&ctx).handle(work));
                    }
                });
            })
            .expect("the panel's engine thread starts");
        Engine { tx }
    }

    pub async fn status(&self) -> Result<(State, AppStatus), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Work::Status(reply))?;
        rx.await.map_err(|_| gone())?
    }

    pub async fn logs(
        &self,
        after: Option<Vec<(ResourceAddress, u64)>>,
    ) -> Result<Vec<(ResourceAddress, LogChunk)>, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Work::Logs { after, reply })?;
        rx.await.map_err(|_| gone())?
    }

    pub async fn propose(&self, counts: Counts) -> Result<Proposal, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Work::Propose { counts, reply })?;
        rx.await.map_err(|_| gone())?
    }

    pub fn send(&self, work: Work) -> Result<(), String> {
        self.tx.send(work).map_err(|_| gone())
    }
}

fn gone() -> String {
    "the panel's engine thread stopped".to_string()
}

struct Ctx {
    file: PathBuf,
    state: Option<PathBuf>,
    lock_timeout: Duration,
}

fn say(f: &Failure) -> String {
    report::plain_text(f)
}

/// A step's progress as one line (what `appgrid rollback` logs).
pub fn event_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::Started { label } => format!("{label}…"),
        Event::Finished {
            label,
            elapsed,
            detail,
        } => format!("{label}: done in {:.1}s ({detail})", elapsed.as_secs_f64()),
        Event::Failed { label, error } => format!("{label}: FAILED: {error}"),
        Event::Skipped { label, reason } => format!("{label}: skipped ({reason})"),
        Event::Saved { .. } => return None,
    })
}

impl Ctx {
    async fn handle(self: Arc<Self>, work: Work) {
        let state = self.state.as_deref();
        match work {
            Work::Status(reply) => {
                let r = ops::status_data(&self.file, state).await;
                let _ = reply.send(r.map_err(|e| say(&e)));
            }
            Work::Logs { after, reply } => {
                let _ = reply.send(self.logs(after).await.map_err(|e| say(&e)));
            }
            Work::Propose { counts, reply } => {
                let r = scale::propose(&self.file, state, counts).await;
                let _ = reply.send(r.map_err(|e| say(&e)));
            }
            Work::Carry { proposal, job } => {
                let counts = proposal.counts;
                // The panel's own interrupt stops the panel, not this walk.
                let (_keep, cancel) = tokio::sync::watch::channel(false);
                let r = scale::carry_out(
                    &self.file,
                    state,
                    self.lock_timeout,
                    *proposal,
                    Some(cancel),
                    &mut JobReport(Arc::clone(&job)),
                )
                .await;
                match r {
                    Ok((code, wrote)) => {
                        if wrote {
                            job.push(format!(
                                "{} now says {}.",
                                self.file.display(),
                                scale::said(counts)
                            ));
                        }
                        job.finish(code == std::process::ExitCode::SUCCESS, None)
                    }
                    Err(e) => job.finish(false, Some(say(&e))),
                }
            }
            Work::Query {
                replica,
                script,
                reply,
            } => {
                let r = super::database::run_query(&self.file, state, replica, script).await;
                let _ = reply.send(r);
            }
            Work::Backups(reply) => {
                let _ = reply.send(super::database::list_backups(&self.file, state).await);
            }
            Work::Backup { job } => {
                super::database::back_up(&self.file, state, self.lock_timeout, job).await;
            }
            Work::ServiceLogs {
                machine,
                service,
                lines,
                reply,
            } => {
                let r = super::service_logs::read(&self.file, state, machine, service, lines);
                let _ = reply.send(r.await);
            }
            Work::Rollback { release, job } => {
                let lines = Arc::clone(&job);
                let steps = Arc::clone(&job);
                let r = releases::rollback_reporting(
                    &self.file,
                    Some(&release),
                    state,
                    self.lock_timeout,
                    &mut move |l: String| lines.push(l),
                    &mut move |e: Event| {
                        if let Some(l) = event_line(&e) {
                            steps.push(l);
                        }
                    },
                )
                .await;
                match r {
                    Ok(_) => job.finish(true, None),
                    Err(e) => job.finish(false, Some(say(&e))),
                }
            }
        }
    }

    async fn logs(
        &self,
        after: Option<Vec<(ResourceAddress, u64)>>,
    ) -> Result<Vec<(ResourceAddress, LogChunk)>, Failure> {
        let ws = Workspace::open(&self.file, self.state.as_deref())?;
        let state = ws.load_state()?.ok_or_else(|| {
            Failure::Message("nothing applied yet: there is no log to show".to_string())
        })?;
        let from: Vec<(ResourceAddress, LogFrom)> = match after {
            None => run::web_servers(&state)
                .into_iter()
                .map(|m| (m, LogFrom::Last(100)))
                .collect(),
            Some(offsets) => offsets
                .into_iter()
                .map(|(m, o)| (m, LogFrom::Offset(o)))
                .collect(),
        };
        providers::with_operations(&ws, ReadLogs { state, from }).await
    }
}

struct ReadLogs {
    state: State,
    from: Vec<(ResourceAddress, LogFrom)>,
}

impl providers::OpsVisitor for ReadLogs {
    type Output = Vec<(ResourceAddress, LogChunk)>;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        k: Arc<K>,
    ) -> Result<Self::Output, Failure> {
        // The app's log through the same reader as `appgrid logs`.
        const APP_LOG: &str = "app.log";
        let requests: Vec<LogRequest> = self
            .from
            .iter()
            .map(|&(machine, from)| LogRequest {
                machine,
                prefixes: vec!["app."],
                lines: match from {
                    LogFrom::Last(n) => n,
                    LogFrom::Offset(_) => 0,
                },
                offsets: match from {
                    LogFrom::Offset(o) => Some(BTreeMap::from([(APP_LOG.to_string(), o)])),
                    LogFrom::Last(_) => None,
                },
            })
            .collect();
        let files = k
            .logs(&self.state.resources, &requests)
            .await
            .map_err(|e| Failure::Message(e.to_string()))?;
        Ok(self
            .from
            .iter()
            .zip(files)
            .map(|(&(machine, from), files)| {
                let chunk = match files.into_iter().find(|f| f.name == APP_LOG) {
                    Some(f) => LogChunk {
                        text: f.text,
                        end: f.end,
                    },
                    None => LogChunk {
                        text: String::new(),
                        end: match from {
                            LogFrom::Offset(o) => o,
                            LogFrom::Last(_) => 0,
                        },
                    },
                };
                (machine, chunk)
            })
            .collect())
    }
}
