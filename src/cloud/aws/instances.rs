//! Instances: the app's listing, batch launch, waiting, termination.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ec2::types::{Instance, InstanceStateName, InstanceType, Placement, ResourceType};
use base64::Engine;

use super::client::{api_code, count};
use super::{AwsCloud, filter, owner_filters, tag_spec, tag_value};
use crate::cloud::{
    CloudError, InstanceStatus, LaunchRequest, LaunchedInstance, ObservedInstance, Owner,
    TAG_ADDRESS, TAG_SPEC, decode_batch_address, encode_batch_address,
};
use crate::graph::ResourceAddress;
use crate::retry::{GiveUp, RetryPolicy};

/// EC2's largest DescribeInstances page.
const PAGE_SIZE: i32 = 1000;
/// Instance ids per DescribeInstances / TerminateInstances call.
const IDS_PER_CALL: usize = 500;
/// Waiting for instances to run: polls from 0.5 s, at most 15 s apart, 10 minutes in all.
const WAIT_RUNNING: RetryPolicy = RetryPolicy::new(
    Duration::from_millis(500),
    Duration::from_secs(15),
    Duration::from_secs(600),
);
const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];
const ROLE_TAG: &str = "appgrid:role";

impl AwsCloud {
    /// Every live instance of `owner`: one paginated, tag-filtered DescribeInstances.
    pub(super) async fn describe_owned_instances(
        &self,
        owner: &Owner,
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        let mut filters = owner_filters(owner);
        filters.push(filter("instance-state-name", &LIVE));
        self.describe_pages(filters).await
    }

    /// The owner's live instances carrying `request`'s launch tag: what any
    /// RunInstances of this batch made (one filtered DescribeInstances).
    pub(super) async fn describe_launch(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        let mut filters = owner_filters(&request.owner);
        filters.push(filter(
            &format!("tag:{TAG_ADDRESS}"),
            &[&encode_batch_address(&request.addresses)],
        ));
        filters.push(filter("instance-state-name", &["pending", "running"]));
        let mut found = self.describe_pages(filters).await?;
        found.retain(|i| i.address.is_some_and(|a| request.addresses.contains(&a)));
        Ok(found)
    }

