//! An in-memory cloud that records every call: the walker's unit tests and
//! the planner benchmarks run against it. Never a substitute for the
//! integration tests, which use an EC2-compatible server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::graph::{Group, KeyPairSpec, SecurityGroupSpec};

use super::{
    Cloud, CloudError, InstanceStatus, LaunchRequest, LaunchedInstance, Observed, ObservedGroup,
    ObservedInstance, ObservedKeyPair, Owner, ResolvedRule,
};

/// One recorded call: the operation, what it was about, and when it started
/// and finished on a shared clock of sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: &'static str,
    pub subject: String,
    pub started: u64,
    pub finished: u64,
    pub ok: bool,
}

#[derive(Debug, Clone)]
struct Instance {
    observed: ObservedInstance,
    owner: Owner,
    group_id: String,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    instances: BTreeMap<String, Instance>,
    groups: BTreeMap<String, (ObservedGroup, Owner, Vec<ResolvedRule>)>,
    keys: BTreeMap<String, Owner>,
    calls: Vec<Call>,
    /// (operation, subject substring) pairs that fail.
    failures: Vec<(&'static str, String)>,
    /// Launch subjects whose answer is lost: the instances are made, the caller sees an error.
    lost_answers: Vec<String>,
    /// Launch subjects launched twice per call (a retried request without
    /// token idempotency): the answer names the second set.
    doubled: Vec<String>,
    /// Client tokens seen by `launch`, in order.
    tokens: Vec<String>,
}

#[derive(Debug, Default)]
pub struct FakeCloud {
    inner: Mutex<Inner>,
    clock: std::sync::Arc<AtomicU64>,
}

impl FakeCloud {
    pub fn new() -> Self {
        Self::default()
    }

    /// The clock its calls are stamped with (share it with a fake configurator).
    pub fn clock(&self) -> std::sync::Arc<AtomicU64> {
        std::sync::Arc::clone(&self.clock)
    }

    /// Make every `operation` whose subject contains `subject` fail.
    pub fn fail_on(&self, operation: &'static str, subject: &str) {
        self.lock().failures.push((operation, subject.to_string()));
    }

    /// Launches whose subject contains `subject` make their instances, then fail.
    pub fn lose_launch_answers(&self, subject: &str) {
        self.lock().lost_answers.push(subject.to_string());
    }

    /// Launches whose subject contains `subject` make every instance twice.
    pub fn double_launches(&self, subject: &str) {
        self.lock().doubled.push(subject.to_string());
    }

