//! The files and scripts `autoscale install/status/uninstall` render
//! (`templates/autoscale/`): systemd units for the `aws` provider, and the
//! scripts that start, read and remove the runner (under appgrid's
//! supervisor on `local` and `hosts`, under systemd on `aws`).

use tera::Context;

use super::fleet::{Layout, RunnerMode, SERVICE, Supervisor};
use crate::templates::{TemplateError, Templates};

/// What the runner is started with.
#[derive(Debug, Clone)]
pub struct RunnerSpec<'a> {
    pub app: &'a str,
    pub layout: &'a Layout,
    /// The manifest the runner reads (its copy, or the user's own on `local`).
    pub manifest: &'a str,
    pub mode: RunnerMode,
    pub supervisor: Supervisor,
    pub interval_s: u64,
    /// Where the uploaded credentials are, if any.
    pub credentials: Option<&'a str>,
    /// `KEY=VALUE` for the runner's environment (supervisor only).
    pub env: &'a [String],
    /// More arguments (`--state PATH` on `local`).
    pub args: &'a [String],
}

pub fn unit_name() -> String {
    format!("{SERVICE}.service")
}

pub fn timer_name() -> String {
    format!("{SERVICE}.timer")
}

fn base(spec: &RunnerSpec<'_>) -> Context {
    let mut c = Context::new();
    c.insert("app", spec.app);
    c.insert("mode", &spec.mode.to_string());
    c.insert("supervisor", &spec.supervisor);
    c.insert("dir", &spec.layout.dir);
    c.insert("app_dir", &spec.layout.app_dir());
    c.insert("binary", &spec.layout.binary());
    c.insert("manifest", spec.manifest);
    c.insert("heartbeat", &spec.layout.heartbeat());
    c.insert("credentials", &spec.credentials);
    c.insert("interval_s", &spec.interval_s.max(1));
    c.insert("env", spec.env);
    c.insert("args", spec.args);
    c.insert("service", SERVICE);
    c.insert("unit", &unit_name());
    c.insert("timer", &timer_name());
    c
}

/// The systemd units (file name, text): the service, and in timer mode the timer.
pub fn systemd_units(
    t: &Templates,
    spec: &RunnerSpec<'_>,
) -> Result<Vec<(String, String)>, TemplateError> {
    let c = base(spec);
    let mut units = vec![(
        unit_name(),
        t.render("autoscale/appgrid-autoscale.service", &c)?,
    )];
    if spec.mode == RunnerMode::Timer {
        units.push((
            timer_name(),
            t.render("autoscale/appgrid-autoscale.timer", &c)?,
        ));
    }
    Ok(units)
}

/// The script that checks the binary's checksum, unpacks `archives` (names
/// under the app directory, each uploaded as `NAME.tar`) and (re)starts the
/// runner; on a machine whose `root` is given (the `local` provider's
/// directory, "" on a host).
pub fn install_script(
    t: &Templates,
    spec: &RunnerSpec<'_>,
    root: &str,
    sha256: &str,
    archives: &[&str],
) -> Result<String, TemplateError> {
    let mut c = base(spec);
    c.insert("root", root);
    c.insert("sha256", sha256);
    c.insert("archives", archives);
    let units: Vec<String> = match (spec.supervisor, spec.mode) {
        (Supervisor::Systemd, RunnerMode::Timer) => vec![unit_name(), timer_name()],
        (Supervisor::Systemd, RunnerMode::Loop) => vec![unit_name()],
        (Supervisor::Appgrid, _) => Vec::new(),
    };
    c.insert("units", &units);
    // In timer mode systemd starts the timer, which starts the service.
    if spec.mode == RunnerMode::Timer {
        c.insert("unit", &timer_name());
    }
    t.render("autoscale/install.sh", &c)
}

fn plain(
    t: &Templates,
    name: &str,
    root: &str,
    layout: &Layout,
    app: &str,
) -> Result<String, TemplateError> {
    let mut c = Context::new();
    c.insert("root", root);
    c.insert("dir", &layout.dir);
    c.insert("app", app);
    c.insert("service", SERVICE);
    c.insert("unit", &unit_name());
    c.insert("timer", &timer_name());
    t.render(name, &c)
}

/// `KEY VALUE` lines: `installed`, `heartbeat`, `pids`, `unit` (see
/// [`super::fleet::parse_observed`]).
pub fn status_script(
    t: &Templates,
    root: &str,
    layout: &Layout,
    app: &str,
) -> Result<String, TemplateError> {
    plain(t, "autoscale/status.sh", root, layout, app)
}

/// Stops and removes the runner; prints `--- registry` and the runner's
/// hosts registry when it kept one.
pub fn uninstall_script(
    t: &Templates,
    root: &str,
    layout: &Layout,
    app: &str,
) -> Result<String, TemplateError> {
    plain(t, "autoscale/uninstall.sh", root, layout, app)
}

