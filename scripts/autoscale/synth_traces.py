#!/usr/bin/env python3
"""Seeded generator of synthetic request traces (`minute,requests`, one row a
minute, 14 days), the shapes the autoscaler is judged on besides NASA:

  flash     a modest daily cycle with sudden surges (×4–×10 within 1–3
            minutes, decaying over 20–120 minutes) at random times
  business  working days 08:00–18:00 with a morning ramp and a lunch dip,
            quiet nights and weekends, growing 2–4 % a week
  growth    steady growth (×4–×8 over the fortnight) under a mild daily cycle
  diurnal   a daily sine with heavy, bursty noise and short random spikes

Counts are Poisson with a gamma-distributed (bursty) rate, so minute-to-minute
noise is overdispersed like real traffic: variance = D × mean with a dispersion
index D of 3–5 (the NASA trace's, measured around its 31-minute moving mean,
is 4–6; `diurnal` uses 6 for "heavy" noise). Same seed → same trace, byte for
byte (Python's `random`, no other dependency).

Usage: synth_traces.py OUTDIR --seeds 1 2 101 102 [--days 14] [--rates]
writes OUTDIR/{shape}-{seed}.csv; with --rates also OUTDIR/{shape}-{seed}.rate.csv,
the mean each minute's count was drawn from and its dispersion index
(`minute,rate,dispersion`), for `bound.py --rates`: what no policy can know
beyond is the draw itself.
"""
import argparse, math, os, random

START = "1995-07-01"  # a Saturday, as the NASA trace; only labels the minutes
DAY = 1440


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 60:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    l, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= l:
            return k
        k += 1


# (mean, dispersion) of every draw of the trace being made, for --rates.
DRAWN = []


def noisy(rng, lam, dispersion):
    """Poisson around a gamma-distributed rate: variance = dispersion × lam."""
    DRAWN.append((lam, dispersion))
    if lam <= 0:
        return 0
    shape = max(lam / (dispersion - 1), 0.5)
    return poisson(rng, lam * rng.gammavariate(shape, 1.0 / shape))


def daily(minute, low, high, peak_hour):
    phase = 2 * math.pi * ((minute % DAY) / 60.0 - peak_hour) / 24.0
    return low + (high - low) * (1 + math.cos(phase)) / 2


def flash(rng, days):
    surges = []
    for _ in range(rng.randint(2 * days // 7 + 2, 2 * days // 7 + 5)):
        surges.append((rng.randrange(days * DAY), rng.uniform(4, 10),
                       rng.randint(1, 3), rng.uniform(20, 120)))
    base_hi = rng.uniform(50, 90)
    out = []
    for m in range(days * DAY):
        lam = daily(m, base_hi * 0.35, base_hi, 14)
        extra = 0.0
        for at, factor, rise, decay in surges:
            if at <= m:
                dt = m - at
                ramp = min(1.0, (dt + 1) / rise)
                extra += lam * (factor - 1) * ramp * math.exp(-max(0, dt - rise) / decay)
        out.append(noisy(rng, lam + extra, 4))
    return out


def business(rng, days):
    peak = rng.uniform(150, 400)
    growth = rng.uniform(0.02, 0.04)
    out = []
    for m in range(days * DAY):
        day, hour = m // DAY, (m % DAY) / 60.0
        weekday = (day + 5) % 7  # 0 = Monday; day 0 is a Saturday
        level = peak * (1 + growth) ** (day / 7)
        if weekday < 5:
            if hour < 7:
                f = 0.06
            elif hour < 9:  # the morning ramp, 07:00-09:00
                f = 0.06 + 0.94 * ((hour - 7) / 2) ** 1.5
            elif hour < 12:
                f = 1.0
            elif hour < 13.5:
                f = 0.75
            elif hour < 17:
                f = 0.95
            elif hour < 19:
                f = 0.95 - 0.85 * (hour - 17) / 2
            else:
                f = 0.1 - 0.04 * (hour - 19) / 5
        else:
            f = 0.08 + 0.07 * math.sin(math.pi * max(0.0, min(1.0, (hour - 9) / 12)))
        out.append(noisy(rng, level * f, 4))
    return out


def growth(rng, days):
    start = rng.uniform(20, 40)
    factor = rng.uniform(4, 8)
    out = []
    for m in range(days * DAY):
        level = start * factor ** (m / (days * DAY))
        out.append(noisy(rng, level * daily(m, 0.7, 1.3, 15), 3))
    return out


def diurnal(rng, days):
    low, high = rng.uniform(10, 30), rng.uniform(120, 250)
    spikes = {rng.randrange(days * DAY): rng.uniform(1.5, 3) for _ in range(days * 6)}
    out = []
    left, mult = 0, 1.0
    for m in range(days * DAY):
        if m in spikes:
            left, mult = rng.randint(2, 8), spikes[m]
        lam = daily(m, low, high, 13) * (mult if left > 0 else 1.0)
        left -= 1
        out.append(noisy(rng, lam, 6))
    return out


SHAPES = {"flash": flash, "business": business, "growth": growth, "diurnal": diurnal}


def label(m):
    y, mo, d = (int(x) for x in START.split("-"))
    day, rest = divmod(m, DAY)
    # July has 31 days; traces stay within it.
    return f"{y:04d}-{mo:02d}-{d + day:02d}T{rest // 60:02d}:{rest % 60:02d}"


def write(path, counts):
    with open(path, "w") as f:
        f.write("minute,requests\n")
        for m, c in enumerate(counts):
            f.write(f"{label(m)},{c}\n")


def write_rates(path, drawn):
    with open(path, "w") as f:
        f.write("minute,rate,dispersion\n")
        for m, (lam, dispersion) in enumerate(drawn):
            f.write(f"{label(m)},{lam:.4f},{dispersion}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 101, 102])
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    ap.add_argument("--rates", action="store_true", help="also write {shape}-{seed}.rate.csv")
    a = ap.parse_args()
    if a.days > 30:
        raise SystemExit("at most 30 days (the labels stay within one month)")
    os.makedirs(a.out, exist_ok=True)
    for shape in a.shapes:
        for seed in a.seeds:
            rng = random.Random(f"{shape}-{seed}")
            DRAWN.clear()
            write(os.path.join(a.out, f"{shape}-{seed}.csv"), SHAPES[shape](rng, a.days))
            if a.rates:
                write_rates(os.path.join(a.out, f"{shape}-{seed}.rate.csv"), DRAWN)


if __name__ == "__main__":
    main()
