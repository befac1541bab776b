//! Templates (tera): the ones embedded in the binary, and a project's own
//! versions of some of them (`[app] templates = "./templates"`).
//!
//! A [`Templates`] value is one template set; it is passed to whoever renders
//! (the graph for `user-data.sh`, the roles for their scripts) through the
//! [`Workspace`](crate::engine::Workspace), never chosen for the process: one
//! process can hold two workspaces with different template directories.
//! The embedded set is built once and shared (it is a constant of the binary).
//!
//! Every template whose name ends in `.sh` is rendered with autoescaping set to
//! POSIX shell quoting, so a manifest value can never reach a shell unquoted:
//! the engine quotes, not the template author.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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

/// One set of templates: the embedded ones, some replaced by a project's own.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Templates {
    inner: Arc<Inner>,
}

struct Inner {
    tera: Tera,
    /// Every template's (name, source), overrides in place.
    sources: Vec<(&'static str, String)>,
    /// Where the overrides came from, and how many there are.
    overrides: Option<(PathBuf, usize)>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner.overrides {
            None => f.write_str("Templates(embedded)"),
            Some((dir, n)) => write!(f, "Templates({n} from {})", dir.display()),
        }
    }
}

impl Templates {
    /// The templates embedded in the binary.
    pub fn embedded() -> Templates {
        static EMBEDDED_SET: OnceLock<Templates> = OnceLock::new();
        EMBEDDED_SET
            .get_or_init(|| {
                let sources = EMBEDDED.iter().map(|(n, s)| (*n, s.to_string())).collect();
                Templates::build(sources, None).expect("the embedded templates parse")
            })
            .clone()
    }

    /// The embedded templates with those under `dir` in place of the ones of
    /// the same name (e.g. `dir/haproxy/haproxy.cfg`). A file that overrides no
    /// embedded template is an error: a typo would otherwise be ignored silently.
    pub fn with_overrides(dir: &Path) -> Result<Templates, TemplateError> {
        let fail = |detail: String| TemplateError {
            name: dir.display().to_string(),
            detail,
        };
        let mut found = Vec::new();
        read_tree(dir, dir, &mut found)
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
        let sources = EMBEDDED
            .iter()
            .map(|(name, source)| {
                let own = found
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.clone());
                (*name, own.unwrap_or_else(|| source.to_string()))
            })
            .collect();
        Templates::build(sources, Some((dir.to_path_buf(), count)))
    }

    fn build(
        sources: Vec<(&'static str, String)>,
        overrides: Option<(PathBuf, usize)>,
    ) -> Result<Templates, TemplateError> {
        let mut tera = Tera::default();
        tera.add_raw_templates(sources.iter().map(|(n, s)| (*n, s.as_str())))
            .map_err(|e| TemplateError {
                name: "(the project's templates)".into(),
                detail: chain(&e),
            })?;
        tera.autoescape_on(vec![".sh"]);
        tera.set_escape_fn(shell_quote);
        Ok(Templates {
            inner: Arc::new(Inner {
                tera,
                sources,
                overrides,
            }),
        })
    }

    /// How many templates a project's directory replaced (0: embedded only).
    pub fn override_count(&self) -> usize {
        self.inner.overrides.as_ref().map_or(0, |(_, n)| *n)
    }

    /// The source of template `name`, as this set has it.
    pub fn source(&self, name: &str) -> Option<&str> {
        self.inner
            .sources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.as_str())
    }

    /// Render a template.
    pub fn render(&self, name: &str, context: &Context) -> Result<String, TemplateError> {
        self.inner
            .tera
            .render(name, context)
            .map_err(|e| TemplateError {
                name: name.to_string(),
                detail: chain(&e),
            })
    }

    /// A digest of the templates under these directories (`"haproxy"` covers
    /// `haproxy/…`), overrides included: what a configuration renders, for
    /// plans to compare.
    pub fn digest(&self, dirs: &[&str]) -> String {
        let mut text = String::new();
        for (name, source) in &self.inner.sources {
            if dirs.iter().any(|d| name.starts_with(&format!("{d}/"))) {
                text.push_str(name);
                text.push('\0');
                text.push_str(source);
                text.push('\0');
            }
        }
        crate::hash::sha256_hex(text.as_bytes())[..16].to_string()
    }
}

fn read_tree(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            read_tree(base, &path, out)?;
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
        let out = Templates::embedded().render("user-data.sh", &ctx).unwrap();
        assert!(
            out.contains("printf '%s\\n' 'x; rm -rf /' > /etc/appgrid/app"),
            "{out}"
        );
    }

    #[test]
    fn two_sets_live_side_by_side_in_one_process() {
        let dir = std::env::temp_dir().join(format!("appgrid-tpl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("haproxy")).unwrap();
        let cfg = EMBEDDED
            .iter()
            .find(|(n, _)| *n == "haproxy/haproxy.cfg")
            .unwrap()
            .1;
        std::fs::write(dir.join("haproxy/haproxy.cfg"), format!("# ours\n{cfg}")).unwrap();
        let own = Templates::with_overrides(&dir).unwrap();
        let again = Templates::with_overrides(&dir).unwrap();
        let embedded = Templates::embedded();
        assert_eq!(own.override_count(), 1);
        assert_eq!(embedded.override_count(), 0);
        assert!(
            own.source("haproxy/haproxy.cfg")
                .unwrap()
                .starts_with("# ours")
        );
        assert!(
            !embedded
                .source("haproxy/haproxy.cfg")
                .unwrap()
                .starts_with("# ours")
        );
        assert_ne!(own.digest(&["haproxy"]), embedded.digest(&["haproxy"]));
        assert_eq!(own.digest(&["haproxy"]), again.digest(&["haproxy"]));
        assert_eq!(own.digest(&["app"]), embedded.digest(&["app"]));

        std::fs::write(dir.join("haproxy/haproxy.conf"), "typo").unwrap();
        let err = Templates::with_overrides(&dir).unwrap_err();
        assert!(
            err.to_string()
                .contains("haproxy/haproxy.conf overrides no template appgrid has"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
