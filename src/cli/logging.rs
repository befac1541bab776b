//! Diagnostics through `tracing`: the subscriber the binary installs.
//!
//! What is shown: `APPGRID_LOG` (an `EnvFilter` directive such as `debug` or
//! `appgrid=trace,russh=debug`) if set, else by `-v`: none → appgrid's info
//! (progress lines and warnings) and other crates' warnings; `-v` → appgrid's
//! debug; `-vv` → appgrid's trace and other crates' info. (Other crates'
//! debug output, the SDK's included, only on request through `APPGRID_LOG`.)
//! aws-config's and aws-runtime's warnings are left out below `-vv`: what
//! they warn about (a missing profile or config file) reaches the user as
//! the credential error the preflight reports, with its fix.
//!
//! How: `--log-format text` (default) prints a message per line, prefixed
//! `warning:` / `error:` for those levels, like cargo; with `-v` or more each
//! line also gets its time, level, target and fields. `--log-format json`
//! prints one JSON object per event, with its span (the step it belongs to).
//! Lines go to stderr; while progress bars are drawn they are printed above
//! them ([`set_progress`]).

use std::io::Write;
use std::sync::Mutex;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use super::term::{Paint, paint};

/// Where log lines go: `text` for people, `json` for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The environment variable that overrides `-v`.
pub const LOG_ENV: &str = "APPGRID_LOG";

/// The filter for a `-v` count.
pub fn default_filter(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn,aws_config=error,aws_runtime=error,appgrid=info",
        1 => "warn,aws_config=error,aws_runtime=error,appgrid=debug",
        _ => "info,appgrid=trace",
    }
}

/// Progress bars being drawn on stderr, if any: log lines are printed above them.
static PROGRESS: Mutex<Option<indicatif::MultiProgress>> = Mutex::new(None);

pub fn set_progress(bars: Option<indicatif::MultiProgress>) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = bars;
}

/// stderr, with any progress bars moved out of the way for the line.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bars = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let write = || {
            let _ = std::io::stderr().lock().write_all(buf);
        };
        match bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

/// The default text format: the message alone, with cargo's prefixes.
struct Terse {
    color: bool,
}

/// Collects an event's `message` field, and its other fields as ` k=v`.
#[derive(Default)]
struct Message {
    text: String,
    fields: String,
}

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            self.fields
                .push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text = format!("{value:?}");
        } else {
            self.fields
                .push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Terse
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            Level::ERROR => Some(paint("error", Paint::Red, self.color)),
            Level::WARN => Some(paint("warning", Paint::Yellow, self.color)),
            _ => None,
        };
        if let Some(p) = prefix {
            write!(writer, "{p}: ")?;
        }
        let mut message = Message::default();
        event.record(&mut message);
        // appgrid's own messages say everything; another crate's may need
        // its fields to make sense.
        if event.metadata().target().starts_with("appgrid") {
            writeln!(writer, "{}", message.text)
        } else {
            writeln!(writer, "{}{}", message.text, message.fields)
        }
    }
}

static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The format chosen with `--log-format` (text until [`init`] ran).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Install the subscriber for this process.
pub fn init(verbosity: u8, format: LogFormat, color: bool) {
    let _ = FORMAT.set(format);
    let (filter, bad) = match std::env::var(LOG_ENV) {
        Ok(directive) if !directive.trim().is_empty() => match EnvFilter::try_new(&directive) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(default_filter(verbosity)),
                Some(format!(
                    "{LOG_ENV}={directive:?} is not a filter ({e}); using the default"
                )),
            ),
        },
        _ => (EnvFilter::new(default_filter(verbosity)), None),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(Stderr);
    let layer: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match (format, verbosity) {
        (LogFormat::Json, _) => {
            Box::new(layer.json().with_current_span(true).with_span_list(false))
        }
        (LogFormat::Text, 0) => Box::new(layer.with_ansi(color).event_format(Terse { color })),
        (LogFormat::Text, _) => Box::new(layer.with_ansi(color).with_target(true)),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    if let Some(bad) = bad {
        tracing::warn!("{bad}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_filter_parses() {
        for v in 0..4 {
            assert!(EnvFilter::try_new(default_filter(v)).is_ok(), "{v}");
        }
        assert!(default_filter(0).contains("appgrid=info"));
        assert!(default_filter(1).contains("appgrid=debug"));
        assert!(default_filter(2).contains("appgrid=trace"));
    }
}
