//! Saved plans (`appgrid plan -o plans/NAME.plan.json`) and the staleness check
//! that keeps a saved plan from being applied to a state that moved on.

use std::path::{Path, PathBuf};

use super::{PLAN_FORMAT_VERSION, Plan};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write plan {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an appgrid plan: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error(
        "{path} has plan format {found}; this appgrid reads format {PLAN_FORMAT_VERSION}. Make a new plan with `appgrid plan -o`"
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "saved plan is for another state: it was made for lineage {plan}, but the state at {state_path} has lineage {state}. Make a new plan with `appgrid plan -o`"
    )]
    Lineage {
        plan: String,
        state: String,
        state_path: PathBuf,
    },
    #[error(
        "saved plan is stale: it was made at state serial {plan}, but the state at {state_path} is now at serial {state} (something was applied since). Make a new plan with `appgrid plan -o`"
    )]
    Stale {
        plan: u64,
        state: u64,
        state_path: PathBuf,
    },
}

pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let mut json = serde_json::to_string_pretty(plan).expect("plans always serialize");
    json.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlanFileError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    // Atomic: a plan read while it is written is the old one or the new one.
    // 0644: plans hold no secrets and are meant to be reviewed and committed.
    crate::durable::replace(path, json.as_bytes(), 0o644).map_err(|e| PlanFileError::Write {
        path: path.to_path_buf(),
        source: e.source,
    })
}

pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let version: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PlanFileError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let found = version
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| PlanFileError::Parse {
            path: path.to_path_buf(),
            detail: "no format_version".into(),
        })?;
    if found != u64::from(PLAN_FORMAT_VERSION) {
        return Err(PlanFileError::Version {
            path: path.to_path_buf(),
            found: found as u32,
        });
    }
    serde_json::from_value(version).map_err(|e| PlanFileError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// A saved plan may only be applied to the exact state it was made against.
pub fn check_fresh(
    plan: &Plan,
    state: Option<&State>,
    state_path: &Path,
) -> Result<(), PlanFileError> {
    let (lineage, serial) = match state {
        Some(s) => (Some(s.lineage.as_str()), s.serial),
        None => (None, 0),
    };
    if let (Some(p), Some(s)) = (plan.state_lineage.as_deref(), lineage)
        && p != s
    {
        return Err(PlanFileError::Lineage {
            plan: p.to_string(),
            state: s.to_string(),
            state_path: state_path.to_path_buf(),
        });
    }
    if plan.state_lineage.is_some() != lineage.is_some() || plan.state_serial != serial {
        return Err(PlanFileError::Stale {
            plan: plan.state_serial,
            state: serial,
            state_path: state_path.to_path_buf(),
        });
    }
    Ok(())
}
