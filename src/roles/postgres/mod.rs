//! The Postgres primary (and the server under every Slony-I replica).
//!
//! Layout on a machine (ROOT "" on a real host, a directory under the `local`
//! provider): data in `$ROOT/var/lib/appgrid/postgres`, configuration and the
//! 0600 `.pgpass` in `$ROOT/etc/appgrid/postgres`, the socket in
//! `$ROOT/run/appgrid/postgres`, the log in `$ROOT/var/log/appgrid/postgres.log`.
//! The server runs as the `postgres` OS user under the service supervisor
//! (`templates/lib/service.sh`), bound to the node's own address only.
//!
//! Secrets: a password reaches the machine only inside a 0600 file written with
//! [`Remote::put`] (never in a command line, a script, a log or an error) and
//! the SQL file that carries it is deleted as soon as psql has read it. The
//! caller registers every password with the transport's
//! [`Redactor`](crate::remote::Redactor) (see [`AppDatabase::generate`]).

pub(crate) mod config;

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tera::Context;

use super::RoleError;
use crate::remote::{Redactor, Remote};
use crate::templates::Templates;

use config::{base_context, sql_literal};
pub use config::{
    check_cidr, check_identifier, pg_conf_quote, render_pg_hba, render_postgresql_conf,
};

/// Where the Postgres 15 programs live (Debian's postgresql-15 package).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser Slony-I connects as between database nodes.
pub const SLONY_USER: &str = "appgrid_slony";
/// The role every app user is a member of; pg_hba admits it from `allow_from`.
pub const APP_GROUP: &str = "appgrid_app";

/// One Postgres server: its machine's root prefix, the address it listens on
/// (and nothing else), and its port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgNode {
    pub root: String,
    pub addr: IpAddr,
    pub port: u16,
    /// `false` only in tests: fsync, synchronous_commit and full_page_writes off.
    pub fsync: bool,
}

impl PgNode {
    pub fn new(root: impl Into<String>, addr: IpAddr, port: u16) -> Self {
        PgNode {
            root: root.into(),
            addr,
            port,
            fsync: true,
        }
    }

    /// Trade durability for speed (tests only).
    pub fn without_fsync(mut self) -> Self {
        self.fsync = false;
        self
    }

    pub fn data_dir(&self) -> String {
        format!("{}/var/lib/appgrid/postgres", self.root)
    }
    pub fn etc_dir(&self) -> String {
        format!("{}/etc/appgrid/postgres", self.root)
    }
    pub fn socket_dir(&self) -> String {
        format!("{}/run/appgrid/postgres", self.root)
    }
    pub fn pgpass_path(&self) -> String {
        format!("{}/.pgpass", self.etc_dir())
    }
    pub fn log_path(&self) -> String {
        format!("{}/var/log/appgrid/postgres.log", self.root)
    }
    /// `ADDR:PORT` (IPv6 in brackets), for messages.
    pub fn endpoint(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }
}

/// The app's database and the role that owns it.
#[derive(Debug, Clone)]
pub struct AppDatabase {
    pub name: String,
    pub user: String,
    pub password: SecretString,
}

impl AppDatabase {
    /// A new database with a freshly generated password, registered with
    /// `redactor` before anything can print it.
    pub fn generate(name: &str, user: &str, redactor: &Redactor) -> Self {
        let password = generate_password();
        redactor.add(password.expose_secret());
        AppDatabase {
            name: name.to_string(),
            user: user.to_string(),
            password,
        }
    }
}

/// 32 alphanumeric characters from /dev/urandom (about 190 bits).
pub fn generate_password() -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut urandom = std::fs::File::open("/dev/urandom").expect("/dev/urandom is readable");
    let mut out = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while out.len() < 32 {
        std::io::Read::read_exact(&mut urandom, &mut buf).expect("/dev/urandom is readable");
        // 248 = 4 × 62: rejecting bytes above it keeps every character equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() < 32 {
                out.push(ALPHABET[(*b % 62) as usize] as char);
            }
        }
    }
    SecretString::from(out)
}

fn changes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("appgrid-changed: "))
        .map(str::to_string)
        .collect()
}

/// Ensure the server: initdb when there is no cluster, postgresql.conf and
/// pg_hba.conf in place (a changed postgresql.conf restarts the server, a
/// changed pg_hba.conf reloads it), running, accepting connections.
/// `allow_from`: CIDR blocks the app's users may connect from; `db_peers`:
/// the other database nodes (Slony-I). Returns what changed — empty when
/// nothing did, so a second run is a no-op.
pub async fn ensure_server<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    allow_from: &[String],
    db_peers: &[IpAddr],
) -> Result<Vec<String>, RoleError> {
    let conf = render_postgresql_conf(t, node)?;
    let hba = render_pg_hba(t, node, allow_from, db_peers)?;
    let mut ctx = base_context(node);
    ctx.insert("fsync", &node.fsync);
    ctx.insert("postgresql_conf", conf.trim_end());
    ctx.insert("pg_hba", hba.trim_end());
    let script = t.render("postgres/install.sh", &ctx)?;
    let out = remote
        .run(
            &format!("postgres: ensure server {}", node.endpoint()),
            &script,
        )
        .await?;
    Ok(changes(&out.stdout))
}

