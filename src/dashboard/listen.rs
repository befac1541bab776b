//! Where the panel may listen: loopback by default; any other address only
//! with `--allow-remote` and a TLS certificate (the session cookie and the
//! CSRF token must not cross a network in clear).

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error(
        "refusing to serve the panel on {0}: it is not a loopback address. Listen on \
         127.0.0.1 (the default) and reach it through an SSH tunnel, or pass --allow-remote \
         with --tls-cert PEM --tls-key PEM"
    )]
    NotLoopback(SocketAddr),
    #[error(
        "refusing to serve the panel on {0} without TLS: --allow-remote needs \
         --tls-cert PEM and --tls-key PEM"
    )]
    NoCertificate(SocketAddr),
    #[error("--tls-cert and --tls-key go together: pass both, or neither")]
    HalfCertificate,
}

/// Whether the panel may listen on `addr`.
pub fn check(
    addr: SocketAddr,
    allow_remote: bool,
    cert: bool,
    key: bool,
) -> Result<(), ListenError> {
    if cert != key {
        return Err(ListenError::HalfCertificate);
    }
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !allow_remote {
        return Err(ListenError::NotLoopback(addr));
    }
    if !cert {
        return Err(ListenError::NoCertificate(addr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_by_default_remote_only_with_a_certificate() {
        assert_eq!(check(a("127.0.0.1:7070"), false, false, false), Ok(()));
        assert_eq!(check(a("127.3.4.5:7070"), false, false, false), Ok(()));
        assert_eq!(check(a("[::1]:7070"), false, false, false), Ok(()));
        assert_eq!(
            check(a("0.0.0.0:7070"), false, false, false),
            Err(ListenError::NotLoopback(a("0.0.0.0:7070")))
        );
        assert_eq!(
            check(a("10.0.0.5:7070"), true, false, false),
            Err(ListenError::NoCertificate(a("10.0.0.5:7070")))
        );
        assert_eq!(
            check(a("10.0.0.5:7070"), false, true, true),
            Err(ListenError::NotLoopback(a("10.0.0.5:7070")))
        );
        assert_eq!(check(a("10.0.0.5:7070"), true, true, true), Ok(()));
        assert_eq!(
            check(a("127.0.0.1:7070"), false, true, false),
            Err(ListenError::HalfCertificate)
        );
        assert!(
            ListenError::NotLoopback(a("0.0.0.0:1"))
                .to_string()
                .contains("--allow-remote")
        );
    }
}
