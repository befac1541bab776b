//! The manifest checker, tested by the exact text users see.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const BLOG: &str = include_str!("../../examples/blog/appgrid.toml");
const SHOP: &str = include_str!("../../examples/shop/appgrid.toml");

/// The smallest valid manifest; tests break one line of it at a time.
const MINIMAL: &str = r#"[app]
name = "blog"

[provider]
kind = "aws"
region = "us-east-1"
image = "debian-12"
ssh_key = "~/.ssh/id_ed25519"
ssh_from = ["203.0.113.0/24"]

[web]
instance_type = "t3.small"
count = 2

[load_balancer]
instance_type = "t3.small"
"#;

const AUTOSCALE: &str = "\n[autoscale]\nmetric = \"cpu_percent\"\ntarget = 60\nmin = 1\nmax = 3\n";

fn check(text: &str) -> Result<Manifest, Diagnostics> {
    parse(Path::new("appgrid.toml"), text)
}

/// `text` with `from` (which must occur) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the manifest");
    text.replacen(from, to, 1)
}

/// The rendered diagnostics; fails the test if `text` is valid.
fn errors(text: &str) -> String {
    match check(text) {
        Ok(manifest) => panic!("expected errors, got {manifest:?}"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

#[test]
fn toml_syntax_error() {
    assert_eq!(
        errors(&edit(MINIMAL, r#"name = "blog""#, r#"name = "blog"#)),
        r#"error: invalid TOML: invalid basic string, expected `"`
 --> appgrid.toml:2:13
  |
2 | name = "blog
  |             ^
  |
  = help: close the string with `"` on the same line, or use `"""` for text over several lines
"#
    );
}

#[test]
fn syntax_error_is_not_also_reported_as_a_wrong_type() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", "count = 2x")),
        r#"error: invalid TOML: string values must be quoted, expected literal string
  --> appgrid.toml:13:9
   |
13 | count = 2x
   |         ^^
   |
   = help: put text in double quotes (`key = "text"`); numbers and booleans are written bare
"#
    );
}

#[test]
fn syntax_error_keeps_value_errors_on_other_lines() {
    let text = edit(MINIMAL, "count = 2", "count = 0\nport = 80 80");
    assert_eq!(
        errors(&text),
        r#"error: `count` must be at least 1, found 0
  --> appgrid.toml:13:9
   |
13 | count = 0
   |         ^
   |
   = help: use a whole number from 1 to 10000, for example: `count = 2`

error: invalid TOML: string values must be quoted, expected literal string
  --> appgrid.toml:14:8
   |
14 | port = 80 80
   |        ^^^^^
   |
   = help: put text in double quotes (`key = "text"`); numbers and booleans are written bare
"#
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", r#"count = "2""#)),
        r#"error: `count` must be an integer, found string
  --> appgrid.toml:13:9
   |
13 | count = "2"
   |         ^^^
   |
   = help: for example: `count = 2`
"#
    );
}

#[test]
fn count_zero() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", "count = 0")),
        "error: `count` must be at least 1, found 0
  --> appgrid.toml:13:9
   |
13 | count = 0
   |         ^
   |
   = help: use a whole number from 1 to 10000, for example: `count = 2`
"
    );
}

#[test]
fn count_negative() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", "count = -3")),
        "error: `count` must be at least 1, found -3
  --> appgrid.toml:13:9
   |
13 | count = -3
   |         ^^
   |
   = help: use a whole number from 1 to 10000, for example: `count = 2`
"
    );
}

#[test]
fn count_beyond_i64() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", "count = 99999999999999999999")),
        "error: `count` must be at most 10000, found 99999999999999999999
  --> appgrid.toml:13:9
   |
13 | count = 99999999999999999999
   |         ^^^^^^^^^^^^^^^^^^^^
   |
   = help: use a whole number from 1 to 10000, for example: `count = 2`
"
    );
}

