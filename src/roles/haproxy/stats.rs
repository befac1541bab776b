//! What the running HAProxy says about its servers: `show stat` (CSV) and
//! `show servers state`, asked over the runtime API and parsed.

use std::collections::BTreeMap;

use super::runtime::cli;
use super::{BACKEND, Backend};
use crate::remote::Remote;
use crate::roles::web_error::WebRoleError;
use crate::templates::Templates;

/// One server row of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerStat {
    pub backend: String,
    pub name: String,
    /// `UP`, `DOWN`, `DRAIN`, `MAINT`, `UP 1/2`, …
    pub status: String,
    pub weight: u64,
    /// Current sessions.
    pub scur: u64,
    /// Queued requests.
    pub qcur: u64,
    /// Sessions in total.
    pub stot: u64,
    /// HTTP requests in total.
    pub req_tot: u64,
    pub hrsp_2xx: u64,
    pub hrsp_5xx: u64,
    /// Sessions per second over the last second.
    pub rate: u64,
    /// Average response time (ms) over the last 1024 requests.
    pub rtime: u64,
    /// Average time (ms) the last 1024 requests waited in the queue.
    pub qtime: u64,
    /// e.g. `L7OK`, `L4CON`, `* L7OK` while a check runs.
    pub check_status: String,
    pub addr: String,
}

impl ServerStat {
    /// Up and taking new traffic.
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }
}

/// Parse `show servers state`: a version line, a `# ` header, then rows.
pub fn parse_servers_state(text: &str) -> Option<Vec<Backend>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let _version = lines.next()?;
    let header: Vec<&str> = lines.next()?.strip_prefix("# ")?.split(' ').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (name, addr, port) = (col("srv_name")?, col("srv_addr")?, col("srv_port")?);
    let be = col("be_name")?;
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        if f.get(be) != Some(&BACKEND) {
            continue;
        }
        out.push(Backend {
            name: f.get(name)?.to_string(),
            addr: f.get(addr)?.to_string(),
            port: f.get(port)?.parse().ok()?,
        });
    }
    Some(out)
}

/// `show stat`, the server rows of the web backend.
pub async fn show_stat(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
) -> Result<Vec<ServerStat>, WebRoleError> {
    let answer = cli(t, remote, root, &["show stat".to_string()]).await?;
    parse_show_stat(&answer[0])
        .map(|rows| rows.into_iter().filter(|r| r.backend == BACKEND).collect())
        .ok_or_else(|| {
            WebRoleError::unexpected(
                remote.host(),
                "reading HAProxy's stats",
                crate::remote::tail(&answer[0], 3),
            )
        })
}

/// Parse `show stat` CSV (header `# pxname,svname,…`): every server row, of
/// every backend (FRONTEND and BACKEND rows left out).
pub fn parse_show_stat(csv: &str) -> Option<Vec<ServerStat>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.strip_prefix("# ")?.split(',').collect();
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: BTreeMap<&str, &str> = header.iter().copied().zip(line.split(',')).collect();
        let svname = *f.get("svname")?;
        if svname == "FRONTEND" || svname == "BACKEND" {
            continue;
        }
        let n = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let s = |k: &str| f.get(k).map(|v| v.to_string()).unwrap_or_default();
        rows.push(ServerStat {
            backend: s("pxname"),
            name: svname.to_string(),
            status: s("status"),
            weight: n("weight"),
            scur: n("scur"),
            qcur: n("qcur"),
            stot: n("stot"),
            req_tot: n("req_tot"),
            hrsp_2xx: n("hrsp_2xx"),
            hrsp_5xx: n("hrsp_5xx"),
            rate: n("rate"),
            rtime: n("rtime"),
            qtime: n("qtime"),
            check_status: s("check_status"),
            addr: s("addr"),
        });
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Issue 13: `qtime` (the queue-time metric) is read from its own column,
    /// wherever HAProxy puts it, and is not confused with `rtime`.
    #[test]
    fn reads_queue_time_from_its_column() {
        let csv = "# pxname,svname,qcur,scur,status,qtime,ctime,rtime,ttime,\n\
                   web,web0,3,8,UP,42,1,17,60,\n\
                   web,web1,0,1,UP,,0,9,9,\n";
        let rows = parse_show_stat(csv).unwrap();
        let times: Vec<(u64, u64, u64)> = rows.iter().map(|r| (r.qcur, r.qtime, r.rtime)).collect();
        assert_eq!(times, vec![(3, 42, 17), (0, 0, 9)]);
    }

    #[test]
    fn parses_stat_csv_and_servers_state() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,rate,check_status,req_tot,hrsp_2xx,addr,\n\
                   web_in,FRONTEND,,,1,2,,10,OPEN,,,,,,,\n\
                   web,web-0,0,0,2,3,,40,UP,1,5,L7OK,40,39,127.0.0.10:8080,\n\
                   web,BACKEND,0,0,2,3,,40,UP,1,5,,40,39,,\n";
        let rows = parse_show_stat(csv).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.name.as_str(), r.scur, r.stot, r.req_tot, r.hrsp_2xx),
            ("web-0", 2, 40, 40, 39)
        );
        assert!(r.is_up());
        assert_eq!(r.addr, "127.0.0.10:8080");

        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n\
                     3 web 1 web-0 127.0.0.10 2 0 1 1 5 6 3 4 6 0 0 0 - 8080 -\n";
        assert_eq!(
            parse_servers_state(state).unwrap(),
            vec![Backend {
                name: "web-0".into(),
                addr: "127.0.0.10".into(),
                port: 8080
            }]
        );
    }

    proptest! {
        /// Whatever the stats socket answers, parsing never panics (issue 10).
        #[test]
        fn show_stat_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_show_stat(&text);
            let _ = parse_servers_state(&text);
        }

        /// CSV-shaped input: a real header, then arbitrary fields.
        #[test]
        fn show_stat_rows_never_panic(rows in proptest::collection::vec("[a-zA-Z0-9 ,:._*-]{0,80}", 0..6)) {
            let csv = format!("# pxname,svname,qcur,scur,status,req_tot,rtime\n{}", rows.join("\n"));
            if let Some(parsed) = parse_show_stat(&csv) {
                prop_assert!(parsed.iter().all(|s| s.name != "FRONTEND" && s.name != "BACKEND"));
            }
        }
    }
}
