//! The DAG walk: dependency order, bounded parallelism, skip on upstream
//! failure, checkpoint after every change, stop cleanly on cancel.
//!
//! Steps run as tasks of one `JoinSet`: a step that panics is a failed step
//! (its address and the panic message in the outcome), and nothing new
//! starts after it — a panic is a bug, and the walk ends as after Ctrl-C,
//! with state saved. Each step runs in a `step{address=… action=…}` tracing
//! span, so every log line says which step it belongs to.
//!
//! A walk that launched or terminated machines ends with one tagged listing
//! of the lineage ([`super::verify`]): what state does not account for is
//! adopted or terminated, and the walk succeeds only when the cloud and state
//! agree. A walk whose checkpoint failed (the lock was lost, the state moved)
//! makes no further change anywhere.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::execute::{self, Context, Message};
use super::steps::{self, Step};
use super::verify::{self, Verification};
use super::{ApplyOptions, Checkpoint, Configurator, Event, Outcome, StateChange};
use crate::cloud::{Cloud, Owner};
use crate::graph::ResourceAddress;
use crate::plan::Plan;
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

/// The walk's bookkeeping of step results.
struct Books<'a> {
    steps: &'a [Step],
    status: Vec<Status>,
    missing: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    ready: VecDeque<usize>,
    started_at: Vec<Option<Instant>>,
    running: usize,
}

impl<'a> Books<'a> {
    fn new(steps: &'a [Step]) -> Self {
        let n = steps.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in steps.iter().enumerate() {
            for &d in &s.deps {
                dependents[d].push(i);
            }
        }
        let missing: Vec<usize> = steps.iter().map(|s| s.deps.len()).collect();
        Books {
            steps,
            status: vec![Status::Waiting; n],
            ready: (0..n).filter(|&i| missing[i] == 0).collect(),
            missing,
            dependents,
            started_at: vec![None; n],
            running: 0,
        }
    }

    fn finished(
        &mut self,
        step: usize,
        result: Result<String, String>,
        outcome: &mut Outcome,
        on_event: &mut dyn FnMut(Event),
    ) {
        self.running -= 1;
        let label = self.steps[step].label();
        let elapsed = self.started_at[step]
            .map(|t| t.elapsed())
            .unwrap_or_default();
        match result {
            Ok(detail) => {
                self.status[step] = Status::Done;
                on_event(Event::Finished {
                    label: label.clone(),
                    elapsed,
                    detail,
                });
                outcome.done.push(label);
                for &d in &self.dependents[step] {
                    self.missing[d] -= 1;
                    if self.missing[d] == 0 && self.status[d] == Status::Waiting {
                        self.ready.push_back(d);
                    }
                }
            }
            Err(error) => {
                self.status[step] = Status::Failed;
                on_event(Event::Failed {
                    label: label.clone(),
                    error: error.clone(),
                });
                outcome.failed.push((label, error));
                self.skip_dependents(step, outcome, on_event);
            }
        }
    }

