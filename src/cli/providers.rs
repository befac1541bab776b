//! Picks the cloud and the configurator for the manifest's provider, and hands
//! them to generic code (a visitor, since a closure cannot be generic).

use std::future::Future;
use std::sync::Arc;

use appgrid::apply::{Configurator, NoConfigurator};
use appgrid::cloud::Cloud;
use appgrid::cloud::aws::AwsCloud;
use appgrid::cloud::local::LocalCloud;
use appgrid::engine::Workspace;
use appgrid::manifest::ProviderKind;
use appgrid::remote::{LogSink, Redactor};
use appgrid::roles::configure::RoleConfigurator;
use appgrid::roles::fleet_local::LocalFleet;

use super::Failure;

pub trait Visitor {
    type Output;
    fn visit<C: Cloud, K: Configurator>(
        self,
        cloud: Arc<C>,
        configurator: Arc<K>,
    ) -> impl Future<Output = Self::Output>;
}

/// Where the roles' output goes: stderr, a line at a time, already redacted.
fn log_sink() -> LogSink {
    Arc::new(|host: &str, _stream: &str, line: &str| eprintln!("  {host} | {line}"))
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
            visitor.visit(cloud, Arc::new(NoConfigurator)).await
        }
        ProviderKind::Local => {
            let cloud = Arc::new(LocalCloud::new(&LocalCloud::default_base(), &m.app.name));
            let configurator = RoleConfigurator {
                fleet: LocalFleet {
                    cloud: Arc::clone(&cloud),
                    redactor: redactor.clone(),
                    log: Some(log_sink()),
                },
                manifest: m.clone(),
                base_dir: ws.base_dir.clone(),
                redactor,
            };
            visitor.visit(cloud, Arc::new(configurator)).await
        }
        ProviderKind::Hosts => Err(Failure::Message(
            "the hosts provider is not wired into this build yet".into(),
        )),
    }
}
