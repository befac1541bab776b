//! How far behind the subscribers are: the origin's `sl_status` parsed, and
//! the bounded waits for catch-up and for a SYNC to reach every node.

use std::time::{Duration, Instant};

use super::slon::slon_log_tail;
use super::slonik::{count, slonik, slonik_context};
use super::{Remotes, SlonyCluster, remote_of};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::query;
use crate::templates::Templates;

/// One subscriber's replication health, as the origin's `sl_status` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub node: u32,
    /// Events of the origin the node has not confirmed yet.
    pub lag_events: i64,
    /// Age of the oldest unconfirmed event.
    pub lag_time: Duration,
}

/// Rows of `select st_received, st_lag_num_events, extract(epoch from
/// st_lag_time)` as [`NodeStatus`]es; `Err` carries the first row that is not
/// one (three fields: a node id, a count, a non-negative finite number of
/// seconds that fits a `Duration`).
pub fn parse_status_rows(rows: &[Vec<String>]) -> Result<Vec<NodeStatus>, String> {
    rows.iter()
        .map(|row| {
            let bad = || row.join("|");
            let [node, events, secs] = row.as_slice() else {
                return Err(bad());
            };
            let secs: f64 = secs.trim().parse().map_err(|_| bad())?;
            let lag_time = Duration::try_from_secs_f64(secs.max(0.0)).map_err(|_| bad())?;
            Ok(NodeStatus {
                node: node.trim().parse().map_err(|_| bad())?,
                lag_events: events.trim().parse().map_err(|_| bad())?,
                lag_time,
            })
        })
        .collect()
}

/// Every subscriber's lag, from the origin's `sl_status`.
pub async fn status<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remote_of_origin: &R,
) -> Result<Vec<NodeStatus>, RoleError> {
    cluster.check()?;
    let origin = cluster.origin_node()?;
    let rows = query(
        t,
        remote_of_origin,
        &origin.node,
        &cluster.database,
        &format!(
            "select st_received, st_lag_num_events, \
             coalesce(extract(epoch from st_lag_time), 0) \
             from {cs}.sl_status \
             where st_received in (select no_id from {cs}.sl_node where no_active) \
             order by st_received",
            cs = cluster.schema_sql()
        ),
    )
    .await?;
    parse_status_rows(&rows).map_err(|answer| RoleError::UnexpectedAnswer {
        host: remote_of_origin.host().to_string(),
        what: "sl_status".to_string(),
        answer,
    })
}

/// Poll the origin's `sl_status` until every node in `ids` has caught up, for
/// at most `timeout`: `st_lag_num_events = 0`, or — under a steady write load,
/// where a new SYNC every 200 ms keeps that number rarely at 0 — a confirmed
/// event at least as recent as the origin's last event when the wait began.
pub async fn wait_caught_up<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
    ids: &[u32],
    timeout: Duration,
) -> Result<(), RoleError> {
    let origin_remote = remote_of(remotes, cluster.origin)?;
    let origin = cluster.origin_node()?;
    let cs = cluster.schema_sql();
    let target = count(
        t,
        origin_remote,
        &origin.node,
        &cluster.database,
        &format!(
            "select coalesce(max(ev_seqno), 0) from {cs}.sl_event where ev_origin = {}",
            origin.id
        ),
    )
    .await?;
    let started = Instant::now();
    loop {
        let statuses = status(t, cluster, origin_remote).await?;
        let confirmed = query(
            t,
            origin_remote,
            &origin.node,
            &cluster.database,
            &format!(
                "select con_received, max(con_seqno) from {cs}.sl_confirm \
                 where con_origin = {} group by con_received",
                origin.id
            ),
        )
        .await?;
        let reached = |id: u32| {
            confirmed.iter().any(|row| {
                row.first().map(String::as_str) == Some(id.to_string().as_str())
                    && row
                        .get(1)
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| v >= target)
            })
        };
        let behind: Vec<&u32> = ids
            .iter()
            .filter(|id| {
                !statuses.iter().any(|s| s.node == **id && s.lag_events == 0) && !reached(**id)
            })
            .collect();
        let Some(first) = behind.first() else {
            return Ok(());
        };
        if started.elapsed() > timeout {
            let node = cluster.node(**first)?;
            let slon_log = match remotes.get(first) {
                Some(r) => slon_log_tail(t, *r, cluster, &node.node).await,
                None => String::new(),
            };
            return Err(RoleError::Timeout {
                node: node.id,
                host: node.node.endpoint(),
                what: "catch up with the origin",
                waited_s: started.elapsed().as_secs(),
                last: format!("{statuses:?}"),
                slon_log,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Generate a SYNC on the origin and wait until every subscriber confirmed
/// it: everything committed on the origin before the call is then on every node.
pub async fn wait_in_sync<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remotes: &Remotes<'_, R>,
) -> Result<(), RoleError> {
    let origin = cluster.origin_node()?;
    let origin_remote = remote_of(remotes, origin.id)?;
    let ctx = slonik_context(cluster, &[origin]);
    slonik(
        t,
        origin_remote,
        &origin.node,
        "slony: sync",
        "slony/sync.slonik",
        &ctx,
    )
    .await?;
    let ids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| *id != cluster.origin)
        .collect();
    wait_caught_up(t, cluster, remotes, &ids, cluster.timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        crate::roles::postgres::parse_rows(text)
    }

    #[test]
    fn parses_sl_status_rows() {
        assert_eq!(
            parse_status_rows(&rows("2|0|0.25\n3|7|12\n")).unwrap(),
            vec![
                NodeStatus {
                    node: 2,
                    lag_events: 0,
                    lag_time: Duration::from_millis(250)
                },
                NodeStatus {
                    node: 3,
                    lag_events: 7,
                    lag_time: Duration::from_secs(12)
                }
            ]
        );
        // A clock step can make the lag negative: it reads as none.
        assert_eq!(
            parse_status_rows(&rows("2|0|-1.5\n")).unwrap()[0].lag_time,
            Duration::ZERO
        );
        for bad in [
            "2|0\n",
            "x|0|1\n",
            "2|0|inf\n",
            "2|0|1e300\n",
            "2|0|NaN|4\n",
        ] {
            assert!(parse_status_rows(&rows(bad)).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever psql prints, parsing never panics (issue 10).
        #[test]
        fn sl_status_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_status_rows(&rows(&text));
        }

        #[test]
        fn sl_status_like_rows_never_panic(
            fields in proptest::collection::vec(
                proptest::collection::vec("[-+0-9.eEinfaNIF ]{0,12}", 0..5), 0..8)
        ) {
            let _ = parse_status_rows(&fields);
        }
    }
}
