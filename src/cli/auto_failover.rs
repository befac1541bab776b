//! `[database] failover = "auto"` (issue 8 §3) in the autoscale runner: each
//! pass checks the database origin (does it answer appgrid or any other
//! node?), keeps the check in the autoscale record, and asks the pure
//! [`failover::decide`] whether the origin has been down long enough; then
//! it runs the same code as `appgrid db failover` under the state lock. Every
//! check that finds the origin down, and the failover's outcome, go into the
//! autoscale history.

use std::sync::Arc;
use std::time::Duration;

use appgrid::apply::Configurator;
use appgrid::autoscale::failover::{self, FailoverDecision, OriginCheck};
use appgrid::autoscale::live::{self, Entry};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::ops::{Locked, Operations};

use super::{Failure, providers};

/// What one check did, for the runner.
pub(super) struct Checked {
    /// The line for the runner's output (also in the history), if any.
    pub line: Option<String>,
    /// The origin was down at this check and is still the origin (the web
    /// servers' health checks fail for that reason: restarting them is no use).
    pub down: bool,
}

const NOTHING: Checked = Checked {
    line: None,
    down: false,
};

struct Check<'w> {
    ws: &'w Workspace,
    now: u64,
    lock_timeout: Duration,
}

impl providers::OpsVisitor for Check<'_> {
    type Output = Checked;
    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        cloud: Arc<C>,
        k: Arc<K>,
    ) -> Result<Checked, Failure> {
        let Check {
            ws,
            now,
            lock_timeout,
        } = self;
        let Some(policy) = ws
            .manifest
            .manifest
            .database
            .as_ref()
            .and_then(|d| d.failover)
        else {
            return Ok(NOTHING);
        };
        let Some(state) = ws.load_state()? else {
            return Ok(NOTHING);
        };
        // No replica in the cluster yet: nobody to promote.
        if !state.resources.contains_key(&ResourceAddress::SlonyCluster) {
            return Ok(NOTHING);
        }
        let path = live::record_path(&ws.store_path);
        let _record_lock = live::lock(&path).map_err(|e| Failure::Message(e.to_string()))?;
        let mut record = live::load(&path).map_err(|e| Failure::Message(e.to_string()))?;
        let status = k
            .status(&state.resources)
            .await
            .map_err(|e| Failure::Message(format!("checking the database origin: {e}")))?;
        let Some(origin) = status.origin else {
            return Ok(NOTHING);
        };
        record.push_origin_check(OriginCheck {
            at: now,
            answers: origin.answers,
        });
        let decision = failover::decide(&policy, &record.origin, now);
        let web = ws.effective(Some(&state)).0.web.count;
        let mut reason = decision.describe(&policy, &origin.node, now);
        if let Some(problem) = &origin.problem {
            reason = format!("{reason} ({problem})");
        }
        let down = !matches!(decision, FailoverDecision::Answers);
        if let FailoverDecision::FailOver { .. } = decision {
            reason = match Locked::acquire(ws, "autoscale: db failover", lock_timeout) {
                Err(e) => format!("{reason}; the failover could not start: {e}"),
                Ok(locked) => match super::ops::fail_over(locked, cloud, k).await {
                    Ok(o) => format!(
                        "{reason}; {} is the origin now (Slony-I FAILOVER {:.1} s; lag at the \
                         failure {} event(s), {:.1} s)",
                        o.to, o.took_seconds, o.lag_events, o.lag_seconds
                    ),
                    Err(e) => format!(
                        "{reason}; the failover failed: {}",
                        super::backup::failure_text(&e)
                    ),
                },
            };
        }
        if !down {
            live::save(&path, &record).map_err(|e| Failure::Message(e.to_string()))?;
            return Ok(NOTHING);
        }
        record.push(Entry {
            at: now,
            metric: "db_origin".to_string(),
            value: None,
            from: web,
            to: web,
            reason: reason.clone(),
        });
        live::save(&path, &record).map_err(|e| Failure::Message(e.to_string()))?;
        Ok(Checked {
            line: Some(reason),
            down: matches!(decision, FailoverDecision::Wait { .. }),
        })
    }
}

/// One check of the origin at `now` (and a failover when [`failover::decide`]
/// says so); nothing when the manifest does not ask for `failover = "auto"`.
pub(super) async fn check(
    ws: &Workspace,
    now: u64,
    lock_timeout: Duration,
) -> Result<Checked, Failure> {
    if ws
        .manifest
        .manifest
        .database
        .as_ref()
        .and_then(|d| d.failover)
        .is_none()
    {
        return Ok(NOTHING);
    }
    providers::with_operations(
        ws,
        Check {
            ws,
            now,
            lock_timeout,
        },
    )
    .await
}
