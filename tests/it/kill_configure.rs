//! Issue 10: `kill -9` of an apply while it configures machines over SSH on
//! the host farm; the next apply takes the dead holder's lock over, finishes,
//! and the app serves.

use std::io::BufRead;
use std::process::Stdio;

use super::cli::{appgrid, scratch, text};
use super::farm::Farm;
use super::hosts_e2e::{LISTEN, WEB_PORT, blog_roles, note_round_trip};

#[test]
fn kill_9_while_configuring_then_apply_finishes_and_the_app_serves() {
    let farm = Farm::new(4);
    let app = "farmkill";
    let dir = scratch(app);
    let hosts: Vec<String> = farm
        .hosts()
        .iter()
        .map(|h| format!("\"{}\"", h.addr))
        .collect();
    let manifest = dir.join("appgrid.toml");
    std::fs::write(
        &manifest,
        format!(
            "[app]\nname = \"{app}\"\n\n[provider]\nkind = \"hosts\"\nssh_user = \"root\"\n\
             ssh_key = \"{}\"\nhosts = [{}]\n{}",
            farm.client_key().display(),
            hosts.join(", "),
            blog_roles(1, 0, WEB_PORT)
        ),
    )
    .unwrap();
    let mut child = appgrid()
        .args(["apply", "--yes"])
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        // The database's configuration is under way on its machine.
        if line.starts_with("db.primary.config: configure") {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the apply was killed mid-configure:\n{seen}"
    );
    assert!(seen.contains("db.primary.config: configure"), "{seen}");

    let out = appgrid()
        .args(["apply", "--yes"])
        .arg(&manifest)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("note: took over the state lock from pid"),
        "{stderr}"
    );
    let plan = appgrid()
        .args(["plan", "--detailed-exitcode"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!(".appgrid/{app}/state.json"))).unwrap(),
    )
    .unwrap();
    let lb = state["resources"]["lb"]["attributes"]["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    note_round_trip(&format!("{lb}:{LISTEN}"), "after a kill -9");
    let out = appgrid()
        .args(["destroy", "--yes", "--allow-data-loss"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
