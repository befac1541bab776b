//! haproxy.cfg: the values that go into it checked (no value can add a
//! directive), and the file rendered from `haproxy/haproxy.cfg`.

use tera::Context;

use super::{Backend, LbConfig, server_options};
use crate::roles::web_error::{WebRoleError, check_root, check_token};
use crate::templates::{TemplateError, Templates};

pub(super) fn check_lb(lb: &LbConfig, host: &str) -> Result<(), WebRoleError> {
    check_root(host, &lb.root)?;
    check_token(host, "load balancer address", &lb.addr)?;
    check_health_path(host, &lb.health_path)?;
    if lb.listen == 0 {
        return Err(WebRoleError::invalid(host, "listen port", "must not be 0"));
    }
    if let Some(tls) = &lb.tls
        && (tls.port == 0 || tls.port == lb.listen)
    {
        return Err(WebRoleError::invalid(
            host,
            "TLS port",
            "must not be 0 nor the HTTP port",
        ));
    }
    if let Some(n) = lb.max_connections
        && !(1..=10_000).contains(&n)
    {
        return Err(WebRoleError::invalid(
            host,
            "max_connections",
            format!("{n} must be from 1 to 10000"),
        ));
    }
    if let Some(m) = &lb.maintenance {
        crate::maintenance::check_message(&m.message)
            .map_err(|e| WebRoleError::invalid(host, "maintenance message", e.to_string()))?;
    }
    let mut names = std::collections::BTreeSet::new();
    for s in &lb.servers {
        check_backend(host, s)?;
        if !names.insert(&s.name) {
            return Err(WebRoleError::invalid(
                host,
                "load balancer servers",
                format!("{:?} appears twice", s.name),
            ));
        }
    }
    Ok(())
}

/// The health path goes into haproxy.cfg: `/` then URL characters, no spaces.
pub(crate) fn check_health_path(host: &str, path: &str) -> Result<(), WebRoleError> {
    if !path.starts_with('/')
        || path.len() > 200
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~?=&%+".contains(&b))
    {
        return Err(WebRoleError::invalid(
            host,
            "health path",
            format!("{path:?} must start with '/' and hold only URL characters (no spaces)"),
        ));
    }
    Ok(())
}

pub(super) fn check_backend(host: &str, s: &Backend) -> Result<(), WebRoleError> {
    check_token(host, "server address", &s.addr)?;
    if s.name.is_empty()
        || s.name.len() > 64
        || !s
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(WebRoleError::invalid(
            host,
            "server name",
            format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", s.name),
        ));
    }
    if s.port == 0 {
        return Err(WebRoleError::invalid(host, "server port", "must not be 0"));
    }
    Ok(())
}

