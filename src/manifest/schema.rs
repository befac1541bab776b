//! Walks the spanned TOML tree by hand and turns it into a [`Manifest`].
//!
//! serde stops at the first problem; a user fixing a manifest wants all of
//! them, each pointing at the key or value to change and saying what to write
//! instead. So the document is parsed with toml's recovering parser into a
//! [`DeTable`] (every key and value keeps its byte span), syntax errors become
//! diagnostics, and every table is then checked against its [`TableSpec`].
//!
//! Invariants:
//! - `check` returns `Ok` only when no diagnostic was produced, and never panics.
//! - Diagnostics come out in source order (the parser's tables are ordered by
//!   key, not by position, so they are sorted by span at the end).
//! - After a syntax error the recovered tree may lack keys the user did write
//!   or hold keys and values they did not, so "missing …" and "unknown …"
//!   errors are suppressed, as is any other error on a line that has a syntax
//!   error; only the first syntax error of a line is kept. Values on intact
//!   lines are still checked.
//! - A misspelt key or table is reported once, as unknown with a suggestion,
//!   not also as the missing key it was meant to be.

mod autoscale;
mod autoscale_replicas;
mod backup;
mod cidr;
pub(super) mod cron;
pub(super) mod duration;
mod env;
mod failover;
mod names;
mod provider;
mod services;
mod state;
mod suggest;
mod table;

use std::ops::Range;
use std::path::Path;

use toml::de::DeTable;

use self::table::{Key, Reported, Section, TableSpec};
use super::{App, Diagnostic, Diagnostics, Manifest};

/// Check manifest `text`; `path` only labels the diagnostics.
///
/// Returns the validated manifest with defaults filled in, or every problem
/// found, in source order.
pub fn check(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let mut checker = Checker::new(path, text);
    for error in &syntax_errors {
        checker.syntax_error(error);
    }
    let manifest = manifest(&mut checker, root.get_ref());
    let diagnostics = checker.finish();
    match manifest {
        Ok(manifest) if !diagnostics.has_errors() => Ok(manifest),
        _ if diagnostics.has_errors() => Err(diagnostics),
        // Every `Reported` is preceded by a diagnostic; should that ever not
        // hold, still refuse the manifest rather than accept a partial one.
        _ => Err(Diagnostics(vec![
            Diagnostic::error(path, text, 0..0, "the manifest could not be validated")
                .with_help("this is a bug in appgrid; please report it with the manifest"),
        ])),
    }
}

/// Collects diagnostics for one manifest.
pub(super) struct Checker<'t> {
    path: &'t Path,
    text: &'t str,
    found: Vec<Found>,
    had_syntax_error: bool,
}

struct Found {
    start: usize,
    syntax: bool,
    diagnostic: Diagnostic,
}

impl<'t> Checker<'t> {
    fn new(path: &'t Path, text: &'t str) -> Self {
        Checker {
            path,
            text,
            found: Vec::new(),
            had_syntax_error: false,
        }
    }

    /// Report a problem at `span` and say what to write instead.
    pub(super) fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Reported {
        let span = self.on_char_boundaries(span);
        let diagnostic =
            Diagnostic::error(self.path, self.text, span.clone(), message).with_help(help);
        self.found.push(Found {
            start: span.start,
            syntax: false,
            diagnostic,
        });
        Reported
    }

    /// Report something the user left out; skipped after a syntax error,
    /// since the recovering parser may have dropped what they wrote.
    pub(super) fn missing(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Reported {
        if !self.had_syntax_error {
            self.error(span, message, help);
        }
        Reported
    }

    /// Report a key or table the schema does not know; skipped after a
    /// syntax error, since recovery can turn a broken line into odd keys.
    pub(super) fn unknown(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Reported {
        if !self.had_syntax_error {
            self.error(span, message, help);
        }
        Reported
    }

    /// The manifest text, for checks that look at how a value was written.
    pub(super) fn text(&self) -> &'t str {
        self.text
    }

    fn syntax_error(&mut self, error: &toml::de::Error) {
        self.had_syntax_error = true;
        let span = self.on_char_boundaries(error.span().unwrap_or(0..0));
        let what = error.message().trim_end();
        let diagnostic = Diagnostic::error(
            self.path,
            self.text,
            span.clone(),
            format!("invalid TOML: {what}"),
        )
        .with_help(syntax_help(what));
        self.found.push(Found {
            start: span.start,
            syntax: true,
            diagnostic,
        });
    }

    /// Clamp `span` to the text and widen it to whole characters, so slicing
    /// the text for the caret line can never panic.
    fn on_char_boundaries(&self, span: Range<usize>) -> Range<usize> {
        let len = self.text.len();
        let mut start = span.start.min(len);
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.clamp(start, len);
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        start..end
    }

    fn finish(mut self) -> Diagnostics {
        // Stable: problems at the same place keep the order they were found in.
        self.found.sort_by_key(|f| f.start);
        let syntax_lines: Vec<usize> = self
            .found
            .iter()
            .filter(|f| f.syntax)
            .map(|f| f.diagnostic.line)
            .collect();
        let mut kept: Vec<Diagnostic> = Vec::with_capacity(self.found.len());
        for found in self.found {
            let line = found.diagnostic.line;
            // An unclosed array or table is the cause of the errors before
            // it, so it is kept even when its line already has one.
            let kept_syntax_error = found.syntax
                && (found
                    .diagnostic
                    .message
                    .starts_with("invalid TOML: unclosed")
                    || !kept
                        .last()
                        .is_some_and(|d| d.line == line && syntax_lines.contains(&line)));
            if kept_syntax_error || (!found.syntax && !syntax_lines.contains(&line)) {
                kept.push(found.diagnostic);
            }
        }
        Diagnostics(kept)
    }
}

/// What to write instead, for the syntax errors people make most.
fn syntax_help(message: &str) -> &'static str {
    if message.starts_with("duplicate key") {
        "each key and table may be written only once; remove or rename one of them"
    } else if message.starts_with("string values must be quoted") {
        "put text in double quotes (`key = \"text\"`); numbers and booleans are written bare"
    } else if message.starts_with("invalid basic string") {
        "close the string with `\"` on the same line, or use `\"\"\"` for text over several lines"
    } else if message.starts_with("unclosed table") {
        "write a table header as `[name]` on a line of its own"
    } else if message.starts_with("unclosed array") || message.starts_with("missing comma") {
        "write an array as `[\"a\", \"b\"]`: items separated by commas, closed with `]`"
    } else {
        "see https://toml.io for how to write keys, values and tables"
    }
}

