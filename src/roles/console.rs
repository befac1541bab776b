//! What a console runs on a machine (`appgrid run`, `ssh`, `db psql`): the
//! script, rendered from a template (every value shell-quoted), handed to the
//! transport's [`crate::remote::Remote::console`].

use secrecy::ExposeSecret;
use tera::Context;

use super::RoleError;
use super::configure::{Fleet, RoleConfigurator, machine_addr, secret_attribute};
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
    /// the app's user (`templates/app/console.sh`).
    App { argv: Vec<String> },
    /// A login shell (or `argv`) in the machine's directory
    /// (`templates/lib/console-shell.sh`).
    Shell { argv: Vec<String> },
    /// psql as the app's user to the database on this machine, the password
    /// in the child's environment only (`templates/postgres/console.sh`).
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

/// The exit status `templates/app/console.sh` uses when no release runs on
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
                "app/console.sh"
            }
            ConsoleWhat::Shell { argv } => {
                ctx.insert("argv", argv);
                "lib/console-shell.sh"
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
                ctx.insert("addr", &machine_addr(resources, machine)?);
                ctx.insert("password", password.expose_secret());
                ctx.insert("pg_bin", super::postgres::PG_BIN);
                "postgres/console.sh"
            }
        };
        let script = self.templates.render(template, &ctx)?;
        Ok(remote.console(&script, tty).await?)
    }
}
