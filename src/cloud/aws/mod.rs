//! Amazon EC2 (or any EC2-compatible API) through aws-sdk-ec2.
//!
//! Credentials come from aws-config's standard chain (environment, shared
//! files, SSO, web identity, ECS, instance metadata), the region from the
//! manifest, the endpoint from `[provider] endpoint` or the standard
//! `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL`. Throttling, 5xx and transient
//! network errors are retried by the SDK with jittered exponential backoff,
//! bounded by `APPGRID_AWS_MAX_ATTEMPTS` (default 4) attempts per call; waits
//! appgrid decides on (instances to run, a group to be free) follow a
//! [`RetryPolicy`](crate::retry::RetryPolicy).
//!
//! Every resource is tagged with its owner (`appgrid:app`, `appgrid:lineage`)
//! and address, so [`Cloud::refresh`] is one tag-filtered, paginated listing
//! per kind.

mod client;
mod groups;
mod images;
mod instances;
mod keys;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

pub(crate) use client::no_credentials_message;
pub use client::{AwsOverrides, CallCounts, DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_ENV};

use super::{
    Cloud, CloudError, LaunchRequest, LaunchedInstance, Observed, ObservedInstance, Owner,
    ResolvedRule, TAG_APP, TAG_LINEAGE,
};
use crate::graph::{Group, KeyPairSpec, SecurityGroupSpec};
use crate::manifest::Provider;

/// The EC2 provider. Cheap to clone (the client and counters are shared).
#[derive(Debug, Clone)]
pub struct AwsCloud {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: aws_sdk_ec2::Client,
    target: client::Target,
    counters: client::Counters,
    /// Image name → AMI id, resolved once per name.
    images: Mutex<HashMap<String, String>>,
}

impl AwsCloud {
    /// Connect with the standard configuration sources; fails early when no
    /// credentials can be found.
    pub async fn connect(provider: &Provider) -> Result<AwsCloud, CloudError> {
        Self::connect_with(provider, AwsOverrides::default()).await
    }

    /// Connect with `overrides` taking precedence over the environment.
    pub async fn connect_with(
        provider: &Provider,
        overrides: AwsOverrides,
    ) -> Result<AwsCloud, CloudError> {
        let (client, target) = client::build(provider, &overrides).await?;
        Ok(AwsCloud {
            inner: Arc::new(Inner {
                client,
                target,
                counters: client::Counters::default(),
                images: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Calls made so far, per API operation.
    pub fn calls(&self) -> CallCounts {
        self.inner.counters.snapshot()
    }

    /// The endpoint requests go to (for messages).
    pub fn endpoint(&self) -> &str {
        &self.inner.target.endpoint
    }

    fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.inner.client
    }

    fn counters(&self) -> &client::Counters {
        &self.inner.counters
    }

    fn err<E>(
        &self,
        operation: &str,
        err: aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
    ) -> CloudError
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        client::map_error(&self.inner.target, operation, err)
    }
}

impl Cloud for AwsCloud {
    async fn refresh(&self, owner: &Owner) -> Result<Observed, CloudError> {
        let (instances, groups, key_pair) = tokio::try_join!(
            self.describe_owned_instances(owner),
            self.describe_owned_groups(owner),
            self.describe_owned_key_pair(owner),
        )?;
        Ok(Observed {
            instances,
            groups,
            key_pair,
        })
    }

    fn has_firewalls(&self) -> bool {
        true
    }

    async fn refresh_instances(&self, owner: &Owner) -> Result<Vec<ObservedInstance>, CloudError> {
        self.describe_owned_instances(owner).await
    }

    async fn find_launched(
        &self,
        request: &LaunchRequest,
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        self.describe_launch(request).await
    }

    async fn import_key_pair(
        &self,
        owner: &Owner,
        spec: &KeyPairSpec,
        public_key: &str,
    ) -> Result<String, CloudError> {
        self.import_key(owner, spec, public_key).await
    }

    async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        self.delete_key(name).await
    }

    async fn create_security_group(
        &self,
        owner: &Owner,
        group: Group,
        spec: &SecurityGroupSpec,
    ) -> Result<String, CloudError> {
        self.create_group(owner, group, spec).await
    }

    async fn set_ingress(
        &self,
        group_id: &str,
        rules: &[ResolvedRule],
        previous: &[ResolvedRule],
    ) -> Result<(), CloudError> {
        self.set_group_ingress(group_id, rules, previous).await
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        self.delete_group(id).await
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<Vec<LaunchedInstance>, CloudError> {
        self.launch_batch(request).await
    }

    async fn wait_running(&self, ids: &[String]) -> Result<Vec<ObservedInstance>, CloudError> {
        self.wait_until_running(ids).await
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        self.terminate_all(ids).await
    }
}

/// `tag:appgrid:app` and `tag:appgrid:lineage` filters for `owner`.
fn owner_filters(owner: &Owner) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{TAG_APP}"), &[&owner.app]),
        filter(&format!("tag:{TAG_LINEAGE}"), &[&owner.lineage]),
    ]
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Tags written when a resource is created: owner, address, and extras.
fn tag_spec(
    kind: ResourceType,
    owner: &Owner,
    address: &str,
    extra: &[(&str, &str)],
) -> TagSpecification {
    let mut tags = vec![
        tag(TAG_APP, &owner.app),
        tag(TAG_LINEAGE, &owner.lineage),
        tag(super::TAG_ADDRESS, address),
    ];
    tags.extend(extra.iter().map(|(k, v)| tag(k, v)));
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

/// The value of tag `key`, if present.
fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Whether `tags` mark the resource as `owner`'s.
fn is_owned(tags: &[Tag], owner: &Owner) -> bool {
    tag_value(tags, TAG_APP) == Some(owner.app.as_str())
        && tag_value(tags, TAG_LINEAGE) == Some(owner.lineage.as_str())
}
