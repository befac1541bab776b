//! `[autoscale.replicas]`: the database read tier's policy (issue 13). When
//! present it owns `[database] replicas`, as `[autoscale]` owns `web.count`.

use toml::de::DeValue;

use super::Checker;
use super::autoscale::{duration_or, min_max, one_of};
use super::table::{Field, Key, Reported, Section, TableSpec};
use crate::manifest::{ReplicaAutoscale, ReplicaMetric};

const REPLICAS: TableSpec = TableSpec {
    name: "replicas",
    label: "[autoscale.replicas]",
    keys: &[
        Key::required("metric", "\"connections\""),
        Key::required("target", "20"),
        Key::required("min", "1"),
        Key::required("max", "3"),
        Key::optional("scale_out_cooldown", "\"120s\""),
        Key::optional("stabilization", "\"600s\""),
    ],
};

const METRICS: &[(&str, ReplicaMetric)] = &[
    ("replication_lag", ReplicaMetric::ReplicationLag),
    ("connections", ReplicaMetric::Connections),
];

/// As `[database] replicas` allows.
const MAX_REPLICAS: i64 = 100;

pub(super) fn check(
    ck: &mut Checker,
    f: Field,
    has_database: bool,
) -> Result<ReplicaAutoscale, Reported> {
    let DeValue::Table(table) = f.value() else {
        return Err(ck.error(
            f.span(),
            format!("`replicas` must be a table, found {}", f.value().type_str()),
            "write `[autoscale.replicas]` with `metric`, `target`, `min` and `max` below it",
        ));
    };
    let s = Section::open(ck, &REPLICAS, f.span(), table);
    if !has_database {
        return Err(ck.error(
            f.span(),
            "[autoscale.replicas] needs a [database] whose read replicas it scales",
            "add a [database] table, or remove [autoscale.replicas]",
        ));
    }
    let metric = s
        .require(ck, "metric")
        .and_then(|f| one_of(ck, f, METRICS, "replica metric"));
    let target = s.require(ck, "target").and_then(|f| target(ck, f));
    // At least one: with none, the Slony-I cluster itself would go and come back.
    let bounds = min_max(ck, &s, MAX_REPLICAS);
    let scale_out_cooldown = duration_or(ck, &s, "scale_out_cooldown", 120);
    let stabilization = duration_or(ck, &s, "stabilization", 600);
    let (min, max) = bounds?;
    Ok(ReplicaAutoscale {
        metric: metric?,
        target: target?,
        min,
        max,
        scale_out_cooldown: scale_out_cooldown?,
        stabilization: stabilization?,
    })
}

