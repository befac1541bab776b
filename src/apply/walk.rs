//! The DAG walk: dependency order, bounded parallelism, skip on upstream
//! failure, checkpoint after every change, stop cleanly on cancel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::execute::{self, Message};
use super::steps::{self, Step};
use super::{ApplyOptions, Checkpoint, Configurator, Event, Outcome, StateChange};
use crate::cloud::{Cloud, Owner};
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

/// Apply `plan` to the cloud, recording every change in `state` and saving it
/// through `checkpoint`. Returns what was done; never panics on cloud errors.
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
    let serial_at_start = state.serial;
    let n = steps.len();
    let mut status = vec![Status::Waiting; n];
    let mut missing: Vec<usize> = steps.iter().map(|s| s.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in steps.iter().enumerate() {
        for &d in &s.deps {
            dependents[d].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
    let mut started_at = vec![None::<Instant>; n];
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let mut outcome = Outcome::default();
    let mut running = 0usize;
    let mut cancelled = *cancel.borrow();
    let parallelism = options.parallelism.max(1);

    loop {
        while !cancelled && outcome.checkpoint_error.is_none() && running < parallelism {
            let Some(i) = ready.pop_front() else { break };
            status[i] = Status::Running;
            started_at[i] = Some(Instant::now());
            running += 1;
            let label = steps[i].label();
            on_event(Event::Started { label });
            let job = execute::prepare(i, &steps[i], plan, state, &owner, options, serial_at_start);
            let (cloud, configurator, tx) =
                (Arc::clone(&cloud), Arc::clone(&configurator), tx.clone());
            tokio::spawn(async move {
                execute::run(cloud.as_ref(), configurator.as_ref(), job, tx).await
            });
        }
        if running == 0 {
            break;
        }
        let message = tokio::select! {
            m = rx.recv() => m,
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
                Message::Finished { step, result } => {
                    running -= 1;
                    let label = steps[step].label();
                    let elapsed = started_at[step].map(|t| t.elapsed()).unwrap_or_default();
                    match result {
                        Ok(detail) => {
                            status[step] = Status::Done;
                            on_event(Event::Finished {
                                label: label.clone(),
                                elapsed,
                                detail,
                            });
                            outcome.done.push(label);
                            for &d in &dependents[step] {
                                missing[d] -= 1;
                                if missing[d] == 0 && status[d] == Status::Waiting {
                                    ready.push_back(d);
                                }
                            }
                        }
                        Err(error) => {
                            status[step] = Status::Failed;
                            on_event(Event::Failed {
                                label: label.clone(),
                                error: error.clone(),
                            });
                            outcome.failed.push((label.clone(), error));
                            skip_dependents(
                                step,
                                &steps,
                                &dependents,
                                &mut status,
                                &mut outcome,
                                on_event,
                            );
                        }
                    }
                }
            }
        }
        if changed && outcome.checkpoint_error.is_none() {
            match checkpoint.checkpoint(state) {
                Ok(()) => on_event(Event::Saved {
                    serial: state.serial,
                }),
                Err(e) => outcome.checkpoint_error = Some(e),
            }
        }
    }
    for (i, s) in status.iter().enumerate() {
        if *s == Status::Waiting {
            outcome.not_started.push(steps[i].label());
        }
    }
    outcome
}

fn skip_dependents(
    failed: usize,
    steps: &[Step],
    dependents: &[Vec<usize>],
    status: &mut [Status],
    outcome: &mut Outcome,
    on_event: &mut dyn FnMut(Event),
) {
    let cause = steps[failed].label();
    let mut stack = dependents[failed].clone();
    while let Some(d) = stack.pop() {
        if status[d] != Status::Waiting {
            continue;
        }
        status[d] = Status::Skipped;
        let label = steps[d].label();
        on_event(Event::Skipped {
            label: label.clone(),
            reason: format!("upstream failed: {cause}"),
        });
        outcome.skipped.push(label);
        stack.extend(dependents[d].iter().copied());
    }
}

fn apply_change(state: &mut State, change: StateChange) {
    match change {
        StateChange::Put(address, resource) => {
            state.resources.insert(address, *resource);
        }
        StateChange::RemoveIfId(address, id) => {
            if state.resources.get(&address).is_some_and(|r| r.id == id) {
                state.resources.remove(&address);
            }
        }
    }
}
