//! How failures and progress reach the terminal: `error: …` then
//! `  caused by: …` lines; manifest diagnostics rendered with their carets.

use std::error::Error as _;
use std::io::Write;

use appgrid::apply::Event;
use appgrid::engine::EngineError;
use appgrid::manifest::ManifestError;

/// A command's failure and its exit code.
#[derive(Debug)]
pub enum Failure {
    Engine(EngineError),
    Message(String),
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

pub fn print_failure(failure: &Failure) {
    let mut err = std::io::stderr().lock();
    match failure {
        Failure::Engine(EngineError::Manifest(ManifestError::Invalid { diagnostics, path })) => {
            let _ = write!(err, "{diagnostics}");
            let _ = writeln!(
                err,
                "error: {} has {} error(s); nothing was changed",
                path.display(),
                diagnostics.error_count()
            );
        }
        Failure::Engine(e) => {
            let _ = writeln!(err, "error: {e}");
            let mut source = e.source();
            // `#[error(transparent)]` repeats its source's text: skip exact repeats.
            let mut last = e.to_string();
            while let Some(s) = source {
                let text = s.to_string();
                if !last.contains(&text) {
                    let _ = writeln!(err, "  caused by: {text}");
                }
                last = text;
                source = s.source();
            }
        }
        Failure::Message(m) => {
            let _ = writeln!(err, "error: {m}");
        }
    }
}

/// One line per step event, on stderr, so stdout stays the plan.
pub fn print_event(event: &Event) {
    let mut err = std::io::stderr().lock();
    let _ = match event {
        Event::Started { label } => writeln!(err, "{label}…"),
        Event::Finished {
            label,
            elapsed,
            detail,
        } => {
            writeln!(
                err,
                "{label}: done in {:.1}s ({detail})",
                elapsed.as_secs_f64()
            )
        }
        Event::Failed { label, error } => writeln!(err, "{label}: FAILED: {error}"),
        Event::Skipped { label, reason } => writeln!(err, "{label}: skipped ({reason})"),
        Event::Saved { .. } => Ok(()),
    };
}

/// After an apply: where the app answers.
pub fn print_endpoints(state: &appgrid::state::State) {
    let lb = appgrid::graph::ResourceAddress::config(appgrid::graph::Role::Lb, 0);
    if let Some(url) = state
        .resources
        .get(&lb)
        .and_then(|r| r.attributes.get("url"))
    {
        println!("The app answers at {url}");
    }
}
