//! `put`: SFTP to a temporary name beside the target, then chmod + rename.

use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::AsyncWriteExt;

use super::SshTransport;
use crate::remote::{Remote, RemoteError};
use crate::templates::shell_quote;

pub(super) async fn put(
    t: &SshTransport,
    path: &str,
    contents: &[u8],
    mode: u32,
) -> Result<(), RemoteError> {
    let step = format!("put {path}");
    let target = Path::new(path);
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| t.io(&format!("cannot put {path}"), "the path names no file"))?;
    let dir = target
        .parent()
        .and_then(|d| d.to_str())
        .filter(|d| !d.is_empty())
        .unwrap_or(".");
    let tmp = format!(
        "{}/.{name}.appgrid-tmp-{:08x}",
        dir.trim_end_matches('/'),
        fastrand::u32(..)
    );
    t.run(&step, &format!("mkdir -p -- {}", shell_quote(dir)))
        .await?;

    upload(t, &tmp, contents, mode)
        .await
        .map_err(|e| t.io(&format!("cannot write {path}"), e))?;

    let finish = format!(
        "chmod {mode:o} -- {tmp} && mv -f -- {tmp} {path} || {{ rc=$?; rm -f -- {tmp}; exit $rc; }}",
        tmp = shell_quote(&tmp),
        path = shell_quote(path),
    );
    t.run(&step, &finish).await?;
    Ok(())
}

async fn upload(t: &SshTransport, tmp: &str, contents: &[u8], mode: u32) -> Result<(), String> {
    let _permit = t.sessions.acquire().await.map_err(|e| e.to_string())?;
    let channel = t
        .open_session()
        .await
        .map_err(|e| format!("cannot open a session: {e}"))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| format!("cannot start SFTP: {e}"))?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| format!("cannot start SFTP: {e}"))?;
    let result = async {
        // Created with its final mode, so a secret is never readable by others
        // (umask can only remove bits; chmod afterwards sets them exactly).
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        let mut file = sftp
            .open_with_flags_and_attributes(
                tmp,
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                attrs,
            )
            .await
            .map_err(|e| format!("cannot create {tmp}: {e}"))?;
        file.write_all(contents)
            .await
            .map_err(|e| format!("cannot write {tmp}: {e}"))?;
        file.flush()
            .await
            .map_err(|e| format!("cannot write {tmp}: {e}"))?;
        let _ = file.sync_all().await;
        file.shutdown()
            .await
            .map_err(|e| format!("cannot close {tmp}: {e}"))?;
        Ok(())
    }
    .await;
    let _ = sftp.close().await;
    result
}
