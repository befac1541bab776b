//! `[state]`: where the app's state lives. Without the table, the local file
//! beside the manifest; `backend = "s3"` puts it (and its lock) on S3.

use super::Checker;
use super::names;
use super::table::{Field, Key, Reported, Section, TableSpec};
use crate::manifest::StateBackend;
use crate::state::location::{valid_bucket, valid_key};

pub(super) const STATE: TableSpec = TableSpec {
    name: "state",
    label: "[state]",
    keys: &[
        Key::required("backend", "\"s3\""),
        Key::optional("bucket", "\"my-team-state\""),
        Key::optional("key", "\"appgrid/blog/state.json\""),
        Key::optional("region", "\"us-east-1\""),
        Key::optional("endpoint", "\"https://s3.example.com\""),
    ],
};

/// Keys only the "s3" backend reads.
const S3_ONLY: &[&str] = &["bucket", "key", "region", "endpoint"];

pub(super) fn check(ck: &mut Checker, s: &Section) -> Result<StateBackend, Reported> {
    let backend = s.require(ck, "backend")?;
    match backend.str(ck)? {
        "local" => {
            for key in S3_ONLY {
                if let Some(f) = s.field(key) {
                    ck.error(
                        f.span(),
                        format!("`{key}` is only read by the \"s3\" backend"),
                        "remove it, or set `backend = \"s3\"`",
                    );
                }
            }
            Ok(StateBackend::Local)
        }
        "s3" => {
            let bucket = s.require(ck, "bucket").and_then(|f| bucket(ck, f));
            let key = s.field("key").map(|f| key(ck, f)).transpose();
            let region = s.field("region").map(|f| region(ck, f)).transpose();
            let endpoint = s.field("endpoint").map(|f| endpoint(ck, f)).transpose();
            Ok(StateBackend::S3 {
                bucket: bucket?,
                key: key?,
                region: region?,
                endpoint: endpoint?,
            })
        }
        other => Err(ck.error(
            backend.span(),
            format!("unknown state backend {other:?}"),
            "use `backend = \"s3\"` (state on S3, for teams and CI) or `backend = \"local\"` \
             (the file beside the manifest, the default)",
        )),
    }
}

fn bucket(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let name = f.str(ck)?;
    if valid_bucket(name) {
        return Ok(name.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`bucket` must be an S3 bucket name, found {name:?}"),
        "use 3 to 63 lowercase letters, digits, '-' and '.', starting and ending with a letter \
         or digit, e.g. `bucket = \"my-team-state\"`",
    ))
}

fn key(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let key = f.str(ck)?;
    if valid_key(key) {
        return Ok(key.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`key` must be an object key, found {key:?}"),
        "write a path without a leading or trailing '/', e.g. `key = \"appgrid/blog/state.json\"`, \
         or remove it for the default appgrid/APP/state.json",
    ))
}

fn region(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let region = f.str(ck)?;
    if names::region(region) {
        return Ok(region.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`region` must be an AWS region code, found {region:?}"),
        "use lowercase letters, digits and '-', e.g. `region = \"us-east-1\"`",
    ))
}

fn endpoint(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let url = f.str(ck)?;
    if names::http_url(url) {
        return Ok(url.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`endpoint` must be an http:// or https:// URL, found {url:?}"),
        f.example_help(),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::{Manifest, StateBackend, parse};

    const MINIMAL: &str = "[app]\nname = \"blog\"\n\n[provider]\nkind = \"local\"\n\n\
        [web]\ninstance_type = \"t3.small\"\ncount = 1\n\n[load_balancer]\ninstance_type = \"t3.small\"\n";

    fn with_state(table: &str) -> Result<Manifest, String> {
        parse(
            Path::new("appgrid.toml"),
            &format!("{MINIMAL}\n[state]\n{table}"),
        )
        .map_err(|d| d.to_string())
    }

    #[test]
    fn s3_backend_with_defaults_and_every_key() {
        assert_eq!(
            with_state("backend = \"s3\"\nbucket = \"team-state\"\n")
                .unwrap()
                .state,
            Some(StateBackend::S3 {
                bucket: "team-state".into(),
                key: None,
                region: None,
                endpoint: None,
            })
        );
        assert_eq!(
            with_state(
                "backend = \"s3\"\nbucket = \"team-state\"\nkey = \"apps/blog.json\"\n\
                 region = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:9000\"\n"
            )
            .unwrap()
            .state,
            Some(StateBackend::S3 {
                bucket: "team-state".into(),
                key: Some("apps/blog.json".into()),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
            })
        );
        assert_eq!(
            with_state("backend = \"local\"\n").unwrap().state,
            Some(StateBackend::Local)
        );
        assert_eq!(parse(Path::new("a.toml"), MINIMAL).unwrap().state, None);
    }

    #[test]
    fn a_bad_bucket_is_reported_at_its_value() {
        assert_eq!(
            with_state("backend = \"s3\"\nbucket = \"Team_State\"\n").unwrap_err(),
            "error: `bucket` must be an S3 bucket name, found \"Team_State\"
  --> appgrid.toml:16:10
   |
16 | bucket = \"Team_State\"
   |          ^^^^^^^^^^^^
   |
   = help: use 3 to 63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, e.g. `bucket = \"my-team-state\"`
"
        );
    }

    #[test]
    fn every_problem_of_the_table_at_once() {
        let e = with_state(
            "backend = \"s3\"\nkey = \"/abs/\"\nregion = \"US\"\nendpoint = \"s3.example.com\"\nbukcet = \"x\"\n",
        )
        .unwrap_err();
        for expected in [
            "`key` must be an object key, found \"/abs/\"\n  --> appgrid.toml:16:7",
            "`region` must be an AWS region code, found \"US\"\n  --> appgrid.toml:17:10",
            "`endpoint` must be an http:// or https:// URL, found \"s3.example.com\"\n  --> appgrid.toml:18:12",
            "unknown key `bukcet` in [state]\n  --> appgrid.toml:19:1",
            "did you mean `bucket`?",
        ] {
            assert!(e.contains(expected), "{expected}\nnot in:\n{e}");
        }
    }

    #[test]
    fn unknown_backend_and_s3_keys_under_local() {
        let e = with_state("backend = \"dynamodb\"\n").unwrap_err();
        assert!(
            e.starts_with("error: unknown state backend \"dynamodb\"\n  --> appgrid.toml:15:11"),
            "{e}"
        );
        let e = with_state("backend = \"local\"\nbucket = \"team-state\"\n").unwrap_err();
        assert!(
            e.contains("`bucket` is only read by the \"s3\" backend\n  --> appgrid.toml:16:10"),
            "{e}"
        );
        let e = with_state("bucket = \"team-state\"\n").unwrap_err();
        assert!(e.contains("missing `backend` in [state]"), "{e}");
    }
}
