//! The cloud: machines, firewalls and key pairs, behind one trait.
//!
//! Providers: [`aws`] (aws-sdk-ec2, any EC2-compatible endpoint) and
//! [`fake`] (in memory, recording every call, for unit tests and benchmarks).
//!
//! Ownership is by tag: every instance and group carries `appgrid:app`,
//! `appgrid:lineage` and `appgrid:address`, so [`Cloud::refresh`] finds all of
//! an app's machines — including those an interrupted apply launched but never
//! recorded — with one tag-filtered, paginated listing. Instances of one
//! launch share one address tag (`web[0:12:3]`, written by RunInstances
//! itself); each one's address follows from its launch index, so no call per
//! instance is ever needed.

pub mod aws;
pub mod fake;
pub mod hosts;
pub mod local;
mod registry;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::graph::{Group, InstanceSpec, KeyPairSpec, ResourceAddress, SecurityGroupSpec};

pub const TAG_APP: &str = "appgrid:app";
pub const TAG_LINEAGE: &str = "appgrid:lineage";
pub const TAG_ADDRESS: &str = "appgrid:address";
/// The hash of the spec an instance was launched from, to decide adoption.
pub const TAG_SPEC: &str = "appgrid:spec";

/// Whose resources these are: the app and the state lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub app: String,
    pub lineage: String,
}

/// Everything of the app's that the cloud reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub instances: Vec<ObservedInstance>,
    pub groups: Vec<ObservedGroup>,
    pub key_pair: Option<ObservedKeyPair>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceStatus {
    /// Counts as an existing machine (not on its way out).
    pub fn is_alive(self) -> bool {
        matches!(self, InstanceStatus::Pending | InstanceStatus::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedInstance {
    pub id: String,
    /// From the `appgrid:address` tag (a launch-batch tag resolved by launch index).
    pub address: Option<ResourceAddress>,
    /// From the `appgrid:spec` tag.
    pub spec_hash: Option<String>,
    pub instance_type: String,
    pub zone: String,
    pub status: InstanceStatus,
    pub private_ip: Option<String>,
    pub image_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedGroup {
    pub id: String,
    pub name: String,
    /// From the `appgrid:address` tag.
    pub group: Option<Group>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedKeyPair {
    pub name: String,
    pub fingerprint: Option<String>,
}

/// An ingress rule with the source group resolved to its cloud id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResolvedRule {
    pub port: u16,
    pub from: ResolvedSource,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedSource {
    Cidr(String),
    GroupId(String),
}

/// Launch identical instances (same spec, same zone) in one call.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    pub owner: Owner,
    pub spec: InstanceSpec,
    pub spec_hash: String,
    /// The addresses to launch, an arithmetic run (`web[0]`, `web[3]`, `web[6]`):
    /// the instance with launch index `k` is `addresses[k]`.
    pub addresses: Vec<ResourceAddress>,
    pub group_id: String,
    /// Idempotency token for RunInstances (at most 64 ASCII characters),
    /// see [`launch_token`].
    pub client_token: String,
}

/// The RunInstances idempotency token of one intended launch: the lineage,
/// the address range (the batch tag), the spec hash, the generation of those
/// addresses (how many times an instance at them was replaced or removed, so
/// a later launch of the same range is a new launch) and how many tokens this
/// launch retired (after IdempotentParameterMismatch, or when the token
/// answered with instances of an earlier launch). The same launch retried, or
/// restarted after a crash, sends the same token; EC2 then answers with what
/// the first request made instead of launching again.
pub fn launch_token(
    owner: &Owner,
    addresses: &[ResourceAddress],
    spec_hash: &str,
    generation: u64,
    retired: u32,
) -> String {
    let text = format!(
        "{}|{}|{spec_hash}|{generation}|{retired}",
        owner.lineage,
        encode_batch_address(addresses)
    );
    format!("ag-{}", &crate::hash::sha256_hex(text.as_bytes())[..48])
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchedInstance {
    pub address: ResourceAddress,
    pub id: String,
    pub zone: String,
    pub private_ip: Option<String>,
    pub image_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The API answered with an error (after retries, for retryable ones).
    #[error("{operation} failed: {code}: {message}")]
    Api {
        operation: String,
        code: String,
        message: String,
    },
    /// Nothing answered (connection refused, timed out, DNS) after the retry bound.
    #[error(
        "cannot reach the EC2 API at {endpoint} ({operation}, {attempts} attempts): {detail}; check `endpoint` in [provider] or AWS_ENDPOINT_URL_EC2"
    )]
    Unreachable {
        endpoint: String,
        operation: String,
        attempts: u32,
        detail: String,
    },
    #[error("{0}")]
    Credentials(String),
    #[error(
        "no image matches `{image}` in {region}; set `image = \"ami-…\"` in [provider] to pick one"
    )]
    ImageNotFound { image: String, region: String },
    #[error(
        "cannot read public key {path}: {detail}; create one with `ssh-keygen -t ed25519 -f {private}`"
    )]
    PublicKey {
        path: String,
        private: String,
        detail: String,
    },
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
}

