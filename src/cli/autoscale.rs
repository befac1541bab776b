//! `appgrid autoscale`: the reconcile loop (or one pass with `--once`), its
//! history, and the simulator on a request trace.
//!
//! A pass: read the load balancer's counters → a sample → `decide` (pure) →
//! when the count changes, record it in state under the lock (waiting for a
//! manual apply to finish) and apply the web tier → re-release web servers
//! that failed their health check twice in a row → record the pass. Errors
//! never stop the loop: a failed pass is recorded and retried next interval.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use appgrid::apply::{self, ApplyOptions, Configurator};
use appgrid::autoscale::live::{self, Entry};
use appgrid::autoscale::{self as scaling, Policy};
use appgrid::cloud::Cloud;
use appgrid::engine::Workspace;
use appgrid::graph::{ResourceAddress, Role};
use appgrid::ops::{Locked, Operations};
use appgrid::state::AutoscaledCount;

use super::term::{out, outln};
use super::{Failure, providers, report};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn policy(ws: &Workspace) -> Result<Policy, Failure> {
    let a = ws.manifest.manifest.autoscale.as_ref().ok_or_else(|| {
        Failure::Message(format!(
            "{} has no [autoscale] table: add one (metric, target, min, max) to let appgrid scale the web tier",
            ws.manifest.path.display()
        ))
    })?;
    Policy::load(a).map_err(|e| Failure::Message(e.to_string()))
}

/// Addresses a scaling apply may touch: the web tier and what points at it.
fn web_tier(address: ResourceAddress) -> bool {
    matches!(
        address,
        ResourceAddress::Instance {
            role: Role::Web,
            ..
        } | ResourceAddress::Config {
            role: Role::Web | Role::Lb | Role::DbPrimary,
            ..
        }
    )
}

struct Pass<'a> {
    ws: &'a Workspace,
    policy: &'a Policy,
    /// The database origin is down (`failover = "auto"` checked it): web
    /// servers failing their health check for that reason are not restarted.
    origin_down: bool,
}

impl providers::OpsVisitor for Pass<'_> {
    type Output = Entry;

    async fn visit<C: Cloud, K: Configurator + Operations>(
        self,
        cloud: Arc<C>,
        k: Arc<K>,
    ) -> Result<Entry, Failure> {
        let Pass {
            ws,
            policy,
            origin_down,
        } = self;
        let at = now();
        let state = ws.load_state()?.ok_or_else(|| {
            Failure::Message("nothing applied yet: run `appgrid apply` first".into())
        })?;
        let path = live::record_path(&ws.store_path);
        // One pass at a time reads and writes the record (issue 10).
        let _record_lock = live::lock(&path).map_err(|e| Failure::Message(e.to_string()))?;
        let mut record = live::load(&path).map_err(|e| Failure::Message(e.to_string()))?;
        // CPU is read from each web machine, only when the policy tracks it.
        let cpu = policy.metric == appgrid::manifest::Metric::CpuPercent;
        let servers = k
            .web_counters(&state.resources, cpu)
            .await
            .map_err(|e| Failure::Message(e.to_string()))?;
        let sample = record.observe(
            ws.manifest
                .manifest
                .autoscale
                .as_ref()
                .expect("checked")
                .metric,
            &servers,
            at,
            policy.warmup_s,
        );
        let current = ws.effective(Some(&state)).0.web.count;
        let history = record.history();
        let decision = scaling::decide(policy, &history, &record.samples(), current, at);
        // `forecast_only`: the forecast policy's decision, recorded beside.
        if let Some(shadow) =
            scaling::decide_shadow(policy, &history, &record.samples(), current, at)
        {
            record.push_shadow(scaling::ShadowEntry {
                at,
                from: current,
                to: shadow.desired,
                reason: shadow.reason,
            });
        }
        let metric = match policy.metric {
            appgrid::manifest::Metric::RequestsPerInstance => "requests_per_instance",
            appgrid::manifest::Metric::ResponseTimeMs => "response_time_ms",
            appgrid::manifest::Metric::CpuPercent => "cpu_percent",
            appgrid::manifest::Metric::QueueTimeMs => "queue_time_ms",
        }
        .to_string();
        let mut entry = Entry {
            at,
            metric,
            value: sample.map(|s| s.value),
            from: current,
            to: decision.desired,
            reason: decision.reason.clone(),
        };

        if decision.desired != current {
            let chosen = AutoscaledCount {
                web: decision.desired,
                at,
                reason: decision.reason.clone(),
            };
            let lock_timeout = Duration::from_secs(policy.interval_s.max(30));
            scale(
                ws,
                (&cloud, &k),
                lock_timeout,
                |state| state.autoscale = Some(chosen),
                web_tier,
                &mut entry,
            )
            .await?;
        }

        // Issue 13: the database read tier, when `[autoscale.replicas]` asks.
        if let Some(replicas) =
            super::autoscale_replicas::pass(ws, policy, &cloud, &k, &mut record, at).await?
        {
            record.push_replica(replicas);
        }

        // Self-healing: a server down at this pass and the last one is released again.
        let down: Vec<String> = servers
            .iter()
            .filter(|s| !s.up)
            .map(|s| s.name.clone())
            .collect();
        let twice: Vec<ResourceAddress> = down
            .iter()
            .filter(|n| record.down.contains(n))
            .filter_map(|n| n.strip_prefix("web").and_then(|i| i.parse::<u32>().ok()))
            .map(|i| ResourceAddress::config(Role::Web, i))
            .collect();
        let lock_timeout = Duration::from_secs(policy.interval_s.max(30));
        let twice = if origin_down { Vec::new() } else { twice };
        let healed = heal(ws, &cloud, &k, &twice, lock_timeout).await;
        record.down = down;
        if !healed.is_empty() {
            entry.reason = format!("{}; {}", entry.reason, healed.join("; "));
        }
        record.push(entry.clone());
        live::save(&path, &record).map_err(|e| Failure::Message(e.to_string()))?;
        Ok(entry)
    }
}

