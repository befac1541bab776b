//! What a console runs on a machine (`appgrid run`, `ssh`, `db psql`): the
//! script, rendered from a template (every value shell-quoted), handed to the
//! transport's [`crate::remote::Remote::console`].

use secrecy::ExposeSecret;
use tera::Context;

use super::RoleError;
use super::configure::{Fleet, RoleConfigurator, secret_attribute};
use super::fleet::Connected;
use super::web_error::check_root;
use crate::graph::{ResourceAddress, Role};
use crate::ops::Resources;
use crate::remote::Remote;
use crate::remote::console::Console;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleWhat {
    /// `argv` on a web server, in its current release with the app's env, as
    /// the app's user (`templates/console/app.sh`).
    App { argv: Vec<String> },
    /// A login shell (or `argv`) in the machine's directory
    /// (`templates/console/shell.sh`).
    Shell { argv: Vec<String> },
    /// psql as the app's user to the database on this machine, the password
    /// in the child's environment only (`templates/console/psql.sh`).
    Psql { argv: Vec<String> },
}

impl ConsoleWhat {
    pub fn operation(&self) -> &'static str {
        match self {
            ConsoleWhat::App { .. } => "run",
            ConsoleWhat::Shell { .. } => "ssh",
            ConsoleWhat::Psql { .. } => "db psql",
        }
    }
}

/// The exit status `templates/console/app.sh` uses when no release runs on
/// the machine (it says so on stderr).
pub const NO_RELEASE_EXIT: i32 = 125;

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn open_console(
        &self,
        resources: &Resources,
        machine: ResourceAddress,
        what: &ConsoleWhat,
        tty: bool,
    ) -> Result<Console, RoleError> {
        let Connected { remote, place, .. } = self.connect_to(resources, machine).await?;
        check_root(remote.host(), &place.root)?;
        let mut ctx = Context::new();
        ctx.insert("root", &place.root);
        let template = match what {
            ConsoleWhat::App { argv } => {
                ctx.insert("argv", argv);
                "console/app.sh"
            }
            ConsoleWhat::Shell { argv } => {
                ctx.insert("argv", argv);
                "console/shell.sh"
            }
            ConsoleWhat::Psql { argv } => {
                let config = ResourceAddress::config(Role::DbPrimary, 0);
                let primary = resources.get(&config).ok_or(RoleError::NotInState {
                    address: config,
                    needed_by: None,
                })?;
                let password = secret_attribute(primary, config, "password")?;
                let name = &self.manifest.app.name;
                let user = primary.attributes.get("user").unwrap_or(name);
                let database = primary.attributes.get("database").unwrap_or(name);
                let port = self.manifest.database.as_ref().map_or(5432, |d| d.port);
                ctx.insert("argv", argv);
                ctx.insert("user", user);
                ctx.insert("database", database);
                ctx.insert("port", &port);
                ctx.insert("password", password.expose_secret());
                ctx.insert("pg_bin", super::postgres::PG_BIN);
                "console/psql.sh"
            }
        };
        let script = self.templates.render(template, &ctx)?;
        Ok(remote.console(&script, tty).await?)
    }
}

/// Which logs to read on one machine and from where (`appgrid logs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub machine: ResourceAddress,
    /// File names under `var/log/appgrid` starting with one of these
    /// (`app.`, `haproxy.`, `postgres.`, `slon-`, `memcached.`).
    pub prefixes: Vec<&'static str>,
    /// The last lines of each file (when there is no offset for it).
    pub lines: usize,
    /// `-f`: what was written after these offsets (file name → byte); a file
    /// not listed is read from its start.
    pub offsets: Option<std::collections::BTreeMap<String, u64>>,
}

/// A piece of one log file (redacted by the transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub name: String,
    pub text: String,
    /// The file's size when read: the offset `-f` reads on from.
    pub end: u64,
    /// Its modification time (epoch seconds).
    pub modified: i64,
}

