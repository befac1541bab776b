//! The autoscaler on the `local` provider, through the binary: load above the
//! target adds a web server that then serves traffic; when the load stops the
//! tier scales back in after the stabilization window; not one request fails
//! meanwhile; an app server that dies is restarted; `--once` is one pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cli::{appgrid, scratch, text};
use super::http::{http, served_by};

pub(super) struct Scaled {
    pub(super) dir: PathBuf,
    pub(super) manifest: PathBuf,
    pub(super) machines: PathBuf,
    pub(super) loop_: Option<Child>,
}

const REACTIVE: &str = "metric = \"requests_per_instance\"\ntarget = 5\nmin = 1\nmax = 3\n\
     scale_out_cooldown = \"2s\"\nscale_in_cooldown = \"10s\"\nwarmup = \"1s\"\ninterval = \"2s\"\n";

impl Scaled {
    fn new(name: &str) -> Scaled {
        Scaled::with_autoscale(name, REACTIVE)
    }

    /// The blog on the local provider with this `[autoscale]` table's body.
    fn with_autoscale(name: &str, autoscale: &str) -> Scaled {
        Scaled::with_tables(name, "", autoscale)
    }

    /// [`Scaled::with_autoscale`] with more keys in `[web]`.
    pub(super) fn with_tables(name: &str, web: &str, autoscale: &str) -> Scaled {
        let dir = scratch(name);
        let machines = dir.join("machines");
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
        let manifest = dir.join("appgrid.toml");
        std::fs::write(
            &manifest,
            format!(
                "[app]\nname = \"{name}\"\n[provider]\nkind = \"local\"\n\
                 [release]\npath = \"{app}\"\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
                 [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = 8080\n{web}\
                 [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
                 [database]\ninstance_type = \"m5.large\"\nschema = \"{app}/schema.sql\"\n\
                 [autoscale]\n{autoscale}",
                app = app.display(),
                name = name,
                web = web,
                autoscale = autoscale,
            ),
        )
        .unwrap();
        Scaled {
            dir,
            manifest,
            machines,
            loop_: None,
        }
    }

    pub(super) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = appgrid();
        c.args(args)
            .arg(&self.manifest)
            .env("APPGRID_LOCAL_ROOT", &self.machines);
        c
    }

    pub(super) fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "appgrid {args:?}:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub(super) fn state(&self) -> serde_json::Value {
        let app = self
            .dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .rsplit('-')
            .next()
            .unwrap()
            .to_string();
        let path = self.dir.join(format!(".appgrid/{app}/state.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The load balancer's `address:8000`.
    pub(super) fn lb_addr(&self) -> String {
        format!(
            "{}:8000",
            self.state()["resources"]["lb"]["attributes"]["private_ip"]
                .as_str()
                .unwrap()
        )
    }

    /// `appgrid autoscale` running in the background until dropped.
    pub(super) fn start_loop(&mut self) {
        self.loop_ = Some(
            self.cmd(&["autoscale"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    pub(super) fn web_count(&self) -> usize {
        self.state()["resources"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.ends_with(".release"))
            .count()
    }
}

impl Drop for Scaled {
    fn drop(&mut self) {
        if let Some(mut child) = self.loop_.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self
            .cmd(&["destroy", "--yes", "--allow-data-loss"])
            .output();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", self.machines.to_str().unwrap()])
            .status();
    }
}

/// Who answered, by the example app's answer.
pub(super) type Seen = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// A client sending `GET /` to `lb` one request after the other until
/// `stop` (at most 240 s): (requests answered 200, the others' outcomes).
pub(super) fn client(
    lb: &str,
    stop: &Arc<AtomicBool>,
    seen: &Seen,
    began: Instant,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    let (lb, stop, seen) = (lb.to_string(), Arc::clone(stop), Arc::clone(seen));
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, Vec::new());
        let deadline = Instant::now() + Duration::from_secs(240);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match http(&lb, "GET", "/", "").await {
                Ok((200, body)) => {
                    ok += 1;
                    seen.lock().unwrap().insert(served_by(&body));
                }
                other => failed.push(format!(
                    "{:.1}s into the load: {other:?}",
                    began.elapsed().as_secs_f64()
                )),
            }
        }
        (ok, failed)
    })
}

/// Not one request failed (the first few shown when some did).
pub(super) fn none_failed(ok: u64, failed: &[String]) {
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(3)]
    );
}

pub(super) async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_tier_follows_its_load() {
    // Shadow mode on: the reactive policy acts, the forecast is recorded.
    let mut s = Scaled::with_autoscale("itscale", &format!("{REACTIVE}forecast_only = true\n"));
    s.ok(&["apply", "--yes"]);
    let lb = s.lb_addr();

    // --once: one pass, recorded, and at rest nothing changes.
    let once = s.ok(&["autoscale", "--once"]);
    assert_eq!(once.lines().count(), 1, "{once}");
    assert!(once.contains(" 1 -> 1 "), "{once}");

    let child = s
        .cmd(&["autoscale"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    s.loop_ = Some(child);

    // Load well above 5 requests/s per instance, through HAProxy, until a new
    // server has answered some of it.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let load = client(&lb, &stop, &seen, Instant::now());
    until("a scale-out", Duration::from_secs(60), || {
        s.web_count() >= 2
    })
    .await;
    until("the new server serving", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    // The autoscaler owns the count: once its pass is done, a manual plan
    // does not call that drift.
    until(
        "the scaling pass to finish",
        Duration::from_secs(60),
        || s.ok(&["autoscale", "history"]).contains(" 1 -> 3 "),
    )
    .await;
    let out = s.cmd(&["plan", "--detailed-exitcode"]).output().unwrap();
    let plan = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{plan}{}", text(&out.stderr));
    assert!(
        plan.starts_with("note: web.count is 3, set by the autoscaler ("),
        "{plan}"
    );
    assert!(
        plan.ends_with("; the manifest says 1\nNo changes. itscale matches its manifest.\n"),
        "{plan}"
    );
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed while scaling out, first: {:?}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(3)]
    );

    // Idle: after the stabilization window, back to one.
    until("a scale-in", Duration::from_secs(90), || s.web_count() == 1).await;

    // A dead app is restarted by the loop (web[0]'s, found through state).
    let web0 = s.state()["resources"]["web[0]"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pid_file = s
        .machines
        .join("itscale/machines")
        .join(&web0)
        .join("run/appgrid/app.pid");
    let read_pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
    };
    let app_pid = read_pid().expect("web[0]'s app is running");
    unsafe { libc::kill(-app_pid, libc::SIGKILL) };
    until("the app's restart", Duration::from_secs(60), || {
        read_pid().is_some_and(|p| p != app_pid && unsafe { libc::kill(p, 0) } == 0)
    })
    .await;
    // The pass that restarted it records so once it is done.
    until(
        "the restart in the history",
        Duration::from_secs(20),
        || {
            s.ok(&["autoscale", "history"])
                .contains("web[0].release restarted: its health check failed twice")
        },
    )
    .await;
    let history = s.ok(&["autoscale", "history"]);
    assert!(
        history.contains(" 1 -> 2 ") || history.contains(" 1 -> 3 "),
        "{history}"
    );

    // `forecast_only`: every web pass has the forecast's decision beside it,
    // and the demand recorded is a trace the simulator replays.
    let passes = history
        .lines()
        .filter(|l| l.contains(" requests_per_instance "))
        .count();
    let shadows: Vec<&str> = history
        .lines()
        .filter(|l| l.starts_with("    forecast_only: would have gone "))
        .collect();
    assert_eq!(shadows.len(), passes, "{history}");
    assert!(shadows.iter().any(|l| l.contains("forecast")), "{history}");
    let trace = s.dir.join("recorded.csv");
    s.ok(&["autoscale", "history", "--trace", trace.to_str().unwrap()]);
    let csv = std::fs::read_to_string(&trace).unwrap();
    assert!(csv.starts_with("minute,requests\n"), "{csv}");
    // The load ran for well over 100 requests (its minutes, as recorded).
    let recorded: u64 = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(',')?.1.parse::<u64>().ok())
        .sum();
    assert!(recorded > 100, "{csv}");
    let sim = s.ok(&[
        "autoscale",
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--policy",
        "forecast",
        "--out",
        s.dir.join("sim").to_str().unwrap(),
    ]);
    assert!(sim.contains("under-provisioning timeshare"), "{sim}");

    // The panel's Autoscaling page shows the same passes and shadow lines.
    let panel = super::dashboard::start(&s.manifest, &s.machines);
    let (client, _) = super::dashboard::Client::sign_in(&panel).await;
    let (status, page) = client.get("/autoscaling").await;
    assert_eq!(status, 200, "{page}");
    let page = super::dashboard::unescape(&page);
    let shown = page
        .matches("<span class=\"shadow\">forecast_only: would have gone ")
        .count();
    assert!(
        shown >= shadows.len(),
        "{shown} shadow lines for {}: {page}",
        shadows.len()
    );
    let first = shadows[0]
        .trim_start()
        .trim_start_matches("forecast_only: ");
    assert!(page.contains(first), "{first}: {page}");
    drop(panel);

    // SIGTERM: the pass in flight finishes and the loop exits.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = s.loop_.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// One line of `autoscale history`: (unix seconds, value read, from, to, reason).
pub(super) fn history_lines(history: &str) -> Vec<(i64, f64, u32, u32, String)> {
    history
        .lines()
        .filter_map(|l| {
            let mut w = l.splitn(7, ' ');
            let at = w.next()?;
            let at = format!("{at}Z")
                .parse::<jiff::Timestamp>()
                .ok()?
                .as_second();
            let _ = w.next(); // the blank between the time and the metric
            let _metric = w.next()?;
            let value = w.next()?.parse().unwrap_or(f64::NAN);
            let rest: Vec<&str> = w.collect();
            let rest = rest.join(" ");
            let mut r = rest.trim_start().splitn(4, ' ');
            let from = r.next()?.parse().ok()?;
            let _arrow = r.next()?;
            let to = r.next()?.parse().ok()?;
            Some((
                at,
                value,
                from,
                to,
                r.next().unwrap_or("").trim().to_string(),
            ))
        })
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `policy = "forecast"` live: under a steady light load the forecast learns
/// its errors and holds one server (its cautious cold-start margin may ask
/// for a second one first, given back once the errors are learned); then the
/// load ramps up, and the second
/// server is asked for before the rise arrives — on a reading the reactive
/// policy would stay on, and before the moment the offered load crosses the
/// target — and serves; not one request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_asks_for_servers_before_a_ramp_arrives() {
    const TARGET: f64 = 5.0;
    const STEADY: f64 = 1.5; // req/s before the ramp
    const SLOPE: f64 = 0.2; // req/s more every second of the ramp
    const TOP: f64 = 11.0;
    let mut s = Scaled::with_autoscale(
        "itramp",
        "metric = \"requests_per_instance\"\ntarget = 5\nmin = 1\nmax = 3\npolicy = \"forecast\"\n\
         boot = \"8s\"\nscale_out_cooldown = \"1s\"\nscale_in_cooldown = \"10s\"\nwarmup = \"1s\"\ninterval = \"1s\"\n",
    );
    s.ok(&["apply", "--yes"]);
    let lb = s.lb_addr();
    s.start_loop();

    // Paced requests: STEADY req/s until the ramp starts, then rising.
    let ramp_at: Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let load = {
        let (lb, stop, seen, ramp_at) = (
            lb.clone(),
            Arc::clone(&stop),
            Arc::clone(&seen),
            Arc::clone(&ramp_at),
        );
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let begun = Instant::now();
            let deadline = begun + Duration::from_secs(400);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let started = Instant::now();
                let ramp = *ramp_at.lock().unwrap();
                match http(&lb, "GET", "/", "").await {
                    Ok((200, body)) => {
                        ok += 1;
                        seen.lock().unwrap().insert(served_by(&body));
                    }
                    other => failed.push(format!(
                        "{:.1}s after the load began ({}): {other:?}",
                        begun.elapsed().as_secs_f64(),
                        if ramp.is_some() { "ramp" } else { "steady" }
                    )),
                }
                let rate = ramp.map_or(STEADY, |at| {
                    (STEADY + SLOPE * at.elapsed().as_secs_f64()).min(TOP)
                });
                let gap = Duration::from_secs_f64(1.0 / rate);
                tokio::time::sleep(gap.saturating_sub(started.elapsed())).await;
            }
            (ok, failed)
        })
    };

    // The forecast has learned its errors and holds one server.
    let learned = |line: &(i64, f64, u32, u32, String)| {
        line.4
            .split(" from ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= appgrid::autoscale::MIN_RESIDUALS)
    };
    until(
        "one server held with a learned margin",
        Duration::from_secs(180),
        || {
            let lines = history_lines(&s.ok(&["autoscale", "history"]));
            s.web_count() == 1
                && lines.len() >= 3
                && lines[lines.len() - 3..]
                    .iter()
                    .all(|l| l.2 == 1 && l.3 == 1 && learned(l))
        },
    )
    .await;
    let before = history_lines(&s.ok(&["autoscale", "history"])).len();
    let ramp_start = unix_now();
    // Servers seen from here on: the cold start may have had a second one.
    seen.lock().unwrap().clear();
    *ramp_at.lock().unwrap() = Some(Instant::now());
    // The offered load reaches the target this many seconds into the ramp.
    let arrives = ramp_start + ((TARGET - STEADY) / SLOPE).floor() as i64;

    until("a scale-out on the ramp", Duration::from_secs(90), || {
        history_lines(&s.ok(&["autoscale", "history"]))[before..]
            .iter()
            .any(|l| l.3 > l.2)
    })
    .await;
    let lines = history_lines(&s.ok(&["autoscale", "history"]));
    let out = lines[before..].iter().find(|l| l.3 > l.2).unwrap().clone();
    let (at, value, from, to, reason) = out;
    assert_eq!(from, 1, "{reason}");
    assert!(reason.contains("forecast"), "{reason}");
    // Asked for on a reading the reactive policy stays on (within its ±10 %
    // tolerance; one-second readings are whole requests, so a reading may
    // run ahead of the offered load), and before the offered load reached
    // the target.
    assert!(
        value <= TARGET * (1.0 + appgrid::autoscale::DEFAULT_TOLERANCE),
        "the scale-out came only once the load ({value} req/s) had arrived: {reason}"
    );
    assert!(
        at < arrives,
        "the scale-out at {at} is not ahead of the load reaching the target at {arrives}"
    );
    until("the new server serving", Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    tracing_free_report(at - ramp_start, arrives - ramp_start, value, to);
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 50, "{ok} requests");
    none_failed(ok, &failed);
}

