//! A problem found in a manifest, pointing at the offending text.
//!
//! Rendered like rustc and cargo:
//!
//! ```text
//! error: unknown key `instnce_type` in [web]
//!  --> blog.toml:12:1
//!    |
//! 12 | instnce_type = "t3.small"
//!    | ^^^^^^^^^^^^
//!    = help: did you mean `instance_type`?
//! ```

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

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
    /// The full text of that line, and the caret range within it (in characters).
    pub source_line: String,
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
        let start = span.start.min(text.len());
        let end = span.end.clamp(start, text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source_line = text[line_start..line_end].trim_end_matches('\r').to_string();
        let line = text[..start].matches('\n').count() + 1;
        let col0 = text[line_start..start].chars().count();
        let caret_end = text[start..end.min(line_end)].chars().count().max(1) + col0;
        Diagnostic {
            severity,
            message: message.into(),
            path: path.to_path_buf(),
            line,
            column: col0 + 1,
            source_line,
            caret: col0..caret_end,
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
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let gutter = " ".repeat(self.line.to_string().len());
        writeln!(f, "{label}: {}", self.message)?;
        writeln!(f, "{gutter}--> {}", self.location())?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{gutter} | {}{}",
            " ".repeat(self.caret.start),
            "^".repeat(self.caret.len().max(1))
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n{gutter} = help: {help}")?;
        }
        Ok(())
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
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn renders_caret_under_span() {
        let text = "[web]\ninstnce_type = \"t3.small\"\n";
        let d = Diagnostic::error(Path::new("blog.toml"), text, 6..18, "unknown key `instnce_type` in [web]")
            .with_help("did you mean `instance_type`?");
        assert_eq!(
            d.to_string(),
            "error: unknown key `instnce_type` in [web]\n --> blog.toml:2:1\n  |\n2 | instnce_type = \"t3.small\"\n  | ^^^^^^^^^^^^\n  = help: did you mean `instance_type`?"
        );
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let text = "name = \"é\" x";
        let d = Diagnostic::error(Path::new("m.toml"), text, 12..13, "bad");
        assert_eq!((d.line, d.column), (1, 12));
    }
}
