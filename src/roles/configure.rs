//! The real [`Configurator`]: each configuration address runs its role on its
//! machine, reached through a [`Fleet`] (local processes, or SSH).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::apply::{ConfigJob, Configurator, Configured};
use crate::graph::{ResourceAddress, Role};
use crate::manifest::Manifest;
use crate::remote::{Redactor, Remote};
use crate::state::ResourceState;

use super::{app, haproxy, memcached};

/// Where a machine keeps appgrid's files and which address its services bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePlace {
    /// "" on a real host; the machine's directory for the local provider.
    pub root: String,
    pub addr: String,
}

/// A connection to a machine, and what the connection learned about it (a
/// host key to pin in state).
pub struct Connected<R> {
    pub remote: R,
    pub place: MachinePlace,
    pub learned: BTreeMap<String, String>,
}

/// How to reach the machines of one provider.
pub trait Fleet: Send + Sync + 'static {
    type Remote: Remote + 'static;
    fn connect(
        &self,
        address: ResourceAddress,
        machine: &ResourceState,
    ) -> impl Future<Output = Result<Connected<Self::Remote>, String>> + Send;
}

/// Runs the roles of one app's manifest.
pub struct RoleConfigurator<F> {
    pub fleet: F,
    pub manifest: Manifest,
    /// The manifest's directory: `[release] path` is relative to it.
    pub base_dir: PathBuf,
    pub redactor: Redactor,
    /// The release archived once per content digest, for every web server.
    pub archives: tokio::sync::Mutex<BTreeMap<String, std::sync::Arc<Vec<u8>>>>,
}

/// (busy, total) jiffies from the `cpu` line of /proc/stat: busy is everything
/// but idle and iowait.
pub fn cpu_jiffies(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
    if values.len() < 5 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Some((total - idle, total))
}

