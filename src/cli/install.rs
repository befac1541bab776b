//! `appgrid doctor --install`: the missing Debian packages, through apt-get,
//! as root or through sudo, after saying exactly what will run.
//!
//! Installing must not leave the packages' own services running: appgrid
//! runs its own Postgres clusters, memcached and HAProxy on loopback
//! addresses. So the install runs with a `policy-rc.d` that forbids service
//! starts (one already there is put back afterwards), and then the services
//! of the packages just installed are stopped and disabled, and the Postgres
//! cluster Debian creates on install is stopped and set to start manually.

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use appgrid::preflight::{Host, ThisMachine};
use appgrid::templates::shell_quote;

use super::Failure;
use super::term::errln;

/// The system services that come with a package, as their units are named.
fn services(package: &str) -> Option<&'static str> {
    match package {
        "memcached" => Some("memcached"),
        "haproxy" => Some("haproxy"),
        _ => None,
    }
}

/// `postgresql-15` → `15`: the cluster version its install creates.
fn postgres_version(package: &str) -> Option<&str> {
    package
        .strip_prefix("postgresql-")
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// The shell script that installs `packages` (run as root).
pub fn script(packages: &[String]) -> String {
    let quoted: Vec<String> = packages.iter().map(|p| shell_quote(p)).collect();
    let services: Vec<&str> = packages.iter().filter_map(|p| services(p)).collect();
    let clusters: Vec<&str> = packages
        .iter()
        .filter_map(|p| postgres_version(p))
        .collect();
    let mut s = String::from(
        r#"set -eu
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
kept=
if [ -e "$policy" ]; then kept=$(mktemp); cp -p "$policy" "$kept"; fi
restore() { if [ -n "$kept" ]; then mv -f "$kept" "$policy"; else rm -f "$policy"; fi; }
trap restore EXIT
trap 'exit 130' INT TERM
# No package may start its own service during the install.
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 0755 "$policy"
"#,
    );
    for v in &clusters {
        s.push_str(&format!(
            "had_cluster_{v}=no; [ -d /etc/postgresql/{v}/main ] && had_cluster_{v}=yes\n"
        ));
    }
    s.push_str("apt-get update\n");
    s.push_str(&format!("apt-get install -y {}\n", quoted.join(" ")));
    for service in &services {
        s.push_str(&format!(
            r#"# {service}: appgrid runs its own; the package's stays stopped and disabled.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now {service} || true
else
    update-rc.d {service} disable || true
    service {service} stop || true
fi
"#
        ));
    }
    for v in &clusters {
        s.push_str(&format!(
            r#"# The cluster Debian creates with the package: stopped, and started only by hand.
if [ "$had_cluster_{v}" = no ] && [ -d /etc/postgresql/{v}/main ]; then
    pg_ctlcluster {v} main stop 2>/dev/null || true
    echo manual > /etc/postgresql/{v}/main/start.conf
fi
"#
        ));
    }
    s
}

/// What the user is told before anything runs.
fn announcement(packages: &[String], via_sudo: bool) -> String {
    let services: Vec<&str> = packages.iter().filter_map(|p| services(p)).collect();
    let clusters: Vec<&str> = packages
        .iter()
        .filter_map(|p| postgres_version(p))
        .collect();
    let mut out = format!(
        "appgrid will run, as root{}:\n  apt-get update\n  apt-get install -y {}\nwith /usr/sbin/policy-rc.d refusing every service start meanwhile",
        if via_sudo { " (through sudo)" } else { "" },
        packages.join(" ")
    );
    if !services.is_empty() {
        out.push_str(&format!(
            "; then stop and disable the packages' own {} (appgrid runs its own)",
            services.join(", ")
        ));
    }
    for v in clusters {
        out.push_str(&format!(
            "; then stop the Postgres {v} cluster Debian creates and set it to start by hand"
        ));
    }
    out.push('.');
    out
}

/// Ask on the terminal; refuse without one unless `yes`.
fn confirm(yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message(
            "refusing to install without confirmation: stdin is not a terminal; pass --yes".into(),
        ));
    }
    super::term::write_stderr(format_args!("Install? Only 'yes' will be accepted: "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() != "yes" {
        return Err(Failure::Message(
            "install cancelled; nothing was changed".into(),
        ));
    }
    Ok(())
}

/// Install `packages`, saying first what runs. apt-get's output goes to
/// stderr, so `doctor --json` keeps a clean stdout.
pub fn run(packages: &[String], yes: bool) -> Result<(), Failure> {
    let root = ThisMachine.euid() == Some(0);
    let sudo = if root {
        None
    } else {
        Some(ThisMachine.program("sudo").ok_or_else(|| {
            Failure::Message(format!(
                "installing packages takes root, and sudo is not installed; as root, run: apt-get install {}",
                packages.join(" ")
            ))
        })?)
    };
    errln!("{}", announcement(packages, sudo.is_some()));
    confirm(yes)?;
    let mut command = match &sudo {
        Some(sudo) => {
            let mut c = Command::new(sudo);
            c.arg("sh");
            c
        }
        None => Command::new("sh"),
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Failure::Message(format!("cannot pass stderr to apt-get: {e}")))?;
    let status = command
        .arg("-c")
        .arg(script(packages))
        .stdout(Stdio::from(stderr))
        .status()
        .map_err(|e| Failure::Message(format!("cannot run the install: {e}")))?;
    if !status.success() {
        return Err(Failure::Message(format!(
            "the install failed ({status}); see apt-get's output above"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_guards_services_and_quotes_packages() {
        let s = script(&[
            "haproxy".into(),
            "postgresql-15".into(),
            "python3-psycopg2".into(),
        ]);
        let policy = s.find("exit 101").unwrap();
        let install = s
            .find("apt-get install -y haproxy postgresql-15 python3-psycopg2\n")
            .unwrap();
        assert!(policy < install, "{s}");
        assert!(s.contains("trap restore EXIT"), "{s}");
        assert!(s.contains("systemctl disable --now haproxy"), "{s}");
        assert!(!s.contains("memcached"), "{s}");
        assert!(
            s.find("had_cluster_15=no").unwrap() < install,
            "the cluster is looked for before the install: {s}"
        );
        assert!(s.contains("pg_ctlcluster 15 main stop"), "{s}");
        assert!(
            s.contains("echo manual > /etc/postgresql/15/main/start.conf"),
            "{s}"
        );
    }

    #[test]
    fn the_announcement_says_what_runs_and_what_is_stopped() {
        assert_eq!(
            announcement(&["memcached".into(), "slony1-2-bin".into()], true),
            "appgrid will run, as root (through sudo):\n  apt-get update\n  apt-get install -y memcached slony1-2-bin\nwith /usr/sbin/policy-rc.d refusing every service start meanwhile; then stop and disable the packages' own memcached (appgrid runs its own)."
        );
    }
}
