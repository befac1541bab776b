//! The machines of an app and what runs on them: `[release]`, `[web]`,
//! `[load_balancer]`, `[database]` and `[cache]`.

use super::Checker;
use super::names;
use super::provider::cidrs;
use super::table::{Field, Key, Reported, Section, TableSpec};
use crate::manifest::{Cache, Database, LoadBalancer, Release, Replication, Web};

pub(super) const RELEASE: TableSpec = TableSpec {
    name: "release",
    label: "[release]",
    keys: &[
        Key::required("path", "\"./app\""),
        Key::optional("build", "\"make release\""),
        Key::required("start", "\"./bin/server\""),
        Key::required("health", "\"/health\""),
        Key::optional("release_command", "\"./manage migrate\""),
        Key::optional("health_timeout", "\"60s\""),
    ],
};

pub(super) const WEB: TableSpec = TableSpec {
    name: "web",
    label: "[web]",
    keys: &[
        Key::required("instance_type", "\"t3.small\""),
        Key::required("count", "2"),
        Key::optional("port", "8080"),
        Key::optional("max_connections", "4"),
    ],
};

pub(super) const LOAD_BALANCER: TableSpec = TableSpec {
    name: "load_balancer",
    label: "[load_balancer]",
    keys: &[
        Key::required("instance_type", "\"t3.small\""),
        Key::optional("listen", "80"),
        Key::optional("allow_from", "[\"0.0.0.0/0\"]"),
        Key::optional("tls_certificate", "\"tls/fullchain-and-key.pem\""),
        Key::optional("tls_port", "443"),
    ],
};

pub(super) const DATABASE: TableSpec = TableSpec {
    name: "database",
    label: "[database]",
    keys: &[
        Key::required("instance_type", "\"m5.large\""),
        Key::optional("version", "15"),
        Key::optional("replicas", "1"),
        Key::optional("replication", "\"slony\""),
        Key::optional("port", "5432"),
        Key::optional("schema", "\"../app/schema.sql\""),
        Key::optional("backup", "{ to = \"s3://my-bucket/blog\" }"),
        Key::optional("failover", "\"auto\""),
        Key::optional("failover_checks", "3"),
        Key::optional("failover_window", "\"30s\""),
    ],
};

pub(super) const CACHE: TableSpec = TableSpec {
    name: "cache",
    label: "[cache]",
    keys: &[
        Key::required("instance_type", "\"r5.large\""),
        Key::optional("nodes", "1"),
        Key::optional("memory_mb", "1024"),
        Key::optional("port", "11211"),
    ],
};

/// Most web servers one app may ask for.
const MAX_WEB_COUNT: i64 = 10_000;
/// Most concurrent requests HAProxy may send one app server (`maxconn`).
pub(super) const MAX_CONNECTIONS: i64 = 10_000;
const POSTGRES_VERSIONS: std::ops::RangeInclusive<i64> = 13..=17;

pub(super) fn release(ck: &mut Checker, s: &Section) -> Result<Release, Reported> {
    let path = s.require(ck, "path").and_then(|f| non_empty(ck, f));
    let build = s.field("build").map(|f| non_empty(ck, f)).transpose();
    let start = s.require(ck, "start").and_then(|f| non_empty(ck, f));
    let health = s.require(ck, "health").and_then(|f| {
        let health = f.str(ck)?;
        if health.starts_with('/') && !health.contains(char::is_whitespace) {
            return Ok(health.to_string());
        }
        Err(ck.error(
            f.span(),
            format!("`health` must be a URL path starting with '/', found {health:?}"),
            f.example_help(),
        ))
    });
    let release_command = s
        .field("release_command")
        .map(|f| non_empty(ck, f))
        .transpose();
    let health_timeout = match s.field("health_timeout") {
        None => Ok(std::time::Duration::from_secs(60)),
        Some(f) => f.str(ck).and_then(|written| {
            super::duration::parse_duration(written)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ck.error(
                        f.span(),
                        format!(
                            "`health_timeout` must be a duration like \"60s\", found {written:?}"
                        ),
                        format!("write {}", super::duration::FORMS),
                    )
                })
        }),
    };
    Ok(Release {
        path: path?,
        build: build?,
        start: start?,
        health: health?,
        release_command: release_command?,
        health_timeout: health_timeout?,
    })
}

pub(super) fn web(ck: &mut Checker, s: &Section) -> Result<Web, Reported> {
    let instance_type = s
        .require(ck, "instance_type")
        .and_then(|f| instance_type(ck, f));
    let count = s
        .require(ck, "count")
        .and_then(|f| f.integer(ck, 1, MAX_WEB_COUNT));
    let port = port(ck, s, "port", 8080);
    let max_connections = s
        .field("max_connections")
        .map(|f| f.integer(ck, 1, MAX_CONNECTIONS).map(u32_from))
        .transpose();
    Ok(Web {
        instance_type: instance_type?,
        count: u32_from(count?),
        port: port?,
        max_connections: max_connections?,
    })
}

