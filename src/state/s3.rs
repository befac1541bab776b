//! The objects of a remote state on S3 (or an S3-compatible store): read one
//! with its ETag, write one only if it is absent (`If-None-Match: *`) or
//! still the version read (`If-Match: ETAG`), delete one only if unchanged.
//!
//! The state store and lock are synchronous (the walker checkpoints from
//! inside its tasks; the lock renews from a thread), while the SDK is async:
//! every call runs on one small runtime of its own ([`runtime`]), and the
//! caller waits for the answer on a channel. So a call works from plain
//! threads and from inside another Tokio runtime alike.
//!
//! Credentials come from the standard AWS chain only (environment, shared
//! files and profiles, SSO, web identity, ECS, instance metadata).
//! [`S3Objects::connect`] resolves them and asks for the bucket once, so a
//! missing bucket, missing credentials, a denied key or an endpoint that does
//! not answer stop a command before it changes anything.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    ProvideCredentials, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::location::S3Location;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 3;

/// What went wrong talking to the store; each names the object (`s3://bucket/key`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    #[error(
        "cannot reach the S3 endpoint {endpoint} for {url} ({detail}); check `endpoint` and \
         `region` in [state] and the network, then retry. Nothing was changed"
    )]
    Unreachable {
        endpoint: String,
        url: String,
        detail: String,
    },
    #[error(
        "the bucket of {url} does not exist ({detail}); create it (with versioning, e.g. \
         `aws s3api create-bucket --bucket {bucket}`) or fix `bucket` in [state]. Nothing was changed"
    )]
    NoBucket {
        url: String,
        bucket: String,
        detail: String,
    },
    #[error(
        "no AWS region for the state at {url}: set `region` in [state], or AWS_REGION, or a \
         region in the AWS profile. Nothing was changed"
    )]
    NoRegion { url: String },
    #[error("no AWS credentials for the state at {url}: {detail}")]
    Credentials { url: String, detail: String },
    #[error(
        "access to {url} was denied: the credentials in use lack {permission} on it ({detail}); \
         grant it: state on S3 needs s3:GetObject, s3:PutObject and s3:DeleteObject on the key \
         and its `.lock`/`.backup.*` siblings, and s3:ListBucket on the bucket. Nothing was changed"
    )]
    Denied {
        url: String,
        /// The IAM action refused (`s3:PutObject`…).
        permission: &'static str,
        detail: String,
    },
    #[error("S3 {operation} of {url} failed: {code}: {message}")]
    Api {
        operation: &'static str,
        url: String,
        code: String,
        message: String,
    },
}

/// An object as read: its bytes and the ETag a conditional write names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// The condition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Only if no object has the key (`If-None-Match: *`).
    Create,
    /// Only if the object is still the version with this ETag (`If-Match`).
    Replace(&'a str),
    /// Whatever is there (backups of a version already read).
    Overwrite,
}

/// Outcome of a conditional write or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Done; the new object's ETag (empty for a delete).
    Done(String),
    /// The condition did not hold: someone else wrote (or deleted) first.
    Precondition,
}

/// A connected bucket of one location.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    endpoint: String,
}

/// The runtime every S3 call runs on: two threads of its own, built once,
/// never dropped (dropping a runtime inside another would panic).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("appgrid-s3")
            .enable_all()
            .build()
            .expect("a Tokio runtime for S3 calls")
    })
}

/// Runs `fut` on the S3 runtime and waits for it, from any thread.
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the S3 runtime never drops a call")
}

impl S3Objects {
    /// Connects to `location`'s bucket: resolves credentials from the AWS
    /// chain and checks the bucket answers (HeadBucket), so every problem of
    /// the setup is reported before anything is read or written.
    pub fn connect(location: &S3Location) -> Result<S3Objects, S3Error> {
        Self::connect_with(location, None)
    }

    /// As [`connect`](Self::connect), with static credentials (access key
    /// id, secret) in place of the chain: for tests and embedders.
    pub fn connect_with(
        location: &S3Location,
        credentials: Option<(String, String)>,
    ) -> Result<S3Objects, S3Error> {
        let location = location.clone();
        block(async move { Self::connect_async(&location, credentials).await })
    }