/// What the ramp test measured, for BENCHMARKS.md (`--nocapture`).
fn tracing_free_report(asked_s: i64, arrives_s: i64, value: f64, to: u32) {
    println!(
        "ramp: 1 -> {to} asked {asked_s}s into the ramp at {value:.1} req/s on one server; \
         the load reaches the target {arrives_s}s in"
    );
}

/// A scaling pass and a manual apply at the same time: the pass waits for the
/// lock the apply holds, then changes the state the apply left — no update is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_waits_for_the_lock_and_loses_no_update() {
    let s = Scaled::new("itlocked");
    s.ok(&["apply", "--yes"]);
    let lb = s.lb_addr();
    s.ok(&["autoscale", "--once"]); // the first counters
    tokio::time::sleep(Duration::from_secs(2)).await; // a rate needs time between readings
    for _ in 0..200 {
        http(&lb, "GET", "/", "").await.unwrap();
    }
    // Someone else (a manual apply) holds the state lock and writes state.
    let state_path = s.dir.join(".appgrid/itlocked/state.json");
    let lock = appgrid::state::lock::acquire(
        &state_path,
        "apply",
        Duration::ZERO,
        appgrid::state::lock::DEFAULT_LEASE,
    )
    .unwrap();
    let mut pass = s
        .cmd(&["autoscale", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        pass.try_wait().unwrap().is_none(),
        "the pass went ahead without the lock"
    );
    let store = appgrid::state::store::StateStore::new(&state_path);
    let mut state = store.load().unwrap().unwrap();
    state
        .resources
        .get_mut(&"db.primary".parse().unwrap())
        .unwrap()
        .attributes
        .insert("note".into(), "written by the other apply".into());
    store.save(&mut state).unwrap();
    drop(lock);
    let out = pass.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(" 1 -> 3 "),
        "{}",
        text(&out.stdout)
    );
    let after = s.state();
    assert_eq!(after["autoscale"]["web"], 3);
    assert_eq!(
        after["resources"]["db.primary"]["attributes"]["note"], "written by the other apply",
        "the other writer's update was lost"
    );
}

