//! Templates (tera), embedded in the binary.
//!
//! Every template whose name ends in `.sh` is rendered with autoescaping set to
//! POSIX shell quoting, so a manifest value can never reach a shell unquoted:
//! the engine quotes, not the template author.

use std::sync::OnceLock;

use tera::{Context, Tera};

/// (name, source) of every file under `templates/`, embedded by build.rs.
pub const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/templates.rs"));

#[derive(Debug, Clone, thiserror::Error)]
#[error("template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

/// Quote `s` for a POSIX shell: `'…'` with embedded quotes closed and escaped.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A project's own versions of some templates (`[app] templates = "./templates"`).
static OVERRIDES: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Every template's (name, source): the embedded ones, with a project's
/// overrides in their place.
fn sources() -> Vec<(&'static str, String)> {
    let overrides = OVERRIDES.get();
    EMBEDDED
        .iter()
        .map(|(name, source)| {
            let own = overrides
                .and_then(|o| o.iter().find(|(n, _)| n == name))
                .map(|(_, s)| s.clone());
            (*name, own.unwrap_or_else(|| source.to_string()))
        })
        .collect()
}

fn engine() -> Result<&'static Tera, TemplateError> {
    static ENGINE: OnceLock<Result<Tera, TemplateError>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut tera = Tera::default();
            tera.add_raw_templates(sources())
                .map_err(|e| TemplateError {
                    name: "(the project's templates)".into(),
                    detail: chain(&e),
                })?;
            tera.autoescape_on(vec![".sh"]);
            tera.set_escape_fn(shell_quote);
            Ok(tera)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Use the templates under `dir` in place of the embedded ones of the same
/// name (e.g. `dir/haproxy/haproxy.cfg`). Call once, before anything renders.
/// A file that overrides no embedded template is an error: a typo would
/// otherwise be ignored silently.
pub fn use_overrides(dir: &std::path::Path) -> Result<usize, TemplateError> {
    fn walk(
        base: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<(String, String)>,
    ) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                let name = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((name, std::fs::read_to_string(&path)?));
            }
        }
        Ok(())
    }
    let fail = |detail: String| TemplateError {
        name: dir.display().to_string(),
        detail,
    };
    let mut found = Vec::new();
    walk(dir, dir, &mut found)
        .map_err(|e| fail(format!("cannot read the templates directory: {e}")))?;
    for (name, _) in &found {
        if !EMBEDDED.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
            return Err(fail(format!(
                "{name} overrides no template appgrid has; name it like one of: {}",
                known.join(", ")
            )));
        }
    }
    let count = found.len();
    OVERRIDES
        .set(found)
        .map_err(|_| fail("templates were already chosen for this process".into()))?;
    Ok(count)
}

/// A digest of the templates under these directories (`"haproxy"` covers
/// `haproxy/…`), overrides included: what a configuration renders, for plans
/// to compare.
pub fn digest(dirs: &[&str]) -> String {
    let mut text = String::new();
    for (name, source) in sources() {
        if dirs.iter().any(|d| name.starts_with(&format!("{d}/"))) {
            text.push_str(name);
            text.push('\0');
            text.push_str(&source);
            text.push('\0');
        }
    }
    crate::hash::sha256_hex(text.as_bytes())[..16].to_string()
}

fn chain(e: &tera::Error) -> String {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

/// Render a template (a project's override if it has one).
pub fn render(name: &str, context: &Context) -> Result<String, TemplateError> {
    engine()?.render(name, context).map_err(|e| TemplateError {
        name: name.to_string(),
        detail: chain(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_shell_metacharacters() {
        assert_eq!(shell_quote("blog"), "blog");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn sh_templates_are_escaped_by_the_engine() {
        let mut ctx = Context::new();
        ctx.insert("app", "x; rm -rf /");
        ctx.insert("role", "web");
        ctx.insert("ssh_user", "admin");
        let out = render("user-data.sh", &ctx).unwrap();
        assert!(
            out.contains("printf '%s\\n' 'x; rm -rf /' > /etc/appgrid/app"),
            "{out}"
        );
    }
}
