//! Releases that go wrong undo themselves (issue 9): the role on its own (a
//! release that never gets healthy, one that exits at start: the previous
//! release, env file and wrapper come back), and the blog on the `local`
//! provider under load: a broken release applied while a client sends
//! requests back to back fails none of them and leaves the old release
//! serving on every server.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use appgrid::remote::Redactor;
use appgrid::remote::local::LocalTransport;
use appgrid::roles::app::{AppRelease, release};
use appgrid::roles::{ReleaseFailure, Rollback, WebRoleError};

use super::cli::{appgrid, scratch, text};
use super::http::{http, served_by};

fn tpl() -> appgrid::templates::Templates {
    appgrid::templates::Templates::embedded()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Kill every process whose environment names a root under `dir` (every
/// supervised service carries its machine's root in `APPGRID_ROOT`).
fn kill_under(dir: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let mark = format!("APPGRID_ROOT={}", dir.display());
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let env = std::fs::read(p.path().join("environ")).unwrap_or_default();
        if String::from_utf8_lossy(&env).contains(&mark) {
            // SAFETY: a signal to a pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A scratch directory whose processes are killed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        kill_under(&self.0);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// An app that needs nothing but python3: `GET /health` answers 200 while
/// the file `health` exists in its directory, and the app prints `VERSION`.
fn tiny_app(dir: &Path, healthy: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.html"), "tiny\n").unwrap();
    if healthy {
        std::fs::write(dir.join("health"), "ok\n").unwrap();
    }
}

/// How many of `args` name the command (`config set` is two words).
fn command_words(args: &[&str]) -> usize {
    match args {
        ["config", "set" | "unset", ..] | ["db", ..] => 2,
        _ => 1,
    }
}

/// Every file under `dir` whose name ends in `.{ext}`, with its text.
fn walk_files(dir: &Path, ext: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            out.extend(walk_files(&path, ext));
        } else if path.extension().is_some_and(|x| x == ext) {
            out.push((
                path.clone(),
                String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned(),
            ));
        }
    }
    out
}

fn current(root: &str) -> String {
    std::fs::read_link(Path::new(root).join("var/lib/appgrid/app/current"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_its_health_check_or_exits_goes_back_to_the_previous_one() {
    let dir = scratch("rel-role");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _guard = Scratch(dir.clone());
    let root = dir.join("web");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.to_str().unwrap().to_string();
    let pid = std::process::id();
    let addr = format!("127.{}.{}.61", 200 + (pid >> 8) % 50, pid & 255);
    let redactor = Redactor::new();
    let t = LocalTransport::new(&addr, redactor.clone());
    let secret = format!("s3cret-{:016x}", fastrand::u64(..));

    let good_dir = dir.join("good");
    tiny_app(&good_dir, true);
    let app = |dir: &Path, start: &str, version: &str| AppRelease {
        root: root.clone(),
        addr: addr.clone(),
        port: 8080,
        app_dir_local: dir.to_path_buf(),
        build: None,
        start: start.to_string(),
        health_path: "/health".to_string(),
        env: BTreeMap::from([
            ("VERSION".to_string(), version.to_string()),
            ("SECRET_KEY".to_string(), secret.clone()),
        ]),
        secrets: vec![secret.clone().into()],
        health_timeout: Duration::from_secs(2),
        archive: None,
        pinned: None,
        release_command: None,
    };
    let serve = "echo \"serving $VERSION\"; exec /usr/bin/python3 -m http.server --bind \"$ADDR\" \"$PORT\"";
    let good = release(&tpl(), &t, &app(&good_dir, serve, "1"), &redactor)
        .await
        .unwrap();
    assert!(good.restarted);
    let env_file = Path::new(&root).join("etc/appgrid/app/env");
    let env_before = std::fs::read_to_string(&env_file).unwrap();
    assert!(env_before.contains("VERSION=1"), "{env_before}");
    let target = format!("{addr}:8080");
    assert_eq!(http(&target, "GET", "/health", "").await.unwrap().0, 200);

    // A release whose health check answers 404 (no `health` file) until the bound.
    let sick_dir = dir.join("sick");
    tiny_app(&sick_dir, false);
    let err = release(&tpl(), &t, &app(&sick_dir, serve, "2"), &redactor)
        .await
        .unwrap_err();
    let shown = err.to_string();
    let WebRoleError::ReleaseFailed {
        release: failed,
        what,
        ..
    } = err
    else {
        panic!("not a failed release: {shown}");
    };
    let ReleaseFailure {
        health,
        rollback,
        log,
    } = *what;
    assert_ne!(failed, good.release_id);
    assert!(health.contains(" 404"), "{health}");
    assert_eq!(rollback, Rollback::Healthy(good.release_id.clone()));
    assert!(log.contains("\"GET /health HTTP/1.0\" 404"), "{log}");
    assert!(
        shown.contains(&format!("release {failed} failed on {addr}"))
            && shown.contains("did not answer 200 within 2.0s")
            && shown.contains(&format!("rolled back to release {}", good.release_id)),
        "{shown}"
    );
    assert!(!shown.contains(&secret), "{shown}");
    // The previous release runs again, with its env file.
    assert_eq!(current(&root), format!("releases/{}", good.release_id));
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), env_before);
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(http(&target, "GET", "/health", "").await.unwrap().0, 200);

    // A release that exits at start.
    let err = release(
        &tpl(),
        &t,
        &app(&good_dir, "echo 'crashing on purpose'; exit 3", "3"),
        &redactor,
    )
    .await
    .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("the app exited before GET http://")
            && shown.contains("crashing on purpose"),
        "{shown}"
    );
    assert!(
        matches!(&err, WebRoleError::ReleaseFailed { what, .. } if what.rollback == Rollback::Healthy(good.release_id.clone())),
        "{shown}"
    );
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), env_before);
    assert_eq!(http(&target, "GET", "/health", "").await.unwrap().0, 200);

    // Releasing the good one again: nothing to do (its fingerprint is back).
    let again = release(&tpl(), &t, &app(&good_dir, serve, "1"), &redactor)
        .await
        .unwrap();
    assert!(!again.restarted, "{again:?}");
}

