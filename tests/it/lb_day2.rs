//! The load balancer's day two (issue 9), on the `local` provider with a
//! real HAProxy: maintenance mode (503 with the message and `Retry-After`
//! through the runtime API, kept by apply, shown by status and plan) and
//! TLS (a test CA and leaves made with `openssl`; `curl --cacert` answers,
//! `http://` redirects, a renewed certificate is an update of `lb.config`
//! only, bad certificates are manifest errors that change nothing, the key
//! never printed nor in state).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::cli::{appgrid, scratch, text};
use super::local_e2e::Blog;

const TLS_PORT: u16 = 18443;

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A test CA (in `dir`) that issues leaves for localhost and 127.0.0.1.
struct TestCa {
    dir: PathBuf,
    serial: u32,
}

impl TestCa {
    fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        run_ok(Command::new("openssl").current_dir(dir).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=appgrid test CA",
            "-days",
            "30",
        ]));
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n\
             [leaf]\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        TestCa {
            dir: dir.to_path_buf(),
            serial: 0,
        }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A new key and a leaf valid between `start` and `end`
    /// (`YYYYMMDDHHMMSSZ`): (certificate PEM, key PEM).
    fn leaf(&mut self, start: &str, end: &str) -> (String, String) {
        self.serial += 1;
        let n = self.serial;
        let (key, csr, crt) = (
            format!("leaf{n}.key"),
            format!("leaf{n}.csr"),
            format!("leaf{n}.crt"),
        );
        run_ok(Command::new("openssl").current_dir(&self.dir).args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ]));
        run_ok(Command::new("openssl").current_dir(&self.dir).args([
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            &csr,
            "-out",
            &crt,
            "-startdate",
            start,
            "-enddate",
            end,
            "-extensions",
            "leaf",
            "-notext",
        ]));
        (
            std::fs::read_to_string(self.dir.join(crt)).unwrap(),
            std::fs::read_to_string(self.dir.join(key)).unwrap(),
        )
    }
}

/// `YYYYMMDDHHMMSSZ`, `days` from now.
fn asn1_time(days: i64) -> String {
    asn1_in_hours(24 * days)
}

fn asn1_in_hours(hours: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours);
    t.strftime("%Y%m%d%H%M%SZ").to_string()
}

/// The blog with HTTPS: `tls_certificate = "tls.pem"` beside the manifest.
fn with_tls(blog: &Blog) {
    let text = std::fs::read_to_string(&blog.manifest).unwrap();
    let text = text.replacen(
        "listen = 8000\n",
        &format!("listen = 8000\ntls_certificate = \"tls.pem\"\ntls_port = {TLS_PORT}\n"),
        1,
    );
    std::fs::write(&blog.manifest, text).unwrap();
}

fn write_pem(blog: &Blog, parts: &[&str]) {
    std::fs::write(blog.dir.join("tls.pem"), parts.concat()).unwrap();
}

/// `appgrid COMMAND MANIFEST ARGS…` for the blog.
fn cmd(blog: &mut Blog, command: &str, args: &[&str]) -> Output {
    let out = appgrid()
        .arg(command)
        .arg(&blog.manifest)
        .args(args)
        .env("APPGRID_LOCAL_ROOT", &blog.machines)
        .output()
        .unwrap();
    blog.printed.push_str(&text(&out.stdout));
    blog.printed.push_str(&text(&out.stderr));
    out
}

/// curl through the load balancer, `localhost` resolved to its address:
/// (status, headers, body).
fn curl(blog: &Blog, ca: &TestCa, url_path: &str, extra: &[&str]) -> (u16, String, String) {
    let ip = blog.attr("lb", "private_ip");
    let dir = scratch("lb-curl");
    let (headers, body) = (dir.join("h"), dir.join("b"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca.ca_pem())
        .args([
            "--resolve",
            &format!("localhost:{TLS_PORT}:{ip}"),
            "--resolve",
            &format!("localhost:8000:{ip}"),
            "-D",
        ])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(url_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url_path}: {}",
        text(&out.stderr)
    );
    let code = text(&out.stdout).trim().parse().unwrap();
    let h = std::fs::read_to_string(&headers).unwrap_or_default();
    let b = std::fs::read_to_string(&body).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (code, h, b)
}

fn https(path: &str) -> String {
    format!("https://localhost:{TLS_PORT}{path}")
}

