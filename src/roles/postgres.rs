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

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tera::Context;

use super::RoleError;
use crate::remote::{Redactor, Remote};
use crate::templates;

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
#[derive(Clone, PartialEq, Eq)]
pub struct AppDatabase {
    pub name: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for AppDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppDatabase")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &"(sensitive)")
            .finish()
    }
}

impl AppDatabase {
    /// A new database with a freshly generated password, registered with
    /// `redactor` before anything can print it.
    pub fn generate(name: &str, user: &str, redactor: &Redactor) -> Self {
        let password = generate_password();
        redactor.add(&password);
        AppDatabase {
            name: name.to_string(),
            user: user.to_string(),
            password,
        }
    }
}

/// 32 alphanumeric characters from /dev/urandom (about 190 bits).
pub fn generate_password() -> String {
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
    out
}

/// `name` as a plain SQL identifier: lower-case letters, digits and `_`,
/// starting with a letter or `_`, at most 63 bytes, not `pg_…`. Such names
/// need no quoting anywhere (SQL, slonik, conninfo, shell).
pub fn check_identifier(what: &'static str, name: &str) -> Result<(), RoleError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RoleError::InvalidValue {
            what,
            value: name.to_string(),
            rule: "lower-case letters, digits and _, starting with a letter or _, at most 63 characters, not pg_…",
        })
    }
}

/// `s` as a postgresql.conf string literal.
pub fn pg_conf_quote(what: &'static str, s: &str) -> Result<String, RoleError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(RoleError::InvalidValue {
            what,
            value: s.to_string(),
            rule: "no control characters (newlines, tabs …)",
        });
    }
    Ok(format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")))
}

/// `s` as an SQL string literal (standard_conforming_strings is on).
fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A CIDR block, `address/prefix`, IPv4 or IPv6; returned normalised.
pub fn check_cidr(s: &str) -> Result<String, RoleError> {
    let bad = || RoleError::InvalidValue {
        what: "CIDR block",
        value: s.to_string(),
        rule: "an address and a prefix length, like 10.0.0.0/16",
    };
    let net: ipnet::IpNet = s.parse().map_err(|_| bad())?;
    Ok(net.to_string())
}

fn base_context(node: &PgNode) -> Context {
    let mut ctx = Context::new();
    ctx.insert("root", &node.root);
    ctx.insert("pg_bin", PG_BIN);
    ctx.insert("port", &node.port);
    ctx
}

/// Render postgresql.conf for `node`.
pub fn render_postgresql_conf(node: &PgNode) -> Result<String, RoleError> {
    let mut ctx = base_context(node);
    ctx.insert("listen", &pg_conf_quote("address", &node.addr.to_string())?);
    ctx.insert("socket_dir", &pg_conf_quote("root", &node.socket_dir())?);
    ctx.insert(
        "hba_file",
        &pg_conf_quote("root", &format!("{}/pg_hba.conf", node.etc_dir()))?,
    );
    ctx.insert("max_connections", &100);
    ctx.insert("fsync", &node.fsync);
    Ok(templates::render("postgres/postgresql.conf", &ctx)?)
}

/// Render pg_hba.conf: the app's users from `allow_from` (scram-sha-256), the
/// Slony-I user from this machine and from `db_peers`, the postgres superuser
/// over the socket only.
pub fn render_pg_hba(
    node: &PgNode,
    allow_from: &[String],
    db_peers: &[IpAddr],
) -> Result<String, RoleError> {
    let allow = allow_from
        .iter()
        .map(|c| check_cidr(c))
        .collect::<Result<Vec<_>, _>>()?;
    let peers: Vec<String> = db_peers
        .iter()
        .filter(|p| **p != node.addr)
        .map(|p| match p {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        })
        .collect();
    let mut ctx = base_context(node);
    ctx.insert("allow_from", &allow);
    ctx.insert("peers", &peers);
    ctx.insert("slony_user", SLONY_USER);
    ctx.insert("app_group", APP_GROUP);
    Ok(templates::render("postgres/pg_hba.conf", &ctx)?)
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
    remote: &R,
    node: &PgNode,
    allow_from: &[String],
    db_peers: &[IpAddr],
) -> Result<Vec<String>, RoleError> {
    let conf = render_postgresql_conf(node)?;
    let hba = render_pg_hba(node, allow_from, db_peers)?;
    let mut ctx = base_context(node);
    ctx.insert("fsync", &node.fsync);
    ctx.insert("postgresql_conf", conf.trim_end());
    ctx.insert("pg_hba", hba.trim_end());
    let script = templates::render("postgres/install.sh", &ctx)?;
    let out = remote
        .run(
            &format!("postgres: ensure server {}", node.endpoint()),
            &script,
        )
        .await?;
    Ok(changes(&out.stdout))
}