pub(super) fn load_balancer(ck: &mut Checker, s: &Section) -> Result<LoadBalancer, Reported> {
    let instance_type = s
        .require(ck, "instance_type")
        .and_then(|f| instance_type(ck, f));
    let listen = port(ck, s, "listen", 80);
    let allow_from = match s.field("allow_from") {
        Some(f) => cidrs(ck, f),
        None => Ok(vec!["0.0.0.0/0".to_string()]),
    };
    let tls_port = port(ck, s, "tls_port", 443);
    let tls = match s.field("tls_certificate") {
        Some(f) => non_empty(ck, f).map(|certificate| Some((certificate, f.span()))),
        None => {
            if let Some(f) = s.field("tls_port") {
                ck.error(
                    f.span(),
                    "`tls_port` without `tls_certificate`",
                    "add `tls_certificate = \"tls/fullchain-and-key.pem\"` (the chain and its key, relative to the manifest), or remove `tls_port`",
                );
            }
            Ok(None)
        }
    };
    let (listen, tls_port) = (listen?, tls_port?);
    let tls = match tls? {
        Some((certificate, span)) => {
            if tls_port == listen {
                let f = s
                    .field("tls_port")
                    .unwrap_or_else(|| s.field("tls_certificate").expect("present"));
                return Err(ck.error(
                    f.span(),
                    format!("`tls_port` {tls_port} is the HTTP port `listen` too"),
                    "give HTTPS its own port, e.g. `tls_port = 443` with `listen = 80`",
                ));
            }
            Some(crate::manifest::Tls {
                certificate,
                port: tls_port,
                span,
            })
        }
        None => None,
    };
    Ok(LoadBalancer {
        instance_type: instance_type?,
        listen,
        allow_from: allow_from?,
        tls,
    })
}

/// `autoscale`: whether the manifest has an `[autoscale]` table (where
/// `failover = "auto"` runs).
pub(super) fn database(
    ck: &mut Checker,
    s: &Section,
    autoscale: bool,
) -> Result<Database, Reported> {
    let instance_type = s
        .require(ck, "instance_type")
        .and_then(|f| instance_type(ck, f));
    let version = match s.field("version") {
        Some(f) => f.integer(ck, i64::MIN, i64::MAX).and_then(|v| {
            if POSTGRES_VERSIONS.contains(&v) {
                return Ok(v);
            }
            Err(ck.error(
                f.span(),
                format!("PostgreSQL version {v} is not supported"),
                "supported versions: 13, 14, 15, 16 and 17, e.g. `version = 15`",
            ))
        }),
        None => Ok(15),
    };
    let replicas = integer_or(ck, s, "replicas", 0, 100, 0);
    let replication = match s.field("replication") {
        Some(f) => f.str(ck).and_then(|r| match r {
            "slony" => Ok(Replication::Slony),
            other => Err(ck.error(
                f.span(),
                format!("unknown replication method {other:?}"),
                "expected one of: \"slony\"",
            )),
        }),
        None => Ok(Replication::Slony),
    };
    let port = port(ck, s, "port", 5432);
    let schema = s.field("schema").map(|f| non_empty(ck, f)).transpose();
    let backup = s
        .field("backup")
        .map(|f| super::backup::check(ck, f))
        .transpose();
    let failover = super::failover::check(ck, s, replicas.as_ref().ok().copied(), autoscale);
    Ok(Database {
        instance_type: instance_type?,
        version: u32_from(version?),
        replicas: u32_from(replicas?),
        replication: replication?,
        port: port?,
        schema: schema?,
        backup: backup?,
        failover: failover?,
    })
}

pub(super) fn cache(ck: &mut Checker, s: &Section) -> Result<Cache, Reported> {
    let instance_type = s
        .require(ck, "instance_type")
        .and_then(|f| instance_type(ck, f));
    let nodes = integer_or(ck, s, "nodes", 1, 100, 1);
    let memory_mb = s
        .field("memory_mb")
        .map(|f| f.integer(ck, 64, 4 * 1024 * 1024))
        .transpose();
    let port = port(ck, s, "port", 11211);
    Ok(Cache {
        instance_type: instance_type?,
        nodes: u32_from(nodes?),
        memory_mb: memory_mb?.map(u32_from),
        port: port?,
    })
}

/// An EC2 instance type like `t3.small`.
pub(super) fn instance_type(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let written = f.str(ck)?;
    if names::instance_type(written) {
        return Ok(written.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`instance_type` must be an EC2 instance type, found {written:?}"),
        format!(
            "write a family and a size joined by '.', {}",
            f.example_help()
        ),
    ))
}

/// An optional integer key in `min..=max`, `default` when absent.
pub(super) fn integer_or(
    ck: &mut Checker,
    s: &Section,
    key: &'static str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, Reported> {
    match s.field(key) {
        Some(f) => f.integer(ck, min, max),
        None => Ok(default),
    }
}

fn port(ck: &mut Checker, s: &Section, key: &'static str, default: u16) -> Result<u16, Reported> {
    integer_or(ck, s, key, 1, 65_535, i64::from(default))
        .map(|p| u16::try_from(p).unwrap_or(default))
}

/// A value already range-checked to fit; saturates instead of panicking.
pub(super) fn u32_from(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn non_empty(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let written = f.str(ck)?;
    if written.trim().is_empty() {
        return Err(ck.error(
            f.span(),
            format!("`{}` must not be empty", f.key()),
            f.example_help(),
        ));
    }
    Ok(written.to_string())
}
