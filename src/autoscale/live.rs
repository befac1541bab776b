//! What the live autoscaler remembers between passes, and how one reading of
//! the load balancer becomes a [`Sample`].
//!
//! The record lives beside the state (`.appgrid/APP/autoscale.json`, 0600,
//! written atomically): every pass's decision (the history people read), the
//! demand seen (for the predictive option and the forecast policy), the
//! boots measured on scale-outs, recent samples (for the
//! stabilization window), the load balancer's request counters of the last
//! pass (requests are counted, so a rate needs two readings) and when each
//! web server was first seen healthy (its warm-up).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DecisionRecord, DemandPoint, History, Sample};
use crate::apply::ServerCounters;
use crate::manifest::Metric;

/// One pass, as `appgrid autoscale history` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: u64,
    pub metric: String,
    pub value: Option<f64>,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSample {
    pub at: u64,
    pub value: f64,
    pub reporting: u32,
    pub warm: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub entries: Vec<Entry>,
    pub demand: Vec<(u64, f64)>,
    pub samples: Vec<StoredSample>,
    /// (unix seconds, requests counter per server) of the last pass.
    pub counters: Option<(u64, BTreeMap<String, u64>)>,
    /// When each server was first seen up.
    pub first_up: BTreeMap<String, u64>,
    /// Servers that were down at the last pass.
    pub down: Vec<String>,
    /// (busy, total) CPU jiffies per server at the last pass.
    #[serde(default)]
    pub cpu: BTreeMap<String, (u64, u64)>,
    /// Seconds from a scale-out to its new servers first seen up (the
    /// forecast policy's `boot` when the manifest does not give one).
    #[serde(default)]
    pub boots: Vec<u64>,
    /// The read replica tier's passes (issue 13; `metric` is
    /// `replicas:METRIC`), see `replicas_live`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_entries: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_samples: Vec<super::ReplicaSample>,
    /// `forecast_only = true`: what the forecast policy would have done at
    /// each pass (issue 13), beside `entries`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<super::ShadowEntry>,
    /// The database origin's checks by `failover = "auto"` (issue 8), newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin: Vec<super::failover::OriginCheck>,
}

/// Kept at most: two weeks of demand at one point a minute, a day of entries.
const MAX_DEMAND: usize = 20_160;
pub(super) const MAX_ENTRIES: usize = 2_880;
pub(super) const MAX_SAMPLES: usize = 240;
const MAX_BOOTS: usize = 50;
const MAX_ORIGIN_CHECKS: usize = 100;
/// A server first seen up longer than this after the last scale-out was not
/// started by it (or the measurement is meaningless).
const MAX_BOOT_S: u64 = 3_600;

impl Record {
    /// The history `decide` reads.
    pub fn history(&self) -> History {
        History {
            decisions: self
                .entries
                .iter()
                .filter(|e| e.from != e.to)
                .map(|e| DecisionRecord {
                    at: e.at,
                    from: e.from,
                    to: e.to,
                    reason: e.reason.clone(),
                })
                .collect(),
            demand: self
                .demand
                .iter()
                .map(|&(at, load)| DemandPoint { at, load })
                .collect(),
            boots: self.boots.clone(),
        }
    }