/// The top-level tables, in the order a manifest usually lists them.
const TABLES: &[&TableSpec] = &[
    &APP,
    &provider::PROVIDER,
    &services::RELEASE,
    &services::WEB,
    &services::LOAD_BALANCER,
    &services::DATABASE,
    &services::CACHE,
    &autoscale::AUTOSCALE,
    &env::ENV,
    &state::STATE,
];

const APP: TableSpec = TableSpec {
    name: "app",
    label: "[app]",
    keys: &[
        Key::required("name", "\"blog\""),
        Key::optional("templates", "\"./templates\""),
    ],
};

fn manifest(ck: &mut Checker, root: &DeTable) -> Result<Manifest, Reported> {
    let misspelt = unknown_top_level(ck, root);
    let app = Section::required(ck, root, &APP, &misspelt).and_then(|s| app(ck, &s));
    let provider = Section::required(ck, root, &provider::PROVIDER, &misspelt)
        .and_then(|s| provider::check(ck, &s));
    let release = Section::optional(ck, root, &services::RELEASE)
        .and_then(|s| s.map(|s| services::release(ck, &s)).transpose());
    let web =
        Section::required(ck, root, &services::WEB, &misspelt).and_then(|s| services::web(ck, &s));
    let load_balancer = Section::required(ck, root, &services::LOAD_BALANCER, &misspelt)
        .and_then(|s| services::load_balancer(ck, &s));
    let autoscaled = root.iter().any(|(k, _)| k.get_ref() == "autoscale");
    let database = Section::optional(ck, root, &services::DATABASE).and_then(|s| {
        s.map(|s| services::database(ck, &s, autoscaled))
            .transpose()
    });
    let cache = Section::optional(ck, root, &services::CACHE)
        .and_then(|s| s.map(|s| services::cache(ck, &s)).transpose());
    let web_queues = root.get("web").is_some_and(|w| {
        matches!(w.get_ref(), toml::de::DeValue::Table(t) if t.get("max_connections").is_some())
    });
    let autoscale = Section::optional(ck, root, &autoscale::AUTOSCALE).and_then(|s| {
        s.map(|s| autoscale::check(ck, &s, root.get("database").is_some(), web_queues))
            .transpose()
    });
    let env = env::check(ck, root);
    let state = Section::optional(ck, root, &state::STATE)
        .and_then(|s| s.map(|s| state::check(ck, &s)).transpose());
    Ok(Manifest {
        app: app?,
        provider: provider?,
        release: release?,
        web: web?,
        load_balancer: load_balancer?,
        database: database?,
        cache: cache?,
        autoscale: autoscale?,
        env: env?,
        state: state?,
    })
}

/// Reports unknown top-level keys; returns the table names suggested for them.
fn unknown_top_level(ck: &mut Checker, root: &DeTable) -> Vec<&'static str> {
    let mut suggested = Vec::new();
    let names: Vec<&'static str> = TABLES.iter().map(|t| t.name).collect();
    for (key, value) in root.iter() {
        let key_name: &str = key.get_ref();
        if names.contains(&key_name) {
            continue;
        }
        let suggestion = suggest::closest(key_name, &names);
        suggested.extend(suggestion);
        if value.get_ref().is_table() {
            let help = match suggestion {
                Some(name) => format!("did you mean [{name}]?"),
                None => format!("known tables: {}", bracketed(&names)),
            };
            ck.unknown(key.span(), format!("unknown table [{key_name}]"), help);
        } else {
            let help = match suggestion {
                Some(name) => format!("did you mean [{name}]?"),
                None => format!(
                    "every key belongs under a table header; known tables: {}",
                    bracketed(&names)
                ),
            };
            ck.unknown(
                key.span(),
                format!("unknown key `{key_name}` outside any table"),
                help,
            );
        }
    }
    suggested
}

fn bracketed(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("[{n}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn app(ck: &mut Checker, s: &Section) -> Result<App, Reported> {
    let name = s.require(ck, "name").and_then(|f| {
        let name = f.str(ck)?;
        names::dns_label(name).map_err(|suggestion| {
            ck.error(
                f.span(),
                format!("`name` must be a DNS label, found {name:?}"),
                format!(
                    "use 1 to 63 lowercase letters, digits and '-', not starting or ending \
                     with '-', e.g. `name = \"{suggestion}\"`"
                ),
            )
        })?;
        Ok(name.to_string())
    });
    let templates = s
        .field("templates")
        .map(|f| {
            let dir = f.str(ck)?;
            if dir.is_empty() || dir.contains(['\0', '\n']) {
                return Err(ck.error(
                    f.span(),
                    "`templates` must be a directory path",
                    f.example_help(),
                ));
            }
            Ok(dir.to_string())
        })
        .transpose();
    Ok(App {
        name: name?,
        templates: templates?,
    })
}
