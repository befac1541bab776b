//! The CLI as a newcomer meets it (issue 7): completions for bash, zsh and
//! fish; a closed pipe is no panic; `--json` says what the text says; colour
//! only on a terminal and never with NO_COLOR; `doctor --install` holds the
//! packages' services down; and the README's commands are what CI runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::cli::{appgrid, scratch, text};
use super::preflight::AwsApp;

fn completions(shell: &str) -> String {
    let out = appgrid().args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn completions_generate_for_bash_zsh_and_fish() {
    // bash: load the script and ask it to complete, as a shell would.
    let dir = scratch("completions");
    let script = dir.join("appgrid.bash");
    std::fs::write(&script, completions("bash")).unwrap();
    let complete = |words: &str, cword: u32| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _appgrid appgrid \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("appgrid do", 1), "doctor");
    let flags = complete("appgrid doctor --", 2);
    for flag in ["--install", "--yes", "--json", "--log-format"] {
        assert!(flags.split(' ').any(|f| f == flag), "{flag} not in {flags}");
    }
    // zsh and fish: their formats, with every subcommand.
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef appgrid\n"), "{zsh}");
    let fish = completions("fish");
    for sub in [
        "apply",
        "doctor",
        "completions",
        "status",
        "forget-host-key",
    ] {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(
            fish.lines()
                .any(|l| l.starts_with("complete -c appgrid")
                    && l.contains(&format!(" -a \"{sub}\""))),
            "fish lacks {sub}"
        );
    }
}

/// `appgrid plan big.toml | head -1`: exit 0, no panic, nothing on stderr.
#[test]
fn a_plan_into_a_closed_pipe_exits_0_quietly() {
    let dir = scratch("closed-pipe");
    let manifest = dir.join("big.toml");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog/appgrid.toml"),
    )
    .unwrap();
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let big = example.replacen("count = 2", "count = 3000", 1).replace(
        "path = \"../app\"",
        &format!("path = {:?}", app.display().to_string()),
    );
    assert_ne!(big, example);
    std::fs::write(&manifest, big).unwrap();
    let mut child = appgrid()
        .args(["plan", "--refresh=false", "--state"])
        .arg(dir.join("none.json"))
        .arg(&manifest)
        .env("HOME", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "appgrid will make these changes to blog:\n");
    // The reader is gone: the rest of the plan (half a megabyte) meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

/// Colour on a terminal (a pty from `script`), none with NO_COLOR, none in a pipe.
#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = scratch("colour");
    let run = |no_color: Option<&str>| {
        let mut c = Command::new("script");
        c.args(["-qec"])
            .arg(format!(
                "{} plan --refresh=false --state {} examples/blog/appgrid.toml",
                env!("CARGO_BIN_EXE_appgrid"),
                dir.join("none.json").display()
            ))
            .arg("/dev/null")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("HOME", &dir)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().expect("script runs (util-linux)");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let coloured = run(None);
    assert!(
        coloured.contains("\x1b[32m+\x1b[0m keypair"),
        "{coloured:?}"
    );
    // The preflight's warning (no SSH key here) is coloured too.
    assert!(
        coloured.contains("\x1b[33mwarning\x1b[0m: "),
        "{coloured:?}"
    );
    let plain = run(Some("1"));
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(plain.contains("    + keypair"), "{plain}");
    // Empty NO_COLOR means unset (no-color.org).
    assert!(run(Some("")).contains('\x1b'));
    let piped = appgrid()
        .args(["plan", "--refresh=false", "--state"])
        .arg(dir.join("none.json"))
        .arg("examples/blog/appgrid.toml")
        .env("HOME", &dir)
        .output()
        .unwrap();
    assert!(!text(&piped.stdout).contains('\x1b'));
    assert!(!text(&piped.stderr).contains('\x1b'));
}

