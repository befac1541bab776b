//! An SVG chart of demand vs supply over a simulated run: a polyline each
//! (demand, and the supply of each policy compared), axes with day and
//! instance ticks, and a legend; 1200×400.
//!
//! Long runs are reduced to one bucket per horizontal pixel; each bucket
//! draws its minimum then its maximum, so short spikes stay visible.

use super::simulate::{Row, Simulation};
use super::tz::format_time;

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 40.0;

/// The chart as an SVG document.
pub fn svg_chart(sim: &Simulation, title: &str) -> String {
    let times: Vec<u64> = sim.timeline.iter().map(|r| r.t).collect();
    let demand: Vec<u32> = sim.timeline.iter().map(demand).collect();
    let supplied: Vec<u32> = sim.timeline.iter().map(supplied).collect();
    svg_lines(
        &times,
        &[("demand", &demand), ("supplied", &supplied)],
        title,
    )
}

/// Line colours, in the order of the series.
const COLORS: [&str; 5] = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"];

/// A chart of named series of counts over the same `times`.
pub fn svg_lines(times: &[u64], series: &[(&str, &[u32])], title: &str) -> String {
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        out.push_str("</svg>\n");
        return out;
    };
    let (t0, t1) = (first, last.max(first + 1));
    let top_value = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let y_max = f64::from(nice_ceiling(top_value));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: u64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;

    // Axes, horizontal grid and instance ticks.
    let y_step = (y_max / 5.0).ceil().max(1.0);
    let mut v = 0.0;
    while v <= y_max {
        let yy = y(v);
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>\n",
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        ));
        v += y_step;
    }
    // Day ticks (or hour ticks for short runs).
    let span = t1 - t0;
    let tick = if span > 3 * 86_400 {
        86_400
    } else if span > 6 * 3600 {
        3600 * 3
    } else {
        3600
    };
    let mut t = t0.div_ceil(tick) * tick;
    while t <= t1 {
        let xx = x(t);
        let label = format_time(i64::try_from(t).unwrap_or(i64::MAX));
        let label = if tick == 86_400 {
            &label[5..10]
        } else {
            &label[5..16]
        };
        out.push_str(&format!(
            "<line x1=\"{xx:.1}\" y1=\"{TOP}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
            TOP + plot_h,
            TOP + plot_h + 16.0
        ));
        t += tick;
    }
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b:.1}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{:.1}\" y2=\"{b:.1}\" stroke=\"black\"/>\n\
         <text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">instances</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (UTC)</text>\n",
        WIDTH - RIGHT,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        b = TOP + plot_h,
    ));

    let buckets = plot_w as usize;
    let n = times.len();
    let chunk = n.div_ceil(buckets).max(1);
    let legend_left = WIDTH - RIGHT - 120.0 * series.len() as f64;
    for (i, (label, values)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = String::new();
        for start in (0..n.min(values.len())).step_by(chunk) {
            let bucket = &values[start..(start + chunk).min(values.len())];
            let lo = bucket.iter().copied().min().unwrap_or(0);
            let hi = bucket.iter().copied().max().unwrap_or(0);
            let xx = x(times[start]);
            for value in [lo, hi] {
                points.push_str(&format!("{xx:.1},{:.1} ", y(f64::from(value))));
            }
        }
        let lx = legend_left + 120.0 * i as f64;
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.2\" points=\"{}\"/>\n\
             <line x1=\"{lx:.1}\" y1=\"18\" x2=\"{:.1}\" y2=\"18\" stroke=\"{color}\" stroke-width=\"3\"/>\n\
             <text x=\"{:.1}\" y=\"22\">{label}</text>\n",
            points.trim_end(),
            lx + 24.0,
            lx + 30.0,
            label = escape(label),
        ));
    }
    out.push_str("</svg>\n");
    out
}

fn demand(r: &Row) -> u32 {
    r.demand_instances
}

fn supplied(r: &Row) -> u32 {
    r.supplied_instances
}

/// The next of 1, 2, 5, 10, 20, 50, … at or above `n`.
fn nice_ceiling(n: u32) -> u32 {
    let mut base = 1;
    loop {
        for m in [1, 2, 5] {
            if base * m >= n {
                return base * m;
            }
        }
        base *= 10;
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
