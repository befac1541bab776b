//! Looking into the running app (issue 9): `run` streams its output and
//! takes a terminal, its arguments reach the machine quoted; `ssh` to any
//! machine (`local`: a shell in the machine's directory; on the farm: OpenSSH
//! held to the pinned host key, a changed key refused); `db psql` as the
//! app's user with the password in no command line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use super::cli::{appgrid, text};
use super::releases::Blog;

/// `appgrid ARGS… MANIFEST TAIL…` for the blog, not waited for.
fn spawn(blog: &Blog, args: &[&str], tail: &[&str]) -> std::process::Child {
    appgrid()
        .args(args)
        .arg(&blog.manifest)
        .args(tail)
        .env("APPGRID_LOCAL_ROOT", &blog.machines)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `appgrid ARGS…` on a terminal: under `script`, which gives it a PTY.
pub(super) fn on_a_terminal(env: &[(&str, &std::path::Path)], args: &[String]) -> Output {
    let line = std::iter::once(env!("CARGO_BIN_EXE_appgrid").to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"]).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Every process's command line on this host, NUL-separated arguments joined by spaces.
pub(super) fn command_lines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| p.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ssh_and_psql_reach_the_blogs_machines_on_the_local_provider() {
    let mut blog = Blog::new("console-blog");
    blog.write("app", "/usr/bin/python3 app.py");
    let out = blog.run(&["apply", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Streamed: the first line arrives while the command still runs.
    let mut child = spawn(
        &blog,
        &["run"],
        &["--", "sh", "-c", "echo first; sleep 3; echo second"],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only when the command had ended"
    );
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    assert!(child.wait().unwrap().success());

    // Exit statuses are the command's.
    assert_eq!(blog.run(&["run", "--", "false"]).status.code(), Some(1));
    let out = blog.run(&["run", "--on", "web[1]", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));

    // Arguments reach the machine as they were written.
    let pwned = blog.dir.join("pwned");
    let hostile = [
        format!("'; touch {}'", pwned.display()),
        format!("$(touch {})", pwned.display()),
        format!("`touch {}`", pwned.display()),
    ];
    for arg in &hostile {
        let out = blog.run(&["run", "--", "printf", "%s\\n", arg]);
        assert_eq!(
            text(&out.stdout),
            format!("{arg}\n"),
            "{}",
            text(&out.stderr)
        );
        assert!(!pwned.exists(), "{arg} ran as shell code");
    }

    // Not a web server: a clear error, nothing run.
    let out = blog.run(&["run", "--on", "db.primary", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "db.primary is not a web server with a release; the web servers are: web[0], web[1]"
        ),
        "{}",
        text(&out.stderr)
    );

    // On a terminal, the command has one too (the local provider's is ours).
    let manifest = blog.manifest.display().to_string();
    let out = on_a_terminal(
        &[("APPGRID_LOCAL_ROOT", &blog.machines)],
        &["run".into(), manifest.clone(), "--".into(), "tty".into()],
    );
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // ssh: a shell in the machine's directory, on any machine.
    let lb_root = blog
        .machines
        .join("itrel/machines")
        .join(blog.state()["resources"]["lb"]["id"].as_str().unwrap());
    let out = blog.run(&["ssh", "lb", "--", "pwd"]);
    assert_eq!(
        text(&out.stdout).trim(),
        lb_root.display().to_string(),
        "{}",
        text(&out.stderr)
    );
    let out = blog.run(&["ssh", "db.primary", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let out = blog.run(&["ssh", "web[5]", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("web[5] is not a machine of this app; its machines are: ")
            && text(&out.stderr).contains("db.primary"),
        "{}",
        text(&out.stderr)
    );

    // db psql: the app's user on its database; the password in no command line.
    let out = blog.run(&[
        "db",
        "psql",
        "--",
        "-A",
        "-t",
        "-c",
        "select current_user, 40 + 2",
    ]);
    assert_eq!(text(&out.stdout), "itrel|42\n", "{}", text(&out.stderr));
    let password = blog.attr("db.primary.config", "password");
    let mut slow = spawn(&blog, &["db", "psql"], &["--", "-c", "select pg_sleep(4)"]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let seen = command_lines();
    assert!(
        seen.iter().any(|c| c.contains("pg_sleep(4)")),
        "psql was not running yet: {seen:?}"
    );
    assert!(
        !seen.iter().any(|c| c.contains(&password)),
        "the password is in a command line"
    );
    assert!(slow.wait().unwrap().success());
    let out = blog.run(&["db", "psql", "--replica", "0", "--", "-c", "select 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("db.replica[0] is not in state; the replicas are: none"),
        "{}",
        text(&out.stderr)
    );
    logs_flow(&mut blog).await;
    assert!(
        !blog.printed.contains(&password),
        "the password was printed"
    );
}

/// `logs`: web servers' lines merged by time, `--since`, service logs by
/// address, unknown addresses refused, `-f` ended by SIGINT with nothing left
/// running.
async fn logs_flow(blog: &mut Blog) {
    use super::http::http;
    use std::time::Duration;
    let web =
        |blog: &Blog, i: usize| format!("{}:8080", blog.attr(&format!("web[{i}]"), "private_ip"));
    // 111 on web[0], 222 on web[1], 333 on web[0], a second apart.
    for (i, path) in [
        (0, "/notes/111111"),
        (1, "/notes/222222"),
        (0, "/notes/333333"),
    ] {
        http(&web(blog, i), "GET", path, "").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let merged = blog.ok(&["logs", "-n", "50"]);
    let position = |needle: &str| {
        merged
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in:\n{merged}"))
    };
    assert!(
        position("111111") < position("222222") && position("222222") < position("333333"),
        "not merged by time:\n{merged}"
    );
    assert!(
        merged
            .lines()
            .nth(position("222222"))
            .unwrap()
            .starts_with("web[1] | ")
    );

    // --since: a line from 8 s ago is left out, one from now is shown.
    http(&web(blog, 0), "GET", "/notes/444444", "")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    http(&web(blog, 0), "GET", "/notes/555555", "")
        .await
        .unwrap();
    let recent = blog.ok(&["logs", "web[0]", "--since", "4s"]);
    assert!(
        recent.contains("555555") && !recent.contains("444444"),
        "{recent}"
    );

    // Service logs by address: Postgres (and slon) on the database machine.
    let services = blog.ok(&["logs", "db.primary", "lb", "-n", "5"]);
    assert!(
        services
            .lines()
            .any(|l| l.starts_with("db.primary postgres | ")),
        "{services}"
    );
    for bad in ["web[9]", "db.replica[0]", "db.primary.config"] {
        let out = blog.run(&["logs", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            text(&out.stderr).contains(&format!("{bad} is not a")),
            "{}",
            text(&out.stderr)
        );
    }

    // -f: follows, then SIGINT ends it cleanly, with no `tail` left behind.
    let follow = spawn(blog, &["logs"], &["-f", "-n", "0", "web[0]", "db.primary"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    http(&web(blog, 0), "GET", "/notes/666666", "")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(follow.id() as i32, libc::SIGINT);
    }
    let out = follow.wait_with_output().unwrap();
    let followed = text(&out.stdout);
    assert!(out.status.success(), "{followed}{}", text(&out.stderr));
    assert!(
        followed
            .lines()
            .any(|l| l.starts_with("web[0]") && l.contains("666666")),
        "{followed}"
    );
    blog.printed.push_str(&followed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let machines = blog.machines.display().to_string();
    let left: Vec<String> = command_lines()
        .into_iter()
        .filter(|c| c.contains("tail") && c.contains(&machines))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The console scripts in /tmp (`/tmp/appgrid-console-UUID.sh`).
fn console_scripts() -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("appgrid-console-") && n.ends_with(".sh"))
        .collect()
}

/// A console's command run to its end with piped output.
async fn finish(console: appgrid::remote::console::Console) -> Output {
    let mut console = console;
    console.stdio(Stdio::null(), Stdio::piped(), Stdio::piped());
    let out = console.command.output().await.unwrap();
    drop(console);
    out
}

/// Over SSH a console is OpenSSH's `ssh`, held to the key russh checked:
/// direct, through a proxy command, through a jump host, with a PTY when
/// asked; once the host's key changes, OpenSSH itself refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_consoles_reach_farm_hosts_and_refuse_a_changed_host_key() {
    use appgrid::remote::Redactor;
    use appgrid::remote::Remote;
    use appgrid::remote::ssh::SshTransport;
    let mut farm = super::farm::Farm::new(2);
    let before = console_scripts();
    let total = std::time::Duration::from_secs(30);
    let connect = |target| SshTransport::connect(target, Redactor::new(), None, total);

    let mut pinned = farm.target(0);
    pinned.pinned_host_key = Some(farm.host_key(0));
    let direct = connect(pinned.clone()).await.unwrap();
    let out = finish(
        direct
            .console("hostname; tty || true", false)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "h0\nnot a tty\n",
        "{}",
        text(&out.stderr)
    );
    assert!(out.status.success());
    let out = finish(direct.console("tty", true).await.unwrap()).await;
    assert!(
        text(&out.stdout).starts_with("/dev/pts/"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = finish(direct.console("exit 9", false).await.unwrap()).await;
    assert_eq!(out.status.code(), Some(9));

    let mut proxied = farm.target(1);
    proxied.proxy_command = Some("socat - TCP:%h:%p".to_string());
    let t = connect(proxied).await.unwrap();
    let out = finish(t.console("hostname", false).await.unwrap()).await;
    assert_eq!(text(&out.stdout), "h1\n", "{}", text(&out.stderr));

    let mut jumped = farm.target(1);
    jumped.jump = Some(Box::new(pinned.clone()));
    let t = connect(jumped).await.unwrap();
    let out = finish(t.console("hostname", false).await.unwrap()).await;
    assert_eq!(text(&out.stdout), "h1\n", "{}", text(&out.stderr));

    // Every script file removed itself (the farm's hosts share this /tmp).
    let left: Vec<_> = console_scripts()
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The key changes after russh checked it: OpenSSH refuses on its own.
    let stale = direct.console("hostname", false).await.unwrap();
    farm.regenerate_host_key(0);
    let out = finish(stale).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("Host key verification failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty());
    // That script never ran, so it is still there (0600): ours to remove.
    for s in console_scripts()
        .into_iter()
        .filter(|s| !before.contains(s))
    {
        let _ = std::fs::remove_file(std::path::Path::new("/tmp").join(s));
    }
}

/// `appgrid ssh` on the `hosts` provider: one command on a machine, a
/// terminal when there is one, and a machine whose host key changed refused.
#[test]
fn appgrid_ssh_reaches_hosts_and_refuses_a_changed_key() {
    use super::hosts_e2e::{LISTEN, WEB_PORT};
    let mut farm = super::farm::Farm::new(2);
    let dir = super::cli::scratch("console-hosts");
    let manifest = dir.join("appgrid.toml");
    // Static files: `GET /health` answers 200 (the file exists).
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("health"), "ok\n").unwrap();
    let hosts: Vec<String> = farm
        .hosts()
        .iter()
        .map(|h| format!("\"{}\"", h.addr))
        .collect();
    std::fs::write(
        &manifest,
        format!(
            "[app]\nname = \"consh\"\n[provider]\nkind = \"hosts\"\nssh_user = \"root\"\n\
             ssh_key = \"{key}\"\nhosts = [{hosts}]\n\
             [release]\npath = \"{app}\"\nstart = 'exec /usr/bin/python3 -m http.server \"$PORT\" --bind \"$ADDR\"'\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = {WEB_PORT}\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = {LISTEN}\n",
            key = farm.client_key().display(),
            hosts = hosts.join(", "),
            app = app.display(),
        ),
    )
    .unwrap();
    let run = |args: &[&str], tail: &[&str]| {
        appgrid()
            .args(args)
            .arg(&manifest)
            .args(tail)
            .output()
            .unwrap()
    };
    let out = run(&["apply", "--yes"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".appgrid/consh/state.json")).unwrap(),
    )
    .unwrap();
    let web_addr = state["resources"]["web[0]"]["attributes"]["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    let web = farm
        .hosts()
        .iter()
        .position(|h| h.addr == web_addr)
        .unwrap();

    let out = run(&["ssh"], &["web[0]", "--", "hostname"]);
    assert_eq!(
        text(&out.stdout),
        format!("h{web}\n"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["ssh"], &["lb", "--", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = on_a_terminal(
        &[],
        &[
            "ssh".into(),
            manifest.display().to_string(),
            "web[0]".into(),
            "--".into(),
            "tty".into(),
        ],
    );
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    farm.regenerate_host_key(web);
    let out = run(&["ssh"], &["web[0]", "--", "hostname"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("host key of web[0]") && stderr.contains("changed"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
