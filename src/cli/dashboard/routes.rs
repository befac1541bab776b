//! The panel's HTTP side: the session gate, the pages and their event
//! streams. Every look and every action goes to the engine thread
//! ([`super::worker`]); nothing here changes state itself.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use futures_util::stream::{self, Stream, StreamExt};
use tera::Context;
use tokio::sync::watch;

use appgrid::dashboard::auth::{self, Session, Sessions};
use appgrid::dashboard::{overview, pages, query};
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::state::State;

use super::jobs::Jobs;
use super::scale;
use super::worker::{Engine, Work};

/// What every handler shares.
pub struct Panel {
    pub file: PathBuf,
    pub state: Option<PathBuf>,
    pub app: String,
    pub sessions: Sessions,
    pub tls: bool,
    pub engine: Engine,
    pub jobs: Jobs,
    /// Plans shown by the Scale page and Deploy, waiting for their confirm.
    pub proposals: scale::Proposals,
    /// The overview's latest SVG, while someone watches `/events`.
    pub graph: watch::Sender<Option<Arc<String>>>,
    pub interval: Duration,
}

pub(super) type App = Arc<Panel>;

pub fn router(panel: App) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/events", get(graph_events))
        .route("/api/health", get(health_json))
        .route("/releases", get(releases_page))
        .route("/releases/rollback", post(rollback))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/events", get(job_events))
        .route("/logs", get(logs_page))
        .route("/logs/events", get(log_events))
        .route("/database", get(database_page))
        .route("/database/query", post(database_query))
        .route("/database/backup", post(super::database::back_up_now))
        .route("/logs/service", get(super::service_logs::page))
        .route("/autoscaling", get(autoscaling_page))
        .route("/scale", get(scale::scale_page))
        .route("/scale/apply", post(scale::scale_apply))
        .route(
            "/releases/deploy",
            get(scale::deploy_page).post(scale::deploy),
        )
        .route("/static/{name}", get(asset))
        .route("/login", get(login))
        .layer(middleware::from_fn_with_state(Arc::clone(&panel), gate))
        .with_state(panel)
}

/// Headers on every answer: no caching, no framing, no sniffing, no referrer
/// to other sites (the login URL carries the token; `no-referrer` would make
/// the browser send `Origin: null` on the panel's own forms).
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", "Not allowed");
    ctx.insert("message", message);
    let body = pages::render("error", &ctx).unwrap_or_else(|e| e.to_string());
    (status, Html(body)).into_response()
}

/// The session gate: `/login` and the static files need none; everything
/// else needs the session cookie (401); a POST also needs to come from this
/// panel's own pages (403 for a cross-site one; the CSRF token is checked by
/// each POST handler against its form).
async fn gate(Shared(panel): Shared<App>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/login" || path.starts_with("/static/") {
        return harden(next.run(req).await);
    }
    let session = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| auth::cookie_value(c, auth::COOKIE))
        .and_then(|id| panel.sessions.find(id));
    let Some(session) = session else {
        return harden(refuse(
            StatusCode::UNAUTHORIZED,
            "Not signed in: open the URL `appgrid dashboard` printed (its token works once).",
        ));
    };
    if *req.method() != Method::GET && !same_origin(req.headers(), panel.tls) {
        return harden(refuse(
            StatusCode::FORBIDDEN,
            "Refused: this request did not come from the panel's own pages.",
        ));
    }
    req.extensions_mut().insert(session);
    harden(next.run(req).await)
}

/// A browser says where a request comes from (`Sec-Fetch-Site`, `Origin`);
/// a request from another site is refused even with the cookie.
fn same_origin(h: &HeaderMap, tls: bool) -> bool {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    // A browser's own word (a page cannot set it): decisive when present.
    match get("sec-fetch-site") {
        Some("same-origin") => return true,
        Some(_) => return false,
        None => {}
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => {
            let scheme = if tls { "https" } else { "http" };
            origin == format!("{scheme}://{host}")
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The CSRF token in a form, checked against the session's.
pub(super) fn csrf_ok(session: &Session, form: &HashMap<String, String>) -> bool {
    form.get("csrf")
        .is_some_and(|t| auth::same(t, &session.csrf))
}

pub(super) fn forbidden_csrf() -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "Refused: the form's CSRF token is missing or wrong; reload the page and try again.",
    )
}

async fn login(Shared(panel): Shared<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let token = q.get("token").map(String::as_str).unwrap_or("");
    match panel.sessions.exchange(token) {
        Some(session) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&auth::set_cookie(&session, panel.tls))
                    .expect("a cookie of hex digits"),
            );
            r
        }
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "This login token is wrong or was used already: restart `appgrid dashboard` for a new one.",
        ),
    }
}