/// The log files a machine's roles write, by its address: the app on web
/// servers, HAProxy on the load balancer, Postgres and slon on database
/// machines, memcached on caches.
pub fn log_prefixes(machine: ResourceAddress) -> Option<Vec<&'static str>> {
    match machine {
        ResourceAddress::Instance { role, .. } => Some(match role {
            Role::Web => vec!["app."],
            Role::Lb => vec!["haproxy."],
            Role::DbPrimary | Role::DbReplica => vec!["postgres.", "slon-"],
            Role::Cache => vec!["memcached."],
        }),
        _ => None,
    }
}

/// Split `logs.sh`'s output into files.
fn parse_logs(host: &str, marker: &str, stdout: &str) -> Result<Vec<LogFile>, RoleError> {
    let mut files: Vec<LogFile> = Vec::new();
    let unexpected = |line: &str| RoleError::UnexpectedAnswer {
        host: host.to_string(),
        what: "reading logs".to_string(),
        answer: line.to_string(),
    };
    for line in stdout.split_inclusive('\n') {
        if let Some(head) = line
            .strip_prefix(marker)
            .and_then(|l| l.strip_prefix(" file="))
        {
            let mut words = head.trim_end().split(' ');
            let name = words.next().unwrap_or_default().to_string();
            let mut field = |key: &str| {
                words
                    .next()
                    .and_then(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| unexpected(line))
            };
            let end = u64::try_from(field("size=")?).map_err(|_| unexpected(line))?;
            let modified = field("mtime=")?;
            files.push(LogFile {
                name,
                text: String::new(),
                end,
                modified,
            });
        } else if let Some(file) = files.last_mut() {
            file.text.push_str(line);
        } else {
            return Err(unexpected(line));
        }
    }
    Ok(files)
}

impl<F: Fleet> RoleConfigurator<F> {
    pub(super) async fn read_logs(
        &self,
        resources: &Resources,
        request: &LogRequest,
    ) -> Result<Vec<LogFile>, RoleError> {
        let Connected { remote, place, .. } = self.connect_to(resources, request.machine).await?;
        check_root(remote.host(), &place.root)?;
        let marker = format!("@@appgrid-log-{}", uuid::Uuid::new_v4().simple());
        let mut ctx = Context::new();
        ctx.insert("root", &place.root);
        ctx.insert("marker", &marker);
        ctx.insert("prefixes", &request.prefixes);
        ctx.insert("lines", &request.lines);
        let offsets: Vec<(String, String)> = request
            .offsets
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        ctx.insert("offsets", &offsets);
        ctx.insert("follow", &request.offsets.is_some());
        let script = self.templates.render("console/logs.sh", &ctx)?;
        let out = remote.run("reading logs", &script).await?;
        parse_logs(remote.host(), &marker, &out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_output_splits_into_files_and_a_stray_line_is_an_error() {
        let out = "@@m file=postgres.log size=120 mtime=1700000000\nline 1\nline 2\n\
                   @@m file=slon-blog.log size=7 mtime=1700000001\n@@other file=x is text\n";
        let files = parse_logs("h", "@@m", out).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].name, "postgres.log");
        assert_eq!(files[0].text, "line 1\nline 2\n");
        assert_eq!((files[0].end, files[0].modified), (120, 1_700_000_000));
        assert_eq!(files[1].text, "@@other file=x is text\n");
        assert!(parse_logs("h", "@@m", "before any file\n").is_err());
        assert!(parse_logs("h", "@@m", "@@m file=a.log size=x mtime=1\n").is_err());
    }

    #[test]
    fn each_machine_role_has_its_logs_and_configurations_none() {
        assert_eq!(
            log_prefixes(ResourceAddress::instance(Role::DbReplica, 1)),
            Some(vec!["postgres.", "slon-"])
        );
        assert_eq!(
            log_prefixes(ResourceAddress::instance(Role::Lb, 0)),
            Some(vec!["haproxy."])
        );
        assert_eq!(log_prefixes(ResourceAddress::config(Role::Web, 0)), None);
    }
}
