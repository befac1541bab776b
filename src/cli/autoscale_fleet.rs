//! `appgrid autoscale install|status|uninstall` (issue 12): the autoscaler
//! runs on a machine of the app instead of a laptop.
//!
//! Install checks everything it can before it connects (the place, state on
//! S3 for a remote machine, the files the manifest names, the credentials),
//! then uploads the running binary (its SHA-256 checked on arrival), the
//! runner's manifest and its files, and starts it: systemd units on `aws`,
//! appgrid's supervisor on `local` and `hosts`. A failed install removes what
//! it put there. Status and uninstall reach the same machine the same way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use appgrid::apply::resolve_path;
use appgrid::autoscale::fleet::{
    self, Freshness, InstallRefused, Installed, Layout, Recorded, Reference, RunnerMode, Supervisor,
};
use appgrid::autoscale::fleet_record::{self, RecordPlace};
use appgrid::autoscale::fleet_units::{self, RunnerSpec};
use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;
use appgrid::manifest::ProviderKind;
use appgrid::remote::Remote;
use appgrid::roles::configure::Fleet;
use appgrid::state::ResourceState;
use appgrid::state::location::StateLocation;

use super::Failure;
use super::providers::{self, FleetVisitor};
use super::term::outln;

pub struct InstallOptions {
    pub file: PathBuf,
    pub on: String,
    pub credentials: Option<PathBuf>,
    pub mode: RunnerMode,
    pub state: Option<PathBuf>,
}

fn fail(text: impl Into<String>) -> Failure {
    Failure::Message(text.into())
}

/// The machine `on` names, from state.
fn machine(ws: &Workspace, on: &str) -> Result<(ResourceAddress, ResourceState), Failure> {
    let address: ResourceAddress = on.parse().map_err(|e| {
        fail(format!(
            "--on {on:?}: {e}; name a machine of the app, e.g. `lb` or `web[0]`"
        ))
    })?;
    if !matches!(address, ResourceAddress::Instance { .. }) {
        return Err(fail(format!(
            "--on {on}: not a machine; name one, e.g. `lb` or `web[0]`"
        )));
    }
    let state = ws
        .load_state()?
        .ok_or_else(|| fail("nothing applied yet: run `appgrid apply` first"))?;
    let record = state.resources.get(&address).cloned().ok_or_else(|| {
        let machines: Vec<String> = state
            .resources
            .keys()
            .filter(|a| matches!(a, ResourceAddress::Instance { .. }))
            .map(ToString::to_string)
            .collect();
        fail(format!(
            "--on {address}: {} has no such machine (it has {})",
            ws.manifest.manifest.app.name,
            machines.join(", ")
        ))
    })?;
    Ok((address, record))
}