    /// The given instances, whatever their state (missing ids are left out).
    async fn describe_ids(&self, ids: &[String]) -> Result<Vec<ObservedInstance>, CloudError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            // A filter rather than InstanceIds: an id not yet visible (EC2 is
            // eventually consistent) is then absent, not an error.
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            out.extend(
                self.describe_pages(vec![filter("instance-id", &ids)])
                    .await?,
            );
        }
        Ok(out)
    }

    /// DescribeInstances with `filters`, every page (one counted call each).
    async fn describe_pages(
        &self,
        filters: Vec<aws_sdk_ec2::types::Filter>,
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            count(&self.counters().describe_instances);
            let page = self
                .ec2()
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .max_results(PAGE_SIZE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.err("DescribeInstances", e))?;
            for reservation in page.reservations() {
                out.extend(reservation.instances().iter().map(observe));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// One RunInstances for the whole batch, tagged at launch with the batch's
    /// address range: the instance with launch index k is `addresses[k]`.
    pub(super) async fn launch_batch(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<LaunchedInstance>, CloudError> {
        let n = request.addresses.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let spec = &request.spec;
        let image = self.resolve_image(&spec.image).await?;
        let batch_tag = encode_batch_address(&request.addresses);
        let name = format!("{}-{batch_tag}", request.owner.app);
        let count_i32 = i32::try_from(n).unwrap_or(i32::MAX);

        count(&self.counters().run_instances);
        let reservation = self
            .ec2()
            .run_instances()
            .image_id(&image)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(count_i32)
            .max_count(count_i32)
            .key_name(&spec.key_name)
            .security_group_ids(&request.group_id)
            .placement(Placement::builder().availability_zone(&spec.zone).build())
            .user_data(base64::engine::general_purpose::STANDARD.encode(&spec.user_data))
            .client_token(&request.client_token)
            .tag_specifications(tag_spec(
                ResourceType::Instance,
                &request.owner,
                &batch_tag,
                &[
                    ("Name", &name),
                    (TAG_SPEC, &request.spec_hash),
                    (ROLE_TAG, spec.role.as_str()),
                ],
            ))
            .send()
            .await
            .map_err(|e| self.err("RunInstances", e))?;

        let mut launched = Vec::with_capacity(n);
        for (position, instance) in reservation.instances().iter().enumerate() {
            let index = instance
                .ami_launch_index()
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(position);
            let (Some(address), Some(id)) = (request.addresses.get(index), instance.instance_id())
            else {
                continue;
            };
            launched.push(LaunchedInstance {
                address: *address,
                id: id.to_string(),
                zone: instance
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or(&spec.zone)
                    .to_string(),
                private_ip: instance.private_ip_address().map(str::to_string),
                image_id: instance.image_id().map(str::to_string),
            });
        }
        launched.sort_by_key(|l| l.address);
        Ok(launched)
    }

    /// Poll (with backoff, for at most 10 minutes) until every id is running.
    pub(super) async fn wait_until_running(
        &self,
        ids: &[String],
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let poll = || async {
            let seen = self.describe_ids(ids).await.map_err(Poll::Failed)?;
            if let Some(gone) = seen.iter().find(|i| {
                matches!(
                    i.status,
                    InstanceStatus::ShuttingDown | InstanceStatus::Terminated
                )
            }) {
                return Err(Poll::Failed(CloudError::Api {
                    operation: "DescribeInstances".into(),
                    code: "InstanceTerminated".into(),
                    message: format!(
                        "instance {} is {:?} while waiting for it to run; see its console output \
                         or state reason in the EC2 console",
                        gone.id, gone.status
                    ),
                }));
            }
            let running: HashSet<&str> = seen
                .iter()
                .filter(|i| i.status == InstanceStatus::Running)
                .map(|i| i.id.as_str())
                .collect();
            let waiting: Vec<String> = ids
                .iter()
                .filter(|id| !running.contains(id.as_str()))
                .cloned()
                .collect();
            if !waiting.is_empty() {
                return Err(Poll::Waiting(waiting));
            }
            let mut out: Vec<ObservedInstance> = seen;
            out.retain(|i| ids.contains(&i.id));
            out.sort_by_key(|i| ids.iter().position(|id| *id == i.id));
            out.dedup_by(|a, b| a.id == b.id);
            Ok(out)
        };
        WAIT_RUNNING
            .run(poll, |p| matches!(p, Poll::Waiting(_)))
            .await
            .map_err(|e| {
                let how = e.describe(&WAIT_RUNNING);
                match e.error {
                    Poll::Failed(err) => err,
                    Poll::Waiting(waiting) => CloudError::Timeout {
                        what: format!("instances to be running: {} ({how})", waiting.join(", "),),
                        seconds: match e.reason {
                            GiveUp::Deadline => WAIT_RUNNING.deadline.as_secs(),
                            _ => e.elapsed.as_secs(),
                        },
                    },
                }
            })
    }

    /// TerminateInstances for all ids; ids that no longer exist are skipped.
    pub(super) async fn terminate_all(&self, ids: &[String]) -> Result<(), CloudError> {
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut remaining: Vec<String> = chunk.to_vec();
            while !remaining.is_empty() {
                count(&self.counters().terminate_instances);
                let result = self
                    .ec2()
                    .terminate_instances()
                    .set_instance_ids(Some(remaining.clone()))
                    .send()
                    .await
                    .map_err(|e| self.err("TerminateInstances", e));
                let err = match result {
                    Ok(_) => break,
                    Err(err) => err,
                };
                if api_code(&err) != Some("InvalidInstanceID.NotFound") {
                    return Err(err);
                }
                let CloudError::Api { message, .. } = &err else {
                    return Err(err);
                };
                let missing = instance_ids_in(message);
                let before = remaining.len();
                remaining.retain(|id| !missing.contains(id.as_str()));
                if remaining.len() == before {
                    // The message named no id we sent: go one by one.
                    return self.terminate_one_by_one(&remaining).await;
                }
            }
        }
        Ok(())
    }

    async fn terminate_one_by_one(&self, ids: &[String]) -> Result<(), CloudError> {
        for id in ids {
            count(&self.counters().terminate_instances);
            let result = self
                .ec2()
                .terminate_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| self.err("TerminateInstances", e));
            match result {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some("InvalidInstanceID.NotFound") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One look while waiting: not there yet, or a failure that ends the wait.
enum Poll {
    Waiting(Vec<String>),
    Failed(CloudError),
}

/// The instance ids (`i-…`) a message mentions.
fn instance_ids_in(message: &str) -> HashSet<&str> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            w.strip_prefix("i-")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect()
}

/// What appgrid needs to know about an instance.
fn observe(instance: &Instance) -> ObservedInstance {
    let tags = instance.tags();
    let launch_index = instance
        .ami_launch_index()
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0);
    // An exact address (a batch of one, or a tag set by hand) wins; otherwise
    // the batch form is decoded by launch index.
    let address = tag_value(tags, TAG_ADDRESS).and_then(|t| {
        t.parse::<ResourceAddress>()
            .ok()
            .or_else(|| decode_batch_address(t, launch_index))
    });
    ObservedInstance {
        id: instance.instance_id().unwrap_or_default().to_string(),
        address,
        spec_hash: tag_value(tags, TAG_SPEC).map(str::to_string),
        instance_type: instance
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        zone: instance
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_string(),
        status: status(instance.state().and_then(|s| s.name())),
        private_ip: instance.private_ip_address().map(str::to_string),
        image_id: instance.image_id().map(str::to_string),
    }
}

fn status(name: Option<&InstanceStateName>) -> InstanceStatus {
    match name {
        Some(InstanceStateName::Running) => InstanceStatus::Running,
        Some(InstanceStateName::Stopping) => InstanceStatus::Stopping,
        Some(InstanceStateName::Stopped) => InstanceStatus::Stopped,
        Some(InstanceStateName::ShuttingDown) => InstanceStatus::ShuttingDown,
        Some(InstanceStateName::Terminated) => InstanceStatus::Terminated,
        _ => InstanceStatus::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_instance_ids_in_error_messages() {
        let ids = instance_ids_in("The instance IDs 'i-0abc12, i-0def34' do not exist");
        assert_eq!(ids, HashSet::from(["i-0abc12", "i-0def34"]));
        assert!(instance_ids_in("The instance ID 'foo' does not exist").is_empty());
    }
}
