//! Building the SDK client (credentials, region, endpoint, retries, timeouts),
//! counting calls, and turning SDK errors into [`CloudError`]s.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::{Credentials, ProvideCredentials};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::cloud::CloudError;
use crate::manifest::Provider;

/// Attempts per API call (the first try included), unless overridden.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Environment variable that overrides [`DEFAULT_MAX_ATTEMPTS`] (for tests).
pub const MAX_ATTEMPTS_ENV: &str = "APPGRID_AWS_MAX_ATTEMPTS";
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// API error codes that mean the credentials were rejected.
const CREDENTIAL_CODES: [&str; 4] = [
    "AuthFailure",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

/// Settings that take precedence over the environment; for tests and embedders.
#[derive(Debug, Clone, Default)]
pub struct AwsOverrides {
    /// Static credentials (access key id, secret access key) instead of the
    /// standard credential chain.
    pub credentials: Option<(String, String)>,
    /// Attempts per API call, instead of `APPGRID_AWS_MAX_ATTEMPTS` or 4.
    pub max_attempts: Option<u32>,
    /// First retry backoff (jittered, doubling), instead of 200 ms.
    pub initial_backoff: Option<Duration>,
    /// Time allowed for one API operation (all its attempts), instead of 60 s.
    pub operation_timeout: Option<Duration>,
}

/// What the provider talks to, kept for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub endpoint: String,
    pub region: String,
    pub max_attempts: u32,
    pub operation_timeout: Duration,
}

/// Build the client: aws-config's standard chain, the manifest's region and
/// endpoint, bounded jittered retries and timeouts; credentials are resolved
/// once here so a missing setup fails before any work starts.
pub(crate) async fn build(
    provider: &Provider,
    overrides: &AwsOverrides,
) -> Result<(aws_sdk_ec2::Client, Target), CloudError> {
    let max_attempts = overrides
        .max_attempts
        .or_else(|| {
            std::env::var(MAX_ATTEMPTS_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(DEFAULT_MAX_ATTEMPTS)
        .max(1);
    let retry = RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_initial_backoff(overrides.initial_backoff.unwrap_or(INITIAL_BACKOFF))
        .with_max_backoff(MAX_BACKOFF);
    let operation_timeout = overrides.operation_timeout.unwrap_or(OPERATION_TIMEOUT);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(operation_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(provider.region.clone()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(endpoint) = &provider.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some((key, secret)) = &overrides.credentials {
        loader = loader.credentials_provider(Credentials::new(
            key.clone(),
            secret.clone(),
            None,
            None,
            "appgrid-overrides",
        ));
    }
    let config = loader.load().await;

    let endpoint = provider
        .endpoint
        .clone()
        .or_else(|| env_nonempty("AWS_ENDPOINT_URL_EC2"))
        .or_else(|| env_nonempty("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com", provider.region));

    let Some(credentials) = config.credentials_provider() else {
        return Err(CloudError::Credentials(no_credentials_message()));
    };
    if let Err(e) = credentials.provide_credentials().await {
        // `CredentialsNotLoaded` is the chain finding nothing anywhere; every
        // other error (a broken profile, an expired SSO session) has a detail
        // worth showing.
        let not_loaded = format!("{e:?}").starts_with("CredentialsNotLoaded");
        return Err(CloudError::Credentials(if not_loaded {
            no_credentials_message()
        } else {
            format!(
                "could not load AWS credentials (profile `{}`): {}",
                profile_name(),
                DisplayErrorContext(&e)
            )
        }));
    }

    let client = aws_sdk_ec2::Client::new(&config);
    let target = Target {
        endpoint,
        region: provider.region.clone(),
        max_attempts,
        operation_timeout,
    };
    Ok((client, target))
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn profile_name() -> String {
    env_nonempty("AWS_PROFILE").unwrap_or_else(|| "default".to_string())
}

/// Where the standard chain looked, and what to do about it.
pub(crate) fn no_credentials_message() -> String {
    format!(
        "no AWS credentials found: looked in the environment (AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY), the shared files ~/.aws/credentials and ~/.aws/config \
         (profile `{}`), SSO, web identity, the ECS container endpoint and EC2 instance \
         metadata; set AWS_PROFILE, run `aws configure`, or export AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY",
        profile_name()
    )
}

/// Turn an SDK error into a [`CloudError`] that says what failed and why.
pub(crate) fn map_error<E>(
    target: &Target,
    operation: &str,
    err: SdkError<E, HttpResponse>,
) -> CloudError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(failure) => CloudError::Unreachable {
            endpoint: target.endpoint.clone(),
            operation: operation.to_string(),
            attempts: target.max_attempts,
            detail: match failure.as_connector_error() {
                Some(e) if e.is_timeout() => "connection timed out".to_string(),
                Some(e) => io_detail(e).unwrap_or_else(|| DisplayErrorContext(e).to_string()),
                None => DisplayErrorContext(&err).to_string(),
            },
        },
        SdkError::TimeoutError(_) => CloudError::Unreachable {
            endpoint: target.endpoint.clone(),
            operation: operation.to_string(),
            attempts: target.max_attempts,
            detail: format!("no answer within {}s", target.operation_timeout.as_secs()),
        },
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = err
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            let message = err
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            api_or_credentials(operation, code, message)
        }
        SdkError::ResponseError(response) => CloudError::Api {
            operation: operation.to_string(),
            code: format!("HTTP {}", response.raw().status().as_u16()),
            message: format!(
                "the endpoint {} answered something that is not an EC2 response: {}",
                target.endpoint,
                DisplayErrorContext(&err)
            ),
        },
        _ => CloudError::Api {
            operation: operation.to_string(),
            code: "InvalidRequest".to_string(),
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}

fn api_or_credentials(operation: &str, code: String, message: String) -> CloudError {
    if CREDENTIAL_CODES.contains(&code.as_str()) {
        CloudError::Credentials(format!(
            "the AWS credentials were rejected ({operation}: {code}: {message}); check \
             AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`"
        ))
    } else {
        CloudError::Api {
            operation: operation.to_string(),
            code,
            message,
        }
    }
}

/// The innermost I/O error of a chain, said plainly.
fn io_detail(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    let mut found = None;
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            found = Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
                std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
                _ => io.to_string(),
            });
        }
        current = e.source();
    }
    found
}

/// The error code of a mapped API error, if it is one.
pub(crate) fn api_code(err: &CloudError) -> Option<&str> {
    match err {
        CloudError::Api { code, .. } => Some(code),
        _ => None,
    }
}

macro_rules! call_counts {
    ($($op:ident),* $(,)?) => {
        /// How many times each EC2 API operation was called (one per logical
        /// call; the SDK's own retries of a call are not counted).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct CallCounts {
            $(pub $op: u64,)*
        }

        impl CallCounts {
            /// All calls, every operation.
            pub fn total(&self) -> u64 {
                0 $(+ self.$op)*
            }
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub $op: AtomicU64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> CallCounts {
                CallCounts { $($op: self.$op.load(Ordering::Relaxed),)* }
            }
        }
    };
}

call_counts!(
    describe_instances,
    run_instances,
    create_tags,
    terminate_instances,
    describe_security_groups,
    create_security_group,
    authorize_security_group_ingress,
    revoke_security_group_ingress,
    delete_security_group,
    describe_key_pairs,
    import_key_pair,
    delete_key_pair,
    describe_images,
);

/// Count one call.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
