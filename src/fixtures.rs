//! Manifests built in code, for unit tests that must not depend on the parser.

use std::time::Duration;

use crate::manifest::*;

/// The blog example's shape: `web` web instances, `replicas` replicas, `cache` nodes.
pub fn manifest(web: u32, replicas: Option<u32>, cache: Option<u32>) -> Manifest {
    Manifest {
        app: App {
            name: "blog".into(),
            templates: None,
        },
        provider: Provider {
            kind: ProviderKind::Aws,
            region: "us-east-1".into(),
            zones: vec!["us-east-1a".into(), "us-east-1b".into()],
            image: "ami-12345678".into(),
            ssh_user: "admin".into(),
            ssh_key: "keys/id_ed25519".into(),
            ssh_from: vec!["203.0.113.0/24".into()],
            endpoint: None,
            hosts: Vec::new(),
            proxy_command: None,
            jump_host: None,
            configure: true,
        },
        release: None,
        web: Web {
            instance_type: "t3.small".into(),
            count: web,
            port: 8080,
            max_connections: None,
        },
        load_balancer: LoadBalancer {
            instance_type: "t3.small".into(),
            listen: 80,
            allow_from: vec!["0.0.0.0/0".into()],
            tls: None,
        },
        database: replicas.map(|replicas| Database {
            instance_type: "m5.large".into(),
            version: 15,
            replicas,
            replication: Replication::Slony,
            port: 5432,
            schema: None,
            backup: None,
            failover: None,
        }),
        cache: cache.map(|nodes| Cache {
            instance_type: "r5.large".into(),
            nodes,
            memory_mb: None,
            port: 11211,
        }),
        autoscale: Some(Autoscale {
            metric: Metric::RequestsPerInstance,
            target: 50.0,
            min: 2,
            max: 20,
            scale_out_cooldown: Duration::from_secs(60),
            scale_in_cooldown: Duration::from_secs(300),
            warmup: Duration::from_secs(120),
            interval: Duration::from_secs(30),
            schedule: Vec::new(),
            predictive: false,
            policy: crate::manifest::PolicyKind::Reactive,
            boot: None,
            forecast_quantile: None,
            forecast_only: false,
            replicas: None,
        }),
        env: Default::default(),
        state: None,
    }
}
