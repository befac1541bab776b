//! `policy = "forecast"`: ask now for the capacity the load will need by
//! the time new servers could serve, and give it back as soon as the forecast
//! allows.
//!
//! All on the total load (metric × reporting instances; requests/s for
//! `requests_per_instance`), from the demand history and the latest sample:
//!
//! - **Horizon.** A server asked for now serves after `boot`; the next pass
//!   comes one interval later. So this pass is the last chance to provide for
//!   every point in `(now, now + interval + boot)`: the forecast covers the
//!   `H = ceil((interval + boot) / interval) − 1` points ahead, and the current
//!   load itself (capacity removed now is gone at once). `boot` is the
//!   manifest's, else the median of the boots measured from real scale-outs
//!   ([`History::boots`]), else [`DEFAULT_BOOT_S`].
//! - **Trend.** Holt's linear exponential smoothing with a damped trend
//!   (level α = 0.15, trend β = 0.1, damping φ = 0.9), run over the last
//!   7 hours of demand.
//! - **Seasonality.** The ratio of the (±5 min) mean load one day and one
//!   week ago at the same time `h` ahead to the mean at that time, averaged
//!   over the seasons the history holds, capped to ×⅓…×3, scales the trend.
//! - **Margin.** For each step ahead `h`, the errors the trend forecast made
//!   over the last 6 hours (actual − forecast, divided by √level: counts are
//!   noisy like Poisson counts, whose spread grows as the square root) over
//!   the last 6 hours give a quantile ([`DEFAULT_QUANTILE`]); the margin is
//!   that times √level now.
//!   After under-forecasts the quantile, and so the margin, grows. With fewer
//!   than [`MIN_RESIDUALS`] errors it is [`COLD_MARGIN`].
//!
//! It needs `ceil(max(current load, forecast_h + margin_h) / target)`
//! instances. Scale-out obeys the scale-out cooldown; scale-in happens as soon
//! as the forecast allows (no stabilization window), but never on missing or
//! stale data, nor when the demand history has a gap over the horizon.
//! `response_time_ms` is not a load that adds up over instances: for it the
//! reactive policy runs.

use super::decide::{Parts, describe, fresh_sample, instances_for};
use super::policy::{DemandPoint, ForecastSettings, History, Policy, Sample};
use crate::manifest::Metric;

/// Level smoothing of Holt's method.
const ALPHA: f64 = 0.15;
/// Trend smoothing.
const BETA: f64 = 0.1;
/// Trend damping per step.
const PHI: f64 = 0.9;
/// How far back the forecast's own errors are learned from: long enough for
/// a tail quantile, short enough to follow the day's changing noise.
const RESIDUAL_WINDOW_S: u64 = 6 * 3_600;
/// History before the error window that lets the smoothing settle.
const SETTLE_S: u64 = 3_600;
/// Half the width of the means the seasonal ratio compares.
const SEASON_HALF_WIDTH_S: u64 = 300;
const DAY: u64 = 86_400;
const WEEK: u64 = 7 * DAY;
/// The most steps ahead looked at (a long boot on a short interval).
const MAX_STEPS: usize = 240;

/// Boot time assumed when the manifest does not give one and none was measured.
pub const DEFAULT_BOOT_S: u64 = 120;
/// The quantile of past errors the margin covers.
pub const DEFAULT_QUANTILE: f64 = 0.9;
/// Errors needed before the margin is learned rather than [`COLD_MARGIN`].
pub const MIN_RESIDUALS: usize = 20;
/// The margin, in √level units, before enough errors are known.
pub const COLD_MARGIN: f64 = 3.0;

/// What the forecast expects over the horizon, and from what.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlook {
    /// The load to provide for now: the highest of the current load and each
    /// step's forecast plus its margin.
    pub capacity: f64,
    /// The highest point forecast (without margin) over the horizon.
    pub point: f64,
    /// The margin added at the step where `capacity` was reached.
    pub margin: f64,
    /// Seconds ahead covered: interval + boot.
    pub horizon_s: u64,
    /// The boot time used, and whether it was measured.
    pub boot_s: u64,
    /// Errors the margin was learned from (per step, the fewest).
    pub errors: usize,
    /// "daily pattern", "weekly and daily patterns" or "trend".
    pub basis: &'static str,
}

