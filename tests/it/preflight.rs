//! Preflight through the `appgrid` binary (issue 7): a machine without
//! Slony-I, memcached and HAProxy, a local root under a 0700 directory, and
//! an aws manifest without its key or credentials are each refused before
//! anything is changed — no state file, no lock, no machine directory, no
//! key pair, security group or instance at the EC2 endpoint (moto).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_ec2::types::Filter;

use super::cli::{appgrid, scratch, text};

/// The blog on the local provider, as the example has it, in `dir`.
fn blog_local(dir: &Path) -> PathBuf {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let manifest = dir.join("appgrid.toml");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog-local/appgrid.toml"),
    )
    .unwrap()
    .replace("\"../app\"", &format!("{:?}", app.display().to_string()))
    .replace(
        "\"../app/schema.sql\"",
        &format!("{:?}", app.join("schema.sql").display().to_string()),
    );
    std::fs::write(&manifest, example).unwrap();
    manifest
}

/// A directory of links to every program on this machine's PATH but `without`.
fn path_without(dir: &Path, without: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        for entry in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if without.iter().any(|w| name == *w) || link.exists() {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), link).unwrap();
        }
    }
    bin
}

/// Nothing under `dir` but what the test itself put there.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Issue 7's "done when": with a PATH lacking slonik, memcached and haproxy,
/// apply of blog-local exits 1 before changing anything and names all three
/// with the package that brings each.
#[test]
fn apply_without_slonik_memcached_and_haproxy_changes_nothing() {
    let dir = scratch("preflight-path");
    let manifest = blog_local(&dir);
    let bin = path_without(&dir, &["slonik", "memcached", "haproxy"]);
    let root = dir.join("machines");
    let out = appgrid()
        .args(["apply", "--yes", manifest.to_str().unwrap()])
        .env("PATH", &bin)
        .env("APPGRID_LOCAL_ROOT", &root)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (program, package, why) in [
        ("haproxy", "haproxy", "the load balancer"),
        ("slonik", "slony1-2-bin", "setting up Slony-I replication"),
        ("memcached", "memcached", "the cache"),
    ] {
        assert!(
            stderr.contains(&format!(
                "  - {program} is not installed ({why}); it comes with {package}\n"
            )),
            "{program}:\n{stderr}"
        );
    }
    assert!(
        stderr.starts_with(&format!(
            "error: {} cannot be applied on this machine yet; nothing was changed:\n",
            manifest.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("  apt-get install haproxy slony1-2-bin memcached\n"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "no plan was shown");
    // Nothing written: no state (nor its directory or lock), no machine root.
    assert_eq!(entries(&dir), ["appgrid.toml", "bin"]);
}

/// A local root under a 0700 directory (what `mktemp -d` makes) is named,
/// with the chmod that fixes it, instead of failing deep in Postgres.
#[test]
fn a_local_root_under_a_0700_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("preflight-root");
    let manifest = blog_local(&dir);
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let apply = || {
        appgrid()
            .args(["apply", "--yes", manifest.to_str().unwrap()])
            .env("APPGRID_LOCAL_ROOT", private.join("machines"))
            .output()
            .unwrap()
    };
    let out = apply();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "  - {} (mode 0700, owner uid 0, group gid 0) cannot be entered by postgres, nobody, so they cannot reach APPGRID_LOCAL_ROOT {}\n    fix: chmod o+x {} (or set",
            private.display(),
            private.join("machines").display(),
            private.display()
        )),
        "{stderr}"
    );
    assert_eq!(entries(&private), Vec::<String>::new());
    assert_eq!(entries(&dir), ["appgrid.toml", "private"]);
    // `plan` says the same as a warning, and still plans.
    let out = appgrid()
        .args(["plan", "--refresh=false", manifest.to_str().unwrap()])
        .env("APPGRID_LOCAL_ROOT", private.join("machines"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "warning: {} cannot be applied on this machine yet:\n  - {} (mode 0700",
            manifest.display(),
            private.display()
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Plan: "));
    assert_eq!(entries(&dir), ["appgrid.toml", "private"]);
}

/// An aws app pointed at moto, with a key path that does not exist yet.
pub(super) struct AwsApp {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) manifest: PathBuf,
}

impl AwsApp {
    pub(super) fn new(test: &str, image: &str) -> AwsApp {
        let dir = scratch(test);
        let name = format!("pf{:x}", fastrand::u32(..));
        let manifest = dir.join("appgrid.toml");
        std::fs::write(
            &manifest,
            format!(
                "[app]\nname = \"{name}\"\n[provider]\nkind = \"aws\"\nregion = \"us-east-1\"\n\
                 image = \"{image}\"\nssh_key = \"id_ed25519\"\nssh_from = [\"203.0.113.0/24\"]\n\
                 endpoint = \"{}\"\nconfigure = false\n\
                 [web]\ninstance_type = \"t3.small\"\ncount = 1\n\
                 [load_balancer]\ninstance_type = \"t3.small\"\n",
                super::moto::shared().endpoint
            ),
        )
        .unwrap();
        AwsApp {
            name,
            dir,
            manifest,
        }
    }

