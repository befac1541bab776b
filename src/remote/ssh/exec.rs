//! `run`: one channel, `sh -s`, the script on stdin, output streamed by line;
//! a script silent for longer than the transport's inactivity limit is
//! stopped, and the error names the step, the machine and its last line.

use russh::ChannelMsg;

use super::SshTransport;
use crate::remote::{LogSink, Redactor, RemoteError, ScriptOutput, tail};

/// Splits one stream into lines, redacts them, logs them and keeps them.
struct Lines<'a> {
    host: &'a str,
    stream: &'static str,
    redactor: &'a Redactor,
    log: Option<&'a LogSink>,
    pending: Vec<u8>,
    text: String,
}

impl<'a> Lines<'a> {
    fn new(t: &'a SshTransport, stream: &'static str) -> Self {
        Lines {
            host: &t.host,
            stream,
            redactor: &t.redactor,
            log: t.log.as_ref(),
            pending: Vec::new(),
            text: String::new(),
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.emit(&line[..line.len() - 1]);
        }
    }

    /// The last complete line emitted, or what is pending of one.
    fn last_line(&self) -> String {
        if !self.pending.is_empty() {
            let line = String::from_utf8_lossy(&self.pending);
            return self.redactor.redact(line.trim_end_matches('\r'));
        }
        self.text.lines().last().unwrap_or_default().to_string()
    }

    fn finish(mut self) -> String {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
        self.text
    }

    fn emit(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = self
            .redactor
            .redact(line.strip_suffix('\r').unwrap_or(&line));
        if let Some(log) = self.log {
            log(self.host, self.stream, &line);
        }
        self.text.push_str(&line);
        self.text.push('\n');
    }
}

fn signal_name(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

pub(super) async fn run(
    t: &SshTransport,
    step: &str,
    script: &str,
) -> Result<ScriptOutput, RemoteError> {
    let _permit = t
        .sessions
        .acquire()
        .await
        .map_err(|e| t.io("connection closed", e))?;
    let channel = t
        .open_session()
        .await
        .map_err(|e| t.io(&format!("cannot open a session for `{step}`"), e))?;
    let (mut read, write) = channel.split();
    write
        .exec(true, "sh -s")
        .await
        .map_err(|e| t.io(&format!("cannot start `{step}`"), e))?;
    // Feed stdin while reading: a script with much output must not block on
    // a full window while its stdin is still being written.
    let script = script.as_bytes().to_vec();
    let writer = tokio::spawn(async move {
        let _ = write.data_bytes(script).await;
        let _ = write.eof().await;
        write
    });

    let mut out = Lines::new(t, "out");
    let mut err = Lines::new(t, "err");
    let mut status: Option<String> = None;
    let mut refused = false;
    // Which stream spoke last, for the stalled error's "last output".
    let mut last_was_err = false;
    loop {
        let msg = match tokio::time::timeout(t.script_inactivity, read.wait()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(_) => {
                let last_line = if last_was_err {
                    err.last_line()
                } else {
                    out.last_line()
                };
                // Ask sshd to kill the script, then close its session.
                drop(read);
                if let Ok(Ok(w)) =
                    tokio::time::timeout(std::time::Duration::from_secs(5), writer).await
                {
                    let _ = w.signal(russh::Sig::KILL).await;
                    let _ = w.close().await;
                }
                return Err(RemoteError::Stalled {
                    host: t.host.clone(),
                    step: t.redactor.redact(step),
                    idle_s: t.script_inactivity.as_secs(),
                    last_line,
                });
            }
        };
        match msg {
            ChannelMsg::Data { data } => {
                last_was_err = false;
                out.push(&data)
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                last_was_err = true;
                err.push(&data)
            }
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status.to_string()),
            ChannelMsg::ExitSignal { signal_name: s, .. } => {
                status = Some(format!("signal {}", signal_name(&s)))
            }
            ChannelMsg::Failure => {
                refused = true;
                break;
            }
            _ => {}
        }
    }
    let write = writer.await.ok();
    let stdout = out.finish();
    let stderr = err.finish();
    drop(write);
    if refused {
        return Err(t.io(
            &format!("cannot start `{step}`"),
            "the server refused to run `sh -s`",
        ));
    }
    let status = match status {
        Some(s) if s == "0" => return Ok(ScriptOutput { stdout, stderr }),
        Some(s) if s.starts_with("signal") => s,
        Some(code) => format!("exit status {code}"),
        None => {
            return Err(t.io(
                &format!("`{step}` did not finish"),
                format!(
                    "the connection closed before an exit status arrived{}",
                    match tail(&stderr, 5) {
                        s if s.is_empty() => String::new(),
                        s => format!(" (stderr: {s})"),
                    }
                ),
            ));
        }
    };
    Err(RemoteError::Script {
        host: t.host.clone(),
        step: t.redactor.redact(step),
        status,
        stderr_tail: tail(&stderr, 5),
    })
}
