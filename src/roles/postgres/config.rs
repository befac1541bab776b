//! What goes into Postgres's own files and SQL: identifiers, literals and
//! CIDR blocks checked or quoted, postgresql.conf and pg_hba.conf rendered.

use std::net::IpAddr;

use tera::Context;

use super::{APP_GROUP, PG_BIN, PgNode, SLONY_USER};
use crate::roles::RoleError;
use crate::templates::Templates;

/// `name` as a plain SQL identifier: lower-case letters, digits and `_`,
/// starting with a letter or `_`, at most 63 bytes, not `pg_…`. Such names
/// need no quoting anywhere (SQL, slonik, conninfo, shell).
pub fn check_identifier(what: &'static str, name: &str) -> Result<(), RoleError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RoleError::InvalidValue {
            what,
            value: name.to_string(),
            rule: "lower-case letters, digits and _, starting with a letter or _, at most 63 characters, not pg_…",
        })
    }
}

/// `s` as a postgresql.conf string literal.
pub fn pg_conf_quote(what: &'static str, s: &str) -> Result<String, RoleError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(RoleError::InvalidValue {
            what,
            value: s.to_string(),
            rule: "no control characters (newlines, tabs …)",
        });
    }
    Ok(format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")))
}

/// `s` as an SQL string literal (standard_conforming_strings is on).
pub(crate) fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A CIDR block, `address/prefix`, IPv4 or IPv6; returned normalised.
pub fn check_cidr(s: &str) -> Result<String, RoleError> {
    let bad = || RoleError::InvalidValue {
        what: "CIDR block",
        value: s.to_string(),
        rule: "an address and a prefix length, like 10.0.0.0/16",
    };
    let net: ipnet::IpNet = s.parse().map_err(|_| bad())?;
    Ok(net.to_string())
}

pub(super) fn base_context(node: &PgNode) -> Context {
    let mut ctx = Context::new();
    ctx.insert("root", &node.root);
    ctx.insert("pg_bin", PG_BIN);
    ctx.insert("port", &node.port);
    ctx
}

/// Render postgresql.conf for `node`.
pub fn render_postgresql_conf(t: &Templates, node: &PgNode) -> Result<String, RoleError> {
    let mut ctx = base_context(node);
    ctx.insert("listen", &pg_conf_quote("address", &node.addr.to_string())?);
    ctx.insert("socket_dir", &pg_conf_quote("root", &node.socket_dir())?);
    ctx.insert(
        "hba_file",
        &pg_conf_quote("root", &format!("{}/pg_hba.conf", node.etc_dir()))?,
    );
    ctx.insert("max_connections", &100);
    ctx.insert("fsync", &node.fsync);
    Ok(t.render("postgres/postgresql.conf", &ctx)?)
}

/// Render pg_hba.conf: the app's users from `allow_from` (scram-sha-256), the
/// Slony-I user from this machine and from `db_peers`, the postgres superuser
/// over the socket only.
pub fn render_pg_hba(
    t: &Templates,
    node: &PgNode,
    allow_from: &[String],
    db_peers: &[IpAddr],
) -> Result<String, RoleError> {
    let allow = allow_from
        .iter()
        .map(|c| check_cidr(c))
        .collect::<Result<Vec<_>, _>>()?;
    let peers: Vec<String> = db_peers
        .iter()
        .filter(|p| **p != node.addr)
        .map(|p| match p {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        })
        .collect();
    let mut ctx = base_context(node);
    ctx.insert("allow_from", &allow);
    ctx.insert("peers", &peers);
    ctx.insert("slony_user", SLONY_USER);
    ctx.insert("app_group", APP_GROUP);
    Ok(t.render("postgres/pg_hba.conf", &ctx)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_cidrs_are_checked() {
        assert!(check_identifier("database name", "blog_1").is_ok());
        for bad in ["", "Blog", "1x", "a-b", "a;b", "pg_x", "a\"b"] {
            assert!(check_identifier("database name", bad).is_err(), "{bad}");
        }
        assert_eq!(check_cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(check_cidr("::1/128").unwrap(), "::1/128");
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/1", "10.0.0.0/8 trust"] {
            assert!(check_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_values_are_quoted_and_the_app_group_is_admitted_from_allow_from() {
        let t = Templates::embedded();
        let node = PgNode::new("/r/it's", "127.0.9.1".parse().unwrap(), 5432);
        let conf = render_postgresql_conf(&t, &node).unwrap();
        assert!(conf.contains("listen_addresses = '127.0.9.1'"), "{conf}");
        assert!(
            conf.contains("unix_socket_directories = '/r/it''s/run/appgrid/postgres'"),
            "{conf}"
        );
        assert!(!conf.contains("fsync = off"), "{conf}");
        let hba = render_pg_hba(
            &t,
            &node,
            &["10.1.0.0/16".to_string()],
            &["127.0.9.1".parse().unwrap(), "127.0.9.2".parse().unwrap()],
        )
        .unwrap();
        assert!(
            hba.contains("host    all   +appgrid_app   10.1.0.0/16   scram-sha-256"),
            "{hba}"
        );
        assert!(
            hba.contains("host    all   appgrid_slony   127.0.9.2/32   scram-sha-256"),
            "{hba}"
        );
        assert!(!hba.contains("127.0.9.1/32"), "{hba}");
        assert!(
            hba.contains("local   all   +appgrid_app   scram-sha-256")
                && !hba.contains("+appgrid_app   samehost"),
            "{hba}"
        );
        assert!(render_pg_hba(&t, &node, &["0.0.0.0/0 trust".to_string()], &[]).is_err());
    }
}
