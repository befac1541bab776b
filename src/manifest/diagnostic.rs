//! A problem found in a manifest, pointing at the offending text.
//!
//! Rendered by annotate-snippets, the renderer rustc and cargo use:
//!
//! ```text
//! error: unknown key `instnce_type` in [web]
//!  --> blog.toml:12:1
//!   |
//! 12 | instnce_type = "t3.small"
//!   | ^^^^^^^^^^^^
//!   |
//!   = help: did you mean `instance_type`?
//! ```
//!
//! A diagnostic keeps only the one source line its span starts on (not the
//! whole manifest), so a list of them stays small. A line longer than the
//! renderer's width is shown as a window around the span, with `...` where it
//! was cut, never whole.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, with the file, the byte span and the source line it sits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub path: PathBuf,
    /// 1-based line and column (in characters) of the span's start.
    pub line: usize,
    pub column: usize,
    /// The full text of that line (without its line break).
    pub source_line: String,
    /// The span within `source_line`, in characters.
    pub caret: Range<usize>,
    /// What to write instead.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic for `span` (byte offsets) in `text`.
    pub fn new(
        severity: Severity,
        path: &std::path::Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let line = text[..start].matches('\n').count() + 1;
        let col0 = text[line_start..start].chars().count();
        let width = text[start..end.min(line_end)].chars().count();
        Diagnostic {
            severity,
            message: message.into(),
            path: path.to_path_buf(),
            line,
            column: col0 + 1,
            source_line,
            caret: col0..col0 + width,
            help: None,
        }
    }

    pub fn error(
        path: &std::path::Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, path, text, span, message)
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:col`
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.path.display(), self.line, self.column)
    }

    /// The caret's byte range within `source_line`.
    fn byte_span(&self) -> Range<usize> {
        let byte = |chars: usize| {
            self.source_line
                .char_indices()
                .nth(chars)
                .map_or(self.source_line.len(), |(i, _)| i)
        };
        byte(self.caret.start)..byte(self.caret.end)
    }

    /// The diagnostic as rustc would show it: plain, or with ANSI styles,
    /// fitted to `width` columns (long lines are cut around the span).
    pub fn render(&self, style: Style) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let path = self.path.display().to_string();
        let snippet = Snippet::source(self.source_line.as_str())
            .line_start(self.line)
            .path(path.as_str())
            .annotation(AnnotationKind::Primary.span(self.byte_span()));
        let mut group = level.primary_title(self.message.as_str()).element(snippet);
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        let renderer = if style.color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.term_width(style.width).render(&[group])
    }
}

/// How to render diagnostics: colours (only for a terminal that wants them)
/// and the width to fit long lines into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Default for Style {
    /// Plain text, 140 columns (annotate-snippets' default, as rustc's).
    fn default() -> Self {
        Style {
            color: false,
            width: annotate_snippets::renderer::DEFAULT_TERM_WIDTH,
        }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Style::default()))
    }
}

/// Every problem found in one manifest, in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn error_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Every diagnostic, a blank line between them.
    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&d.render(style));
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Style::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn renders_caret_under_span() {
        let text = "[web]\ninstnce_type = \"t3.small\"\n";
        let d = Diagnostic::error(
            Path::new("blog.toml"),
            text,
            6..18,
            "unknown key `instnce_type` in [web]",
        )
        .with_help("did you mean `instance_type`?");
        assert_eq!(
            d.to_string(),
            "error: unknown key `instnce_type` in [web]\n --> blog.toml:2:1\n  |\n2 | instnce_type = \"t3.small\"\n  | ^^^^^^^^^^^^\n  |\n  = help: did you mean `instance_type`?"
        );
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let text = "name = \"é\" x";
        let d = Diagnostic::error(Path::new("m.toml"), text, 12..13, "bad");
        assert_eq!((d.line, d.column), (1, 12));
        assert!(d.to_string().contains(" --> m.toml:1:12\n"), "{d}");
        assert!(d.to_string().ends_with("\n  |            ^"), "{d}");
    }

    #[test]
    fn an_empty_span_gets_one_caret() {
        let d = Diagnostic::error(Path::new("m.toml"), "name = \"blog\n", 12..12, "unclosed");
        assert!(
            d.to_string().ends_with("name = \"blog\n  |             ^"),
            "{d}"
        );
    }

    /// Issue 7: a 10,000-character line is shown as a window around the
    /// error, not whole.
    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_span() {
        let line = format!(
            "ssh_from = [{}\"10.0.0.300/8\"]",
            "\"10.0.0.0/8\", ".repeat(800)
        );
        assert!(line.len() > 10_000);
        let at = line.find("\"10.0.0.300/8\"").unwrap();
        let d = Diagnostic::error(Path::new("m.toml"), &line, at..at + 14, "bad CIDR");
        let shown = d.to_string();
        assert!(shown.len() < 600, "{} characters:\n{shown}", shown.len());
        assert!(
            shown.contains("...") && shown.contains("\"10.0.0.300/8\"]"),
            "{shown}"
        );
        assert!(
            shown.contains(&format!(" --> m.toml:1:{}\n", at + 1)),
            "{shown}"
        );
        // The caret still sits under the bad entry.
        let lines: Vec<&str> = shown.lines().collect();
        let (source, caret) = (lines[3], lines[4]);
        let column = caret.find('^').unwrap();
        assert_eq!(&source[column..column + 14], "\"10.0.0.300/8\"", "{shown}");
        assert_eq!(caret.matches('^').count(), 14, "{shown}");
    }

    #[test]
    fn colour_only_when_asked() {
        let d = Diagnostic::error(Path::new("m.toml"), "a = 1", 0..1, "bad");
        assert!(!d.to_string().contains('\x1b'));
        let styled = d.render(Style {
            color: true,
            ..Style::default()
        });
        assert!(styled.contains("\x1b["), "{styled:?}");
    }
}