    /// A boot measured when servers are first seen up at `now`: the time
    /// since the latest scale-out, if the record saw passes before it.
    fn measure_boot(&mut self, newly_up: usize, now: u64) {
        if newly_up == 0 || self.counters.is_none() {
            return;
        }
        let last_out = self
            .entries
            .iter()
            .rev()
            .find(|e| e.to > e.from && e.at <= now)
            .map(|e| e.at);
        let seen_since = self.entries.iter().rev().find(|e| e.at < now).map(|e| e.at);
        if let (Some(at), Some(_)) = (last_out, seen_since) {
            let boot = now - at;
            if boot > 0 && boot <= MAX_BOOT_S {
                self.boots.push(boot);
                trim(&mut self.boots, MAX_BOOTS);
            }
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: s.value,
                instances_reporting: s.reporting,
                instances_warm: s.warm,
            })
            .collect()
    }

    /// Take one reading of the load balancer at `now`: the sample it makes
    /// (none for the first reading of a rate, or when nothing is up), kept
    /// along with the counters for the next pass.
    pub fn observe(
        &mut self,
        metric: Metric,
        servers: &[ServerCounters],
        now: u64,
        warmup_s: u64,
    ) -> Option<Sample> {
        let up: Vec<&ServerCounters> = servers.iter().filter(|s| s.up).collect();
        let newly_up = up
            .iter()
            .filter(|s| !self.first_up.contains_key(&s.name))
            .count();
        self.measure_boot(newly_up, now);
        for s in &up {
            self.first_up.entry(s.name.clone()).or_insert(now);
        }
        self.first_up
            .retain(|name, _| servers.iter().any(|s| &s.name == name));
        let warm: Vec<&&ServerCounters> = up
            .iter()
            .filter(|s| {
                self.first_up
                    .get(&s.name)
                    .is_some_and(|t| now.saturating_sub(*t) >= warmup_s)
            })
            .collect();
        let previous = self.counters.take();
        self.counters = Some((
            now,
            servers
                .iter()
                .map(|s| (s.name.clone(), s.requests))
                .collect(),
        ));
        let value = match metric {
            Metric::RequestsPerInstance => {
                let (then, before) = previous?;
                let dt = now.checked_sub(then).filter(|d| *d > 0)? as f64;
                // Every up server's rate counts toward demand; warm ones make the average.
                let rate = |s: &ServerCounters| {
                    before
                        .get(&s.name)
                        .map(|b| s.requests.saturating_sub(*b) as f64 / dt)
                };
                let total: f64 = up.iter().filter_map(|s| rate(s)).sum();
                self.push_demand(now, total);
                let counted: Vec<f64> = warm.iter().filter_map(|s| rate(s)).collect();
                if counted.is_empty() {
                    return None;
                }
                counted.iter().sum::<f64>() / counted.len() as f64
            }
            Metric::ResponseTimeMs => {
                if warm.is_empty() {
                    return None;
                }
                warm.iter().map(|s| s.response_ms as f64).sum::<f64>() / warm.len() as f64
            }
            Metric::QueueTimeMs => {
                if warm.is_empty() {
                    return None;
                }
                warm.iter().map(|s| s.queue_ms as f64).sum::<f64>() / warm.len() as f64
            }
            Metric::CpuPercent => {
                let before = std::mem::take(&mut self.cpu);
                self.cpu = servers
                    .iter()
                    .filter_map(|s| Some((s.name.clone(), s.cpu?)))
                    .collect();
                let busy: Vec<f64> = warm
                    .iter()
                    .filter_map(|s| {
                        let (b1, t1) = s.cpu?;
                        let (b0, t0) = *before.get(&s.name)?;
                        let dt = t1.checked_sub(t0).filter(|d| *d > 0)?;
                        Some(100.0 * b1.saturating_sub(b0) as f64 / dt as f64)
                    })
                    .collect();
                if busy.is_empty() {
                    return None;
                }
                let mean = busy.iter().sum::<f64>() / busy.len() as f64;
                // Total CPU load, for the forecast policy.
                self.push_demand(now, mean * up.len() as f64);
                mean
            }
        };
        let sample = Sample {
            at: now,
            value,
            instances_reporting: up.len() as u32,
            instances_warm: warm.len() as u32,
        };
        self.samples.push(StoredSample {
            at: now,
            value,
            reporting: sample.instances_reporting,
            warm: sample.instances_warm,
        });
        trim(&mut self.samples, MAX_SAMPLES);
        Some(sample)
    }

    fn push_demand(&mut self, at: u64, load: f64) {
        self.demand.push((at, load));
        trim(&mut self.demand, MAX_DEMAND);
    }

    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
        trim(&mut self.entries, MAX_ENTRIES);
    }

    /// Keep what the forecast policy would have done at a pass.
    pub fn push_shadow(&mut self, entry: super::ShadowEntry) {
        self.shadow.push(entry);
        trim(&mut self.shadow, MAX_ENTRIES);
    }

    /// Keep one check of the database origin (`failover = "auto"`).
    pub fn push_origin_check(&mut self, check: super::failover::OriginCheck) {
        self.origin.push(check);
        trim(&mut self.origin, MAX_ORIGIN_CHECKS);
    }
}

pub(super) fn trim<T>(v: &mut Vec<T>, max: usize) {
    if v.len() > max {
        v.drain(..v.len() - max);
    }
}

/// Where the record is kept: beside the state file.
pub fn record_path(state_path: &Path) -> PathBuf {
    state_path.with_file_name("autoscale.json")
}

#[derive(Debug, thiserror::Error)]
#[error("autoscale record {path}: {detail}")]
pub struct RecordError {
    pub path: PathBuf,
    pub detail: String,
}

