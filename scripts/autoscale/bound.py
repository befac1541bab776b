#!/usr/bin/env python3
"""How far any forecast could get on a trace: a *clairvoyant* policy that knows
the future centred moving mean of the load (±K minutes, so it even sees part
of the very minutes it provides for) and provides that plus z standard
deviations of the trace's measured noise (variance = D × mean) for the two
minutes a decision covers (120 s boot, decisions every minute), scored on the
shared yardstick's model (×60, 50 req/s per instance, min 1, max 100).

No causal policy knows more than this one, so where its (τU, θO) frontier does
not reach a bar, no forecast reaches it either: what is left is the
minute-to-minute noise, which no one can forecast.

Usage: bound.py TRACE.csv [--k 15] [--dispersion 5]
"""
import argparse, math, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("APPGRID_SHARED") or next(
    (p for p in (os.path.join(ROOT, "..", "shared"), os.path.join(ROOT, "..", "..", "shared"))
     if os.path.isdir(p)), os.path.join(ROOT, "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench"))
import elasticity as E  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--dispersion", type=float, default=5.0)
    a = ap.parse_args()
    rates = E.load_trace(a.trace, 60)
    n = len(rates)
    prefix = [0.0]
    for x in rates:
        prefix.append(prefix[-1] + x)
    lo_i = lambda i: max(0, i - a.k)
    hi_i = lambda i: min(n, i + a.k + 1)
    smooth = [(prefix[hi_i(i)] - prefix[lo_i(i)]) / (hi_i(i) - lo_i(i)) for i in range(n)]
    demand = E.demand(rates, 50, 1, 100)
    print(f"clairvoyant ±{a.k} min mean + z·√({a.dispersion}·mean): {os.path.basename(a.trace)}")
    print("z     τU %    θO %")
    for z in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
        desired = []
        for m in range(n):
            need = rates[m]
            for h in (1, 2):
                s = smooth[min(n - 1, m + h)]
                need = max(need, s + z * math.sqrt(a.dispersion * max(s, 1.0)))
            desired.append(max(1, min(100, math.ceil(need / 50 - 1e-9))))
        fleet, supply = E.Fleet(desired[0], 120), []
        for m in range(n):
            fleet.tick(m * 60)
            fleet.set_desired(m * 60, desired[m])
            fleet.tick(m * 60 + 59)
            supply.append(fleet.serving)
        s = E.score(demand, supply, 0)
        print(f"{z:<5} {s['under_timeshare_pct']:6.2f}  {s['over_accuracy_pct']:6.2f}")


if __name__ == "__main__":
    main()
