//! A launch step that knows what it launched.
//!
//! RunInstances is the one call whose lost answer costs money: the request
//! took effect, the client saw an error, a retry launches the batch again.
//! So a launch step does not trust the answer alone. It sends the batch's
//! [`launch_token`] (so EC2, which honours it, replays the first answer),
//! then looks the batch up by its launch tag — one DescribeInstances — and
//! settles every address of the batch:
//!
//! - the instance the answer named is recorded; any other live instance of
//!   the batch's addresses that state does not hold is a duplicate, and is
//!   terminated in the same step;
//! - when RunInstances failed, an instance the lookup finds with the batch's
//!   spec is recorded (adopted) instead, so a lost answer is not a failure;
//!   the step fails only for addresses nothing was found for.
//!
//! A token that meets IdempotentParameterMismatch, or that answers with
//! instances state already holds (an earlier launch of the same range and
//! spec), is retired for the next one; at most [`MAX_TOKENS`] are tried.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc;

use super::execute::{Message, StepError, put};
use crate::cloud::{
    Cloud, CloudError, InstanceStatus, LaunchRequest, LaunchedInstance, ObservedInstance,
    launch_token,
};
use crate::graph::{InstanceSpec, ResourceAddress, ResourceSpec};
use crate::state::ResourceState;

/// Tokens one launch step tries before it gives up.
pub const MAX_TOKENS: u32 = 3;

/// A launch, with what the step needs to judge its outcome.
pub struct Launch {
    pub request: LaunchRequest,
    pub depends_on: BTreeMap<ResourceAddress, Vec<ResourceAddress>>,
    /// The generation of the batch's addresses (see `State::generations`).
    pub generation: u64,
    /// Instance ids state holds: never duplicates, never this launch's.
    pub known_ids: BTreeSet<String>,
    /// Asked before terminating duplicates: a run that lost its lock while
    /// paused must not terminate what the new holder launched.
    pub still_ours: super::StillOurs,
}

pub(super) fn record(
    launch: &Launch,
    address: ResourceAddress,
    id: &str,
    status: &str,
    zone: &str,
    private_ip: Option<&String>,
    image_id: Option<&String>,
) -> ResourceState {
    let mut attributes = BTreeMap::new();
    attributes.insert("zone".to_string(), zone.to_string());
    attributes.insert("status".to_string(), status.to_string());
    if let Some(ip) = private_ip {
        attributes.insert("private_ip".to_string(), ip.clone());
    }
    if let Some(image) = image_id {
        attributes.insert("image_id".to_string(), image.clone());
    }
    ResourceState {
        spec: ResourceSpec::Instance(InstanceSpec::clone(&launch.request.spec)),
        id: id.to_string(),
        depends_on: launch.depends_on.get(&address).cloned().unwrap_or_default(),
        attributes,
    }
}

fn is_code(e: &CloudError, code: &str) -> bool {
    matches!(e, CloudError::Api { code: c, .. } if c == code)
}

/// RunInstances with the batch's token, retiring tokens that cannot be used.
pub(super) async fn run_instances<C: Cloud>(
    cloud: &C,
    launch: &mut Launch,
) -> Result<Vec<LaunchedInstance>, CloudError> {
    let mut retired = 0;
    loop {
        launch.request.client_token = launch_token(
            &launch.request.owner,
            &launch.request.addresses,
            &launch.request.spec_hash,
            launch.generation,
            retired,
        );
        let last = retired + 1 >= MAX_TOKENS;
        match cloud.launch(&launch.request).await {
            Err(e) if is_code(&e, "IdempotentParameterMismatch") && !last => {
                tracing::warn!(token = %launch.request.client_token, "token met IdempotentParameterMismatch; retiring it");
                retired += 1;
            }
            // The token answered with an earlier launch that state still holds
            // (a drift replacement of the same spec): a new launch is wanted.
            Ok(l) if l.iter().any(|i| launch.known_ids.contains(&i.id)) && !last => {
                tracing::warn!(token = %launch.request.client_token, "token replayed instances state already holds; retiring it");
                retired += 1;
            }
            other => return other,
        }
    }
}

