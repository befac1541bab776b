//! `autoscale simulate --compare` agrees with the shared yardstick
//! (`shared/bench/elasticity.py`) on the same timeline: HPA, target tracking
//! and appgrid's own run, within 0.1 percentage point.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cli::{appgrid, scratch, text};

/// `shared/` beside the checkout or beside a worktree's parent, or
/// `APPGRID_SHARED`; otherwise the copy of the yardstick kept in
/// `tests/it/yardstick/bench/` (CI's fresh clone has no `shared/` beside it).
fn shared() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("APPGRID_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("../shared"),
            root.join("../../shared"),
            root.join("tests/it/yardstick"),
        ])
        .find(|p| p.join("bench/elasticity.py").is_file())
        .expect("the yardstick shared/bench/elasticity.py beside the checkout (or APPGRID_SHARED)")
}

fn figures(csv: &str) -> Vec<(String, Vec<f64>)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut cells = l.split(',');
            let name = cells.next().unwrap().to_string();
            (name, cells.map(|c| c.parse().unwrap()).collect())
        })
        .collect()
}

/// The yardstick's figure `key` for `policy` from its `--json` output.
fn yard(json: &serde_json::Value, policy: &str, key: &str) -> f64 {
    json[policy][key]
        .as_f64()
        .unwrap_or_else(|| panic!("{policy}.{key} in {json}"))
}

#[test]
fn compare_agrees_with_the_shared_yardstick() {
    let dir = scratch("autoscale-compare");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shape, policy) in [("flash", "forecast"), ("business", "reactive")] {
        let status = Command::new("python3")
            .arg(root.join("scripts/autoscale/synth_traces.py"))
            .arg(&dir)
            .args(["--seeds", "7", "--days", "2", "--shapes", shape])
            .status()
            .unwrap();
        assert!(status.success());
        let trace = dir.join(format!("{shape}-7.csv"));
        let out = dir.join(format!("{shape}-{policy}"));
        let run = appgrid()
            .args([
                "autoscale",
                "simulate",
                "scripts/autoscale/bench.toml",
                "--trace",
            ])
            .arg(&trace)
            .args(["--scale", "60", "--capacity", "50", "--boot", "120"])
            .args(["--policy", policy, "--compare", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let said = text(&run.stdout);
        assert!(run.status.success(), "{said}{}", text(&run.stderr));
        assert!(
            said.contains("target tracking") && said.contains("bar: τU"),
            "{said}"
        );
        let ours = figures(&std::fs::read_to_string(out.join("compare.csv")).unwrap());
        let names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["appgrid", "HPA", "target tracking"]);
        let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
        assert_eq!(
            svg.matches("<polyline").count(),
            4,
            "demand and three supplies"
        );

        let yardstick = Command::new("python3")
            .arg(shared().join("bench/elasticity.py"))
            .arg(&trace)
            .args(["--scale", "60", "--per-instance", "50", "--boot", "120"])
            .args(["--min", "1", "--max", "100", "--json", "--project"])
            .arg(out.join("timeline.csv"))
            .output()
            .unwrap();
        assert!(yardstick.status.success(), "{}", text(&yardstick.stderr));
        let json: serde_json::Value = serde_json::from_slice(&yardstick.stdout).unwrap();
        let keys = [
            "under_timeshare_pct",
            "over_accuracy_pct",
            "under_accuracy_pct",
            "over_timeshare_pct",
        ];
        for ((name, values), policy) in ours.iter().zip(["project", "hpa", "tt"]) {
            for (i, key) in keys.iter().enumerate() {
                let theirs = yard(&json, policy, key);
                assert!(
                    (values[i] - theirs).abs() <= 0.1,
                    "{shape}: {name} {key}: appgrid says {}, the yardstick {theirs}",
                    values[i]
                );
            }
        }
        // The emulations are the yardstick's to the scale-event.
        for (name, policy) in [("HPA", "hpa"), ("target tracking", "tt")] {
            let values = &ours.iter().find(|(n, _)| n == name).unwrap().1;
            let theirs = yard(&json, policy, "scale_events_per_hour");
            assert!(
                (values[5] - theirs).abs() < 1e-3,
                "{name}: {} vs {theirs}",
                values[5]
            );
            let hours = yard(&json, policy, "instance_hours");
            assert!(
                (values[4] - hours).abs() < 1e-2,
                "{name}: {} vs {hours}",
                values[4]
            );
        }
    }
}
