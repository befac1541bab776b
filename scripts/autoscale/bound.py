#!/usr/bin/env python3
"""How far any forecast could get on a trace, scored on the shared yardstick's
model (×60, 50 req/s per instance, 120 s boot, min 1, max 100).

Two knowing policies; no causal policy knows more than either:

- default: a *clairvoyant* policy that knows the future centred moving mean of
  the load (±K minutes, so it even sees part of the very minutes it provides
  for) and provides that plus z standard deviations of the trace's measured
  noise (variance = D × mean) for the two minutes a decision covers (120 s
  boot, decisions every minute).
- `--rates FILE` (synthetic traces: `synth_traces.py --rates` writes it): a
  policy that knows the exact mean and dispersion every minute's count was
  drawn from, and the current minute's count, and for each of the next two
  minutes picks the count that minimises  E[surplus / demand] + λ·P(short)
  over the draw's distribution (gamma-Poisson, as the generator draws) — the
  best trade of θO against τU at price λ, level by level. What it cannot know
  is the draw itself, which no forecast can.
  `--lagrange` does the same with the ±K mean and D of the default mode
  (normal approximation), for real traces.

Both print their (τU, θO) frontier, the bar (τU ≤ ½ × min(HPA, TT), θO ≤
0.75 × HPA, from the yardstick's emulations), and the θO the frontier has at
the τU bar, from below (the nearest point still short too often: the
frontier falls as τU rises) and the least within it: where even the lower
figure is above the θO bar, the bar cannot be met on this trace by any
forecast under this model.

Usage: bound.py TRACE.csv [--k 15] [--dispersion 5] [--lagrange] [--rates RATES.csv]
                [--prices λ …]
"""
import argparse, csv, math, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("APPGRID_SHARED") or next(
    (p for p in (os.path.join(ROOT, "..", "shared"), os.path.join(ROOT, "..", "..", "shared"))
     if os.path.isdir(p)), os.path.join(ROOT, "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench"))
import elasticity as E  # noqa: E402

PER, BOOT, LO, HI = 50, 120, 1, 100


def replay(desired, demand):
    fleet, supply = E.Fleet(desired[0], BOOT), []
    for m in range(len(desired)):
        fleet.tick(m * 60)
        fleet.set_desired(m * 60, desired[m])
        fleet.tick(m * 60 + 59)
        supply.append(fleet.serving)
    s = E.score(demand, supply, 0)
    return s["under_timeshare_pct"], s["over_accuracy_pct"]


def gamma_poisson(mean, dispersion):
    """P(count = c) for c = 0.., as synth_traces.noisy draws it (its normal
    shortcut above 60 is the same to the figures shown)."""
    if mean <= 0:
        return [1.0]
    k = max(mean / (dispersion - 1), 0.5) if dispersion > 1 else None
    top = int(mean + 14 * math.sqrt(max(dispersion, 1) * mean) + 10)
    if k is None:  # Poisson
        logp = [c * math.log(mean) - mean - math.lgamma(c + 1) for c in range(top)]
    else:  # negative binomial with shape k, mean `mean`
        p = k / (k + mean)
        logp = [math.lgamma(c + k) - math.lgamma(k) - math.lgamma(c + 1)
                + k * math.log(p) + c * math.log1p(-p) for c in range(top)]
    return [math.exp(x) for x in logp]


def normal(mean, dispersion):
    sd = math.sqrt(dispersion * max(mean, 1.0))
    cdf = lambda x: 0.5 * (1 + math.erf((x - mean) / (sd * math.sqrt(2))))
    top = int(mean + 8 * sd + 2)
    return [cdf(c + 0.5) - cdf(c - 0.5) for c in range(top)]


def instances(pmf):
    """Distribution of demand in instances (ceil(count / 50), within min..max)."""
    out = {}
    for c, p in enumerate(pmf):
        j = min(HI, max(LO, math.ceil(c / PER)))
        out[j] = out.get(j, 0.0) + p
    return out


def best_count(dist, price):
    best = None
    for s in range(LO, HI + 1):
        over = sum(p * (s - j) / j for j, p in dist.items() if s > j)
        short = sum(p for j, p in dist.items() if j > s)
        cost = over + price * short
        if best is None or cost < best[0]:
            best = (cost, s)
        if short < 1e-12:
            break
    return best[1]