/// The running HAProxy worker's pid (`show info` over its stats socket).
fn haproxy_worker(blog: &Blog) -> String {
    let lb = blog.state()["resources"]["lb"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sock = blog
        .machines
        .join("itlocal/machines")
        .join(lb)
        .join("run/appgrid/haproxy.sock");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'show info\\n' | socat -t 5 - UNIX-CONNECT:{}",
            sock.display()
        ))
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .unwrap_or_else(|| panic!("no Pid in {}", text(&out.stdout)))
        .to_string()
}

fn lb_root(blog: &Blog) -> PathBuf {
    let lb = blog.state()["resources"]["lb"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    blog.machines.join("itlocal/machines").join(lb)
}

/// The base64 lines of a PEM block (what a leak would show).
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_string)
        .collect()
}

#[test]
fn maintenance_mode_and_https_at_the_load_balancer() {
    let mut blog = Blog::new("lb-day2");
    blog.write(1, 0);
    with_tls(&blog);
    let mut ca = TestCa::new(&blog.dir.join("ca"));
    let (cert, key) = ca.leaf(&asn1_time(-1), &asn1_time(60));
    let ca_cert = std::fs::read_to_string(ca.ca_pem()).unwrap();
    write_pem(&blog, &[&cert, &ca_cert, &key]);
    blog.ok(&["apply", "--yes"]);

    // HTTPS answers with the test CA's leaf; http:// redirects; the health
    // path is neither redirected nor (below) blocked.
    let (code, _, body) = curl(&blog, &ca, &https("/"), &[]);
    assert_eq!(code, 200, "{body}");
    let (code, headers, _) = curl(&blog, &ca, "http://localhost:8000/posts", &[]);
    assert_eq!(code, 301, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&format!("location: https://localhost:{TLS_PORT}/posts")),
        "{headers}"
    );
    assert_eq!(curl(&blog, &ca, "http://localhost:8000/health", &[]).0, 200);
    let pem_on_lb = lb_root(&blog).join("etc/appgrid/haproxy/tls.pem");
    let mode = std::fs::metadata(&pem_on_lb).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", pem_on_lb.display());
    let status = blog.ok(&["status"]);
    assert!(
        status.contains("tls certificate CN=localhost expires") && !status.contains("warning"),
        "{status}"
    );

    // Maintenance on: 503 with the message verbatim (quotes, %, $, `, <, &)
    // and Retry-After, an HTML page for browsers; the health path still
    // answers; no reload (the same worker).
    let worker = haproxy_worker(&blog);
    let message = r#"Back "soon" — 100% $HOME `date` <b>&amp;</b> 'ok'"#;
    let out = cmd(&mut blog, "maintenance", &["on", "--message", message]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (code, headers, body) = curl(&blog, &ca, &https("/posts"), &[]);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body, message);
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: 120"),
        "{headers}"
    );
    let (code, _, html) = curl(&blog, &ca, &https("/"), &["-H", "Accept: text/html"]);
    assert_eq!(code, 503);
    assert!(
        html.contains("<p>Back &quot;soon&quot; — 100% $HOME `date` &lt;b&gt;&amp;amp;&lt;/b&gt; &#39;ok&#39;</p>"),
        "{html}"
    );
    assert_eq!(curl(&blog, &ca, &https("/health"), &[]).0, 200);
    assert_eq!(haproxy_worker(&blog), worker, "maintenance must not reload");
    let since = blog.state()["maintenance"]["since"]
        .as_str()
        .unwrap()
        .to_string();
    let status = blog.ok(&["status"]);
    assert!(
        status.contains(&format!("maintenance on since {since}")),
        "{status}"
    );
    let plan = blog.ok(&["plan"]);
    assert!(plan.contains("maintenance on since"), "{plan}");

    // A message HAProxy would mangle is refused; nothing changes.
    let serial = blog.state()["serial"].as_u64().unwrap();
    let out = cmd(&mut blog, "maintenance", &["on", "--message", "two\nlines"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("control character"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(blog.state()["serial"].as_u64().unwrap(), serial);
    assert_eq!(blog.state()["maintenance"]["message"], message);

    // A renewed certificate (expiring in 10.5 days) is an update of lb.config
    // only, with a warning; applied by a reload that keeps maintenance on.
    let (cert2, key2) = ca.leaf(&asn1_time(-1), &asn1_in_hours(10 * 24 + 12));
    write_pem(&blog, &[&cert2, &ca_cert, &key2]);
    let plan = blog.ok(&["plan"]);
    assert!(plan.contains("expires in 10 day(s)"), "{plan}");
    assert!(
        plan.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.")
            && plan
                .lines()
                .any(|l| l.trim_start().starts_with("~ lb.config")),
        "{plan}"
    );
    blog.ok(&["apply", "--yes"]);
    let served = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {}:{TLS_PORT} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial",
            blog.attr("lb", "private_ip")
        ))
        .output()
        .unwrap();
    let renewed = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(cert2.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(text(&renewed.stdout).starts_with("serial="));
    assert_eq!(text(&served.stdout), text(&renewed.stdout));
    assert_eq!(
        curl(&blog, &ca, &https("/"), &[]).0,
        503,
        "apply keeps maintenance"
    );

    // An expired certificate is a manifest error at file:line:col; nothing
    // changes and the renewed one is still served.
    let serial = blog.state()["serial"].as_u64().unwrap();
    let (old, old_key) = ca.leaf("20200101000000Z", "20200201000000Z");
    write_pem(&blog, &[&old, &old_key]);
    let out = cmd(&mut blog, "apply", &["--yes"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("expired at 2020-02-01T00:00:00Z"), "{err}");
    assert!(
        err.contains(&location_of(&blog, "tls_certificate")),
        "{err}"
    );
    assert_eq!(blog.state()["serial"].as_u64().unwrap(), serial);
    write_pem(&blog, &[&cert2, &ca_cert, &key2]);

    // Off: 200 again; status says nothing of maintenance.
    let out = cmd(&mut blog, "maintenance", &["off"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(curl(&blog, &ca, &https("/"), &[]).0, 200);
    assert!(blog.state().get("maintenance").is_none());
    assert!(!blog.ok(&["status"]).contains("maintenance"));

    // No key material in anything printed, nor in state.
    let state = std::fs::read_to_string(blog.dir.join(".appgrid/itlocal/state.json")).unwrap();
    for k in [&key, &key2, &old_key] {
        for line in pem_body_lines(k) {
            assert!(!blog.printed.contains(&line), "key printed");
            assert!(!state.contains(&line), "key in state");
        }
    }
    assert!(!blog.printed.contains("PRIVATE KEY"));
}

/// `MANIFEST:LINE:COL` of `key`'s value.
fn location_of(blog: &Blog, key: &str) -> String {
    let text = std::fs::read_to_string(&blog.manifest).unwrap();
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(key))
        .unwrap();
    let col = line.find('"').unwrap() + 1;
    format!("{}:{}:{col}", blog.manifest.display(), n + 1)
}

#[test]
fn bad_certificates_are_manifest_errors_that_change_nothing() {
    let mut blog = Blog::new("lb-day2-bad");
    blog.write(1, 0);
    with_tls(&blog);
    let mut ca = TestCa::new(&blog.dir.join("ca"));
    let (cert, key) = ca.leaf(&asn1_time(-1), &asn1_time(60));
    let (_, other_key) = ca.leaf(&asn1_time(-1), &asn1_time(60));
    let (expired, expired_key) = ca.leaf("20200101000000Z", "20200201000000Z");
    let cases: [(&str, Vec<&str>, &str); 5] = [
        (
            "garbage",
            vec!["not a certificate\n"],
            "holds no PEM certificate",
        ),
        (
            "broken",
            vec![
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &key,
            ],
            "the certificate does not parse",
        ),
        ("no key", vec![&cert], "holds no private key"),
        (
            "mismatch",
            vec![&cert, &other_key],
            "does not belong to the first certificate",
        ),
        ("expired", vec![&expired, &expired_key], "expired at"),
    ];
    for (what, parts, expected) in cases {
        write_pem(&blog, &parts);
        for command in ["plan", "apply"] {
            let args: &[&str] = if command == "apply" { &["--yes"] } else { &[] };
            let out = cmd(&mut blog, command, args);
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{what}: {command} passed");
            assert!(err.contains(expected), "{what}: {err}");
            assert!(
                err.contains(&location_of(&blog, "tls_certificate")),
                "{what}: {err}"
            );
            assert!(
                !blog.dir.join(".appgrid").exists(),
                "{what}: state was made"
            );
            assert!(!blog.machines.exists(), "{what}: a machine was made");
        }
    }
    // A missing file too.
    std::fs::remove_file(blog.dir.join("tls.pem")).unwrap();
    let out = cmd(&mut blog, "plan", &[]);
    assert!(text(&out.stderr).contains("cannot read the TLS certificate"));
    for k in [&key, &other_key, &expired_key] {
        for line in pem_body_lines(k) {
            assert!(!blog.printed.contains(&line), "key printed");
        }
    }
    // The good file passes.
    write_pem(&blog, &[&cert, &key]);
    let plan = blog.ok(&["plan"]);
    assert!(plan.contains("lb.config"), "{plan}");
}
