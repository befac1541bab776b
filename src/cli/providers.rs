//! Picks the cloud and the configurator for the manifest's provider, and hands
//! them to generic code (a visitor, since a closure cannot be generic).
//!
//! Two kinds of visitors: a [`Visitor`] gets a [`Configurator`] (plan, apply,
//! destroy: with `configure = false` it is one that configures nothing); an
//! [`OpsVisitor`] gets one that also runs day-two [`Operations`], and with
//! `configure = false` it is refused before anything is contacted.

use std::future::Future;
use std::sync::Arc;

use appgrid::apply::{Configurator, NoConfigurator, resolve_path};
use appgrid::cloud::Cloud;
use appgrid::cloud::aws::AwsCloud;
use appgrid::cloud::hosts::HostsCloud;
use appgrid::cloud::local::LocalCloud;
use appgrid::engine::Workspace;
use appgrid::manifest::ProviderKind;
use appgrid::ops::{OperationError, Operations};
use appgrid::remote::{LogSink, Redactor};
use appgrid::roles::configure::{Fleet, RoleConfigurator};
use appgrid::roles::fleet_local::LocalFleet;
use appgrid::roles::fleet_ssh::SshFleet;

use super::Failure;

pub trait Visitor {
    type Output;
    fn visit<C: Cloud, K: Configurator>(
        self,
        cloud: Arc<C>,
        configurator: Arc<K>,
    ) -> impl Future<Output = Self::Output>;
}

/// For day-two commands: the configurator runs [`Operations`] too.
pub trait OpsVisitor {
    type Output;
    fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        cloud: Arc<C>,
        roles: Arc<K>,
    ) -> impl Future<Output = Result<Self::Output, Failure>>;
}

/// A day-two question the roles answer alone, no cloud call (status, a
/// migration, a console): [`ask`] runs it.
pub trait Ask {
    type Answer;
    fn ask<K: Operations>(
        self,
        roles: &K,
    ) -> impl Future<Output = Result<Self::Answer, OperationError>>;
}

/// An [`Ask`] as an [`OpsVisitor`].
struct Asking<Q>(Q);

impl<Q: Ask> OpsVisitor for Asking<Q> {
    type Output = Q::Answer;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        _: Arc<C>,
        roles: Arc<K>,
    ) -> Result<Q::Answer, Failure> {
        self.0
            .ask(roles.as_ref())
            .await
            .map_err(|e| Failure::Message(e.to_string()))
    }
}

/// What a provider offers: its machines configured by the roles, or not.
trait Offer {
    type Output;
    fn roles<C: Cloud, F: Fleet>(
        self,
        cloud: Arc<C>,
        roles: Arc<RoleConfigurator<F>>,
    ) -> impl Future<Output = Self::Output>;
    fn unconfigured<C: Cloud>(self, cloud: Arc<C>) -> impl Future<Output = Self::Output>;
}

struct Plain<V>(V);

impl<V: Visitor> Offer for Plain<V> {
    type Output = V::Output;
    async fn roles<C: Cloud, F: Fleet>(
        self,
        cloud: Arc<C>,
        roles: Arc<RoleConfigurator<F>>,
    ) -> V::Output {
        self.0.visit(cloud, roles).await
    }
    async fn unconfigured<C: Cloud>(self, cloud: Arc<C>) -> V::Output {
        self.0.visit(cloud, Arc::new(NoConfigurator)).await
    }
}

struct Day2<V>(V);

impl<V: OpsVisitor> Offer for Day2<V> {
    type Output = Result<V::Output, Failure>;
    async fn roles<C: Cloud, F: Fleet>(
        self,
        cloud: Arc<C>,
        roles: Arc<RoleConfigurator<F>>,
    ) -> Self::Output {
        self.0.visit(cloud, roles).await
    }
    async fn unconfigured<C: Cloud>(self, _: Arc<C>) -> Self::Output {
        Err(Failure::Message(
            "appgrid does not configure this app's machines (`configure = false` in [provider]), \
             so it has no services to operate on"
                .to_string(),
        ))
    }
}

/// Where the roles' output goes: their stderr (what they report as they work;
/// their stdout is data for appgrid), a line at a time, already redacted.
fn log_sink() -> LogSink {
    Arc::new(|host: &str, stream: &str, line: &str| {
        if stream == "err" {
            tracing::info!(target: "appgrid::role", host, "  {host} | {line}");
        }
    })
}

