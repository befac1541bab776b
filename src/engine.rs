//! The operations the commands share: open a workspace (manifest + state
//! path), plan against a refresh or state alone, and apply a plan under the
//! state lock. No printing: progress goes to the caller's event callback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cloud::{Cloud, CloudError, Owner};
use crate::graph::{self, GraphError, Inputs, ResourceGraph};
use crate::manifest::StateBackend;
use crate::manifest::{self, LoadedManifest, ManifestError};
use crate::plan::{self, Plan, file::PlanFileError};
use crate::state::location::{self, S3Location, StateLocation};
use crate::state::lock::{self, LockError, StateLock};
use crate::state::store::{self, StateError, StateStore};
use crate::state::{State, new_lineage};
use crate::templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
    #[error("refresh failed: {0}")]
    Refresh(#[source] CloudError),
    #[error(
        "cannot read the release at {}: {detail}; set `path` in [release] to the app's directory (relative to the manifest)",
        path.display()
    )]
    Release { path: PathBuf, detail: String },
    #[error(
        "the state at {path} belongs to app `{state_app}`, but the manifest names `{manifest_app}`; point --state at that app's state, or keep the app's name"
    )]
    WrongApp {
        path: PathBuf,
        state_app: String,
        manifest_app: String,
    },
    #[error("--state {given}: {detail}")]
    StateLocation { given: String, detail: String },
}

/// Overrides the state lock's lease, in whole seconds.
pub const LEASE_ENV: &str = "APPGRID_LOCK_LEASE_SECS";

/// A manifest, the templates it renders with, and the state that goes with it.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub manifest: LoadedManifest,
    /// The manifest path as given (recorded in plans).
    pub manifest_arg: String,
    /// The local state file, or (for a state on S3) where it would be: the
    /// files kept beside state (hosts registry, autoscale record) live there.
    pub store_path: PathBuf,
    /// Where the state is: `store_path`, or an S3 object (`[state]`, or
    /// `--state s3://bucket/key`).
    pub state_location: StateLocation,
    /// Relative paths in the manifest are relative to this.
    pub base_dir: PathBuf,
    /// The embedded templates, with `[app] templates` in place of their namesakes.
    pub templates: Templates,
    /// `[load_balancer] tls_certificate`, checked when the workspace was opened.
    pub certificate: Option<manifest::certificate::Certificate>,
}

/// The templates of a manifest: its `[app] templates` directory (relative
/// to `base_dir`) over the embedded ones.
fn templates_for(
    manifest: &crate::manifest::Manifest,
    base_dir: &Path,
) -> Result<Templates, EngineError> {
    Ok(match &manifest.app.templates {
        Some(dir) => Templates::with_overrides(&base_dir.join(dir))?,
        None => Templates::embedded(),
    })
}

impl Workspace {
    pub fn open(manifest_path: &Path, state_path: Option<&Path>) -> Result<Self, EngineError> {
        let (manifest, certificate) = manifest::load_at(manifest_path, jiff::Timestamp::now())?;
        let templates = templates_for(
            &manifest.manifest,
            manifest_path.parent().unwrap_or(Path::new("")),
        )?;
        let (store_path, state_location) = locate(
            &manifest.manifest,
            store::default_path(manifest_path, &manifest.manifest.app.name),
            state_path,
        )?;
        let base_dir = manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(Workspace {
            manifest_arg: manifest_path.display().to_string(),
            manifest,
            store_path,
            state_location,
            base_dir,
            templates,
            certificate,
        })
    }

    /// The state's store, wherever it lives.
    pub fn store(&self) -> StateStore {
        self.state_location.store()
    }

    /// The resource graph of the manifest alone (no state: `[web] count`).
    pub fn graph(&self) -> Result<ResourceGraph, EngineError> {
        self.graph_for(None)
    }

    /// The resource graph, with the web count the autoscaler owns when the
    /// manifest has `[autoscale]` and state records its choice.
    pub fn graph_for(&self, state: Option<&State>) -> Result<ResourceGraph, EngineError> {
        let (mut manifest, _) = self.effective(state);
        let mut inputs = self.inputs()?;
        inputs.config = state.map(|s| s.config.digest()).filter(|d| !d.is_empty());
        if let Some((_, record)) = self.pinned(state, &inputs) {
            crate::release::apply_pin(&mut manifest, &mut inputs, record);
        }
        Ok(graph::expand_with(&manifest, &inputs, &self.templates)?)
    }

