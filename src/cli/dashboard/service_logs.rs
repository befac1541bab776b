//! The Logs page's service logs by machine: pick a machine and one of its
//! services (postgres, slon, haproxy, memcached, the app) and see the lines
//! `appgrid logs FILE MACHINE --service S -n N` prints (the same function,
//! [`crate::cli::logs::service_lines`], run on the engine thread).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Extension, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::oneshot;

use appgrid::dashboard::auth::Session;
use appgrid::engine::Workspace;
use appgrid::roles::console::log_prefixes;
use appgrid::state::State;

use super::routes::{self, Panel};
use super::worker::Work;
use crate::cli::{Failure, logs, report};

/// Lines shown when the page does not ask; at most [`MAX_LINES`].
const LINES: usize = 200;
const MAX_LINES: usize = 5_000;

/// A machine with logs, and its services' log pages.
#[derive(serde::Serialize)]
pub struct Choice {
    machine: String,
    services: Vec<(&'static str, String)>,
}

/// Every machine with logs, and the services whose logs it has (each with
/// the URL of its page).
pub fn choices(state: &State) -> Vec<Choice> {
    state
        .resources
        .keys()
        .filter_map(|a| {
            let prefixes = log_prefixes(*a)?;
            let machine = a.to_string();
            // An address is letters, digits, `.` and `[i]`.
            let query = machine.replace('[', "%5B").replace(']', "%5D");
            let services = logs::SERVICES
                .iter()
                .filter(|(_, p)| prefixes.contains(p))
                .map(|(n, _)| (*n, format!("/logs/service?machine={query}&service={n}")))
                .collect();
            Some(Choice { machine, services })
        })
        .collect()
}

/// Engine side: the lines, as `appgrid logs` prints them.
pub async fn read(
    file: &Path,
    state: Option<&Path>,
    machine: String,
    service: String,
    lines: usize,
) -> Result<Vec<String>, String> {
    let run = async {
        let ws = Workspace::open(file, state)?;
        let st = ws
            .load_state()?
            .ok_or_else(|| Failure::Message("nothing applied yet: there is no log".into()))?;
        logs::service_lines(&ws, st, &machine, Some(&service), lines).await
    };
    run.await.map_err(|e| report::plain_text(&e))
}

/// GET `/logs/service?machine=M&service=S[&lines=N]`.
pub async fn page(
    Shared(panel): Shared<Arc<Panel>>,
    Extension(s): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let state = match routes::load_state(&panel).await {
        Ok((_, Some(st))) => st,
        Ok((_, None)) => {
            return routes::failed(&panel, &s, "Service logs", "nothing applied yet");
        }
        Err(e) => return routes::failed(&panel, &s, "Service logs", &e),
    };
    let machine = q.get("machine").cloned().unwrap_or_default();
    let service = q.get("service").cloned().unwrap_or_default();
    let lines = q
        .get("lines")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(LINES)
        .clamp(1, MAX_LINES);
    let mut ctx = routes::context(&panel, &s, "logs", "Service logs");
    ctx.insert("choices", &choices(&state));
    ctx.insert("machine", &machine);
    ctx.insert("service", &service);
    ctx.insert("lines", &lines);
    let mut status = StatusCode::OK;
    if !machine.is_empty() {
        let (reply, rx) = oneshot::channel();
        let asked = panel.engine.send(Work::ServiceLogs {
            machine: machine.clone(),
            service: service.clone(),
            lines,
            reply,
        });
        let read = match asked {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| Err("the panel's engine thread stopped".into())),
            Err(e) => Err(e),
        };
        match read {
            Ok(text) => ctx.insert("text", &text),
            Err(e) => {
                ctx.insert("refused", &e);
                status = StatusCode::BAD_REQUEST;
            }
        }
    }
    let mut r = routes::render("service_logs", &ctx);
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}
