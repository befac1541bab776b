//! A host farm: network namespaces on a private bridge, each running its own
//! sshd on its own address with its own host key, hostname and /run.
//!
//! Hosts share this machine's filesystem except for what a real host keeps to
//! itself: /run, root's home, and the directories appgrid's roles write
//! (/var/lib/appgrid, /etc/appgrid, /var/log/appgrid), each bind-mounted from
//! the host's own directory in sshd's private mount namespace, which every
//! session (and every service it starts) inherits. Two hosts running Postgres
//! thus get two data directories, as on two machines.
//!
//! Names and subnets are unique per test process and per farm (pid + a
//! process-wide counter), so farms can be built concurrently. Everything is
//! torn down on drop, including when a test panics. Traffic only ever goes to
//! the farm's own addresses.

#![allow(dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use appgrid::remote::ssh::SshTarget;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Directories each host has to itself (besides /run and root's home): where
/// appgrid's roles keep data, configuration and logs on a real host.
const PRIVATE_DIRS: [&str; 3] = ["var/lib/appgrid", "etc/appgrid", "var/log/appgrid"];

#[derive(Debug, Clone)]
pub struct FarmHost {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub netns: String,
    /// The root-namespace end of this host's veth pair.
    pub veth: String,
    dir: PathBuf,
}