/// The marker line `uninstall.sh` prints before the runner's hosts registry.
pub const REGISTRY_MARK: &str = "--- registry";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(
        layout: &'a Layout,
        manifest: &'a str,
        mode: RunnerMode,
        creds: Option<&'a str>,
    ) -> RunnerSpec<'a> {
        RunnerSpec {
            app: "blog",
            layout,
            manifest,
            mode,
            supervisor: Supervisor::Systemd,
            interval_s: 30,
            credentials: creds,
            env: &[],
            args: &[],
        }
    }

    /// `systemd-analyze verify` on the rendered units, with the runner's
    /// files where the units say (it checks that ExecStart is executable).
    fn verify(dir: &std::path::Path, units: &[(String, String)]) -> Option<String> {
        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let mut paths = Vec::new();
        for (name, text) in units {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            paths.push(p);
        }
        let out = std::process::Command::new(analyze)
            .arg("verify")
            .args(&paths)
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // Only what concerns our units (the host's own may be noisy).
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(SERVICE)).collect();
        Some(if out.status.success() && ours.is_empty() {
            String::new()
        } else {
            format!("{}: {}", out.status, ours.join("\n"))
        })
    }

    #[test]
    fn the_units_render_and_systemd_accepts_them() {
        let t = Templates::embedded();
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(&root.path().display().to_string());
        std::fs::create_dir_all(layout.app_dir()).unwrap();
        std::fs::copy("/bin/true", layout.binary()).unwrap();
        let manifest = layout.manifest();
        let creds = layout.credentials();

        let units = systemd_units(
            &t,
            &spec(&layout, &manifest, RunnerMode::Loop, Some(&creds)),
        )
        .unwrap();
        assert_eq!(units.len(), 1);
        let service = &units[0].1;
        assert!(service.contains("Type=simple\nRestart=always"), "{service}");
        assert!(
            service.contains(&format!(
                "ExecStart={} autoscale {manifest} --heartbeat {}\n",
                layout.binary(),
                layout.heartbeat()
            )),
            "{service}"
        );
        assert!(service.contains(&format!(
            "Environment=AWS_SHARED_CREDENTIALS_FILE={creds}\n"
        )));
        assert!(service.contains("WantedBy=multi-user.target"));
        if let Some(problems) = verify(root.path(), &units) {
            assert_eq!(problems, "", "{service}");
        }

        let units = systemd_units(&t, &spec(&layout, &manifest, RunnerMode::Timer, None)).unwrap();
        let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["appgrid-autoscale.service", "appgrid-autoscale.timer"]
        );
        let (service, timer) = (&units[0].1, &units[1].1);
        assert!(service.contains("Type=oneshot"), "{service}");
        assert!(service.contains(" --once --heartbeat "), "{service}");
        assert!(
            !service.contains("[Install]"),
            "the timer starts it: {service}"
        );
        assert!(
            !service.contains("AWS_SHARED_CREDENTIALS_FILE"),
            "the instance role: {service}"
        );
        assert!(timer.contains("OnUnitActiveSec=30s"), "{timer}");
        assert!(timer.contains("WantedBy=timers.target"), "{timer}");
        let dir = tempfile::tempdir().unwrap();
        if let Some(problems) = verify(dir.path(), &units) {
            // The service's binary is where the layout says, in `root`.
            assert_eq!(problems, "", "{service}\n{timer}");
        }
    }

    #[test]
    fn a_broken_unit_is_caught_by_the_check() {
        // The check itself can fail: a unit whose ExecStart does not exist.
        let dir = tempfile::tempdir().unwrap();
        let broken = vec![(
            unit_name(),
            "[Service]\nType=simple\nExecStart=/nonexistent/appgrid-autoscale-bin autoscale\n"
                .to_string(),
        )];
        if let Some(problems) = verify(dir.path(), &broken) {
            assert!(
                !problems.is_empty(),
                "systemd-analyze accepted a unit with no binary"
            );
        }
    }

    #[test]
    fn the_install_script_quotes_what_it_is_given_and_checks_the_binary() {
        let t = Templates::embedded();
        let layout = Layout::new("/tmp/it's here");
        let env = vec!["AWS_SHARED_CREDENTIALS_FILE=/tmp/it's here/credentials".to_string()];
        let args = vec!["--state".to_string(), "/s p/state.json".to_string()];
        let manifest = layout.manifest();
        let spec = RunnerSpec {
            app: "blog",
            layout: &layout,
            manifest: &manifest,
            mode: RunnerMode::Loop,
            supervisor: Supervisor::Appgrid,
            interval_s: 2,
            credentials: None,
            env: &env,
            args: &args,
        };
        let script = install_script(&t, &spec, "/tmp/it's here", "abc123", &["release"]).unwrap();
        assert!(
            script.contains(r"DIR='/tmp/it'\''s here/var/lib/appgrid/autoscale'"),
            "{script}"
        );
        assert!(script.contains("if [ \"$got\" != abc123 ]"), "{script}");
        assert!(
            script.contains(
                r"svc_start appgrid-autoscale root env 'AWS_SHARED_CREDENTIALS_FILE=/tmp/it'\''s here/credentials' "
            ),
            "{script}"
        );
        assert!(
            script.contains(r" --state '/s p/state.json' --heartbeat "),
            "{script}"
        );
        assert!(
            script.contains("tar -xpf \"$DIR/app/\"release.tar"),
            "{script}"
        );
        assert!(!script.contains("systemctl"), "{script}");
        // Shell syntax holds.
        let ok = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .status()
            .unwrap();
        assert!(ok.success(), "{script}");
        for s in [
            status_script(&t, "", &Layout::new(""), "blog").unwrap(),
            uninstall_script(&t, "", &Layout::new(""), "blog").unwrap(),
        ] {
            let ok = std::process::Command::new("sh")
                .args(["-n", "-c", &s])
                .status()
                .unwrap();
            assert!(ok.success(), "{s}");
        }
    }
}
