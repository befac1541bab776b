//! The terminal: whether stdout and stderr are terminals, whether colour is
//! wanted there, and writing to stdout without ever panicking.
//!
//! Colour only on a terminal, and never when `NO_COLOR` is set to anything
//! non-empty (no-color.org) or `TERM=dumb`. A closed stdout
//! (`appgrid plan f.toml | head -1`) is not an error: writes to it are
//! dropped, the command finishes what it was doing (an apply still saves its
//! state) and exits with its own code, with no panic message.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy)]
pub struct Term {
    pub stderr_tty: bool,
    pub stdout_color: bool,
    pub stderr_color: bool,
    /// Columns of the terminal on stderr (for diagnostics), or 140.
    pub width: usize,
}

static TERM: OnceLock<Term> = OnceLock::new();

/// Whether the environment allows colour at all.
fn color_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !no_color && !dumb
}

pub fn term() -> &'static Term {
    TERM.get_or_init(|| {
        let stdout_tty = std::io::stdout().is_terminal();
        let stderr_tty = std::io::stderr().is_terminal();
        let color = color_wanted();
        let width = if stderr_tty {
            console::Term::stderr()
                .size_checked()
                .map_or(140, |(_, cols)| usize::from(cols).max(40))
        } else {
            140
        };
        Term {
            stderr_tty,
            stdout_color: stdout_tty && color,
            stderr_color: stderr_tty && color,
            width,
        }
    })
}

/// Write to stdout; a closed pipe or any other write error drops the text.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// Write to stderr, never panicking.
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` that never panics on a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::term::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that never panics on a closed stdout.
macro_rules! outln {
    () => { $crate::cli::term::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::term::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    () => { $crate::cli::term::write_stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::term::write_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};

/// ANSI styles, applied only when `on`.
#[derive(Debug, Clone, Copy)]
pub enum Paint {
    Red,
    Green,
    Yellow,
    Cyan,
}

pub fn paint(text: &str, style: Paint, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match style {
        Paint::Red => "1;31",
        Paint::Green => "32",
        Paint::Yellow => "33",
        Paint::Cyan => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The plan's text with each action's symbol coloured as terraform does:
/// `+` green, `~` yellow, `-/+` and `-` red, `<=` cyan.
pub fn colour_plan(text: &str, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let symbol = ["-/+ ", "<= ", "+ ", "~ ", "- "]
            .into_iter()
            .find(|s| trimmed.starts_with(s) && indent.len() >= 2);
        match symbol {
            Some(s) => {
                let paint_as = match s.trim_end() {
                    "+" => Paint::Green,
                    "~" => Paint::Yellow,
                    "<=" => Paint::Cyan,
                    _ => Paint::Red,
                };
                out.push_str(indent);
                out.push_str(&paint(s.trim_end(), paint_as, true));
                out.push(' ');
                out.push_str(&trimmed[s.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_symbols_are_coloured_only_when_on() {
        let plan = "appgrid will make these changes to blog:\n\n    + web[0]  create\n    -/+ db  replace\n        allow tcp/22\n\nPlan: 1 to add.\n";
        assert_eq!(colour_plan(plan, false), plan);
        let coloured = colour_plan(plan, true);
        assert!(
            coloured.contains("    \x1b[32m+\x1b[0m web[0]  create\n"),
            "{coloured:?}"
        );
        assert!(
            coloured.contains("    \x1b[1;31m-/+\x1b[0m db  replace\n"),
            "{coloured:?}"
        );
        assert!(coloured.ends_with("        allow tcp/22\n\nPlan: 1 to add.\n"));
    }
}
