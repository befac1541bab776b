//! Maintenance mode in the running HAProxy: the map's entries set or
//! deleted through the runtime API, no reload (see [`crate::maintenance`]).

use super::runtime::cli;
use crate::maintenance::{Maintenance, map_entries};
use crate::remote::Remote;
use crate::roles::web_error::WebRoleError;
use crate::templates::Templates;

fn map_path(root: &str) -> String {
    format!("{root}/etc/appgrid/haproxy/maintenance.map")
}

/// Bring the running process's map to `on`: the bodies first and the `on`
/// entry last (so no request meets `on` without its body), or `on` deleted
/// first when turning off.
pub(super) async fn set(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
    on: Option<&Maintenance>,
) -> Result<(), WebRoleError> {
    let map = map_path(root);
    let host = remote.host();
    let entries = map_entries(on);
    if entries.is_empty() {
        for key in ["on", "text", "html"] {
            let answer = cli(t, remote, root, &[format!("del map {map} {key}")]).await?;
            if !(answer[0].is_empty() || answer[0].contains("not found")) {
                return Err(WebRoleError::unexpected(
                    host,
                    "HAProxy `del map`",
                    answer[0].clone(),
                ));
            }
        }
        return Ok(());
    }
    for (key, value) in entries {
        // Values are base64 (or `1`): nothing the runtime API would split.
        let answer = cli(t, remote, root, &[format!("set map {map} {key} {value}")]).await?;
        if answer[0].is_empty() {
            continue;
        }
        if !answer[0].contains("not found") {
            return Err(WebRoleError::unexpected(
                host,
                "HAProxy `set map`",
                answer[0].clone(),
            ));
        }
        let answer = cli(t, remote, root, &[format!("add map {map} {key} {value}")]).await?;
        if !answer[0].is_empty() {
            return Err(WebRoleError::unexpected(
                host,
                "HAProxy `add map`",
                answer[0].clone(),
            ));
        }
    }
    Ok(())
}