/// `state list` and `state show` say the same in text and JSON; an apply
/// whose stdout closes early still finishes and saves its state.
#[test]
fn state_json_carries_the_same_facts_as_the_text() {
    let app = AwsApp::new("state-json", "ami-12c6146b");
    app.keygen();
    // `apply | head -1`: the walk goes on after the reader left. Its log is
    // JSON: one object a line, each step's events with the step's facts.
    let mut child = app
        .command(&["--log-format", "json", "apply", "--yes"], true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
    assert_eq!(app.in_the_cloud(), 2 + 2 + 1, "instances, groups, key pair");
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let done: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["fields"]["elapsed_s"].is_f64())
        .collect();
    assert_eq!(done.len(), 5, "a finished event per step: {events:?}");
    assert!(
        done.iter()
            .all(|e| e["level"] == "INFO" && e["fields"]["step"].is_string()),
        "{done:?}"
    );
    assert!(
        done.iter()
            .any(|e| e["fields"]["step"] == "keypair: import"),
        "{done:?}"
    );

    let list = text(&app.run(&["state", "list"], false).stdout);
    let out = app.run(&["state", "list", "--json"], false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_json: Vec<String> = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}\t{}",
                r["address"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(list.lines().collect::<Vec<_>>(), from_json);
    assert_eq!(from_json.len(), 5, "{list}");
    assert_eq!(json["app"], app.name.as_str());

    let show = |json: bool| {
        let mut c = app.command(&["state", "show"], false);
        c.arg("web[0]");
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = show(false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let show_text = text(&out.stdout);
    let out = show(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let show = show_text;
    assert!(show.starts_with("web[0]\n"), "{show}");
    assert!(
        show.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["id", json["id"].as_str().unwrap()]),
        "{show}"
    );
    let attributes = json["attributes"].as_object().unwrap();
    assert!(attributes.contains_key("private_ip"), "{json}");
    for (k, v) in attributes {
        assert!(
            show.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [k.as_str(), v.as_str().unwrap()]),
            "{k} = {v} not in:\n{show}"
        );
    }
    let out = app.run(&["destroy", "--yes"], true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(app.in_the_cloud(), 0);
}

/// `doctor --install` in a mount namespace of its own, where /usr/sbin is an
/// empty tmpfs (so haproxy is missing and policy-rc.d is ours to write) and
/// apt-get, dpkg-query, update-rc.d and service are recording fakes: it says
/// what it will run, runs apt-get with service starts forbidden, stops and
/// disables the new haproxy, removes its policy-rc.d, and checks again.
#[test]
fn doctor_install_runs_apt_get_with_services_held_down() {
    let dir = scratch("install");
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    let log = dir.join("calls.log");
    let installed = dir.join("installed");
    std::fs::write(&installed, "").unwrap();
    let write = |name: &str, body: String| {
        use std::os::unix::fs::PermissionsExt;
        let p = fake.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let (log, installed) = (log.display(), installed.display());
    // apt-get: record the call and whether services were forbidden; "install"
    // haproxy into /usr/sbin and the Python packages into the dpkg fake's list.
    write(
        "apt-get",
        format!(
            "echo \"apt-get $*\" >> {log}\n\
             if [ \"$1\" = install ]; then\n\
               /usr/sbin/policy-rc.d; echo \"policy-rc.d exits $?\" >> {log}\n\
               for p in \"$@\"; do case $p in -*|install) ;; haproxy) printf '#!/bin/sh\\n' > /usr/sbin/haproxy; chmod +x /usr/sbin/haproxy;; *) echo $p >> {installed};; esac; done\n\
             fi\n"
        ),
    );
    write(
        "dpkg-query",
        format!(
            "for p; do :; done; grep -qx \"$p\" {installed} && printf 'install ok installed'\n"
        ),
    );
    write("update-rc.d", format!("echo \"update-rc.d $*\" >> {log}\n"));
    write("service", format!("echo \"service $*\" >> {log}\n"));
    write("systemctl", format!("echo \"systemctl $*\" >> {log}\n"));

    // A cache-less, database-less app: haproxy and the Aptfile's packages are missing.
    let manifest = dir.join("appgrid.toml");
    std::fs::write(
        &manifest,
        format!(
            "[app]\nname = \"inst\"\n[provider]\nkind = \"local\"\n[release]\npath = {:?}\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 1\n[load_balancer]\ninstance_type = \"t3.small\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs tmpfs /usr/sbin && \"$@\"; rc=$?; ls /usr/sbin >> {log}; exit $rc"
        ))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_appgrid"))
        .args(["doctor", "--install", "--yes"])
        .arg(&manifest)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/bin", fake.display()),
        )
        .env("APPGRID_LOCAL_ROOT", dir.join("machines"))
        .output()
        .expect("unshare runs (util-linux; the tests run as root)");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with(
            "appgrid will run, as root:\n  apt-get update\n  apt-get install -y haproxy python3-psycopg2 python3-pymemcache\nwith /usr/sbin/policy-rc.d refusing every service start meanwhile; then stop and disable the packages' own haproxy (appgrid runs its own).\n"
        ),
        "{stderr}"
    );
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    let held_down = if Path::new("/run/systemd/system").is_dir() {
        "systemctl disable --now haproxy\n"
    } else {
        "update-rc.d haproxy disable\nservice haproxy stop\n"
    };
    assert_eq!(
        calls,
        format!(
            "apt-get update\n\
             apt-get install -y haproxy python3-psycopg2 python3-pymemcache\n\
             policy-rc.d exits 101\n\
             {held_down}\
             haproxy\n"
        ),
        "the calls, then what /usr/sbin held afterwards (no policy-rc.d)"
    );
    // Checked again after the install: everything is there now.
    assert!(stdout.contains("Everything "), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("ok ")
            && l.contains("haproxy")
            && l.ends_with("/usr/sbin/haproxy")),
        "{stdout}"
    );
}

/// The README's two commands for a fresh machine are what CI runs, word for word.
#[test]
fn the_readme_commands_are_what_ci_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Two commands for a fresh machine"))
        .expect("README has the section");
    let commands: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next())
        .collect();
    assert_eq!(commands.len(), 2, "{section}");
    for command in commands {
        for line in command.lines() {
            assert!(
                ci.lines().any(|l| l.trim_start().starts_with(line.trim())),
                ".ci/run does not run the README's `{line}`"
            );
        }
    }
}
