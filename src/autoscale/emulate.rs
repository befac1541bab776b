//! Emulations of Kubernetes' Horizontal Pod Autoscaler and AWS target
//! tracking on one capacity model, for `autoscale simulate --compare`. Pure:
//! per-minute request rates in, per-minute supply out.
//!
//! They follow the shared yardstick (`shared/bench/elasticity.py`) step for
//! step, so appgrid's figures next to theirs are the ones the yardstick
//! gives (a test runs both on one trace):
//!
//! - **Model.** An instance asked for at `t` serves from `t + boot`; removals
//!   take effect at once, cancelling pending launches (youngest first) before
//!   serving instances. Demand in instances is `ceil(rate / per_instance)`
//!   within min..max. Both start at the first minute's demand.
//! - **HPA** (defaults): a pass every 15 s; the metric is the rate per serving
//!   instance; inside ±10 % of the target nothing changes, else
//!   `ceil(ratio × serving)`; scale-down takes the highest recommendation of
//!   the last 300 s (stabilization), scale-up at most `max(+4, ×2)` a pass.
//!   Supply is read at each minute's start, after that pass.
//! - **Target tracking**: a pass a minute (CloudWatch's 1-minute metric);
//!   above the target, out at once to `ceil(rate / per_instance)`; in only
//!   below 90 % of the target, with nothing pending and 300 s after the last
//!   scale-in, down to what the rate needs. Booting instances count as
//!   capacity but not in the metric.

/// The capacity model every policy is judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Requests per second one instance serves at the target.
    pub per_instance: f64,
    /// Seconds from asking for an instance to it serving.
    pub boot_s: u64,
    pub min: u32,
    pub max: u32,
}

/// Supply per minute and the number of changes of the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulated {
    pub supply: Vec<u32>,
    pub events: usize,
}

/// Instances asked for at `t` serve from `t + boot`; removals are immediate.
#[derive(Debug)]
struct Fleet {
    serving: u32,
    /// When each pending instance starts serving, in the order asked.
    pending: Vec<u64>,
    boot_s: u64,
}

impl Fleet {
    fn new(serving: u32, boot_s: u64) -> Fleet {
        Fleet {
            serving,
            pending: Vec::new(),
            boot_s,
        }
    }

    fn tick(&mut self, t: u64) {
        let before = self.pending.len();
        self.pending.retain(|&p| p > t);
        self.serving += (before - self.pending.len()) as u32;
    }

    fn total(&self) -> u32 {
        self.serving + self.pending.len() as u32
    }

    fn set_desired(&mut self, t: u64, desired: u32) {
        let current = self.total();
        if desired > current {
            let ready = t + self.boot_s;
            self.pending
                .extend(std::iter::repeat_n(ready, (desired - current) as usize));
        } else {
            let mut drop = current - desired;
            while drop > 0 && self.pending.pop().is_some() {
                drop -= 1;
            }
            self.serving = self.serving.saturating_sub(drop);
        }
    }
}

impl Model {
    /// Demand in instances for a rate, within min..max.
    pub fn demand(&self, rate: f64) -> u32 {
        let n = (rate / self.per_instance).ceil();
        (n.max(0.0).min(f64::from(u32::MAX)) as u32).clamp(self.min, self.max)
    }

    fn clamp(&self, n: u32) -> u32 {
        n.clamp(self.min, self.max)
    }
}

fn ceil_u32(x: f64) -> u32 {
    x.ceil().max(0.0).min(f64::from(u32::MAX)) as u32
}

/// Kubernetes HPA with its defaults over `rates` (req/s, one a minute).
pub fn hpa(rates: &[f64], model: Model) -> Emulated {
    const STEP: u64 = 15;
    const WINDOW: u64 = 300;
    let start = rates.first().map_or(model.min, |&r| model.demand(r));
    let mut fleet = Fleet::new(start, model.boot_s);
    let mut recommendations: std::collections::VecDeque<(u64, u32)> = Default::default();
    let mut supply = Vec::with_capacity(rates.len());
    let mut events = 0;
    let horizon = rates.len() as u64 * 60;
    let mut t = 0;
    while t < horizon {
        fleet.tick(t);
        let ready = fleet.serving.max(1);
        let metric = rates[(t / 60) as usize] / f64::from(ready);
        let ratio = metric / model.per_instance;
        let current = fleet.total();
        let raw = if (1.0 - ratio).abs() <= 0.1 {
            current
        } else {
            ceil_u32(ratio * f64::from(ready))
        };
        let raw = model.clamp(raw);
        recommendations.push_back((t, raw));
        while recommendations
            .front()
            .is_some_and(|&(at, _)| at + WINDOW <= t)
        {
            recommendations.pop_front();
        }
        let wanted = if raw < current {
            let highest = recommendations.iter().map(|&(_, r)| r).max().unwrap_or(raw);
            highest.min(current)
        } else {
            raw.min((current + 4).max(current * 2))
        };
        let wanted = model.clamp(wanted);
        if wanted != current {
            events += 1;
            fleet.set_desired(t, wanted);
        }
        if t % 60 == 0 {
            supply.push(fleet.serving);
        }
        t += STEP;
    }
    Emulated { supply, events }
}