/// `cpu_percent` is read from the web machines themselves: two passes make a
/// reading, recorded with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_is_read_from_the_web_machines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("itcpu");
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("serve.sh"), "#!/bin/sh\nexec socat TCP-LISTEN:\"$PORT\",bind=\"$ADDR\",fork,reuseaddr EXEC:./respond.sh\n").unwrap();
    std::fs::write(
        app.join("respond.sh"),
        // Read the request to its blank line before answering, or the client sees a reset.
        "#!/bin/sh\ncr=$(printf '\\r')\nwhile IFS= read -r line; do [ \"$line\" = \"$cr\" ] || [ -z \"$line\" ] && break; done\n\
         printf 'HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n'\n",
    )
    .unwrap();
    for f in ["serve.sh", "respond.sh"] {
        std::fs::set_permissions(app.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let manifest = dir.join("appgrid.toml");
    std::fs::write(
        &manifest,
        "[app]\nname = \"itcpu\"\n[provider]\nkind = \"local\"\n[release]\npath = \"app\"\nstart = \"./serve.sh\"\nhealth = \"/\"\n\
         [web]\ninstance_type = \"t3.small\"\ncount = 1\n[load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
         [autoscale]\nmetric = \"cpu_percent\"\ntarget = 60\nmin = 1\nmax = 2\nwarmup = \"1s\"\ninterval = \"2s\"\n",
    )
    .unwrap();
    let machines = dir.join("machines");
    let run = |args: &[&str]| {
        let out = appgrid()
            .args(args)
            .arg(&manifest)
            .env("APPGRID_LOCAL_ROOT", &machines)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "appgrid {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    run(&["apply", "--yes"]);
    run(&["autoscale", "--once"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = run(&["autoscale", "--once"]);
    let _ = appgrid()
        .args(["destroy", "--yes", "--allow-data-loss"])
        .arg(&manifest)
        .env("APPGRID_LOCAL_ROOT", &machines)
        .output();
    // "TIME  cpu_percent VALUE  1 -> N  reason": the value is a number, not "-".
    let value = second.split_whitespace().nth(2).unwrap_or_default();
    assert!(second.contains(" cpu_percent "), "{second}");
    assert!(
        value
            .parse::<f64>()
            .is_ok_and(|v| (0.0..=100.0).contains(&v)),
        "no CPU reading: {second}"
    );
}

/// `autoscale simulate --policy forecast` on a trace with a steady daily rise
/// meets it ahead of time, where the reactive policy is a boot late; both
/// write a timeline and print the figures.
#[test]
fn simulate_the_forecast_policy_against_the_reactive_one() {
    let dir = scratch("simulate-forecast");
    let trace = dir.join("ramp.csv");
    let mut csv = String::from("minute,requests\n");
    // Two days: flat nights of 600 requests/min, days rising to 24,000 and back.
    for m in 0..2 * 1440u32 {
        let minute = m % 1440;
        let load = match minute {
            0..480 => 600,
            480..720 => 600 + (minute - 480) * 97,
            720..960 => 600 + (960 - minute) * 97,
            _ => 600,
        };
        csv.push_str(&format!(
            "1995-07-0{}T{:02}:{:02},{load}\n",
            1 + m / 1440,
            minute / 60,
            minute % 60
        ));
    }
    std::fs::write(&trace, csv).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/autoscale/bench.toml");
    let mut figures = Vec::new();
    for policy in ["reactive", "forecast"] {
        let out = dir.join(policy);
        let o = appgrid()
            .args(["autoscale", "simulate"])
            .arg(&manifest)
            .arg("--trace")
            .arg(&trace)
            .args(["--capacity", "50", "--boot", "120", "--policy", policy])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stdout = text(&o.stdout);
        assert!(o.status.success(), "{policy}: {stdout}{}", text(&o.stderr));
        let timeline = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
        assert_eq!(timeline.lines().count(), 2 * 1440 + 1, "{policy}");
        let under = stdout
            .lines()
            .find_map(|l| l.strip_prefix("under-provisioning timeshare τU"))
            .and_then(|v| v.trim().trim_end_matches('%').trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{policy}: no τU in {stdout}"));
        figures.push((policy, under, stdout));
    }
    let (reactive, forecast) = (&figures[0], &figures[1]);
    assert!(
        reactive.1 > 2.0,
        "the reactive policy is late: {}",
        reactive.2
    );
    assert!(
        forecast.1 < reactive.1 / 4.0,
        "forecast {} vs reactive {}",
        forecast.2,
        reactive.2
    );
    // A quantile outside 0.5..=0.999 is refused before anything runs.
    let o = appgrid()
        .args(["autoscale", "simulate"])
        .arg(&manifest)
        .arg("--trace")
        .arg(&trace)
        .args(["--policy", "forecast", "--quantile", "1.5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("`1.5` is not a quantile from 0.5 to 0.999"),
        "{}",
        text(&o.stderr)
    );
}

/// `--lock-timeout 99999999999h` is a clear error, not an overflow.
#[test]
fn a_huge_lock_timeout_is_refused_clearly() {
    let o = appgrid()
        .args([
            "db",
            "migrate",
            "examples/blog/appgrid.toml",
            "x.sql",
            "--lock-timeout",
            "99999999999h",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("`99999999999h` is too long: the longest accepted is 8784h (366 days)"),
        "{}",
        text(&o.stderr)
    );
}