/// A directory as a tar that keeps names and modes (so the release's digest
/// on the machine is the one here).
fn tar(dir: &Path) -> Result<Vec<u8>, Failure> {
    let out = std::process::Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run tar: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "cannot pack {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// One file to put on the machine: (path there, bytes, mode).
type Upload = (String, Vec<u8>, u32);

/// Everything install sends, read before anything is contacted.
struct Payload {
    uploads: Vec<Upload>,
    /// Archives (names under the app directory) the script unpacks.
    archives: Vec<&'static str>,
    sha256: String,
    manifest: String,
    env: Vec<String>,
    args: Vec<String>,
    credentials: Option<String>,
}

impl Payload {
    /// The same payload for a machine whose root is `root` (the `local`
    /// provider's directory; "" on a host): every path the layout made is
    /// under it.
    fn rooted(mut self, root: &str) -> Payload {
        if root.is_empty() {
            return self;
        }
        let base = Layout::new("").dir;
        let under = |path: &str| match path.strip_prefix(&base) {
            Some(rest) => format!("{}{base}{rest}", root.trim_end_matches('/')),
            None => path.to_string(),
        };
        for upload in &mut self.uploads {
            upload.0 = under(&upload.0);
        }
        for e in &mut self.env {
            if let Some((key, value)) = e.split_once('=') {
                *e = format!("{key}={}", under(value));
            }
        }
        self.credentials = self.credentials.as_deref().map(under);
        self.manifest = under(&self.manifest);
        self
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| fail(format!("cannot read {what} {}: {e}", path.display())))
}

fn payload(
    ws: &Workspace,
    layout: &Layout,
    options: &InstallOptions,
    supervisor: Supervisor,
) -> Result<Payload, Failure> {
    let m = &ws.manifest.manifest;
    let exe = std::env::current_exe()
        .map_err(|e| fail(format!("cannot tell where this appgrid binary is: {e}")))?;
    let binary = read(&exe, "this appgrid binary")?;
    let sha256 = appgrid::hash::sha256_hex(&binary);
    let mut uploads: Vec<Upload> = vec![(layout.binary(), binary, 0o755)];
    let mut archives = Vec::new();
    let mut env = Vec::new();
    let mut args = Vec::new();
    let credentials = match &options.credentials {
        Some(path) => {
            let bytes = read(path, "the credentials file")?;
            uploads.push((layout.credentials(), bytes, 0o600));
            if supervisor == Supervisor::Appgrid {
                env.push(format!(
                    "AWS_SHARED_CREDENTIALS_FILE={}",
                    layout.credentials()
                ));
            }
            Some(layout.credentials())
        }
        None => None,
    };
    let manifest = if m.provider.kind == ProviderKind::Local {
        // This machine: the runner reads the manifest, its files and the
        // state where they are.
        let absolute =
            |p: &Path| std::path::absolute(p).map_err(|e| fail(format!("{}: {e}", p.display())));
        env.push(format!(
            "APPGRID_LOCAL_ROOT={}",
            absolute(&appgrid::cloud::local::LocalCloud::default_base())?.display()
        ));
        if let StateLocation::File(path) = &ws.state_location {
            args.push("--state".into());
            args.push(absolute(path)?.display().to_string());
        }
        absolute(&ws.manifest.path)?.display().to_string()
    } else {
        let refs: Vec<Reference> = fleet::references(m);
        for r in &refs {
            let local = resolve_path(&r.written, &ws.base_dir);
            let there = format!("{}/{}", layout.app_dir(), r.copy);
            if r.dir {
                uploads.push((format!("{there}.tar"), tar(&local)?, 0o600));
                archives.push(r.copy);
            } else {
                uploads.push((
                    there.clone(),
                    read(&local, &format!("[{}] {}", r.table, r.key))?,
                    0o600,
                ));
                let public = PathBuf::from(format!("{}.pub", local.display()));
                if r.key == "ssh_key" && public.exists() {
                    uploads.push((
                        format!("{there}.pub"),
                        read(&public, "the public key")?,
                        0o644,
                    ));
                }
            }
        }
        let text = std::fs::read_to_string(&ws.manifest.path)
            .map_err(|e| fail(format!("cannot read {}: {e}", ws.manifest.path.display())))?;
        let runner = fleet::runner_manifest(&text, &refs)
            .map_err(|e| fail(format!("{}: {e}", ws.manifest.path.display())))?;
        uploads.push((layout.manifest(), runner.into_bytes(), 0o600));
        // The hosts provider's claims travel with the runner (and come back
        // with `autoscale uninstall`).
        let registry = ws.store_path.with_file_name("hosts.json");
        if registry.exists() {
            let there = format!("{}/hosts.json", layout.state_dir(&m.app.name));
            uploads.push((there, read(&registry, "the hosts registry")?, 0o600));
        }
        layout.manifest()
    };
    Ok(Payload {
        uploads,
        archives,
        sha256,
        manifest,
        env,
        args,
        credentials,
    })
}

struct Install<'a> {
    ws: &'a Workspace,
    options: &'a InstallOptions,
    address: ResourceAddress,
    record: ResourceState,
    supervisor: Supervisor,
    interval_s: u64,
    /// Where the install record goes, and the version of it read before
    /// (`None`: there was none): the record is written only over that.
    place: RecordPlace,
    previous: Option<String>,
}

