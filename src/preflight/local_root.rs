//! The local provider's root (`APPGRID_LOCAL_ROOT`) must be reachable by the
//! users its services run as: Postgres as `postgres`, memcached and the app as
//! `nobody` (or `appgrid-app` when that account exists). Every directory on
//! the way down needs the search (`x`) bit for them, and directories appgrid
//! will create get the process umask. Without this check, a root under a
//! 0700 directory (`mktemp -d`) fails deep inside Postgres with "Permission
//! denied".

use std::path::{Component, Path, PathBuf};

use super::{Account, Check, CheckKind, Host, PathInfo};
use crate::manifest::Manifest;

const WHY: &str = "services run as their own users and must reach the machines' directories";

/// The service accounts that must reach the root, among those that exist.
/// (A missing `postgres` account means a missing package, reported as such.)
fn service_accounts(m: &Manifest, host: &dyn Host) -> Vec<Account> {
    let mut names = Vec::new();
    if m.database.is_some() {
        names.push("postgres");
    }
    names.push("nobody");
    names.push("appgrid-app");
    names.into_iter().filter_map(|n| host.account(n)).collect()
}

/// Which permission class applies to `user` on `info`, and whether it grants search.
fn search_bit(info: &PathInfo, user: &Account) -> (char, bool) {
    if user.uid == 0 {
        ('a', true)
    } else if info.uid == user.uid {
        ('u', info.mode & 0o100 != 0)
    } else if info.gid == user.gid || user.groups.contains(&info.gid) {
        ('g', info.mode & 0o010 != 0)
    } else {
        ('o', info.mode & 0o001 != 0)
    }
}

/// `/`, `/a`, `/a/b`, … down to `root` (absolute).
fn prefixes(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut at = PathBuf::new();
    for c in root.components() {
        match c {
            Component::CurDir => continue,
            Component::ParentDir => {
                at.pop();
            }
            other => at.push(other),
        }
        out.push(at.clone());
    }
    out
}

/// One check per directory the service users cannot pass, or one that
/// says the root is fine. `root` must be absolute.
pub fn check(m: &Manifest, root: &Path, host: &dyn Host) -> Vec<Check> {
    let name = root.display().to_string();
    let accounts = service_accounts(m, host);
    let users: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    let mut problems = Vec::new();
    for dir in prefixes(root) {
        let Some(info) = host.path_info(&dir) else {
            // appgrid creates the rest with the umask; others need `x`.
            let umask = host.umask().unwrap_or(0o022);
            if umask & 0o001 != 0 {
                problems.push(Check::missing(
                    CheckKind::LocalRoot,
                    &name,
                    WHY,
                    format!(
                        "{} does not exist, and appgrid would create it with mode {:04o} (umask {:04o}), which {} cannot enter",
                        dir.display(),
                        0o777 & !umask,
                        umask,
                        users.join(", ")
                    ),
                    format!(
                        "(umask 022 && mkdir -p {})",
                        crate::templates::shell_quote(&name)
                    ),
                ));
            }
            break;
        };
        if !info.is_dir {
            problems.push(Check::missing(
                CheckKind::LocalRoot,
                &name,
                WHY,
                format!("{} is not a directory", dir.display()),
                "set APPGRID_LOCAL_ROOT to a directory, e.g. /var/tmp/appgrid-local",
            ));
            break;
        }
        let blocked: Vec<(&str, char)> = accounts
            .iter()
            .filter_map(|a| match search_bit(&info, a) {
                (_, true) => None,
                (class, false) => Some((a.name.as_str(), class)),
            })
            .collect();
        if blocked.is_empty() {
            continue;
        }
        let mut classes: Vec<char> = blocked.iter().map(|(_, c)| *c).collect();
        classes.sort_unstable();
        classes.dedup();
        let who: Vec<&str> = blocked.iter().map(|(n, _)| *n).collect();
        problems.push(Check::missing(
            CheckKind::LocalRoot,
            &name,
            WHY,
            format!(
                "{} (mode {:04o}, owner uid {}, group gid {}) cannot be entered by {}, so they cannot reach APPGRID_LOCAL_ROOT {name}",
                dir.display(),
                info.mode,
                info.uid,
                info.gid,
                who.join(", ")
            ),
            format!(
                "chmod {}+x {} (or set APPGRID_LOCAL_ROOT to a directory every user can enter, e.g. /var/tmp/appgrid-local)",
                classes.iter().collect::<String>(),
                crate::templates::shell_quote(&dir.display().to_string())
            ),
        ));
    }
    if problems.is_empty() {
        vec![Check::ok(
            CheckKind::LocalRoot,
            &name,
            WHY,
            format!("reachable by {}", users.join(", ")),
        )]
    } else {
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_walk_down_from_the_root_directory() {
        let p: Vec<String> = prefixes(Path::new("/var/tmp/./x/../y"))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            p,
            [
                "/",
                "/var",
                "/var/tmp",
                "/var/tmp/x",
                "/var/tmp",
                "/var/tmp/y"
            ]
        );
    }

    #[test]
    fn the_class_that_applies_decides() {
        let dir = |uid, gid, mode| PathInfo {
            uid,
            gid,
            mode,
            is_dir: true,
        };
        let pg = Account {
            name: "postgres".into(),
            uid: 104,
            gid: 110,
            groups: vec![109],
        };
        assert_eq!(search_bit(&dir(0, 0, 0o700), &pg), ('o', false));
        assert_eq!(search_bit(&dir(0, 0, 0o701), &pg), ('o', true));
        // Owner bits apply to the owner even when others may pass.
        assert_eq!(search_bit(&dir(104, 0, 0o011), &pg), ('u', false));
        assert_eq!(search_bit(&dir(0, 109, 0o710), &pg), ('g', true));
        assert_eq!(search_bit(&dir(0, 110, 0o701), &pg), ('g', false));
    }
}