    fn skip_dependents(
        &mut self,
        failed: usize,
        outcome: &mut Outcome,
        on_event: &mut dyn FnMut(Event),
    ) {
        let cause = self.steps[failed].label();
        let mut stack = self.dependents[failed].clone();
        while let Some(d) = stack.pop() {
            if self.status[d] != Status::Waiting {
                continue;
            }
            self.status[d] = Status::Skipped;
            let label = self.steps[d].label();
            on_event(Event::Skipped {
                label: label.clone(),
                reason: format!("upstream failed: {cause}"),
            });
            outcome.skipped.push(label);
            stack.extend(self.dependents[d].iter().copied());
        }
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Apply `plan` to the cloud, recording every change in `state` and saving it
/// through `checkpoint`. Returns what was done; never panics on cloud errors,
/// and a step that panics fails like any other.
#[allow(clippy::too_many_arguments)]
pub async fn walk<C: Cloud, K: Configurator>(
    cloud: Arc<C>,
    configurator: Arc<K>,
    plan: &Plan,
    state: &mut State,
    checkpoint: &mut dyn Checkpoint,
    options: &ApplyOptions,
    mut cancel: watch::Receiver<bool>,
    on_event: &mut dyn FnMut(Event),
) -> Outcome {
    let steps = steps::build(plan);
    let owner = Owner {
        app: state.app.clone(),
        lineage: state.lineage.clone(),
    };
    let mut books = Books::new(&steps);
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut task_step: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut outcome = Outcome::default();
    let mut cancelled = *cancel.borrow();
    let mut halted = false;
    let mut machines_changed = false;
    let parallelism = options.parallelism.max(1);
    let firewalls = cloud.has_firewalls();
    let still_ours = checkpoint.still_ours();

    loop {
        if !cancelled && !halted && outcome.checkpoint_error.is_none() && !books.ready.is_empty() {
            // A writer that lost the lock starts nothing new.
            if let Err(e) = checkpoint.writable() {
                outcome.checkpoint_error = Some(e);
            }
        }
        while !cancelled
            && !halted
            && outcome.checkpoint_error.is_none()
            && books.running < parallelism
        {
            let Some(i) = books.ready.pop_front() else {
                break;
            };
            books.status[i] = Status::Running;
            books.started_at[i] = Some(Instant::now());
            books.running += 1;
            machines_changed |= steps[i].changes_machines();
            on_event(Event::Started {
                label: steps[i].label(),
            });
            let cx = Context {
                plan,
                owner: &owner,
                options,
                firewalls,
                still_ours: still_ours.clone(),
            };
            let job = execute::prepare(i, &steps[i], &cx, state);
            let (cloud, configurator, tx) =
                (Arc::clone(&cloud), Arc::clone(&configurator), tx.clone());
            let span = tracing::info_span!(
                "step",
                address = %steps[i].subject(),
                action = steps[i].action()
            );
            let handle = tasks.spawn(
                async move { execute::run(cloud.as_ref(), configurator.as_ref(), job, tx).await }
                    .instrument(span),
            );
            task_step.insert(handle.id(), i);
        }
        if books.running == 0 {
            break;
        }
        let message = tokio::select! {
            m = rx.recv() => m,
            Some(joined) = tasks.join_next_with_id() => {
                match joined {
                    Ok((id, ())) => {
                        task_step.remove(&id);
                    }
                    Err(e) => {
                        let step = task_step.remove(&e.id());
                        let why = if e.is_panic() {
                            format!(
                                "panicked: {}; this is a bug in appgrid, please report it",
                                panic_text(e.into_panic().as_ref())
                            )
                        } else {
                            "its task was cancelled".to_string()
                        };
                        if let Some(step) = step {
                            tracing::error!(step = %steps[step].label(), "{why}");
                            halted = true;
                            books.finished(step, Err(why), &mut outcome, on_event);
                        }
                    }
                }
                continue;
            }
            changed = cancel.changed(), if !cancelled => {
                cancelled = changed.is_err() || *cancel.borrow();
                if cancelled {
                    outcome.interrupted = true;
                }
                continue;
            }
        };
        let Some(first) = message else { break };
        // Take everything already waiting, then save once.
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut changed = false;
        for m in batch {
            match m {
                Message::Change(change) => {
                    apply_change(state, change);
                    changed = true;
                }
                Message::Verified {
                    adopted,
                    terminated,
                } => {
                    outcome.verification.adopted.extend(adopted);
                    outcome.verification.terminated.extend(terminated);
                }
                Message::Finished { step, result } => {
                    books.finished(step, result, &mut outcome, on_event);
                }
            }
        }
        if changed {
            save(checkpoint, state, &mut outcome, on_event);
        }
    }
    for (i, s) in books.status.iter().enumerate() {
        if *s == Status::Waiting {
            outcome.not_started.push(steps[i].label());
        }
    }
    if machines_changed && outcome.checkpoint_error.is_none() {
        // Nothing unplanned is terminated by a run that lost its lock.
        if let Err(e) = checkpoint.writable() {
            outcome.checkpoint_error = Some(e);
            return outcome;
        }
        let span = tracing::info_span!("step", address = "lineage", action = "verify");
        verify_end(
            cloud.as_ref(),
            &owner,
            plan,
            state,
            checkpoint,
            &mut outcome,
            on_event,
        )
        .instrument(span)
        .await;
    }
    outcome
}

/// Save after a batch of changes; the first failure stops the walk.
fn save(
    checkpoint: &mut dyn Checkpoint,
    state: &mut State,
    outcome: &mut Outcome,
    on_event: &mut dyn FnMut(Event),
) {
    if outcome.checkpoint_error.is_some() {
        return;
    }
    match checkpoint.checkpoint(state) {
        Ok(()) => on_event(Event::Saved {
            serial: state.serial,
        }),
        Err(e) => outcome.checkpoint_error = Some(e),
    }
}

/// The final listing: adopt and terminate what state does not account for.
async fn verify_end<C: Cloud>(
    cloud: &C,
    owner: &Owner,
    plan: &Plan,
    state: &mut State,
    checkpoint: &mut dyn Checkpoint,
    outcome: &mut Outcome,
    on_event: &mut dyn FnMut(Event),
) {
    let v: &mut Verification = &mut outcome.verification;
    v.ran = true;
    let judgement = match verify::check(cloud, owner, plan, state).await {
        Ok(j) => j,
        Err(e) => {
            v.mismatch = Some(format!(
                "could not list the app's instances to verify the apply: {e}"
            ));
            return;
        }
    };
    for change in verify::changes(&judgement) {
        apply_change(state, change);
    }
    v.adopted
        .extend(judgement.adopt.iter().map(|(a, r)| (*a, r.id.clone())));
    if !judgement.adopt.is_empty() {
        save(checkpoint, state, outcome, on_event);
        if outcome.checkpoint_error.is_some() {
            return;
        }
    }
    if !judgement.terminate.is_empty()
        && let Err(e) = checkpoint.writable()
    {
        outcome.checkpoint_error = Some(e);
        return;
    }
    let v = &mut outcome.verification;
    if !judgement.terminate.is_empty() {
        let ids: Vec<String> = judgement.terminate.iter().map(|t| t.1.clone()).collect();
        tracing::warn!(ids = %ids.join(","), "terminating instances no step accounts for");
        match cloud.terminate(&ids).await {
            Ok(()) => v.terminated.extend(judgement.terminate.iter().cloned()),
            Err(e) => {
                v.mismatch = Some(format!(
                    "{} exist(s) that state does not hold, and terminating them failed: {e}",
                    ids.join(", ")
                ));
                return;
            }
        }
    }
    if !judgement.missing.is_empty() {
        v.mismatch = Some(format!(
            "state holds {} but the cloud does not list {}",
            judgement
                .missing
                .iter()
                .map(|(a, id)| format!("{a} ({id})"))
                .collect::<Vec<_>>()
                .join(", "),
            if judgement.missing.len() == 1 {
                "it"
            } else {
                "them"
            }
        ));
    }
}

fn apply_change(state: &mut State, change: StateChange) {
    match change {
        StateChange::Put(address, resource) => {
            // Another instance takes this address: a new generation.
            if let (ResourceAddress::Instance { .. }, Some(old)) =
                (address, state.resources.get(&address))
                && old.id != resource.id
            {
                *state.generations.entry(address).or_default() += 1;
            }
            state.resources.insert(address, *resource);
        }
        StateChange::RemoveIfId(address, id) => {
            if state.resources.get(&address).is_some_and(|r| r.id == id) {
                state.resources.remove(&address);
                if let ResourceAddress::Instance { .. } = address {
                    *state.generations.entry(address).or_default() += 1;
                }
            }
        }
        StateChange::Moving(address, Some(moving)) => {
            state.moves.insert(address, *moving);
        }
        StateChange::Moving(address, None) => {
            state.moves.remove(&address);
        }
        StateChange::Together(changes) => {
            for change in changes {
                apply_change(state, change);
            }
        }
    }
}