async fn asset(UrlPath(name): UrlPath<String>) -> Response {
    match pages::asset(&name) {
        Some(body) => {
            let kind = if name.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            ([(header::CONTENT_TYPE, kind)], body).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub(super) fn context(panel: &Panel, session: &Session, page: &str, title: &str) -> Context {
    let mut ctx = Context::new();
    ctx.insert("app", &panel.app);
    ctx.insert("page", page);
    ctx.insert("title", title);
    ctx.insert("csrf", &session.csrf);
    ctx
}

pub(super) fn render(page: &str, ctx: &Context) -> Response {
    match pages::render(page, ctx) {
        Ok(body) => Html(body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(super) fn failed(panel: &Panel, session: &Session, title: &str, message: &str) -> Response {
    let mut ctx = context(panel, session, "error", title);
    ctx.insert("message", message);
    let mut r = render("error", &ctx);
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// The state as the CLI reads it (off the async threads: an S3 state blocks).
pub(super) async fn load_state(panel: &Panel) -> Result<(Workspace, Option<State>), String> {
    let (file, state) = (panel.file.clone(), panel.state.clone());
    tokio::task::spawn_blocking(move || {
        let ws = Workspace::open(&file, state.as_deref()).map_err(|e| e.to_string())?;
        let s = ws.load_state().map_err(|e| e.to_string())?;
        Ok((ws, s))
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn overview_page(Shared(panel): Shared<App>, Extension(s): Extension<Session>) -> Response {
    let (state, status) = match panel.engine.status().await {
        Ok(v) => v,
        Err(e) => return failed(&panel, &s, "Overview", &e),
    };
    let health = overview::health(&state.resources, &status);
    let svg = overview::svg(&state.resources, &health);
    let machines = overview::rows(&state.resources, &health);
    let mut ctx = context(&panel, &s, "overview", "Overview");
    ctx.insert("serial", &state.serial);
    ctx.insert("svg", &svg);
    ctx.insert("machines", &machines);
    ctx.insert(
        "problem",
        &status
            .origin
            .as_ref()
            .filter(|o| !o.answers)
            .map(|o| format!("The database origin {} does not answer.", o.node)),
    );
    render("overview", &ctx)
}

/// Health of every machine as JSON (what the overview colours).
async fn health_json(Shared(panel): Shared<App>) -> Response {
    match panel.engine.status().await {
        Ok((state, status)) => {
            let h: HashMap<String, &str> = overview::health(&state.resources, &status)
                .into_iter()
                .map(|(a, h)| (a.to_string(), h.as_str()))
                .collect();
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&h).expect("health serializes"),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

/// Poll `status` every interval while someone watches, and publish the SVG
/// when it changes.
pub async fn watch_graph(panel: App) {
    loop {
        tokio::time::sleep(panel.interval).await;
        if panel.graph.receiver_count() == 0 {
            continue;
        }
        match panel.engine.status().await {
            Ok((state, status)) => {
                let svg = overview::svg(
                    &state.resources,
                    &overview::health(&state.resources, &status),
                );
                panel.graph.send_if_modified(|old| {
                    if old.as_deref() == Some(&svg) {
                        false
                    } else {
                        *old = Some(Arc::new(svg));
                        true
                    }
                });
            }
            Err(e) => tracing::warn!("panel: status failed: {e}"),
        }
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Sse, Infallible>> + Send>>;
type EventStream = axum::response::Sse<axum::response::sse::KeepAliveStream<Events>>;

fn sse(s: impl Stream<Item = Sse> + Send + 'static) -> EventStream {
    let events: Events = Box::pin(s.map(Ok::<Sse, Infallible>));
    axum::response::Sse::new(events).keep_alive(KeepAlive::default())
}

async fn graph_events(Shared(panel): Shared<App>) -> EventStream {
    let mut rx = panel.graph.subscribe();
    rx.mark_changed();
    sse(stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            let svg = rx.borrow_and_update().clone();
            if let Some(svg) = svg {
                return Some((Sse::default().event("graph").data(svg.as_str()), rx));
            }
        }
    }))
}

#[derive(serde::Serialize)]
struct ReleaseRow {
    number: u32,
    status: String,
    code: String,
    config: String,
    at: String,
    by: String,
    rollback: bool,
}

fn short(d: &str) -> String {
    d.get(..12).unwrap_or(d).to_string()
}

async fn releases_page(Shared(panel): Shared<App>, Extension(s): Extension<Session>) -> Response {
    let state = match load_state(&panel).await {
        Ok((_, st)) => st,
        Err(e) => return failed(&panel, &s, "Releases", &e),
    };
    let releases = state.map(|st| st.releases).unwrap_or_default();
    let rows: Vec<ReleaseRow> = releases
        .records
        .iter()
        .rev()
        .map(|r| ReleaseRow {
            number: r.number,
            status: r.status.to_string(),
            code: short(&r.content.code),
            config: short(&r.content.config),
            at: r.at.clone(),
            by: r.by.clone(),
            rollback: releases.rollback_target(Some(r.number)).is_ok(),
        })
        .collect();
    let mut ctx = context(&panel, &s, "releases", "Releases");
    ctx.insert("releases", &rows);
    ctx.insert("pinned", &releases.pinned.as_ref().map(|p| p.number));
    render("releases", &ctx)
}

async fn rollback(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden_csrf();
    }
    let release = form.get("release").cloned().unwrap_or_default();
    if let Err(e) = crate::cli::releases::parse_number(&release) {
        let mut r = failed(&panel, &s, "Roll back", &crate::cli::report::plain_text(&e));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    if form.get("confirm").map(String::as_str) != Some("yes") {
        let mut ctx = context(&panel, &s, "confirm", "Roll back");
        ctx.insert(
            "question",
            &format!(
                "Roll back every web server to {release}, one at a time and drained? The \
                 manifest is not edited; `appgrid apply --roll-forward` releases it again."
            ),
        );
        ctx.insert("action", "/releases/rollback");
        ctx.insert("fields", &[("release", &release)]);
        ctx.insert("button", &format!("Roll back to {release}"));
        ctx.insert("back", "/releases");
        return render("confirm", &ctx);
    }
    let (id, job) = panel.jobs.start(format!("Rollback to {release}"));
    if let Err(e) = panel.engine.send(Work::Rollback { release, job }) {
        return failed(&panel, &s, "Roll back", &e);
    }
    Redirect::to(&format!("/jobs/{id}")).into_response()
}

async fn job_page(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
    UrlPath(id): UrlPath<usize>,
) -> Response {
    let Some(job) = panel.jobs.get(id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (lines, done) = job.since(0);
    let mut ctx = context(&panel, &s, "job", &job.what);
    ctx.insert("id", &id);
    ctx.insert("lines", &lines);
    ctx.insert("result", done.unwrap_or(""));
    render("job", &ctx)
}

async fn job_events(Shared(panel): Shared<App>, UrlPath(id): UrlPath<usize>) -> Response {
    let Some(job) = panel.jobs.get(id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // (job, lines sent, finished)
    sse(
        stream::unfold((job, 0usize, false), |(job, sent, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let (lines, done) = job.since(sent);
                if !lines.is_empty() {
                    let n = sent + lines.len();
                    return Some((
                        stream::iter(
                            lines
                                .into_iter()
                                .map(|l| Sse::default().event("line").data(l)),
                        )
                        .boxed(),
                        (job, n, false),
                    ));
                }
                if let Some(done) = done {
                    return Some((
                        stream::iter([Sse::default().event("done").data(done)]).boxed(),
                        (job, sent, true),
                    ));
                }
                job.changed().await;
            }
        })
        .flatten(),
    )
    .into_response()
}

async fn logs_page(Shared(panel): Shared<App>, Extension(s): Extension<Session>) -> Response {
    let machines: Vec<String> = match load_state(&panel).await {
        Ok((_, Some(st))) => crate::cli::run::web_servers(&st)
            .iter()
            .map(ToString::to_string)
            .collect(),
        Ok((_, None)) => Vec::new(),
        Err(e) => return failed(&panel, &s, "Logs", &e),
    };
    let mut ctx = context(&panel, &s, "logs", "Logs");
    ctx.insert("machines", &machines);
    if let Ok((_, Some(st))) = load_state(&panel).await {
        ctx.insert("choices", &super::service_logs::choices(&st));
    }
    render("logs", &ctx)
}

/// The app's log from every web server: the last lines, then what follows,
/// every second; a line an event, prefixed with its machine.
async fn log_events(Shared(panel): Shared<App>) -> EventStream {
    type Offsets = Option<Vec<(ResourceAddress, u64)>>;
    sse(stream::unfold(
        (panel, None::<Vec<(ResourceAddress, u64)>>, true),
        |(panel, offsets, first): (App, Offsets, bool)| async move {
            if !first {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let (events, next) = match panel.engine.logs(offsets.clone()).await {
                Ok(chunks) => {
                    let width = chunks
                        .iter()
                        .map(|(m, _)| m.to_string().len())
                        .max()
                        .unwrap_or(0);
                    let mut events = Vec::new();
                    for (m, c) in &chunks {
                        for line in c.text.lines() {
                            events.push(
                                Sse::default()
                                    .event("line")
                                    .data(format!("{:<width$} | {line}", m.to_string())),
                            );
                        }
                    }
                    (
                        events,
                        Some(chunks.iter().map(|(m, c)| (*m, c.end)).collect()),
                    )
                }
                Err(e) => (vec![Sse::default().event("problem").data(e)], offsets),
            };
            Some((stream::iter(events), (panel, next, false)))
        },
    )
    .flatten())
}

fn replicas(state: &State) -> Vec<String> {
    state
        .resources
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
        .filter(|a| {
            !state.resources[*a]
                .attributes
                .contains_key(appgrid::ops::FAILED_OVER)
        })
        .map(ToString::to_string)
        .collect()
}

async fn database_page(Shared(panel): Shared<App>, Extension(s): Extension<Session>) -> Response {
    database(&panel, &s, None, String::new(), None, None).await
}

async fn database(
    panel: &Panel,
    s: &Session,
    chosen: Option<String>,
    sql: String,
    refused: Option<String>,
    rows: Option<Vec<Vec<String>>>,
) -> Response {
    let (state, status) = match panel.engine.status().await {
        Ok(v) => v,
        Err(e) => return failed(panel, s, "Database", &e),
    };
    let mut ctx = context(panel, s, "database", "Database");
    ctx.insert("replication", &status.replication);
    ctx.insert("origin", &status.origin.as_ref().map(|o| o.node.clone()));
    ctx.insert(
        "origin_answers",
        &status.origin.as_ref().is_none_or(|o| o.answers),
    );
    ctx.insert("replicas", &replicas(&state));
    ctx.insert("chosen", &chosen.unwrap_or_default());
    ctx.insert("sql", &sql);
    ctx.insert("limit", &query::ROW_LIMIT);
    ctx.insert("refused", &refused);
    ctx.insert("rows", &rows);
    super::database::context(panel, &mut ctx).await;
    let mut r = render("database", &ctx);
    if refused.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

async fn database_query(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return forbidden_csrf();
    }
    let sql = form.get("sql").cloned().unwrap_or_default();
    let replica = form.get("replica").cloned().unwrap_or_default();
    let outcome = match query::check(&sql) {
        Err(e) => Err(e.to_string()),
        Ok(checked) => run_query(&panel, &replica, checked).await,
    };
    match outcome {
        Ok(rows) => database(&panel, &s, Some(replica), sql, None, Some(rows)).await,
        Err(e) => database(&panel, &s, Some(replica), sql, Some(e), None).await,
    }
}

/// Run a checked query on `replica` as the app's user, on the replica's own
/// machine (see [`super::database::run_query`]).
async fn run_query(
    panel: &Panel,
    replica: &str,
    checked: &str,
) -> Result<Vec<Vec<String>>, String> {
    let (_, state) = load_state(panel).await?;
    let state = state.ok_or("nothing applied yet")?;
    if !replicas(&state).iter().any(|r| r == replica) {
        return Err(format!("{replica} is not a replica of this app"));
    }
    let address: ResourceAddress = replica
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| e.to_string())?;
    super::database::query(&panel.engine, address, query::script(checked)).await
}

async fn autoscaling_page(
    Shared(panel): Shared<App>,
    Extension(s): Extension<Session>,
) -> Response {
    let (ws, state) = match load_state(&panel).await {
        Ok(v) => v,
        Err(e) => return failed(&panel, &s, "Autoscaling", &e),
    };
    let mut ctx = context(&panel, &s, "autoscaling", "Autoscaling");
    let m = &ws.manifest.manifest;
    ctx.insert("web", &m.web.count);
    if let Some(a) = &m.autoscale {
        ctx.insert(
            "policy",
            &serde_json::json!({
                "metric": serde_json::to_value(a.metric).unwrap_or_default(),
                "target": a.target, "min": a.min, "max": a.max,
            }),
        );
        ctx.insert(
            "chosen",
            &state
                .as_ref()
                .and_then(|s| s.autoscale.as_ref())
                .map(|c| c.web),
        );
        let record =
            appgrid::autoscale::live::load(&appgrid::autoscale::live::record_path(&ws.store_path))
                .unwrap_or_default();
        ctx.insert(
            "chart",
            &appgrid::dashboard::autoscaling::chart(
                &record,
                a.target,
                &format!("{}: load and servers", panel.app),
            ),
        );
        let mut history = appgrid::autoscale::history(&record);
        history.reverse();
        history.truncate(200);
        ctx.insert("history", &history);
    } else {
        ctx.insert("policy", &None::<()>);
    }
    render("autoscaling", &ctx)
}
