//! Interactive processes on a machine (`appgrid run`, `ssh`, `db psql`): a
//! local child process whose stdin, stdout and stderr are the user's (or
//! pipes appgrid streams), running a script on the machine.
//!
//! The script never travels in a command line: it is written to a 0600 file
//! (a temporary file here for the `local` transport; over SFTP to
//! `/tmp/appgrid-console-UUID.sh` for SSH) that removes itself first, and
//! the command is `sh FILE`. So a value in it (a password for `db psql`)
//! shows in no process list, and stdin stays free for the user.
//!
//! Over SSH the child is OpenSSH's `ssh`, not russh: a terminal session needs
//! a PTY, window-size changes, raw mode and escape handling, which `ssh`
//! does right. It is held to what the russh connection already checked: a
//! generated `ssh_config` and `known_hosts` (0600, in a 0700 temporary
//! directory that lives as long as the [`Console`]) hold exactly the key the
//! machine presented (which russh compared with the pin in state), with
//! `StrictHostKeyChecking yes`, the same private key, and the manifest's proxy
//! command or jump host (whose key is pinned the same way).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// A process to start on a machine, and the files it needs while it runs.
pub struct Console {
    pub command: Command,
    /// The transport's redactor: for whatever the process prints that
    /// appgrid reads (not what goes straight to a terminal).
    pub redactor: super::Redactor,
    /// Temporary files (the script, the OpenSSH configuration): removed when
    /// the console is dropped, so keep it until the child has exited.
    _files: Vec<tempfile::TempDir>,
}

impl Console {
    pub fn new(command: Command, redactor: super::Redactor, files: Vec<tempfile::TempDir>) -> Self {
        Console {
            command,
            redactor,
            _files: files,
        }
    }

    /// Standard streams: the user's (`inherit`) or pipes appgrid reads.
    pub fn stdio(&mut self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> &mut Self {
        self.command.stdin(stdin).stdout(stdout).stderr(stderr);
        self
    }
}

/// The script as written to its file: it removes the file before anything
/// else, so nothing is left on the machine even when the session is cut.
pub fn script_file_text(script: &str) -> String {
    format!("rm -f \"$0\"\n{script}")
}

/// A 0700 temporary directory (0600 files inside).
pub fn private_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("appgrid-console-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
}

/// Write a 0600 file in `dir`.
pub fn write_private(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name))?;
    f.write_all(contents.as_bytes())
}

/// A value for `ssh_config`: double-quoted when it holds blanks or quotes.
pub fn config_value(value: &str) -> String {
    if value
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '#')
    {
        format!("\"{}\"", value.replace('"', ""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_removes_its_own_file_first() {
        assert_eq!(script_file_text("echo hi\n"), "rm -f \"$0\"\necho hi\n");
    }

    #[test]
    fn private_files_are_0600_in_a_0700_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_dir().unwrap();
        write_private(dir.path(), "known_hosts", "x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("known_hosts")), 0o600);
    }

    #[test]
    fn config_values_with_blanks_are_quoted() {
        assert_eq!(config_value("/k/id"), "/k/id");
        assert_eq!(config_value("/my keys/id"), "\"/my keys/id\"");
    }
}
