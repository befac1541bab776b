//! The autoscaler on the fleet (issue 12): what `appgrid autoscale install`
//! puts on a machine of the app, what the runner leaves there for `autoscale
//! status` to read, and the checks made before anything is copied.
//!
//! Pure: the CLI gathers files and talks to the machine; this module decides
//! where things go ([`Layout`]), whether a place can run the autoscaler at all
//! ([`check_place`]), the manifest the runner reads ([`runner_manifest`]:
//! the user's, with every path it names pointing at the copies beside it),
//! and how fresh a heartbeat is ([`Freshness`]). The rendered units and
//! scripts are in [`super::fleet_units`].
//!
//! The runner needs the manifest and the remote state, never a local state
//! file: on a machine other than this one, state must be on S3 (the state
//! lock there keeps two runners, or a runner and a person, from acting at
//! once). Its heartbeat and last pass are on the machine it runs on
//! (`heartbeat.json` in its directory, read over the same transport that
//! installed it) and, with state on S3, beside the state too
//! ([`super::fleet_record`]). One runner per app: [`recorded`] decides what
//! an install does given the record of where one already runs.

use serde::{Deserialize, Serialize};

use super::live::Entry;
use crate::manifest::{ProviderKind, StateBackend};

/// The directory, under the machine's root, the runner lives in.
pub const RUNNER_DIR: &str = "/var/lib/appgrid/autoscale";
/// The supervisor's service name (local and hosts) and the systemd unit stem (aws).
pub const SERVICE: &str = "appgrid-autoscale";

/// How the runner runs: one process looping every `interval`, or one pass
/// (`autoscale --once`) every `interval` started by a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerMode {
    Loop,
    Timer,
}

impl std::fmt::Display for RunnerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunnerMode::Loop => "loop",
            RunnerMode::Timer => "timer",
        })
    }
}

/// How the runner is kept running on its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// systemd units (`aws`: a real host of its own).
    Systemd,
    /// appgrid's own supervisor (`lib/service.sh`: flock start, session and
    /// marks), as every other service on `local` and `hosts` machines.
    Appgrid,
}

impl Supervisor {
    pub fn for_provider(kind: ProviderKind) -> Supervisor {
        match kind {
            ProviderKind::Aws => Supervisor::Systemd,
            ProviderKind::Local | ProviderKind::Hosts => Supervisor::Appgrid,
        }
    }
}

/// Where the runner's files are on its machine (`root` is "" on a real host,
/// the machine's directory on the `local` provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub dir: String,
}

impl Layout {
    pub fn new(root: &str) -> Layout {
        Layout {
            dir: format!("{}{RUNNER_DIR}", root.trim_end_matches('/')),
        }
    }
    pub fn binary(&self) -> String {
        format!("{}/appgrid", self.dir)
    }
    /// The project copy: manifest, release, schema, key, templates.
    pub fn app_dir(&self) -> String {
        format!("{}/app", self.dir)
    }
    pub fn manifest(&self) -> String {
        format!("{}/app/appgrid.toml", self.dir)
    }
    pub fn credentials(&self) -> String {
        format!("{}/credentials", self.dir)
    }
    pub fn heartbeat(&self) -> String {
        format!("{}/heartbeat.json", self.dir)
    }
    pub fn installed(&self) -> String {
        format!("{}/installed.json", self.dir)
    }
    /// Files kept beside state by the runner (`.appgrid/APP/`): the hosts
    /// registry, the autoscale record.
    pub fn state_dir(&self, app: &str) -> String {
        format!("{}/app/.appgrid/{app}", self.dir)
    }
}

