//! Engine benchmarks (a bench binary, not timed tests): `cargo bench --bench engine`.
//!
//! - plan computation for a manifest that expands to 10,000 resources
//!   (expand + diff), from nothing and against a converged state;
//! - launch calls for N identical web instances (counted on the recording fake,
//!   whose configurator succeeds: the walk runs the configuration steps too);
//! - peak memory (VmHWM) of the whole process at the end.
//!
//! Figures go to BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appgrid::apply::{ApplyOptions, Checkpoint};
use appgrid::cloud::fake::FakeCloud;
use appgrid::cloud::{Cloud, Owner};
use appgrid::graph::expand;
use appgrid::plan::{self, Source};
use appgrid::state::State;

const BIG: &str = r#"
[app]
name = "big"
[provider]
kind = "aws"
region = "us-east-1"
zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
image = "ami-12345678"
ssh_key = "KEY"
ssh_from = ["203.0.113.0/24"]
[web]
instance_type = "c5.large"
count = 9_900
[load_balancer]
instance_type = "c5.large"
[database]
instance_type = "r5.xlarge"
replicas = 50
[cache]
instance_type = "r5.large"
nodes = 43
"#;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

/// Peak resident memory of this process (`VmHWM` in /proc/self/status), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb / 1024.0
}

/// Counts checkpoints without keeping copies (the real store writes a file).
#[derive(Default)]
struct CountingCheckpoint {
    saves: usize,
}

impl Checkpoint for CountingCheckpoint {
    fn checkpoint(&mut self, state: &mut State) -> Result<(), String> {
        state.serial += 1;
        self.saves += 1;
        Ok(())
    }
}

fn main() {
    let key_dir = std::env::temp_dir().join(format!("appgrid-bench-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir).unwrap();
    let key = key_dir.join("id_ed25519");
    std::fs::write(key.with_extension("pub"), "ssh-ed25519 AAAAbench bench\n").unwrap();
    let text = BIG.replace("KEY", key.to_str().unwrap());
    let manifest =
        appgrid::manifest::parse(Path::new("big.toml"), &text).expect("bench manifest is valid");
    let source = Source {
        manifest_path: "big.toml",
        manifest_sha256: "",
        manifest: &manifest,
    };
    let graph = expand(&manifest).unwrap();
    println!("resources in the graph: {}", graph.len());

    let parse = time(20, || {
        appgrid::manifest::parse(Path::new("big.toml"), &text).unwrap()
    });
    let expand_t = time(20, || expand(&manifest).unwrap());
    let from_nothing = time(20, || plan::make(source, &graph, None, None));
    let rss_after_plan = peak_rss_mb();

    // Converge a state on the fake, then time a no-change plan against it and its refresh.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cloud = Arc::new(FakeCloud::new());
    let mut state = State::new("big", "bench-lineage".into());
    let first = plan::make(source, &graph, Some(&state), Some(&Default::default()));
    let mut checkpoint = CountingCheckpoint::default();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let options = ApplyOptions {
        parallelism: 10,
        base_dir: key_dir.clone(),
    };
    let t = Instant::now();
    let outcome = rt.block_on(appgrid::apply::walk(
        Arc::clone(&cloud),
        Arc::new(appgrid::apply::fake::FakeConfigurator::new()),
        &first,
        &mut state,
        &mut checkpoint,
        &options,
        rx,
        &mut |_| {},
    ));
    let apply_t = t.elapsed();
    assert!(outcome.is_success(), "{outcome:?}");
    let launches = cloud.count("launch");
    let observed = rt
        .block_on(cloud.refresh(&Owner {
            app: "big".into(),
            lineage: "bench-lineage".into(),
        }))
        .unwrap();
    let converged = time(20, || {
        plan::make(source, &graph, Some(&state), Some(&observed))
    });
    let again = plan::make(source, &graph, Some(&state), Some(&observed));
    assert!(!again.has_changes());

    println!(
        "parse manifest:                      {:>8.3} ms",
        parse.as_secs_f64() * 1e3
    );
    println!(
        "expand to graph:                     {:>8.2} ms",
        expand_t.as_secs_f64() * 1e3
    );
    println!(
        "plan from nothing (10k creates):     {:>8.2} ms",
        from_nothing.as_secs_f64() * 1e3
    );
    println!(
        "plan against converged state+refresh:{:>8.2} ms",
        converged.as_secs_f64() * 1e3
    );
    println!(
        "apply on the fake (10k resources):   {:>8.2} ms, {} launch calls for {} instances in 3 zones ({} state checkpoints)",
        apply_t.as_secs_f64() * 1e3,
        launches,
        observed.instances.len(),
        checkpoint.saves
    );
    println!(
        "peak RSS after parse+expand+plan:    {:>8.1} MB",
        rss_after_plan
    );
    println!(
        "peak RSS at the end (incl. fake):    {:>8.1} MB",
        peak_rss_mb()
    );
    let _ = std::fs::remove_dir_all(key_dir);
}