#[test]
fn autoscale_min_greater_than_max() {
    let text = format!("{MINIMAL}{}", edit(AUTOSCALE, "min = 1", "min = 5"));
    assert_eq!(
        errors(&text),
        "error: `min` (5) is greater than `max` (3)
  --> appgrid.toml:21:7
   |
21 | min = 5
   |       ^
   |
   = help: lower `min` to at most 3, or raise `max` to at least 5
"
    );
}

#[test]
fn unknown_provider_kind() {
    assert_eq!(
        errors(&edit(MINIMAL, r#"kind = "aws""#, r#"kind = "gcp""#)),
        r#"error: unknown provider kind "gcp"
 --> appgrid.toml:5:8
  |
5 | kind = "gcp"
  |        ^^^^^
  |
  = help: expected one of: "aws", "local", "hosts"
"#
    );
}

#[test]
fn aws_keys_under_another_provider_are_errors() {
    assert_eq!(
        errors(&edit(MINIMAL, r#"kind = "aws""#, r#"kind = "local""#)),
        r#"error: `region` is only read by the "aws" provider
 --> appgrid.toml:6:10
  |
6 | region = "us-east-1"
  |          ^^^^^^^^^^^
  |
  = help: remove it, or set `kind = "aws"`

error: `image` is only read by the "aws" provider
 --> appgrid.toml:7:9
  |
7 | image = "debian-12"
  |         ^^^^^^^^^^^
  |
  = help: remove it, or set `kind = "aws"`

error: `ssh_from` is only read by the "aws" provider
 --> appgrid.toml:9:12
  |
9 | ssh_from = ["203.0.113.0/24"]
  |            ^^^^^^^^^^^^^^^^^^
  |
  = help: remove it, or set `kind = "aws"`
"#
    );
}

#[test]
fn local_and_hosts_providers() {
    let local = "[app]\nname = \"blog\"\n[provider]\nkind = \"local\"\n[web]\ninstance_type = \"t3.small\"\ncount = 2\n[load_balancer]\ninstance_type = \"t3.small\"\n";
    let m = check(local).unwrap();
    assert_eq!(m.provider.kind, crate::manifest::ProviderKind::Local);
    assert_eq!(m.provider.zones, ["local"]);
    let hosts = local.replace(
        "kind = \"local\"",
        "kind = \"hosts\"\nssh_key = \"id\"\nhosts = [\"10.77.0.11\", \"h2.example:2222\"]\nproxy_command = \"socat - TCP:%h:%p\"",
    );
    let m = check(&hosts).unwrap();
    assert_eq!(m.provider.hosts, ["10.77.0.11", "h2.example:2222"]);
    assert_eq!(
        m.provider.proxy_command.as_deref(),
        Some("socat - TCP:%h:%p")
    );
    assert_eq!(
        errors(&hosts.replace("\"h2.example:2222\"", "\"h2;rm -rf /\"")),
        r#"error: `hosts` entry "h2;rm -rf /" must be a host name or IPv4 address with an optional :port
 --> appgrid.toml:6:24
  |
6 | hosts = ["10.77.0.11", "h2;rm -rf /"]
  |                        ^^^^^^^^^^^^^
  |
  = help: e.g. "10.0.0.11", "db1.example.com" or "10.0.0.12:2222"
"#
    );
}

#[test]
fn unknown_key_with_did_you_mean_is_not_also_missing() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", "cont = 2")),
        "error: unknown key `cont` in [web]
  --> appgrid.toml:13:1
   |
13 | cont = 2
   | ^^^^
   |
   = help: did you mean `count`?
"
    );
}

#[test]
fn unknown_key_far_from_any_lists_the_known_keys() {
    assert_eq!(
        errors(&edit(MINIMAL, "count = 2", "count = 2\nreplicas = 3")),
        "error: unknown key `replicas` in [web]
  --> appgrid.toml:14:1
   |
14 | replicas = 3
   | ^^^^^^^^
   |
   = help: known keys in [web]: `instance_type`, `count`, `port`, `max_connections`
"
    );
}

#[test]
fn unknown_table_with_did_you_mean() {
    assert_eq!(
        errors(&edit(MINIMAL, "[app]", "[ap]")),
        "error: unknown table [ap]
 --> appgrid.toml:1:2
  |
1 | [ap]
  |  ^^
  |
  = help: did you mean [app]?
"
    );
}

#[test]
fn app_name_with_shell_metacharacters() {
    assert_eq!(
        errors(&edit(
            MINIMAL,
            r#"name = "blog""#,
            r#"name = "blog; rm -rf /""#
        )),
        r#"error: `name` must be a DNS label, found "blog; rm -rf /"
 --> appgrid.toml:2:8
  |
2 | name = "blog; rm -rf /"
  |        ^^^^^^^^^^^^^^^^
  |
  = help: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-', e.g. `name = "blog-rm-rf"`
"#
    );
}

#[test]
fn app_name_with_uppercase() {
    assert_eq!(
        errors(&edit(MINIMAL, r#"name = "blog""#, r#"name = "MyBlog""#)),
        r#"error: `name` must be a DNS label, found "MyBlog"
 --> appgrid.toml:2:8
  |
2 | name = "MyBlog"
  |        ^^^^^^^^
  |
  = help: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-', e.g. `name = "myblog"`
"#
    );
}

#[test]
fn bad_cidr() {
    assert_eq!(
        errors(&edit(MINIMAL, "203.0.113.0/24", "203.0.113.300/24")),
        r#"error: `ssh_from` entry "203.0.113.300/24" is not an IPv4 CIDR block: "203.0.113.300" is not an IPv4 address (four numbers from 0 to 255, without leading zeros)
 --> appgrid.toml:9:13
  |
9 | ssh_from = ["203.0.113.300/24"]
  |             ^^^^^^^^^^^^^^^^^^
  |
  = help: write an address and a prefix length, e.g. "203.0.113.0/24", or "0.0.0.0/0" for anywhere
"#
    );
}

#[test]
fn bad_duration() {
    let text = format!("{MINIMAL}{AUTOSCALE}warmup = \"2 minutes\"\n");
    assert_eq!(
        errors(&text),
        r#"error: `warmup` must be a duration like "90s", found "2 minutes"
  --> appgrid.toml:23:10
   |
23 | warmup = "2 minutes"
   |          ^^^^^^^^^^^
   |
   = help: write a whole number followed by ms, s, m or h, e.g. "500ms", "90s", "5m" or "1h"
"#
    );
}

#[test]
fn min_greater_than_max_does_not_hide_later_errors() {
    let text = format!(
        "{MINIMAL}{}warmup = \"2m30s\"\n",
        edit(AUTOSCALE, "min = 1", "min = 5")
    );
    assert_eq!(
        errors(&text),
        r#"error: `min` (5) is greater than `max` (3)
  --> appgrid.toml:21:7
   |
21 | min = 5
   |       ^
   |
   = help: lower `min` to at most 3, or raise `max` to at least 5

error: `warmup` must be a duration like "90s", found "2m30s"
  --> appgrid.toml:23:10
   |
23 | warmup = "2m30s"
   |          ^^^^^^^
   |
   = help: write a whole number followed by ms, s, m or h, e.g. "500ms", "90s", "5m" or "1h"
"#
    );
}

#[test]
fn interval_below_one_second() {
    let text = format!("{MINIMAL}{AUTOSCALE}interval = \"500ms\"\n");
    assert_eq!(
        errors(&text),
        r#"error: `interval` must be at least 1s, found "500ms"
  --> appgrid.toml:23:12
   |
23 | interval = "500ms"
   |            ^^^^^^^
   |
   = help: for example: `interval = "30s"`
"#
    );
}

#[test]
fn bad_cron_field_points_at_the_field() {
    let text = format!(
        "{MINIMAL}{AUTOSCALE}\n[[autoscale.schedule]]\ncron = \"0 8 * * MON-FRX\"\nmin = 2\n"
    );
    assert_eq!(
        errors(&text),
        r#"error: invalid day-of-week field `MON-FRX` in `cron`: "FRX" is not a day name (SUN-SAT) or a number from 0 to 7
  --> appgrid.toml:25:17
   |
25 | cron = "0 8 * * MON-FRX"
   |                 ^^^^^^^
   |
   = help: the five fields are minute (0-59), hour (0-23), day-of-month (1-31), month (1-12 or JAN-DEC) and day-of-week (0-7 or SUN-SAT), e.g. `cron = "0 8 * * MON-FRI"`
"#
    );
}

#[test]
fn cron_with_wrong_field_count() {
    let text = format!("{MINIMAL}{AUTOSCALE}\n[[autoscale.schedule]]\ncron = '@daily'\nmin = 2\n");
    assert_eq!(
        errors(&text),
        r#"error: `cron` must have 5 fields (minute hour day-of-month month day-of-week), found 1
  --> appgrid.toml:25:8
   |
25 | cron = '@daily'
   |        ^^^^^^^^
   |
   = help: the five fields are minute (0-59), hour (0-23), day-of-month (1-31), month (1-12 or JAN-DEC) and day-of-week (0-7 or SUN-SAT), e.g. `cron = "0 8 * * MON-FRI"`
"#
    );
}

#[test]
fn schedule_needs_a_bound() {
    let text = format!("{MINIMAL}{AUTOSCALE}\n[[autoscale.schedule]]\ncron = \"0 8 * * *\"\n");
    assert_eq!(
        errors(&text),
        "error: [[autoscale.schedule]] sets none of `min`, `max` and `desired`
  --> appgrid.toml:24:1
   |
24 | [[autoscale.schedule]]
   | ^^^^^^^^^^^^^^^^^^^^^^
   |
   = help: add at least one of them, e.g. `min = 4`
"
    );
}

#[test]
fn schedule_written_as_a_single_table() {
    let text = format!("{MINIMAL}{AUTOSCALE}\n[autoscale.schedule]\ncron = \"0 8 * * *\"\n");
    assert_eq!(
        errors(&text),
        "error: `schedule` must be an array of tables, found table
  --> appgrid.toml:24:1
   |
24 | [autoscale.schedule]
   | ^^^^^^^^^^^^^^^^^^^^
   |
   = help: write each schedule under its own `[[autoscale.schedule]]` header (double brackets) with `cron` and at least one of `min`, `max` or `desired`
"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        errors(&edit(
            MINIMAL,
            "instance_type = \"t3.small\"\ncount",
            "count"
        )),
        r#"error: missing `instance_type` in [web]
  --> appgrid.toml:11:1
   |
11 | [web]
   | ^^^^^
   |
   = help: add `instance_type = "t3.small"` under [web]
"#
    );
}

#[test]
fn missing_table() {
    assert_eq!(
        errors(&edit(
            MINIMAL,
            "[web]\ninstance_type = \"t3.small\"\ncount = 2\n",
            ""
        )),
        r#"error: missing table [web]
 --> appgrid.toml:1:1
  |
1 | [app]
  | ^
  |
  = help: add a table [web] with `instance_type = "t3.small"` and `count = 2`
"#
    );
}

#[test]
fn section_that_is_not_a_table() {
    assert_eq!(
        errors(&format!(
            "web = 3\n{}",
            edit(
                MINIMAL,
                "[web]\ninstance_type = \"t3.small\"\ncount = 2\n",
                ""
            )
        )),
        "error: `web` must be a table, found integer
 --> appgrid.toml:1:7
  |
1 | web = 3
  |       ^
  |
  = help: write a table header `[web]` and put its keys on the lines below it
"
    );
}

#[test]
fn empty_file_lists_every_required_table() {
    assert_eq!(
        errors(""),
        r#"error: missing table [app]
 --> appgrid.toml:1:1
  |
1 |
  | ^
  |
  = help: add a table [app] with `name = "blog"`

error: missing table [provider]
 --> appgrid.toml:1:1
  |
1 |
  | ^
  |
  = help: add a table [provider] with `kind = "local"`

error: missing table [web]
 --> appgrid.toml:1:1
  |
1 |
  | ^
  |
  = help: add a table [web] with `instance_type = "t3.small"` and `count = 2`

error: missing table [load_balancer]
 --> appgrid.toml:1:1
  |
1 |
  | ^
  |
  = help: add a table [load_balancer] with `instance_type = "t3.small"`
"#
    );
}

#[test]
fn several_errors_reported_together_in_source_order() {
    // `port` comes before `count` in the file but after it alphabetically:
    // the order must be the file's.
    let text = edit(
        &edit(
            &edit(MINIMAL, r#"kind = "aws""#, "kind = 3"),
            "count = 2",
            "port = 0\ncount = 0",
        ),
        "[load_balancer]",
        "[load_balancer]\nallow_from = [\"10.0.0.0/8\", 7]",
    );
    assert_eq!(
        errors(&text),
        r#"error: `kind` must be a string, found integer
 --> appgrid.toml:5:8
  |
5 | kind = 3
  |        ^
  |
  = help: for example: `kind = "local"`

error: `port` must be at least 1, found 0
  --> appgrid.toml:13:8
   |
13 | port = 0
   |        ^
   |
   = help: use a whole number from 1 to 65535, for example: `port = 8080`

error: `count` must be at least 1, found 0
  --> appgrid.toml:14:9
   |
14 | count = 0
   |         ^
   |
   = help: use a whole number from 1 to 10000, for example: `count = 2`

error: `allow_from` entries must be strings, found integer
  --> appgrid.toml:17:29
   |
17 | allow_from = ["10.0.0.0/8", 7]
   |                             ^
   |
   = help: for example: `allow_from = ["0.0.0.0/0"]`
"#
    );
}

#[test]
fn zones_must_belong_to_the_region_and_not_repeat() {
    let text = edit(
        MINIMAL,
        "image =",
        "zones = [\"us-east-1a\", \"eu-west-1a\", \"us-east-1a\"]\nimage =",
    );
    assert_eq!(
        errors(&text),
        r#"error: zone "eu-west-1a" is not in region "us-east-1"
 --> appgrid.toml:7:24
  |
7 | zones = ["us-east-1a", "eu-west-1a", "us-east-1a"]
  |                        ^^^^^^^^^^^^
  |
  = help: zones of us-east-1 are named like "us-east-1a"

error: zone "us-east-1a" is listed more than once
 --> appgrid.toml:7:38
  |
7 | zones = ["us-east-1a", "eu-west-1a", "us-east-1a"]
  |                                      ^^^^^^^^^^^^
  |
  = help: remove the repeated zone
"#
    );
}

#[test]
fn minimal_manifest_gets_the_defaults() {
    let m = check(MINIMAL).unwrap();
    assert_eq!(m.provider.zones, ["us-east-1a", "us-east-1b", "us-east-1c"]);
    assert_eq!(m.provider.ssh_user, "admin");
    assert_eq!(m.provider.endpoint, None);
    assert_eq!(m.web.port, 8080);
    assert_eq!(m.load_balancer.listen, 80);
    assert_eq!(m.load_balancer.allow_from, ["0.0.0.0/0"]);
    assert_eq!(
        (m.release, m.database, m.cache, m.autoscale),
        (None, None, None, None)
    );
}

#[test]
fn blog_example_validates() {
    let m = check(BLOG).unwrap_or_else(|d| panic!("{d}"));
    let expected = Manifest {
        app: App {
            name: "blog".into(),
            templates: None,
        },
        provider: Provider {
            kind: ProviderKind::Aws,
            region: "us-east-1".into(),
            zones: vec!["us-east-1a".into(), "us-east-1b".into()],
            image: "debian-12".into(),
            ssh_user: "admin".into(),
            ssh_key: "~/.ssh/id_ed25519".into(),
            ssh_from: vec!["203.0.113.0/24".into()],
            endpoint: None,
            hosts: Vec::new(),
            proxy_command: None,
            jump_host: None,
            configure: true,
        },
        release: Some(Release {
            path: "../app".into(),
            build: None,
            start: "/usr/bin/python3 app.py".into(),
            health: "/health".into(),
            release_command: None,
            health_timeout: std::time::Duration::from_secs(60),
        }),
        web: Web {
            instance_type: "t3.small".into(),
            count: 2,
            port: 8080,
            max_connections: None,
        },
        load_balancer: LoadBalancer {
            instance_type: "t3.small".into(),
            listen: 80,
            allow_from: vec!["0.0.0.0/0".into()],
            tls: None,
        },
        database: Some(Database {
            instance_type: "m5.large".into(),
            version: 15,
            replicas: 1,
            replication: Replication::Slony,
            port: 5432,
            schema: Some("../app/schema.sql".into()),
            backup: None,
            failover: None,
        }),
        cache: Some(Cache {
            instance_type: "r5.large".into(),
            nodes: 1,
            memory_mb: None,
            port: 11211,
        }),
        autoscale: Some(Autoscale {
            metric: Metric::RequestsPerInstance,
            target: 50.0,
            min: 2,
            max: 20,
            scale_out_cooldown: Duration::from_secs(60),
            scale_in_cooldown: Duration::from_secs(300),
            warmup: Duration::from_secs(120),
            interval: Duration::from_secs(30),
            schedule: vec![Schedule {
                cron: "0 8 * * MON-FRI".into(),
                timezone: "Europe/Berlin".into(),
                min: Some(4),
                max: None,
                desired: None,
            }],
            predictive: false,
            policy: crate::manifest::PolicyKind::Reactive,
            boot: None,
            forecast_quantile: None,
            forecast_only: false,
            replicas: None,
        }),
        env: Default::default(),
        state: None,
    };
    assert_eq!(m, expected);
}

#[test]
fn shop_example_validates() {
    let m = check(SHOP).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(m.app.name, "shop");
    assert_eq!(m.provider.zones, ["us-east-1a", "us-east-1b", "us-east-1c"]);
    assert_eq!(
        m.web,
        Web {
            instance_type: "c5.large".into(),
            count: 6,
            port: 8080,
            max_connections: None,
        }
    );
    assert_eq!(
        m.database,
        Some(Database {
            instance_type: "r5.xlarge".into(),
            version: 15,
            replicas: 2,
            replication: Replication::Slony,
            port: 5432,
            schema: Some("../app/schema.sql".into()),
            backup: None,
            failover: None,
        })
    );
    assert_eq!(
        m.cache,
        Some(Cache {
            instance_type: "r5.large".into(),
            nodes: 2,
            memory_mb: None,
            port: 11211,
        })
    );
    assert_eq!(m.autoscale, None);
    assert!(m.release.is_some());
}

/// Whatever the input, `check` returns, and a refusal carries at least one
/// error located inside the text.
fn assert_well_formed(text: &str) {
    if let Err(diagnostics) = check(text) {
        assert!(
            diagnostics.has_errors(),
            "refused without an error: {text:?}"
        );
        let lines = text.split('\n').count();
        for d in diagnostics.iter() {
            assert!(d.line >= 1 && d.line <= lines, "{d}\nin {text:?}");
            assert!(d.help.is_some(), "no help: {d}");
        }
    }
}

/// Characters that matter to TOML and to the checks, so mutations reach
/// deep into the parser and the schema.
fn mutation_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[\[\]{}=,."'#\n \-_a-z0-9é/:*\\]{0,8}"#).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        assert_well_formed(&text);
    }

    #[test]
    fn never_panics_on_mutations_of_a_valid_manifest(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..6usize, mutation_text()), 1..4)
    ) {
        let mut text = BLOG.to_string();
        for (at, delete, insert) in edits {
            let mut start = at.index(text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + delete).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(start..end, &insert);
        }
        assert_well_formed(&text);
    }
}

