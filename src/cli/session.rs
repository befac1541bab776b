//! A console's process attached to the user: on a terminal, the terminal is
//! the process's (an interactive session; what it prints is not read, so not
//! redacted); otherwise its output is read a line at a time, redacted and
//! printed as it comes, and its exit status is appgrid's.

use std::io::IsTerminal;
use std::process::{ExitCode, Stdio};

use appgrid::remote::console::Console;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::Failure;
use super::term::{self, outln};

/// Whether stdin and stdout are both a terminal: then the remote side gets a
/// PTY and the session is the user's.
pub fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Run the console's process to its end; its exit status (a signal: 128+N,
/// as a shell says).
pub async fn attach(mut console: Console, tty: bool, what: &str) -> Result<ExitCode, Failure> {
    let failed = |e: std::io::Error| Failure::Message(format!("{what}: cannot start: {e}"));
    let status = if tty {
        console.stdio(Stdio::inherit(), Stdio::inherit(), Stdio::inherit());
        let mut child = console.command.spawn().map_err(failed)?;
        // Ctrl-C belongs to the remote side now: ssh passes it on through
        // the PTY; a local child gets it from the terminal itself.
        let ignore = tokio::spawn(async {
            loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    break;
                }
            }
        });
        let status = child.wait().await;
        ignore.abort();
        status
    } else {
        console.stdio(Stdio::inherit(), Stdio::piped(), Stdio::piped());
        let mut child = console.command.spawn().map_err(failed)?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let r = console.redactor.clone();
        let out = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                outln!("{}", r.redact(&line));
            }
        });
        let r = console.redactor.clone();
        let err = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                term::write_stderr(format_args!("{}\n", r.redact(&line)));
            }
        });
        let status = child.wait().await;
        let _ = out.await;
        let _ = err.await;
        status
    };
    let status = status.map_err(|e| Failure::Message(format!("{what}: {e}")))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
