//! The overview page's picture: the app's machines as an SVG graph (load
//! balancer → web servers → database primary → replicas; web servers →
//! cache), each coloured by its health as `appgrid status` reports it.
//! Pure: state's resources and an [`AppStatus`] in, SVG text out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::graph::{ResourceAddress, Role};
use crate::ops::Resources;
use crate::status::AppStatus;

/// A machine's health, from what `status` reports about its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    /// Serving, but not fully: draining, or a replica lagging.
    Warn,
    Down,
    /// Status says nothing about it.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Warn => "warn",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
    fn colour(self) -> &'static str {
        match self {
            Health::Up => "#2e7d32",
            Health::Warn => "#f9a825",
            Health::Down => "#c62828",
            Health::Unknown => "#9e9e9e",
        }
    }
}

/// A replica this many seconds behind is drawn as a warning.
pub const LAG_WARN_SECONDS: f64 = 30.0;

/// Every machine in state with its health.
pub fn health(resources: &Resources, status: &AppStatus) -> BTreeMap<ResourceAddress, Health> {
    let mut out = BTreeMap::new();
    let servers: std::collections::HashMap<&str, &str> = status
        .load_balancer
        .iter()
        .map(|s| (s.name.as_str(), s.status.as_str()))
        .collect();
    for address in resources.keys() {
        let ResourceAddress::Instance { role, index } = *address else {
            continue;
        };
        let h = match role {
            Role::Lb => {
                if status.load_balancer.is_empty() {
                    Health::Unknown
                } else {
                    Health::Up
                }
            }
            Role::Web => match servers.get(format!("web{index}").as_str()) {
                Some(s) if s.starts_with("UP") => Health::Up,
                Some(s) if s.starts_with("DRAIN") || s.starts_with("NOLB") => Health::Warn,
                Some(_) => Health::Down,
                None => Health::Unknown,
            },
            Role::DbPrimary | Role::DbReplica => {
                let name = address.to_string();
                match (
                    &status.origin,
                    status.replication.iter().find(|r| r.node == name),
                ) {
                    (Some(o), _) if o.node == name => {
                        if o.answers {
                            Health::Up
                        } else {
                            Health::Down
                        }
                    }
                    (_, Some(r)) if r.lag_seconds >= LAG_WARN_SECONDS => Health::Warn,
                    (_, Some(_)) => Health::Up,
                    _ => Health::Unknown,
                }
            }
            Role::Cache => match status
                .caches
                .iter()
                .find(|c| c.address == address.to_string())
            {
                Some(c) if c.items.is_some() => Health::Up,
                Some(_) => Health::Down,
                None => Health::Unknown,
            },
        };
        out.insert(*address, h);
    }
    out
}

/// A machine as the overview's table lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MachineRow {
    pub address: String,
    pub id: String,
    pub instance_type: String,
    pub zone: String,
    pub private_ip: String,
    pub health: &'static str,
}

/// The table's rows, in address order.
pub fn rows(resources: &Resources, health: &BTreeMap<ResourceAddress, Health>) -> Vec<MachineRow> {
    health
        .iter()
        .map(|(a, h)| {
            let r = &resources[a];
            let (t, z) = match &r.spec {
                crate::graph::ResourceSpec::Instance(i) => {
                    (i.instance_type.clone(), i.zone.clone())
                }
                _ => (String::new(), String::new()),
            };
            MachineRow {
                address: a.to_string(),
                id: r.id.clone(),
                instance_type: t,
                zone: r.attributes.get("zone").cloned().unwrap_or(z),
                private_ip: r.attributes.get("private_ip").cloned().unwrap_or_default(),
                health: h.as_str(),
            }
        })
        .collect()
}