/// The indices of the web machines a configuration's input `key` lists
/// (`web[0],web[2]`).
pub fn web_indices(spec: &crate::graph::ConfigSpec, key: &str) -> Vec<u32> {
    spec.inputs
        .get(key)
        .map(|list| {
            list.split(',')
                .filter_map(|a| match a.parse::<ResourceAddress>() {
                    Ok(ResourceAddress::Instance {
                        role: Role::Web,
                        index,
                    }) => Some(index),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The address a machine's services listen on, from state: the `bind_addr`
/// an SSH fleet learned from the machine itself, else the cloud's `private_ip`
/// (the `local` provider's loopback address; a `hosts` pool entry).
pub fn machine_addr(
    resources: &BTreeMap<ResourceAddress, ResourceState>,
    machine: ResourceAddress,
) -> Result<String, String> {
    let attributes = resources.get(&machine).map(|r| &r.attributes);
    attributes
        .and_then(|a| {
            a.get(super::fleet_ssh::BIND_ADDR)
                .or_else(|| a.get("private_ip"))
        })
        .cloned()
        .ok_or_else(|| format!("{machine} has no address in state yet"))
}

impl<F: Fleet> RoleConfigurator<F> {
    async fn connect(&self, job: &ConfigJob) -> Result<Connected<F::Remote>, String> {
        let machine = job
            .address
            .machine()
            .ok_or_else(|| format!("{}: no machine", job.address))?;
        let record = job
            .resources
            .get(&machine)
            .ok_or_else(|| format!("{}: its machine {machine} is not in state", job.address))?;
        self.fleet.connect(machine, record).await
    }

    fn cache(&self) -> Result<&crate::manifest::Cache, String> {
        self.manifest
            .cache
            .as_ref()
            .ok_or_else(|| "the manifest has no [cache]".to_string())
    }

    /// The app's environment: where the database and the caches are.
    fn app_env(&self, job: &ConfigJob) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
        let mut env = BTreeMap::new();
        let mut secrets = Vec::new();
        if let Some(db) = &self.manifest.database {
            let primary = job
                .resources
                .get(&ResourceAddress::config(Role::DbPrimary, 0))
                .ok_or("db.primary.config is not applied yet")?;
            let password = primary
                .attributes
                .get("password")
                .ok_or("db.primary.config has no password in state")?;
            let user = primary
                .attributes
                .get("user")
                .cloned()
                .unwrap_or_else(|| self.manifest.app.name.clone());
            let name = primary
                .attributes
                .get("database")
                .cloned()
                .unwrap_or_else(|| self.manifest.app.name.clone());
            let url =
                |addr: &str| format!("postgres://{user}:{password}@{addr}:{}/{name}", db.port);
            // Writes go to the origin of the replicated set (the primary until a
            // switchover), reads to every other node.
            let origin = job
                .resources
                .get(&ResourceAddress::SlonyCluster)
                .and_then(|c| c.attributes.get("origin"))
                .and_then(|o| o.parse::<u32>().ok())
                .unwrap_or(1);
            let mut nodes = vec![(1, ResourceAddress::instance(Role::DbPrimary, 0))];
            for i in 0..db.replicas {
                if job
                    .resources
                    .contains_key(&ResourceAddress::config(Role::DbReplica, i))
                {
                    nodes.push((i + 2, ResourceAddress::instance(Role::DbReplica, i)));
                }
            }
            let mut replicas = Vec::new();
            for (id, machine) in nodes {
                let u = url(&machine_addr(&job.resources, machine)?);
                if id == origin {
                    env.insert("DATABASE_URL".into(), u);
                } else {
                    replicas.push(u);
                }
            }
            env.insert("DATABASE_REPLICA_URLS".into(), replicas.join(","));
            secrets.push(password.clone());
        }
        if let Some(cache) = &self.manifest.cache {
            let mut servers = Vec::new();
            for i in 0..cache.nodes {
                servers.push(format!(
                    "{}:{}",
                    machine_addr(&job.resources, ResourceAddress::instance(Role::Cache, i))?,
                    cache.port
                ));
            }
            env.insert("MEMCACHE_SERVERS".into(), servers.join(","));
        }
        Ok((env, secrets))
    }

    /// The release's archive, made once per content digest (the spec's
    /// `release` input) and shared by every web server's release step.
    async fn archive(
        &self,
        job: &ConfigJob,
        dir: &std::path::Path,
    ) -> Result<std::sync::Arc<Vec<u8>>, String> {
        let digest = job.spec.inputs.get("release").cloned().unwrap_or_default();
        let mut archives = self.archives.lock().await;
        if let Some(tar) = archives.get(&digest).filter(|_| !digest.is_empty()) {
            return Ok(std::sync::Arc::clone(tar));
        }
        let tar = std::sync::Arc::new(app::archive(dir).await?);
        if !digest.is_empty() {
            archives.insert(digest, std::sync::Arc::clone(&tar));
        }
        Ok(tar)
    }

    /// The load balancer, when it is configured and running.
    async fn load_balancer(&self, job: &ConfigJob) -> Result<Option<Connected<F::Remote>>, String> {
        if !job
            .resources
            .contains_key(&ResourceAddress::config(Role::Lb, 0))
        {
            return Ok(None);
        }
        let lb = ResourceAddress::instance(Role::Lb, 0);
        let record = job.resources.get(&lb).ok_or("lb is not in state")?;
        Ok(Some(self.fleet.connect(lb, record).await?))
    }

    /// The web servers the load balancer should send traffic to: every web
    /// machine whose release is applied (or every web machine, without a release).
    fn backends(&self, job: &ConfigJob) -> Result<Vec<haproxy::Backend>, String> {
        let mut out = Vec::new();
        // The servers the spec names (the web count as applied, which the
        // autoscaler may have set), not the manifest's `[web] count`.
        for i in web_indices(&job.spec, "servers") {
            let ready = self.manifest.release.is_none()
                || job
                    .resources
                    .contains_key(&ResourceAddress::config(Role::Web, i));
            if !ready {
                continue;
            }
            out.push(haproxy::Backend {
                name: format!("web{i}"),
                addr: machine_addr(&job.resources, ResourceAddress::instance(Role::Web, i))?,
                port: self.manifest.web.port,
            });
        }
        Ok(out)
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl<F: Fleet> Configurator for RoleConfigurator<F> {
    async fn configure(&self, job: ConfigJob) -> Result<Configured, String> {
        let connected = self.connect(&job).await?;
        let (remote, place) = (&connected.remote, &connected.place);
        let mut configured = Configured {
            machine_attributes: connected.learned.clone(),
            ..Configured::default()
        };
        match job.address {
            ResourceAddress::Config {
                role: Role::Cache, ..
            } => {
                let cache = self.cache()?;
                let outcome = memcached::ensure_memcached(
                    remote,
                    &memcached::CacheNode {
                        root: place.root.clone(),
                        addr: place.addr.clone(),
                        port: cache.port,
                        memory_mb: cache.memory_mb,
                    },
                )
                .await
                .map_err(text)?;
                configured
                    .attributes
                    .insert("memory_mb".into(), outcome.memory_mb.to_string());
            }
            ResourceAddress::Config {
                role: Role::Web, ..
            } => {
                let release = self
                    .manifest
                    .release
                    .as_ref()
                    .ok_or("the manifest has no [release]")?;
                let (env, secrets) = self.app_env(&job)?;
                // A running server is taken out of the load balancer before it
                // restarts and put back once healthy: no request meets a restart.
                let index = match job.address {
                    ResourceAddress::Config { index, .. } => index,
                    _ => 0,
                };
                let backend = haproxy::Backend {
                    name: format!("web{index}"),
                    addr: place.addr.clone(),
                    port: self.manifest.web.port,
                };
                let lb = match &job.prior {
                    Some(_) => self.load_balancer(&job).await?,
                    None => None,
                };
                if let Some(lb) = &lb {
                    haproxy::drain_server(
                        &lb.remote,
                        &lb.place.root,
                        &backend.name,
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(text)?;
                }
                let released = app::release(
                    remote,
                    &app::AppRelease {
                        root: place.root.clone(),
                        addr: place.addr.clone(),
                        port: self.manifest.web.port,
                        app_dir_local: self.base_dir.join(&release.path),
                        build: release.build.clone(),
                        start: release.start.clone(),
                        health_path: release.health.clone(),
                        env,
                        secrets,
                        health_timeout: Duration::from_secs(60),
                        archive: Some(
                            self.archive(&job, &self.base_dir.join(&release.path))
                                .await?,
                        ),
                    },
                    &self.redactor,
                )
                .await
                .map_err(text)?;
                if let Some(lb) = &lb {
                    haproxy::add_server(
                        &lb.remote,
                        &lb.place.root,
                        &backend,
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(text)?;
                }
                configured
                    .attributes
                    .insert("release".into(), released.release_id);
            }
            ResourceAddress::Config { role: Role::Lb, .. } => {
                let health = self
                    .manifest
                    .release
                    .as_ref()
                    .map_or_else(|| "/".to_string(), |r| r.health.clone());
                haproxy::ensure_haproxy(
                    remote,
                    &haproxy::LbConfig {
                        root: place.root.clone(),
                        addr: place.addr.clone(),
                        listen: self.manifest.load_balancer.listen,
                        health_path: health,
                        servers: self.backends(&job)?,
                    },
                    haproxy::Bounds {
                        healthy: Duration::from_secs(60),
                        drain: Duration::from_secs(30),
                    },
                )
                .await
                .map_err(text)?;
                configured.attributes.insert(
                    "url".into(),
                    format!(
                        "http://{}:{}/",
                        place.addr, self.manifest.load_balancer.listen
                    ),
                );
            }
            other => {
                return self
                    .configure_database(other, &job, remote, place, configured)
                    .await;
            }
        }
        Ok(configured)
    }

    async fn unconfigure(&self, job: ConfigJob) -> Result<(), String> {
        let connected = self.connect(&job).await?;
        let (remote, place) = (&connected.remote, &connected.place);
        match job.address {
            ResourceAddress::Config {
                role: Role::Web, ..
            } => app::stop(remote, &place.root).await.map_err(text),
            // Stopped, not removed: a host (`hosts`) outlives its role.
            ResourceAddress::Config {
                role: Role::Cache, ..
            } => memcached::stop_memcached(remote, &place.root)
                .await
                .map_err(text),
            ResourceAddress::Config { role: Role::Lb, .. } => {
                haproxy::stop_haproxy(remote, &place.root)
                    .await
                    .map_err(text)
            }
            other => self.unconfigure_database(other, &job, remote, place).await,
        }
    }

    async fn status(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
    ) -> Result<crate::status::AppStatus, String> {
        self.status_report(resources).await
    }

    async fn migrate(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        sql: String,
    ) -> Result<(), String> {
        self.migrate_all(resources, sql).await
    }

    async fn web_counters(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        cpu: bool,
    ) -> Result<Vec<crate::apply::ServerCounters>, String> {
        let lb = ResourceAddress::instance(Role::Lb, 0);
        let record = resources.get(&lb).ok_or("lb is not in state")?;
        let c = self.fleet.connect(lb, record).await?;
        let stats = haproxy::show_stat(&c.remote, &c.place.root)
            .await
            .map_err(text)?;
        let mut out = Vec::new();
        for s in stats.into_iter().filter(|s| s.name.starts_with("web")) {
            // CPU is read from the machine itself: its /proc/stat totals.
            let cpu = match (cpu, s.name[3..].parse::<u32>()) {
                (true, Ok(index)) => {
                    let machine = ResourceAddress::instance(Role::Web, index);
                    match resources.get(&machine) {
                        Some(record) => {
                            let m = self.fleet.connect(machine, record).await?;
                            let stat = m
                                .remote
                                .run("read /proc/stat", "head -n 1 /proc/stat\n")
                                .await
                                .map_err(text)?;
                            cpu_jiffies(&stat.stdout)
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            out.push(crate::apply::ServerCounters {
                up: s.is_up(),
                name: s.name,
                requests: s.req_tot,
                response_ms: s.rtime,
                sessions: s.scur,
                queued: s.qcur,
                cpu,
            });
        }
        Ok(out)
    }

    async fn switchover(
        &self,
        resources: BTreeMap<ResourceAddress, ResourceState>,
        to: ResourceAddress,
    ) -> Result<BTreeMap<String, String>, String> {
        self.switchover_to(resources, to).await
    }
}
