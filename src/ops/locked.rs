//! The locked, recorded path of a day-two change: take the state lock, read
//! state under it, record what the operation learned, apply the
//! configurations that read it again through the walker, save after every
//! change, release the lock when done (or dropped).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Changed;
use crate::apply::{self, ApplyOptions, Configurator, Event, Outcome};
use crate::cloud::Cloud;
use crate::engine::{EngineError, Workspace};
use crate::graph::{ResourceAddress, ResourceSpec};
use crate::plan::{Action, ActionKind, PLAN_FORMAT_VERSION, Plan};
use crate::state::State;
use crate::state::lock::StateLock;
use crate::state::store::{StateError, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum LockedError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Save(#[from] StateError),
    #[error("no state at {}: apply {} first", path.display(), manifest.display())]
    NoState { path: PathBuf, manifest: PathBuf },
    #[error("{address} is not in state; `appgrid state list` shows what is")]
    NotInState { address: ResourceAddress },
    #[error("{address} is not a configuration: only configurations can be applied again")]
    NotAConfiguration { address: ResourceAddress },
}

/// A day-two change in progress: the state lock is held (and renewed) from
/// [`Locked::acquire`] until this is dropped or released, so no apply, scaling
/// pass or other operation changes state meanwhile.
pub struct Locked<'w> {
    ws: &'w Workspace,
    lock: StateLock,
    store: StateStore,
    state: State,
}

impl<'w> Locked<'w> {
    /// Take the lock for `operation` (waiting up to `timeout` for its holder)
    /// and read state under it; the app must have been applied.
    pub fn acquire(
        ws: &'w Workspace,
        operation: &str,
        timeout: Duration,
    ) -> Result<Self, LockedError> {
        let lock = ws.lock(operation, timeout)?;
        let state = ws.load_state()?.ok_or_else(|| LockedError::NoState {
            path: ws.store_path.clone(),
            manifest: ws.manifest.path.clone(),
        })?;
        // Every save checks that this change still holds the lock.
        let store = ws.store().fenced_by(&lock);
        Ok(Locked {
            ws,
            lock,
            store,
            state,
        })
    }

    /// State as it is now (after everything recorded so far).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Set these attributes (others are kept) and save. Nothing is changed
    /// unless every address is in state.
    pub fn record(
        &mut self,
        attributes: &BTreeMap<ResourceAddress, BTreeMap<String, String>>,
    ) -> Result<(), LockedError> {
        if let Some(address) = attributes
            .keys()
            .find(|a| !self.state.resources.contains_key(a))
        {
            return Err(LockedError::NotInState { address: *address });
        }
        if attributes.is_empty() {
            return Ok(());
        }
        for (address, values) in attributes {
            let record = self.state.resources.get_mut(address).expect("checked");
            record
                .attributes
                .extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.store.save(&mut self.state)?;
        Ok(())
    }

    /// Apply these configurations again, as state records them, through the
    /// walker: one at a time in this order (web releases roll: one server out
    /// of the load balancer at a time), each result (attributes, a pinned host
    /// key) recorded and saved as it finishes; a failure skips the rest and
    /// the outcome says which.
    pub async fn reconfigure<C: Cloud, K: Configurator>(
        &mut self,
        cloud: Arc<C>,
        configurator: Arc<K>,
        addresses: &[ResourceAddress],
        reason: &str,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Outcome, LockedError> {
        let plan = self.plan(addresses, reason, &BTreeMap::new())?;
        self.walk(cloud, configurator, &plan, on_event).await
    }

    /// Like [`Locked::reconfigure`], each configuration changed to the spec
    /// given (a rollback's: another release than state records).
    pub async fn reconfigure_to<C: Cloud, K: Configurator>(
        &mut self,
        cloud: Arc<C>,
        configurator: Arc<K>,
        specs: &[(ResourceAddress, ResourceSpec)],
        reason: &str,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Outcome, LockedError> {
        let addresses: Vec<ResourceAddress> = specs.iter().map(|(a, _)| *a).collect();
        let desired: BTreeMap<ResourceAddress, ResourceSpec> = specs.iter().cloned().collect();
        let plan = self.plan(&addresses, reason, &desired)?;
        self.walk(cloud, configurator, &plan, on_event).await
    }

    /// Change what state holds beyond resources (e.g. the release records)
    /// and save.
    pub fn update(&mut self, change: impl FnOnce(&mut State)) -> Result<(), LockedError> {
        change(&mut self.state);
        self.store.save(&mut self.state)?;
        Ok(())
    }

    async fn walk<C: Cloud, K: Configurator>(
        &mut self,
        cloud: Arc<C>,
        configurator: Arc<K>,
        plan: &Plan,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Outcome, LockedError> {
        let options = ApplyOptions {
            parallelism: 1,
            base_dir: self.ws.base_dir.clone(),
        };
        // The sender lives until the walk ends: dropping it would cancel.
        let (_keep, cancel) = watch::channel(false);
        Ok(apply::walk(
            cloud,
            configurator,
            plan,
            &mut self.state,
            &mut self.store,
            &options,
            cancel,
            on_event,
        )
        .await)
    }

    /// Record what an operation changed, then apply again what reads it.
    pub async fn apply<C: Cloud, K: Configurator>(
        &mut self,
        cloud: Arc<C>,
        configurator: Arc<K>,
        changed: &Changed,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Outcome, LockedError> {
        self.record(&changed.attributes)?;
        self.reconfigure(
            cloud,
            configurator,
            &changed.reconfigure,
            &changed.reason,
            on_event,
        )
        .await
    }

    /// Release the lock now (it is also released on drop).
    pub fn release(self) {
        self.lock.release();
    }

    /// A plan of updates of exactly these configurations, to their recorded
    /// specs (or the one `desired` gives).
    fn plan(
        &self,
        addresses: &[ResourceAddress],
        reason: &str,
        desired: &BTreeMap<ResourceAddress, ResourceSpec>,
    ) -> Result<Plan, LockedError> {
        let mut actions = Vec::new();
        for address in addresses {
            let prior = self
                .state
                .resources
                .get(address)
                .ok_or(LockedError::NotInState { address: *address })?;
            if !matches!(prior.spec, ResourceSpec::Config(_)) {
                return Err(LockedError::NotAConfiguration { address: *address });
            }
            actions.push(Action {
                address: *address,
                kind: ActionKind::Update,
                reason: reason.to_string(),
                prior: Some(prior.clone()),
                prior_gone: false,
                desired: Some(desired.get(address).unwrap_or(&prior.spec).clone()),
                depends_on: prior.depends_on.clone(),
                create_before_destroy: false,
                changes: Vec::new(),
            });
        }
        let loaded = &self.ws.manifest;
        Ok(Plan {
            format_version: PLAN_FORMAT_VERSION,
            app: self.state.app.clone(),
            manifest_path: self.ws.manifest_arg.clone(),
            manifest_sha256: loaded.source_hash.clone(),
            manifest: self.ws.effective(Some(&self.state)).0,
            state_lineage: Some(self.state.lineage.clone()),
            state_serial: self.state.serial,
            refreshed: false,
            actions,
            orphans: Vec::new(),
            notes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