/// Why a machine cannot run the autoscaler; nothing was installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error(
        "{manifest}: the autoscaler on {on} would need this machine's state file; \
         put state on S3 first (`[state] backend = \"s3\"`, then `appgrid state migrate {manifest} --to s3://BUCKET/KEY`), \
         so the runner and you share one state and one lock"
    )]
    StateNotShared { manifest: String, on: String },
    #[error(
        "`--mode timer` needs systemd (the aws provider); on {provider} machines the runner is a loop under appgrid's supervisor"
    )]
    TimerWithoutSystemd { provider: String },
    #[error("{manifest} has no [autoscale] table: add one (metric, target, min, max) first")]
    NoPolicy { manifest: String },
}

/// Whether the autoscaler of an app with `provider` and `state` can run on
/// `on` in `mode`: a remote machine needs state on S3; `local` machines are
/// this machine, so a state file serves.
pub fn check_place(
    manifest: &str,
    provider: ProviderKind,
    state: Option<&StateBackend>,
    has_policy: bool,
    on: &str,
    mode: RunnerMode,
) -> Result<(), PlaceError> {
    if !has_policy {
        return Err(PlaceError::NoPolicy {
            manifest: manifest.to_string(),
        });
    }
    if provider != ProviderKind::Local && !matches!(state, Some(StateBackend::S3 { .. })) {
        return Err(PlaceError::StateNotShared {
            manifest: manifest.to_string(),
            on: on.to_string(),
        });
    }
    if mode == RunnerMode::Timer && Supervisor::for_provider(provider) != Supervisor::Systemd {
        return Err(PlaceError::TimerWithoutSystemd {
            provider: format!("{provider:?}").to_lowercase(),
        });
    }
    Ok(())
}

/// Why `autoscale install` will not put a second runner in place; nothing
/// was changed. A runner on the same machine is upgraded in place instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallRefused {
    #[error(
        "the autoscaler of {app} already runs on {on} ({host}), installed by {by} (recorded at \
         {record}); two runners would scale one app. Run `appgrid autoscale uninstall {manifest} \
         --on {on}` first, or `appgrid autoscale install {manifest} --on {on}` to upgrade it in \
         place. Nothing was changed"
    )]
    Elsewhere {
        app: String,
        manifest: String,
        on: String,
        host: String,
        by: String,
        record: String,
    },
    #[error(
        "the autoscaler of {app} is recorded as running on {on} ({record}), which cannot be \
         reached to check ({detail}); run `appgrid autoscale uninstall {manifest} --on {on}` once \
         it answers, or, if that machine is gone for good, remove {record}. Nothing was changed"
    )]
    Unverifiable {
        app: String,
        manifest: String,
        on: String,
        record: String,
        detail: String,
    },
    #[error(
        "another `autoscale install` of {app} changed {record} while this one ran; this install \
         was undone. See `appgrid autoscale status {manifest}`, then retry if still wanted"
    )]
    Raced {
        app: String,
        manifest: String,
        record: String,
    },
}

/// What the install record says of an install `--on` a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No runner recorded: install.
    Nothing,
    /// The runner is on this very machine: upgrade it in place.
    Here,
    /// On another machine of the app: refused unless it is no longer there
    /// (the caller asks that machine).
    Elsewhere { on: String },
    /// On a machine the state no longer has (destroyed with its runner):
    /// the record is stale and replaced.
    Gone { on: String },
}

/// Decides from the record (`recorded`: the machine it names), the target
/// `on`, and the machines in state.
pub fn recorded(recorded: Option<&str>, on: &str, machines: &[String]) -> Recorded {
    match recorded {
        None => Recorded::Nothing,
        Some(r) if r == on => Recorded::Here,
        Some(r) if machines.iter().any(|m| m == r) => Recorded::Elsewhere { on: r.to_string() },
        Some(r) => Recorded::Gone { on: r.to_string() },
    }
}

/// A path the manifest names that the runner needs a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `[table] key`, e.g. (`release`, `path`).
    pub table: &'static str,
    pub key: &'static str,
    /// As written in the manifest.
    pub written: String,
    /// The copy's path relative to the runner's app directory.
    pub copy: &'static str,
    /// A directory (copied whole) or a file.
    pub dir: bool,
}