pub fn load(path: &Path) -> Result<Record, RecordError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| RecordError {
            path: path.to_path_buf(),
            detail: format!("corrupt ({e}); move it away to start a new history"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
        Err(e) => Err(RecordError {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// Atomically and durably (the one path, [`crate::durable`]), mode 0600.
/// A pass holds [`lock`] from [`load`] to `save`, so two overlapping passes
/// never lose each other's entries.
pub fn save(path: &Path, record: &Record) -> Result<(), RecordError> {
    let err = |e: std::io::Error| RecordError {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::durable::ensure_dir(dir, 0o700).map_err(err)?;
    }
    let json = serde_json::to_vec_pretty(record).expect("records serialize");
    crate::durable::replace(path, &json, 0o600).map_err(|e| err(e.source))
}

/// The lock a pass holds around its read-modify-write of the record at `path`
/// (`autoscale.json.lock` beside it; waits for another pass to finish).
pub fn lock(path: &Path) -> Result<crate::durable::FileLock, RecordError> {
    let guard = crate::durable::suffixed(path, ".lock");
    let err = |e: std::io::Error| RecordError {
        path: guard.clone(),
        detail: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::durable::ensure_dir(dir, 0o700).map_err(err)?;
    }
    crate::durable::FileLock::exclusive(&guard).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, up: bool, requests: u64) -> ServerCounters {
        ServerCounters {
            name: name.into(),
            up,
            requests,
            response_ms: 20,
            queue_ms: 0,
            sessions: 0,
            queued: 0,
            cpu: Some((requests, requests * 4)),
        }
    }

    #[test]
    fn a_rate_needs_two_readings_and_counts_only_warm_servers() {
        let mut r = Record::default();
        let first = r.observe(
            Metric::RequestsPerInstance,
            &[server("web0", true, 100)],
            1_000,
            60,
        );
        assert_eq!(first, None, "no rate from one reading");
        // web1 appears later: up, but still warming up at the next reading.
        let s = r
            .observe(
                Metric::RequestsPerInstance,
                &[server("web0", true, 1_300), server("web1", true, 50)],
                1_060,
                60,
            )
            .unwrap();
        assert_eq!(
            (s.value, s.instances_reporting, s.instances_warm),
            (20.0, 2, 1)
        );
        assert_eq!(
            r.demand.last(),
            Some(&(1_060, 20.0)),
            "web1 had no earlier counter"
        );
        let s = r
            .observe(
                Metric::RequestsPerInstance,
                &[server("web0", true, 1_900), server("web1", true, 650)],
                1_120,
                60,
            )
            .unwrap();
        assert_eq!((s.value, s.instances_warm), (10.0, 2));
        assert_eq!(r.demand.last(), Some(&(1_120, 20.0)));
    }

    #[test]
    fn cpu_is_the_busy_share_of_the_jiffies_between_readings() {
        let mut r = Record::default();
        // web0 goes from (100 busy, 400 total) to (200, 800): 100 of 400 = 25 %.
        assert_eq!(
            r.observe(Metric::CpuPercent, &[server("web0", true, 100)], 10, 0),
            None
        );
        let s = r
            .observe(Metric::CpuPercent, &[server("web0", true, 200)], 20, 0)
            .unwrap();
        assert_eq!(s.value, 25.0, "busy 100 of 400 jiffies");
        assert_eq!(
            crate::roles::configure::cpu_jiffies("cpu  10 0 10 70 10 0 0 0 0 0"),
            Some((20, 100))
        );
        assert_eq!(crate::roles::configure::cpu_jiffies("intr 1 2 3"), None);
    }

    /// Issue 10: overlapping passes (threads here, `autoscale --once` runs in
    /// life) each lock, load, add an entry and save: none is lost.
    #[test]
    fn overlapping_passes_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(&dir.path().join("state.json"));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..25u64 {
                        let _held = lock(&path).unwrap();
                        let mut record = load(&path).unwrap();
                        record.entries.push(Entry {
                            at: t * 1000 + i,
                            metric: "requests_per_instance".into(),
                            value: None,
                            from: 1,
                            to: 1,
                            reason: format!("pass {t}.{i}"),
                        });
                        save(&path, &record).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(load(&path).unwrap().entries.len(), 100);
    }

    #[test]
    fn nothing_up_is_no_sample_and_history_keeps_only_changes() {
        let mut r = Record::default();
        assert_eq!(
            r.observe(Metric::ResponseTimeMs, &[server("web0", false, 0)], 10, 0),
            None
        );
        r.push(Entry {
            at: 1,
            metric: "m".into(),
            value: None,
            from: 2,
            to: 2,
            reason: "stay".into(),
        });
        r.push(Entry {
            at: 2,
            metric: "m".into(),
            value: Some(80.0),
            from: 2,
            to: 3,
            reason: "out".into(),
        });
        let h = r.history();
        assert_eq!(h.decisions.len(), 1);
        assert_eq!((h.decisions[0].from, h.decisions[0].to), (2, 3));
    }
}
