//! Who may use the panel: a one-time login token (printed in the URL the
//! command shows) is exchanged for a session; every state-changing request
//! carries the session's CSRF token too.
//!
//! Tokens are 256 random bits from the OS ([`getrandom`]), compared in
//! constant time ([`subtle`]). The login token works once: a second use (a
//! URL copied from a terminal's scrollback, a browser history) gets nothing.

use std::sync::Mutex;

use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "appgrid_session";

/// 256 random bits as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source answers");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in a time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One browser's session: its cookie value and its CSRF token.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session([REDACTED])")
    }
}

/// The login token (until used) and the sessions made from it.
pub struct Sessions {
    login: Mutex<Option<String>>,
    sessions: Mutex<Vec<Session>>,
}

impl Sessions {
    /// A new set with its one-time login token.
    pub fn new() -> (Sessions, String) {
        let token = random_token();
        (
            Sessions {
                login: Mutex::new(Some(token.clone())),
                sessions: Mutex::new(Vec::new()),
            },
            token,
        )
    }

    /// Trade the login token for a session; `None` when the token is wrong
    /// or was used already.
    pub fn exchange(&self, token: &str) -> Option<Session> {
        let mut login = self.login.lock().expect("sessions lock");
        let valid = login.as_deref().is_some_and(|t| same(t, token));
        if !valid {
            return None;
        }
        *login = None;
        let session = Session {
            id: random_token(),
            csrf: random_token(),
        };
        self.sessions
            .lock()
            .expect("sessions lock")
            .push(session.clone());
        Some(session)
    }

    /// The session a cookie value names.
    pub fn find(&self, id: &str) -> Option<Session> {
        // Every session is compared (no early exit on the first match's position).
        let sessions = self.sessions.lock().expect("sessions lock");
        let mut found = None;
        for s in sessions.iter() {
            if same(&s.id, id) {
                found = Some(s.clone());
            }
        }
        found
    }
}

/// The session cookie's value in a `Cookie:` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value for a session: HttpOnly, SameSite=Strict, and
/// Secure when served over TLS.
pub fn set_cookie(session: &Session, tls: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}",
        session.id,
        if tls { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_login_token_works_once_and_only_itself() {
        let (sessions, token) = Sessions::new();
        assert!(sessions.exchange("").is_none());
        assert!(sessions.exchange(&random_token()).is_none());
        let mut wrong_last = token.clone();
        wrong_last.pop();
        wrong_last.push(if token.ends_with('0') { '1' } else { '0' });
        assert!(sessions.exchange(&wrong_last).is_none());
        let s = sessions.exchange(&token).expect("the token is taken once");
        assert!(sessions.exchange(&token).is_none(), "a second use");
        assert_ne!(s.id, s.csrf);
        let found = sessions.find(&s.id).expect("its session");
        assert_eq!(found.csrf, s.csrf);
        assert!(sessions.find(&s.csrf).is_none());
        assert!(sessions.find("").is_none());
        assert_eq!(format!("{s:?}"), "Session([REDACTED])");
    }

    #[test]
    fn cookies() {
        let s = Session {
            id: "abc".into(),
            csrf: "def".into(),
        };
        assert_eq!(
            set_cookie(&s, false),
            "appgrid_session=abc; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(&s, true).ends_with("; Secure"));
        assert_eq!(
            cookie_value("a=1; appgrid_session=xyz; b=2", COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie_value("xappgrid_session=xyz", COOKIE), None);
    }
}
