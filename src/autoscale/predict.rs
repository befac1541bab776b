//! The predictive option: scale out ahead of a rise that the demand history
//! says is coming.
//!
//! Method (seasonal naive with a damped trend, all on the total load, i.e.
//! metric × reporting instances):
//!
//! - The history is smoothed by a moving mean `smoothing` wide.
//! - For each season — a week, then a day — present in the history, the
//!   ratio of the highest smoothed load between `now − season` and
//!   `now − season + lookahead` to the mean load over the `smoothing` before
//!   `now − season` says
//!   how much the load grew then over the same stretch. The ratios of the
//!   seasons found are averaged (capped at ×3).
//! - The trend is the least-squares slope of the last `smoothing` of history,
//!   halved (damped) and only upwards, carried `lookahead` ahead.
//! - The forecast is the mean load over the last `smoothing` times the
//!   seasonal ratio, or
//!   the trend's projection if higher; it needs `ceil(forecast / target)`.
//!
//! The prediction only ever raises the reactive decision (never below it),
//! obeys the scale-out cooldown, and is not used on stale data or for the
//! response-time metric (not a load that adds up over instances).

use super::decide::{Parts, fresh_sample, instances_for};
use super::policy::{DemandPoint, History, Policy, Predictive, Sample};
use crate::manifest::Metric;

const DAY: u64 = 86_400;
const WEEK: u64 = 7 * DAY;

/// A predicted load and what it was based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub load: f64,
    pub basis: &'static str,
}

/// Mean load of the points in `[from, to]`.
fn mean(demand: &[DemandPoint], from: u64, to: u64) -> Option<f64> {
    let start = demand.partition_point(|d| d.at < from);
    let (mut sum, mut n) = (0.0, 0u32);
    for d in demand[start..].iter().take_while(|d| d.at <= to) {
        sum += d.load;
        n += 1;
    }
    (n > 0).then(|| sum / f64::from(n))
}

/// How much the load grew over `lookahead` one `season` ago.
fn seasonal_ratio(p: &Predictive, demand: &[DemandPoint], now: u64, season: u64) -> Option<f64> {
    let then = now.checked_sub(season)?;
    let half = p.smoothing_s / 2;
    // Measured like the recent level it scales: the `smoothing` before.
    let base = mean(demand, then.saturating_sub(p.smoothing_s), then)?;
    if base <= 0.0 {
        return None;
    }
    let steps = (p.lookahead_s / 60).max(1);
    let ahead = (1..=steps)
        .filter_map(|k| {
            let t = then + p.lookahead_s * k / steps;
            mean(demand, t.saturating_sub(half), t + half)
        })
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
    Some((ahead / base).min(3.0))
}

/// Least-squares slope (load per second) of the points in `[from, to]`.
fn slope(demand: &[DemandPoint], from: u64, to: u64) -> Option<f64> {
    let start = demand.partition_point(|d| d.at < from);
    let points = demand[start..].iter().take_while(|d| d.at <= to);
    let (mut n, mut st, mut sl, mut stt, mut stl) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for d in points {
        let t = (d.at - from) as f64;
        n += 1.0;
        st += t;
        sl += d.load;
        stt += t * t;
        stl += t * d.load;
    }
    let denominator = n * stt - st * st;
    (n >= 3.0 && denominator > 0.0).then(|| (n * stl - st * sl) / denominator)
}

/// The load expected within `lookahead` of `now`, from the history before it.
pub fn forecast(p: &Predictive, demand: &[DemandPoint], now: u64) -> Option<Forecast> {
    let recent = mean(demand, now.saturating_sub(p.smoothing_s), now)?;
    let ratios: Vec<(f64, &'static str)> = [(WEEK, "weekly pattern"), (DAY, "daily pattern")]
        .into_iter()
        .filter_map(|(season, name)| seasonal_ratio(p, demand, now, season).map(|r| (r, name)))
        .collect();
    let seasonal = (!ratios.is_empty()).then(|| {
        let ratio = ratios.iter().map(|(r, _)| r).sum::<f64>() / ratios.len() as f64;
        let basis = match ratios.len() {
            1 => ratios[0].1,
            _ => "weekly and daily patterns",
        };
        Forecast {
            load: recent * ratio,
            basis,
        }
    });
    let trend = slope(demand, now.saturating_sub(p.smoothing_s), now)
        .filter(|s| *s > 0.0)
        .map(|s| Forecast {
            load: recent + s / 2.0 * (p.smoothing_s / 2 + p.lookahead_s) as f64,
            basis: "recent trend",
        });
    match (seasonal, trend) {
        (Some(s), Some(t)) if t.load > s.load => Some(t),
        (Some(s), _) => Some(s),
        (None, t) => t,
    }
}

/// Raise the reactive proposal to what the forecast needs, if higher.
pub(super) fn apply(
    policy: &Policy,
    p: &Predictive,
    history: &History,
    samples: &[Sample],
    current: u32,
    now: u64,
    parts: Parts,
) -> Parts {
    if policy.metric.is_time() || fresh_sample(policy, samples, now).is_err() {
        return parts;
    }
    let Some(f) = forecast(p, &history.demand, now) else {
        return parts;
    };
    let need = instances_for(f.load, policy.target);
    let (stay, to, why) = parts;
    let reactive = if stay.is_some() { current } else { to };
    if need <= reactive {
        return (stay, to, why);
    }
    let unit = match policy.metric {
        Metric::CpuPercent => "% CPU in total",
        _ => "req/s",
    };
    let said = format!(
        "predicted {:.0} {unit} within {}s ({}) needs {need}",
        f.load, p.lookahead_s, f.basis
    );
    if need <= current {
        // The reactive proposal was a scale-in: go no lower than the forecast.
        return if need == current {
            (
                Some(format!("{why}, but {said}: stay at {current}")),
                0,
                String::new(),
            )
        } else {
            (None, need, format!("{why}, but {said}"))
        };
    }
    let since_change = history.last_change_at(now).map(|at| now - at);
    if since_change.is_some_and(|s| s < policy.scale_out_cooldown_s) {
        return match stay {
            Some(_) => (stay, to, why),
            None if to >= current => (None, to, why),
            None => (
                Some(format!("{why}, but {said}: stay at {current}")),
                0,
                String::new(),
            ),
        };
    }
    let why = match stay {
        Some(_) => said,
        None => format!("{why}; {said}"),
    };
    (None, need, why)
}