    /// The client tokens launches were sent with, in order.
    pub fn tokens(&self) -> Vec<String> {
        self.lock().tokens.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Terminate an instance behind appgrid's back.
    pub fn terminate_outside(&self, id: &str) {
        if let Some(i) = self.lock().instances.get_mut(id) {
            i.observed.status = InstanceStatus::Terminated;
        }
    }

    /// Ids of live instances.
    pub fn live_instances(&self) -> Vec<ObservedInstance> {
        self.lock()
            .instances
            .values()
            .filter(|i| i.observed.status.is_alive())
            .map(|i| i.observed.clone())
            .collect()
    }

    pub fn group_count(&self) -> usize {
        self.lock().groups.len()
    }

    pub fn key_count(&self) -> usize {
        self.lock().keys.len()
    }

    pub fn rules(&self, group_id: &str) -> Vec<ResolvedRule> {
        self.lock()
            .groups
            .get(group_id)
            .map(|g| g.2.clone())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Run `f` as one recorded call; yields once so calls can interleave.
    async fn call<T>(
        &self,
        operation: &'static str,
        subject: String,
        f: impl FnOnce(&mut Inner) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let started = self.tick();
        tokio::task::yield_now().await;
        let mut inner = self.lock();
        let failing = inner
            .failures
            .iter()
            .any(|(op, s)| *op == operation && subject.contains(s.as_str()));
        let result = if failing {
            Err(CloudError::Api {
                operation: operation.to_string(),
                code: "InjectedFailure".into(),
                message: format!("injected failure for {subject}"),
            })
        } else {
            f(&mut inner)
        };
        let finished = self.tick();
        inner.calls.push(Call {
            operation,
            subject,
            started,
            finished,
            ok: result.is_ok(),
        });
        result
    }
}

impl Cloud for FakeCloud {
    /// The fake models EC2: machines sit in security groups.
    fn has_firewalls(&self) -> bool {
        true
    }

    async fn refresh(&self, owner: &Owner) -> Result<Observed, CloudError> {
        let owner = owner.clone();
        self.call("refresh", owner.app.clone(), move |inner| {
            Ok(Observed {
                instances: inner
                    .instances
                    .values()
                    .filter(|i| i.owner == owner && i.observed.status != InstanceStatus::Terminated)
                    .map(|i| i.observed.clone())
                    .collect(),
                groups: inner
                    .groups
                    .values()
                    .filter(|g| g.1 == owner)
                    .map(|g| g.0.clone())
                    .collect(),
                key_pair: inner
                    .keys
                    .iter()
                    .find(|(_, o)| **o == owner)
                    .map(|(name, _)| ObservedKeyPair {
                        name: name.clone(),
                        fingerprint: None,
                    }),
            })
        })
        .await
    }

    async fn import_key_pair(
        &self,
        owner: &Owner,
        spec: &KeyPairSpec,
        _public_key: &str,
    ) -> Result<String, CloudError> {
        let (owner, name) = (owner.clone(), spec.name.clone());
        self.call("import_key_pair", name.clone(), move |inner| {
            inner.keys.insert(name.clone(), owner);
            Ok(name)
        })
        .await
    }

    async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        let name = name.to_string();
        self.call("delete_key_pair", name.clone(), move |inner| {
            inner.keys.remove(&name);
            Ok(())
        })
        .await
    }

    async fn create_security_group(
        &self,
        owner: &Owner,
        group: Group,
        spec: &SecurityGroupSpec,
    ) -> Result<String, CloudError> {
        let (owner, name) = (owner.clone(), spec.name.clone());
        self.call(
            "create_security_group",
            format!("sg.{}", group.as_str()),
            move |inner| {
                if let Some((id, _)) = inner.groups.iter().find(|(_, g)| g.0.name == name) {
                    return Ok(id.clone());
                }
                inner.next_id += 1;
                let id = format!("sg-{:08x}", inner.next_id);
                let observed = ObservedGroup {
                    id: id.clone(),
                    name,
                    group: Some(group),
                };
                inner
                    .groups
                    .insert(id.clone(), (observed, owner, Vec::new()));
                Ok(id)
            },
        )
        .await
    }

    async fn set_ingress(
        &self,
        group_id: &str,
        rules: &[ResolvedRule],
        _previous: &[ResolvedRule],
    ) -> Result<(), CloudError> {
        let (id, rules) = (group_id.to_string(), rules.to_vec());
        self.call("set_ingress", id.clone(), move |inner| {
            let g = inner.groups.get_mut(&id).ok_or_else(|| CloudError::Api {
                operation: "set_ingress".into(),
                code: "InvalidGroup.NotFound".into(),
                message: format!("no group {id}"),
            })?;
            g.2 = rules;
            Ok(())
        })
        .await
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        let id = id.to_string();
        self.call("delete_security_group", id.clone(), move |inner| {
            let in_use = inner
                .instances
                .values()
                .any(|i| i.observed.status.is_alive() && i.group_id == id);
            if in_use {
                return Err(CloudError::Api {
                    operation: "delete_security_group".into(),
                    code: "DependencyViolation".into(),
                    message: format!("{id} is in use"),
                });
            }
            inner.groups.remove(&id);
            Ok(())
        })
        .await
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<Vec<LaunchedInstance>, CloudError> {
        let request = request.clone();
        let subject = super::encode_batch_address(&request.addresses);
        self.call("launch", subject.clone(), move |inner| {
            inner.tokens.push(request.client_token.clone());
            let doubled = inner.doubled.iter().any(|d| subject.contains(d.as_str()));
            let lost = inner
                .lost_answers
                .iter()
                .any(|d| subject.contains(d.as_str()));
            if !inner.groups.contains_key(&request.group_id) {
                return Err(CloudError::Api {
                    operation: "launch".into(),
                    code: "InvalidGroup.NotFound".into(),
                    message: format!("no group {}", request.group_id),
                });
            }
            let mut out = Vec::new();
            let copies = if doubled { 2 } else { 1 };
            for address in request
                .addresses
                .iter()
                .cycle()
                .take(request.addresses.len() * copies)
            {
                inner.next_id += 1;
                let id = format!("i-{:017x}", inner.next_id);
                let ip = format!(
                    "10.0.{}.{}",
                    (inner.next_id / 250) % 250,
                    inner.next_id % 250 + 2
                );
                let observed = ObservedInstance {
                    id: id.clone(),
                    address: Some(*address),
                    spec_hash: Some(request.spec_hash.clone()),
                    instance_type: request.spec.instance_type.clone(),
                    zone: request.spec.zone.clone(),
                    status: InstanceStatus::Running,
                    private_ip: Some(ip.clone()),
                    image_id: Some("ami-fake".into()),
                };
                inner.instances.insert(
                    id.clone(),
                    Instance {
                        observed,
                        owner: request.owner.clone(),
                        group_id: request.group_id.clone(),
                    },
                );
                out.push(LaunchedInstance {
                    address: *address,
                    id,
                    zone: request.spec.zone.clone(),
                    private_ip: Some(ip),
                    image_id: None,
                });
            }
            if lost {
                return Err(CloudError::Api {
                    operation: "launch".into(),
                    code: "InternalError".into(),
                    message: "injected lost answer".into(),
                });
            }
            // The caller hears of the last set only.
            Ok(out.split_off(out.len() - request.addresses.len()))
        })
        .await
    }

    async fn wait_running(&self, ids: &[String]) -> Result<Vec<ObservedInstance>, CloudError> {
        let ids = ids.to_vec();
        self.call("wait_running", ids.join(","), move |inner| {
            Ok(ids
                .iter()
                .filter_map(|id| inner.instances.get(id).map(|i| i.observed.clone()))
                .collect())
        })
        .await
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        let ids = ids.to_vec();
        self.call("terminate", ids.join(","), move |inner| {
            for id in &ids {
                if let Some(i) = inner.instances.get_mut(id) {
                    i.observed.status = InstanceStatus::Terminated;
                }
            }
            Ok(())
        })
        .await
    }
}