fn roles<F: Fleet>(ws: &Workspace, fleet: F, redactor: Redactor) -> Arc<RoleConfigurator<F>> {
    let state = ws.load_state().ok().flatten();
    Arc::new(RoleConfigurator {
        fleet,
        manifest: ws.manifest.manifest.clone(),
        templates: ws.templates.clone(),
        base_dir: ws.base_dir.clone(),
        redactor,
        archives: Default::default(),
        release_commands: Default::default(),
        // Read when the configurator is made: `config set` and `maintenance`
        // save first.
        config_vars: state
            .as_ref()
            .map(|s| s.config.secrets())
            .unwrap_or_default(),
        maintenance: state.and_then(|s| s.maintenance),
    })
}

pub async fn with_provider<V: Visitor<Output = Result<T, Failure>>, T>(
    ws: &Workspace,
    visitor: V,
) -> Result<T, Failure> {
    offer(ws, Plain(visitor)).await?
}

/// Run a day-two command's visitor; refused when appgrid does not configure
/// the machines.
pub async fn with_operations<V: OpsVisitor>(
    ws: &Workspace,
    visitor: V,
) -> Result<V::Output, Failure> {
    offer(ws, Day2(visitor)).await?
}

/// Ask the roles `question`; refused like [`with_operations`].
pub async fn ask<Q: Ask>(ws: &Workspace, question: Q) -> Result<Q::Answer, Failure> {
    with_operations(ws, Asking(question)).await
}

async fn offer<O: Offer>(ws: &Workspace, offer: O) -> Result<O::Output, Failure> {
    let m = &ws.manifest.manifest;
    let redactor = Redactor::new();
    Ok(match m.provider.kind {
        ProviderKind::Aws => {
            let cloud = Arc::new(
                AwsCloud::connect(&m.provider)
                    .await
                    .map_err(|e| Failure::Message(e.to_string()))?,
            );
            if !m.provider.configure {
                return Ok(offer.unconfigured(cloud).await);
            }
            let fleet = SshFleet::new(
                &m.provider,
                resolve_path(&m.provider.ssh_key, &ws.base_dir),
                redactor.clone(),
                Some(log_sink()),
            );
            offer.roles(cloud, roles(ws, fleet, redactor)).await
        }
        ProviderKind::Local => {
            let cloud = Arc::new(LocalCloud::new(&LocalCloud::default_base(), &m.app.name));
            let fleet = LocalFleet {
                cloud: Arc::clone(&cloud),
                redactor: redactor.clone(),
                log: Some(log_sink()),
            };
            offer.roles(cloud, roles(ws, fleet, redactor)).await
        }
        ProviderKind::Hosts => {
            let registry = ws.store_path.with_file_name("hosts.json");
            let cloud = Arc::new(HostsCloud::new(m.provider.hosts.clone(), registry));
            let mut fleet = SshFleet::new(
                &m.provider,
                resolve_path(&m.provider.ssh_key, &ws.base_dir),
                redactor.clone(),
                Some(log_sink()),
            );
            fleet.id_is_endpoint = true;
            offer.roles(cloud, roles(ws, fleet, redactor)).await
        }
    })
}

/// For commands that reach one machine without changing the app (the
/// autoscaler's install, status, uninstall): the provider's [`Fleet`] alone,
/// no cloud API asked.
pub trait FleetVisitor {
    type Output;
    fn visit<F: Fleet>(self, fleet: F) -> impl Future<Output = Result<Self::Output, Failure>>;
}

pub async fn with_fleet<V: FleetVisitor>(ws: &Workspace, visitor: V) -> Result<V::Output, Failure> {
    let m = &ws.manifest.manifest;
    let redactor = Redactor::new();
    match m.provider.kind {
        ProviderKind::Aws | ProviderKind::Hosts => {
            let mut fleet = SshFleet::new(
                &m.provider,
                resolve_path(&m.provider.ssh_key, &ws.base_dir),
                redactor,
                Some(log_sink()),
            );
            fleet.id_is_endpoint = m.provider.kind == ProviderKind::Hosts;
            // A machine that does not answer is an error now, not after two minutes.
            fleet.connect_timeout = std::time::Duration::from_secs(15);
            visitor.visit(fleet).await
        }
        ProviderKind::Local => {
            let cloud = Arc::new(LocalCloud::new(&LocalCloud::default_base(), &m.app.name));
            visitor
                .visit(LocalFleet {
                    cloud,
                    redactor,
                    log: Some(log_sink()),
                })
                .await
        }
    }
}
