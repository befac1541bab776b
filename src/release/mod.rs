//! Numbered releases (issue 9): every change that reaches the web servers —
//! the app's files, its build, start and health commands — is a release `vN`
//! kept in state with its code digest, config digest, when, by whom and
//! what became of it (`active`, `failed`, `rolled back`, `superseded`).
//!
//! Pure: the caller passes what the walk left on the web servers, the time
//! and who; nothing here reads the clock, a file or the machines.
//! Invariant: at most one record is `active`, and it is the one every web
//! server ran when the last rollout finished.

pub mod config_vars;

use serde::{Deserialize, Serialize};

use crate::graph::{ResourceAddress, ResourceSpec, Role};
use crate::state::ResourceState;

/// What became of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Every web server runs it.
    Active,
    /// It did not pass its health gate (or its release command) and was undone.
    Failed,
    /// It was active until `appgrid rollback` went back to an older one.
    RolledBack,
    /// A newer release replaced it.
    Superseded,
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReleaseStatus::Active => "active",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::RolledBack => "rolled back",
            ReleaseStatus::Superseded => "superseded",
        })
    }
}

/// What a release is made of: enough to tell two apart and to run one again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseContent {
    /// Digest of the app's files (the plan's `release` input).
    pub code: String,
    /// Digest of how it runs: build, start and health commands.
    pub config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    pub start: String,
    pub health: String,
}

/// One numbered release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub number: u32,
    #[serde(flatten)]
    pub content: ReleaseContent,
    /// Its directory on the web servers (the digest of its archive), once a
    /// server ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// user@host.
    pub by: String,
    pub status: ReleaseStatus,
    /// Why it failed or was rolled back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The app's config vars when it was released (in the 0600 state only):
    /// what a rollback to it restores. `None` in records older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_vars: Option<config_vars::ConfigVars>,
}

/// The releases state keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Releases {
    #[serde(default)]
    pub records: Vec<ReleaseRecord>,
    /// Set by `appgrid rollback`: the web servers run this release instead of
    /// the manifest's, for as long as the manifest's release is the one it
    /// was when they rolled back (`apply --roll-forward`, or a change of
    /// code or commands, ends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Pin>,
}

/// A rollback in force: which release, and what the manifest said then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub number: u32,
    /// The manifest's code and config digests when the rollback was made.
    pub manifest_code: String,
    pub manifest_config: String,
    pub at: String,
    pub by: String,
}

/// Why a rollback cannot be made (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("there is no release v{0} in state; `appgrid releases FILE` lists them")]
    Unknown(u32),
    #[error("v{0} is the active release already: nothing to roll back")]
    AlreadyActive(u32),
    #[error("release v{0} failed: only a release that served can be rolled back to")]
    Failed(u32),
    #[error("no earlier release to roll back to (`appgrid releases FILE` lists them)")]
    NoEarlier,
}

/// The config digest of a release's commands.
pub fn config_digest(build: Option<&str>, start: &str, health: &str) -> String {
    crate::hash::sha256_hex(
        format!(
            "build={}\0start={start}\0health={health}",
            build.unwrap_or("")
        )
        .as_bytes(),
    )[..16]
        .to_string()
}

