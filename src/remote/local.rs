//! The `local` transport: scripts run on this machine with `sh -s`.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{LogSink, Redactor, Remote, RemoteError, ScriptOutput, tail};

/// This machine, named `host` in logs (e.g. its loopback address).
#[derive(Clone)]
pub struct LocalTransport {
    host: String,
    redactor: Redactor,
    log: Option<LogSink>,
    /// Extra environment for every script (e.g. the machine's root directory).
    env: Vec<(String, String)>,
}

impl LocalTransport {
    pub fn new(host: impl Into<String>, redactor: Redactor) -> Self {
        LocalTransport {
            host: host.into(),
            redactor,
            log: None,
            env: Vec::new(),
        }
    }

    pub fn with_log(mut self, log: LogSink) -> Self {
        self.log = Some(log);
        self
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The script in a private temporary file, run by `sh` with the
    /// machine's environment. This process's terminal is the machine's.
    fn console_here(&self, script: &str) -> Result<super::console::Console, RemoteError> {
        use super::console::{Console, private_dir, script_file_text, write_private};
        let dir = private_dir().map_err(|e| self.io("cannot make a temporary directory", e))?;
        write_private(dir.path(), "console.sh", &script_file_text(script))
            .map_err(|e| self.io("cannot write the console script", e))?;
        let mut command = tokio::process::Command::new("sh");
        command
            .arg(dir.path().join("console.sh"))
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        Ok(Console::new(command, self.redactor.clone(), vec![dir]))
    }

    fn io(&self, what: &str, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::Io {
            host: self.host.clone(),
            detail: self.redactor.redact(&format!("{what}: {e}")),
        }
    }
}

async fn collect(
    stream: impl tokio::io::AsyncRead + Unpin,
    host: String,
    name: &'static str,
    redactor: Redactor,
    log: Option<LogSink>,
) -> String {
    let mut lines = BufReader::new(stream).lines();
    let mut out = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = redactor.redact(&line);
        if let Some(log) = &log {
            log(&host, name, &line);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

impl Remote for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn console(
        &self,
        script: &str,
        _tty: bool,
    ) -> Result<super::console::Console, RemoteError> {
        self.console_here(script)
    }

    async fn run(&self, step: &str, script: &str) -> Result<ScriptOutput, RemoteError> {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().map_err(|e| self.io("cannot start sh", e))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let script = script.to_string();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(script.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
        let out = tokio::spawn(collect(
            child.stdout.take().expect("piped stdout"),
            self.host.clone(),
            "out",
            self.redactor.clone(),
            self.log.clone(),
        ));
        let err = tokio::spawn(collect(
            child.stderr.take().expect("piped stderr"),
            self.host.clone(),
            "err",
            self.redactor.clone(),
            self.log.clone(),
        ));
        let status = child
            .wait()
            .await
            .map_err(|e| self.io("waiting for sh", e))?;
        let _ = writer.await;
        let stdout = out.await.unwrap_or_default();
        let stderr = err.await.unwrap_or_default();
        if !status.success() {
            let status = match status.code() {
                Some(code) => format!("exit status {code}"),
                None => "a signal".to_string(),
            };
            return Err(RemoteError::Script {
                host: self.host.clone(),
                step: step.to_string(),
                status,
                stderr_tail: tail(&stderr, 5),
            });
        }
        Ok(ScriptOutput { stdout, stderr })
    }

    async fn put(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), RemoteError> {
        let target = Path::new(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.io(&format!("cannot create {}", dir.display()), e))?;
        }
        let tmp = target.with_file_name(format!(
            ".{}.appgrid-tmp",
            target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("file")
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)?;
            std::io::Write::write_all(&mut f, contents)?;
            f.sync_all()?;
            // An existing temp file keeps its old mode: set it explicitly.
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
            std::fs::rename(&tmp, target)
        };
        write().map_err(|e| self.io(&format!("cannot write {path}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn runs_scripts_streams_redacted_lines_and_reports_failures() {
        rt().block_on(async {
            let redactor = Redactor::new();
            redactor.add("pa55word-xyz");
            let lines = Arc::new(Mutex::new(Vec::<String>::new()));
            let sink = Arc::clone(&lines);
            let t = LocalTransport::new("127.0.1.1", redactor).with_log(Arc::new(
                move |h: &str, s: &str, l: &str| sink.lock().unwrap().push(format!("{h} {s} {l}")),
            ));
            let out = t
                .run("greet", "echo hello; echo pa55word-xyz >&2")
                .await
                .unwrap();
            assert_eq!(out.stdout, "hello\n");
            assert_eq!(out.stderr, "(sensitive)\n");
            let logged = lines.lock().unwrap().clone();
            assert!(
                logged.contains(&"127.0.1.1 out hello".to_string()),
                "{logged:?}"
            );
            assert!(logged.iter().all(|l| !l.contains("pa55word")), "{logged:?}");

            let err = t
                .run("fail", "echo 'using pa55word-xyz' >&2; exit 3")
                .await
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "on 127.0.1.1, `fail` failed with exit status 3: using (sensitive)"
            );
        });
    }

    #[test]
    fn puts_files_atomically_with_their_mode() {
        rt().block_on(async {
            let dir =
                std::env::temp_dir().join(format!("appgrid-local-put-{}", std::process::id()));
            let path = dir.join("etc/app.env");
            let t = LocalTransport::new("local", Redactor::new());
            t.put(path.to_str().unwrap(), b"PORT=8080\n", 0o600)
                .await
                .unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "PORT=8080\n");
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            t.put(path.to_str().unwrap(), b"PORT=9090\n", 0o640)
                .await
                .unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "PORT=9090\n");
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o640
            );
            let _ = std::fs::remove_dir_all(dir);
        });
    }
}