fn target(ck: &mut Checker, f: Field) -> Result<f64, Reported> {
    let target = f.number(ck)?;
    if target > 0.0 && target.is_finite() {
        return Ok(target);
    }
    Err(ck.error(
        f.span(),
        format!("`target` must be greater than 0, found {target}"),
        "seconds of replication lag, or connections per replica, e.g. `target = 20`",
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::manifest::{Metric, ReplicaAutoscale, ReplicaMetric, parse};

    const BASE: &str = "[app]\nname = \"blog\"\n[provider]\nkind = \"local\"\n\
        [web]\ninstance_type = \"t3.small\"\ncount = 1\nmax_connections = 2\n\
        [load_balancer]\ninstance_type = \"t3.small\"\n";
    const DATABASE: &str = "[database]\ninstance_type = \"m5.large\"\nreplicas = 1\n";
    const WEB: &str = "[autoscale]\nmetric = \"queue_time_ms\"\ntarget = 20\nmin = 1\nmax = 4\n";

    fn errors(text: &str) -> String {
        match parse(Path::new("appgrid.toml"), text) {
            Ok(m) => panic!("expected errors, got {m:?}"),
            Err(d) => d.to_string(),
        }
    }

    #[test]
    fn a_replica_policy_and_the_queue_time_metric_are_read() {
        let text = format!(
            "{BASE}{DATABASE}{WEB}[autoscale.replicas]\nmetric = \"connections\"\ntarget = 3\n\
             min = 1\nmax = 2\nstabilization = \"20s\"\n"
        );
        let a = parse(Path::new("appgrid.toml"), &text)
            .unwrap()
            .autoscale
            .unwrap();
        assert_eq!(a.metric, Metric::QueueTimeMs);
        assert_eq!(
            a.replicas,
            Some(ReplicaAutoscale {
                metric: ReplicaMetric::Connections,
                target: 3.0,
                min: 1,
                max: 2,
                scale_out_cooldown: Duration::from_secs(120),
                stabilization: Duration::from_secs(20),
            })
        );
    }

    #[test]
    fn a_queue_time_target_above_the_queue_timeout_is_refused_where_written() {
        let text = format!("{BASE}{}", WEB.replace("target = 20", "target = 45000"));
        assert_eq!(
            errors(&text),
            "error: `target` for \"queue_time_ms\" must be at most 10000 ms, found 45000
  --> appgrid.toml:13:10
   |
13 | target = 45000
   |          ^^^^^
   |
   = help: a queue-time target is milliseconds a request waits for a server, e.g. `target = 20`
"
        );
    }

    /// Without a per-server limit HAProxy never queues: the metric would read 0.
    #[test]
    fn queue_time_without_max_connections_is_refused_at_the_metric() {
        let text = format!("{}{WEB}", BASE.replace("max_connections = 2\n", ""));
        assert_eq!(
            errors(&text),
            "error: `metric = \"queue_time_ms\"` needs `max_connections` in [web]
  --> appgrid.toml:11:10
   |
11 | metric = \"queue_time_ms\"
   |          ^^^^^^^^^^^^^^^
   |
   = help: HAProxy queues requests (and measures their queue time) only when each app server has a limit: add `max_connections = 4` under [web] (the most requests one app server handles at once), or choose another metric
"
        );
    }

    #[test]
    fn max_connections_is_read_and_checked_where_written() {
        let web =
            |m: &str| parse(Path::new("appgrid.toml"), &BASE.replace("2\n", m)).map(|m| m.web);
        assert_eq!(web("2\n").unwrap().max_connections, Some(2));
        assert_eq!(web("10000\n").unwrap().max_connections, Some(10_000));
        let unset = parse(
            Path::new("appgrid.toml"),
            &BASE.replace("max_connections = 2\n", ""),
        )
        .unwrap();
        assert_eq!(unset.web.max_connections, None);
        assert_eq!(
            errors(&BASE.replace("max_connections = 2", "max_connections = 0")),
            "error: `max_connections` must be at least 1, found 0
 --> appgrid.toml:8:19
  |
8 | max_connections = 0
  |                   ^
  |
  = help: use a whole number from 1 to 10000, for example: `max_connections = 4`
"
        );
        assert!(
            errors(&BASE.replace("max_connections = 2", "max_connections = 10001"))
                .contains("`max_connections` must be at most 10000, found 10001"),
        );
        assert!(
            errors(&BASE.replace("max_connections = 2", "max_connections = \"4\""))
                .contains("max_connections"),
        );
    }

    #[test]
    fn replicas_without_a_database_or_with_bad_values_are_refused() {
        let text = format!(
            "{BASE}{WEB}[autoscale.replicas]\nmetric = \"connections\"\ntarget = 3\nmin = 1\nmax = 2\n"
        );
        let e = errors(&text);
        assert!(
            e.starts_with(
                "error: [autoscale.replicas] needs a [database] whose read replicas it scales"
            ),
            "{e}"
        );
        let text = format!(
            "{BASE}{DATABASE}{WEB}[autoscale.replicas]\nmetric = \"lag\"\ntarget = 0\nmin = 0\nmax = 2\n"
        );
        let e = errors(&text);
        assert!(e.contains("error: unknown replica metric \"lag\""), "{e}");
        assert!(
            e.contains("expected one of: \"replication_lag\", \"connections\""),
            "{e}"
        );
        assert!(
            e.contains("error: `target` must be greater than 0, found 0"),
            "{e}"
        );
        assert!(
            e.contains("error: `min` must be at least 1, found 0\n  --> appgrid.toml:22:7"),
            "min = 0 is pointed at: {e}"
        );
        let text = format!(
            "{BASE}{DATABASE}{WEB}[autoscale.replicas]\nmetric = \"replication_lag\"\ntarget = 5\nmin = 3\nmax = 2\n"
        );
        assert!(
            errors(&text).contains("error: `min` (3) is greater than `max` (2)"),
            "{}",
            errors(&text)
        );
    }
}
