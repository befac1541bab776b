//! A configurator that records what it was asked to do, on the same clock of
//! sequence numbers as [`crate::cloud::fake::FakeCloud`] when given one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{
    ConfigError, ConfigJob, ConfigStep, Configurator, Configured, MoveJob, MovedIn, Stopped,
};
use crate::graph::ResourceAddress;
use crate::state::ResourceState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigCall {
    /// `configure` or `unconfigure`.
    pub operation: &'static str,
    pub address: ResourceAddress,
    /// The machine's id at the time.
    pub machine_id: String,
    pub started: u64,
    pub finished: u64,
}

#[derive(Debug, Default)]
pub struct FakeConfigurator {
    calls: Mutex<Vec<ConfigCall>>,
    fail: Mutex<Vec<ResourceAddress>>,
    panic: Mutex<Vec<ResourceAddress>>,
    fail_move_out: Mutex<Vec<ResourceAddress>>,
    clock: Arc<AtomicU64>,
}

impl FakeConfigurator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Share a clock with a fake cloud, so calls of both can be ordered.
    pub fn with_clock(clock: Arc<AtomicU64>) -> Self {
        FakeConfigurator {
            clock,
            ..Self::default()
        }
    }

    pub fn fail_on(&self, address: ResourceAddress) {
        self.fail.lock().unwrap().push(address);
    }

    /// The second half of `address`'s online move fails (the first succeeds).
    pub fn fail_move_out_on(&self, address: ResourceAddress) {
        self.fail_move_out.lock().unwrap().push(address);
    }

    /// Configuring `address` panics (a bug in a role).
    pub fn panic_on(&self, address: ResourceAddress) {
        self.panic.lock().unwrap().push(address);
    }

    pub fn calls(&self) -> Vec<ConfigCall> {
        self.calls.lock().unwrap().clone()
    }

    async fn record(&self, step: ConfigStep, job: &ConfigJob) -> Result<(), ConfigError> {
        let operation = match step {
            ConfigStep::Configure => "configure",
            ConfigStep::Unconfigure => "unconfigure",
            ConfigStep::Sweep => "sweep",
        };
        let started = self.clock.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        let machine_id = job
            .address
            .machine()
            .and_then(|m| job.resources.get(&m))
            .map(|r| r.id.clone())
            .unwrap_or_default();
        let finished = self.clock.fetch_add(1, Ordering::SeqCst);
        self.calls.lock().unwrap().push(ConfigCall {
            operation,
            address: job.address,
            machine_id,
            started,
            finished,
        });
        if self.panic.lock().unwrap().contains(&job.address) {
            panic!("injected panic configuring {}", job.address);
        }
        if self.fail.lock().unwrap().contains(&job.address) {
            return Err(ConfigError::new(
                job.address,
                step,
                format!("{}: injected failure", job.address),
            ));
        }
        Ok(())
    }
}

impl FakeConfigurator {
    fn record_move(&self, operation: &'static str, job: &MoveJob) -> Result<(), ConfigError> {
        let started = self.clock.fetch_add(1, Ordering::SeqCst);
        self.calls.lock().unwrap().push(ConfigCall {
            operation,
            address: job.address,
            machine_id: job.moving.machine.id.clone(),
            started,
            finished: started,
        });
        let fail_out =
            operation == "move-out" && self.fail_move_out.lock().unwrap().contains(&job.address);
        if fail_out || self.fail.lock().unwrap().contains(&job.address) {
            let step = match operation {
                "move-in" => ConfigStep::Configure,
                _ => ConfigStep::Unconfigure,
            };
            return Err(ConfigError::new(
                job.config,
                step,
                format!("{}: injected failure", job.address),
            ));
        }
        Ok(())
    }
}

impl Configurator for FakeConfigurator {
    async fn configure(&self, job: ConfigJob) -> Result<Configured, ConfigError> {
        self.record(ConfigStep::Configure, &job).await?;
        let mut configured = Configured::default();
        if job.address == ResourceAddress::config(crate::graph::Role::DbPrimary, 0) {
            // Like the real one: a generated secret kept in state.
            let password = job
                .prior
                .as_ref()
                .and_then(|p| p.attributes.get("password").cloned())
                .unwrap_or_else(|| format!("pw-{:016x}", fastrand::u64(..)));
            configured.attributes.insert("password".into(), password);
        }
        Ok(configured)
    }

    async fn unconfigure(&self, job: ConfigJob) -> Result<(), ConfigError> {
        self.record(ConfigStep::Unconfigure, &job).await
    }

    /// Records `move-in` with the incoming machine's id; answers the new
    /// node id (and, for the primary, that it is the origin now).
    async fn move_in(&self, job: MoveJob) -> Result<MovedIn, ConfigError> {
        self.record_move("move-in", &job)?;
        let primary = job.address.machine()
            == Some(ResourceAddress::instance(crate::graph::Role::DbPrimary, 0));
        Ok(MovedIn {
            attributes: [("node".to_string(), job.moving.node.to_string())].into(),
            machine_attributes: Default::default(),
            origin: primary.then_some(job.moving.node),
            // As the real one numbers nodes: the primary 1, replica i is i + 2.
            old_node: job
                .resources
                .get(&job.config)
                .and_then(|c| c.attributes.get("node"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(match job.address {
                    ResourceAddress::Instance {
                        role: crate::graph::Role::DbReplica,
                        index,
                    } => index + 2,
                    _ => 1,
                }),
        })
    }

    /// Records `move-out` with the outgoing machine's id.
    async fn move_out(&self, job: MoveJob) -> Result<(), ConfigError> {
        self.record_move("move-out", &job)
    }

    /// Records a `sweep` call per machine; nothing is ever left running.
    async fn sweep(
        &self,
        machines: Vec<(ResourceAddress, ResourceState)>,
    ) -> Result<Vec<Stopped>, ConfigError> {
        for (address, record) in machines {
            let at = self.clock.fetch_add(1, Ordering::SeqCst);
            self.calls.lock().unwrap().push(ConfigCall {
                operation: "sweep",
                address,
                machine_id: record.id,
                started: at,
                finished: at,
            });
        }
        Ok(Vec::new())
    }
}
