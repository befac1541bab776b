//! Day-two commands: `appgrid status`, `appgrid db migrate`, `appgrid db switchover`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use appgrid::apply::{ConfigJob, Configurator};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::{ConfigSpec, ResourceAddress, ResourceSpec, Role};
use appgrid::state::State;

use super::term::outln;
use super::{Failure, providers};

/// The workspace's state, which these commands need to exist.
fn applied(ws: &Workspace) -> Result<State, Failure> {
    ws.load_state()?.ok_or_else(|| {
        Failure::Message(format!(
            "no state at {}: apply {} first",
            ws.store_path.display(),
            ws.manifest.path.display()
        ))
    })
}

struct Status {
    state: State,
    json: bool,
}

impl providers::Visitor for Status {
    type Output = Result<ExitCode, Failure>;
    async fn visit<C: Cloud, K: Configurator>(self, _: Arc<C>, k: Arc<K>) -> Self::Output {
        let Status { state, json } = self;
        let (app, serial, count) = (state.app.clone(), state.serial, state.resources.len());
        let status = k.status(state.resources).await.map_err(Failure::Message)?;
        if json {
            let mut value = serde_json::to_value(&status).expect("status serializes");
            value["app"] = app.into();
            value["serial"] = serial.into();
            value["resources"] = count.into();
            outln!("{}", serde_json::to_string_pretty(&value).expect("json"));
            return Ok(ExitCode::SUCCESS);
        }
        outln!("{app} (state serial {serial}, {count} resources)");
        for line in status.lines() {
            outln!("{line}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `json`: the same facts as one JSON object.
pub async fn status(file: &Path, state: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let state = applied(&ws)?;
    providers::with_provider(&ws, Status { state, json }).await
}

struct Migrate(State, String);

impl providers::Visitor for Migrate {
    type Output = Result<ExitCode, Failure>;
    async fn visit<C: Cloud, K: Configurator>(self, _: Arc<C>, k: Arc<K>) -> Self::Output {
        k.migrate(self.0.resources, self.1)
            .await
            .map_err(Failure::Message)?;
        outln!("Migration applied on every database node.");
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn migrate(
    file: &Path,
    sql: &Path,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let _lock = ws.lock("db migrate", lock_timeout)?;
    let s = applied(&ws)?;
    let text = std::fs::read_to_string(sql)
        .map_err(|e| Failure::Message(format!("cannot read {}: {e}", sql.display())))?;
    providers::with_provider(&ws, Migrate(s, text)).await
}

struct Switchover<'a> {
    ws: &'a Workspace,
    state: State,
    to: ResourceAddress,
}

impl providers::Visitor for Switchover<'_> {
    type Output = Result<ExitCode, Failure>;
    async fn visit<C: Cloud, K: Configurator>(self, _: Arc<C>, k: Arc<K>) -> Self::Output {
        let Switchover { ws, mut state, to } = self;
        let attributes = k
            .switchover(state.resources.clone(), to)
            .await
            .map_err(Failure::Message)?;
        let cluster = state
            .resources
            .get_mut(&ResourceAddress::SlonyCluster)
            .ok_or_else(|| Failure::Message("slony.cluster is not in state".into()))?;
        cluster.attributes = attributes;
        let store = ws.store();
        store
            .save(&mut state)
            .map_err(|e| Failure::Message(e.to_string()))?;
        outln!("{to} is now the origin: writes go there. Pointing the app servers at it…");
        // The app's DATABASE_URL names the origin: release every web server again.
        let web: Vec<ResourceAddress> = state
            .resources
            .keys()
            .copied()
            .filter(|a| {
                matches!(
                    a,
                    ResourceAddress::Config {
                        role: Role::Web,
                        ..
                    }
                )
            })
            .collect();
        for address in web {
            let prior = state.resources[&address].clone();
            let ResourceSpec::Config(spec) = prior.spec.clone() else {
                continue;
            };
            let job = ConfigJob {
                address,
                spec: ConfigSpec {
                    inputs: spec.inputs,
                },
                prior: Some(prior.clone()),
                resources: state.resources.clone(),
            };
            let configured = k.configure(job).await.map_err(Failure::Message)?;
            let record = state.resources.get_mut(&address).expect("present");
            record.attributes = configured.attributes;
            store
                .save(&mut state)
                .map_err(|e| Failure::Message(e.to_string()))?;
            outln!("{address}: released against the new origin");
        }
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn switchover(
    file: &Path,
    to: &str,
    state: Option<&Path>,
    lock_timeout: Duration,
) -> Result<ExitCode, Failure> {
    let to: ResourceAddress = to
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| Failure::Message(e.to_string()))?;
    let ws = Workspace::open(file, state)?;
    let _lock = ws.lock("db switchover", lock_timeout)?;
    let s = applied(&ws)?;
    providers::with_provider(
        &ws,
        Switchover {
            ws: &ws,
            state: s,
            to,
        },
    )
    .await
}
