//! Maintenance mode (issue 9): while it is on, the load balancer answers
//! every request but the app's health path with 503, the user's message (an
//! HTML page for browsers, plain text otherwise) and `Retry-After`; the app
//! servers keep running.
//!
//! The record lives in state ([`crate::state::State::maintenance`]), so an
//! apply keeps it and a plan says so. HAProxy reads it from a map file
//! (`maintenance.map`, see [`map_file`]) that the runtime API changes without
//! a reload. The message reaches HAProxy base64-encoded (HAProxy's `b64dec`
//! turns it back), so quotes, `%`, `$`, `#` and any Unicode are served
//! verbatim; control characters (newlines included) are refused, since
//! HAProxy's log-format bodies escape them (`%0A`).

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The message when the user gives none.
pub const DEFAULT_MESSAGE: &str =
    "This site is down for maintenance. Please try again in a few minutes.";

/// The longest message (bytes): the body is built in one HAProxy buffer.
pub const MAX_MESSAGE: usize = 1024;

/// What `Retry-After` says (seconds).
pub const RETRY_AFTER_SECS: u32 = 120;

/// Maintenance is on (state holds one of these) since `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// RFC 3339.
    pub since: String,
    pub message: String,
}

/// Why a message cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the maintenance message is empty; leave out --message for the default one")]
    Empty,
    #[error(
        "the maintenance message is {len} bytes long; keep it to {MAX_MESSAGE} (a sentence or two)"
    )]
    TooLong { len: usize },
    #[error(
        "the maintenance message holds a control character ({found:?} at character {at}); \
         write it on one line without tabs: HAProxy would serve a newline as `%0A`"
    )]
    Control { found: char, at: usize },
}

/// Check a message the user gave: one line, printable, not too long.
pub fn check_message(message: &str) -> Result<(), MessageError> {
    if message.trim().is_empty() {
        return Err(MessageError::Empty);
    }
    if message.len() > MAX_MESSAGE {
        return Err(MessageError::TooLong { len: message.len() });
    }
    if let Some((at, found)) = message.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(MessageError::Control { found, at: at + 1 });
    }
    Ok(())
}

/// The plain-text body: the message alone (no line break: HAProxy's
/// log-format bodies escape control characters, see the module's text).
pub fn text_body(message: &str) -> String {
    message.to_string()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML page (the message escaped).
pub fn html_body(message: &str) -> String {
    let m = html_escape(message);
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\
         <body><h1>Down for maintenance</h1><p>{m}</p></body></html>"
    )
}

/// The map entries HAProxy reads (`key value`, values base64): `on`, `text`
/// and `html` when on; none when off.
pub fn map_entries(on: Option<&Maintenance>) -> Vec<(&'static str, String)> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    match on {
        None => Vec::new(),
        Some(m) => vec![
            ("text", b64(&text_body(&m.message))),
            ("html", b64(&html_body(&m.message))),
            ("on", "1".to_string()),
        ],
    }
}

/// The map file's text for `on` (a comment alone when off).
pub fn map_file(on: Option<&Maintenance>) -> String {
    let mut out = String::from("# appgrid maintenance mode: `appgrid maintenance FILE on|off`\n");
    for (k, v) in map_entries(on) {
        out.push_str(&format!("{k} {v}\n"));
    }
    out
}

/// The plan's and status's line.
pub fn note(m: &Maintenance) -> String {
    format!(
        "maintenance on since {}: the load balancer answers 503 {:?} (`appgrid maintenance FILE off` ends it)",
        m.since, m.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_with_quotes_percent_dollar_are_kept_and_control_characters_refused() {
        let m = r#"Back "soon" — 100% $HOME `x` 'y' <b>&"#;
        assert_eq!(check_message(m), Ok(()));
        let entries = map_entries(Some(&Maintenance {
            since: "2026-12-02T17:00:00Z".into(),
            message: m.into(),
        }));
        let text = &entries.iter().find(|(k, _)| *k == "text").unwrap().1;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), m);
        // HAProxy would escape a control character in either body.
        assert!(!html_body(m).contains(char::is_control));
        // Nothing but base64 reaches the runtime API or the map file.
        for (_, v) in &entries {
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            );
        }
        let html = html_body(m);
        assert!(html.contains("&quot;soon&quot; — 100% $HOME `x` &#39;y&#39; &lt;b&gt;&amp;"));
        assert_eq!(
            check_message("two\nlines"),
            Err(MessageError::Control { found: '\n', at: 4 })
        );
        assert!(check_message("tab\there").is_err());
        assert_eq!(check_message("  "), Err(MessageError::Empty));
        assert!(matches!(
            check_message(&"x".repeat(MAX_MESSAGE + 1)),
            Err(MessageError::TooLong { .. })
        ));
        assert!(check_message(&"x".repeat(MAX_MESSAGE)).is_ok());
    }

    #[test]
    fn the_map_is_empty_when_off_and_sets_on_last() {
        assert_eq!(map_file(None).lines().count(), 1);
        let on = Maintenance {
            since: "t".into(),
            message: "m".into(),
        };
        let keys: Vec<_> = map_entries(Some(&on)).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["text", "html", "on"]);
        assert_eq!(map_file(Some(&on)).lines().count(), 4);
    }
}
