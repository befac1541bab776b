//! Image names (`debian-12`) resolved to AMI ids, once per name.

use aws_sdk_ec2::types::Image;

use super::client::count;
use super::{AwsCloud, filter};
use crate::cloud::CloudError;

/// The Debian project's AWS account, which publishes the official images.
const DEBIAN_OWNER: &str = "136693071363";

/// The DescribeImages query for a name: (owner, name pattern).
pub(crate) fn image_query(image: &str) -> (Option<&'static str>, String) {
    match image.strip_prefix("debian-") {
        Some(release) if !release.is_empty() && release.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(DEBIAN_OWNER), format!("debian-{release}-amd64-*"))
        }
        _ => (None, format!("{image}*")),
    }
}

impl AwsCloud {
    /// `ami-…` as is; a name → the newest matching image (cached per name).
    pub(super) async fn resolve_image(&self, image: &str) -> Result<String, CloudError> {
        if image.starts_with("ami-") {
            return Ok(image.to_string());
        }
        if let Some(id) = self.cached_image(image) {
            return Ok(id);
        }
        let (owner, pattern) = image_query(image);
        count(&self.counters().describe_images);
        let found = self
            .ec2()
            .describe_images()
            .set_owners(owner.map(|o| vec![o.to_string()]))
            .filters(filter("name", &[&pattern]))
            .filters(filter("state", &["available"]))
            .send()
            .await
            .map_err(|e| self.err("DescribeImages", e))?;
        let id = newest(found.images())
            .and_then(|i| i.image_id())
            .map(str::to_string)
            .ok_or_else(|| CloudError::ImageNotFound {
                image: image.to_string(),
                region: self.inner.target.region.clone(),
            })?;
        self.inner
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.to_string(), id.clone());
        Ok(id)
    }

    /// The image as a launch would use it, checked to exist in the region
    /// (for the preflight): an `ami-…` id is described by id (EC2 answers
    /// `InvalidAMIID.NotFound` for one that does not exist), a name resolves
    /// to its newest match.
    pub async fn find_image(&self, image: &str) -> Result<String, CloudError> {
        if !image.starts_with("ami-") {
            return self.resolve_image(image).await;
        }
        count(&self.counters().describe_images);
        let found = self
            .ec2()
            .describe_images()
            .image_ids(image)
            .send()
            .await
            .map_err(|e| self.err("DescribeImages", e))?;
        found
            .images()
            .iter()
            .find_map(|i| i.image_id())
            .map(str::to_string)
            .ok_or_else(|| CloudError::ImageNotFound {
                image: image.to_string(),
                region: self.inner.target.region.clone(),
            })
    }

    fn cached_image(&self, image: &str) -> Option<String> {
        self.inner
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned()
    }
}

/// The image with the latest CreationDate (ISO 8601 strings sort by time).
fn newest(images: &[Image]) -> Option<&Image> {
    images
        .iter()
        .filter(|i| i.image_id().is_some())
        .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_names_use_the_debian_account() {
        assert_eq!(
            image_query("debian-12"),
            (Some(DEBIAN_OWNER), "debian-12-amd64-*".to_string())
        );
        assert_eq!(
            image_query("ubuntu-24.04"),
            (None, "ubuntu-24.04*".to_string())
        );
        assert_eq!(image_query("debian-"), (None, "debian-*".to_string()));
    }

    #[test]
    fn newest_creation_date_wins() {
        let image =
            |id: &str, date: &str| Image::builder().image_id(id).creation_date(date).build();
        let images = [
            image("ami-old", "2024-01-01T00:00:00.000Z"),
            image("ami-new", "2025-06-01T00:00:00.000Z"),
            image("ami-mid", "2024-12-01T00:00:00.000Z"),
        ];
        assert_eq!(newest(&images).and_then(|i| i.image_id()), Some("ami-new"));
    }
}