/// Stop the server (fast shutdown: clients are disconnected).
pub async fn stop_server<R: Remote>(remote: &R, node: &PgNode) -> Result<(), RoleError> {
    let script = templates::render("postgres/stop.sh", &base_context(node))?;
    remote
        .run(&format!("postgres: stop {}", node.endpoint()), &script)
        .await?;
    Ok(())
}

/// Run one SQL statement in `db` as the postgres superuser; the rows, each
/// split into its fields. Never pass a secret here: `sql` is a script value.
pub async fn query<R: Remote>(
    remote: &R,
    node: &PgNode,
    db: &str,
    sql: &str,
) -> Result<Vec<Vec<String>>, RoleError> {
    check_identifier("database name", db)?;
    let mut ctx = base_context(node);
    ctx.insert("db", db);
    ctx.insert("sql", sql);
    let script = templates::render("postgres/psql.sh", &ctx)?;
    let out = remote
        .run(&format!("postgres: query on {}", node.endpoint()), &script)
        .await?;
    Ok(out
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect())
}

/// Run `sql` (which may hold a secret) in `db` as the postgres superuser: it
/// is put in a 0600 file read by psql and deleted right after.
pub(crate) async fn run_secret_sql<R: Remote>(
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
    let script = templates::render("postgres/sql-file.sh", &ctx)?;
    remote.run(step, &script).await?;
    Ok(())
}

/// Ensure a login role with `password` (and, for the app, its database).
pub(crate) async fn ensure_login_role<R: Remote>(
    remote: &R,
    node: &PgNode,
    user: &str,
    password: &str,
    superuser: bool,
    database: Option<&str>,
) -> Result<(), RoleError> {
    check_identifier("role name", user)?;
    if let Some(db) = database {
        check_identifier("database name", db)?;
    }
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
    let sql = templates::render("postgres/login-role.sql", &ctx)?;
    run_secret_sql(
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
    remote: &R,
    node: &PgNode,
    db: &AppDatabase,
) -> Result<(), RoleError> {
    ensure_login_role(remote, node, &db.user, &db.password, false, Some(&db.name)).await
}

/// Put a 0600 `.pgpass` owned by postgres on the node: `*:*:*:USER:PASSWORD`.
pub(crate) async fn put_pgpass<R: Remote>(
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
    let script = templates::render("postgres/secure-file.sh", &ctx)?;
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

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn identifiers_and_cidrs_are_checked() {
        assert!(check_identifier("database name", "blog_1").is_ok());
        for bad in ["", "Blog", "1x", "a-b", "a;b", "pg_x", "a\"b"] {
            assert!(check_identifier("database name", bad).is_err(), "{bad}");
        }
        assert_eq!(check_cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(check_cidr("::1/128").unwrap(), "::1/128");
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/1", "10.0.0.0/8 trust"] {
            assert!(check_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_values_are_quoted_and_the_app_group_is_admitted_from_allow_from() {
        let node = PgNode::new("/r/it's", "127.0.9.1".parse().unwrap(), 5432);
        let conf = render_postgresql_conf(&node).unwrap();
        assert!(conf.contains("listen_addresses = '127.0.9.1'"), "{conf}");
        assert!(
            conf.contains("unix_socket_directories = '/r/it''s/run/appgrid/postgres'"),
            "{conf}"
        );
        assert!(!conf.contains("fsync = off"), "{conf}");
        let hba = render_pg_hba(
            &node,
            &["10.1.0.0/16".to_string()],
            &["127.0.9.1".parse().unwrap(), "127.0.9.2".parse().unwrap()],
        )
        .unwrap();
        assert!(
            hba.contains("host    all   +appgrid_app   10.1.0.0/16   scram-sha-256"),
            "{hba}"
        );
        assert!(
            hba.contains("host    all   appgrid_slony   127.0.9.2/32   scram-sha-256"),
            "{hba}"
        );
        assert!(!hba.contains("127.0.9.1/32"), "{hba}");
        assert!(render_pg_hba(&node, &["0.0.0.0/0 trust".to_string()], &[]).is_err());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let r = Redactor::new();
        let db = AppDatabase::generate("blog", "blog", &r);
        assert!(!format!("{db:?}").contains(&db.password));
        assert_eq!(r.redact(&db.password), "(sensitive)");
    }
}
