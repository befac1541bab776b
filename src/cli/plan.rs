//! `appgrid plan`.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use appgrid::apply::Configurator;
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceGraph;
use appgrid::plan::Plan;
use appgrid::plan::{file, render};
use appgrid::state::State;

use super::preflight::{self, Reach};
use super::term::{self, out, outln};
use super::{Failure, providers};

pub struct Options {
    pub file: PathBuf,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub detailed_exitcode: bool,
    pub refresh: bool,
    pub state: Option<PathBuf>,
}

pub async fn run(o: Options) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(&o.file, o.state.as_deref())?;
    let state = ws.load_state()?;
    let plan = make(&ws, state.as_ref(), o.refresh).await?;
    if o.json {
        let json = serde_json::to_string_pretty(&plan).expect("plans always serialize");
        outln!("{json}");
    } else {
        out!(
            "{}",
            term::colour_plan(&render::text(&plan), term::term().stdout_color)
        );
    }
    // Issue 8: `apply` refuses this plan before anything changes; say so now.
    if let Some(lone) = appgrid::plan::lone_move::lone_move(&plan, state.as_ref()) {
        tracing::warn!("apply will refuse this plan: {}", lone.explain());
    }
    if let Some(out) = &o.out {
        file::save(&plan, out).map_err(|e| Failure::Message(e.to_string()))?;
        tracing::info!(
            "Saved the plan to {}. To apply exactly this plan: appgrid apply {}",
            out.display(),
            out.display()
        );
    }
    Ok(if o.detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The plan `appgrid plan` shows for a workspace (the panel's Scale page
/// passes one whose manifest carries the counts asked for).
pub async fn make(ws: &Workspace, state: Option<&State>, refresh: bool) -> Result<Plan, Failure> {
    let graph = ws.graph_for(state)?;
    // A plan never refuses: what apply would refuse is a warning here. The
    // cloud's checks (credentials, image) are made only for a first plan
    // that may ask the cloud: a plan with state refreshes, and the refresh
    // reports a credential or endpoint problem itself (the image is checked
    // when applying); `--refresh=false` asks no cloud at all.
    let reach = if refresh && state.is_none() {
        Reach::Cloud
    } else {
        Reach::Offline
    };
    preflight::warn(ws, reach).await;
    // With no state, nothing of this deployment can exist yet: no call is needed.
    Ok(if refresh && state.is_some() {
        providers::with_provider(
            ws,
            Refresh {
                ws,
                graph: &graph,
                state,
            },
        )
        .await?
    } else {
        ws.plan_from_state(&graph, state)
    })
}

/// Plan against a refresh through the manifest's provider.
struct Refresh<'a> {
    ws: &'a Workspace,
    graph: &'a ResourceGraph,
    state: Option<&'a State>,
}

impl providers::Visitor for Refresh<'_> {
    type Output = Result<Plan, Failure>;

    async fn visit<C: Cloud, K: Configurator>(self, cloud: Arc<C>, _: Arc<K>) -> Self::Output {
        Ok(self.ws.plan(self.graph, self.state, cloud.as_ref()).await?)
    }
}
