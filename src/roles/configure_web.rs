//! The web tier's part of the [`RoleConfigurator`]: memcached on cache nodes,
//! the app release on web servers (taken out of the load balancer while they
//! restart), HAProxy on the load balancer.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;

use super::RoleError;
use super::configure::{
    Connected, Fleet, MachinePlace, RoleConfigurator, applied, machine_addr, secret_attribute,
    web_indices,
};
use super::{app, haproxy, memcached};
use crate::apply::{ConfigJob, Configured};
use crate::graph::{ResourceAddress, Role};

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn configure_web_tier(
        &self,
        job: &ConfigJob,
        remote: &F::Remote,
        place: &MachinePlace,
        mut configured: Configured,
    ) -> Result<Configured, RoleError> {
        match job.address {
            ResourceAddress::Config {
                role: Role::Cache, ..
            } => {
                let cache = self.cache()?;
                let outcome = memcached::ensure_memcached(
                    &self.templates,
                    remote,
                    &memcached::CacheNode {
                        root: place.root.clone(),
                        addr: place.addr.clone(),
                        port: cache.port,
                        memory_mb: cache.memory_mb,
                    },
                )
                .await?;
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
                    .ok_or(RoleError::ManifestLacks { table: "release" })?;
                let (env, secrets) = self.app_env(job)?;
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
                // A rollback (`dir` in the spec) runs a release the machine
                // keeps, with the commands it was released with.
                let pinned = job.spec.inputs.get("dir").cloned();
                let input = |k: &str| job.spec.inputs.get(k).cloned().unwrap_or_default();
                let (build, start, health) = match &pinned {
                    Some(_) => (
                        Some(input("build")).filter(|b| !b.is_empty()),
                        input("start"),
                        input("health"),
                    ),
                    None => (
                        release.build.clone(),
                        release.start.clone(),
                        release.health.clone(),
                    ),
                };
                let archive = match &pinned {
                    Some(_) => None,
                    None => Some(
                        self.archive(job, &self.base_dir.join(&release.path))
                            .await?,
                    ),
                };
                // The release phase runs once per release, on the first web
                // server to release it (the others wait for its outcome); a
                // failure there fails every other server's step before it
                // leaves the load balancer.
                let digest = input("release");
                let mut phase = Some(self.release_commands.lock().await);
                let release_command = match (
                    &release.release_command,
                    phase.as_ref().and_then(|p| p.get(&digest)),
                ) {
                    (_, Some(Err(e))) => {
                        return Err(RoleError::Web(super::WebRoleError::unexpected(
                            &place.addr,
                            "the release command",
                            format!(
                                "failed on another web server, so this one keeps its release: {e}"
                            ),
                        )));
                    }
                    (Some(cmd), None) if pinned.is_none() => Some(cmd.clone()),
                    _ => None,
                };
                if release_command.is_none() {
                    phase = None;
                }
                let lb = match &job.prior {
                    Some(_) => self.load_balancer(job).await?,
                    None => None,
                };
                if let Some(lb) = &lb {
                    haproxy::drain_server(
                        &self.templates,
                        &lb.remote,
                        &lb.place.root,
                        &backend.name,
                        Duration::from_secs(30),
                    )
                    .await?;
                }
                let released = app::release(
                    &self.templates,
                    remote,
                    &app::AppRelease {
                        root: place.root.clone(),
                        addr: place.addr.clone(),
                        port: self.manifest.web.port,
                        app_dir_local: self.base_dir.join(&release.path),
                        build,
                        start,
                        health_path: health,
                        env,
                        secrets,
                        health_timeout: release.health_timeout,
                        archive,
                        pinned,
                        release_command: release_command.clone(),
                    },
                    &self.redactor,
                )
                .await;
                if let (Some(mut phase), Some(_)) = (phase, &release_command) {
                    match &released {
                        Err(e @ super::WebRoleError::ReleaseCommand { .. }) => {
                            phase.insert(digest, Err(e.to_string()));
                        }
                        // The command ran (and passed) unless the step failed
                        // before it: then the next server runs it.
                        Ok(_) | Err(super::WebRoleError::ReleaseFailed { .. }) => {
                            phase.insert(digest, Ok(()));
                        }
                        Err(_) => {}
                    }
                }
                let released = match released {
                    Ok(r) => r,
                    Err(e) => {
                        // The previous release runs again (rolled back, or
                        // never switched away from): it rejoins the load
                        // balancer before the failure is reported.
                        let back = match &e {
                            super::WebRoleError::ReleaseFailed { what, .. } => {
                                matches!(what.rollback, super::Rollback::Healthy(_))
                            }
                            _ => true,
                        };
                        if let (Some(lb), true) = (&lb, back)
                            && let Err(readd) = haproxy::add_server(
                                &self.templates,
                                &lb.remote,
                                &lb.place.root,
                                &backend,
                                self.manifest.web.max_connections,
                                release.health_timeout,
                            )
                            .await
                        {
                            tracing::warn!(
                                address = %job.address,
                                "the previous release did not rejoin the load balancer: {readd}"
                            );
                        }
                        return Err(e.into());
                    }
                };
                if let Some(lb) = &lb {
                    haproxy::add_server(
                        &self.templates,
                        &lb.remote,
                        &lb.place.root,
                        &backend,
                        self.manifest.web.max_connections,
                        Duration::from_secs(60),
                    )
                    .await?;
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
                    &self.templates,
                    remote,
                    &haproxy::LbConfig {
                        root: place.root.clone(),
                        addr: place.addr.clone(),
                        listen: self.manifest.load_balancer.listen,
                        health_path: health,
                        servers: self.backends(job)?,
                        maintenance: self.maintenance.clone(),
                        tls: self.tls(job)?,
                        max_connections: self.manifest.web.max_connections,
                    },
                    haproxy::Bounds {
                        healthy: Duration::from_secs(60),
                        drain: Duration::from_secs(30),
                    },
                )
                .await?;
                let url = match &self.manifest.load_balancer.tls {
                    Some(tls) => format!("https://{}:{}/", place.addr, tls.port),
                    None => format!(
                        "http://{}:{}/",
                        place.addr, self.manifest.load_balancer.listen
                    ),
                };
                configured.attributes.insert("url".into(), url);
            }
            other => {
                return Err(RoleError::WrongAddress {
                    address: other,
                    expected: "not a web-tier configuration",
                });
            }
        }
        Ok(configured)
    }

    pub(super) async fn unconfigure_web_tier(
        &self,
        job: &ConfigJob,
        remote: &F::Remote,
        place: &MachinePlace,
    ) -> Result<(), RoleError> {
        let t = &self.templates;
        match job.address {
            ResourceAddress::Config {
                role: Role::Web, ..
            } => app::stop(t, remote, &place.root).await?,
            // Stopped, not removed: a host (`hosts`) outlives its role.
            ResourceAddress::Config {
                role: Role::Cache, ..
            } => memcached::stop_memcached(t, remote, &place.root).await?,
            ResourceAddress::Config { role: Role::Lb, .. } => {
                haproxy::stop_haproxy(t, remote, &place.root).await?
            }
            other => {
                return Err(RoleError::WrongAddress {
                    address: other,
                    expected: "not a web-tier configuration",
                });
            }
        }
        Ok(())
    }

    fn cache(&self) -> Result<&crate::manifest::Cache, RoleError> {
        self.manifest
            .cache
            .as_ref()
            .ok_or(RoleError::ManifestLacks { table: "cache" })
    }

    /// The app's environment: where the database and the caches are, and
    /// the secrets in it.
    fn app_env(
        &self,
        job: &ConfigJob,
    ) -> Result<(BTreeMap<String, String>, Vec<SecretString>), RoleError> {
        use secrecy::ExposeSecret;
        let mut env = BTreeMap::new();
        let mut secrets = Vec::new();
        if let Some(db) = &self.manifest.database {
            let primary_config = ResourceAddress::config(Role::DbPrimary, 0);
            let primary = applied(&job.resources, primary_config, job.address)?;
            let password = secret_attribute(primary, primary_config, "password")?;
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
            let url = |addr: &str| {
                format!(
                    "postgres://{user}:{}@{addr}:{}/{name}",
                    password.expose_secret(),
                    db.port
                )
            };
            // Writes go to the origin of the replicated set (the primary until a
            // switchover), reads to every other node.
            let origin = job
                .resources
                .get(&ResourceAddress::SlonyCluster)
                .and_then(|c| c.attributes.get("origin"))
                .and_then(|o| o.parse::<u32>().ok())
                .unwrap_or(1);
            let node = |m| super::configure_db::node_in(&job.resources, m).unwrap_or(0);
            let primary = ResourceAddress::instance(Role::DbPrimary, 0);
            let mut nodes = vec![(node(primary), primary)];
            // The replicas this release's spec names: on the way out, one is
            // still in state (and the cluster) but no longer in the spec.
            let listed = super::configure::listed(&job.spec, "replicas", Role::DbReplica)
                .unwrap_or_else(|| (0..db.replicas).collect());
            for i in listed {
                if job
                    .resources
                    .contains_key(&ResourceAddress::config(Role::DbReplica, i))
                {
                    let replica = ResourceAddress::instance(Role::DbReplica, i);
                    nodes.push((node(replica), replica));
                }
            }
            let mut replicas = Vec::new();
            for (id, machine) in nodes {
                // A failed-over node is out of the cluster until it is replaced.
                if super::operations_db::failed_over(&job.resources, machine) {
                    continue;
                }
                let u = url(&machine_addr(&job.resources, machine)?);
                if id == origin {
                    env.insert("DATABASE_URL".into(), u);
                } else {
                    replicas.push(u);
                }
            }
            env.insert("DATABASE_REPLICA_URLS".into(), replicas.join(","));
            secrets.push(password);
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
        // `[env]` defaults, then the user's config vars over them (reserved
        // names were refused in both places).
        for (name, value) in &self.manifest.env {
            env.insert(name.clone(), value.clone());
        }
        // Every value is treated as a secret, but redacting a value of a
        // character or two would mangle every log line.
        for (name, value) in &self.config_vars {
            env.insert(name.clone(), value.expose_secret().to_string());
            if value.expose_secret().len() >= 4 {
                secrets.push(value.clone());
            }
        }
        Ok((env, secrets))
    }

    /// The release's archive, made once per content digest (the spec's
    /// `release` input) and shared by every web server's release step.
    async fn archive(
        &self,
        job: &ConfigJob,
        dir: &std::path::Path,
    ) -> Result<std::sync::Arc<Vec<u8>>, RoleError> {
        let digest = job.spec.inputs.get("release").cloned().unwrap_or_default();
        let mut archives = self.archives.lock().await;
        if let Some(tar) = archives.get(&digest).filter(|_| !digest.is_empty()) {
            return Ok(std::sync::Arc::clone(tar));
        }
        let tar =
            std::sync::Arc::new(
                app::archive(dir)
                    .await
                    .map_err(|detail| RoleError::Archive {
                        dir: dir.to_path_buf(),
                        detail,
                    })?,
            );
        if !digest.is_empty() {
            archives.insert(digest, std::sync::Arc::clone(&tar));
        }
        Ok(tar)
    }

    /// The load balancer, when it is configured and running.
    async fn load_balancer(
        &self,
        job: &ConfigJob,
    ) -> Result<Option<Connected<F::Remote>>, RoleError> {
        if !job
            .resources
            .contains_key(&ResourceAddress::config(Role::Lb, 0))
        {
            return Ok(None);
        }
        let lb = ResourceAddress::instance(Role::Lb, 0);
        let record = applied(&job.resources, lb, job.address)?;
        Ok(Some(self.fleet.connect(lb, record).await?))
    }

    /// HTTPS at the load balancer: the PEM file read now, and refused when
    /// it is not the one the plan was made with (its digest, the spec's `tls`).
    fn tls(&self, job: &ConfigJob) -> Result<Option<haproxy::LbTls>, RoleError> {
        let Some(tls) = &self.manifest.load_balancer.tls else {
            return Ok(None);
        };
        let path = self.base_dir.join(&tls.certificate);
        let pem = std::fs::read(&path).map_err(|e| RoleError::Certificate {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let planned = job.spec.inputs.get("tls").cloned().unwrap_or_default();
        if crate::hash::sha256_hex(&pem) != planned {
            return Err(RoleError::Certificate {
                path,
                detail: "the file changed since the plan was made; plan again".to_string(),
            });
        }
        Ok(Some(haproxy::LbTls {
            port: tls.port,
            pem,
        }))
    }

    /// The web servers the load balancer should send traffic to: every web
    /// machine whose release is applied (or every web machine, without a release).
    fn backends(&self, job: &ConfigJob) -> Result<Vec<haproxy::Backend>, RoleError> {
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