/// Record a count in state under the lock (`set`; a manual apply finishes
/// first, and its state is what changes) and apply the addresses `keep`
/// admits through the walker; a failed walk is said in `entry`'s reason.
pub(super) async fn scale<C: Cloud, K: Configurator>(
    ws: &Workspace,
    (cloud, k): (&Arc<C>, &Arc<K>),
    lock_timeout: Duration,
    set: impl FnOnce(&mut appgrid::state::State),
    keep: fn(ResourceAddress) -> bool,
    entry: &mut Entry,
) -> Result<(), Failure> {
    let lock = ws.lock("autoscale", lock_timeout)?;
    let mut state = ws
        .load_state()?
        .ok_or_else(|| Failure::Message("the state went away".into()))?;
    set(&mut state);
    let mut store = ws.store().fenced_by(&lock);
    store
        .save(&mut state)
        .map_err(|e| Failure::Message(e.to_string()))?;
    let graph = ws.graph_for(Some(&state))?;
    let mut plan = ws.plan(&graph, Some(&state), cloud.as_ref()).await?;
    plan.actions.retain(|a| keep(a.address));
    plan.orphans.retain(|o| o.address.is_some_and(keep));
    let (_tx, rx) = watch::channel(false);
    let options = ApplyOptions {
        parallelism: 10,
        base_dir: ws.base_dir.clone(),
    };
    let outcome = apply::walk(
        Arc::clone(cloud),
        Arc::clone(k),
        &plan,
        &mut state,
        &mut store,
        &options,
        rx,
        &mut |e| report::print_event(&e),
    )
    .await;
    drop(lock);
    if !outcome.is_success() {
        let failed: Vec<String> = outcome
            .failed
            .iter()
            .map(|(l, e)| format!("{l}: {e}"))
            .collect();
        entry.reason = format!("{}; the apply failed: {}", entry.reason, failed.join("; "));
    }
    Ok(())
}

/// Release these web servers again, under the state lock and through the
/// walker (drained, restarted, back in the load balancer once healthy), each
/// result recorded in state; one line per server saying what happened.
async fn heal<C: Cloud, K: Configurator>(
    ws: &Workspace,
    cloud: &Arc<C>,
    k: &Arc<K>,
    addresses: &[ResourceAddress],
    lock_timeout: Duration,
) -> Vec<String> {
    if addresses.is_empty() {
        return Vec::new();
    }
    let mut locked =
        match Locked::acquire(ws, "autoscale: restart unhealthy web servers", lock_timeout) {
            Ok(locked) => locked,
            Err(e) => {
                return vec![format!(
                    "the unhealthy web servers could not be restarted: {e}"
                )];
            }
        };
    let mut lines = Vec::new();
    for address in addresses {
        // Not released yet (or gone since): nothing of ours to restart.
        if !locked.state().resources.contains_key(address) {
            continue;
        }
        let outcome = locked
            .reconfigure(
                Arc::clone(cloud),
                Arc::clone(k),
                std::slice::from_ref(address),
                "its health check failed twice",
                &mut |e| report::print_event(&e),
            )
            .await;
        lines.push(match outcome {
            Ok(o) if o.is_success() => {
                format!("{address} restarted: its health check failed twice")
            }
            Ok(o) => {
                let why: Vec<String> = o.failed.into_iter().map(|(_, e)| e).collect();
                format!("{address} could not be restarted: {}", why.join("; "))
            }
            Err(e) => format!("{address} could not be restarted: {e}"),
        });
    }
    lines
}

