//! The supervisor library (templates/lib/service.sh) through the local transport.

use super::local::LocalTransport;
use super::{Redactor, Remote};

fn script(root: &std::path::Path, body: &str) -> String {
    let lib = crate::templates::EMBEDDED
        .iter()
        .find(|(n, _)| *n == "lib/service.sh")
        .map(|(_, s)| *s)
        .unwrap();
    format!(
        "set -eu\nROOT={}\n{lib}\n{body}\n",
        crate::templates::shell_quote(root.to_str().unwrap())
    )
}

#[test]
fn starts_once_stops_and_reports() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let root = std::env::temp_dir().join(format!("appgrid-svc-{}", std::process::id()));
        let t = LocalTransport::new("local", Redactor::new());
        let start = script(&root, "svc_start sleeper root sleep 30\nsvc_start sleeper root sleep 30\nsvc_running sleeper && echo running");
        let out = t.run("start", &start).await.unwrap();
        assert_eq!(out.stdout, "running\n");
        let pid = std::fs::read_to_string(root.join("run/appgrid/sleeper.pid")).unwrap();
        let out = t.run("stop", &script(&root, "svc_stop sleeper\nsvc_running sleeper || echo stopped")).await.unwrap();
        assert_eq!(out.stdout, "stopped\n");
        assert!(unsafe { libc::kill(pid.trim().parse().unwrap(), 0) } != 0, "process gone");
        let err = t.run("wait", &script(&root, "wait_for 1 'a miracle' false")).await.unwrap_err();
        assert!(err.to_string().ends_with("timed out after 1s waiting for a miracle"), "{err}");
        let _ = std::fs::remove_dir_all(root);
    });
}
