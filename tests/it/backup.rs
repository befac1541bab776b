//! Issue 8 §2 on real servers (the `local` provider: Postgres 15 + Slony-I,
//! pgBackRest 2.45 with a directory repository): `destroy` refuses to lose
//! the database, backup → more rows → restore gives back exactly the
//! backup's rows (checksums), a point-in-time restore lands at the asked
//! time, bad input is a clear error that changes nothing, and a destroy with
//! `[database.backup]` takes a final backup first.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use super::cli::{appgrid, scratch, text};

struct App {
    name: &'static str,
    /// Extra environment for every appgrid run (AWS credentials).
    env: Vec<(String, String)>,
    dir: PathBuf,
    manifest: PathBuf,
    machines: PathBuf,
    /// Everything appgrid printed, checked for the password at the end.
    printed: String,
}

impl App {
    fn new(name: &'static str) -> App {
        let dir = scratch(name);
        App {
            name,
            env: Vec::new(),
            manifest: dir.join("appgrid.toml"),
            machines: dir.join("machines"),
            dir,
            printed: String::new(),
        }
    }

    /// The manifest, with `backup` lines under `[database.backup]` if any.
    fn write(&self, backup: Option<&str>) {
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
        let mut text = format!(
            "[app]\nname = \"{name}\"\n[provider]\nkind = \"local\"\n\
             [release]\npath = \"{app}\"\nstart = \"/usr/bin/python3 app.py\"\nhealth = \"/health\"\n\
             [web]\ninstance_type = \"t3.small\"\ncount = 1\nport = 8080\n\
             [load_balancer]\ninstance_type = \"t3.small\"\nlisten = 8000\n\
             [database]\ninstance_type = \"m5.large\"\nschema = \"{app}/schema.sql\"\n",
            app = app.display(),
            name = self.name,
        );
        if let Some(lines) = backup {
            text.push_str("[database.backup]\n");
            text.push_str(lines);
        }
        std::fs::write(&self.manifest, text).unwrap();
    }