/// AWS target tracking over `rates` (req/s, one a minute).
pub fn target_tracking(rates: &[f64], model: Model) -> Emulated {
    const COOLDOWN_IN: u64 = 300;
    let start = rates.first().map_or(model.min, |&r| model.demand(r));
    let mut fleet = Fleet::new(start, model.boot_s);
    let mut supply = Vec::with_capacity(rates.len());
    let mut events = 0;
    let mut last_in: Option<u64> = None;
    for (m, &rate) in rates.iter().enumerate() {
        let t = m as u64 * 60;
        fleet.tick(t);
        let serving = fleet.serving.max(1);
        let metric = rate / f64::from(serving);
        let current = fleet.total();
        let mut wanted = current;
        let cooled = last_in.is_none_or(|at| t - at >= COOLDOWN_IN);
        if metric > model.per_instance {
            wanted = current.max(ceil_u32(rate / model.per_instance));
        } else if metric < 0.9 * model.per_instance && fleet.pending.is_empty() && cooled {
            let need = if rate > 0.0 {
                ceil_u32(rate / model.per_instance)
            } else {
                model.min
            };
            wanted = need.max(model.min);
            if wanted < current {
                last_in = Some(t);
            }
        }
        let wanted = model.clamp(wanted);
        if wanted != current {
            events += 1;
            fleet.set_desired(t, wanted);
        }
        supply.push(fleet.serving);
    }
    Emulated { supply, events }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: Model = Model {
        per_instance: 50.0,
        boot_s: 120,
        min: 1,
        max: 100,
    };

    #[test]
    fn hpa_is_late_by_a_boot_and_holds_capacity_for_the_window() {
        // 40 req/s for 10 minutes, a step to 240 req/s for 10, then back.
        let rates: Vec<f64> = (0..40)
            .map(|m| if (10..20).contains(&m) { 240.0 } else { 40.0 })
            .collect();
        let e = hpa(&rates, MODEL);
        assert_eq!(e.supply.len(), 40);
        assert_eq!(e.supply[..12], [1; 12]);
        // Asked at minute 10 (4.8 × 1 → 5, within max(+4, ×2)), serving 2 min later.
        assert_eq!(e.supply[11], 1, "{:?}", e.supply);
        assert_eq!(e.supply[12], 5, "{:?}", e.supply);
        // Scale-down waits out the 300 s window after the drop at minute 20.
        assert_eq!(e.supply[24], 5, "{:?}", e.supply);
        assert_eq!(e.supply[25..], [1; 15], "{:?}", e.supply);
        assert_eq!(e.events, 2);
    }

    #[test]
    fn target_tracking_scales_in_only_after_its_cooldown_and_below_the_band() {
        let rates: Vec<f64> = (0..30)
            .map(|m| if (5..10).contains(&m) { 240.0 } else { 44.0 })
            .collect();
        let e = target_tracking(&rates, MODEL);
        assert_eq!(e.supply[6], 1);
        assert_eq!(e.supply[7], 5, "{:?}", e.supply);
        // 44 req/s on 5 is below 90 % of the target: in at once to 1.
        assert_eq!(e.supply[10], 1, "{:?}", e.supply);
        assert_eq!(e.events, 2);
        // At 46 req/s (> 45 = 90 % of 50) one instance stays as it is.
        let steady = target_tracking(&[46.0; 10], MODEL);
        assert_eq!(steady.supply, vec![1; 10]);
        assert_eq!(steady.events, 0);
    }

    #[test]
    fn removals_cancel_pending_launches_first() {
        let mut fleet = Fleet::new(2, 120);
        fleet.set_desired(0, 5);
        fleet.tick(60);
        assert_eq!((fleet.serving, fleet.total()), (2, 5));
        fleet.set_desired(60, 3);
        assert_eq!((fleet.serving, fleet.total()), (2, 3));
        fleet.set_desired(60, 1);
        assert_eq!((fleet.serving, fleet.total()), (1, 1));
        fleet.tick(120);
        assert_eq!(fleet.serving, 1);
    }

    #[test]
    fn demand_is_within_the_bounds() {
        assert_eq!(MODEL.demand(0.0), 1);
        assert_eq!(MODEL.demand(50.0), 1);
        assert_eq!(MODEL.demand(50.1), 2);
        assert_eq!(MODEL.demand(1e9), 100);
    }
}
