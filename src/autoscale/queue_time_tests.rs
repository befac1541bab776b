//! `metric = "queue_time_ms"` (issue 13): HAProxy's `qtime` read into a
//! sample, and `decide` tracking it like a response time.

use super::live::Record;
use super::tests::policy;
use super::*;
use crate::manifest::Metric;
use crate::ops::ServerCounters;

const NOW: u64 = 1_720_000_000;

fn server(name: &str, queue_ms: u64, response_ms: u64) -> ServerCounters {
    ServerCounters {
        name: name.into(),
        up: true,
        requests: 0,
        response_ms,
        queue_ms,
        sessions: 0,
        queued: 0,
        cpu: None,
    }
}

#[test]
fn the_sample_is_the_warm_servers_mean_queue_time_not_their_response_time() {
    let mut r = Record::default();
    let s = r
        .observe(
            Metric::QueueTimeMs,
            &[server("web0", 30, 400), server("web1", 50, 400)],
            NOW,
            0,
        )
        .expect("a queue time needs one reading");
    assert_eq!(
        (s.value, s.instances_reporting, s.instances_warm),
        (40.0, 2, 2)
    );
}

#[test]
fn decide_scales_out_on_queue_time_and_never_through_the_forecast() {
    let mut p = Policy {
        metric: Metric::QueueTimeMs,
        target: 20.0,
        ..policy()
    };
    let sample = Sample {
        at: NOW,
        value: 45.0,
        instances_reporting: 2,
        instances_warm: 2,
    };
    let d = decide(&p, &History::default(), &[sample], 2, NOW);
    assert_eq!(d.desired, 5);
    assert_eq!(d.reason, "queue time 45.0 ms > target 20 ms (±10%): 2 → 5");
    // A queue time is no load to forecast: the forecast policy reacts.
    p.forecast = Some(Default::default());
    assert_eq!(
        decide(&p, &History::default(), &[sample], 2, NOW).desired,
        5
    );
}