impl FleetVisitor for Install<'_> {
    type Output = (Installed, String);

    async fn visit<F: Fleet>(self, fleet: F) -> Result<Self::Output, Failure> {
        let Install {
            ws,
            options,
            address,
            record,
            supervisor,
            interval_s,
            place,
            previous,
        } = self;
        let app = ws.manifest.manifest.app.name.as_str();
        // Everything is read first: bad input stops here, before the
        // machine is contacted.
        let t0 = Instant::now();
        let p = payload(ws, &Layout::new(""), options, supervisor)?;
        tracing::debug!(
            "install: files read and hashed in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let connected = fleet.connect(address, &record).await.map_err(|e| {
            fail(format!(
                "cannot reach {address} to install the autoscaler: {e}; nothing was installed"
            ))
        })?;
        tracing::debug!(
            "install: connected to {address} after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let remote = connected.remote;
        let root = connected.place.root.clone();
        let layout = Layout::new(&root);
        let p = p.rooted(&root);
        let installed = Installed {
            on: address.to_string(),
            host: connected.place.addr.clone(),
            mode: options.mode,
            supervisor,
            version: env!("CARGO_PKG_VERSION").to_string(),
            sha256: p.sha256.clone(),
            at: jiff::Timestamp::now().as_second().max(0) as u64,
            by: appgrid::release::now_by_this_user().by,
        };
        let spec = RunnerSpec {
            app,
            layout: &layout,
            manifest: &p.manifest,
            mode: options.mode,
            supervisor,
            interval_s,
            credentials: p.credentials.as_deref(),
            env: &p.env,
            args: &p.args,
        };
        let mut uploads = p.uploads;
        if supervisor == Supervisor::Systemd {
            let units = fleet_units::systemd_units(&ws.templates, &spec)
                .map_err(|e| fail(e.to_string()))?;
            for (name, text) in units {
                uploads.push((format!("{}/{name}", layout.dir), text.into_bytes(), 0o644));
            }
        }
        uploads.push((
            layout.installed(),
            serde_json::to_vec(&installed).expect("serializes"),
            0o600,
        ));
        let script =
            fleet_units::install_script(&ws.templates, &spec, &root, &p.sha256, &p.archives)
                .map_err(|e| fail(e.to_string()))?;
        // The same binary already there (a reinstall): not sent again; the
        // install script checks it all the same.
        let there = remote
            .run(
                "autoscale install: binary there",
                &format!(
                    "sha256sum -- {} 2>/dev/null || true",
                    appgrid::templates::shell_quote(&layout.binary())
                ),
            )
            .await
            .map(|o| o.stdout.split_whitespace().next() == Some(p.sha256.as_str()))
            .unwrap_or(false);
        if there {
            uploads.retain(|(path, _, _)| *path != layout.binary());
        }
        tracing::debug!(
            "install: binary there: {there}; uploading {} files after {:.1} s",
            uploads.len(),
            t0.elapsed().as_secs_f64()
        );
        let result = async {
            for (path, bytes, mode) in &uploads {
                remote.put(path, bytes, *mode).await?;
            }
            tracing::debug!(
                "install: uploaded after {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            remote.run("autoscale install", &script).await
        }
        .await;
        tracing::debug!(
            "install: script done after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let undo = || async {
            // Nothing half-installed stays behind.
            if let Ok(undo) = fleet_units::uninstall_script(&ws.templates, &root, &layout, app) {
                let _ = remote.run("autoscale install: undo", &undo).await;
            }
        };
        if let Err(e) = result {
            undo().await;
            return Err(fail(format!(
                "installing the autoscaler on {address} failed: {e}; nothing was left installed"
            )));
        }
        // Recorded beside the state, only over the record read before: of
        // two installs racing on two machines, the later writer is undone.
        match fleet_record::write_installed(&place, &installed, previous.as_deref()) {
            Ok(true) => {}
            Ok(false) => {
                undo().await;
                return Err(fail(
                    InstallRefused::Raced {
                        app: app.to_string(),
                        manifest: ws.manifest_arg.clone(),
                        record: place.to_string(),
                    }
                    .to_string(),
                ));
            }
            Err(e) => {
                undo().await;
                return Err(fail(format!(
                    "cannot record the install at {place}: {e}; the install was undone"
                )));
            }
        }
        Ok((installed, layout.dir))
    }
}

