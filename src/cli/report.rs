//! How failures reach the terminal: `error: …` then `  caused by: …` lines;
//! manifest diagnostics rendered by annotate-snippets (coloured on a
//! terminal, fitted to its width); the preflight's problems with their fixes.
//! With `--log-format json` a failure is one `error` event instead.

use std::error::Error as _;
use std::path::PathBuf;

use appgrid::engine::EngineError;
use appgrid::manifest::{DiagnosticStyle, ManifestError};
use appgrid::preflight::Report;

use super::logging::{self, LogFormat};
use super::term::{Paint, errln, paint, term};

/// A command's failure and its exit code.
#[derive(Debug)]
pub enum Failure {
    Engine(EngineError),
    Message(String),
    /// The preflight found something missing; nothing was changed.
    Preflight {
        manifest: PathBuf,
        report: Report,
    },
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        1
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::Engine(e)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Message(e)
    }
}

/// The failure as text: what `error:` introduces, then what it holds.
fn text(failure: &Failure, color: bool) -> (String, String) {
    match failure {
        Failure::Engine(EngineError::Manifest(ManifestError::Invalid { diagnostics, path })) => {
            let style = DiagnosticStyle {
                color,
                width: term().width,
            };
            (
                format!(
                    "{} has {} error(s); nothing was changed",
                    path.display(),
                    diagnostics.error_count()
                ),
                diagnostics.render(style),
            )
        }
        Failure::Engine(e) => {
            let mut causes = String::new();
            let mut source = e.source();
            // `#[error(transparent)]` repeats its source's text: skip exact repeats.
            let mut last = e.to_string();
            while let Some(s) = source {
                let text = s.to_string();
                if !last.contains(&text) {
                    causes.push_str(&format!("  caused by: {text}\n"));
                }
                last = text;
                source = s.source();
            }
            (e.to_string(), causes)
        }
        Failure::Message(m) => (m.clone(), String::new()),
        Failure::Preflight { manifest, report } => {
            let headline = format!(
                "{} cannot be applied on this machine yet; nothing was changed:",
                manifest.display()
            );
            let body = super::preflight::render(report, &headline, manifest);
            let (first, rest) = body.split_once('\n').unwrap_or((&body, ""));
            (first.to_string(), format!("{rest}\n"))
        }
    }
}

/// The failure as one uncoloured text (headline, then detail), for files.
pub fn plain_text(failure: &Failure) -> String {
    let (headline, detail) = text(failure, false);
    match detail.trim() {
        "" => headline,
        detail => format!("{headline}: {detail}"),
    }
}

pub fn print_failure(failure: &Failure) {
    if logging::format() == LogFormat::Json {
        let (headline, detail) = text(failure, false);
        match detail.trim_end() {
            "" => tracing::error!("{headline}"),
            detail => tracing::error!(detail, "{headline}"),
        }
        return;
    }
    let color = term().stderr_color;
    let (headline, detail) = text(failure, color);
    let label = paint("error", Paint::Red, color);
    match failure {
        // Diagnostics first (each says `error:`), then the count, as cargo does.
        Failure::Engine(EngineError::Manifest(ManifestError::Invalid { .. })) => {
            errln!("{detail}{label}: {headline}");
        }
        _ if detail.trim().is_empty() => errln!("{label}: {headline}"),
        _ => errln!("{label}: {headline}\n{}", detail.trim_end_matches('\n')),
    }
}

/// One plain line per step event (for callers that draw no progress bars).
pub fn print_event(event: &appgrid::apply::Event) {
    super::progress::log(event);
}

/// After an apply: the load balancer's URL, where the app answers.
pub fn endpoint(state: &appgrid::state::State) -> Option<&str> {
    let lb = appgrid::graph::ResourceAddress::config(appgrid::graph::Role::Lb, 0);
    state
        .resources
        .get(&lb)
        .and_then(|r| r.attributes.get("url"))
        .map(String::as_str)
}
