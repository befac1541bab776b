//! The SSH key appgrid logs in with (`[provider] ssh_key`): the private key
//! must exist and load without a passphrase (appgrid cannot ask for one in
//! the middle of an apply), and for `aws` the public key `PATH.pub` must
//! exist, since it is imported as the app's key pair. Found here, a missing
//! key costs nothing; found at the first SSH login, it costs a launched fleet.

use std::path::Path;

use super::{Check, CheckKind};
use crate::apply::resolve_path;
use crate::templates::shell_quote;

const WHY: &str = "appgrid logs in to the machines with it";

/// Checks of the key written as `ssh_key` in a manifest in `base_dir`.
pub fn check(ssh_key: &str, base_dir: &Path, needs_public: bool) -> Vec<Check> {
    let private = resolve_path(ssh_key, base_dir);
    let shown = private.display().to_string();
    let quoted = shell_quote(&shown);
    if !private.exists() {
        return vec![Check::missing(
            CheckKind::SshKey,
            &shown,
            WHY,
            format!("the SSH private key {shown} (`ssh_key` in [provider]) does not exist"),
            format!("ssh-keygen -t ed25519 -N '' -f {quoted}"),
        )];
    }
    let mut checks = vec![match russh::keys::load_secret_key(&private, None) {
        Ok(key) => Check::ok(
            CheckKind::SshKey,
            &shown,
            WHY,
            format!("{} key", key.algorithm()),
        ),
        Err(e) => Check::missing(
            CheckKind::SshKey,
            &shown,
            WHY,
            format!(
                "cannot load the SSH private key {shown}: {e} (a key with a passphrase cannot be used)"
            ),
            format!(
                "make a key without a passphrase and point `ssh_key` at it: ssh-keygen -t ed25519 -N '' -f {}",
                shell_quote(&format!("{shown}-appgrid"))
            ),
        ),
    }];
    if needs_public {
        let public = format!("{shown}.pub");
        checks.push(if Path::new(&public).is_file() {
            Check::ok(
                CheckKind::SshKey,
                &public,
                "imported as the app's EC2 key pair",
                "present",
            )
        } else {
            Check::missing(
                CheckKind::SshKey,
                &public,
                "imported as the app's EC2 key pair",
                format!("the SSH public key {public} does not exist"),
                format!("ssh-keygen -y -f {quoted} > {}", shell_quote(&public)),
            )
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("appgrid-sshkey-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_key_names_the_command_that_makes_it() {
        let dir = scratch("missing");
        let checks = check("keys/id ed25519", &dir, true);
        assert_eq!(checks.len(), 1);
        let super::super::Status::Missing { problem, fix, .. } = &checks[0].status else {
            panic!("{checks:?}")
        };
        let path = dir.join("keys/id ed25519");
        assert!(problem.contains(&path.display().to_string()), "{problem}");
        assert_eq!(
            fix,
            &format!("ssh-keygen -t ed25519 -N '' -f '{}'", path.display())
        );
    }

    #[test]
    fn a_key_that_is_not_a_key_and_a_missing_public_half_are_reported() {
        let dir = scratch("bad");
        std::fs::write(dir.join("id"), "not a key\n").unwrap();
        let checks = check("id", &dir, true);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert!(checks.iter().all(|c| !c.is_ok()), "{checks:?}");
        assert!(checks[1].name.ends_with("/id.pub"));
        // The hosts provider imports no key pair: the public half is not needed.
        assert_eq!(check("id", &dir, false).len(), 1);
    }
}
