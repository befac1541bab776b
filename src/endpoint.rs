//! Where to reach a machine: `host`, `host:port`, an IPv6 address bare
//! (`fd00::5`) or bracketed with a port (`[fd00::5]:2222`).
//!
//! Pure, and below both `cloud` (the `hosts` provider's pool entries are
//! endpoints) and `roles` (the SSH fleet connects to them).

use std::fmt;
use std::net::Ipv6Addr;

/// The SSH port when an endpoint names none.
pub const DEFAULT_PORT: u16 = 22;

/// A host (name, IPv4 or IPv6 address, without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Reads `entry`; a missing port is [`DEFAULT_PORT`]. Never fails: what
    /// is not `host:port` or `[v6]:port` is taken as a host name whole.
    pub fn parse(entry: &str) -> Endpoint {
        let entry = entry.trim();
        // `[v6]` or `[v6]:port`.
        if let Some(rest) = entry.strip_prefix('[')
            && let Some((host, after)) = rest.split_once(']')
        {
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok(),
                None if after.is_empty() => Some(DEFAULT_PORT),
                None => None,
            };
            if let Some(port) = port {
                return Endpoint {
                    host: host.to_string(),
                    port,
                };
            }
        }
        // A bare IPv6 address: its colons are not a port separator.
        if entry.parse::<Ipv6Addr>().is_ok() {
            return Endpoint {
                host: entry.to_string(),
                port: DEFAULT_PORT,
            };
        }
        match entry.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => Endpoint {
                host: host.to_string(),
                port: port.parse().unwrap_or(DEFAULT_PORT),
            },
            _ => Endpoint {
                host: entry.to_string(),
                port: DEFAULT_PORT,
            },
        }
    }
}

impl fmt::Display for Endpoint {
    /// `host:port`, with an IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(entry: &str) -> (String, u16) {
        let e = Endpoint::parse(entry);
        (e.host, e.port)
    }

    #[test]
    fn hosts_ports_and_ipv6() {
        assert_eq!(split("10.0.0.5"), ("10.0.0.5".into(), 22));
        assert_eq!(split("10.0.0.5:2222"), ("10.0.0.5".into(), 2222));
        assert_eq!(split("web-1.internal"), ("web-1.internal".into(), 22));
        assert_eq!(split("web-1.internal:22"), ("web-1.internal".into(), 22));
        assert_eq!(split("fd00::5"), ("fd00::5".into(), 22));
        assert_eq!(split("::1"), ("::1".into(), 22));
        assert_eq!(split("[fd00::5]:22"), ("fd00::5".into(), 22));
        assert_eq!(split("[fd00::5]:2200"), ("fd00::5".into(), 2200));
        assert_eq!(split("[fd00::5]"), ("fd00::5".into(), 22));
        assert_eq!(split("fe80::1%eth0"), ("fe80::1%eth0".into(), 22));
        // Not a port: kept whole rather than cut in the wrong place.
        assert_eq!(split("host:notaport"), ("host:notaport".into(), 22));
        assert_eq!(split("host:99999"), ("host:99999".into(), 22));
    }

    #[test]
    fn displays_ipv6_in_brackets() {
        assert_eq!(Endpoint::parse("fd00::5").to_string(), "[fd00::5]:22");
        assert_eq!(
            Endpoint::parse("10.0.0.5:2222").to_string(),
            "10.0.0.5:2222"
        );
    }

    proptest! {
        #[test]
        fn display_parses_back(a in any::<[u16; 8]>(), v4 in any::<[u8; 4]>(), port in any::<u16>(), six in any::<bool>()) {
            let host = if six {
                Ipv6Addr::from(a).to_string()
            } else {
                std::net::Ipv4Addr::from(v4).to_string()
            };
            let e = Endpoint { host, port };
            prop_assert_eq!(Endpoint::parse(&e.to_string()), e);
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = Endpoint::parse(&s);
        }
    }
}
