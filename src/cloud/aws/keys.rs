//! The app's SSH key pair: tagged import (idempotent by name), listing, deletion.

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::ResourceType;

use super::client::{api_code, count};
use super::{AwsCloud, is_owned, owner_filters, tag_spec};
use crate::cloud::{CloudError, ObservedKeyPair, Owner, TAG_APP, TAG_LINEAGE};
use crate::graph::{KeyPairSpec, ResourceAddress};

impl AwsCloud {
    /// The owner's key pair, found by its tags.
    pub(super) async fn describe_owned_key_pair(
        &self,
        owner: &Owner,
    ) -> Result<Option<ObservedKeyPair>, CloudError> {
        count(&self.counters().describe_key_pairs);
        let result = self
            .ec2()
            .describe_key_pairs()
            .set_filters(Some(owner_filters(owner)))
            .send()
            .await
            .map_err(|e| self.err("DescribeKeyPairs", e));
        let found = match result {
            Ok(found) => found,
            Err(e) if api_code(&e) == Some("InvalidKeyPair.NotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(found.key_pairs().iter().find_map(|k| {
            Some(ObservedKeyPair {
                name: k.key_name()?.to_string(),
                fingerprint: k.key_fingerprint().map(str::to_string),
            })
        }))
    }

    pub(super) async fn import_key(
        &self,
        owner: &Owner,
        spec: &KeyPairSpec,
        public_key: &str,
    ) -> Result<String, CloudError> {
        count(&self.counters().import_key_pair);
        let result = self
            .ec2()
            .import_key_pair()
            .key_name(&spec.name)
            .public_key_material(Blob::new(public_key.trim().as_bytes()))
            .tag_specifications(tag_spec(
                ResourceType::KeyPair,
                owner,
                &ResourceAddress::KeyPair.to_string(),
                &[],
            ))
            .send()
            .await
            .map_err(|e| self.err("ImportKeyPair", e));
        let err = match result {
            Ok(out) => return Ok(out.key_name().unwrap_or(&spec.name).to_string()),
            Err(e) if api_code(&e) == Some("InvalidKeyPair.Duplicate") => e,
            Err(e) => return Err(e),
        };
        // A key of that name exists: ours from an earlier apply, or someone else's.
        count(&self.counters().describe_key_pairs);
        let found = self
            .ec2()
            .describe_key_pairs()
            .key_names(&spec.name)
            .send()
            .await
            .map_err(|e| self.err("DescribeKeyPairs", e))?;
        if found.key_pairs().iter().any(|k| is_owned(k.tags(), owner)) {
            return Ok(spec.name.clone());
        }
        Err(match err {
            CloudError::Api {
                operation, code, ..
            } => CloudError::Api {
                operation,
                code,
                message: format!(
                    "a key pair named `{name}` already exists in {region} and is not this app's \
                     (it lacks the tags {TAG_APP}={app} and {TAG_LINEAGE}={lineage}); delete it \
                     (`aws ec2 delete-key-pair --key-name {name}`) if it is unused, or rename \
                     the app",
                    name = spec.name,
                    region = self.inner.target.region,
                    app = owner.app,
                    lineage = owner.lineage,
                ),
            },
            other => other,
        })
    }

    /// Delete a key pair; a missing one is fine.
    pub(super) async fn delete_key(&self, name: &str) -> Result<(), CloudError> {
        count(&self.counters().delete_key_pair);
        let result = self
            .ec2()
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map_err(|e| self.err("DeleteKeyPair", e));
        match result {
            Err(e) if api_code(&e) == Some("InvalidKeyPair.NotFound") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