    /// `appgrid ARGS FILE`, with no AWS setup from this machine leaking in:
    /// no profile, no files, no instance metadata; `credentials` adds moto's.
    pub(super) fn run(&self, args: &[&str], credentials: bool) -> Output {
        self.command(args, credentials).output().unwrap()
    }

    pub(super) fn command(&self, args: &[&str], credentials: bool) -> Command {
        let mut c: Command = appgrid();
        c.args(args)
            .arg(&self.manifest)
            .env("HOME", &self.dir)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("no-credentials"),
            )
            .env("APPGRID_AWS_MAX_ATTEMPTS", "1");
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            c.env_remove(v);
        }
        if credentials {
            c.env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test");
        }
        c
    }

    /// Key pairs, security groups and instances (not terminated) of this app at moto.
    pub(super) fn in_the_cloud(&self) -> usize {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = super::moto::shared().sdk();
            let by_app = || {
                Filter::builder()
                    .name("tag:appgrid:app")
                    .values(&self.name)
                    .build()
            };
            let keys = client
                .describe_key_pairs()
                .filters(by_app())
                .send()
                .await
                .map(|r| r.key_pairs().len())
                .unwrap_or(0);
            let groups = client
                .describe_security_groups()
                .filters(by_app())
                .send()
                .await
                .unwrap()
                .security_groups()
                .len();
            let instances: usize = client
                .describe_instances()
                .filters(by_app())
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("stopping")
                        .values("stopped")
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum();
            keys + groups + instances
        })
    }

    pub(super) fn keygen(&self) {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "appgrid-test", "-f"])
            .arg(self.dir.join("id_ed25519"))
            .status()
            .expect("ssh-keygen runs (apt-get install openssh-client)");
        assert!(status.success());
    }
}

/// The aws preflight: a missing key and missing credentials are both named,
/// with their fixes, and nothing is created — not even the state file; a
/// missing image is named once there are credentials to look with.
#[test]
fn aws_preflight_refuses_a_missing_key_and_missing_credentials() {
    let app = AwsApp::new("preflight-aws", "ami-12c6146b");
    let key = app.dir.join("id_ed25519");

    let out = app.run(&["apply", "--yes"], false);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "  - the SSH private key {} (`ssh_key` in [provider]) does not exist\n    fix: ssh-keygen -t ed25519 -N '' -f {}\n",
            key.display(),
            key.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("  - no AWS credentials found: looked in the environment"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    fix: run `aws configure`, set AWS_PROFILE, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"),
        "{stderr}"
    );
    assert_eq!(entries(&app.dir), ["appgrid.toml"]);
    assert_eq!(app.in_the_cloud(), 0);

    // Credentials, still no key: only the key is named.
    let out = app.run(&["apply", "--yes"], true);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ssh-keygen -t ed25519"), "{stderr}");
    assert!(!stderr.contains("credentials"), "{stderr}");
    assert_eq!(entries(&app.dir), ["appgrid.toml"]);

    // A key, but an image the region does not have.
    app.keygen();
    let bad = AwsApp {
        name: app.name.clone(),
        dir: app.dir.clone(),
        manifest: app.dir.join("bad-image.toml"),
    };
    std::fs::write(
        &bad.manifest,
        std::fs::read_to_string(&app.manifest)
            .unwrap()
            .replace("ami-12c6146b", "ami-00000000"),
    )
    .unwrap();
    let out = bad.run(&["apply", "--yes"], true);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ami-00000000"), "{stderr}");
    assert!(
        stderr.contains("    fix: set `image` in [provider] to an image in us-east-1"),
        "{stderr}"
    );
    assert_eq!(app.in_the_cloud(), 0);
    assert!(!app.dir.join(".appgrid").exists());

    // Everything there: doctor says so, in text and JSON alike.
    let out = app.run(&["doctor"], true);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let lines = text(&out.stdout);
    let out = app.run(&["doctor", "--json"], true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    let checks = json["checks"].as_array().unwrap();
    let kinds: Vec<&str> = checks.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ssh_key", "ssh_key", "aws_credentials", "aws_image"]
    );
    for c in checks {
        assert_eq!(c["status"], "ok", "{c}");
        let found = c["found"].as_str().unwrap();
        assert!(
            lines
                .lines()
                .any(|l| l.starts_with("ok ") && l.ends_with(found)),
            "{found:?} not in:\n{lines}"
        );
    }
    assert_eq!(checks[3]["found"], "ami-12c6146b in us-east-1");
    assert_eq!(app.in_the_cloud(), 0, "doctor only looks");
}
