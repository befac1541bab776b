//! `[database.backup]`: where the database's backups go (`to`: an
//! `s3://bucket/prefix` or a directory), how many full backups are kept, and
//! an optional cron `schedule` read in `timezone`.
//!
//! S3 credentials never come from the manifest (the AWS chain supplies them),
//! so there is no key for them. An S3 `endpoint` must be `https://`:
//! pgBackRest reaches S3 only over TLS.

use toml::de::DeValue;

use super::Checker;
use super::cron::{self, CronError};
use super::names;
use super::services::u32_from;
use super::table::{Field, Key, Reported, Section, TableSpec};
use crate::manifest::{Backup, BackupTarget};

pub(super) const BACKUP: TableSpec = TableSpec {
    name: "backup",
    label: "[database.backup]",
    keys: &[
        Key::required("to", "\"s3://my-bucket/blog\""),
        Key::optional("endpoint", "\"https://s3.eu-central-1.amazonaws.com\""),
        Key::optional("region", "\"us-east-1\""),
        Key::optional("keep", "7"),
        Key::optional("schedule", "\"0 3 * * *\""),
        Key::optional("timezone", "\"Europe/Berlin\""),
    ],
};

/// Full backups kept when `keep` is not written.
const DEFAULT_KEEP: i64 = 7;

/// The `backup` key of `[database]`.
pub(super) fn check(ck: &mut Checker, f: Field) -> Result<Backup, Reported> {
    let DeValue::Table(table) = f.value() else {
        return Err(ck.error(
            f.span(),
            format!("`backup` must be a table, found {}", f.value().type_str()),
            "write a table header `[database.backup]` with `to = \"s3://my-bucket/blog\"` \
             on the line below it",
        ));
    };
    let s = Section::open(ck, &BACKUP, f.span(), table);
    let to = s.require(ck, "to").and_then(|f| target(ck, f));
    let endpoint = s.field("endpoint").map(|f| endpoint(ck, f)).transpose();
    let region = s
        .field("region")
        .map(|f| region(ck, f))
        .transpose()
        .map(|r| r.unwrap_or_else(|| "us-east-1".to_string()));
    let keep = match s.field("keep") {
        Some(f) => f.integer(ck, 1, 1000),
        None => Ok(DEFAULT_KEEP),
    };
    let schedule = s.field("schedule").map(|f| schedule(ck, f)).transpose();
    let timezone = match s.field("timezone") {
        Some(f) => timezone(ck, f),
        None => Ok("UTC".to_string()),
    };
    let to = match (to?, endpoint?, region?) {
        (Target::S3 { bucket, prefix }, endpoint, region) => BackupTarget::S3 {
            bucket,
            prefix,
            endpoint,
            region,
        },
        (Target::Directory(path), None, _) => BackupTarget::Directory { path },
        (Target::Directory(_), Some(_), _) => {
            let f = s.field("endpoint").expect("endpoint was read");
            return Err(ck.error(
                f.span(),
                "`endpoint` is only for an S3 target",
                "remove `endpoint`, or write `to = \"s3://bucket/prefix\"`",
            ));
        }
    };
    Ok(Backup {
        to,
        keep: u32_from(keep?),
        schedule: schedule?,
        timezone: timezone?,
    })
}

enum Target {
    S3 { bucket: String, prefix: String },
    Directory(String),
}

fn target(ck: &mut Checker, f: Field) -> Result<Target, Reported> {
    let written = f.str(ck)?;
    if let Some(rest) = written.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !bucket_name(bucket) {
            return Err(ck.error(
                f.span(),
                format!("`to` names the S3 bucket {bucket:?}, which is not a bucket name"),
                "a bucket name is 3 to 63 lowercase letters, digits, '.' and '-', \
                 e.g. `to = \"s3://my-bucket/blog\"`",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.contains("//") || prefix.contains(['\0', '\n', ' ']) {
            return Err(ck.error(
                f.span(),
                format!("`to` has a bad key prefix {prefix:?}"),
                "write the prefix as path segments without spaces, e.g. \
                 `to = \"s3://my-bucket/backups/blog\"`",
            ));
        }
        return Ok(Target::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        });
    }
    if let Some((scheme, _)) = written.split_once("://") {
        return Err(ck.error(
            f.span(),
            format!("`to` uses {scheme}://, which appgrid cannot back up to"),
            "write `s3://bucket/prefix` or a directory (for the `local` provider)",
        ));
    }
    if written.trim().is_empty() || written.contains(['\0', '\n']) {
        return Err(ck.error(
            f.span(),
            "`to` must be `s3://bucket/prefix` or a directory",
            f.example_help(),
        ));
    }
    Ok(Target::Directory(written.to_string()))
}

/// S3's rules for bucket names (the common subset).
fn bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

fn endpoint(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let written = f.str(ck)?;
    let host = written
        .strip_prefix("https://")
        .map(|h| h.trim_end_matches('/'));
    match host {
        Some(h)
            if !h.is_empty()
                && !h.contains(['/', ' ', '\0', '\n', '\'', '"'])
                && !crate::endpoint::Endpoint::parse(h).host.is_empty() =>
        {
            Ok(written.to_string())
        }
        _ => Err(ck.error(
            f.span(),
            format!(
                "`endpoint` must be an https:// URL of an S3-compatible store, found {written:?}"
            ),
            "pgBackRest talks to S3 over TLS only, e.g. \
             `endpoint = \"https://s3.eu-central-1.amazonaws.com\"`",
        )),
    }
}

fn region(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let written = f.str(ck)?;
    if !written.is_empty()
        && written
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Ok(written.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`region` must be an AWS region name, found {written:?}"),
        f.example_help(),
    ))
}

