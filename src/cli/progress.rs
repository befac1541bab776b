//! Progress of an apply or destroy, as the walker reports it.
//!
//! On a terminal (stderr, text logs): a line per running step with its
//! elapsed time, a summary bar under them (steps finished of the plan's, time
//! so far), and a permanent line above them as each step ends — cargo's
//! style, drawn by indicatif. Anywhere else (CI logs, `--log-format json`):
//! one `tracing` event per step event, which the text format prints as the
//! plain lines `web[0]: launch…` and `web[0]: launch: done in 1.2s (…)`.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use appgrid::apply::Event;

use super::logging;
use super::term::{Paint, paint, term};

pub struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    running: HashMap<String, ProgressBar>,
    summary: ProgressBar,
    color: bool,
}

impl Progress {
    /// Progress for a walk of `steps` steps; bars only when `interactive`.
    pub fn new(steps: usize, interactive: bool) -> Progress {
        if !interactive || steps == 0 {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let summary = multi.add(ProgressBar::new(steps as u64));
        summary.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {elapsed}  {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        summary.enable_steady_tick(Duration::from_millis(200));
        logging::set_progress(Some(multi.clone()));
        Progress {
            bars: Some(Bars {
                multi,
                running: HashMap::new(),
                summary,
                color: term().stderr_color,
            }),
        }
    }

    /// Whether this process draws bars: stderr is a terminal and logs are text.
    pub fn interactive() -> bool {
        term().stderr_tty && logging::format() == logging::LogFormat::Text
    }

    pub fn event(&mut self, event: &Event) {
        match &mut self.bars {
            Some(bars) => bars.event(event),
            None => log(event),
        }
    }

    /// Take the bars off the screen (the permanent lines stay).
    pub fn finish(self) {
        if let Some(bars) = self.bars {
            for bar in bars.running.values() {
                bar.finish_and_clear();
            }
            bars.summary.finish_and_clear();
            logging::set_progress(None);
        }
    }
}

/// The plain line for each event, as a tracing event with its facts as fields.
pub fn log(event: &Event) {
    match event {
        Event::Started { label } => tracing::info!(step = %label, "{label}…"),
        Event::Finished {
            label,
            elapsed,
            detail,
        } => tracing::info!(
            step = %label,
            elapsed_s = elapsed.as_secs_f64(),
            detail = %detail,
            "{label}: done in {:.1}s ({detail})",
            elapsed.as_secs_f64()
        ),
        Event::Failed { label, error } => {
            tracing::error!(step = %label, error = %error, "{label}: FAILED: {error}")
        }
        Event::Skipped { label, reason } => {
            tracing::warn!(step = %label, reason = %reason, "{label}: skipped ({reason})")
        }
        Event::Saved { serial } => tracing::debug!(serial, "state saved (serial {serial})"),
    }
}

impl Bars {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { label } => {
                let bar = self
                    .multi
                    .insert_before(&self.summary, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                        .expect("a valid template"),
                );
                bar.set_message(label.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.running.insert(label.clone(), bar);
            }
            Event::Finished {
                label,
                elapsed,
                detail,
            } => {
                let mark = paint("done", Paint::Green, self.color);
                self.end(
                    label,
                    format!(
                        "{label}: {mark} in {:.1}s ({detail})",
                        elapsed.as_secs_f64()
                    ),
                );
            }
            Event::Failed { label, error } => {
                let mark = paint("FAILED", Paint::Red, self.color);
                self.end(label, format!("{label}: {mark}: {error}"));
            }
            Event::Skipped { label, reason } => {
                let mark = paint("skipped", Paint::Yellow, self.color);
                self.end(label, format!("{label}: {mark} ({reason})"));
            }
            Event::Saved { serial } => self.summary.set_message(format!("state serial {serial}")),
        }
    }

    /// A step ended: its spinner goes, a permanent line takes its place.
    fn end(&mut self, label: &str, line: String) {
        if let Some(bar) = self.running.remove(label) {
            bar.finish_and_clear();
        }
        let _ = self.multi.println(line);
        self.summary.inc(1);
    }
}
