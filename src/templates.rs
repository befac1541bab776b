//! Templates (tera), embedded in the binary.
//!
//! Every template whose name ends in `.sh` is rendered with autoescaping set to
//! POSIX shell quoting, so a manifest value can never reach a shell unquoted:
//! the engine quotes, not the template author.

use std::sync::OnceLock;

use tera::{Context, Tera};

/// (name, source) of every file under `templates/`, embedded by build.rs.
pub const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/templates.rs"));

#[derive(Debug, thiserror::Error)]
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

fn engine() -> &'static Tera {
    static ENGINE: OnceLock<Tera> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut tera = Tera::default();
        tera.add_raw_templates(EMBEDDED.iter().copied())
            .expect("embedded templates parse");
        tera.autoescape_on(vec![".sh"]);
        tera.set_escape_fn(shell_quote);
        tera
    })
}

/// A digest of the embedded templates under these directories (`"haproxy"`
/// covers `haproxy/…`): what a configuration renders, for plans to compare.
pub fn digest(dirs: &[&str]) -> String {
    let mut text = String::new();
    for (name, source) in EMBEDDED {
        if dirs.iter().any(|d| name.starts_with(&format!("{d}/"))) {
            text.push_str(name);
            text.push('\0');
            text.push_str(source);
            text.push('\0');
        }
    }
    crate::hash::sha256_hex(text.as_bytes())[..16].to_string()
}

/// Render an embedded template.
pub fn render(name: &str, context: &Context) -> Result<String, TemplateError> {
    engine().render(name, context).map_err(|e| {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        TemplateError {
            name: name.to_string(),
            detail,
        }
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