/// Escape text for XML (and HTML).
pub fn escape(s: &str) -> String {
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

const W: u32 = 170;
const H: u32 = 26;
const ROW: u32 = 34;
const COLUMN: u32 = 230;

fn column(role: Role) -> u32 {
    match role {
        Role::Lb => 0,
        Role::Web => 1,
        Role::DbPrimary | Role::DbReplica => 2,
        Role::Cache => 3,
    }
}

/// The graph as SVG: a `<g class="node HEALTH" data-address=…>` per
/// machine, with a `<title>` (address, id, type, zone, private IP, health).
pub fn svg(resources: &Resources, health: &BTreeMap<ResourceAddress, Health>) -> String {
    // Place machines: one column per tier, in address order.
    let mut rows = [0u32; 4];
    let mut place: BTreeMap<ResourceAddress, (u32, u32)> = BTreeMap::new();
    // Primary first in its column, then the replicas.
    let mut machines: Vec<&ResourceAddress> = health.keys().collect();
    machines.sort_by_key(|a| match a {
        ResourceAddress::Instance { role, index } => {
            (column(*role), *role != Role::DbPrimary, *index)
        }
        _ => (9, true, 0),
    });
    for a in machines {
        let ResourceAddress::Instance { role, .. } = a else {
            continue;
        };
        let c = column(*role) as usize;
        place.insert(*a, (10 + c as u32 * COLUMN, 30 + rows[c] * ROW));
        rows[c] += 1;
    }
    let height = 40 + rows.iter().max().copied().unwrap_or(0) * ROW;
    let width = 20 + 4 * COLUMN;
    let mut out = String::with_capacity(300 * (place.len() + 1));
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#
    );
    for (x, label) in [
        (10, "load balancer"),
        (10 + COLUMN, "web"),
        (10 + 2 * COLUMN, "database"),
        (10 + 3 * COLUMN, "cache"),
    ] {
        let _ = write!(out, r##"<text x="{x}" y="16" fill="#555">{label}</text>"##);
    }
    // Edges first, under the nodes.
    let of = |role: Role| {
        place.iter().filter(
            move |(a, _)| matches!(a, ResourceAddress::Instance { role: r, .. } if *r == role),
        )
    };
    let mut edge = |from: (u32, u32), to: (u32, u32)| {
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb"/>"##,
            from.0 + W,
            from.1 + H / 2,
            to.0,
            to.1 + H / 2
        );
    };
    let primary = of(Role::DbPrimary).map(|(_, p)| *p).next();
    for (_, lb) in of(Role::Lb) {
        for (_, web) in of(Role::Web) {
            edge(*lb, *web);
        }
    }
    for (_, web) in of(Role::Web) {
        if let Some(p) = primary {
            edge(*web, p);
        }
        for (_, cache) in of(Role::Cache) {
            edge(*web, *cache);
        }
    }
    if let Some(p) = primary {
        for (_, r) in of(Role::DbReplica) {
            let _ = write!(
                out,
                r##"<path d="M{} {} C{} {} {} {} {} {}" fill="none" stroke="#bbb"/>"##,
                p.0,
                p.1 + H / 2,
                p.0 - 30,
                p.1 + H / 2,
                r.0 - 30,
                r.1 + H / 2,
                r.0,
                r.1 + H / 2
            );
        }
    }
    for (a, (x, y)) in &place {
        let h = health.get(a).copied().unwrap_or(Health::Unknown);
        let r = &resources[a];
        let attr = |k: &str| r.attributes.get(k).map_or("?", String::as_str);
        let (itype, zone) = match &r.spec {
            crate::graph::ResourceSpec::Instance(i) => (i.instance_type.as_str(), i.zone.as_str()),
            _ => ("?", "?"),
        };
        let zone = r.attributes.get("zone").map_or(zone, String::as_str);
        let name = escape(&a.to_string());
        let _ = write!(
            out,
            r##"<g class="node {hs}" data-address="{name}" data-health="{hs}"><title>{name}&#10;id {id}&#10;type {t}&#10;zone {z}&#10;address {ip}&#10;health {hs}</title><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="5" fill="{c}"/><text x="{tx}" y="{ty}" fill="#fff">{name}  {ip}</text></g>"##,
            hs = h.as_str(),
            id = escape(&r.id),
            t = escape(itype),
            z = escape(zone),
            ip = escape(attr("private_ip")),
            c = h.colour(),
            tx = x + 8,
            ty = y + 17,
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{CacheNode, LbServer, OriginHealth, ReplicaLag};

    fn resources(web: u32) -> Resources {
        let mut r = Resources::new();
        let mut add = |role: Role, index: u32| {
            let mut s = crate::state::ResourceState {
                spec: crate::graph::ResourceSpec::Instance(crate::graph::InstanceSpec {
                    role,
                    instance_type: "t3.small".into(),
                    image: "ami-1".into(),
                    zone: "z".into(),
                    key_name: "k".into(),
                    group: crate::graph::Group::Web,
                    user_data: String::new(),
                }),
                id: format!("i-{index}"),
                depends_on: Vec::new(),
                attributes: Default::default(),
            };
            s.attributes
                .insert("private_ip".into(), format!("127.0.0.{}", index + 10));
            s.attributes.insert("zone".into(), "<zone&1>".into());
            r.insert(ResourceAddress::instance(role, index), s);
        };
        add(Role::Lb, 0);
        for i in 0..web {
            add(Role::Web, i);
        }
        add(Role::DbPrimary, 0);
        add(Role::DbReplica, 0);
        add(Role::Cache, 0);
        r
    }

    fn lb(name: &str, status: &str) -> LbServer {
        LbServer {
            name: name.into(),
            status: status.into(),
            sessions: 0,
            requests: 0,
            response_ms: 0,
        }
    }

    #[test]
    fn health_comes_from_status() {
        let r = resources(3);
        let status = AppStatus {
            load_balancer: vec![lb("web0", "UP"), lb("web1", "DOWN"), lb("web2", "DRAIN")],
            caches: vec![CacheNode {
                address: "cache[0]".into(),
                items: Some(1),
                hits: None,
                misses: None,
            }],
            replication: vec![ReplicaLag {
                origin: "db.primary".into(),
                node: "db.replica[0]".into(),
                lag_events: 3,
                lag_seconds: 45.0,
            }],
            origin: Some(OriginHealth {
                node: "db.primary".into(),
                answers: true,
                problem: None,
                command: None,
            }),
            ..AppStatus::default()
        };
        let h = health(&r, &status);
        let at = |s: &str| h[&s.parse::<ResourceAddress>().unwrap()];
        assert_eq!(at("lb"), Health::Up);
        assert_eq!(at("web[0]"), Health::Up);
        assert_eq!(at("web[1]"), Health::Down);
        assert_eq!(at("web[2]"), Health::Warn);
        assert_eq!(at("db.primary"), Health::Up);
        assert_eq!(at("db.replica[0]"), Health::Warn);
        assert_eq!(at("cache[0]"), Health::Up);
        let empty = health(&r, &AppStatus::default());
        assert!(empty.values().all(|h| *h == Health::Unknown), "{empty:?}");
        assert_eq!(empty.len(), 7);
    }

    #[test]
    fn every_machine_is_drawn_with_its_colour_and_escaped_facts() {
        let r = resources(2);
        let status = AppStatus {
            load_balancer: vec![lb("web0", "UP"), lb("web1", "DOWN")],
            ..AppStatus::default()
        };
        let s = svg(&r, &health(&r, &status));
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>"));
        assert_eq!(s.matches("<g class=\"node ").count(), 6, "{s}");
        assert!(
            s.contains(r#"<g class="node up" data-address="web[0]""#),
            "{s}"
        );
        assert!(
            s.contains(r#"<g class="node down" data-address="web[1]""#),
            "{s}"
        );
        assert!(s.contains("zone &lt;zone&amp;1&gt;"), "{s}");
        assert!(!s.contains("<zone&1>"));
        // lb → 2 web, 2 web → primary, 2 web → cache: 6 lines; primary → replica: a path.
        assert_eq!(s.matches("<line ").count(), 6, "{s}");
        assert_eq!(s.matches("<path ").count(), 1, "{s}");
    }
}
