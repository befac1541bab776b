//! Slony-I read replicas: one set (id 1) holding every table and sequence of
//! the app schema, replicated from the origin to every other node; one `slon`
//! per node (origin included) run as postgres under the service supervisor.
//!
//! slonik scripts are rendered from `templates/slony/*.slonik` (every value in
//! them is a number, an address or a checked identifier) and fed to slonik on
//! standard input on the origin's machine. Connections between nodes use the
//! [`SLONY_USER`] superuser whose password lives only in each node's 0600
//! `.pgpass` — never in a conninfo string, a script or a log.
//!
//! slonik's exit status is not trusted to mean "replicating" (a subscriber
//! missing a table makes slonik succeed while slon retries forever): every
//! change is followed by polling `_CLUSTER.sl_status` / `sl_subscribe` with a
//! bounded timeout, and a timeout reports the end of the node's slon log.
//!
//! Files, by concept: [`slonik`] (rendering and running slonik, SQL helpers),
//! [`slon`] (the daemons: credentials, start, stop, log), [`membership`]
//! (init, add and drop nodes), [`sync`] (status, waiting for catch-up) and
//! [`script`] (DDL through EXECUTE SCRIPT, MOVE SET).

mod membership;
mod origin;
mod providers;
mod script;
mod slon;
mod slonik;
mod sync;

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;

use super::RoleError;
use super::postgres::{PgNode, SLONY_USER, check_identifier};

pub use membership::{add_subscriber, drop_subscriber, init};
pub use origin::set_origin;
pub use providers::resubscribe_from_origin;
pub use script::{execute_script, move_set};
pub use slon::{ensure_credentials, ensure_slon, stop_slon};
pub use sync::{NodeStatus, parse_status_rows, status, wait_caught_up, wait_in_sync};

/// The one replication set appgrid manages.
pub const SET_ID: u32 = 1;
/// slonik and slon (Debian's slony1-2-bin).
pub const SLONIK: &str = "/usr/bin/slonik";
pub const SLON: &str = "/usr/bin/slon";

/// A database node of the cluster (Slony-I node ids start at 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlonyNode {
    pub id: u32,
    pub node: PgNode,
}

/// A Slony-I cluster replicating one database's app schema.
#[derive(Debug, Clone)]
pub struct SlonyCluster {
    /// The cluster name (its schema is `_NAME`); a plain identifier.
    pub name: String,
    /// The replicated database.
    pub database: String,
    /// The app schema whose tables and sequences make the set (`public`).
    pub schema: String,
    /// The [`SLONY_USER`]'s password: keep it in state, register it with the
    /// transports' redactor.
    pub password: SecretString,
    pub nodes: Vec<SlonyNode>,
    pub origin: u32,
    /// Bound for every wait (catch-up, event confirmation).
    pub timeout: Duration,
}

impl SlonyCluster {
    /// A cluster of one node (the origin) for `database`'s `public` schema.
    pub fn new(name: &str, database: &str, origin: SlonyNode, password: SecretString) -> Self {
        SlonyCluster {
            name: name.to_string(),
            database: database.to_string(),
            schema: "public".to_string(),
            password,
            origin: origin.id,
            nodes: vec![origin],
            timeout: Duration::from_secs(120),
        }
    }

    pub fn node(&self, id: u32) -> Result<&SlonyNode, RoleError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(RoleError::UnknownNode {
                cluster: self.name.clone(),
                node: id,
            })
    }

    fn origin_node(&self) -> Result<&SlonyNode, RoleError> {
        self.node(self.origin)
    }

    /// The cluster's schema, quoted for SQL: `"_name"`.
    fn schema_sql(&self) -> String {
        format!("\"_{}\"", self.name)
    }

    /// The name of every node's slon service under the supervisor.
    pub fn service(&self) -> String {
        format!("slon-{}", self.name)
    }

    fn check(&self) -> Result<(), RoleError> {
        check_identifier("slony cluster name", &self.name)?;
        check_identifier("database name", &self.database)?;
        check_identifier("schema name", &self.schema)
    }
}

/// The transports to the cluster's machines, by node id.
pub type Remotes<'a, R> = BTreeMap<u32, &'a R>;

fn remote_of<'a, R>(remotes: &Remotes<'a, R>, id: u32) -> Result<&'a R, RoleError> {
    remotes
        .get(&id)
        .copied()
        .ok_or(RoleError::MissingRemote { node: id })
}

/// How slon, slonik and other nodes reach `node`: no password (it is in .pgpass).
fn conninfo(cluster: &SlonyCluster, node: &PgNode) -> String {
    format!(
        "dbname={} host={} port={} user={SLONY_USER} connect_timeout=10",
        cluster.database, node.addr, node.port
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_password_is_not_in_debug_output() {
        let node = SlonyNode {
            id: 1,
            node: PgNode::new("", "127.0.0.1".parse().unwrap(), 5432),
        };
        let c = SlonyCluster::new(
            "blog",
            "blog",
            node,
            SecretString::from("s3cret-pw-s3cret-pw"),
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains(c.password.expose_secret()), "{shown}");
        assert!(shown.contains("origin: 1"), "{shown}");
        assert!(!conninfo(&c, &c.nodes[0].node).contains("s3cret"));
    }
}
