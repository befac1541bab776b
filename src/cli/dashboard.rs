//! `appgrid dashboard FILE`: the control panel (issue 14), served over HTTP
//! on loopback (or, with `--allow-remote`, TLS elsewhere), behind a
//! one-time login token and a session cookie. Every action runs through the
//! functions the CLI runs (see [`worker`]).

mod database;
mod jobs;
mod routes;
mod scale;
mod service_logs;
mod tls;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use appgrid::dashboard::auth::Sessions;
use appgrid::dashboard::listen;
use appgrid::engine::Workspace;

use super::Failure;
use super::term::outln;

pub struct Options {
    pub file: PathBuf,
    pub listen: SocketAddr,
    pub allow_remote: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub lock_timeout: Duration,
    /// How often the overview asks for the app's status while watched.
    pub interval: Duration,
}

pub async fn run(o: Options) -> Result<ExitCode, Failure> {
    listen::check(
        o.listen,
        o.allow_remote,
        o.tls_cert.is_some(),
        o.tls_key.is_some(),
    )
    .map_err(|e| Failure::Message(e.to_string()))?;
    let ws = Workspace::open(&o.file, o.state.as_deref())?;
    let tls = match (&o.tls_cert, &o.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(o.listen)
        .await
        .map_err(|e| Failure::Message(format!("cannot listen on {}: {e}", o.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Message(e.to_string()))?;
    let (sessions, token) = Sessions::new();
    let (graph, _) = tokio::sync::watch::channel(None);
    let panel = Arc::new(routes::Panel {
        file: o.file.clone(),
        state: o.state.clone(),
        app: ws.manifest.manifest.app.name.clone(),
        sessions,
        tls: tls.is_some(),
        engine: worker::Engine::start(o.file.clone(), o.state.clone(), o.lock_timeout),
        jobs: Default::default(),
        proposals: Default::default(),
        graph,
        interval: o.interval,
    });
    tokio::spawn(routes::watch_graph(Arc::clone(&panel)));
    let scheme = if tls.is_some() { "https" } else { "http" };
    outln!(
        "The appgrid panel for {} is at {scheme}://{bound}/login?token={token}\n\
         (the token works once; Ctrl-C stops the panel)",
        panel.app
    );
    let app = routes::router(panel);
    let served = match tls {
        Some(acceptor) => {
            axum::serve(tls::Listener::new(listener, acceptor), app)
                .with_graceful_shutdown(interrupted())
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(interrupted())
                .await
        }
    };
    served.map_err(|e| Failure::Message(format!("the panel stopped: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

async fn interrupted() {
    let _ = tokio::signal::ctrl_c().await;
}
