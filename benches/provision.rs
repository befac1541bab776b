//! Provisioning benchmark (a bench binary): `cargo bench --bench provision`.
//!
//! Applies a web tier of 1 and then 20 app servers on the `local` provider
//! (each a loopback address and a directory, the app a real process behind a
//! real HAProxy) from nothing to serving, and reports the wall time of each and
//! their ratio: how well provisioning runs concurrently. Also times the blog
//! example (primary, replica, cache, two web, load balancer) from nothing to
//! serving. Figures go to BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn appgrid(args: &[&str], root: &Path) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_appgrid"))
        .args(args)
        .env("APPGRID_LOCAL_ROOT", root)
        .output()
        .expect("appgrid runs");
    assert!(
        out.status.success(),
        "appgrid {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// The app is a few bytes of shell around socat that starts serving after
/// `boot` seconds: what is measured is appgrid's provisioning (ship, env,
/// supervise, health-check, HAProxy), not an interpreter's start-up.
fn web_tier(dir: &Path, count: u32, boot: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let app = dir.join(format!("app-{boot}"));
    std::fs::create_dir_all(&app).unwrap();
    let serve = app.join("serve.sh");
    let respond = app.join("respond.sh");
    std::fs::write(
        &serve,
        format!(
            "#!/bin/sh\nsleep {boot}\nexec socat TCP-LISTEN:\"$PORT\",bind=\"$ADDR\",fork,reuseaddr EXEC:./respond.sh\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &respond,
        // Read the request to its blank line before answering, or the client sees a reset.
        "#!/bin/sh\ncr=$(printf '\\r')\nwhile IFS= read -r line; do [ \"$line\" = \"$cr\" ] || [ -z \"$line\" ] && break; done\n\
         printf 'HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&respond, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = dir.join(format!("web{count}-{boot}.toml"));
    std::fs::write(
        &manifest,
        format!(
            "[app]\nname = \"bench{count}-{boot}\"\n[provider]\nkind = \"local\"\n\
             [release]\npath = \"app-{boot}\"\nstart = \"./serve.sh\"\nhealth = \"/\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = {count}\nport = 8080\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n"
        ),
    )
    .unwrap();
    manifest.display().to_string()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("appgrid-bench-provision-{}", std::process::id()));
    let root = dir.join("machines");
    std::fs::create_dir_all(&root).unwrap();
    // Two apps: one that serves at once (every "host" here shares this
    // machine's two cores, so that measures its CPU as much as appgrid), and
    // one that takes a second to boot, as real apps do, whose wait appgrid
    // must overlap across hosts.
    for boot in [0u32, 1] {
        let mut walls = Vec::new();
        for count in [1u32, 20] {
            let m = web_tier(&dir, count, boot);
            let wall = appgrid(&["apply", "--yes", "--parallelism", "32", &m], &root);
            println!(
                "app booting in {boot} s, web tier of {count:>2} from nothing to serving: {:>6.2} s",
                wall.as_secs_f64()
            );
            walls.push(wall);
            appgrid(&["destroy", "--yes", &m], &root);
        }
        println!(
            "app booting in {boot} s, ratio 20 hosts / 1 host: {:>6.2}",
            walls[1].as_secs_f64() / walls[0].as_secs_f64()
        );
    }

    let blog = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog-local/appgrid.toml");
    let state = dir.join("blog-state.json");
    let args = |verb: &'static str| {
        vec![
            verb,
            "--yes",
            "--state",
            state.to_str().unwrap(),
            blog.to_str().unwrap(),
        ]
    };
    let wall = appgrid(&args("apply"), &root);
    println!(
        "blog-local from nothing to serving:    {:>6.2} s",
        wall.as_secs_f64()
    );
    appgrid(&args("destroy"), &root);
    let _ = std::fs::remove_dir_all(&dir);
}
