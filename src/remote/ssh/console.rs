//! A console over SSH: OpenSSH's `ssh` held to what this connection checked
//! (see [`crate::remote::console`] for why OpenSSH and not russh).

use super::SshTransport;
use super::connect::expand_proxy_command;
use crate::remote::RemoteError;
use crate::remote::console::{Console, config_value, private_dir, script_file_text, write_private};

/// The name OpenSSH knows the machine by (`Host`, `HostKeyAlias`): the
/// generated `known_hosts` has one line for it, whatever address or port.
const TARGET: &str = "appgrid-target";
const JUMP: &str = "appgrid-jump";

/// The `ssh_config` and `known_hosts` for `t`: every option that matters set,
/// none read from the user's own files.
pub(crate) fn openssh_files(t: &SshTransport, dir: &std::path::Path) -> (String, String) {
    let target = &t.target;
    let common = |config: &mut String, known: &str| {
        config.push_str(&format!(
            "  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  \
             CheckHostIP no\n  BatchMode yes\n  LogLevel ERROR\n",
            key = config_value(&target.key_path.display().to_string()),
            known = config_value(known),
        ));
    };
    let known_path = dir.join("known_hosts").display().to_string();
    let mut config = format!(
        "Host {TARGET}\n  HostName {}\n  Port {}\n  User {}\n  HostKeyAlias {TARGET}\n",
        target.addr,
        target.port,
        config_value(&target.user)
    );
    common(&mut config, &known_path);
    let mut known = format!("{TARGET} {}\n", t.presented_host_key.trim());
    if let Some(command) = &target.proxy_command {
        // OpenSSH expands `%` sequences again: ours are already replaced.
        let expanded = expand_proxy_command(command, target).replace('%', "%%");
        config.push_str(&format!("  ProxyCommand {expanded}\n"));
    }
    if let (Some(j), Some(jump)) = (&target.jump, &t.jump) {
        config.push_str(&format!("  ProxyJump {JUMP}\n"));
        config.push_str(&format!(
            "Host {JUMP}\n  HostName {}\n  Port {}\n  User {}\n  HostKeyAlias {JUMP}\n",
            j.addr,
            j.port,
            config_value(&j.user)
        ));
        common(&mut config, &known_path);
        known.push_str(&format!("{JUMP} {}\n", jump.presented_host_key.trim()));
    }
    (config, known)
}

pub(super) async fn openssh(
    t: &SshTransport,
    script: &str,
    tty: bool,
) -> Result<Console, RemoteError> {
    use crate::remote::Remote;
    let dir = private_dir().map_err(|e| t.io("cannot make a temporary directory", e))?;
    let (config, known) = openssh_files(t, dir.path());
    write_private(dir.path(), "ssh_config", &config)
        .and_then(|()| write_private(dir.path(), "known_hosts", &known))
        .map_err(|e| t.io("cannot write the OpenSSH configuration", e))?;
    let remote_path = format!("/tmp/appgrid-console-{}.sh", uuid::Uuid::new_v4().simple());
    t.put(&remote_path, script_file_text(script).as_bytes(), 0o600)
        .await?;
    let mut command = tokio::process::Command::new("ssh");
    command
        .arg("-F")
        .arg(dir.path().join("ssh_config"))
        .arg(if tty { "-tt" } else { "-T" })
        .arg(TARGET)
        .arg("sh")
        .arg(&remote_path)
        .kill_on_drop(true);
    Ok(Console::new(command, t.redactor.clone(), vec![dir]))
}
