//! moto's EC2-compatible server for the integration tests.
//!
//! One shared server per test process (tests use their own app names, so they
//! can share it), plus [`Moto::dedicated`] for tests heavy enough to deserve
//! their own. Servers listen on 127.0.0.1 only and die with the test process
//! (PR_SET_PDEATHSIG, armed from a thread that lives as long as the process).

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use appgrid::cloud::aws::{AwsCloud, AwsOverrides};
use appgrid::cloud::{CloudError, Owner};
use appgrid::manifest::{Provider, ProviderKind};

pub const REGION: &str = "us-east-1";

pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server shared by every test in this process.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(Moto::dedicated)
}

fn moto_server() -> PathBuf {
    let path = std::env::var_os("APPGRID_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/appgrid-moto/bin/moto_server"));
    if !path.is_file() {
        panic!(
            "moto's server is not installed at {}: run `.ci/install-moto.sh` \
             (or set APPGRID_MOTO_SERVER to a moto_server executable)",
            path.display()
        );
    }
    path
}

/// The Python of moto's venv (it has boto3, which moto depends on): for
/// test setup the Rust SDKs here do not cover (IAM).
pub fn python() -> PathBuf {
    moto_server().with_file_name("python")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port on 127.0.0.1")
        .port()
}

impl Moto {
    /// A server of its own, stopped when dropped (or when the process exits).
    pub fn dedicated() -> Moto {
        Moto::dedicated_at("127.0.0.1")
    }

    /// A server of its own listening on `host`: an address of this machine
    /// that a test made (the host farm's bridge, for the farm's hosts to reach).
    pub fn dedicated_at(host: &str) -> Moto {
        Moto::dedicated_with(host, &[])
    }

    /// A server of its own on `host` with `env` set, e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT` (moto enforces IAM after that many
    /// unauthenticated actions).
    pub fn dedicated_with(host: &str, env: &[(&str, &str)]) -> Moto {
        let host = host.to_string();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let program = moto_server();
        let port = free_port();
        // PR_SET_PDEATHSIG fires when the *thread* that forked exits, so fork
        // from a thread that never ends.
        let (tx, rx) = mpsc::channel();
        let bind = host.clone();
        std::thread::spawn(move || {
            let mut command = Command::new(&program);
            command
                .args(["-H", &bind, "-p", &port.to_string()])
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let _ = tx.send(command.spawn());
            loop {
                std::thread::park();
            }
        });
        let mut child = rx
            .recv()
            .expect("moto spawner thread")
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((host.as_str(), port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited before listening on {host}:{port}: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {host}:{port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            endpoint: format!("http://{host}:{port}"),
            child: Some(child),
        }
    }

    /// The `[provider]` section a test's app would have, pointed at this server.
    pub fn provider(&self) -> Provider {
        provider_at(&self.endpoint)
    }

    /// The provider under test, with the test's static credentials.
    pub async fn cloud(&self) -> AwsCloud {
        AwsCloud::connect_with(&self.provider(), test_overrides())
            .await
            .expect("connect to moto")
    }

    /// A plain SDK client, to look at what the provider did independently.
    pub fn sdk(&self) -> aws_sdk_ec2::Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }
}

pub fn provider_at(endpoint: &str) -> Provider {
    Provider {
        kind: ProviderKind::Aws,
        region: REGION.to_string(),
        zones: vec![format!("{REGION}a"), format!("{REGION}b")],
        image: "ami-12345678".to_string(),
        ssh_user: "admin".to_string(),
        ssh_key: "~/.ssh/id_ed25519".to_string(),
        ssh_from: vec!["0.0.0.0/0".to_string()],
        endpoint: Some(endpoint.to_string()),
        hosts: Vec::new(),
        proxy_command: None,
        jump_host: None,
        configure: true,
    }
}

/// Credentials passed explicitly (`test`/`test`): the process environment is
/// never consulted, so no test can reach instance metadata or another profile.
pub fn test_overrides() -> AwsOverrides {
    AwsOverrides {
        credentials: Some(("test".to_string(), "test".to_string())),
        max_attempts: Some(2),
        initial_backoff: Some(Duration::from_millis(10)),
        operation_timeout: None,
    }
}

/// A unique owner per test, so tests can share one server.
pub fn owner(test: &str) -> Owner {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| format!("{:x}", fastrand::u32(..)));
    Owner {
        app: format!("{test}-{run}"),
        lineage: format!("lineage-{test}-{run}"),
    }
}

/// The code of an API error, for matching in assertions.
pub fn code(err: &CloudError) -> &str {
    match err {
        CloudError::Api { code, .. } => code,
        _ => "",
    }
}
