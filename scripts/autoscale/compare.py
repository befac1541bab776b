#!/usr/bin/env python3
"""The comparison table of issue 13: appgrid's reactive and forecast policies
next to the HPA and target-tracking emulations of the shared yardstick
(`../shared/bench/elasticity.py`), all scored by that yardstick on one
capacity model (×60, 50 req/s per instance, 120 s boot, min 1, max 100).

Traces: the NASA fortnight from `../shared/traces/` and synthetic ones made by
`synth_traces.py` with seeds 1 and 2 (looked at while choosing the policy's
constants) and 101 and 102 (held out: not looked at until the table was made).

Usage (from the repository root, after `cargo build`):
  scripts/autoscale/compare.py [--appgrid target/debug/appgrid] [--work DIR]
Prints a Markdown table; the bar is τU ≤ ½ × min(HPA, TT) and θO ≤ 0.75 × HPA.
The last columns are the forecast policy's figures as `simulate --compare`
computes them itself (its own HPA and target-tracking emulations), to set
beside the yardstick's.
"""
import argparse, csv, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# `shared/` sits beside the checkout (../shared), or beside a worktree's parent.
SHARED = os.environ.get("APPGRID_SHARED") or next(
    (p for p in (os.path.join(ROOT, "..", "shared"), os.path.join(ROOT, "..", "..", "shared"))
     if os.path.isdir(p)), os.path.join(ROOT, "..", "shared"))
MODEL = ["--scale", "60", "--per-instance", "50", "--boot", "120", "--min", "1", "--max", "100"]


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--appgrid", default=os.path.join(target, "debug", "appgrid"))
    ap.add_argument("--work", default=os.path.join(target, "autoscale-compare"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 101, 102])
    ap.add_argument("--shapes", nargs="+", default=["flash", "business", "growth", "diurnal"])
    a = ap.parse_args()
    traces_dir = os.path.join(a.work, "traces")
    run([sys.executable, os.path.join(HERE, "synth_traces.py"), traces_dir,
         "--seeds", *map(str, a.seeds), "--shapes", *a.shapes])
    traces = [("NASA 1–14 July 1995", os.path.join(SHARED, "traces", "nasa-1995-07-01-to-14.csv"))]
    for shape in a.shapes:
        for seed in a.seeds:
            held = " (held out)" if seed >= 100 else ""
            traces.append((f"{shape} seed {seed}{held}", os.path.join(traces_dir, f"{shape}-{seed}.csv")))
    yardstick = os.path.join(SHARED, "bench", "elasticity.py")
    rows = []
    print("| trace | HPA τU / θO | TT τU / θO | appgrid reactive τU / θO | appgrid forecast τU / θO | bar τU / θO | met "
          "| `simulate --compare`: forecast / HPA / TT τU, θO |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, path in traces:
        scores = {}
        for policy in ("reactive", "forecast"):
            out = os.path.join(a.work, "runs", os.path.basename(path)[:-4] + "-" + policy)
            run([a.appgrid, "autoscale", "simulate", os.path.join(HERE, "bench.toml"),
                 "--trace", path, "--scale", "60", "--capacity", "50", "--boot", "120",
                 "--policy", policy, "--out", out] + (["--compare"] if policy == "forecast" else []))
            js = json.loads(run([sys.executable, yardstick, path, *MODEL,
                                 "--project", os.path.join(out, "timeline.csv"), "--json"]))
            scores[policy] = js["project"]
            scores["hpa"], scores["tt"] = js["hpa"], js["tt"]
        u = lambda k: scores[k]["under_timeshare_pct"]
        o = lambda k: scores[k]["over_accuracy_pct"]
        bar_u, bar_o = 0.5 * min(u("hpa"), u("tt")), 0.75 * o("hpa")
        met = ("yes" if u("forecast") <= bar_u and o("forecast") <= bar_o
               else "τU only" if u("forecast") <= bar_u
               else "θO only" if o("forecast") <= bar_o else "no")
        cell = lambda k: f"{u(k):.2f} % / {o(k):.1f} %"
        ours = {r["policy"]: r for r in csv.DictReader(open(os.path.join(
            a.work, "runs", os.path.basename(path)[:-4] + "-forecast", "compare.csv")))}
        own = " / ".join(f"{float(ours[k]['under_timeshare_pct']):.2f}, {float(ours[k]['over_accuracy_pct']):.1f}"
                         for k in ("appgrid", "HPA", "target tracking"))
        print(f"| {label} | {cell('hpa')} | {cell('tt')} | {cell('reactive')} | {cell('forecast')} "
              f"| ≤ {bar_u:.2f} % / ≤ {bar_o:.1f} % | {met} | {own} |", flush=True)


if __name__ == "__main__":
    main()
