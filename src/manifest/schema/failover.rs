//! `failover`, `failover_checks` and `failover_window` of `[database]`
//! (issue 8 §3): `failover = "auto"` lets the autoscale runner fail a dead
//! origin over by itself, once `failover_checks` checks in a row found it
//! down and the first of them is at least `failover_window` old. It needs a
//! replica to promote and an `[autoscale]` table (the runner's interval).

use super::Checker;
use super::autoscale::duration_or;
use super::table::{Reported, Section};
use crate::manifest::AutoFailover;

/// Checks in a row, and how long they must span, when not written.
const DEFAULT_CHECKS: i64 = 3;
const DEFAULT_WINDOW_S: u64 = 30;

/// `replicas`: the manifest's count, when it was readable; `autoscale`:
/// whether the manifest has an `[autoscale]` table.
pub(super) fn check(
    ck: &mut Checker,
    s: &Section,
    replicas: Option<i64>,
    autoscale: bool,
) -> Result<Option<AutoFailover>, Reported> {
    let mode = match s.field("failover") {
        None => None,
        Some(f) => match f.str(ck)? {
            "auto" => Some(f),
            "manual" => None,
            other => {
                return Err(ck.error(
                    f.span(),
                    format!("unknown failover mode {other:?}"),
                    "expected \"auto\" (the autoscale runner fails a dead origin over) or \
                     \"manual\" (only `appgrid db failover`, the default)",
                ));
            }
        },
    };
    let checks = match s.field("failover_checks") {
        Some(f) => f.integer(ck, 1, 100),
        None => Ok(DEFAULT_CHECKS),
    };
    let window = duration_or(ck, s, "failover_window", DEFAULT_WINDOW_S);
    let Some(f) = mode else {
        for key in ["failover_checks", "failover_window"] {
            if let Some(k) = s.field(key) {
                return Err(ck.error(
                    k.span(),
                    format!("`{key}` only matters with `failover = \"auto\"`"),
                    "add `failover = \"auto\"` to [database], or remove this key",
                ));
            }
        }
        return Ok(None);
    };
    if replicas == Some(0) {
        return Err(ck.error(
            f.span(),
            "`failover = \"auto\"` needs a replica to promote, and [database] has `replicas = 0`",
            "set `replicas = 1` (or more) in [database], or remove `failover`",
        ));
    }
    if !autoscale {
        return Err(ck.error(
            f.span(),
            "`failover = \"auto\"` runs in the autoscale runner, and the manifest has no [autoscale] table",
            "add [autoscale] (its `interval` is how often the origin is checked) and run \
             `appgrid autoscale`, or remove `failover`",
        ));
    }
    Ok(Some(AutoFailover {
        checks: u32::try_from(checks?).unwrap_or(u32::MAX),
        window: window?,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::manifest::{AutoFailover, Manifest, parse};

    const BASE: &str = r#"[app]
name = "blog"

[provider]
kind = "local"

[web]
instance_type = "t3.small"
count = 2

[load_balancer]
instance_type = "t3.small"

[database]
instance_type = "m5.large"
replicas = 1
"#;

    const AUTOSCALE: &str =
        "\n[autoscale]\nmetric = \"cpu_percent\"\ntarget = 60\nmin = 1\nmax = 3\n";

    fn check(database_keys: &str, tail: &str) -> Result<Manifest, String> {
        let text = format!("{BASE}{database_keys}{tail}");
        parse(Path::new("appgrid.toml"), &text).map_err(|d| d.to_string())
    }

    fn failover(m: Manifest) -> Option<AutoFailover> {
        m.database.and_then(|d| d.failover)
    }

    #[test]
    fn auto_with_defaults_and_with_its_own_checks_and_window() {
        let m = check("failover = \"auto\"\n", AUTOSCALE).unwrap();
        assert_eq!(
            failover(m),
            Some(AutoFailover {
                checks: 3,
                window: Duration::from_secs(30)
            })
        );
        let m = check(
            "failover = \"auto\"\nfailover_checks = 5\nfailover_window = \"2m\"\n",
            AUTOSCALE,
        )
        .unwrap();
        assert_eq!(
            failover(m),
            Some(AutoFailover {
                checks: 5,
                window: Duration::from_secs(120)
            })
        );
        assert_eq!(
            failover(check("failover = \"manual\"\n", "").unwrap()),
            None
        );
        assert_eq!(failover(check("", "").unwrap()), None);
    }

    #[test]
    fn auto_without_a_replica_is_refused_where_it_is_written() {
        let text = format!(
            "{}failover = \"auto\"\n{AUTOSCALE}",
            BASE.replace("replicas = 1", "replicas = 0")
        );
        let err = parse(Path::new("appgrid.toml"), &text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            r#"error: `failover = "auto"` needs a replica to promote, and [database] has `replicas = 0`
  --> appgrid.toml:17:12
   |
17 | failover = "auto"
   |            ^^^^^^
   |
   = help: set `replicas = 1` (or more) in [database], or remove `failover`
"#
        );
    }

    #[test]
    fn auto_without_autoscale_is_refused_naming_the_table_to_add() {
        let err = check("failover = \"auto\"\n", "").unwrap_err();
        assert_eq!(
            err,
            r#"error: `failover = "auto"` runs in the autoscale runner, and the manifest has no [autoscale] table
  --> appgrid.toml:17:12
   |
17 | failover = "auto"
   |            ^^^^^^
   |
   = help: add [autoscale] (its `interval` is how often the origin is checked) and run `appgrid autoscale`, or remove `failover`
"#
        );
    }

    #[test]
    fn an_unknown_mode_a_bad_count_or_window_and_keys_without_auto_are_refused() {
        for (keys, message, at) in [
            (
                "failover = \"yes\"\n",
                "unknown failover mode \"yes\"",
                "17:12",
            ),
            (
                "failover_window = \"1m\"\n",
                "`failover_window` only matters with `failover = \"auto\"`",
                "17:19",
            ),
            (
                "failover = \"auto\"\nfailover_checks = 0\n",
                "failover_checks",
                "18:19",
            ),
            (
                "failover = \"auto\"\nfailover_window = \"soon\"\n",
                "`failover_window` must be a duration like \"90s\", found \"soon\"",
                "18:19",
            ),
        ] {
            let err = check(keys, AUTOSCALE).unwrap_err();
            assert!(err.contains(message), "{message:?} not in:\n{err}");
            assert!(
                err.contains(&format!("--> appgrid.toml:{at}\n")),
                "not at {at}:\n{err}"
            );
        }
    }
}