fn schedule(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let expr = f.str(ck)?;
    match cron::check(expr) {
        Ok(()) => Ok(expr.to_string()),
        Err(CronError::FieldCount(n)) => Err(ck.error(
            f.span(),
            format!(
                "`schedule` must have 5 fields (minute hour day-of-month month day-of-week), \
                 found {n}"
            ),
            cron::FIELDS_HELP.replace("cron =", "schedule ="),
        )),
        Err(CronError::Field { name, span, reason }) => Err(ck.error(
            f.span(),
            format!(
                "invalid {name} field `{}` in `schedule`: {reason}",
                &expr[span]
            ),
            cron::FIELDS_HELP.replace("cron =", "schedule ="),
        )),
    }
}

fn timezone(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let zone = f.str(ck)?;
    if names::timezone(zone) {
        return Ok(zone.to_string());
    }
    Err(ck.error(
        f.span(),
        format!(
            "`timezone` must be \"UTC\" or an IANA time zone like \"Europe/Berlin\", \
             found {zone:?}"
        ),
        "write Area/Location, e.g. `timezone = \"America/New_York\"`",
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::{Backup, BackupTarget, parse};

    const BASE: &str = r#"[app]
name = "blog"

[provider]
kind = "local"

[web]
instance_type = "t3.small"
count = 1

[load_balancer]
instance_type = "t3.small"

[database]
instance_type = "m5.large"

[database.backup]
"#;

    fn backup(lines: &str) -> Result<Option<Backup>, String> {
        parse(Path::new("appgrid.toml"), &format!("{BASE}{lines}"))
            .map(|m| m.database.and_then(|d| d.backup))
            .map_err(|d| d.to_string())
    }

    #[test]
    fn s3_target_with_endpoint_schedule_and_keep() {
        let b = backup(
            "to = \"s3://my-bucket/backups/blog/\"\nendpoint = \"https://127.0.0.1:9443\"\n\
             keep = 3\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            b,
            Backup {
                to: BackupTarget::S3 {
                    bucket: "my-bucket".into(),
                    prefix: "backups/blog".into(),
                    endpoint: Some("https://127.0.0.1:9443".into()),
                    region: "us-east-1".into(),
                },
                keep: 3,
                schedule: Some("0 3 * * *".into()),
                timezone: "Europe/Berlin".into(),
            }
        );
    }

    #[test]
    fn a_directory_target_with_defaults() {
        let b = backup("to = \"/var/backups/blog\"\n").unwrap().unwrap();
        assert_eq!(
            b.to,
            BackupTarget::Directory {
                path: "/var/backups/blog".into()
            }
        );
        assert_eq!((b.keep, b.schedule, b.timezone.as_str()), (7, None, "UTC"));
    }

    #[test]
    fn a_bad_schedule_points_at_its_line() {
        let e = backup("to = \"/b\"\nschedule = \"0 25 * * *\"\n").unwrap_err();
        assert!(
            e.starts_with(
                "error: invalid hour field `25` in `schedule`: \"25\" is not a number from 0 to 23\n  --> appgrid.toml:19:12\n"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_bad_bucket_an_unknown_scheme_and_a_plain_http_endpoint() {
        let e = backup("to = \"s3://B/x\"\n").unwrap_err();
        assert!(
            e.starts_with(
                "error: `to` names the S3 bucket \"B\", which is not a bucket name\n  --> appgrid.toml:18:6\n"
            ),
            "{e}"
        );
        let e = backup("to = \"gs://bucket/x\"\n").unwrap_err();
        assert!(
            e.contains("`to` uses gs://, which appgrid cannot back up to"),
            "{e}"
        );
        let e =
            backup("to = \"s3://bucket/x\"\nendpoint = \"http://127.0.0.1:5000\"\n").unwrap_err();
        assert!(
            e.contains("`endpoint` must be an https:// URL") && e.contains("appgrid.toml:19:12"),
            "{e}"
        );
    }

    #[test]
    fn endpoint_with_a_directory_missing_to_and_unknown_keys_are_all_reported() {
        let e = backup("to = \"/b\"\nendpoint = \"https://x\"\n").unwrap_err();
        assert!(e.contains("`endpoint` is only for an S3 target"), "{e}");
        let e = backup("keep = 0\npassword = \"x\"\n").unwrap_err();
        assert!(e.contains("missing `to` in [database.backup]"), "{e}");
        assert!(e.contains("`keep` must be at least 1, found 0"), "{e}");
        assert!(
            e.contains("unknown key `password` in [database.backup]"),
            "{e}"
        );
    }
}
