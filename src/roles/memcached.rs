//! memcached on a cache node: sized from the machine unless told, run by the
//! supervisor as `nobody`, bound to the machine's address, no UDP.

use std::collections::BTreeMap;

use tera::Context;

use super::web_error::{WebRoleError, check_root, check_token, run_template};
use crate::remote::Remote;
use crate::templates::Templates;

/// One cache node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheNode {
    /// The machine's root prefix ("" on a real host).
    pub root: String,
    /// The address memcached binds to.
    pub addr: String,
    pub port: u16,
    /// Cache memory; `None` sizes it from the machine ([`memory_for`]).
    pub memory_mb: Option<u32>,
}

/// What [`ensure_memcached`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedOutcome {
    pub memory_mb: u32,
    /// `false` when it was already running with the same settings.
    pub started: bool,
}

/// Smallest and largest cache sized automatically, in MB.
pub const MIN_AUTO_MB: u32 = 64;
pub const MAX_AUTO_MB: u32 = 65_536;

/// Cache memory for a machine with `mem_total_kb` (MemTotal): half of it, so
/// the kernel, connections and memcached's own overhead (~5-10% above `-m`)
/// still fit, within [`MIN_AUTO_MB`]..=[`MAX_AUTO_MB`].
pub fn memory_for(mem_total_kb: u64) -> u32 {
    let half_mb = mem_total_kb / 1024 / 2;
    half_mb.clamp(u64::from(MIN_AUTO_MB), u64::from(MAX_AUTO_MB)) as u32
}

fn check(node: &CacheNode, host: &str) -> Result<(), WebRoleError> {
    check_root(host, &node.root)?;
    check_token(host, "memcached address", &node.addr)?;
    if node.port == 0 {
        return Err(WebRoleError::invalid(
            host,
            "memcached port",
            "must not be 0",
        ));
    }
    if node.memory_mb == Some(0) {
        return Err(WebRoleError::invalid(
            host,
            "memcached memory",
            "must not be 0 MB",
        ));
    }
    Ok(())
}

/// Start memcached, or restart it when its settings changed; nothing when it
/// already runs as asked.
pub async fn ensure_memcached(
    t: &Templates,
    remote: &impl Remote,
    node: &CacheNode,
) -> Result<MemcachedOutcome, WebRoleError> {
    let host = remote.host();
    check(node, host)?;
    let memory_mb = match node.memory_mb {
        Some(mb) => mb,
        None => {
            let what = "reading the machine's memory";
            let out =
                run_template(t, remote, "memcached/meminfo.sh", &Context::new(), what).await?;
            let kb: u64 = out.stdout.trim().parse().map_err(|_| {
                WebRoleError::unexpected(host, what, format!("MemTotal {:?}", out.stdout.trim()))
            })?;
            memory_for(kb)
        }
    };
    let mut ctx = Context::new();
    ctx.insert("root", &node.root);
    ctx.insert("addr", &node.addr);
    ctx.insert("port", &node.port);
    ctx.insert("memory_mb", &memory_mb);
    ctx.insert(
        "args",
        &format!("-l {} -p {} -m {} -U 0", node.addr, node.port, memory_mb),
    );
    let out = run_template(t, remote, "memcached/ensure.sh", &ctx, "starting memcached").await?;
    Ok(MemcachedOutcome {
        memory_mb,
        started: out.stdout.lines().any(|l| l == "started"),
    })
}

/// Stop memcached (TERM, then KILL after 10 s); nothing when it is not running.
pub async fn stop_memcached(
    t: &Templates,
    remote: &impl Remote,
    root: &str,
) -> Result<(), WebRoleError> {
    super::web_error::stop_services(t, remote, root, &["memcached"], "stopping memcached").await
}

/// memcached's `stats` (name → value), asked over TCP from the machine itself.
pub async fn memcached_stats(
    t: &Templates,
    remote: &impl Remote,
    addr: &str,
    port: u16,
) -> Result<BTreeMap<String, String>, WebRoleError> {
    let host = remote.host();
    check_token(host, "memcached address", addr)?;
    let mut ctx = Context::new();
    ctx.insert("addr", addr);
    ctx.insert("port", &port);
    let what = "asking memcached for stats";
    let out = run_template(t, remote, "memcached/stats.sh", &ctx, what).await?;
    parse_stats(&out.stdout).ok_or_else(|| {
        WebRoleError::unexpected(
            host,
            what,
            format!(
                "no `END` in the answer: {:?}",
                crate::remote::tail(&out.stdout, 3)
            ),
        )
    })
}

/// `STAT name value` lines up to `END`; `None` without `END`.
pub fn parse_stats(text: &str) -> Option<BTreeMap<String, String>> {
    let mut stats = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line == "END" {
            return Some(stats);
        }
        if let Some(rest) = line.strip_prefix("STAT ") {
            if let Some((k, v)) = rest.split_once(' ') {
                stats.insert(k.to_string(), v.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_half_the_machine_within_bounds() {
        assert_eq!(memory_for(4 * 1024 * 1024), 2048);
        assert_eq!(memory_for(24 * 1024 * 1024), 12 * 1024);
        assert_eq!(memory_for(64 * 1024), MIN_AUTO_MB);
        assert_eq!(memory_for(1024 * 1024 * 1024), MAX_AUTO_MB);
    }

    #[test]
    fn parses_stats_until_end() {
        let s = parse_stats("STAT pid 12\r\nSTAT version 1.6.18\r\nEND\r\n").unwrap();
        assert_eq!(s["pid"], "12");
        assert_eq!(s["version"], "1.6.18");
        assert!(parse_stats("STAT pid 12\r\n").is_none());
    }
}

#[cfg(test)]
mod stop_tests {
    use crate::remote::local::LocalTransport;
    use crate::remote::{Redactor, Remote};

    /// Undoing a cache or load balancer stops its service (a `hosts` machine
    /// outlives its role, so nothing else would).
    #[test]
    fn stopping_memcached_and_haproxy_ends_their_processes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let root = std::env::temp_dir().join(format!("appgrid-stop-{}", std::process::id()));
            let root_s = root.to_str().unwrap().to_string();
            let tr = LocalTransport::new("local", Redactor::new());
            let t = crate::templates::Templates::embedded();
            let lib = t.render("lib/service.sh", &tera::Context::new()).unwrap();
            let start = format!(
                "set -eu\nROOT={}\n{lib}\nsvc_start memcached root sleep 30\nsvc_start haproxy root sleep 30\n",
                crate::templates::shell_quote(&root_s)
            );
            tr.run("start", &start).await.unwrap();
            let pid = |name: &str| -> i32 {
                std::fs::read_to_string(root.join(format!("run/appgrid/{name}.pid")))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            };
            let (m, h) = (pid("memcached"), pid("haproxy"));
            super::stop_memcached(&t, &tr, &root_s).await.unwrap();
            crate::roles::haproxy::stop_haproxy(&t, &tr, &root_s)
                .await
                .unwrap();
            for p in [m, h] {
                // Gone, or a zombie its new parent has not reaped yet: not running.
                let state = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let running = state
                    .rsplit(") ")
                    .next()
                    .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('Z'));
                assert!(!running, "process {p} still runs: {state}");
            }
            assert!(!root.join("run/appgrid/memcached.pid").exists());
            // Stopping what is not running is fine.
            super::stop_memcached(&t, &tr, &root_s).await.unwrap();
            let _ = std::fs::remove_dir_all(root);
        });
    }
}