pub struct Farm {
    bridge: String,
    dir: PathBuf,
    hosts: Vec<FarmHost>,
    sshd: Vec<Option<Child>>,
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// Run a setup command; panic with its output if it fails.
fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a teardown command, ignoring failures.
fn quiet(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn keygen(path: &Path, comment: &str) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    sh(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

/// A /24 no interface of this machine uses yet, derived from pid and counter.
fn free_subnet(pid: u32, k: u32) -> (u8, u8) {
    let used = quiet("ip", &["-o", "-4", "addr", "show"]) + &quiet("ip", &["-4", "route"]);
    let mut idx = (pid as u64 * 7 + k as u64 * 131) % (100 * 256);
    for _ in 0..100 * 256 {
        let (a, b) = (100 + (idx / 256) as u8, (idx % 256) as u8);
        if !used.contains(&format!("10.{a}.{b}.")) {
            return (a, b);
        }
        idx = (idx + 1) % (100 * 256);
    }
    panic!("no free 10.x.y.0/24 subnet for the farm");
}

impl Farm {
    pub fn new(n: usize) -> Farm {
        assert!((1..=200).contains(&n));
        let pid = std::process::id();
        let k = COUNTER.fetch_add(1, Ordering::SeqCst);
        reap_stale_farms();
        // A fixed-width pid, then the counter: unique, and "agv" + tag + "-"
        // + host index stays within the 15 characters of an interface name.
        let tag = format!("{:0>5}{}", base36(pid as u64), base36(k as u64));
        let bridge = format!("agb{tag}");
        let dir = std::env::temp_dir().join(format!("appgrid-farm-{pid}-{k}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut farm = Farm {
            bridge: bridge.clone(),
            dir: dir.clone(),
            hosts: Vec::new(),
            sshd: Vec::new(),
        };
        // From here on a panic tears down what exists (Drop).
        let (a, b) = free_subnet(pid, k);
        farm.record(&format!("bridge {bridge}"));
        sh("ip", &["link", "add", &bridge, "type", "bridge"]);
        sh(
            "ip",
            &["addr", "add", &format!("10.{a}.{b}.1/24"), "dev", &bridge],
        );
        sh("ip", &["link", "set", &bridge, "up"]);

        let client_key = dir.join("client_key");
        keygen(&client_key, "appgrid-farm-client");
        fs::copy(
            client_key.with_extension("pub"),
            dir.join("authorized_keys"),
        )
        .unwrap();

        for i in 0..n {
            let name = format!("h{i}");
            let netns = format!("ag{tag}{name}");
            let veth = format!("agv{tag}-{}", base36(i as u64));
            assert!(veth.len() <= 15, "{veth}");
            let addr = format!("10.{a}.{b}.{}", 10 + i);
            let hdir = dir.join(&name);
            fs::create_dir_all(hdir.join("run")).unwrap();
            // Its own (empty) home: no rc files of this machine's root run on
            // every login, and hosts do not share ~/.ssh or dotfiles.
            fs::create_dir_all(hdir.join("home")).unwrap();
            for private in PRIVATE_DIRS {
                fs::create_dir_all(hdir.join("fs").join(private)).unwrap();
            }
            let host = FarmHost {
                name,
                addr: addr.clone(),
                port: 22,
                netns: netns.clone(),
                veth: veth.clone(),
                dir: hdir.clone(),
            };
            farm.record(&format!("host {netns} {veth}"));
            sh("ip", &["netns", "add", &netns]);
            farm.hosts.push(host);
            farm.sshd.push(None);
            sh(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
                ],
            );
            sh("ip", &["link", "set", &veth, "master", &bridge, "up"]);
            sh(
                "ip",
                &[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ],
            );
            sh("ip", &["-n", &netns, "link", "set", "lo", "up"]);
            sh("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
            keygen(&hdir.join("ssh_host_ed25519_key"), &farm.hosts[i].name);
        }
        for i in 0..n {
            farm.start_sshd(i);
        }
        for i in 0..n {
            farm.wait_listening(i);
        }
        farm
    }

    pub fn hosts(&self) -> &[FarmHost] {
        &self.hosts
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    /// A per-farm scratch directory (hosts share this machine's filesystem).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A direct connection to host `i` as root with the farm's client key.
    pub fn target(&self, i: usize) -> SshTarget {
        let h = &self.hosts[i];
        SshTarget::new(&h.name, &h.addr, h.port, "root", self.client_key())
    }

    /// The host key of host `i` as an OpenSSH public key line.
    pub fn host_key(&self, i: usize) -> String {
        let line = fs::read_to_string(self.hosts[i].dir.join("ssh_host_ed25519_key.pub")).unwrap();
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The directory host `i` sees as `/` + `path` for one of the private
    /// directories (e.g. "var/log/appgrid"), readable from outside.
    pub fn private_dir(&self, i: usize, path: &str) -> PathBuf {
        self.hosts[i].dir.join("fs").join(path)
    }

    /// Give host `i` a new host key and restart its sshd.
    pub fn regenerate_host_key(&mut self, i: usize) {
        self.stop_sshd(i);
        let name = self.hosts[i].name.clone();
        keygen(&self.hosts[i].dir.join("ssh_host_ed25519_key"), &name);
        self.start_sshd(i);
        self.wait_listening(i);
    }

    /// Take host `i` off the network (its link goes down; packets vanish).
    pub fn cut(&self, i: usize) {
        sh("ip", &["link", "set", &self.hosts[i].veth, "down"]);
    }

    pub fn restore(&self, i: usize) {
        sh("ip", &["link", "set", &self.hosts[i].veth, "up"]);
    }

    /// Note what is about to exist, so a later test process can remove it if
    /// this one dies without running `Drop` (SIGKILL, abort).
    fn record(&self, line: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("names"))
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
    }

    /// Start (again) the sshd of host `i`; `wait_listening` waits for it.
    pub fn start_sshd(&mut self, i: usize) {
        let h = &self.hosts[i];
        let d = h.dir.display();
        let private: String = PRIVATE_DIRS
            .iter()
            .map(|p| format!("mkdir -p /{p}; mount --bind {d}/fs/{p} /{p}; "))
            .collect();
        let script = format!(
            "set -e; hostname {name}; mount --bind {d}/run /run; mkdir -p /run/sshd; \
             mount --bind {d}/home \"$(getent passwd root | cut -d: -f6)\"; {private}\
             exec /usr/sbin/sshd -D -e -f /dev/null -o ListenAddress={addr}:{port} \
             -o HostKey={d}/ssh_host_ed25519_key -o PidFile=none -o UsePAM=no \
             -o StrictModes=no -o AuthorizedKeysFile={farm}/authorized_keys \
             -o PermitRootLogin=yes -o 'Subsystem=sftp internal-sftp' \
             -o AllowTcpForwarding=yes",
            name = h.name,
            addr = h.addr,
            port = h.port,
            farm = self.dir.display(),
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(h.dir.join("sshd.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &h.netns])
            .args(["unshare", "--mount", "--uts", "--propagation", "private"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.sshd[i] = Some(child);
    }

    /// Stop the sshd of host `i` (its address then refuses connections).
    pub fn stop_sshd(&mut self, i: usize) {
        if let Some(mut child) = self.sshd[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn wait_listening(&mut self, i: usize) {
        let h = &self.hosts[i];
        let addr: SocketAddr = format!("{}:{}", h.addr, h.port).parse().unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(Some(child)) = self.sshd.get_mut(i)
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "sshd of {} exited ({status}): {}",
                    h.name,
                    fs::read_to_string(h.dir.join("sshd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd of {} does not listen on {addr}", h.name);
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        for i in 0..self.sshd.len() {
            self.stop_sshd(i);
        }
        let hosts: Vec<(String, String)> = self
            .hosts
            .iter()
            .map(|h| (h.netns.clone(), h.veth.clone()))
            .collect();
        teardown(&self.bridge, &hosts, &self.dir);
    }
}

fn teardown(bridge: &str, hosts: &[(String, String)], dir: &Path) {
    for (netns, veth) in hosts {
        for pid in quiet("ip", &["netns", "pids", netns]).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        quiet("ip", &["link", "del", veth]);
        quiet("ip", &["netns", "del", netns]);
    }
    quiet("ip", &["link", "del", bridge]);
    let _ = fs::remove_dir_all(dir);
}

/// Tear down farms left behind by test processes that died without `Drop`.
fn reap_stale_farms() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("appgrid-farm-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill(2) with signal 0 only checks that the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
            if alive {
                continue;
            }
            let names = fs::read_to_string(entry.path().join("names")).unwrap_or_default();
            let mut bridge = String::new();
            let mut hosts = Vec::new();
            for line in names.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["bridge", b] => bridge = b.to_string(),
                    ["host", n, v] => hosts.push((n.to_string(), v.to_string())),
                    _ => {}
                }
            }
            if !bridge.is_empty() {
                teardown(&bridge, &hosts, &entry.path());
            }
        }
    });
}