    /// The release `appgrid rollback` pinned, while the manifest's release is
    /// still the one it was then (issue 9).
    fn pinned<'s>(
        &self,
        state: Option<&'s State>,
        inputs: &Inputs,
    ) -> Option<(&'s crate::release::Pin, &'s crate::release::ReleaseRecord)> {
        let release = self.manifest.manifest.release.as_ref()?;
        let content = crate::release::manifest_content(release, inputs.release.as_deref()?);
        state?.releases.pinned_for(&content)
    }

    /// The manifest's release as content (code digest, commands), for the
    /// release records; `None` without a `[release]`.
    pub fn manifest_release(&self) -> Result<Option<crate::release::ReleaseContent>, EngineError> {
        let inputs = self.inputs()?;
        Ok(self
            .manifest
            .manifest
            .release
            .as_ref()
            .zip(inputs.release.as_deref())
            .map(|(r, code)| crate::release::manifest_content(r, code)))
    }

    /// The manifest as applied: `[web] count` replaced by the autoscaler's
    /// choice (kept within `[autoscale]` min and max), `[database] replicas`
    /// by its replica choice (within `[autoscale.replicas]`), and a note
    /// saying so.
    pub fn effective(&self, state: Option<&State>) -> (crate::manifest::Manifest, Option<String>) {
        let mut m = self.manifest.manifest.clone();
        let mut notes = Vec::new();
        if let (Some(policy), Some(chosen)) =
            (&m.autoscale, state.and_then(|s| s.autoscale.as_ref()))
        {
            let web = chosen.web.clamp(policy.min, policy.max);
            if web != m.web.count {
                notes.push(format!(
                    "web.count is {web}, set by the autoscaler ({}); the manifest says {}",
                    chosen.reason, m.web.count
                ));
            }
            m.web.count = web;
        }
        if let (Some(policy), Some(chosen), Some(db)) = (
            m.autoscale.as_ref().and_then(|a| a.replicas.as_ref()),
            state.and_then(|s| s.autoscale_replicas.as_ref()),
            m.database.as_mut(),
        ) {
            let replicas = chosen.replicas.clamp(policy.min, policy.max);
            if replicas != db.replicas {
                notes.push(format!(
                    "database.replicas is {replicas}, set by the autoscaler ({}); the manifest says {}",
                    chosen.reason, db.replicas
                ));
            }
            db.replicas = replicas;
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        (m, note)
    }

    /// What configuration depends on besides the manifest: the digests of the
    /// templates each role renders and of the release's files.
    pub fn inputs(&self) -> Result<Inputs, EngineError> {
        let mut inputs = Inputs::default();
        for family in ["postgres", "slony", "memcached", "haproxy", "app"] {
            inputs
                .templates
                .insert(family.to_string(), self.templates.digest(&[family, "lib"]));
        }
        // Machines only (`configure = false`): the release is never shipped, so never read.
        if let Some(release) = self
            .manifest
            .manifest
            .release
            .as_ref()
            .filter(|_| self.manifest.manifest.provider.configure)
        {
            let path = self.base_dir.join(&release.path);
            inputs.release = Some(directory_digest(&path).map_err(|e| EngineError::Release {
                path: path.clone(),
                detail: e.to_string(),
            })?);
        }
        inputs.tls = self.certificate.as_ref().map(|c| c.digest.clone());
        Ok(inputs)
    }

    /// The state, checked to belong to this app.
    pub fn load_state(&self) -> Result<Option<State>, EngineError> {
        let state = self.store().load()?;
        if let Some(s) = &state
            && s.app != self.manifest.manifest.app.name
        {
            return Err(EngineError::WrongApp {
                path: PathBuf::from(self.state_location.to_string()),
                state_app: s.app.clone(),
                manifest_app: self.manifest.manifest.app.name.clone(),
            });
        }
        Ok(state)
    }

    /// The state lock, with the lease `APPGRID_LOCK_LEASE_SECS` says (default
    /// [`lock::DEFAULT_LEASE`]): hosts sharing a state directory over a slow
    /// filesystem may want longer, tests want shorter.
    pub fn lock(&self, operation: &str, timeout: Duration) -> Result<StateLock, EngineError> {
        Ok(self.state_location.lock(operation, timeout, self.lease())?)
    }

    /// The state lock's lease: `APPGRID_LOCK_LEASE_SECS`, else [`lock::DEFAULT_LEASE`].
    pub fn lease(&self) -> Duration {
        std::env::var(LEASE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(lock::DEFAULT_LEASE, Duration::from_secs)
    }

    fn source(&self) -> plan::Source<'_> {
        plan::Source {
            manifest_path: &self.manifest_arg,
            manifest_sha256: &self.manifest.source_hash,
            manifest: &self.manifest.manifest,
        }
    }

    /// Plan `graph` against `state` alone (`--refresh=false`): no cloud is asked.
    pub fn plan_from_state(&self, graph: &ResourceGraph, state: Option<&State>) -> Plan {
        self.noted(plan::make(self.source(), graph, state, None), state)
    }

    fn noted(&self, mut plan: Plan, state: Option<&State>) -> Plan {
        plan.notes.extend(self.effective(state).1);
        if let Ok(inputs) = self.inputs()
            && let Some((pin, record)) = self.pinned(state, &inputs)
        {
            plan.notes.push(crate::release::pin_note(pin, record));
        }
        if let Some(m) = state.and_then(|s| s.maintenance.as_ref()) {
            plan.notes.push(crate::maintenance::note(m));
        }
        if let Some(warning) = self
            .certificate
            .as_ref()
            .and_then(|c| c.warning(jiff::Timestamp::now()))
        {
            plan.notes.push(warning);
        }
        plan
    }

    /// Plan `graph` (the manifest's, or an empty one to destroy) against `state`
    /// and a refresh through `cloud`.
    pub async fn plan<C: Cloud>(
        &self,
        graph: &ResourceGraph,
        state: Option<&State>,
        cloud: &C,
    ) -> Result<Plan, EngineError> {
        let observed = match state {
            Some(state) => Some(
                cloud
                    .refresh(&Owner {
                        app: state.app.clone(),
                        lineage: state.lineage.clone(),
                    })
                    .await
                    .map_err(EngineError::Refresh)?,
            ),
            // Nothing applied yet: nothing of this lineage can exist.
            None => Some(Default::default()),
        };
        Ok(self.noted(
            plan::make(self.source(), graph, state, observed.as_ref()),
            state,
        ))
    }
}

