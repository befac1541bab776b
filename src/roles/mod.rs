//! What each role renders and runs on its machines, through [`crate::remote`].

pub mod app;
pub mod configure;
mod configure_db;
pub mod fleet_local;
pub mod fleet_ssh;
pub mod haproxy;
pub mod memcached;
mod operations;
pub mod postgres;
pub mod slony;
pub mod web_error;

use crate::remote::RemoteError;
use crate::templates::TemplateError;

/// A role step that failed. Remote failures already name the host and the
/// step; the others name the node or the value at fault. Every text here has
/// passed through the transport's redactor or never held a secret.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "table {table} has no primary key: Slony-I replicates only tables with one; add one (ALTER TABLE … ADD PRIMARY KEY …)"
    )]
    TableWithoutPrimaryKey { table: String },
    #[error("{what} {value:?} is not allowed: {rule}")]
    InvalidValue {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("on {host}, {what}: unexpected answer {answer:?}")]
    UnexpectedAnswer {
        host: String,
        what: String,
        answer: String,
    },
    #[error("slony cluster {cluster} has no node {node}")]
    UnknownNode { cluster: String, node: u32 },
    #[error("no remote given for slony node {node}")]
    MissingRemote { node: u32 },
    #[error("slony node {node} is the origin of cluster {cluster}: move the set away first")]
    NodeIsOrigin { cluster: String, node: u32 },
    #[error(
        "slony node {node} ({host}) did not {what} within {waited_s} s (last seen: {last}); the end of its slon log:\n{slon_log}"
    )]
    Timeout {
        node: u32,
        host: String,
        what: &'static str,
        waited_s: u64,
        last: String,
        slon_log: String,
    },
}
