//! What `appgrid status` reports about a running app: its machines, the
//! load balancer's view of each web server, memcached's counters and
//! Slony-I's replication lag. Plain data, gathered by the roles; the text
//! lines are rendered here from the same values the JSON carries, so the two
//! outputs can never say different things.

use serde::Serialize;

/// The running app, as its machines report it now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppStatus {
    pub machines: Vec<Machine>,
    /// Web servers as HAProxy sees them (backend rows only).
    pub load_balancer: Vec<LbServer>,
    pub caches: Vec<CacheNode>,
    pub replication: Vec<ReplicaLag>,
    /// The replicated set's origin, when there is a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginHealth>,
    /// Maintenance mode, from state (set by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::Maintenance>,
    /// The load balancer's certificate (set by the caller, from the manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
}

/// HTTPS at the load balancer: when its certificate expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsStatus {
    pub subject: String,
    /// RFC 3339.
    pub not_after: String,
    pub days_left: i64,
    /// Set within [`crate::manifest::certificate::WARN_DAYS`] of expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl TlsStatus {
    /// The status of `cert` at `now`.
    pub fn of(cert: &crate::manifest::certificate::Certificate, now: jiff::Timestamp) -> Self {
        TlsStatus {
            subject: cert.subject.clone(),
            not_after: cert.not_after.to_string(),
            days_left: cert.days_left(now),
            warning: cert.warning(now),
        }
    }
}

/// Whether the database's origin answers; when it does not, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginHealth {
    /// `db.primary`, or a replica after a switchover or failover.
    pub node: String,
    pub answers: bool,
    /// Why it is taken for down (nobody reached its Postgres).
    pub problem: Option<String>,
    /// The command that fails it over (set by the caller, who knows the manifest).
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub address: String,
    pub id: String,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LbServer {
    /// `web{i}`.
    pub name: String,
    /// HAProxy's status: `UP`, `DOWN`, `DRAIN`, `MAINT`, …
    pub status: String,
    pub sessions: u64,
    pub requests: u64,
    /// Average response time over the last 1,024 requests.
    pub response_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheNode {
    pub address: String,
    /// memcached's `curr_items`, `get_hits`, `get_misses` (absent if not reported).
    pub items: Option<u64>,
    pub hits: Option<u64>,
    pub misses: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaLag {
    /// The origin of the replicated set (`db.primary`, or a replica after a switchover).
    pub origin: String,
    pub node: String,
    /// Origin events the node has not confirmed yet.
    pub lag_events: i64,
    /// Age of the oldest unconfirmed event.
    pub lag_seconds: f64,
}

fn or_unknown(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_string(), |n| n.to_string())
}

impl AppStatus {
    /// A line per machine, server, cache node and replica.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(m) = &self.maintenance {
            lines.push(format!("maintenance on since {}: {:?}", m.since, m.message));
        }
        if let Some(t) = &self.tls {
            lines.push(format!(
                "tls certificate {} expires {} ({} days left)",
                t.subject, t.not_after, t.days_left
            ));
            if let Some(w) = &t.warning {
                lines.push(format!("warning: {w}"));
            }
        }
        for m in &self.machines {
            lines.push(format!(
                "{:<16} {:<10} {}",
                m.address,
                m.id,
                m.private_ip.as_deref().unwrap_or("?")
            ));
        }
        for s in &self.load_balancer {
            lines.push(format!(
                "lb -> {:<10} {:<6} sessions {}, requests {}, response {} ms",
                s.name, s.status, s.sessions, s.requests, s.response_ms
            ));
        }
        for c in &self.caches {
            lines.push(format!(
                "{} memcached: {} items, {} hits, {} misses",
                c.address,
                or_unknown(c.items),
                or_unknown(c.hits),
                or_unknown(c.misses)
            ));
        }
        if let Some(o) = self.origin.as_ref().filter(|o| !o.answers) {
            lines.push(format!(
                "database origin {} is DOWN: {}",
                o.node,
                o.problem.as_deref().unwrap_or("it does not answer")
            ));
            lines.push(format!(
                "  to promote the most advanced replica: {}",
                o.command
                    .as_deref()
                    .unwrap_or("appgrid db failover MANIFEST")
            ));
        }
        for r in &self.replication {
            lines.push(format!(
                "replication {} -> {}: {} events behind, {:.1} s",
                r.origin, r.node, r.lag_events, r.lag_seconds
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_carry_the_same_values_as_the_data() {
        let s = AppStatus {
            machines: vec![Machine {
                address: "web[0]".into(),
                id: "local-3".into(),
                private_ip: Some("127.100.0.4".into()),
            }],
            load_balancer: vec![LbServer {
                name: "web0".into(),
                status: "UP".into(),
                sessions: 1,
                requests: 42,
                response_ms: 3,
            }],
            caches: vec![CacheNode {
                address: "cache[0]".into(),
                items: Some(7),
                hits: None,
                misses: Some(0),
            }],
            replication: vec![ReplicaLag {
                origin: "db.primary".into(),
                node: "db.replica[0]".into(),
                lag_events: 2,
                lag_seconds: 1.26,
            }],
            origin: Some(OriginHealth {
                node: "db.primary".into(),
                answers: true,
                problem: None,
                command: None,
            }),
            ..AppStatus::default()
        };
        assert_eq!(
            s.lines(),
            [
                "web[0]           local-3    127.100.0.4",
                "lb -> web0       UP     sessions 1, requests 42, response 3 ms",
                "cache[0] memcached: 7 items, ? hits, 0 misses",
                "replication db.primary -> db.replica[0]: 2 events behind, 1.3 s",
            ]
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["load_balancer"][0]["requests"], 42);
        assert_eq!(json["caches"][0]["hits"], serde_json::Value::Null);
        assert_eq!(json["replication"][0]["lag_events"], 2);
        assert_eq!(json["origin"]["answers"], true);
    }

    #[test]
    fn a_dead_origin_is_shown_with_the_command_to_run() {
        let s = AppStatus {
            origin: Some(OriginHealth {
                node: "db.primary".into(),
                answers: false,
                problem: Some("its Postgres does not answer".into()),
                command: Some("appgrid db failover blog.toml".into()),
            }),
            ..AppStatus::default()
        };
        assert_eq!(
            s.lines(),
            [
                "database origin db.primary is DOWN: its Postgres does not answer",
                "  to promote the most advanced replica: appgrid db failover blog.toml",
            ]
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap()["origin"]["answers"],
            false
        );
    }

    #[test]
    fn maintenance_and_a_certificate_near_expiry_are_shown_first() {
        let s = AppStatus {
            maintenance: Some(crate::maintenance::Maintenance {
                since: "2026-12-02T17:00:00Z".into(),
                message: "Back at 18:00".into(),
            }),
            tls: Some(TlsStatus {
                subject: "CN=localhost".into(),
                not_after: "2026-12-10T00:00:00Z".into(),
                days_left: 7,
                warning: Some("renew".into()),
            }),
            ..AppStatus::default()
        };
        assert_eq!(
            s.lines(),
            [
                "maintenance on since 2026-12-02T17:00:00Z: \"Back at 18:00\"",
                "tls certificate CN=localhost expires 2026-12-10T00:00:00Z (7 days left)",
                "warning: renew",
            ]
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["maintenance"]["since"], "2026-12-02T17:00:00Z");
        assert_eq!(json["tls"]["days_left"], 7);
    }
}
