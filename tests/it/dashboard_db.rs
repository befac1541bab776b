//! The panel's Database page with backups and its Logs page's service logs
//! (issue 14), on the local blog with a directory backup target: the list is
//! `db backups`' list, "Back up now" asks first, then runs `db backup`'s
//! function as a job streamed to the page and lands in the repository the
//! CLI lists; a machine's service log is the lines `appgrid logs FILE
//! MACHINE --service S` prints; no secret reaches any of it.

use std::time::{Duration, Instant};

use super::cdp::Browser;
use super::cli::{appgrid, text};
use super::dashboard::{Client, csrf_of, form, secrets, sse_until, start, through_job, unescape};
use super::local_e2e::{Blog, db};

/// The lines of the page's service log.
fn service_log(page: &str) -> String {
    let shown = page
        .split("<pre id=\"service-log\">")
        .nth(1)
        .and_then(|p| p.split("</pre>").next())
        .unwrap_or_else(|| panic!("no log: {page}"));
    unescape(shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_backs_up_and_shows_service_logs_on_the_local_blog() {
    let mut blog = Blog::new("dash-db");
    let mut manifest = std::fs::read_to_string(&blog.manifest).unwrap();
    manifest.push_str("[database.backup]\nto = \"backups\"\nkeep = 3\n");
    std::fs::write(&blog.manifest, &manifest).unwrap();
    blog.ok(&["apply", "--yes"]);
    let secrets = secrets(&blog.state());
    assert!(!secrets.is_empty());

    let panel = start(&blog.manifest, &blog.machines);
    let (client, _) = Client::sign_in(&panel).await;
    let mut bodies = Vec::new();

    // No backup yet: the page says so and offers "Back up now".
    let (status, page) = client.get("/database").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"no-backups\"") && page.contains("id=\"backup-now\""),
        "{page}"
    );
    let csrf = csrf_of(&page).unwrap();
    bodies.push(page);

    // Without a confirm, a question (nothing taken); without the CSRF token,
    // refused.
    let (status, page) = client
        .post("/database/backup", form(&[("csrf", &csrf)]), vec![])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"confirm\"") && page.contains("Take a full backup"),
        "{page}"
    );
    let (status, _) = client
        .post("/database/backup", form(&[("confirm", "yes")]), vec![])
        .await;
    assert_eq!(status, 403);
    let listed = db(&mut blog, &["backups"], &["--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout).trim(), "[]", "nothing taken yet");

    // Confirmed: a job, streamed, that ends with the backup taken.
    let (status, head, _) = client
        .post_with_head(
            "/database/backup",
            form(&[("csrf", &csrf), ("confirm", "yes")]),
            vec![],
        )
        .await;
    assert_eq!(status, 303, "{head}");
    let job = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or(l.strip_prefix("Location: "))
        })
        .unwrap_or_else(|| panic!("no job: {head}"))
        .trim()
        .to_string();
    assert!(job.starts_with("/jobs/"), "{job}");
    let started = Instant::now();
    let streamed = sse_until(
        &panel.addr,
        &format!("{job}/events"),
        &client.cookie,
        Duration::from_secs(300),
        |s| s.contains("event: done"),
    )
    .await;
    eprintln!(
        "panel: back up now took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(streamed.contains("event: done\ndata: ok"), "{streamed}");
    bodies.push(streamed.clone());

    // Where the CLI's backups are: `db backups` lists it, and so does the page.
    let listed = db(&mut blog, &["backups"], &["--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_str(&text(&listed.stdout)).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap();
    assert!(
        streamed.contains(&format!("Backup {id} of db.primary taken")),
        "{streamed}"
    );
    let (status, page) = client.get("/database").await;
    assert_eq!(status, 200, "{page}");
    let row = page
        .split(&format!("<tr data-backup=\"{id}\">"))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("{id} not listed: {page}"));
    assert!(
        row.starts_with(&format!("<td>{id}</td><td>full</td>")) && row.contains("MiB"),
        "{row}"
    );
    assert!(row.ends_with("<td>db.primary</td>"), "{row}");
    bodies.push(page);

    // Service logs: a failed statement lands in Postgres's log on the
    // primary; the panel shows it as `appgrid logs … --service postgres`
    // does, line for line (asked until two panel reads agree, as the log
    // may grow meanwhile).
    let marker = format!("dash-marker-{:08x}", fastrand::u32(..));
    let err = blog
        .psql("db.primary", &format!("select '{marker}'::int"))
        .unwrap_err();
    assert!(err.contains("invalid input syntax"), "{err}");
    let path = "/logs/service?machine=db.primary&service=postgres&lines=40";
    let mut agreed = false;
    for _ in 0..5 {
        let (status, first) = client.get(path).await;
        assert_eq!(status, 200, "{first}");
        let cli = appgrid()
            .args(["logs", "--service", "postgres", "-n", "40"])
            .arg(&blog.manifest)
            .arg("db.primary")
            .env("APPGRID_LOCAL_ROOT", &blog.machines)
            .output()
            .unwrap();
        assert!(cli.status.success(), "{}", text(&cli.stderr));
        let (_, again) = client.get(path).await;
        let shown = service_log(&first);
        assert!(shown.contains(&marker), "{shown}");
        assert!(
            shown
                .lines()
                .all(|l| l.starts_with("db.primary postgres | ")),
            "{shown}"
        );
        bodies.push(first);
        if shown == service_log(&again) {
            assert_eq!(shown, text(&cli.stdout));
            agreed = true;
            break;
        }
    }
    assert!(agreed, "the log kept changing");
    // slon's log is the other service on a database machine.
    let (status, page) = client
        .get("/logs/service?machine=db.replica%5B0%5D&service=slon")
        .await;
    assert_eq!(status, 200, "{page}");
    let shown = service_log(&page);
    assert!(
        shown.lines().count() > 0 && shown.lines().all(|l| l.starts_with("db.replica[0] slon-")),
        "{shown}"
    );
    bodies.push(page);
    let (status, page) = client
        .get("/logs/service?machine=cache%5B9%5D&service=memcached")
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("cache[9] is not a machine of this app"),
        "{page}"
    );

    drop(panel);

    // In a real browser: "Back up now", its confirmation, the job streamed
    // to its end, and the new backup listed.
    let panel = start(&blog.manifest, &blog.machines);
    let base = format!("http://{}", panel.addr);
    let login = format!("{base}{}", panel.login);
    let (dir, shots) = (blog.dir.join("browser"), blog.dir.join("screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&shots).unwrap();
    let shots2 = shots.clone();
    let (page, result) = tokio::task::spawn_blocking(move || {
        let mut b = Browser::start(&dir);
        b.navigate(&login);
        b.wait_for("the overview", "location.pathname === '/'", 10);
        b.navigate(&format!("{base}/database"));
        let (result, job) = through_job(&mut b, "#backup-now", &shots2, "backup", 300);
        assert!(job.to_string().contains("Backup "), "{job}");
        b.navigate(&format!("{base}/database"));
        b.screenshot(&shots2.join("backups.png"));
        let page = b.eval("document.documentElement.outerHTML");
        (page.as_str().unwrap_or_default().to_string(), result)
    })
    .await
    .unwrap();
    assert_eq!(result, "ok");
    assert_eq!(page.matches("<tr data-backup=").count(), 2, "{page}");
    bodies.push(page);
    for png in ["backup-confirm.png", "backup.png", "backups.png"] {
        let size = std::fs::metadata(shots.join(png)).map(|m| m.len());
        assert!(size.is_ok_and(|n| n > 1000), "{png}");
    }

    for body in &bodies {
        for s in &secrets {
            assert!(
                !body.contains(s.as_str()),
                "a secret reached a page:\n{body}"
            );
        }
    }
}

/// Sign in to a fresh panel for `manifest` (with this environment) and run
/// `sql` in the query box against `replica`: the answer's status and page.
pub(super) fn query_box(
    manifest: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
    replica: &str,
    sql: &str,
) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let panel = super::dashboard::start_with(manifest, env);
        let (client, _) = Client::sign_in(&panel).await;
        let (status, page) = client.get("/database").await;
        assert_eq!(status, 200, "{page}");
        let csrf = csrf_of(&page).unwrap();
        let asked = Instant::now();
        let answer = client
            .post(
                "/database/query",
                form(&[("csrf", &csrf), ("replica", replica), ("sql", sql)]),
                vec![],
            )
            .await;
        eprintln!(
            "panel: the query box answered in {:.2}s",
            asked.elapsed().as_secs_f64()
        );
        answer
    })
}