/// haproxy.cfg for `lb` (servers sorted by name, so order never matters).
pub fn render_config(t: &Templates, lb: &LbConfig) -> Result<String, TemplateError> {
    let mut servers = lb.servers.clone();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ctx = Context::new();
    ctx.insert("root", &lb.root);
    ctx.insert("addr", &lb.addr);
    ctx.insert("listen", &lb.listen);
    ctx.insert("health_path", &lb.health_path);
    ctx.insert("server_options", &server_options(lb.max_connections));
    ctx.insert("servers", &servers);
    ctx.insert("tls_port", &lb.tls.as_ref().map(|t| t.port));
    ctx.insert("retry_after", &crate::maintenance::RETRY_AFTER_SECS);
    // The acl matches the path alone (a query in the health path is not part of it).
    let health_acl = lb.health_path.split('?').next().unwrap_or("/");
    ctx.insert("health_acl", health_acl);
    let mut cfg = t.render("haproxy/haproxy.cfg", &ctx)?;
    if !cfg.ends_with('\n') {
        cfg.push('\n');
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb() -> LbConfig {
        LbConfig {
            root: "/tmp/x".into(),
            addr: "127.0.0.9".into(),
            listen: 8000,
            health_path: "/health".into(),
            servers: vec![
                Backend {
                    name: "web-1".into(),
                    addr: "127.0.0.11".into(),
                    port: 8080,
                },
                Backend {
                    name: "web-0".into(),
                    addr: "127.0.0.10".into(),
                    port: 8080,
                },
            ],
            maintenance: None,
            tls: None,
            max_connections: None,
        }
    }

    #[test]
    fn renders_sorted_servers_marked_for_comparison() {
        let cfg = render_config(&Templates::embedded(), &lb()).unwrap();
        let a = cfg
            .find("server web-0 127.0.0.10:8080 # appgrid-server")
            .unwrap();
        let b = cfg
            .find("server web-1 127.0.0.11:8080 # appgrid-server")
            .unwrap();
        assert!(a < b, "{cfg}");
        assert!(cfg.contains("option httpchk GET /health"), "{cfg}");
        assert!(cfg.contains(
            "stats socket /tmp/x/run/appgrid/haproxy.sock mode 600 level admin expose-fd listeners"
        ));
        assert!(cfg.contains("bind 127.0.0.9:8000"));
    }

    #[test]
    fn tls_and_maintenance_are_rendered_around_the_health_path() {
        let mut with = lb();
        with.health_path = "/health?full=1".into();
        with.tls = Some(super::super::LbTls {
            port: 8443,
            pem: b"secret".to_vec(),
        });
        let cfg = render_config(&Templates::embedded(), &with).unwrap();
        assert!(
            cfg.contains("bind 127.0.0.9:8443 ssl crt /tmp/x/etc/appgrid/haproxy/tls.pem"),
            "{cfg}"
        );
        assert!(cfg.contains("acl appgrid_health path /health\n"), "{cfg}");
        assert!(
            cfg.contains(":8443%[capture.req.uri] if !{ ssl_fc } !appgrid_health"),
            "{cfg}"
        );
        assert!(cfg.contains("hdr Retry-After 120"), "{cfg}");
        assert!(!cfg.contains("secret"));
        with.tls.as_mut().unwrap().port = 443;
        let cfg = render_config(&Templates::embedded(), &with).unwrap();
        assert!(cfg.contains(")]%[capture.req.uri]"), "{cfg}");
        let plain = render_config(&Templates::embedded(), &lb()).unwrap();
        assert!(
            !plain.contains(" ssl ") && !plain.contains("http-request redirect"),
            "{plain}"
        );
        // Maintenance lives in the map, never in the file.
        let mut on = lb();
        on.maintenance = Some(crate::maintenance::Maintenance {
            since: "t".into(),
            message: "Back soon".into(),
        });
        assert_eq!(render_config(&Templates::embedded(), &on).unwrap(), plain);
        on.maintenance.as_mut().unwrap().message = "a\nb".into();
        assert!(check_lb(&on, "h").is_err());
        let mut clash = lb();
        clash.tls = Some(super::super::LbTls {
            port: 8000,
            pem: Vec::new(),
        });
        assert!(check_lb(&clash, "h").is_err());
    }

    /// `[web] max_connections` is each server's `maxconn` (so requests queue
    /// in HAProxy); unset, the file is what it was before the setting existed.
    #[test]
    fn max_connections_is_every_servers_maxconn() {
        let plain = render_config(&Templates::embedded(), &lb()).unwrap();
        assert!(!plain.contains("maxconn 2"), "{plain}");
        assert!(
            plain.contains(
                "    default-server check inter 1s fastinter 250ms downinter 1s rise 2 fall 2\n"
            ),
            "{plain}"
        );
        assert!(plain.contains("    timeout queue 10s\n"), "{plain}");
        let mut limited = lb();
        limited.max_connections = Some(2);
        let cfg = render_config(&Templates::embedded(), &limited).unwrap();
        assert!(
            cfg.contains(
                "    default-server check inter 1s fastinter 250ms downinter 1s rise 2 fall 2 maxconn 2\n"
            ),
            "{cfg}"
        );
        // Only that line differs: the server lines inherit it.
        let changed: Vec<(&str, &str)> = plain
            .lines()
            .zip(cfg.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(check_lb(&limited, "h").is_ok());
        limited.max_connections = Some(0);
        assert!(check_lb(&limited, "h").is_err());
    }

    #[test]
    fn rejects_values_that_could_add_directives() {
        let mut bad = lb();
        bad.health_path = "/health\n    stats enable".into();
        assert!(check_lb(&bad, "h").is_err());
        let mut bad = lb();
        bad.servers[0].name = "web 1 backup".into();
        assert!(check_lb(&bad, "h").is_err());
        let mut bad = lb();
        bad.servers[1].name = "web-1".into();
        assert!(
            check_lb(&bad, "h")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(check_lb(&lb(), "h").is_ok());
    }
}
