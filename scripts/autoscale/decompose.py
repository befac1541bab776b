#!/usr/bin/env python3
"""Where a timeline's over-provisioning (θO, the shared yardstick's
over_accuracy_pct) comes from, on the yardstick's model (×60, 50 req/s per
instance, 120 s boot, min 1, max 100):

- boot-ahead cover: the surplus an exact oracle also holds (it asks at each
  minute for the most the next two minutes need: 0 % τU, 8.3 % θO on NASA),
  counted where the timeline's supply reaches it;
- beyond it: the surplus over that oracle's supply — the margin held for
  noise and forecast error, rounded up to whole servers (the forecast policy
  gives servers back at once, so there is no scale-in delay to count) — by
  the demand level it was held at, in points of θO.

Usage: decompose.py TRACE.csv TIMELINE.csv   (a `simulate` timeline.csv)
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("APPGRID_SHARED") or next(
    (p for p in (os.path.join(ROOT, "..", "shared"), os.path.join(ROOT, "..", "..", "shared"))
     if os.path.isdir(p)), os.path.join(ROOT, "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench"))
import elasticity as E  # noqa: E402


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    rates = E.load_trace(sys.argv[1], 60)
    d = E.demand(rates, 50, 1, 100)
    n = len(d)
    supply, _ = E.run_project(sys.argv[2], rates, 120, 1, 100)
    asks = [max(d[m:m + 3]) for m in range(n)]
    fleet, oracle = E.Fleet(asks[0], 120), []
    for m in range(n):
        fleet.tick(m * 60)
        fleet.set_desired(m * 60, asks[m])
        fleet.tick(m * 60 + 59)
        oracle.append(fleet.serving)
    pct = lambda x: 100 * x / n
    total = pct(sum((s - a) / a for s, a in zip(supply, d) if s > a))
    cover = pct(sum((min(s, o) - a) / a for s, a, o in zip(supply, d, oracle) if min(s, o) > a))
    levels = {}
    for s, a, o in zip(supply, d, oracle):
        if s > max(a, o):
            levels[a] = levels.get(a, 0.0) + pct((s - max(a, o)) / a)
    print(f"θO {total:.2f} %: boot-ahead cover {cover:.2f} %, beyond the oracle {total - cover:.2f} %")
    print("beyond the oracle, by demand in instances: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in sorted(levels.items()) if v >= 0.005))


if __name__ == "__main__":
    main()