/// Stop the server (fast shutdown: clients are disconnected).
pub async fn stop_server<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
) -> Result<(), RoleError> {
    let script = t.render("postgres/stop.sh", &base_context(node))?;
    remote
        .run(&format!("postgres: stop {}", node.endpoint()), &script)
        .await?;
    Ok(())
}

/// Run one SQL statement in `db` as the postgres superuser; the rows, each
/// split into its fields. Never pass a secret here: `sql` is a script value.
pub async fn query<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    db: &str,
    sql: &str,
) -> Result<Vec<Vec<String>>, RoleError> {
    check_identifier("database name", db)?;
    let mut ctx = base_context(node);
    ctx.insert("db", db);
    ctx.insert("sql", sql);
    let script = t.render("postgres/psql.sh", &ctx)?;
    let out = remote
        .run(&format!("postgres: query on {}", node.endpoint()), &script)
        .await?;
    Ok(parse_rows(&out.stdout))
}

/// psql's unaligned, tuples-only output (`-A -t`, `|` between fields): a row
/// per non-empty line, split into its fields.
pub fn parse_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// Run `sql` (which may hold a secret) in `db` as the postgres superuser: it
/// is put in a 0600 file read by psql and deleted right after.
pub(crate) async fn run_secret_sql<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    db: &str,
    step: &str,
    sql: &str,
) -> Result<(), RoleError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let file = format!(
        "{}/.appgrid-{}-{nanos}.sql",
        node.etc_dir(),
        std::process::id()
    );
    remote.put(&file, sql.as_bytes(), 0o600).await?;
    let mut ctx = base_context(node);
    ctx.insert("db", db);
    ctx.insert("sql_file", &file);
    let script = t.render("postgres/sql-file.sh", &ctx)?;
    remote.run(step, &script).await?;
    Ok(())
}

/// Ensure a login role with `password` (and, for the app, its database).
pub(crate) async fn ensure_login_role<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    user: &str,
    password: &SecretString,
    superuser: bool,
    database: Option<&str>,
) -> Result<(), RoleError> {
    check_identifier("role name", user)?;
    if let Some(db) = database {
        check_identifier("database name", db)?;
    }
    let password = password.expose_secret();
    if password.len() < 16 || password.chars().any(|c| c.is_control()) {
        return Err(RoleError::InvalidValue {
            what: "password",
            value: "(sensitive)".to_string(),
            rule: "at least 16 characters, no control characters (use generate_password)",
        });
    }
    let mut ctx = Context::new();
    ctx.insert("group", APP_GROUP);
    ctx.insert("user", user);
    ctx.insert("password", &sql_literal(password));
    ctx.insert("superuser", &superuser);
    ctx.insert("member_of_group", &!superuser);
    ctx.insert("database", &database.unwrap_or(""));
    let sql = t.render("postgres/login-role.sql", &ctx)?;
    run_secret_sql(
        t,
        remote,
        node,
        "postgres",
        &format!("postgres: ensure role {user} on {}", node.endpoint()),
        &sql,
    )
    .await
}

/// Ensure the app's role (with its password, a member of [`APP_GROUP`] so
/// pg_hba admits it) and its database, owned by it. Idempotent; the password
/// is (re)set every time.
pub async fn ensure_app_database<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    db: &AppDatabase,
) -> Result<(), RoleError> {
    ensure_login_role(
        t,
        remote,
        node,
        &db.user,
        &db.password,
        false,
        Some(&db.name),
    )
    .await
}

/// Put a 0600 `.pgpass` owned by postgres on the node: `*:*:*:USER:PASSWORD`.
pub(crate) async fn put_pgpass<R: Remote>(
    t: &Templates,
    remote: &R,
    node: &PgNode,
    user: &str,
    password: &str,
) -> Result<(), RoleError> {
    if password.contains([':', '\\', '\n']) {
        return Err(RoleError::InvalidValue {
            what: "password",
            value: "(sensitive)".to_string(),
            rule: "no `:`, `\\` or newline in a .pgpass password",
        });
    }
    let path = node.pgpass_path();
    remote
        .put(
            &path,
            format!("*:*:*:{user}:{password}\n").as_bytes(),
            0o600,
        )
        .await?;
    let mut ctx = Context::new();
    ctx.insert("file", &path);
    let script = t.render("postgres/secure-file.sh", &ctx)?;
    remote
        .run(
            &format!("postgres: .pgpass on {}", node.endpoint()),
            &script,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = generate_password();
        let b = generate_password();
        let (a, b) = (a.expose_secret(), b.expose_secret());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let r = Redactor::new();
        let db = AppDatabase::generate("blog", "blog", &r);
        assert!(!format!("{db:?}").contains(db.password.expose_secret()));
        assert_eq!(r.redact(db.password.expose_secret()), "(sensitive)");
    }

    #[test]
    fn psql_rows_are_split_on_bars() {
        assert_eq!(
            parse_rows("1|a|\n\nx\n"),
            vec![
                vec!["1".to_string(), "a".into(), "".into()],
                vec!["x".into()]
            ]
        );
    }

    proptest! {
        /// Whatever psql prints, splitting it into rows never panics (issue 10).
        #[test]
        fn psql_output_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let rows = parse_rows(&text);
            prop_assert!(rows.iter().all(|r| !r.is_empty()));
        }
    }
}