/// The paths in `m` the runner reads: the release (to release new web
/// servers), the schema (read by the graph), the SSH key (hosts and aws), a
/// templates directory.
pub fn references(m: &crate::manifest::Manifest) -> Vec<Reference> {
    let mut refs = Vec::new();
    if let Some(t) = &m.app.templates {
        refs.push(Reference {
            table: "app",
            key: "templates",
            written: t.clone(),
            copy: "templates",
            dir: true,
        });
    }
    if m.provider.kind != ProviderKind::Local {
        refs.push(Reference {
            table: "provider",
            key: "ssh_key",
            written: m.provider.ssh_key.clone(),
            copy: "ssh_key",
            dir: false,
        });
    }
    if let Some(r) = &m.release {
        refs.push(Reference {
            table: "release",
            key: "path",
            written: r.path.clone(),
            copy: "release",
            dir: true,
        });
    }
    if let Some(schema) = m.database.as_ref().and_then(|d| d.schema.as_ref()) {
        refs.push(Reference {
            table: "database",
            key: "schema",
            written: schema.clone(),
            copy: "schema.sql",
            dir: false,
        });
    }
    refs
}

/// The manifest text the runner reads: `text` with each reference's value
/// replaced by the relative path of its copy (comments and layout are not
/// kept: the runner's copy is for the runner).
pub fn runner_manifest(text: &str, refs: &[Reference]) -> Result<String, String> {
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e| format!("the manifest does not parse: {e}"))?;
    for r in refs {
        let table = doc
            .get_mut(r.table)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("the manifest has no [{}] table", r.table))?;
        table.insert(r.key.to_string(), toml::Value::String(r.copy.to_string()));
    }
    toml::to_string(&doc).map_err(|e| format!("cannot write the runner's manifest: {e}"))
}

/// What `install` left on the machine (`installed.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    /// The resource address it runs on (`lb`, `web[0]`…).
    pub on: String,
    /// The address it was reached at.
    pub host: String,
    pub mode: RunnerMode,
    pub supervisor: Supervisor,
    /// appgrid's version and the binary's SHA-256, checked on arrival.
    pub version: String,
    pub sha256: String,
    /// Unix seconds.
    pub at: u64,
    pub by: String,
}

impl Installed {
    /// A record of a runner on `on` (10.0.0.1, a loop under appgrid's
    /// supervisor) installed by `by`: for tests.
    #[doc(hidden)]
    pub fn for_test(on: &str, by: &str) -> Installed {
        Installed {
            on: on.into(),
            host: "10.0.0.1".into(),
            mode: RunnerMode::Loop,
            supervisor: Supervisor::Appgrid,
            version: "0.1.0".into(),
            sha256: "ab".into(),
            at: 5,
            by: by.into(),
        }
    }
}

/// What the runner writes after every pass (`heartbeat.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Unix seconds of the latest pass's end.
    pub at: u64,
    pub pid: u32,
    /// Passes this process made (a timer runner: always 1).
    pub passes: u64,
    /// The latest pass: its entry, or why it failed.
    pub last: Result<Entry, String>,
    /// The policy's interval, seconds: a heartbeat older than a few of them is stale.
    pub interval_s: u64,
}

/// How old a heartbeat is, judged at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh {
        age_s: u64,
    },
    /// More than [`STALE_INTERVALS`] intervals (at least a minute) without a pass.
    Stale {
        age_s: u64,
    },
}

/// Missed passes before a heartbeat is called stale.
pub const STALE_INTERVALS: u64 = 3;

pub fn freshness(heartbeat: &Heartbeat, now: u64) -> Freshness {
    let age_s = now.saturating_sub(heartbeat.at);
    let limit = (heartbeat.interval_s.max(1) * STALE_INTERVALS).max(60);
    if age_s > limit {
        Freshness::Stale { age_s }
    } else {
        Freshness::Fresh { age_s }
    }
}