def lagrange_policy(means, dispersions, demand, price, dist_of):
    cache = {}
    n = len(means)
    desired = []
    for m in range(n):
        need = demand[m]
        for h in (1, 2):
            i = min(n - 1, m + h)
            key = (round(means[i] * 2) / 2, dispersions[i])
            if key not in cache:
                cache[key] = best_count(instances(dist_of(*key)), price)
            need = max(need, cache[key])
        desired.append(need)
    return desired


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--dispersion", type=float, default=5.0)
    ap.add_argument("--lagrange", action="store_true")
    ap.add_argument("--rates")
    ap.add_argument("--prices", type=float, nargs="+", help="the λ to try (default 1 … 24)")
    a = ap.parse_args()
    rates = E.load_trace(a.trace, 60)
    n = len(rates)
    demand = E.demand(rates, PER, LO, HI)
    hpa, _ = E.run_hpa(rates, PER, BOOT, LO, HI, demand[0])
    tt, _ = E.run_tt(rates, PER, BOOT, LO, HI, demand[0])
    h, t = E.score(demand, hpa, 0), E.score(demand, tt, 0)
    bar_u = 0.5 * min(h["under_timeshare_pct"], t["under_timeshare_pct"])
    bar_o = 0.75 * h["over_accuracy_pct"]
    frontier = []
    if a.rates:
        rows = list(csv.DictReader(open(a.rates)))
        means = [float(r["rate"]) for r in rows]  # ×60 / 60: counts per minute are req/s
        disp = [float(r["dispersion"]) for r in rows]
        print(f"knowing each minute's exact mean and dispersion: {os.path.basename(a.trace)}")
        print("λ      τU %    θO %")
        for price in a.prices or (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24):
            u, o = replay(lagrange_policy(means, disp, demand, price, gamma_poisson), demand)
            frontier.append((u, o))
            print(f"{price:<6} {u:6.2f}  {o:6.2f}", flush=True)
    else:
        prefix = [0.0]
        for x in rates:
            prefix.append(prefix[-1] + x)
        lo_i = lambda i: max(0, i - a.k)
        hi_i = lambda i: min(n, i + a.k + 1)
        smooth = [(prefix[hi_i(i)] - prefix[lo_i(i)]) / (hi_i(i) - lo_i(i)) for i in range(n)]
        if a.lagrange:
            print(f"clairvoyant ±{a.k} min mean, noise {a.dispersion} × mean, best count per level: "
                  f"{os.path.basename(a.trace)}")
            print("λ      τU %    θO %")
            for price in a.prices or (1, 1.5, 2, 3, 4, 6, 8, 12, 16):
                d = lagrange_policy(smooth, [a.dispersion] * n, demand, price, normal)
                u, o = replay(d, demand)
                frontier.append((u, o))
                print(f"{price:<6} {u:6.2f}  {o:6.2f}", flush=True)
        else:
            print(f"clairvoyant ±{a.k} min mean + z·√({a.dispersion}·mean): {os.path.basename(a.trace)}")
            print("z     τU %    θO %")
            for z in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
                desired = []
                for m in range(n):
                    need = rates[m]
                    for hh in (1, 2):
                        s = smooth[min(n - 1, m + hh)]
                        need = max(need, s + z * math.sqrt(a.dispersion * max(s, 1.0)))
                    desired.append(max(LO, min(HI, math.ceil(need / PER - 1e-9))))
                u, o = replay(desired, demand)
                frontier.append((u, o))
                print(f"{z:<5} {u:6.2f}  {o:6.2f}")
    # The frontier falls as τU rises: at τU = the bar, θO is at least that of
    # the nearest point short more often than the bar allows.
    within = [o for u, o in frontier if u <= bar_u]
    beyond = [o for u, o in frontier if u > bar_u]
    floor = max(beyond) if beyond else 0.0
    least = f"{min(within):.2f} %" if within else "none on this frontier"
    verdict = "bar out of reach" if floor > bar_o else "bar perhaps within reach"
    print(f"bar: τU ≤ {bar_u:.2f} %, θO ≤ {bar_o:.2f} %; at the τU bar θO ≥ {floor:.2f} %, "
          f"least θO within it {least} ({verdict})")


if __name__ == "__main__":
    main()