/// Where the runner on the fleet says it is alive (issue 12): after every
/// pass, [`appgrid::autoscale::fleet::Heartbeat`] in `path` (0600, atomic).
/// With state on S3 it is also published beside the state, for teammates'
/// `autoscale status` ([`appgrid::autoscale::fleet_record`]).
fn beat(ws: &Workspace, path: &Path, passes: u64, last: Result<Entry, String>, policy: &Policy) {
    let heartbeat = appgrid::autoscale::fleet::Heartbeat {
        at: now(),
        pid: std::process::id(),
        passes,
        last,
        interval_s: policy.interval_s,
    };
    let json = serde_json::to_vec(&heartbeat).expect("heartbeats serialize");
    if let Err(e) = appgrid::durable::replace(path, &json, 0o600) {
        tracing::warn!(
            "cannot write the heartbeat {}: {}",
            path.display(),
            e.source
        );
    }
    if let Err(e) =
        appgrid::autoscale::fleet_record::publish_runner_beat(&ws.state_location, path, &heartbeat)
    {
        tracing::warn!("cannot publish the heartbeat beside the state: {e}");
    }
}

pub async fn run(
    file: &Path,
    once: bool,
    state: Option<&Path>,
    heartbeat: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let policy = policy(&ws)?;
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping after the pass in flight");
        let _ = stop_tx.send(true);
    });
    let lock_timeout = Duration::from_secs(policy.interval_s.max(30));
    let mut passes = 0u64;
    loop {
        // Issue 8: `[database] failover = "auto"` checks the origin first.
        let origin_down = match super::auto_failover::check(&ws, now(), lock_timeout).await {
            Ok(checked) => {
                if let Some(line) = checked.line {
                    outln!("{line}");
                }
                checked.down
            }
            Err(failure) if once => return Err(failure),
            Err(failure) => {
                report::print_failure(&failure);
                false
            }
        };
        let pass = providers::with_operations(
            &ws,
            Pass {
                ws: &ws,
                policy: &policy,
                origin_down,
            },
        )
        .await;
        passes += 1;
        if let Some(path) = heartbeat {
            let last = match &pass {
                Ok(entry) => Ok(entry.clone()),
                Err(failure) => Err(report::plain_text(failure)),
            };
            beat(&ws, path, passes, last, &policy);
        }
        match pass {
            Ok(entry) => outln!("{}", entry.line()),
            Err(failure) if once => return Err(failure),
            // The loop goes on: a failed pass is reported and retried next interval.
            Err(failure) => report::print_failure(&failure),
        }
        // Issue 8: scheduled backups run from the same runner.
        match super::backup::scheduled(&ws, jiff::Timestamp::now().as_second()).await {
            Ok(Some(b)) => outln!("{}", super::backup::scheduled_line(&b)),
            Ok(None) => {}
            Err(failure) if once => return Err(failure),
            Err(failure) => report::print_failure(&failure),
        }
        if once || *stop.borrow() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(policy.interval_s.max(1))) => {}
            _ = stop.changed() => return Ok(ExitCode::SUCCESS),
        }
    }
}