/// What `status.sh` printed, read back: each a line `KEY VALUE`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub installed: Option<Installed>,
    pub heartbeat: Option<Heartbeat>,
    /// Live pids of the runner (supervisor) or the unit's main pid (systemd).
    pub pids: Vec<u32>,
    /// The systemd unit that keeps it (the timer in timer mode) and its
    /// `ActiveState` (aws), else empty.
    pub unit_state: String,
}

pub fn parse_observed(stdout: &str) -> Result<Observed, String> {
    let mut o = Observed::default();
    for line in stdout.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "installed" if !value.is_empty() => {
                o.installed = Some(
                    serde_json::from_str(value)
                        .map_err(|e| format!("installed.json is not readable ({e})"))?,
                );
            }
            "heartbeat" if !value.is_empty() => {
                o.heartbeat = Some(
                    serde_json::from_str(value)
                        .map_err(|e| format!("heartbeat.json is not readable ({e})"))?,
                );
            }
            "pids" => {
                o.pids = value
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .filter(|p| *p != 0)
                    .collect();
            }
            "unit" => o.unit_state = value.trim().to_string(),
            _ => {}
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_runner_needs_state_on_s3_and_timers_need_systemd() {
        let s3 = StateBackend::S3 {
            bucket: "b".into(),
            key: None,
            region: None,
            endpoint: None,
        };
        let check = |kind, state, mode| check_place("app.toml", kind, state, true, "lb", mode);
        let err = check(ProviderKind::Hosts, None, RunnerMode::Loop).unwrap_err();
        assert!(err.to_string().contains("put state on S3 first"), "{err}");
        assert!(matches!(
            check(
                ProviderKind::Aws,
                Some(&StateBackend::Local),
                RunnerMode::Loop
            ),
            Err(PlaceError::StateNotShared { .. })
        ));
        assert_eq!(
            check(ProviderKind::Hosts, Some(&s3), RunnerMode::Loop),
            Ok(())
        );
        assert_eq!(
            check(ProviderKind::Aws, Some(&s3), RunnerMode::Timer),
            Ok(())
        );
        assert_eq!(check(ProviderKind::Local, None, RunnerMode::Loop), Ok(()));
        assert!(matches!(
            check(ProviderKind::Hosts, Some(&s3), RunnerMode::Timer),
            Err(PlaceError::TimerWithoutSystemd { .. })
        ));
        assert!(matches!(
            check_place(
                "a",
                ProviderKind::Local,
                None,
                false,
                "lb",
                RunnerMode::Loop
            ),
            Err(PlaceError::NoPolicy { .. })
        ));
    }

    #[test]
    fn the_runner_manifest_points_at_the_copies_and_keeps_everything_else() {
        let text = "# mine\n[app]\nname = \"blog\"\n[provider]\nkind = \"hosts\"\nssh_key = \"~/.ssh/id\"\n\
                    hosts = [\"10.0.0.1\"]\n[release]\npath = \"../app\"\nstart = \"run it\"\nhealth = \"/h\"\n\
                    [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = 8080\n[load_balancer]\ninstance_type = \"t3.small\"\n\
                    [database]\ninstance_type = \"m5.large\"\nschema = \"/abs/schema.sql\"\n";
        let m = crate::manifest::parse(std::path::Path::new("a.toml"), text).unwrap();
        let refs = references(&m);
        let keys: Vec<_> = refs
            .iter()
            .map(|r| (r.table, r.key, r.written.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("provider", "ssh_key", "~/.ssh/id"),
                ("release", "path", "../app"),
                ("database", "schema", "/abs/schema.sql")
            ]
        );
        let out = runner_manifest(text, &refs).unwrap();
        let again = crate::manifest::parse(std::path::Path::new("b.toml"), &out).unwrap();
        assert_eq!(again.provider.ssh_key, "ssh_key");
        assert_eq!(again.release.as_ref().unwrap().path, "release");
        assert_eq!(
            again.database.as_ref().unwrap().schema.as_deref(),
            Some("schema.sql")
        );
        // Everything else is the same manifest.
        let mut expected = m.clone();
        expected.provider.ssh_key = "ssh_key".into();
        expected.release.as_mut().unwrap().path = "release".into();
        expected.database.as_mut().unwrap().schema = Some("schema.sql".into());
        assert_eq!(again, expected);
    }

    #[test]
    fn a_heartbeat_is_stale_after_three_missed_intervals_or_a_minute() {
        let hb = |at, interval_s| Heartbeat {
            at,
            pid: 1,
            passes: 1,
            last: Err("x".into()),
            interval_s,
        };
        assert_eq!(
            freshness(&hb(1000, 2), 1059),
            Freshness::Fresh { age_s: 59 }
        );
        assert_eq!(
            freshness(&hb(1000, 2), 1061),
            Freshness::Stale { age_s: 61 }
        );
        assert_eq!(
            freshness(&hb(1000, 60), 1170),
            Freshness::Fresh { age_s: 170 }
        );
        assert_eq!(
            freshness(&hb(1000, 60), 1181),
            Freshness::Stale { age_s: 181 }
        );
        // A clock behind the machine's: age 0, not a wrap.
        assert_eq!(freshness(&hb(1000, 60), 900), Freshness::Fresh { age_s: 0 });
    }

    #[test]
    fn a_recorded_runner_elsewhere_is_checked_here_upgraded_gone_replaced() {
        let machines = ["lb".to_string(), "web[0]".to_string()];
        assert_eq!(recorded(None, "lb", &machines), Recorded::Nothing);
        assert_eq!(recorded(Some("lb"), "lb", &machines), Recorded::Here);
        assert_eq!(
            recorded(Some("web[0]"), "lb", &machines),
            Recorded::Elsewhere {
                on: "web[0]".into()
            }
        );
        assert_eq!(
            recorded(Some("web[1]"), "lb", &machines),
            Recorded::Gone {
                on: "web[1]".into()
            }
        );
        let refused = InstallRefused::Elsewhere {
            app: "blog".into(),
            manifest: "app.toml".into(),
            on: "lb".into(),
            host: "10.0.0.1".into(),
            by: "ann@laptop".into(),
            record: "s3://b/k.autoscaler.json".into(),
        };
        let text = refused.to_string();
        assert!(
            text.starts_with("the autoscaler of blog already runs on lb (10.0.0.1)"),
            "{text}"
        );
        assert!(
            text.contains("`appgrid autoscale uninstall app.toml --on lb` first"),
            "{text}"
        );
        assert!(text.ends_with("Nothing was changed"), "{text}");
    }

    #[test]
    fn status_lines_are_read_back() {
        let installed = Installed::for_test("lb", "me@here");
        let hb = Heartbeat {
            at: 9,
            pid: 42,
            passes: 3,
            last: Ok(Entry {
                at: 9,
                metric: "requests_per_instance".into(),
                value: Some(7.5),
                from: 1,
                to: 2,
                reason: "above".into(),
            }),
            interval_s: 2,
        };
        let text = format!(
            "installed {}\nheartbeat {}\npids 42 43\nunit \n",
            serde_json::to_string(&installed).unwrap(),
            serde_json::to_string(&hb).unwrap()
        );
        let o = parse_observed(&text).unwrap();
        assert_eq!(o.installed, Some(installed));
        assert_eq!(o.heartbeat, Some(hb));
        assert_eq!(o.pids, [42, 43]);
        assert_eq!(
            parse_observed("installed \nheartbeat \npids \n").unwrap(),
            Observed::default()
        );
        assert!(parse_observed("heartbeat {not json").is_err());
    }
}