/// Where a manifest's state lives: `--state` (a path or `s3://bucket/key`,
/// which takes `region` and `endpoint` from `[state]`), else `[state]`,
/// else the file beside the manifest. Also the local path for the files
/// kept beside state.
fn locate(
    manifest: &crate::manifest::Manifest,
    default_path: PathBuf,
    state_arg: Option<&Path>,
) -> Result<(PathBuf, StateLocation), EngineError> {
    let (region, endpoint) = match &manifest.state {
        Some(StateBackend::S3 {
            region, endpoint, ..
        }) => (region.clone(), endpoint.clone()),
        _ => (None, None),
    };
    if let Some(arg) = state_arg {
        let text = arg.to_string_lossy();
        if text.starts_with("s3://") {
            let mut s3 =
                S3Location::parse_url(&text).map_err(|detail| EngineError::StateLocation {
                    given: text.to_string(),
                    detail,
                })?;
            s3.region = region;
            s3.endpoint = endpoint;
            return Ok((default_path, StateLocation::S3(s3)));
        }
        return Ok((arg.to_path_buf(), StateLocation::File(arg.to_path_buf())));
    }
    match &manifest.state {
        Some(StateBackend::S3 { bucket, key, .. }) => Ok((
            default_path,
            StateLocation::S3(S3Location {
                bucket: bucket.clone(),
                key: key
                    .clone()
                    .unwrap_or_else(|| location::default_key(&manifest.app.name)),
                region,
                endpoint,
            }),
        )),
        _ => Ok((default_path.clone(), StateLocation::File(default_path))),
    }
}

