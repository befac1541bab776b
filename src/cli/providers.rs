//! Picks the cloud and the configurator for the manifest's provider, and hands
//! them to generic code (a visitor, since a closure cannot be generic).

use std::future::Future;
use std::sync::Arc;

use appgrid::apply::{Configurator, NoConfigurator, resolve_path};
use appgrid::cloud::Cloud;
use appgrid::cloud::aws::AwsCloud;
use appgrid::cloud::hosts::HostsCloud;
use appgrid::cloud::local::LocalCloud;
use appgrid::engine::Workspace;
use appgrid::manifest::ProviderKind;
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

/// Where the roles' output goes: their stderr (what they report as they work;
/// their stdout is data for appgrid), a line at a time, already redacted.
fn log_sink() -> LogSink {
    Arc::new(|host: &str, stream: &str, line: &str| {
        if stream == "err" {
            tracing::info!(target: "appgrid::role", host, "  {host} | {line}");
        }
    })
}

fn roles<F: Fleet>(ws: &Workspace, fleet: F, redactor: Redactor) -> RoleConfigurator<F> {
    RoleConfigurator {
        fleet,
        manifest: ws.manifest.manifest.clone(),
        base_dir: ws.base_dir.clone(),
        redactor,
        archives: Default::default(),
    }
}

pub async fn with_provider<V: Visitor<Output = Result<T, Failure>>, T>(
    ws: &Workspace,
    visitor: V,
) -> Result<T, Failure> {
    let m = &ws.manifest.manifest;
    let redactor = Redactor::new();
    match m.provider.kind {
        ProviderKind::Aws => {
            let cloud = Arc::new(
                AwsCloud::connect(&m.provider)
                    .await
                    .map_err(|e| Failure::Message(e.to_string()))?,
            );
            if !m.provider.configure {
                return visitor.visit(cloud, Arc::new(NoConfigurator)).await;
            }
            let fleet = SshFleet::new(
                &m.provider,
                resolve_path(&m.provider.ssh_key, &ws.base_dir),
                redactor.clone(),
                Some(log_sink()),
            );
            visitor
                .visit(cloud, Arc::new(roles(ws, fleet, redactor)))
                .await
        }
        ProviderKind::Local => {
            let cloud = Arc::new(LocalCloud::new(&LocalCloud::default_base(), &m.app.name));
            let fleet = LocalFleet {
                cloud: Arc::clone(&cloud),
                redactor: redactor.clone(),
                log: Some(log_sink()),
            };
            visitor
                .visit(cloud, Arc::new(roles(ws, fleet, redactor)))
                .await
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
            visitor
                .visit(cloud, Arc::new(roles(ws, fleet, redactor)))
                .await
        }
    }
}
