//! Elasticity figures of a simulated run, as defined by the SPEC Research
//! Group's Cloud working group:
//!
//! N. Herbst, A. Bauer, S. Kounev, G. Oikonomou, E. van Eyk, G. Kousiouris,
//! A. Evangelinou, R. Krebs, T. Brecht, C. L. Abad, A. Iosup, "Quantifying
//! Cloud Performance and Dependability: Taxonomy, Metric Design, and Emerging
//! Challenges", ACM TOMPECS 3(4), article 19, 2018, §"Elasticity"; first
//! published as SPEC RG technical report SPEC-RG-2016-01, "Ready for Rain? A
//! View from SPEC Research on the Future of Cloud Metrics" (2016), building on
//! N. Herbst, S. Kounev, R. Reussner, "Elasticity in Cloud Computing: What It
//! Is, and What It Is Not", ICAC 2013.
//!
//! With demand `d_t` and supply `s_t` (in instances) sampled at equal steps
//! `Δt` over a run of length `T`, and `(x)⁺ = max(x, 0)`:
//!
//! - under-provisioning accuracy `θU = 100/T · Σ (d_t − s_t)⁺ / max(d_t, ε) · Δt` (%)
//! - over-provisioning accuracy  `θO = 100/T · Σ (s_t − d_t)⁺ / max(d_t, ε) · Δt` (%)
//! - under-provisioning timeshare `τU = 100/T · Σ sgn((d_t − s_t)⁺) · Δt` (%)
//! - over-provisioning timeshare  `τO = 100/T · Σ sgn((s_t − d_t)⁺) · Δt` (%)
//! - instability `υ = 100/(T − 1) · Σ_{t=2..T} min(|sgn Δs_t − sgn Δd_t|, 1) · Δt` (%),
//!   with `Δs_t = s_t − s_{t−1}`, `Δd_t = d_t − d_{t−1}`: the share of steps in
//!   which supply and demand do not move in the same direction.
//!
//! Here `T` counts steps (so `Δt = 1`) and `ε = 1`: the simulator's demand is
//! never below one instance, so the `max` never bites.

/// The five figures, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elasticity {
    /// θU: average shortfall relative to demand.
    pub under_accuracy: f64,
    /// θO: average excess relative to demand.
    pub over_accuracy: f64,
    /// τU: share of time under-provisioned.
    pub under_timeshare: f64,
    /// τO: share of time over-provisioned.
    pub over_timeshare: f64,
    /// υ: share of steps where supply and demand move differently.
    pub instability: f64,
}

/// The figures for equally spaced `demand` and `supply` of the same length.
pub fn elasticity(demand: &[u32], supply: &[u32]) -> Elasticity {
    let n = demand.len().min(supply.len());
    if n == 0 {
        return Elasticity {
            under_accuracy: 0.0,
            over_accuracy: 0.0,
            under_timeshare: 0.0,
            over_timeshare: 0.0,
            instability: 0.0,
        };
    }
    let (mut under, mut over, mut under_steps, mut over_steps) = (0.0, 0.0, 0u64, 0u64);
    for (&d, &s) in demand.iter().zip(supply).take(n) {
        let relative = f64::from(d).max(1.0);
        if d > s {
            under += f64::from(d - s) / relative;
            under_steps += 1;
        } else if s > d {
            over += f64::from(s - d) / relative;
            over_steps += 1;
        }
    }
    let sign = |a: u32, b: u32| i64::from(b > a) - i64::from(b < a);
    let unstable = (1..n)
        .filter(|&t| sign(supply[t - 1], supply[t]) != sign(demand[t - 1], demand[t]))
        .count();
    let total = n as f64;
    Elasticity {
        under_accuracy: 100.0 * under / total,
        over_accuracy: 100.0 * over / total,
        under_timeshare: 100.0 * under_steps as f64 / total,
        over_timeshare: 100.0 * over_steps as f64 / total,
        instability: if n > 1 {
            100.0 * unstable as f64 / (n - 1) as f64
        } else {
            0.0
        },
    }
}