fn policy_interval(ws: &Workspace) -> u64 {
    ws.manifest
        .manifest
        .autoscale
        .as_ref()
        .and_then(|a| appgrid::autoscale::Policy::load(a).ok())
        .map_or(60, |p| p.interval_s)
}

/// The machines in state (`lb`, `web[0]`…).
fn machines(ws: &Workspace) -> Result<Vec<String>, Failure> {
    Ok(ws
        .load_state()?
        .map(|s| {
            s.resources
                .keys()
                .filter(|a| matches!(a, ResourceAddress::Instance { .. }))
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Refuses an install when the record beside the state names a runner on
/// another machine that is still there (asked over the same transport);
/// the record's version otherwise, for the conditional write after.
async fn check_recorded(
    ws: &Workspace,
    place: &RecordPlace,
    address: ResourceAddress,
) -> Result<Option<String>, Failure> {
    let app = ws.manifest.manifest.app.name.clone();
    let Some((recorded, version)) =
        fleet_record::read_installed(place).map_err(|e| fail(e.to_string()))?
    else {
        return Ok(None);
    };
    match fleet::recorded(Some(&recorded.on), &address.to_string(), &machines(ws)?) {
        Recorded::Nothing | Recorded::Here => {}
        Recorded::Gone { on } => tracing::warn!(
            "{place} named {on}, which {app} no longer has: its autoscaler went with it; replacing the record"
        ),
        Recorded::Elsewhere { on } => {
            match on_machine(
                ws,
                &on,
                "autoscale install: the recorded runner",
                fleet_units::status_script,
            )
            .await
            {
                Ok((_, host, stdout)) => {
                    let there = fleet::parse_observed(&stdout)
                        .map(|o| o.installed.is_some())
                        .unwrap_or(true);
                    if there {
                        return Err(fail(
                            InstallRefused::Elsewhere {
                                app,
                                manifest: ws.manifest_arg.clone(),
                                on,
                                host,
                                by: recorded.by,
                                record: place.to_string(),
                            }
                            .to_string(),
                        ));
                    }
                    tracing::warn!(
                        "{place} named {on} ({host}), where no autoscaler is installed any more; replacing the record"
                    );
                }
                Err(e) => {
                    return Err(fail(
                        InstallRefused::Unverifiable {
                            app,
                            manifest: ws.manifest_arg.clone(),
                            on,
                            record: place.to_string(),
                            detail: super::report::plain_text(&e),
                        }
                        .to_string(),
                    ));
                }
            }
        }
    }
    Ok(Some(version))
}

pub async fn install(options: InstallOptions) -> Result<ExitCode, Failure> {
    let started = Instant::now();
    let ws = Workspace::open(&options.file, options.state.as_deref())?;
    let m = &ws.manifest.manifest;
    let kind = m.provider.kind;
    // `--state s3://…` counts as state on S3 as much as `[state]` does.
    let backend = match (&ws.state_location, &m.state) {
        (StateLocation::S3(s3), _) => Some(appgrid::manifest::StateBackend::S3 {
            bucket: s3.bucket.clone(),
            key: Some(s3.key.clone()),
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
        }),
        (StateLocation::File(_), _) => None,
    };
    fleet::check_place(
        &ws.manifest.path.display().to_string(),
        kind,
        backend.as_ref(),
        m.autoscale.is_some(),
        &options.on,
        options.mode,
    )
    .map_err(|e| fail(e.to_string()))?;
    let (address, record) = machine(&ws, &options.on)?;
    let place = RecordPlace::of(&ws.state_location);
    let previous = check_recorded(&ws, &place, address).await?;
    let supervisor = Supervisor::for_provider(kind);
    let (installed, dir) = providers::with_fleet(
        &ws,
        Install {
            ws: &ws,
            options: &options,
            address,
            record,
            supervisor,
            interval_s: policy_interval(&ws),
            place,
            previous,
        },
    )
    .await?;
    outln!(
        "Installed the autoscaler of {} on {} ({}): appgrid {} (sha256 {}), {} {}, in {}; {:.1} s.",
        m.app.name,
        installed.on,
        installed.host,
        installed.version,
        &installed.sha256[..12],
        installed.mode,
        match supervisor {
            Supervisor::Systemd => "under systemd",
            Supervisor::Appgrid => "under appgrid's supervisor",
        },
        dir,
        started.elapsed().as_secs_f64()
    );
    if kind == ProviderKind::Hosts {
        outln!(
            "note: the pool's claims (hosts.json) now live with the runner; \
             run `appgrid autoscale uninstall` before an `apply` from here, which brings them back"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one rendered script on the machine `on` names.
struct OnMachine {
    address: ResourceAddress,
    record: ResourceState,
    templates: appgrid::templates::Templates,
    app: String,
    script: fn(
        &appgrid::templates::Templates,
        &str,
        &Layout,
        &str,
    ) -> Result<String, appgrid::templates::TemplateError>,
    step: &'static str,
}

impl FleetVisitor for OnMachine {
    type Output = (String, String);

    async fn visit<F: Fleet>(self, fleet: F) -> Result<Self::Output, Failure> {
        let connected = fleet
            .connect(self.address, &self.record)
            .await
            .map_err(|e| fail(format!("cannot reach {}: {e}", self.address)))?;
        let root = connected.place.root.clone();
        let script = (self.script)(&self.templates, &root, &Layout::new(&root), &self.app)
            .map_err(|e| fail(e.to_string()))?;
        let out = connected
            .remote
            .run(self.step, &script)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok((connected.place.addr, out.stdout))
    }
}

async fn on_machine(
    ws: &Workspace,
    on: &str,
    step: &'static str,
    script: fn(
        &appgrid::templates::Templates,
        &str,
        &Layout,
        &str,
    ) -> Result<String, appgrid::templates::TemplateError>,
) -> Result<(ResourceAddress, String, String), Failure> {
    let (address, record) = machine(ws, on)?;
    let (host, stdout) = providers::with_fleet(
        ws,
        OnMachine {
            address,
            record,
            templates: ws.templates.clone(),
            app: ws.manifest.manifest.app.name.clone(),
            script,
            step,
        },
    )
    .await?;
    Ok((address, host, stdout))
}

pub async fn status(file: &Path, on: &str, state: Option<&Path>) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let app = ws.manifest.manifest.app.name.clone();
    // Beside the state first (what every teammate can read), then the machine.
    let place = RecordPlace::of(&ws.state_location);
    let recorded = fleet_record::read_installed(&place)
        .map_err(|e| tracing::warn!("{e}"))
        .ok()
        .flatten()
        .map(|(r, _)| r);
    let published = fleet_record::read_beat(&place)
        .map_err(|e| tracing::warn!("{e}"))
        .ok()
        .flatten();
    let reached = on_machine(&ws, on, "autoscale status", fleet_units::status_script).await;
    let (address, host, mut o, reach_error) = match reached {
        Ok((address, host, stdout)) => {
            let o = fleet::parse_observed(&stdout)
                .map_err(|e| fail(format!("{address} ({host}): {e}")))?;
            (address, host, o, None)
        }
        // The machine does not answer: what the state's side records still tells.
        Err(e) if recorded.as_ref().is_some_and(|r| r.on == on) => {
            let r = recorded.clone().expect("checked");
            let address = machine(&ws, on)?.0;
            let o = fleet::Observed {
                installed: Some(r.clone()),
                ..Default::default()
            };
            (address, r.host, o, Some(super::report::plain_text(&e)))
        }
        Err(e) => return Err(e),
    };
    let beat_source = match published {
        Some((beat, at)) if beat.on == address.to_string() => {
            let newer = o
                .heartbeat
                .as_ref()
                .is_none_or(|there| beat.heartbeat.at >= there.at);
            if newer {
                o.heartbeat = Some(beat.heartbeat);
                Some(at)
            } else {
                None
            }
        }
        _ => None,
    };
    let Some(installed) = &o.installed else {
        outln!("The autoscaler of {app} is not installed on {address} ({host}).");
        if let Some(r) = recorded.filter(|r| r.on != address.to_string()) {
            outln!(
                "It is recorded on {} ({}) at {place}: `appgrid autoscale status {} --on {}`.",
                r.on,
                r.host,
                ws.manifest_arg,
                r.on
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let running = if let Some(why) = &reach_error {
        format!("unknown (cannot reach it: {why})")
    } else if o.pids.is_empty() {
        "not running".to_string()
    } else {
        let pids: Vec<String> = o.pids.iter().map(ToString::to_string).collect();
        format!("running (pid {})", pids.join(" "))
    };
    let unit = if o.unit_state.is_empty() {
        String::new()
    } else {
        format!(", unit {}", o.unit_state)
    };
    outln!(
        "autoscaler of {app} on {address} ({host}): {running}, {} mode{unit}",
        installed.mode
    );
    outln!(
        "installed: appgrid {} (sha256 {}) at {} by {}",
        installed.version,
        &installed.sha256[..installed.sha256.len().min(12)],
        appgrid::autoscale::format_time(installed.at as i64),
        installed.by
    );
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    match &o.heartbeat {
        None => outln!("last pass: none yet"),
        Some(hb) => {
            match &hb.last {
                Ok(entry) => outln!("last pass: {}", entry.line()),
                Err(why) => outln!("last pass: failed: {why}"),
            }
            match fleet::freshness(hb, now) {
                Freshness::Fresh { age_s } => {
                    outln!(
                        "heartbeat: {age_s} s ago (pid {}, {} passes)",
                        hb.pid,
                        hb.passes
                    )
                }
                Freshness::Stale { age_s } => {
                    outln!(
                        "heartbeat: {age_s} s ago (pid {}, {} passes): STALE",
                        hb.pid,
                        hb.passes
                    );
                    tracing::warn!(
                        "the autoscaler on {address} made no pass for {age_s} s (interval {} s): \
                         see its log (/var/log/appgrid/{}.log there, or `journalctl -u {}`)",
                        hb.interval_s,
                        fleet::SERVICE,
                        fleet_units::unit_name()
                    );
                }
            }
        }
    }
    if let Some(at) = beat_source {
        outln!("heartbeat read from {at}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn uninstall(file: &Path, on: &str, state: Option<&Path>) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let app = ws.manifest.manifest.app.name.clone();
    let (address, host, stdout) = on_machine(
        &ws,
        on,
        "autoscale uninstall",
        fleet_units::uninstall_script,
    )
    .await?;
    if let Some((_, registry)) = stdout.split_once(&format!("{}\n", fleet_units::REGISTRY_MARK)) {
        // The runner's claims are the current ones: they come back here.
        let path = ws.store_path.with_file_name("hosts.json");
        let guard = appgrid::durable::suffixed(&path, ".lock");
        let _held = appgrid::durable::FileLock::exclusive(&guard)
            .map_err(|e| fail(format!("{}: {e}", guard.display())))?;
        serde_json::from_str::<serde_json::Value>(registry)
            .map_err(|e| fail(format!("the runner's hosts registry on {address} is not JSON ({e}); it was removed with the runner")))?;
        appgrid::durable::replace(&path, registry.as_bytes(), 0o600)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    // The record beside the state goes too, when it names this machine.
    let place = RecordPlace::of(&ws.state_location);
    let recorded = fleet_record::read_installed(&place).map_err(|e| fail(e.to_string()))?;
    if recorded.is_none_or(|(r, _)| r.on == address.to_string()) {
        fleet_record::remove(&place).map_err(|e| {
            fail(format!(
                "the autoscaler is removed from {address}, but its record at {place} is not: {e}"
            ))
        })?;
    }
    if stdout.lines().any(|l| l == "absent") {
        outln!("The autoscaler of {app} is not installed on {address} ({host}); nothing to do.");
    } else {
        outln!("Removed the autoscaler of {app} from {address} ({host}).");
    }
    Ok(ExitCode::SUCCESS)
}