    async fn connect_async(
        location: &S3Location,
        credentials: Option<(String, String)>,
    ) -> Result<S3Objects, S3Error> {
        let url = location.to_string();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        if let Some(region) = &location.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &location.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some((key, secret)) = credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "appgrid-overrides",
            ));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(S3Error::NoRegion { url });
        }
        let Some(credentials) = config.credentials_provider() else {
            return Err(S3Error::Credentials {
                url,
                detail: crate::cloud::aws::no_credentials_message(),
            });
        };
        if let Err(e) = credentials.provide_credentials().await {
            let not_loaded = format!("{e:?}").starts_with("CredentialsNotLoaded");
            return Err(S3Error::Credentials {
                url,
                detail: if not_loaded {
                    crate::cloud::aws::no_credentials_message()
                } else {
                    DisplayErrorContext(&e).to_string()
                },
            });
        }
        let endpoint = location
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "https://s3.{}.amazonaws.com",
                    config.region().map_or("us-east-1", |r| r.as_ref())
                )
            });
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            // S3-compatible stores and moto answer path-style only.
            .force_path_style(location.endpoint.is_some())
            // Checksums only where S3 requires them: S3-compatible stores
            // differ on the newer flexible checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let objects = S3Objects {
            client: aws_sdk_s3::Client::from_conf(s3),
            bucket: location.bucket.clone(),
            endpoint,
        };
        let head = objects
            .client
            .head_bucket()
            .bucket(&objects.bucket)
            .send()
            .await;
        if let Err(e) = head {
            return Err(objects.error("HeadBucket", &location.key, e));
        }
        Ok(objects)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The object at `key`, or `None` when there is none.
    pub fn get(&self, key: &str) -> Result<Option<Object>, S3Error> {
        let this = self.clone();
        let key = key.to_string();
        block(async move {
            let answer = this
                .client
                .get_object()
                .bucket(&this.bucket)
                .key(&key)
                .send()
                .await;
            let out = match answer {
                Ok(out) => out,
                Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
                Err(e) => return Err(this.error("GetObject", &key, e)),
            };
            let etag = out.e_tag().unwrap_or_default().to_string();
            let bytes = out.body.collect().await.map_err(|e| S3Error::Api {
                operation: "GetObject",
                url: this.url(&key),
                code: "ReadBody".into(),
                message: e.to_string(),
            })?;
            Ok(Some(Object {
                bytes: bytes.into_bytes().to_vec(),
                etag,
            }))
        })
    }

    /// Writes `bytes` at `key` if `condition` holds (encrypted at rest, SSE-S3).
    pub fn put(&self, key: &str, bytes: &[u8], condition: Write<'_>) -> Result<Written, S3Error> {
        let this = self.clone();
        let key = key.to_string();
        let body = bytes.to_vec();
        let condition = match condition {
            Write::Create => Some((true, String::new())),
            Write::Replace(etag) => Some((false, etag.to_string())),
            Write::Overwrite => None,
        };
        block(async move {
            let mut put = this
                .client
                .put_object()
                .bucket(&this.bucket)
                .key(&key)
                .content_type("application/json")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .body(ByteStream::from(body));
            put = match condition {
                Some((true, _)) => put.if_none_match("*"),
                Some((false, etag)) => put.if_match(etag),
                None => put,
            };
            match put.send().await {
                Ok(out) => Ok(Written::Done(out.e_tag().unwrap_or_default().to_string())),
                Err(e) if precondition_failed(&e) => Ok(Written::Precondition),
                Err(e) => Err(this.error("PutObject", &key, e)),
            }
        })
    }

    /// Whether these credentials may write `key`, found without changing
    /// it: a PutObject conditional on an ETag no object has. S3 checks
    /// permission before the condition, so a denied writer gets 403
    /// ([`S3Error::Denied`]) while an allowed one fails the condition (412,
    /// or 404 when there is no object yet). The probe carries the object's
    /// current bytes, so a store that ignored the condition rewrote what was
    /// there (and a probe that created the object is deleted again): it is
    /// refused, and nothing is lost either way.
    pub fn check_writable(&self, key: &str) -> Result<(), S3Error> {
        let current = self.get(key)?;
        let this = self.clone();
        let owned_key = key.to_string();
        let body = current
            .as_ref()
            .map(|o| o.bytes.clone())
            .unwrap_or_default();
        let probe = block(async move {
            this.client
                .put_object()
                .bucket(&this.bucket)
                .key(&owned_key)
                .if_match(WRITE_PROBE_ETAG)
                .content_type("application/json")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .body(ByteStream::from(body))
                .send()
                .await
        });
        match probe {
            Err(e) if precondition_failed(&e) || e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(self.error("PutObject", key, e)),
            // A store that ignored the condition: it cannot fence state writes.
            Ok(written) => {
                if current.is_none() {
                    self.delete(key, written.e_tag())?;
                }
                Err(S3Error::Api {
                    operation: "PutObject",
                    url: self.url(key),
                    code: "ConditionIgnored".into(),
                    message: "the store ignored `If-Match` on a write check (the object was \
                              left as it was); it cannot fence state writes: use a store that \
                              honours conditional writes (S3 and moto do)"
                        .into(),
                })
            }
        }
    }

    /// The keys that start with `prefix` (every page).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let this = self.clone();
        let prefix = prefix.to_string();
        block(async move {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = this
                    .client
                    .list_objects_v2()
                    .bucket(&this.bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| this.error("ListObjectsV2", &prefix, e))?;
                keys.extend(
                    out.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                );
                match out.next_continuation_token() {
                    Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => return Ok(keys),
                }
            }
        })
    }

    /// Deletes `key`; with `if_match`, only while it is that version.
    /// Deleting a key that does not exist is not an error.
    pub fn delete(&self, key: &str, if_match: Option<&str>) -> Result<Written, S3Error> {
        let this = self.clone();
        let key = key.to_string();
        let if_match = if_match.map(str::to_string);
        block(async move {
            let mut delete = this.client.delete_object().bucket(&this.bucket).key(&key);
            if let Some(etag) = if_match {
                delete = delete.if_match(etag);
            }
            match delete.send().await {
                Ok(_) => Ok(Written::Done(String::new())),
                Err(e) if precondition_failed(&e) => Ok(Written::Precondition),
                Err(e) if e.code() == Some("NoSuchKey") => Ok(Written::Precondition),
                Err(e) => Err(this.error("DeleteObject", &key, e)),
            }
        })
    }

    /// Turns an SDK error into an [`S3Error`] that says what to do.
    fn error<E>(
        &self,
        operation: &'static str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let url = self.url(key);
        let status = match &err {
            SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
            SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
            _ => None,
        };
        let code = err.code().map(str::to_string);
        let detail = match (&code, err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            _ => match status {
                Some(s) => format!("HTTP {s}"),
                None => DisplayErrorContext(&err).to_string(),
            },
        };
        match (&err, code.as_deref(), status) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _, _) => {
                S3Error::Unreachable {
                    endpoint: self.endpoint.clone(),
                    url,
                    detail: dispatch_detail(&err),
                }
            }
            (_, Some("NoSuchBucket" | "NotFound"), _) | (_, None, Some(404))
                if operation == "HeadBucket" =>
            {
                S3Error::NoBucket {
                    url,
                    bucket: self.bucket.clone(),
                    detail,
                }
            }
            (_, Some("NoSuchBucket"), _) => S3Error::NoBucket {
                url,
                bucket: self.bucket.clone(),
                detail,
            },
            (
                _,
                Some(
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken",
                ),
                _,
            ) => S3Error::Credentials {
                url,
                detail: format!(
                    "the credentials were rejected ({detail}); check AWS_PROFILE or \
                     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
                ),
            },
            (_, Some("AccessDenied" | "Forbidden"), _) | (_, None, Some(403)) => S3Error::Denied {
                url,
                permission: permission(operation),
                detail,
            },
            _ => S3Error::Api {
                operation,
                url,
                code: code.unwrap_or_else(|| {
                    status.map_or_else(|| "Error".to_string(), |s| format!("HTTP {s}"))
                }),
                message: err
                    .message()
                    .map_or_else(|| DisplayErrorContext(&err).to_string(), str::to_string),
            },
        }
    }
}

