//! The panel's Scale page and its Releases deploy: the plan shown (what
//! `appgrid plan` prints), kept server-side as a proposal, and a confirm
//! (POST with the CSRF token) that starts a job applying exactly that plan
//! through [`crate::cli::scale::carry_out`], the function `appgrid scale`
//! runs, its progress streamed to the job page like a rollback's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::Form;
use axum::extract::{Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use appgrid::apply::Event;
use appgrid::dashboard::auth::Session;
use appgrid::manifest::edit::Counts;

use super::jobs::Job;
use super::routes::{App, context, csrf_ok, failed, forbidden_csrf, load_state, render};
use super::worker::{Work, event_line};
use crate::cli::apply::Report;
use crate::cli::scale::{Proposal, said};

/// How many shown plans wait for a confirm at most.
const KEPT: usize = 16;

/// Plans shown and not yet confirmed, by number; a confirm takes its plan
/// (a plan is applied once).
#[derive(Default)]
pub struct Proposals {
    list: Mutex<Vec<Option<Proposal>>>,
}

impl Proposals {
    /// Keeps `p`; only the last [`KEPT`] shown stay confirmable.
    fn keep(&self, p: Proposal) -> usize {
        let mut list = self.list.lock().expect("proposals lock");
        list.push(Some(p));
        let n = list.len();
        if let Some(old) = n.checked_sub(KEPT + 1) {
            list[old] = None;
        }
        n - 1
    }

    fn take(&self, id: usize) -> Option<Proposal> {
        self.list
            .lock()
            .expect("proposals lock")
            .get_mut(id)
            .and_then(Option::take)
    }
}

/// An apply's words, as lines of a panel job.
pub struct JobReport(pub Arc<Job>);

impl Report for JobReport {
    fn plan(&mut self, text: &str) {
        for l in text.lines() {
            self.0.push(l.to_string());
        }
    }
    fn line(&mut self, line: String) {
        self.0.push(line);
    }
    fn warn(&mut self, line: String) {
        self.0.push(line);
    }
    fn start(&mut self, steps: usize) {
        self.0.push(format!("Applying: {steps} step(s)…"));
    }
    fn event(&mut self, e: &Event) {
        if let Some(l) = event_line(e) {
            self.0.push(l);
        }
    }
    fn finish(&mut self) {}
}

/// The Scale page: the counts as inputs; with `?web=N&replicas=M`, the plan
/// `appgrid plan` prints for the manifest with those counts, and a confirm
/// that writes them into the manifest and applies that plan.
pub async fn scale_page(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (ws, _) = match load_state(&panel).await {
        Ok(v) => v,
        Err(e) => return failed(&panel, &s, "Scale", &e),
    };
    let m = &ws.manifest.manifest;
    let mut ctx = context(&panel, &s, "scale", "Scale");
    ctx.insert("file", &panel.file.display().to_string());
    ctx.insert("web", &m.web.count);
    ctx.insert("replicas", &m.database.as_ref().map(|d| d.replicas));
    ctx.insert(
        "autoscale",
        &m.autoscale
            .as_ref()
            .map(|a| format!("min {}, max {}, target {}", a.min, a.max, a.target)),
    );
    let replicas_autoscaled = m.autoscale.as_ref().is_some_and(|a| a.replicas.is_some());
    ctx.insert("replicas_autoscaled", &replicas_autoscaled);
    let number = |k: &str| q.get(k).and_then(|v| v.trim().parse::<u32>().ok());
    let (web, replicas) = (number("web"), number("replicas"));
    // What the autoscaler owns is not asked for (the page shows no input).
    let web = web.filter(|_| m.autoscale.is_none());
    let replicas = replicas.filter(|_| !replicas_autoscaled);
    // Only the counts that differ from the manifest's are written.
    let counts = Counts {
        web: web.filter(|&w| w != m.web.count),
        replicas: replicas.filter(|&r| Some(r) != m.database.as_ref().map(|d| d.replicas)),
    };
    let mut status = StatusCode::OK;
    if web.is_some() || replicas.is_some() {
        if web.is_some_and(|w| w == 0 || w > 1000) || replicas.is_some_and(|r| r > 20) {
            ctx.insert("refused", "web is 1 to 1000 and replicas 0 to 20");
            status = StatusCode::BAD_REQUEST;
        } else {
            match panel.engine.propose(counts).await {
                Ok(p) => {
                    ctx.insert("plan", &p.text);
                    ctx.insert("changes", &(p.plan.has_changes() || p.edited.is_some()));
                    ctx.insert("writes", &said(p.counts));
                    ctx.insert("proposal", &panel.proposals.keep(p));
                }
                Err(e) => {
                    ctx.insert("refused", &e);
                    status = StatusCode::BAD_GATEWAY;
                }
            }
            if let Some(w) = web {
                ctx.insert("asked_web", &w);
            }
            if let Some(r) = replicas {
                ctx.insert("asked_replicas", &r);
            }
        }
    }
    let mut r = render("scale", &ctx);
    *r.status_mut() = status;
    r
}

/// Releases → Deploy: the plan for what the manifest says, and its confirm.
pub async fn deploy_page(Shared(panel): Shared<App>, Extension(s): Extension<Session>) -> Response {
    let mut ctx = context(&panel, &s, "deploy", "Deploy");
    ctx.insert("file", &panel.file.display().to_string());
    match panel.engine.propose(Counts::default()).await {
        Ok(p) => {
            ctx.insert("plan", &p.text);
            ctx.insert("changes", &p.plan.has_changes());
            ctx.insert("proposal", &panel.proposals.keep(p));
            render("deploy", &ctx)
        }
        Err(e) => failed(&panel, &s, "Deploy", &e),
    }
}

/// The confirm of a Scale page's plan.
pub async fn scale_apply(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    confirmed(&panel, &s, &form, "Scale")
}

/// The confirm of a deploy's plan.
pub async fn deploy(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    confirmed(&panel, &s, &form, "Deploy")
}

fn confirmed(panel: &App, s: &Session, form: &HashMap<String, String>, title: &str) -> Response {
    if !csrf_ok(s, form) {
        return forbidden_csrf();
    }
    let proposal = form
        .get("proposal")
        .and_then(|id| id.parse::<usize>().ok())
        .and_then(|id| panel.proposals.take(id));
    let Some(proposal) = proposal else {
        let mut r = failed(
            panel,
            s,
            title,
            "This plan was applied already or is unknown: show the plan again.",
        );
        *r.status_mut() = StatusCode::CONFLICT;
        return r;
    };
    let what = match said(proposal.counts) {
        w if w.is_empty() => format!("{title}: the manifest's plan"),
        w => format!("{title}: {w}"),
    };
    let (id, job) = panel.jobs.start(what);
    if let Err(e) = panel.engine.send(Work::Carry {
        proposal: Box::new(proposal),
        job,
    }) {
        return failed(panel, s, title, &e);
    }
    Redirect::to(&format!("/jobs/{id}")).into_response()
}