/// Holt's damped linear smoothing state after each point.
fn holt(loads: &[f64]) -> Vec<(f64, f64)> {
    let mut states = Vec::with_capacity(loads.len());
    let (mut level, mut trend) = (loads.first().copied().unwrap_or(0.0), 0.0);
    for (i, &x) in loads.iter().enumerate() {
        if i > 0 {
            let previous = level;
            let predicted = level + PHI * trend;
            level = ALPHA * x + (1.0 - ALPHA) * predicted;
            trend = BETA * (level - previous) + (1.0 - BETA) * PHI * trend;
        }
        states.push((level, trend));
    }
    states
}

/// The trend forecast `h` steps after a state.
fn ahead((level, trend): (f64, f64), h: usize) -> f64 {
    let mut damp = 0.0;
    let mut factor = 1.0;
    for _ in 0..h {
        factor *= PHI;
        damp += factor;
    }
    (level + trend * damp).max(0.0)
}

/// The noise scale at a level: √level, at least 1.
fn spread(level: f64) -> f64 {
    level.max(1.0).sqrt()
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

/// How the load moved from `now − season` to `now − season + ahead`.
fn seasonal_ratio(demand: &[DemandPoint], now: u64, ahead_s: u64, season: u64) -> Option<f64> {
    let then = now.checked_sub(season)?;
    // The history must reach back before `then`, or the mean is one-sided.
    if demand.first()?.at > then.saturating_sub(SEASON_HALF_WIDTH_S) {
        return None;
    }
    let w = SEASON_HALF_WIDTH_S;
    let base = mean(demand, then.saturating_sub(w), then + w)?;
    let later = mean(
        demand,
        (then + ahead_s).saturating_sub(w),
        then + ahead_s + w,
    )?;
    (base > 0.0).then(|| (later / base).clamp(1.0 / 3.0, 3.0))
}

/// The `q` quantile of `values` (sorted in place); `None` when empty.
fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((values.len() as f64 * q) as usize).min(values.len() - 1);
    let (_, v, _) = values.select_nth_unstable_by(rank, f64::total_cmp);
    Some(*v)
}

/// The usual spacing of the recent points (median of the last gaps).
fn spacing(points: &[(u64, f64)], fallback: u64) -> u64 {
    let mut gaps: Vec<u64> = points
        .windows(2)
        .rev()
        .take(50)
        .map(|w| w[1].0 - w[0].0)
        .filter(|&g| g > 0)
        .collect();
    if gaps.is_empty() {
        return fallback.max(1);
    }
    let mid = gaps.len() / 2;
    *gaps.select_nth_unstable(mid).1
}

/// The boot time to plan with: given, else the median measured, else the default.
pub fn boot_s(settings: &ForecastSettings, history: &History) -> u64 {
    if let Some(b) = settings.boot_s {
        return b;
    }
    let mut measured: Vec<u64> = history.boots.iter().rev().take(20).copied().collect();
    if measured.is_empty() {
        return DEFAULT_BOOT_S;
    }
    let mid = measured.len() / 2;
    *measured.select_nth_unstable(mid).1
}