/// An ETag no object has: the condition of [`S3Objects::check_writable`].
const WRITE_PROBE_ETAG: &str = "\"appgrid-write-check\"";

/// The IAM action an S3 `operation` needs.
fn permission(operation: &str) -> &'static str {
    match operation {
        "GetObject" => "s3:GetObject",
        "PutObject" => "s3:PutObject",
        "DeleteObject" => "s3:DeleteObject",
        "HeadBucket" | "ListObjectsV2" => "s3:ListBucket",
        _ => "s3:*",
    }
}

/// 412, or S3's 409 for two conditional writes at once: either way someone
/// else's write won.
fn precondition_failed<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    match err {
        SdkError::ServiceError(s) => {
            matches!(s.raw().status().as_u16(), 412)
                || matches!(
                    err.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                )
        }
        _ => false,
    }
}

/// "connection refused", "connection timed out", … for an endpoint that did not answer.
fn dispatch_detail<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let SdkError::TimeoutError(_) = err {
        return format!("no answer within {}s", OPERATION_TIMEOUT.as_secs());
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut detail = None;
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            detail = Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "connection timed out".to_string(),
                _ => io.to_string(),
            });
        }
        current = e.source();
    }
    detail.unwrap_or_else(|| DisplayErrorContext(err).to_string())
}
