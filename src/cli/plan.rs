//! `appgrid plan`.

use std::path::PathBuf;
use std::process::ExitCode;

use appgrid::cloud::aws::AwsCloud;
use appgrid::engine::Workspace;
use appgrid::plan::{file, render};

use super::Failure;

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
    let graph = ws.graph()?;
    // With no state, nothing of this deployment can exist yet: no call is needed.
    let plan = if o.refresh && state.is_some() {
        let cloud = AwsCloud::connect(&ws.manifest.manifest.provider)
            .await
            .map_err(|e| Failure::Message(e.to_string()))?;
        ws.plan(&graph, state.as_ref(), Some(&cloud)).await?
    } else {
        ws.plan::<AwsCloud>(&graph, state.as_ref(), None).await?
    };
    if o.json {
        let json = serde_json::to_string_pretty(&plan).expect("plans always serialize");
        println!("{json}");
    } else {
        print!("{}", render::text(&plan));
    }
    if let Some(out) = &o.out {
        file::save(&plan, out).map_err(|e| Failure::Message(e.to_string()))?;
        eprintln!(
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
