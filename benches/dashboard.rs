//! The panel's overview with 1,000 machines in state (a bench binary):
//! `cargo bench --bench dashboard`. Times what a page view costs on top of
//! `status` itself: health from the status report, the SVG graph, the table
//! rows and the page's rendering (median of 20 runs), and prints the page's
//! size. The status report is synthetic (every web server UP in HAProxy).

use std::time::{Duration, Instant};

use appgrid::dashboard::{overview, pages};
use appgrid::graph::{Group, InstanceSpec, ResourceAddress, ResourceSpec, Role};
use appgrid::ops::Resources;
use appgrid::state::ResourceState;
use appgrid::status::{AppStatus, LbServer};

fn machine(role: Role, index: u32) -> ResourceState {
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert(
        "private_ip".into(),
        format!("10.{}.{}.{}", index / 65536, index / 256 % 256, index % 256),
    );
    attributes.insert("zone".into(), "us-east-1a".into());
    ResourceState {
        spec: ResourceSpec::Instance(InstanceSpec {
            role,
            instance_type: "t3.small".into(),
            image: "ami-1".into(),
            zone: "us-east-1a".into(),
            key_name: "k".into(),
            group: Group::Web,
            user_data: String::new(),
        }),
        id: format!("i-{index:017x}"),
        depends_on: Vec::new(),
        attributes,
    }
}

fn main() {
    let web = 993;
    let mut resources = Resources::new();
    resources.insert(ResourceAddress::instance(Role::Lb, 0), machine(Role::Lb, 0));
    for i in 0..web {
        resources.insert(
            ResourceAddress::instance(Role::Web, i),
            machine(Role::Web, i),
        );
    }
    resources.insert(
        ResourceAddress::instance(Role::DbPrimary, 0),
        machine(Role::DbPrimary, 0),
    );
    for i in 0..3 {
        resources.insert(
            ResourceAddress::instance(Role::DbReplica, i),
            machine(Role::DbReplica, i),
        );
        resources.insert(
            ResourceAddress::instance(Role::Cache, i),
            machine(Role::Cache, i),
        );
    }
    let status = AppStatus {
        load_balancer: (0..web)
            .map(|i| LbServer {
                name: format!("web{i}"),
                status: "UP".into(),
                sessions: 0,
                requests: 0,
                response_ms: 1,
            })
            .collect(),
        ..AppStatus::default()
    };
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..20 {
        let start = Instant::now();
        let health = overview::health(&resources, &status);
        let svg = overview::svg(&resources, &health);
        let rows = overview::rows(&resources, &health);
        let mut ctx = tera::Context::new();
        ctx.insert("app", "bench");
        ctx.insert("page", "overview");
        ctx.insert("title", "Overview");
        ctx.insert("csrf", "0");
        ctx.insert("serial", &1);
        ctx.insert("svg", &svg);
        ctx.insert("machines", &rows);
        ctx.insert("problem", &None::<String>);
        let page = pages::render("overview", &ctx).expect("renders");
        times.push(start.elapsed());
        size = page.len();
        assert_eq!(
            page.matches("<g class=\"node up\"").count(),
            web as usize + 1
        );
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    println!(
        "overview with {} machines: median {:.1} ms (min {:.1} ms) over 20 runs; page {} KiB",
        resources.len(),
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        size / 1024
    );
}