    /// `appgrid COMMAND FILE REST…` (`db SUBCOMMAND` is two words).
    fn run(&mut self, args: &[&str]) -> Output {
        let words = if args[0] == "db" { 2 } else { 1 };
        let out = appgrid()
            .args(&args[..words])
            .arg(&self.manifest)
            .args(&args[words..])
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        self.printed.push_str(&text(&out.stdout));
        self.printed.push_str(&text(&out.stderr));
        out
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "appgrid {args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The command fails; its stderr.
    fn fails(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "appgrid {args:?} succeeded:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stderr)
    }

    fn state(&self) -> serde_json::Value {
        let path = self.dir.join(format!(".appgrid/{}/state.json", self.name));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn attr(&self, address: &str, key: &str) -> String {
        self.state()["resources"][address]["attributes"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{address}.{key} not in state"))
            .to_string()
    }

    /// psql as the app's user on the primary; the rows' text.
    fn psql(&self, sql: &str) -> String {
        let out = std::process::Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.attr("db.primary", "private_ip"))
            .args(["-U", self.name, "-d", self.name, "-c", sql])
            .env("PGPASSWORD", self.attr("db.primary.config", "password"))
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    /// Rows and a checksum of the table's whole content, in key order.
    fn checksum(&self) -> String {
        self.psql(
            "SELECT count(*) || ':' || md5(coalesce(string_agg(id || ',' || body, ';' ORDER BY id), '')) FROM ledger",
        )
    }

    fn insert(&self, n: u32, tag: &str) {
        self.psql(&format!(
            "INSERT INTO ledger (body) SELECT '{tag}-' || g FROM generate_series(1, {n}) g"
        ));
    }

    /// Full backups of `stanza_dir` in the directory repository.
    fn backups_on_disk(&self) -> usize {
        let backup = self.dir.join("backups/backup");
        std::fs::read_dir(&backup)
            .map(|stanzas| {
                stanzas
                    .flatten()
                    .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
                    .filter(|e| e.file_name().to_string_lossy().ends_with('F'))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = appgrid()
            .args([
                "destroy",
                "--yes",
                "--allow-data-loss",
                "--skip-final-backup",
            ])
            .arg(&self.manifest)
            .env("APPGRID_LOCAL_ROOT", &self.machines)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", self.machines.to_str().unwrap()])
            .status();
    }
}

#[test]
fn destroy_guard_backup_restore_and_pitr_on_real_postgres() {
    let mut app = App::new("itbackup");
    app.write(None);
    app.ok(&["apply", "--yes"]);
    app.psql("CREATE TABLE ledger (id bigserial PRIMARY KEY, body text NOT NULL)");
    app.insert(1000, "a");
    let before = app.checksum();

    // The guard: no target, no flag → refused, naming the machine and the
    // ways out; nothing changed.
    let err = app.fails(&["destroy", "--yes"]);
    assert!(
        err.contains("this would destroy the data on db.primary")
            && err.contains("add [database.backup]")
            && err.contains("--allow-data-loss"),
        "{err}"
    );
    let err = app.fails(&["destroy", "--yes", "--skip-final-backup"]);
    assert!(err.contains("drop --skip-final-backup"), "{err}");
    // A manifest without [database]: apply's plan would delete the primary.
    let with_database = std::fs::read_to_string(&app.manifest).unwrap();
    let cut = with_database.find("[database]").unwrap();
    std::fs::write(&app.manifest, &with_database[..cut]).unwrap();
    let out = app.run(&["apply", "--yes"]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("this would destroy the data on db.primary"),
        "{}\n{err}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("- db.primary"),
        "the plan was shown first"
    );
    std::fs::write(&app.manifest, with_database).unwrap();
    assert_eq!(app.checksum(), before, "a refused destroy changed nothing");
    assert!(app.state()["resources"]["db.primary"].is_object());

    // No target: a backup says what to add.
    let err = app.fails(&["db", "backup"]);
    assert!(
        err.contains("the manifest has no [database.backup]"),
        "{err}"
    );

    // A target that cannot be reached: a clear error, and nothing changed.
    app.write(Some("to = \"/proc/appgrid-no-such-dir/backups\"\n"));
    let err = app.fails(&["db", "backup"]);
    assert!(
        err.contains("cannot create the backup directory")
            && err.contains("/proc/appgrid-no-such-dir"),
        "{err}"
    );
    assert_eq!(app.checksum(), before);

    app.write(Some("to = \"backups\"\nkeep = 5\n"));
    let started = Instant::now();
    let out = app.ok(&["db", "backup", "--json"]);
    let took = started.elapsed();
    let backup: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = backup["id"].as_str().unwrap().to_string();
    assert!(id.ends_with('F'), "{backup}");
    assert_eq!(backup["origin"], "db.primary");
    assert!(backup["size"].as_u64().unwrap() > 1_000_000, "{backup}");
    let checksum = backup["checksum"].as_str().unwrap();
    assert!(
        checksum.len() == 64 && checksum.bytes().all(|b| b.is_ascii_hexdigit()),
        "{backup}"
    );
    eprintln!("measure: first backup (archiving turned on, restart) {took:?}");

    let listed: serde_json::Value =
        serde_json::from_str(&app.ok(&["db", "backups", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["checksum"], checksum);
    let text_list = app.ok(&["db", "backups"]);
    assert!(
        text_list.contains(&id) && text_list.contains("from db.primary"),
        "{text_list}"
    );

    // More rows after the backup; a point in time between two batches.
    app.insert(500, "b");
    let after_b = app.checksum();
    let at = app.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    app.insert(700, "c");
    assert_ne!(app.checksum(), after_b);

    // Bad input changes nothing.
    let err = app.fails(&["db", "restore", "20990101-000000F", "--in-place"]);
    assert!(
        err.contains("no backup 20990101-000000F of itbackup") && err.contains(&id),
        "{err}"
    );
    // Into a new primary needs the Slony-I cluster (replicas = 0 here).
    let err = app.fails(&["db", "restore", &id]);
    assert!(
        err.contains("needs the Slony-I cluster") && err.contains("pass --in-place"),
        "{err}"
    );
    let err = app.fails(&["db", "restore", &id, "--in-place", "--to-time", "soon"]);
    assert!(err.contains("is not a time"), "{err}");
    let now = app.checksum();
    assert_ne!(now, after_b);

    // Point in time: exactly the rows committed before `at`.
    let started = Instant::now();
    app.ok(&["db", "restore", &id, "--in-place", "--to-time", &at]);
    eprintln!("measure: PITR restore in place {:?}", started.elapsed());
    assert_eq!(app.checksum(), after_b, "PITR to {at}");

    // The backup itself: exactly its snapshot.
    let started = Instant::now();
    let out = app.ok(&["db", "restore", &id, "--in-place"]);
    eprintln!("measure: restore in place {:?}", started.elapsed());
    assert!(out.contains(&format!("to backup {id}")), "{out}");
    assert_eq!(
        app.checksum(),
        before,
        "restored data equals the backup's snapshot"
    );
    // And the restored primary takes writes again.
    app.insert(1, "d");

    // With a target, destroy takes a final backup first.
    let password = app.attr("db.primary.config", "password");
    let on_disk = app.backups_on_disk();
    let out = app.ok(&["destroy", "--yes"]);
    assert!(out.contains("Final backup taken:"), "{out}");
    assert_eq!(app.backups_on_disk(), on_disk + 1);

    assert!(
        password.len() >= 16 && !app.printed.contains(&password),
        "the database password was printed"
    );
}

/// `db restore ID` into a new primary (issue 8): the blog with one replica
/// on real Postgres + Slony-I + pgBackRest (directory repository). Backup →
/// more notes through the app → an unknown id is refused with nothing
/// changed → restore: the new primary and the replica hold exactly the
/// backup's notes, the old machine is gone, state names exactly the machines
/// that exist, and notes written through the load balancer reach the replica.
#[test]
fn restore_into_a_new_primary_resubscribes_the_replica_and_retires_the_old_one() {
    use super::http::{http, json_field};
    use super::local_e2e::{Blog, db, eventually};
    use std::collections::BTreeSet;
    use std::time::Duration;

    let sum = "select count(*) || ':' || md5(coalesce(string_agg(id || ',' || body, ';' order by id), '')) from notes";
    let _serial = super::roles_pg::serial();
    super::roles_pg::rt().block_on(async {
        let mut blog = Blog::new("restore-new");
        blog.write(1, 1);
        let mut manifest = std::fs::read_to_string(&blog.manifest).unwrap();
        manifest.push_str("[database.backup]\nto = \"backups\"\nkeep = 3\n");
        std::fs::write(&blog.manifest, &manifest).unwrap();
        blog.ok(&["apply", "--yes"]);
        let lb = blog.lb();
        let post = async |body: &str| {
            let (status, answer) = http(&lb, "POST", "/notes", body).await.unwrap();
            assert_eq!(status, 201, "{answer}");
            json_field(&answer, "id").to_string()
        };
        for i in 0..30 {
            post(&format!("before {i}")).await;
        }
        let snapshot = blog.psql("db.primary", sum).unwrap();
        assert!(snapshot.starts_with("30:"), "{snapshot}");

        let out = db(&mut blog, &["backup"], &["--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let backup: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        let id = backup["id"].as_str().unwrap().to_string();
        for i in 0..20 {
            post(&format!("after the backup {i}")).await;
        }
        let after_b = blog.psql("db.primary", sum).unwrap();
        let at = blog
            .psql(
                "db.primary",
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        for i in 0..10 {
            post(&format!("after the point in time {i}")).await;
        }
        assert_ne!(blog.psql("db.primary", sum).unwrap(), after_b);

        // An unknown backup: a clear error, and nothing changed.
        let serial = blog.state()["serial"].as_u64().unwrap();
        let out = db(&mut blog, &["restore"], &["20990101-000000F"]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("no backup 20990101-000000F of itlocal")
                && err.contains(&id)
                && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(blog.state()["serial"].as_u64().unwrap(), serial);
        assert!(blog.state()["moves"].is_null());

        // A point in time first (the origin's WAL after `at` is archived
        // on the way): exactly the notes committed before it, on both nodes.
        let first = blog.state()["resources"]["db.primary"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let started = Instant::now();
        let out = db(&mut blog, &["restore"], &[&id, "--to-time", &at]);
        assert!(
            out.status.success(),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        eprintln!(
            "measure: PITR restore into a new primary (1 replica) {:?}",
            started.elapsed()
        );
        assert_ne!(blog.state()["resources"]["db.primary"]["id"], first.as_str());
        assert_eq!(blog.psql("db.primary", sum).unwrap(), after_b, "PITR to {at}");
        eventually(
            "the replica holds the point in time",
            Duration::from_secs(60),
            async || blog.psql("db.replica[0]", sum).ok().filter(|s| *s == after_b),
        )
        .await;

        // Then the backup itself, whose machine is gone by now.
        let old = blog.state()["resources"]["db.primary"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let started = Instant::now();
        let out = db(&mut blog, &["restore"], &[&id]);
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        eprintln!("measure: restore into a new primary (1 replica) {took:?}");
        assert!(
            text(&out.stdout).contains(&format!("restore backup {id} into a new machine")),
            "{}",
            text(&out.stdout)
        );

        let after = blog.state();
        assert!(after["moves"].is_null(), "{}", after["moves"]);
        let new = after["resources"]["db.primary"]["id"].as_str().unwrap();
        assert_ne!(new, old, "a new machine is the primary");
        assert_eq!(
            blog.attr("slony.cluster", "origin"),
            blog.attr("db.primary.config", "node")
        );
        // The restored data: exactly the backup's snapshot, on both nodes.
        assert_eq!(blog.psql("db.primary", sum).unwrap(), snapshot);
        eventually(
            "the replica holds the backup's snapshot",
            Duration::from_secs(60),
            async || blog.psql("db.replica[0]", sum).ok().filter(|s| *s == snapshot),
        )
        .await;

        // The old machine is gone, and state names exactly the machines that exist.
        let registry: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(blog.machines.join("itlocal/machines.json")).unwrap(),
        )
        .unwrap();
        let existing: BTreeSet<String> = registry["machines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        // Machines (and the records on them) carry the local provider's ids.
        let named: BTreeSet<String> = after["resources"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|r| r["id"].as_str())
            .filter(|i| i.starts_with("local-"))
            .map(str::to_string)
            .collect();
        for gone in [&first, &old] {
            assert!(!existing.contains(gone), "the old primary {gone} still exists");
        }
        assert_eq!(named, existing, "state names exactly the machines that exist");

        // The app writes again, to the new origin, and the rows reach the replica.
        let note = post("after the restore").await;
        eventually(
            "a note written after the restore on the replica",
            Duration::from_secs(30),
            async || {
                blog.psql(
                    "db.replica[0]",
                    &format!("select count(*) from notes where id = {note}"),
                )
                .ok()
                .filter(|c| c == "1")
            },
        )
        .await;
        let password = blog.attr("db.primary.config", "password");
        assert!(!blog.printed.contains(&password), "the password was printed");
    });
}

/// socat terminating TLS in front of moto (pgBackRest speaks S3 over TLS
/// only, and moto's own TLS closes without close_notify, which it rejects).
struct TlsTerminator {
    port: u16,
    child: std::process::Child,
}

impl TlsTerminator {
    fn start(dir: &Path, plain: &str) -> TlsTerminator {
        let (cert, key) = (dir.join("s3.crt"), dir.join("s3.key"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", text(&made.stderr));
        let port = super::moto::free_port();
        let target = plain.trim_start_matches("http://");
        let child = std::process::Command::new("socat")
            .arg(format!(
                "openssl-listen:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,cert={},key={},verify=0",
                cert.display(),
                key.display()
            ))
            .arg(format!("tcp:{target},nodelay"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "socat did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        TlsTerminator { port, child }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn backups_to_s3_on_moto_behind_tls_and_a_missing_bucket() {
    let moto = super::moto::Moto::dedicated();
    let mut app = App::new("its3backup");
    let tls = TlsTerminator::start(&app.dir, &moto.endpoint);
    // Credentials from the AWS chain (here: the environment), long enough
    // that finding them in the output means they were printed.
    let secret = "its3backup-secret-0123456789abcdefghijklmnopqrstuv";
    app.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "AKIAITS3BACKUPTEST00".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ("APPGRID_BACKUP_INSECURE_TLS".into(), "1".into()),
    ];
    let bucket = "its3backup-bucket";
    app.write(Some(&format!(
        "to = \"s3://{bucket}/apps/its3backup\"\nendpoint = \"https://127.0.0.1:{}\"\n",
        tls.port
    )));
    app.ok(&["apply", "--yes"]);
    app.psql("CREATE TABLE ledger (id bigserial PRIMARY KEY, body text NOT NULL)");
    app.insert(2000, "a");
    let before = app.checksum();

    // The bucket does not exist yet: a clear error, nothing changed.
    let err = app.fails(&["db", "backup"]);
    assert!(
        err.contains(&format!("the S3 bucket {bucket} does not exist")),
        "{err}"
    );
    assert_eq!(app.checksum(), before);
    assert_eq!(
        app.psql("SHOW archive_mode"),
        "off",
        "the server was not touched"
    );

    // An endpoint nothing answers on: a clear error, nothing changed.
    let closed = super::moto::free_port();
    app.write(Some(&format!(
        "to = \"s3://{bucket}/apps/its3backup\"\nendpoint = \"https://127.0.0.1:{closed}\"\n"
    )));
    let started = Instant::now();
    let err = app.fails(&["db", "backup"]);
    assert!(
        err.contains(&format!(
            "the backup target s3://{bucket}/apps/its3backup cannot be reached"
        )),
        "{err}"
    );
    eprintln!(
        "measure: unreachable S3 endpoint reported after {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.psql("SHOW archive_mode"),
        "off",
        "the server was not touched"
    );
    app.write(Some(&format!(
        "to = \"s3://{bucket}/apps/its3backup\"\nendpoint = \"https://127.0.0.1:{}\"\n",
        tls.port
    )));

    let made = std::process::Command::new("curl")
        .args(["-sf", "-X", "PUT"])
        .arg(format!("{}/{bucket}", moto.endpoint))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "create bucket: {}",
        text(&made.stderr)
    );

    let started = Instant::now();
    let backup: serde_json::Value =
        serde_json::from_str(&app.ok(&["db", "backup", "--json"])).unwrap();
    eprintln!(
        "measure: first backup to S3 (moto behind socat) {:?}",
        started.elapsed()
    );
    let id = backup["id"].as_str().unwrap().to_string();
    let listed: serde_json::Value =
        serde_json::from_str(&app.ok(&["db", "backups", "--json"])).unwrap();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["checksum"], backup["checksum"]);

    app.insert(300, "b");
    assert_ne!(app.checksum(), before);
    app.ok(&["db", "restore", &id, "--in-place"]);
    assert_eq!(
        app.checksum(),
        before,
        "restored from S3: the backup's snapshot"
    );

    app.ok(&["destroy", "--yes"]);
    assert!(
        !app.printed.contains(secret),
        "the S3 secret key was printed"
    );
}