#[test]
fn deeply_nested_input_is_refused_without_crashing() {
    let arrays = format!("{MINIMAL}x = {}", "[".repeat(10_000));
    let dotted = format!("{MINIMAL}{} = 1\n", vec!["x"; 10_000].join("."));
    for text in [arrays, dotted] {
        assert!(check(&text).is_err());
        assert_well_formed(&text);
    }
}

#[test]
fn forecast_policy_with_boot_and_quantile() {
    let text = format!(
        "{MINIMAL}{AUTOSCALE}policy = \"forecast\"\nboot = \"90s\"\nforecast_quantile = 0.95\n"
    );
    let a = check(&text).unwrap().autoscale.unwrap();
    assert_eq!(a.policy, crate::manifest::PolicyKind::Forecast);
    assert_eq!(a.boot, Some(Duration::from_secs(90)));
    assert_eq!(a.forecast_quantile, Some(0.95));
    let a = check(&format!("{MINIMAL}{AUTOSCALE}"))
        .unwrap()
        .autoscale
        .unwrap();
    assert_eq!(a.policy, crate::manifest::PolicyKind::Reactive);
    assert_eq!((a.boot, a.forecast_quantile), (None, None));
}

#[test]
fn unknown_policy_and_bad_quantile_and_huge_boot() {
    let text = format!(
        "{MINIMAL}{AUTOSCALE}policy = \"psychic\"\nforecast_quantile = 1.5\nboot = \"99999999999h\"\n"
    );
    assert_eq!(
        errors(&text),
        r#"error: unknown policy "psychic"
  --> appgrid.toml:23:10
   |
23 | policy = "psychic"
   |          ^^^^^^^^^
   |
   = help: expected one of: "reactive", "forecast"

error: `forecast_quantile` must be from 0.5 to 0.999, found 1.5
  --> appgrid.toml:24:21
   |
24 | forecast_quantile = 1.5
   |                     ^^^
   |
   = help: it is how cautious the forecast's margin is, e.g. `forecast_quantile = 0.9`

error: `boot` is too long: "99999999999h" is longer than the longest duration accepted, 8784h (366 days)
  --> appgrid.toml:25:8
   |
25 | boot = "99999999999h"
   |        ^^^^^^^^^^^^^^
   |
   = help: write at most "8784h"; boot is usually seconds or minutes
"#
    );
}

