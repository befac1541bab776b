//! Issue 12: what the S3 state backend costs against moto's S3 on
//! 127.0.0.1 — lock acquire + release, a fenced state write (lock check,
//! read, backup copy, conditional put, old backup deleted), a load.
//!
//!     cargo bench --profile dev --bench state_s3 -- [ROUNDS] [RESOURCES]
//!
//! (defaults 50 rounds, a state of 40 resources). Prints median and p90 per
//! operation; the figures go to BENCHMARKS.md.

// moto.rs arms PR_SET_PDEATHSIG in pre_exec.
#![allow(unsafe_code)]

#[path = "../tests/it/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::time::{Duration, Instant};

use appgrid::graph::{ResourceAddress, ResourceSpec, Role, spec::ConfigSpec};
use appgrid::state::location::{S3Location, StateLocation};
use appgrid::state::{ResourceState, State, s3_lock, s3_store};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(50);
    let resources: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let moto = moto::Moto::dedicated();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(moto::REGION))
            .endpoint_url(&moto.endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
            .create_bucket()
            .bucket("appgrid-bench")
            .send()
            .await
            .unwrap();
    });
    let at = S3Location {
        bucket: "appgrid-bench".into(),
        key: "appgrid/bench/state.json".into(),
        region: Some(moto::REGION.into()),
        endpoint: Some(moto.endpoint.clone()),
    };
    let started = Instant::now();
    s3_store::connect_with_credentials(&at, ("test".into(), "test".into())).unwrap();
    let connect = started.elapsed();
    let location = StateLocation::S3(at.clone());

    let mut state = State::new("bench", "lineage-bench".into());
    let template = ResourceState {
        spec: ResourceSpec::Config(ConfigSpec {
            inputs: Default::default(),
        }),
        id: "i-0123456789abcdef0".into(),
        depends_on: Vec::new(),
        attributes: [
            ("private_ip", "10.0.0.1"),
            ("zone", "us-east-1a"),
            ("status", "running"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    for i in 0..resources {
        state
            .resources
            .insert(ResourceAddress::config(Role::Web, i), template.clone());
    }
    let bytes = serde_json::to_vec_pretty(&state).unwrap().len();

    let (mut lock_times, mut save_times, mut load_times) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let lock = s3_lock::acquire(&at, "bench", Duration::ZERO, Duration::from_secs(60)).unwrap();
        let store = location.store().fenced_by(&lock);
        drop(store);
        lock.release();
        lock_times.push(t.elapsed());
    }
    let lock = s3_lock::acquire(&at, "bench", Duration::ZERO, Duration::from_secs(60)).unwrap();
    let store = location.store().fenced_by(&lock);
    for _ in 0..rounds {
        let t = Instant::now();
        store.save(&mut state).unwrap();
        save_times.push(t.elapsed());
        let t = Instant::now();
        let loaded = store.load().unwrap().unwrap();
        load_times.push(t.elapsed());
        assert_eq!(loaded.serial, state.serial);
    }
    drop(lock);

    println!(
        "moto S3 at {}, {rounds} rounds, state of {resources} resources ({bytes} bytes)",
        moto.endpoint
    );
    println!("connect (credentials + HeadBucket): {:.1} ms", ms(connect));
    for (name, mut times) in [
        ("lock acquire + release", lock_times),
        ("fenced state write", save_times),
        ("state load", load_times),
    ] {
        times.sort();
        let p = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
        println!(
            "{name}: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            p(0.5),
            p(0.9),
            p(1.0)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