/// The blog (primary, two app servers, HAProxy) on the `local` provider.
pub(super) struct Blog {
    pub(super) dir: PathBuf,
    pub(super) manifest: PathBuf,
    pub(super) machines: PathBuf,
    /// Everything appgrid printed through [`Blog::run`].
    pub(super) printed: String,
}

impl Blog {
    pub(super) fn new(name: &str) -> Blog {
        let dir = scratch(name);
        Blog {
            manifest: dir.join("appgrid.toml"),
            machines: dir.join("machines"),
            dir,
            printed: String::new(),
        }
    }

    pub(super) fn write(&self, app: &str, start: &str) {
        let schema = examples().join("app/schema.sql");
        let text = format!(
            "[app]\nname = \"itrel\"\n[provider]\nkind = \"local\"\n\
             [release]\npath = \"{app}\"\nstart = \"{start}\"\nhealth = \"/health\"\nhealth_timeout = \"3s\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 2\nport = 8080\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
             [database]\ninstance_type = \"m5.large\"\nreplicas = 0\nschema = \"{schema}\"\n\
             [env]\nGREETING = \"hello\"\n",
            app = if Path::new(app).is_absolute() {
                PathBuf::from(app)
            } else {
                examples().join(app)
            }
            .display(),
            schema = schema.display(),
        );
        std::fs::write(&self.manifest, text).unwrap();
    }

    /// `appgrid COMMAND MANIFEST ARGS…`.
    pub(super) fn run(&mut self, args: &[&str]) -> Output {
        let words = command_words(args);
        let out = appgrid()
            .args(&args[..words])
            .arg(&self.manifest)
            .args(&args[words..])
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .output()
            .unwrap();
        self.printed.push_str(&text(&out.stdout));
        self.printed.push_str(&text(&out.stderr));
        out
    }