impl Releases {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn active(&self) -> Option<&ReleaseRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| r.status == ReleaseStatus::Active)
    }

    pub fn get(&self, number: u32) -> Option<&ReleaseRecord> {
        self.records.iter().find(|r| r.number == number)
    }

    /// The release `rollback` goes to: `vN`, or the newest one before the
    /// active one that served (superseded or rolled back).
    pub fn rollback_target(&self, which: Option<u32>) -> Result<&ReleaseRecord, RollbackError> {
        let active = self.active().map(|a| a.number);
        let Some(n) = which else {
            let before = active.unwrap_or(u32::MAX);
            return self
                .records
                .iter()
                .rev()
                .find(|r| {
                    r.number < before
                        && matches!(
                            r.status,
                            ReleaseStatus::Superseded | ReleaseStatus::RolledBack
                        )
                        && r.dir.is_some()
                })
                .ok_or(RollbackError::NoEarlier);
        };
        let r = self.get(n).ok_or(RollbackError::Unknown(n))?;
        if active == Some(n) {
            return Err(RollbackError::AlreadyActive(n));
        }
        if r.status == ReleaseStatus::Failed || r.dir.is_none() {
            return Err(RollbackError::Failed(n));
        }
        Ok(r)
    }

    /// Book a finished rollback to `number`: it is active (and pinned), the
    /// one active before is rolled back.
    pub fn rolled_back(&mut self, number: u32, manifest: &ReleaseContent, when: &When) {
        for r in &mut self.records {
            if r.status == ReleaseStatus::Active {
                r.status = ReleaseStatus::RolledBack;
                r.note = format!("rolled back to v{number} by {} at {}", when.by, when.at);
            }
        }
        if let Some(r) = self.records.iter_mut().find(|r| r.number == number) {
            r.status = ReleaseStatus::Active;
            r.note = String::new();
        }
        self.pinned = Some(Pin {
            number,
            manifest_code: manifest.code.clone(),
            manifest_config: manifest.config.clone(),
            at: when.at.clone(),
            by: when.by.clone(),
        });
    }

    /// Keep the config vars release `number` was made with.
    pub fn keep_config(&mut self, number: u32, vars: config_vars::ConfigVars) {
        if let Some(r) = self.records.iter_mut().find(|r| r.number == number) {
            r.config_vars = Some(vars);
        }
    }

    /// The pinned release, while the manifest still says what it said when
    /// the rollback was made.
    pub fn pinned_for(&self, manifest: &ReleaseContent) -> Option<(&Pin, &ReleaseRecord)> {
        let pin = self.pinned.as_ref()?;
        if pin.manifest_code != manifest.code || pin.manifest_config != manifest.config {
            return None;
        }
        Some((pin, self.get(pin.number)?))
    }

    fn next_number(&self) -> u32 {
        self.records.iter().map(|r| r.number).max().unwrap_or(0) + 1
    }

    fn push(
        &mut self,
        content: ReleaseContent,
        dir: Option<String>,
        when: &When,
        status: ReleaseStatus,
        note: String,
    ) -> u32 {
        let number = self.next_number();
        self.records.push(ReleaseRecord {
            number,
            content,
            dir,
            at: when.at.clone(),
            by: when.by.clone(),
            status,
            note,
            config_vars: None,
        });
        number
    }

    /// Book a rollout: what the plan wanted the web servers to run, what each
    /// runs now (from state), and the failure of a web release step if one
    /// failed. Returns the number of the record added, if any.
    ///
    /// - every server runs what was wanted: it is the active release (a new
    ///   record unless the active one already is it; the old one superseded);
    /// - a step failed: the wanted release is recorded as failed, with why;
    /// - otherwise (interrupted, nothing released): nothing.
    pub fn book(
        &mut self,
        wanted: &ReleaseContent,
        running: &[Option<(ReleaseContent, Option<String>)>],
        failure: Option<&str>,
        when: &When,
    ) -> Option<u32> {
        let all_wanted = !running.is_empty()
            && running
                .iter()
                .all(|r| r.as_ref().is_some_and(|(c, _)| same(c, wanted)));
        if all_wanted {
            if self.active().is_some_and(|a| same(&a.content, wanted)) {
                return None;
            }
            let dir = running.iter().flatten().find_map(|(_, d)| d.clone());
            for r in &mut self.records {
                if r.status == ReleaseStatus::Active {
                    r.status = ReleaseStatus::Superseded;
                }
            }
            return Some(self.push(
                wanted.clone(),
                dir,
                when,
                ReleaseStatus::Active,
                String::new(),
            ));
        }
        let failure = failure?;
        Some(self.push(
            wanted.clone(),
            None,
            when,
            ReleaseStatus::Failed,
            failure.to_string(),
        ))
    }
}

fn same(a: &ReleaseContent, b: &ReleaseContent) -> bool {
    a.code == b.code && a.config == b.config
}

/// When and by whom, passed in (the core reads no clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub at: String,
    pub by: String,
}

/// The release a `web[i].release` spec describes.
pub fn content_of(spec: &ResourceSpec) -> Option<ReleaseContent> {
    let ResourceSpec::Config(c) = spec else {
        return None;
    };
    let input = |k: &str| c.inputs.get(k).cloned().unwrap_or_default();
    let code = c.inputs.get("release")?.clone();
    let build = Some(input("build")).filter(|b| !b.is_empty());
    let (start, health) = (input("start"), input("health"));
    let mut config = config_digest(build.as_deref(), &start, &health);
    // The config vars' (salted) digest and `[env]`'s, when the app has any.
    for key in ["config", "env"] {
        if let Some(vars) = c.inputs.get(key).filter(|v| !v.is_empty()) {
            config = crate::hash::sha256_hex(format!("{config}\0{key}={vars}").as_bytes())[..16]
                .to_string();
        }
    }
    Some(ReleaseContent {
        code,
        config,
        build,
        start,
        health,
    })
}

