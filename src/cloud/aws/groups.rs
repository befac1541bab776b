//! Security groups: tagged creation (idempotent by name), exact ingress, deletion.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, SecurityGroup, UserIdGroupPair};

use super::client::{api_code, count};
use super::{AwsCloud, filter, is_owned, owner_filters, tag_spec, tag_value};
use crate::cloud::{CloudError, ObservedGroup, Owner, ResolvedRule, ResolvedSource, TAG_ADDRESS};
use crate::graph::{Group, ResourceAddress, SecurityGroupSpec};
use crate::retry::RetryPolicy;

/// A group whose instances are still terminating: retried from 2 s, at most
/// 15 s apart, for two minutes.
const DEPENDENCY_WAIT: RetryPolicy = RetryPolicy::new(
    Duration::from_secs(2),
    Duration::from_secs(15),
    Duration::from_secs(120),
);
const PAGE_SIZE: i32 = 1000;

impl AwsCloud {
    /// The owner's groups: one tag-filtered, paginated DescribeSecurityGroups.
    pub(super) async fn describe_owned_groups(
        &self,
        owner: &Owner,
    ) -> Result<Vec<ObservedGroup>, CloudError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            count(&self.counters().describe_security_groups);
            let page = self
                .ec2()
                .describe_security_groups()
                .set_filters(Some(owner_filters(owner)))
                .max_results(PAGE_SIZE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.err("DescribeSecurityGroups", e))?;
            out.extend(page.security_groups().iter().map(observe));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub(super) async fn create_group(
        &self,
        owner: &Owner,
        group: Group,
        spec: &SecurityGroupSpec,
    ) -> Result<String, CloudError> {
        let address = ResourceAddress::SecurityGroup(group).to_string();
        let name = format!("{}-{address}", owner.app);
        count(&self.counters().create_security_group);
        let created = self
            .ec2()
            .create_security_group()
            .group_name(&spec.name)
            .description(&spec.description)
            .tag_specifications(tag_spec(
                ResourceType::SecurityGroup,
                owner,
                &address,
                &[("Name", &name)],
            ))
            .send()
            .await
            .map_err(|e| self.err("CreateSecurityGroup", e));
        let err = match created {
            Ok(out) => {
                return out
                    .group_id()
                    .map(str::to_string)
                    .ok_or_else(|| CloudError::Api {
                        operation: "CreateSecurityGroup".into(),
                        code: "MissingGroupId".into(),
                        message: format!(
                            "the answer for group `{}` carried no group id",
                            spec.name
                        ),
                    });
            }
            Err(err) if api_code(&err) == Some("InvalidGroup.Duplicate") => err,
            Err(err) => return Err(err),
        };
        // A group of that name exists: ours from an interrupted apply, or someone else's.
        count(&self.counters().describe_security_groups);
        let found = self
            .ec2()
            .describe_security_groups()
            .filters(filter("group-name", &[&spec.name]))
            .send()
            .await
            .map_err(|e| self.err("DescribeSecurityGroups", e))?;
        let groups = found.security_groups();
        if let Some(ours) = groups.iter().find(|g| is_owned(g.tags(), owner)) {
            if let Some(id) = ours.group_id() {
                return Ok(id.to_string());
            }
        }
        let theirs = groups
            .iter()
            .filter_map(|g| g.group_id())
            .collect::<Vec<_>>()
            .join(", ");
        Err(match err {
            CloudError::Api {
                operation, code, ..
            } => CloudError::Api {
                operation,
                code,
                message: format!(
                    "a security group named `{}` already exists ({}) and is not this app's \
                     (it lacks the tags {}={} and {}={}); delete or rename that group, or \
                     rename the app",
                    spec.name,
                    if theirs.is_empty() {
                        "id unknown"
                    } else {
                        &theirs
                    },
                    crate::cloud::TAG_APP,
                    owner.app,
                    crate::cloud::TAG_LINEAGE,
                    owner.lineage
                ),
            },
            other => other,
        })
    }