    pub(super) fn state(&self) -> serde_json::Value {
        let path = self.dir.join(".appgrid/itrel/state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    pub(super) fn attr(&self, address: &str, key: &str) -> String {
        self.state()["resources"][address]["attributes"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{address}.{key} not in state"))
            .to_string()
    }

    pub(super) fn machine_id(&self, web: usize) -> String {
        self.state()["resources"][format!("web[{web}]")]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The release each web machine's `current` points at.
    fn currents(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for i in 0..2 {
            let id = self.machine_id(i);
            let root = self.machines.join("itrel/machines").join(&id);
            out.insert(format!("web[{i}]"), current(root.to_str().unwrap()));
        }
        out
    }
}

impl Drop for Blog {
    fn drop(&mut self) {
        let _ = appgrid()
            .args(["destroy", "--yes", "--allow-data-loss"])
            .arg(&self.manifest)
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .output();
        kill_under(&self.machines);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_under_load_fails_no_request_and_leaves_the_old_one_serving() {
    let mut blog = Blog::new("rel-blog");
    blog.write("app", "/usr/bin/python3 app.py");
    let out = blog.run(&["apply", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let good = blog.attr("web[0].release", "release");
    assert_eq!(blog.attr("web[1].release", "release"), good);
    let before = blog.currents();
    assert!(
        before.values().all(|c| *c == format!("releases/{good}")),
        "{before:?}"
    );
    let lb = format!("{}:8000", blog.attr("lb", "private_ip"));

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (lb, stop) = (lb.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match http(&lb, "GET", "/", "").await {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };

    // /health answers 500: the first server tries it, goes back, the rollout stops.
    blog.write("app", "/usr/bin/python3 app.py --broken-health");
    let out = blog.run(&["apply", "--yes"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: web[") && stderr.contains(".release: configure: release "),
        "names the server: {stderr}"
    );
    assert!(
        stderr.contains("did not answer 200 within 3.0s")
            && stderr.contains("500")
            && stderr.contains("broken on purpose")
            && stderr.contains(&format!("rolled back to release {good}, which is healthy"))
            && stderr.contains("the last lines of the app's log"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped because an upstream step failed"),
        "{stderr}"
    );
    assert_eq!(blog.currents(), before);

    // An app that exits at start.
    blog.write("app-broken", "/usr/bin/python3 crash.py");
    let out = blog.run(&["apply", "--yes"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the app exited before GET http://")
            && stderr.contains("crash.py: refusing to start"),
        "{stderr}"
    );
    assert_eq!(blog.currents(), before);

    // Both servers serve the old release, behind the load balancer.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        seen.insert(served_by(&http(&lb, "GET", "/", "").await.unwrap().1));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.await.unwrap();
    eprintln!(
        "under the bad releases: {ok} requests answered, {} failed",
        failed.len()
    );
    assert!(ok > 50, "the load ran: {ok}");
    assert!(failed.is_empty(), "failed requests: {failed:?}");

    // `releases` shows v1 active and the two failed ones, with why.
    let listed = blog.ok(&["releases"]);
    let line = |v: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{v} ")))
            .unwrap_or_else(|| panic!("{v} not in:\n{listed}"))
            .to_string()
    };
    assert!(line("v1").contains(" active "), "{listed}");
    assert!(
        line("v2").contains(" failed ") && line("v2").contains("web["),
        "{listed}"
    );
    assert!(line("v3").contains(" failed "), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&blog.ok(&["releases", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3, "{json}");
    assert_eq!(json[0]["dir"].as_str(), Some(good.as_str()), "{json}");
    let v1 = blog.ok(&["releases", "v1"]);
    assert!(
        v1.contains(&format!("releases/{good} on the web servers")),
        "{v1}"
    );

    blog.rollback_flow(&good, &before).await;
    blog.config_flow().await;
    assert!(
        !blog
            .printed
            .contains(&blog.attr("db.primary.config", "password"))
    );
}

impl Blog {
    /// `appgrid COMMAND MANIFEST ARGS…` with `input` on stdin.
    pub(super) fn run_with_stdin(&mut self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let words = command_words(args);
        let mut child = appgrid()
            .args(&args[..words])
            .arg(&self.manifest)
            .args(&args[words..])
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        self.printed.push_str(&text(&out.stdout));
        self.printed.push_str(&text(&out.stderr));
        out
    }

    /// Every web machine's env file.
    fn env_files(&self) -> Vec<(String, u32)> {
        (0..2)
            .map(|i| {
                let id = self.machine_id(i);
                let path = self
                    .machines
                    .join("itrel/machines")
                    .join(id)
                    .join("etc/appgrid/app/env");
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                (std::fs::read_to_string(&path).unwrap(), mode)
            })
            .collect()
    }

    /// A secret set through stdin reaches every server's env file and no
    /// output; a reserved key is refused; unset takes it away again.
    async fn config_flow(&mut self) {
        let secret = format!("sk-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let started = Instant::now();
        let out = self.run_with_stdin(&["config", "set", "SECRET_KEY"], &format!("{secret}\n"));
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{said}");
        eprintln!(
            "config set → every server serving it: {:?}",
            started.elapsed()
        );
        assert!(
            said.contains("Every web server runs the new config (release v6"),
            "{said}"
        );
        for (env, mode) in self.env_files() {
            assert!(
                env.contains("SECRET_KEY=") && env.contains(&secret),
                "not in the env file"
            );
            assert_eq!(mode, 0o600);
        }
        let state = std::fs::read_to_string(self.dir.join(".appgrid/itrel/state.json")).unwrap();
        assert!(state.contains(&secret), "the value is kept in state");
        // Listed by name only, unless --show.
        let listed = self.ok(&["config"]);
        assert_eq!(listed, "SECRET_KEY=(hidden)\n");
        let plan = self.ok(&["plan", "--json"]);
        assert!(!plan.contains(&secret));
        assert!(!self.printed.contains(&secret), "a secret was printed");
        // --show prints it (not kept in `printed`).
        let shown = appgrid()
            .args(["config", "--show"])
            .arg(&self.manifest)
            .output()
            .unwrap();
        assert_eq!(text(&shown.stdout), format!("SECRET_KEY={secret}\n"));
        let plan = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));

        // `run`: the app's env in the release directory, the exit status
        // propagated, the secret redacted in what comes back.
        let out = self.run(&["run", "--", "printenv", "SECRET_KEY"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "(sensitive)\n");
        let out = self.run(&[
            "run",
            "--on",
            "web[1]",
            "--",
            "sh",
            "-c",
            "cat VERSION; exit 7",
        ]);
        assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "4\n");
        assert_eq!(self.run(&["run", "--", "false"]).status.code(), Some(1));
        // `[env]` defaults reach the app too.
        let out = self.run(&["run", "--on", "web[1]", "--", "printenv", "GREETING"]);
        assert_eq!(text(&out.stdout), "hello\n", "{}", text(&out.stderr));
        let out = self.run(&["run", "--on", "lb", "--", "true"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(
                "lb is not a web server with a release; the web servers are: web[0], web[1]"
            ),
            "{}",
            text(&out.stderr)
        );
        // `logs -n 20`: both servers' lines, prefixed.
        let logs = self.ok(&["logs", "-n", "20"]);
        for w in ["web[0] | ", "web[1] | "] {
            assert!(logs.lines().any(|l| l.starts_with(w)), "{logs}");
        }
        assert!(logs.lines().filter(|l| l.starts_with("web[0] | ")).count() <= 20);
        // `logs -f`, `--since`, service logs: tests/it/console.rs.

        let out = self.run(&["config", "set", "PORT=9999", "OTHER=1"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("PORT is set by appgrid") && stderr.contains("nothing was changed"),
            "{stderr}"
        );
        assert_eq!(self.ok(&["config"]), "SECRET_KEY=(hidden)\n");

        let out = self.ok(&["config", "unset", "SECRET_KEY"]);
        assert!(
            out.contains("Every web server runs the new config"),
            "{out}"
        );
        for (env, _) in self.env_files() {
            assert!(!env.contains("SECRET_KEY"), "still in the env file");
        }
        let machines_logs = self.machines.clone();
        let logs = walk_files(&machines_logs, "log");
        for (path, body) in logs {
            assert!(!body.contains(&secret), "{path:?} holds the secret");
        }
    }

    pub(super) fn ok(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "appgrid {args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// v4 (a changed copy of the app), then `rollback` to v1, `plan` honest
    /// about it, `apply` not rolling forward by itself, `--roll-forward`.
    async fn rollback_flow(&mut self, v1: &str, on_v1: &BTreeMap<String, String>) {
        let copy = self.dir.join("app-v4");
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["app.py", "schema.sql"] {
            std::fs::copy(examples().join("app").join(f), copy.join(f)).unwrap();
        }
        std::fs::write(copy.join("VERSION"), "4\n").unwrap();
        self.write(copy.to_str().unwrap(), "/usr/bin/python3 app.py");
        let out = self.ok(&["apply", "--yes"]);
        assert!(
            out.contains("Release v4 is active on every web server."),
            "{out}"
        );
        let v4 = self.attr("web[0].release", "release");
        assert_ne!(v4, v1);

        // Errors first: nothing changes.
        for (which, says) in [
            ("v99", "there is no release v99 in state"),
            (
                "v2",
                "release v2 failed: only a release that served can be rolled back to",
            ),
            ("v4", "v4 is the active release already"),
        ] {
            let out = self.run(&["rollback", which]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains(says) && stderr.contains("nothing was changed"),
                "{stderr}"
            );
        }
        assert!(
            self.currents()
                .values()
                .all(|c| *c == format!("releases/{v4}"))
        );

        let lb = format!("{}:8000", self.attr("lb", "private_ip"));
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (lb, stop) = (lb.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    match http(&lb, "GET", "/", "").await {
                        Ok((200, _)) => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
        };
        let started = Instant::now();
        let out = self.ok(&["rollback"]);
        eprintln!("rollback of 2 web servers: {:?}", started.elapsed());
        assert!(
            out.contains("Release v1 is active on every web server"),
            "{out}"
        );
        assert_eq!(&self.currents(), on_v1);
        stop.store(true, Ordering::SeqCst);
        let (ok, failed) = load.await.unwrap();
        assert!(ok > 10 && failed.is_empty(), "{ok} ok, failed: {failed:?}");

        let listed = self.ok(&["releases"]);
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("v1 ") && l.contains(" active ")),
            "{listed}"
        );
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("v4 ") && l.contains(" rolled back ")),
            "{listed}"
        );
        // `plan` says why the running release is not the manifest's, and has
        // nothing to do; `apply` does not roll forward on its own.
        let out = self.run(&["plan", "--detailed-exitcode"]);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(
            said.contains("the web servers run release v1 (rolled back by ")
                && said.contains("apply --roll-forward"),
            "{said}"
        );
        self.ok(&["apply", "--yes"]);
        assert_eq!(&self.currents(), on_v1);

        let out = self.ok(&["apply", "--yes", "--roll-forward"]);
        assert!(
            out.contains("Release v5 is active on every web server."),
            "{out}"
        );
        assert!(
            self.currents()
                .values()
                .all(|c| *c == format!("releases/{v4}"))
        );
        let out = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    }
}

/// A rollback puts back the config vars of the release it goes to: set
/// A=1 (v2), A=2 (v3), roll back to v2 → the app sees A=1 again, and `plan`
/// has nothing to do; back to v1 → no A at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_config_vars_of_its_release() {
    let mut blog = Blog::new("rel-config");
    blog.write("app", "/usr/bin/python3 app.py");
    blog.ok(&["apply", "--yes"]);
    let a1 = format!("one-{:016x}", fastrand::u64(..));
    let a2 = format!("two-{:016x}", fastrand::u64(..));
    blog.ok(&["config", "set", &format!("A={a1}")]);
    blog.ok(&["config", "set", &format!("A={a2}")]);
    let printenv = |blog: &mut Blog, on: &str| {
        let out = appgrid()
            .args(["run", "--on", on])
            .arg(&blog.manifest)
            .args(["--", "printenv", "A"])
            .env("APPGRID_LOCAL_ROOT", &blog.machines)
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout))
    };
    // Values are redacted in `run`'s output: compare the env files instead,
    // and the exit status of `printenv`.
    assert_eq!(printenv(&mut blog, "web[0]").0, Some(0));
    let env_has = |blog: &Blog, value: &str| {
        (0..2).all(|i| {
            let id = blog.machine_id(i);
            std::fs::read_to_string(
                blog.machines
                    .join("itrel/machines")
                    .join(id)
                    .join("etc/appgrid/app/env"),
            )
            .unwrap()
            .contains(value)
        })
    };
    assert!(env_has(&blog, &a2));

    let out = blog.ok(&["rollback", "v2"]);
    assert!(
        out.contains("Release v2 is active on every web server"),
        "{out}"
    );
    assert!(env_has(&blog, &a1) && !env_has(&blog, &a2));
    // The app itself sees it: `run` compares inside the machine.
    for on in ["web[0]", "web[1]"] {
        let out = appgrid()
            .args(["run", "--on", on])
            .arg(&blog.manifest)
            .args(["--", "sh", "-c", &format!("test \"$A\" = {a1}")])
            .env("APPGRID_LOCAL_ROOT", &blog.machines)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{on}: {}", text(&out.stderr));
    }
    let shown = appgrid()
        .args(["config", "--show"])
        .arg(&blog.manifest)
        .output()
        .unwrap();
    assert_eq!(text(&shown.stdout), format!("A={a1}\n"));
    let out = blog.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let listed = blog.ok(&["releases"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("v3 ") && l.contains(" rolled back ")),
        "{listed}"
    );
    // What each release keeps is never shown (`printed` is checked below).
    blog.ok(&["releases", "--json"]);
    blog.ok(&["releases", "v2", "--json"]);

    // v1 had no config vars: A goes away.
    blog.ok(&["rollback", "v1"]);
    assert_eq!(printenv(&mut blog, "web[1]").0, Some(1));
    let listed = blog.ok(&["config"]);
    assert!(listed.starts_with("No config vars"), "{listed}");
    let out = blog.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!blog.printed.contains(&a1) && !blog.printed.contains(&a2));
}