/// A digest of every file under `dir` (relative path, mode and contents), in
/// path order: equal trees, equal digests.
pub fn directory_digest(dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for rel in files {
        let full = dir.join(&rel);
        let mode = std::fs::metadata(&full)?.permissions().mode();
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(mode.to_le_bytes());
        hasher.update(std::fs::read(&full)?);
        hasher.update([0]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The state to apply into: the existing one, or a new one saved at once so its
/// lineage is on disk before anything is launched under it.
pub fn state_for_apply(
    store: &StateStore,
    existing: Option<State>,
    app: &str,
) -> Result<State, EngineError> {
    match existing {
        Some(s) => Ok(s),
        None => {
            let mut s = State::new(app, new_lineage());
            store.save(&mut s)?;
            Ok(s)
        }
    }
}

/// Re-base a plan made without state onto the state just created for it.
pub fn adopt_new_lineage(plan: &mut Plan, state: &State) {
    if plan.state_lineage.is_none() {
        plan.state_lineage = Some(state.lineage.clone());
        plan.state_serial = state.serial;
    }
}

impl Workspace {
    /// The workspace a saved plan was made in (its embedded manifest, its state).
    pub fn from_plan(plan: &Plan, state_path: Option<&Path>) -> Result<Self, EngineError> {
        let manifest_path = PathBuf::from(&plan.manifest_path);
        let base_dir = manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let templates = templates_for(&plan.manifest, &base_dir)?;
        let (store_path, state_location) = locate(
            &plan.manifest,
            store::default_path(&manifest_path, &plan.app),
            state_path,
        )?;
        // The certificate is read again: its digest is checked against the
        // plan's when the load balancer is configured.
        let certificate = match &plan.manifest.load_balancer.tls {
            None => None,
            Some(tls) => Some(
                manifest::certificate::check(
                    &manifest_path,
                    "",
                    &tls.certificate,
                    0..0,
                    jiff::Timestamp::now(),
                )
                .map_err(|d| ManifestError::Invalid {
                    path: manifest_path.clone(),
                    diagnostics: manifest::Diagnostics(vec![*d]),
                })?,
            ),
        };
        Ok(Workspace {
            certificate,
            templates,
            store_path,
            state_location,
            manifest: LoadedManifest {
                path: manifest_path,
                manifest: plan.manifest.clone(),
                source_hash: plan.manifest_sha256.clone(),
            },
            manifest_arg: plan.manifest_path.clone(),
            base_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One process, two workspaces whose manifests name different template
    /// directories: each plans with its own (issue 11; `state forget-host-key`
    /// opened the workspace twice and failed on the second choice of templates).
    #[test]
    fn two_workspaces_with_different_templates_in_one_process() {
        let dir = std::env::temp_dir().join(format!("appgrid-ws-tpl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, marker) in [("a", "# a"), ("b", "# b")] {
            let own = dir.join(format!("templates-{name}/haproxy"));
            std::fs::create_dir_all(&own).unwrap();
            let cfg = Templates::embedded()
                .source("haproxy/haproxy.cfg")
                .unwrap()
                .to_string();
            std::fs::write(own.join("haproxy.cfg"), format!("{marker}\n{cfg}")).unwrap();
            std::fs::write(
                dir.join(format!("{name}.toml")),
                format!(
                    "[app]\nname = \"blog\"\ntemplates = \"templates-{name}\"\n\n\
                     [provider]\nkind = \"local\"\n\n\
                     [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = 8080\n\n\
                     [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n"
                ),
            )
            .unwrap();
        }
        let a = Workspace::open(&dir.join("a.toml"), None).unwrap();
        let b = Workspace::open(&dir.join("b.toml"), None).unwrap();
        let a_again = Workspace::open(&dir.join("a.toml"), None).unwrap();
        assert!(
            a.templates
                .source("haproxy/haproxy.cfg")
                .unwrap()
                .starts_with("# a\n")
        );
        assert!(
            b.templates
                .source("haproxy/haproxy.cfg")
                .unwrap()
                .starts_with("# b\n")
        );
        let lb = |ws: &Workspace| {
            ws.graph()
                .unwrap()
                .get(&crate::graph::ResourceAddress::config(
                    crate::graph::Role::Lb,
                    0,
                ))
                .unwrap()
                .spec
                .clone()
        };
        assert_ne!(lb(&a), lb(&b));
        assert_eq!(lb(&a), lb(&a_again));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
