//! The panel's pages: tera templates under `templates/dashboard/`, embedded
//! in the binary like the role templates, rendered with HTML autoescaping on
//! (a value from state or a machine can never become markup; the one
//! exception is the overview's SVG, which [`super::overview`] escapes itself).

use std::sync::OnceLock;

use tera::{Context, Tera};

use crate::templates::{EMBEDDED, TemplateError};

/// The embedded dashboard templates, parsed once.
pub fn tera() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.add_raw_templates(
            EMBEDDED
                .iter()
                .filter(|(name, _)| name.starts_with("dashboard/") && name.ends_with(".html"))
                .copied(),
        )
        .expect("the embedded dashboard templates parse");
        tera
    })
}

/// A static file served as it is (the panel's script and style).
pub fn asset(name: &str) -> Option<&'static str> {
    let path = format!("dashboard/{name}");
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == path && (n.ends_with(".js") || n.ends_with(".css")))
        .map(|(_, s)| *s)
}

/// Render `dashboard/{page}.html`.
pub fn render(page: &str, ctx: &Context) -> Result<String, TemplateError> {
    let name = format!("dashboard/{page}.html");
    tera().render(&name, ctx).map_err(|e| {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(&format!(": {s}"));
            source = s.source();
        }
        TemplateError { name, detail }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_assets_are_found() {
        let mut ctx = Context::new();
        ctx.insert("title", "x");
        ctx.insert("message", "<script>alert(1)</script>");
        ctx.insert("csrf", "t");
        let page = render("error", &ctx).unwrap();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(asset("panel.js").is_some());
        assert!(asset("../app/start.sh").is_none());
        assert!(asset("base.html").is_none());
    }
}