    /// Authorize what `rules` adds, revoke what `previous` had and `rules` drops.
    pub(super) async fn set_group_ingress(
        &self,
        group_id: &str,
        rules: &[ResolvedRule],
        previous: &[ResolvedRule],
    ) -> Result<(), CloudError> {
        let wanted: BTreeSet<&ResolvedRule> = rules.iter().collect();
        let had: BTreeSet<&ResolvedRule> = previous.iter().collect();
        let add: Vec<&ResolvedRule> = wanted.difference(&had).copied().collect();
        let remove: Vec<&ResolvedRule> = had.difference(&wanted).copied().collect();
        if !add.is_empty() {
            self.change_ingress(Change::Authorize, group_id, &add)
                .await?;
        }
        if !remove.is_empty() {
            self.change_ingress(Change::Revoke, group_id, &remove)
                .await?;
        }
        Ok(())
    }

    /// All rules in one call; if one of them already is (or is not) there,
    /// EC2 rejects the whole call, so then go rule by rule.
    async fn change_ingress(
        &self,
        change: Change,
        group_id: &str,
        rules: &[&ResolvedRule],
    ) -> Result<(), CloudError> {
        match self.send_ingress(change, group_id, rules).await {
            Err(e) if api_code(&e) == Some(change.harmless_code()) && rules.len() > 1 => {
                for rule in rules {
                    match self.send_ingress(change, group_id, &[*rule]).await {
                        Err(e) if api_code(&e) == Some(change.harmless_code()) => {}
                        other => other?,
                    }
                }
                Ok(())
            }
            Err(e) if api_code(&e) == Some(change.harmless_code()) => Ok(()),
            other => other,
        }
    }

    async fn send_ingress(
        &self,
        change: Change,
        group_id: &str,
        rules: &[&ResolvedRule],
    ) -> Result<(), CloudError> {
        let permissions: Vec<IpPermission> = rules.iter().map(|r| permission(r)).collect();
        match change {
            Change::Authorize => {
                count(&self.counters().authorize_security_group_ingress);
                self.ec2()
                    .authorize_security_group_ingress()
                    .group_id(group_id)
                    .set_ip_permissions(Some(permissions))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err("AuthorizeSecurityGroupIngress", e))
            }
            Change::Revoke => {
                count(&self.counters().revoke_security_group_ingress);
                self.ec2()
                    .revoke_security_group_ingress()
                    .group_id(group_id)
                    .set_ip_permissions(Some(permissions))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err("RevokeSecurityGroupIngress", e))
            }
        }
    }

    /// Delete a group; a missing one is fine, one still referenced by
    /// terminating instances is retried for up to two minutes.
    pub(super) async fn delete_group(&self, id: &str) -> Result<(), CloudError> {
        let delete = || async {
            count(&self.counters().delete_security_group);
            match self
                .ec2()
                .delete_security_group()
                .group_id(id)
                .send()
                .await
                .map_err(|e| self.err("DeleteSecurityGroup", e))
            {
                Ok(_) => Ok(()),
                Err(e) if api_code(&e) == Some("InvalidGroup.NotFound") => Ok(()),
                Err(e) => Err(e),
            }
        };
        DEPENDENCY_WAIT
            .run(delete, |e| api_code(e) == Some("DependencyViolation"))
            .await
            .map_err(|e| match e.reason {
                crate::retry::GiveUp::NotRetryable => e.error,
                _ => CloudError::Timeout {
                    what: format!(
                        "security group {id} to be free of instances (DependencyViolation: {}; {})",
                        e.error,
                        e.describe(&DEPENDENCY_WAIT)
                    ),
                    seconds: DEPENDENCY_WAIT.deadline.as_secs(),
                },
            })
    }
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Authorize,
    Revoke,
}

impl Change {
    /// The error that means the change is already in effect.
    fn harmless_code(self) -> &'static str {
        match self {
            Change::Authorize => "InvalidPermission.Duplicate",
            Change::Revoke => "InvalidPermission.NotFound",
        }
    }
}

/// One TCP port from one source.
pub(crate) fn permission(rule: &ResolvedRule) -> IpPermission {
    let base = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(i32::from(rule.port))
        .to_port(i32::from(rule.port));
    match &rule.from {
        ResolvedSource::Cidr(cidr) => base.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
        ResolvedSource::GroupId(id) => {
            base.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
        }
    }
    .build()
}

fn observe(group: &SecurityGroup) -> ObservedGroup {
    ObservedGroup {
        id: group.group_id().unwrap_or_default().to_string(),
        name: group.group_name().unwrap_or_default().to_string(),
        group: tag_value(group.tags(), TAG_ADDRESS).and_then(|t| match t.parse() {
            Ok(ResourceAddress::SecurityGroup(g)) => Some(g),
            _ => None,
        }),
    }
}
