//! A move of `db.primary` when the app has no replica (`replicas = 0`, so no
//! Slony-I cluster to move through): `plan` warns, `apply` refuses before
//! anything changes (no machine launched, state as it was) and says how to
//! get there; with a replica added first the same change is an online move.

use super::local_e2e::Blog;

#[test]
fn moving_a_primary_without_replicas_is_refused_and_nothing_changes() {
    use super::cli::text;

    let _serial = super::roles_pg::serial();
    let mut blog = Blog::new("lonemove");
    blog.write(1, 0);
    blog.ok(&["apply", "--yes"]);
    let before = blog.state();
    let machines = std::fs::read_dir(blog.machines.join("itlocal/machines"))
        .unwrap()
        .count();

    let manifest = std::fs::read_to_string(&blog.manifest).unwrap();
    assert!(
        manifest.contains("instance_type = \"m5.large\""),
        "{manifest}"
    );
    std::fs::write(
        &blog.manifest,
        manifest.replacen(
            "instance_type = \"m5.large\"",
            "instance_type = \"m5.xlarge\"",
            1,
        ),
    )
    .unwrap();

    let out = blog.run(&["plan"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("~> db.primary"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("apply will refuse this plan: db.primary needs a new machine"),
        "{}",
        text(&out.stderr)
    );

    let out = blog.run(&["apply", "--yes"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("db.primary needs a new machine (m5.large → m5.xlarge")
            && err.contains("nothing was changed")
            && err.contains("set `replicas = 1` in [database] and apply"),
        "{err}"
    );
    let after = blog.state();
    assert_eq!(after["serial"], before["serial"]);
    assert_eq!(after["resources"], before["resources"]);
    assert!(after["moves"].is_null(), "{}", after["moves"]);
    assert_eq!(
        std::fs::read_dir(blog.machines.join("itlocal/machines"))
            .unwrap()
            .count(),
        machines,
        "a machine was launched"
    );
    assert_eq!(blog.psql("db.primary", "select 1").unwrap(), "1");
}