pub fn history(
    file: &Path,
    state: Option<&Path>,
    trace: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, state)?;
    let record = live::load(&live::record_path(&ws.store_path))
        .map_err(|e| Failure::Message(e.to_string()))?;
    if let Some(path) = trace {
        appgrid::durable::replace(
            path,
            scaling::demand_trace(&record.demand).as_bytes(),
            0o644,
        )
        .map_err(|e| {
            Failure::Message(format!(
                "cannot write the trace {}: {}",
                path.display(),
                e.source
            ))
        })?;
    }
    if record.entries.is_empty() && record.replica_entries.is_empty() {
        outln!(
            "No autoscale passes recorded yet for {}.",
            ws.manifest.manifest.app.name
        );
    }
    for line in appgrid::autoscale::history(&record) {
        outln!("{}  {}", line.when, line.decision);
        // Shadow mode: what the forecast policy would have done at this pass.
        if let Some(shadow) = line.shadow {
            outln!("    forecast_only: {shadow}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub struct SimulateOptions {
    pub file: PathBuf,
    pub trace: PathBuf,
    pub scale: f64,
    pub capacity: f64,
    pub boot: u64,
    pub out: PathBuf,
    pub predictive: bool,
    /// Overrides the manifest's `policy`.
    pub policy: Option<appgrid::manifest::PolicyKind>,
    /// Overrides the forecast policy's margin quantile.
    pub quantile: Option<f64>,
    /// Also HPA and target tracking on the same model.
    pub compare: bool,
}

pub fn simulate(o: SimulateOptions) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(&o.file, None)?;
    let mut policy = policy(&ws)?;
    if o.predictive && policy.predictive.is_none() {
        policy.predictive = Some(Default::default());
    }
    match o.policy {
        Some(appgrid::manifest::PolicyKind::Forecast) if policy.forecast.is_none() => {
            // `forecast_only`'s settings (boot, quantile) when it has them.
            policy.forecast = Some(policy.shadow.unwrap_or_default());
        }
        Some(appgrid::manifest::PolicyKind::Reactive) => policy.forecast = None,
        _ => {}
    }
    if let (Some(q), Some(f)) = (o.quantile, policy.forecast.as_mut()) {
        f.quantile = q;
    }
    let text = std::fs::read_to_string(&o.trace).map_err(|e| {
        Failure::Message(format!("cannot read the trace {}: {e}", o.trace.display()))
    })?;
    let trace = scaling::parse_trace(&text)
        .map_err(|e| Failure::Message(format!("{}: {e}", o.trace.display())))?;
    let model = scaling::CapacityModel {
        requests_per_instance_per_sec_at_target: o.capacity,
        boot_time_s: o.boot,
    };
    let sim = scaling::simulate(&policy, &trace, o.scale, model, 60);
    std::fs::create_dir_all(&o.out)
        .map_err(|e| Failure::Message(format!("{}: {e}", o.out.display())))?;
    let csv = o.out.join("timeline.csv");
    let svg = o.out.join("timeline.svg");
    std::fs::write(&csv, scaling::timeline_csv(&sim))
        .map_err(|e| Failure::Message(format!("{}: {e}", csv.display())))?;
    let title = format!("{} ×{} — demand vs supply", o.trace.display(), o.scale);
    std::fs::write(&svg, scaling::svg_chart(&sim, &title))
        .map_err(|e| Failure::Message(format!("{}: {e}", svg.display())))?;
    out!("{}", scaling::summary(&sim));
    outln!("timeline: {}\nchart:    {}", csv.display(), svg.display());
    if o.compare {
        compare(&o, &policy, &sim, &trace, &title)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `simulate --compare`: the table, compare.csv and compare.svg.
fn compare(
    o: &SimulateOptions,
    policy: &scaling::Policy,
    sim: &scaling::Simulation,
    trace: &[scaling::TracePoint],
    title: &str,
) -> Result<(), Failure> {
    let model = scaling::Model {
        per_instance: o.capacity,
        boot_s: o.boot,
        min: policy.min,
        max: policy.max,
    };
    let c = scaling::compare(sim, trace, o.scale, model);
    let csv = o.out.join("compare.csv");
    let svg = o.out.join("compare.svg");
    std::fs::write(&csv, scaling::comparison_csv(&c))
        .map_err(|e| Failure::Message(format!("{}: {e}", csv.display())))?;
    let mut series: Vec<(&str, &[u32])> = vec![("demand", &c.demand)];
    series.extend(c.policies.iter().map(|p| (p.policy, &p.supply[..])));
    std::fs::write(&svg, scaling::svg_lines(&c.minutes, &series, title))
        .map_err(|e| Failure::Message(format!("{}: {e}", svg.display())))?;
    outln!(
        "\nOn one model (an instance serves {}s after it is asked for, {} req/s each, {}..{}):",
        o.boot,
        o.capacity,
        policy.min,
        policy.max
    );
    out!("{}", scaling::comparison_table(&c));
    outln!("compared: {}\nchart:    {}", csv.display(), svg.display());
    Ok(())
}
