//! Configuration resources: what runs on each machine, and what it needs first.
//!
//! `db.primary.config` → `slony.cluster` → `db.replica[i].subscription`;
//! `cache[i].config`; `web[i].release` after the database and cache it points
//! at; `lb.config` after every release it sends traffic to. Each spec's inputs
//! hold the digests of the templates it renders, so a template edit shows up
//! in `plan` as an update of exactly the machines it affects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigSpec, ResourceAddress, ResourceGraph, ResourceSpec, Role};
use crate::manifest::Manifest;

/// Facts from outside the manifest that configuration depends on, gathered at
/// the edge (file reads) so expansion stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// Digest of the template set per role family (`postgres`, `slony`,
    /// `memcached`, `haproxy`, `app`), after project overrides.
    pub templates: BTreeMap<String, String>,
    /// Digest of the release's files (`[release] path`).
    pub release: Option<String>,
    /// A release `appgrid rollback` pinned: its directory on the web servers
    /// (a `dir` input of every `web[i].release`: run what is there, ship nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The salted digest of the app's config vars (state), when it has any:
    /// a `config` input of every `web[i].release`, so a change re-releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The digest of `[load_balancer] tls_certificate`'s file: a `tls` input
    /// of `lb.config`, so a renewed certificate updates the load balancer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
}

impl Inputs {
    fn template(&self, family: &str) -> String {
        self.templates.get(family).cloned().unwrap_or_default()
    }
}

fn spec(pairs: &[(&str, String)]) -> ResourceSpec {
    ResourceSpec::Config(ConfigSpec {
        inputs: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    })
}

fn list(addresses: impl IntoIterator<Item = ResourceAddress>) -> String {
    addresses
        .into_iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn add(g: &mut ResourceGraph, m: &Manifest, inputs: &Inputs) {
    let mut web_needs: Vec<ResourceAddress> = Vec::new();
    let mut replicas: Vec<ResourceAddress> = Vec::new();
    if let Some(db) = &m.database {
        let primary = ResourceAddress::config(Role::DbPrimary, 0);
        let web = (0..m.web.count).map(|i| ResourceAddress::instance(Role::Web, i));
        let peers = (0..db.replicas).map(|i| ResourceAddress::instance(Role::DbReplica, i));
        g.add(
            primary,
            spec(&[
                ("templates", inputs.template("postgres")),
                ("version", db.version.to_string()),
                ("port", db.port.to_string()),
                ("database", m.app.name.clone()),
                // pg_hba admits exactly these machines: least privilege.
                ("clients", list(web.clone())),
                ("peers", list(peers.clone())),
            ]),
        );
        g.depend(primary, ResourceAddress::instance(Role::DbPrimary, 0));
        for machine in web.chain(peers) {
            g.depend(primary, machine);
        }
        web_needs.push(primary);
        if db.replicas > 0 {
            let cluster = ResourceAddress::SlonyCluster;
            g.add(cluster, spec(&[("templates", inputs.template("slony"))]));
            g.depend(cluster, primary);
            for i in 0..db.replicas {
                let sub = ResourceAddress::config(Role::DbReplica, i);
                g.add(
                    sub,
                    spec(&[
                        (
                            "templates",
                            format!(
                                "{}+{}",
                                inputs.template("postgres"),
                                inputs.template("slony")
                            ),
                        ),
                        ("version", db.version.to_string()),
                        ("port", db.port.to_string()),
                    ]),
                );
                g.depend(sub, ResourceAddress::instance(Role::DbReplica, i));
                g.depend(sub, cluster);
                web_needs.push(sub);
                replicas.push(ResourceAddress::instance(Role::DbReplica, i));
            }
        }
    }
    let mut caches = Vec::new();
    if let Some(cache) = &m.cache {
        for i in 0..cache.nodes {
            let c = ResourceAddress::config(Role::Cache, i);
            g.add(
                c,
                spec(&[
                    ("templates", inputs.template("memcached")),
                    ("port", cache.port.to_string()),
                    (
                        "memory_mb",
                        cache
                            .memory_mb
                            .map_or_else(|| "auto".to_string(), |m| m.to_string()),
                    ),
                ]),
            );
            g.depend(c, ResourceAddress::instance(Role::Cache, i));
            web_needs.push(c);
            caches.push(ResourceAddress::instance(Role::Cache, i));
        }
    }

    let health = m
        .release
        .as_ref()
        .map_or_else(|| "/".to_string(), |r| r.health.clone());
    let mut backends = Vec::new();
    for i in 0..m.web.count {
        let web = ResourceAddress::instance(Role::Web, i);
        let Some(release) = &m.release else {
            backends.push(web);
            continue;
        };
        let r = ResourceAddress::config(Role::Web, i);
        let mut web_spec = spec(&[
            ("templates", inputs.template("app")),
            ("release", inputs.release.clone().unwrap_or_default()),
            ("build", release.build.clone().unwrap_or_default()),
            ("start", release.start.clone()),
            ("health", release.health.clone()),
            ("port", m.web.port.to_string()),
            // The app's environment names these machines: a change re-releases it.
            (
                "database",
                m.database
                    .as_ref()
                    .map_or_else(String::new, |_| "db.primary".to_string()),
            ),
            ("replicas", list(replicas.iter().copied())),
            ("caches", list(caches.iter().copied())),
        ]);
        if let ResourceSpec::Config(c) = &mut web_spec {
            if let Some(dir) = &inputs.pinned {
                c.inputs.insert("dir".to_string(), dir.clone());
            }
            if let Some(config) = &inputs.config {
                c.inputs.insert("config".to_string(), config.clone());
            }
            // `[env]` (not secret): a change re-releases.
            if !m.env.is_empty() {
                let text: Vec<String> = m.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                c.inputs.insert(
                    "env".to_string(),
                    crate::hash::sha256_hex(text.join("\0").as_bytes())[..16].to_string(),
                );
            }
        }
        g.add(r, web_spec);
        g.depend(r, web);
        for &need in &web_needs {
            g.depend(r, need);
        }
        backends.push(r);
    }

    let lb = ResourceAddress::config(Role::Lb, 0);
    let mut lb_inputs = vec![
        ("templates", inputs.template("haproxy")),
        ("listen", m.load_balancer.listen.to_string()),
        ("health", health),
        ("port", m.web.port.to_string()),
        (
            "servers",
            list((0..m.web.count).map(|i| ResourceAddress::instance(Role::Web, i))),
        ),
    ];
    // Only when set, so plans of manifests without it are unchanged.
    if let Some(n) = m.web.max_connections {
        lb_inputs.push(("max_connections", n.to_string()));
    }
    if let Some(tls) = &m.load_balancer.tls {
        lb_inputs.push(("tls_port", tls.port.to_string()));
        lb_inputs.push(("tls", inputs.tls.clone().unwrap_or_default()));
    }
    g.add(lb, spec(&lb_inputs));
    g.depend(lb, ResourceAddress::instance(Role::Lb, 0));
    for b in backends {
        g.depend(lb, b);
    }
}
