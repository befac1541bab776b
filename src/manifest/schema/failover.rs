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