/// Machines, firewalls and key pairs. Every call is one logical cloud operation;
/// implementations retry throttling and transient errors themselves, bounded.
pub trait Cloud: Send + Sync + 'static {
    /// Everything owned by `owner`: one tag-filtered, paginated listing per kind.
    fn refresh(&self, owner: &Owner) -> impl Future<Output = Result<Observed, CloudError>> + Send;

    /// Whether machines sit in security groups and boot with a key pair
    /// (EC2): the walker then launches them into their group's id.
    fn has_firewalls(&self) -> bool {
        false
    }

    /// The owner's instances alone (what verifying an apply needs).
    fn refresh_instances(
        &self,
        owner: &Owner,
    ) -> impl Future<Output = Result<Vec<ObservedInstance>, CloudError>> + Send {
        async move { Ok(self.refresh(owner).await?.instances) }
    }

    /// The live instances a launch of `request` may have made, by its tags:
    /// any of its addresses, whatever their spec. A launch step looks here
    /// after RunInstances to find what a lost answer or a retried request
    /// made besides what it was told about.
    fn find_launched(
        &self,
        request: &LaunchRequest,
    ) -> impl Future<Output = Result<Vec<ObservedInstance>, CloudError>> + Send {
        async move {
            let mut found = self.refresh_instances(&request.owner).await?;
            found.retain(|i| {
                i.status.is_alive() && i.address.is_some_and(|a| request.addresses.contains(&a))
            });
            Ok(found)
        }
    }

    // Key pairs and security groups: only clouds that have them implement
    // these; the graph asks no other provider for them, and the defaults say so.

    /// Import the public key; returns the key pair's name (its id in state).
    fn import_key_pair(
        &self,
        owner: &Owner,
        spec: &KeyPairSpec,
        public_key: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send {
        let _ = (owner, public_key);
        let e = no_firewalls("import key pair", &spec.name);
        async move { Err(e) }
    }

    fn delete_key_pair(&self, name: &str) -> impl Future<Output = Result<(), CloudError>> + Send {
        let e = no_firewalls("delete key pair", name);
        async move { Err(e) }
    }

    /// Create an (empty) group tagged for `owner`; returns its id. A group of the
    /// same name that already carries the owner's tags is returned, not duplicated.
    fn create_security_group(
        &self,
        owner: &Owner,
        group: Group,
        spec: &SecurityGroupSpec,
    ) -> impl Future<Output = Result<String, CloudError>> + Send {
        let _ = (owner, spec);
        let e = no_firewalls("create security group", &format!("sg.{}", group.as_str()));
        async move { Err(e) }
    }

    /// Make the group's ingress exactly `rules`: authorize what is missing,
    /// revoke what `previous` had and `rules` does not.
    fn set_ingress(
        &self,
        group_id: &str,
        rules: &[ResolvedRule],
        previous: &[ResolvedRule],
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        let _ = (rules, previous);
        let e = no_firewalls("set ingress", group_id);
        async move { Err(e) }
    }

    fn delete_security_group(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        let e = no_firewalls("delete security group", id);
        async move { Err(e) }
    }

    /// Launch `request.addresses.len()` instances in ONE call, tagged at launch.
    /// Returns as soon as the cloud has ids (instances may still be pending).
    fn launch(
        &self,
        request: &LaunchRequest,
    ) -> impl Future<Output = Result<Vec<LaunchedInstance>, CloudError>> + Send;

    /// Wait until every id is running; returns their current facts.
    fn wait_running(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<ObservedInstance>, CloudError>> + Send;

    /// Terminate instances (already-gone ids are not an error).
    fn terminate(&self, ids: &[String]) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// The error of a provider asked for a key pair or a security group it does not have.
fn no_firewalls(operation: &str, subject: &str) -> CloudError {
    CloudError::Api {
        operation: operation.to_string(),
        code: "Unsupported".into(),
        message: format!("this provider has no key pairs or security groups ({subject})"),
    }
}

/// Encode a launch batch's addresses for the `appgrid:address` tag written at
/// launch: `web[3]` for one, `web[0:9:3]` (start:stop:step) for a run.
pub fn encode_batch_address(addresses: &[ResourceAddress]) -> String {
    match addresses {
        [one] => one.to_string(),
        [first, second, ..] => {
            let (
                ResourceAddress::Instance { role, index: a },
                ResourceAddress::Instance { index: b, .. },
            ) = (first, second)
            else {
                return first.to_string();
            };
            let step = b - a;
            let stop = a + step * addresses.len() as u32;
            format!("{}[{a}:{stop}:{step}]", role.as_str())
        }
        [] => String::new(),
    }
}

/// The address of the instance with `launch_index` in a batch tagged `tag`
/// (either a plain address or the `role[start:stop:step]` form).
pub fn decode_batch_address(tag: &str, launch_index: u32) -> Option<ResourceAddress> {
    if let Ok(address) = tag.parse::<ResourceAddress>() {
        return (launch_index == 0).then_some(address);
    }
    let (name, rest) = tag.strip_suffix(']')?.split_once('[')?;
    let mut parts = rest.split(':').map(|p| p.parse::<u32>().ok());
    let (start, stop, step) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || step == 0 {
        return None;
    }
    let index = start.checked_add(step.checked_mul(launch_index)?)?;
    if index >= stop {
        return None;
    }
    format!("{name}[{index}]").parse().ok()
}

/// Split addresses of one role into arithmetic runs, each launchable in one call.
pub fn arithmetic_runs(addresses: &[ResourceAddress]) -> Vec<Vec<ResourceAddress>> {
    let mut runs: Vec<Vec<ResourceAddress>> = Vec::new();
    let index = |a: &ResourceAddress| match a {
        ResourceAddress::Instance { index, .. } => *index as i64,
        _ => 0,
    };
    for &a in addresses {
        if let Some(run) = runs.last_mut() {
            let fits = match run.as_slice() {
                [only] => index(&a) > index(only),
                [.., p, q] => index(&a) - index(q) == index(q) - index(p),
                [] => true,
            };
            if fits {
                run.push(a);
                continue;
            }
        }
        runs.push(vec![a]);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Role;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn batch_tag_roundtrips(mut idx in proptest::collection::btree_set(0u32..500, 1..40)) {
            let addrs: Vec<_> = std::mem::take(&mut idx).into_iter().map(|i| ResourceAddress::instance(Role::Web, i)).collect();
            let runs = arithmetic_runs(&addrs);
            let flat: Vec<_> = runs.iter().flatten().copied().collect();
            prop_assert_eq!(&flat, &addrs);
            for run in runs {
                let tag = encode_batch_address(&run);
                prop_assert!(tag.len() <= 256);
                for (k, a) in run.iter().enumerate() {
                    prop_assert_eq!(decode_batch_address(&tag, k as u32), Some(*a));
                }
                prop_assert_eq!(decode_batch_address(&tag, run.len() as u32), None);
            }
        }
    }

    #[test]
    fn spread_web_instances_make_one_run_per_zone() {
        let addrs: Vec<_> = [0, 3, 6, 9]
            .map(|i| ResourceAddress::instance(Role::Web, i))
            .to_vec();
        assert_eq!(arithmetic_runs(&addrs).len(), 1);
        assert_eq!(encode_batch_address(&addrs), "web[0:12:3]");
    }
}