/// The forecast at `now`, when the current total load is `load`. Demand
/// points at or after `now` are ignored (the current load stands for them).
pub fn outlook(
    settings: &ForecastSettings,
    history: &History,
    load: f64,
    now: u64,
    interval_s: u64,
) -> Outlook {
    let boot = boot_s(settings, history);
    let demand = &history.demand;
    let before_now = demand.partition_point(|d| d.at < now);
    let past = &demand[..before_now];
    let from = now.saturating_sub(RESIDUAL_WINDOW_S + SETTLE_S);
    let first = past.partition_point(|d| d.at < from);
    let mut points: Vec<(u64, f64)> = past[first..]
        .iter()
        .filter(|d| d.load.is_finite())
        .map(|d| (d.at, d.load.max(0.0)))
        .collect();
    points.push((now, load.max(0.0)));
    let step = spacing(&points, interval_s);
    let steps = (interval_s.max(1) + boot).div_ceil(step).saturating_sub(1);
    let steps = usize::try_from(steps)
        .unwrap_or(MAX_STEPS)
        .clamp(1, MAX_STEPS);
    let loads: Vec<f64> = points.iter().map(|p| p.1).collect();
    let states = holt(&loads);
    let n = loads.len();
    let errors_from = now.saturating_sub(RESIDUAL_WINDOW_S);
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); steps];
    for i in 0..n.saturating_sub(1) {
        // Skip the first points, while the smoothing settles.
        if points[i].0 < errors_from || i < 10 {
            continue;
        }
        let scale = spread(states[i].0);
        for (h, e) in errors.iter_mut().enumerate() {
            let Some(&actual) = loads.get(i + h + 1) else {
                break;
            };
            e.push((actual - ahead(states[i], h + 1)) / scale);
        }
    }
    let fewest = errors.iter().map(Vec::len).min().unwrap_or(0);
    let now_state = states[n - 1];
    let mut seasons = 0;
    let mut basis = "trend";
    let (mut capacity, mut point, mut margin) = (load.max(0.0), load.max(0.0), 0.0);
    for (h, e) in errors.iter_mut().enumerate() {
        let ahead_s = step * (h as u64 + 1);
        let ratios: Vec<f64> = [WEEK, DAY]
            .iter()
            .filter_map(|&season| seasonal_ratio(past, now, ahead_s, season))
            .collect();
        if !ratios.is_empty() {
            seasons = seasons.max(ratios.len());
        }
        let ratio = if ratios.is_empty() {
            1.0
        } else {
            ratios.iter().sum::<f64>() / ratios.len() as f64
        };
        let f = ahead(now_state, h + 1) * ratio;
        let q = if e.len() >= MIN_RESIDUALS {
            quantile(e, settings.quantile).unwrap_or(COLD_MARGIN)
        } else {
            COLD_MARGIN
        };
        let m = q.max(0.0) * spread(now_state.0);
        point = point.max(f);
        if f + m > capacity {
            capacity = f + m;
            margin = m;
        }
    }
    if seasons == 2 {
        basis = "weekly and daily patterns";
    } else if seasons == 1 {
        basis = "daily pattern";
    }
    Outlook {
        capacity,
        point,
        margin,
        horizon_s: interval_s.max(1) + boot,
        boot_s: boot,
        errors: fewest,
        basis,
    }
}

/// Whether the demand history has a gap longer than `stale` within `span`
/// before `now` (or does not reach back that far).
fn gap_within(demand: &[DemandPoint], now: u64, span: u64, stale: u64) -> bool {
    let from = now.saturating_sub(span);
    let before_now = demand.partition_point(|d| d.at < now);
    let start = demand[..before_now].partition_point(|d| d.at < from);
    // The last point before the span, so the span's start is covered.
    let start = start.saturating_sub(1);
    let times: Vec<u64> = demand[start..before_now]
        .iter()
        .map(|d| d.at)
        .chain([now])
        .collect();
    times.first().is_none_or(|&t| t > from) || times.windows(2).any(|w| w[1] - w[0] > stale)
}

/// The forecast policy's proposal (before bounds).
pub(super) fn propose(
    policy: &Policy,
    settings: &ForecastSettings,
    history: &History,
    samples: &[Sample],
    current: u32,
    now: u64,
) -> Parts {
    let stay = |s: String| (Some(s), 0, String::new());
    let latest = match fresh_sample(policy, samples, now) {
        Ok(s) => s,
        Err(sentence) => return stay(sentence),
    };
    let load = latest.value * f64::from(latest.instances_reporting);
    let o = outlook(settings, history, load, now, policy.interval_s);
    let need = instances_for(o.capacity, policy.target).max(1);
    let unit = match policy.metric {
        Metric::CpuPercent => "% CPU in total",
        _ => "req/s",
    };
    let (reading, _) = describe(policy, latest.value);
    let said = format!(
        "{reading}; forecast {:.0} {unit} within {}s ({}, margin {:.0} from {} recent errors) needs {need}",
        o.capacity, o.horizon_s, o.basis, o.margin, o.errors
    );
    if need == current {
        return stay(format!("{said}: stay at {current}"));
    }
    if need > current {
        let since_change = history.last_change_at(now).map(|at| now - at);
        if let Some(left) = since_change
            .and_then(|s| policy.scale_out_cooldown_s.checked_sub(s))
            .filter(|&l| l > 0)
        {
            return stay(format!(
                "{said}, but the scale-out cooldown ({}s) has {left}s left: stay at {current}",
                policy.scale_out_cooldown_s
            ));
        }
        return (None, need, said);
    }
    if gap_within(&history.demand, now, o.horizon_s, policy.stale_after_s()) {
        return stay(format!(
            "{said}, but the load history has a gap in the last {}s: not scaling in",
            o.horizon_s
        ));
    }
    (None, need, said)
}