#[test]
fn tls_certificate_and_port_in_load_balancer() {
    let lb = "[load_balancer]\ninstance_type = \"t3.small\"\n";
    let m = check(&edit(
        MINIMAL,
        lb,
        &format!("{lb}tls_certificate = \"tls/site.pem\"\n"),
    ))
    .unwrap();
    let tls = m.load_balancer.tls.unwrap();
    assert_eq!((tls.certificate.as_str(), tls.port), ("tls/site.pem", 443));
    let at = MINIMAL.len() + "tls_certificate = ".len();
    assert_eq!(tls.span, at..at + "\"tls/site.pem\"".len());
    assert!(check(MINIMAL).unwrap().load_balancer.tls.is_none());

    let e = errors(&edit(MINIMAL, lb, &format!("{lb}tls_port = 8443\n")));
    assert!(e.contains("`tls_port` without `tls_certificate`"), "{e}");
    assert!(e.contains("appgrid.toml:17:12"), "{e}");
    let e = errors(&edit(
        MINIMAL,
        lb,
        &format!("{lb}listen = 8443\ntls_certificate = \"a.pem\"\ntls_port = 8443\n"),
    ));
    assert!(
        e.contains("`tls_port` 8443 is the HTTP port `listen` too"),
        "{e}"
    );
    let e = errors(&edit(MINIMAL, lb, &format!("{lb}tls_certificate = \"\"\n")));
    assert!(e.contains("`tls_certificate` must not be empty"), "{e}");
}