/// What each web server runs per state: its release content and directory.
pub fn running<'a>(
    resources: impl IntoIterator<Item = (&'a ResourceAddress, &'a ResourceState)>,
) -> Vec<Option<(ReleaseContent, Option<String>)>> {
    resources
        .into_iter()
        .filter(|(a, _)| {
            matches!(
                a,
                ResourceAddress::Config {
                    role: Role::Web,
                    ..
                }
            )
        })
        .map(|(_, r)| content_of(&r.spec).map(|c| (c, r.attributes.get("release").cloned())))
        .collect()
}

/// A `web[i].release` spec changed to run `record` (the rollback's desired
/// spec): its code, commands and its directory on the servers (`dir`).
pub fn pinned_spec(spec: &ResourceSpec, record: &ReleaseRecord) -> ResourceSpec {
    let mut spec = spec.clone();
    if let ResourceSpec::Config(c) = &mut spec {
        let r = &record.content;
        c.inputs.insert("release".into(), r.code.clone());
        c.inputs
            .insert("build".into(), r.build.clone().unwrap_or_default());
        c.inputs.insert("start".into(), r.start.clone());
        c.inputs.insert("health".into(), r.health.clone());
        if let Some(dir) = &record.dir {
            c.inputs.insert("dir".into(), dir.clone());
        }
        // Its config vars' digest, when the record kept them (the rollback
        // puts them back in state before the servers are released).
        if let Some(vars) = &record.config_vars {
            let digest = vars.digest();
            if digest.is_empty() {
                c.inputs.remove("config");
            } else {
                c.inputs.insert("config".into(), digest);
            }
        }
    }
    spec
}

/// The manifest's release as content (its code digest comes from the
/// workspace's inputs).
pub fn manifest_content(release: &crate::manifest::Release, code: &str) -> ReleaseContent {
    ReleaseContent {
        code: code.to_string(),
        config: config_digest(release.build.as_deref(), &release.start, &release.health),
        build: release.build.clone(),
        start: release.start.clone(),
        health: release.health.clone(),
    }
}

/// Put a pinned release in place of the manifest's, for the graph: the
/// commands in the manifest, the code digest and directory in the inputs.
pub fn apply_pin(
    manifest: &mut crate::manifest::Manifest,
    inputs: &mut crate::graph::Inputs,
    record: &ReleaseRecord,
) {
    if let Some(release) = &mut manifest.release {
        release.build = record.content.build.clone();
        release.start = record.content.start.clone();
        release.health = record.content.health.clone();
    }
    inputs.release = Some(record.content.code.clone());
    inputs.pinned = record.dir.clone();
}

/// The plan's note while a rollback is in force.
pub fn pin_note(pin: &Pin, record: &ReleaseRecord) -> String {
    format!(
        "the web servers run release v{} (rolled back by {} at {}), not the manifest's; \
         `appgrid apply --roll-forward` releases the manifest's",
        record.number, pin.by, pin.at
    )
}

/// Book the web rollout of an applied plan into `state.releases`: the
/// release the plan's web steps wanted, what state says every web server
/// runs after the walk, and the first failed web release step (`failed`:
/// the walk's (label, error) pairs). `None` when the plan released nothing.
pub fn book_apply(
    plan: &crate::plan::Plan,
    failed: &[(String, String)],
    state: &mut crate::state::State,
    when: &When,
) -> Option<u32> {
    let wanted = plan.actions.iter().find_map(|a| match a.address {
        ResourceAddress::Config {
            role: Role::Web, ..
        } => a.desired.as_ref().and_then(content_of),
        _ => None,
    })?;
    let failure = failed
        .iter()
        .find(|(label, _)| label.starts_with("web[") && label.contains(".release"))
        .map(|(label, error)| {
            // The first line: the log tail stays in the apply's own output.
            let first = error.lines().next().unwrap_or("");
            let short = first
                .split_once("; the last lines of the app's log")
                .map_or(first, |(s, _)| s);
            format!("{}: {short}", label.trim_end_matches(": configure"))
        });
    book_state(state, &wanted, failure.as_deref(), when)
}

/// [`Releases::book`] against what state says every web server runs, the
/// record keeping the config vars in state (what a rollback to it restores).
pub fn book_state(
    state: &mut crate::state::State,
    wanted: &ReleaseContent,
    failure: Option<&str>,
    when: &When,
) -> Option<u32> {
    let running = running(&state.resources);
    let booked = state.releases.book(wanted, &running, failure, when)?;
    let config = state.config.clone();
    state.releases.keep_config(booked, config);
    Some(booked)
}

/// Now and this user, for a record: RFC 3339 and `user@host`.
pub fn now_by_this_user() -> When {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    When {
        at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string(),
        by: format!("{user}@{host}"),
    }
}

#[cfg(test)]
mod tests;
