//! The `aws` provider's preflight: credentials from aws-config's standard
//! chain (environment, shared files, SSO, web identity, ECS, instance
//! metadata), and the image, looked up in the manifest's region through the
//! manifest's endpoint. The image lookup is also the first signed call, so
//! rejected credentials and a region or endpoint that does not answer show
//! up here, before the plan is shown. Read-only: DescribeImages only.

use super::{Check, CheckKind};
use crate::cloud::CloudError;
use crate::cloud::aws::AwsCloud;
use crate::manifest::Provider;

const CREDENTIALS: &str = "AWS credentials";
const CREDENTIALS_WHY: &str = "every EC2 call is signed with them";
const CREDENTIALS_FIX: &str =
    "run `aws configure`, set AWS_PROFILE, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";

fn credentials_problem(message: String) -> Check {
    Check::missing(
        CheckKind::AwsCredentials,
        CREDENTIALS,
        CREDENTIALS_WHY,
        message,
        CREDENTIALS_FIX,
    )
}

/// Credentials, then the image (only once there are credentials to ask with).
pub async fn check(provider: &Provider) -> Vec<Check> {
    let cloud = match AwsCloud::connect(provider).await {
        Ok(cloud) => cloud,
        Err(CloudError::Credentials(message)) => return vec![credentials_problem(message)],
        Err(e) => return vec![credentials_problem(e.to_string())],
    };
    let image_why = format!("machines are launched from it in {}", provider.region);
    let image = match cloud.find_image(&provider.image).await {
        Ok(id) => Check::ok(
            CheckKind::AwsImage,
            &provider.image,
            image_why,
            format!("{id} in {}", provider.region),
        ),
        Err(CloudError::Credentials(message)) => return vec![credentials_problem(message)],
        Err(e @ CloudError::Unreachable { .. }) => Check::missing(
            CheckKind::AwsImage,
            &provider.image,
            image_why,
            e.to_string(),
            format!(
                "check `region` (now {:?}) and `endpoint` in [provider], and this machine's network",
                provider.region
            ),
        ),
        Err(e) => Check::missing(
            CheckKind::AwsImage,
            &provider.image,
            image_why,
            e.to_string(),
            format!(
                "set `image` in [provider] to an image in {r}, e.g. one listed by `aws ec2 describe-images --owners amazon --region {r}`",
                r = provider.region
            ),
        ),
    };
    // An answer, even "no such image", means the signature was accepted.
    let verdict = if matches!(&image.status, super::Status::Missing { problem, .. } if problem.starts_with("cannot reach"))
    {
        "found (not verified: EC2 did not answer)".to_string()
    } else {
        format!("accepted by {}", cloud.endpoint())
    };
    vec![
        Check::ok(
            CheckKind::AwsCredentials,
            CREDENTIALS,
            CREDENTIALS_WHY,
            verdict,
        ),
        image,
    ]
}