/// Launch, verify by tag, settle every address; returns the step's detail.
pub async fn perform<C: Cloud>(
    cloud: &C,
    mut launch: Launch,
    tx: &mpsc::UnboundedSender<Message>,
) -> Result<String, StepError> {
    let answer = run_instances(cloud, &mut launch).await;
    let found = match cloud.find_launched(&launch.request).await {
        Ok(found) => found,
        // The answer alone, if there is one; the apply's final check looks again.
        Err(e) => match &answer {
            Ok(_) => {
                tracing::warn!(error = %e, "could not look the launch up by its tag");
                Vec::new()
            }
            Err(_) => Vec::new(),
        },
    };

    let named: BTreeMap<ResourceAddress, &LaunchedInstance> = match &answer {
        Ok(l) => l.iter().map(|i| (i.address, i)).collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut chosen: BTreeMap<ResourceAddress, String> = BTreeMap::new();
    let mut adopted = Vec::new();
    for &address in &launch.request.addresses {
        if let Some(l) = named.get(&address) {
            put(
                tx,
                address,
                record(
                    &launch,
                    address,
                    &l.id,
                    "pending",
                    &l.zone,
                    l.private_ip.as_ref(),
                    None,
                ),
            );
            chosen.insert(address, l.id.clone());
            continue;
        }
        // No answer for it: the first live instance of this batch's spec.
        let mut candidates: Vec<&ObservedInstance> = found
            .iter()
            .filter(|i| i.address == Some(address))
            .filter(|i| i.spec_hash.as_deref() == Some(launch.request.spec_hash.as_str()))
            .filter(|i| !launch.known_ids.contains(&i.id))
            .collect();
        candidates.sort_by_key(|i| (i.status != InstanceStatus::Running, i.id.clone()));
        if let Some(i) = candidates.first() {
            put(
                tx,
                address,
                record(
                    &launch,
                    address,
                    &i.id,
                    "pending",
                    &i.zone,
                    i.private_ip.as_ref(),
                    i.image_id.as_ref(),
                ),
            );
            chosen.insert(address, i.id.clone());
            adopted.push((address, i.id.clone()));
        }
    }
    let chosen_ids: BTreeSet<&String> = chosen.values().collect();
    let duplicates: Vec<(Option<ResourceAddress>, String)> = found
        .iter()
        .filter(|i| !chosen_ids.contains(&i.id) && !launch.known_ids.contains(&i.id))
        .map(|i| (i.address, i.id.clone()))
        .collect();
    if !duplicates.is_empty() {
        (launch.still_ours)().map_err(StepError::Other)?;
        let ids: Vec<String> = duplicates.iter().map(|d| d.1.clone()).collect();
        tracing::warn!(ids = %ids.join(","), "terminating duplicates of this launch");
        cloud.terminate(&ids).await?;
    }
    if !adopted.is_empty() || !duplicates.is_empty() {
        let _ = tx.send(Message::Verified {
            adopted: adopted.clone(),
            terminated: duplicates.clone(),
        });
    }

    let missing: Vec<ResourceAddress> = launch
        .request
        .addresses
        .iter()
        .filter(|a| !chosen.contains_key(a))
        .copied()
        .collect();
    let ids: Vec<String> = chosen.values().cloned().collect();
    if !missing.is_empty() {
        let error = match answer {
            Err(e) => e.to_string(),
            Ok(_) => "the answer named no instance for them".to_string(),
        };
        return Err(StepError::Other(format!(
            "{} not launched: {error}{}",
            missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if ids.is_empty() {
                String::new()
            } else {
                format!(" ({} recorded: {})", ids.len(), ids.join(", "))
            }
        )));
    }

    let running = cloud.wait_running(&ids).await?;
    let by_id: BTreeMap<&String, ResourceAddress> = chosen.iter().map(|(a, id)| (id, *a)).collect();
    for r in &running {
        let Some(&address) = by_id.get(&r.id) else {
            continue;
        };
        put(
            tx,
            address,
            record(
                &launch,
                address,
                &r.id,
                "running",
                &r.zone,
                r.private_ip.as_ref(),
                r.image_id.as_ref(),
            ),
        );
    }
    let mut detail = ids.join(", ");
    if !adopted.is_empty() {
        detail.push_str(&format!(
            "; found after a failed answer and recorded: {}",
            adopted
                .iter()
                .map(|(a, id)| format!("{a} {id}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !duplicates.is_empty() {
        detail.push_str(&format!(
            "; duplicates terminated: {}",
            duplicates
                .iter()
                .map(|(_, id)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(detail)
}
