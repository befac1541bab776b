//! `[env]`: the app's non-secret config defaults, `KEY = "value"` each.
//! `appgrid config set` overrides them; appgrid's own keys (`DATABASE_URL`,
//! `PORT`, …) are refused here as there.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

use super::Checker;
use super::table::{Reported, TableSpec};
use crate::release::config_vars::check_name;

/// Listed with the other tables so `[env]` is not an unknown table; its keys
/// are the user's, so they are checked here, not against this spec.
pub(super) const ENV: TableSpec = TableSpec {
    name: "env",
    label: "[env]",
    keys: &[],
};

pub(super) fn check(
    ck: &mut Checker,
    root: &DeTable,
) -> Result<BTreeMap<String, String>, Reported> {
    let Some(value) = root.get("env") else {
        return Ok(BTreeMap::new());
    };
    let DeValue::Table(table) = value.get_ref() else {
        return Err(ck.error(
            value.span(),
            format!(
                "`env` must be a table, found {}",
                value.get_ref().type_str()
            ),
            "write a table header `[env]` and `KEY = \"value\"` lines below it",
        ));
    };
    let mut out = BTreeMap::new();
    let mut bad = false;
    for (key, v) in table.iter() {
        let name: &str = key.get_ref();
        if let Err(e) = check_name(name) {
            ck.error(
                key.span(),
                format!("[env]: {e}"),
                "appgrid sets DATABASE_URL, DATABASE_REPLICA_URLS, MEMCACHE_SERVERS, PORT and ADDR itself; name yours differently",
            );
            bad = true;
            continue;
        }
        match v.get_ref().as_str() {
            Some(s) if !s.contains('\0') => {
                out.insert(name.to_string(), s.to_string());
            }
            _ => {
                ck.error(
                    v.span(),
                    format!(
                        "`{name}` in [env] must be a string, found {}",
                        v.get_ref().type_str()
                    ),
                    format!("quote it: {name} = \"…\""),
                );
                bad = true;
            }
        }
    }
    if bad { Err(Reported) } else { Ok(out) }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const BASE: &str = "[app]\nname = \"blog\"\n[provider]\nkind = \"local\"\n\
        [web]\ninstance_type = \"t3.small\"\ncount = 1\n\
        [load_balancer]\ninstance_type = \"t3.small\"\n";

    fn parse(extra: &str) -> Result<crate::manifest::Manifest, String> {
        crate::manifest::parse(Path::new("m.toml"), &format!("{BASE}{extra}"))
            .map_err(|d| d.to_string())
    }

    #[test]
    fn env_defaults_are_read() {
        let m = parse("[env]\nLOG_LEVEL = \"info\"\nFEATURE_X = \"on\"\n").unwrap();
        assert_eq!(m.env.len(), 2);
        assert_eq!(m.env["LOG_LEVEL"], "info");
        assert!(parse("").unwrap().env.is_empty());
    }

    #[test]
    fn reserved_keys_and_non_strings_are_errors_at_their_line() {
        let err = parse("[env]\nPORT = \"9\"\nWORKERS = 4\n").unwrap_err();
        assert!(err.contains("m.toml:11:1"), "{err}");
        assert!(err.contains("PORT is set by appgrid"), "{err}");
        assert!(err.contains("m.toml:12:11"), "{err}");
        assert!(
            err.contains("`WORKERS` in [env] must be a string, found integer"),
            "{err}"
        );
    }
}
