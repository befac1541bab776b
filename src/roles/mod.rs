//! What each role renders and runs on its machines, through [`crate::remote`].
//!
//! Every role function takes the [`Templates`](crate::templates::Templates)
//! it renders with (the workspace's: embedded or the project's own) and the
//! [`Remote`](crate::remote::Remote) of the machine it acts on. The
//! [`configure::RoleConfigurator`] runs them for the walker (the
//! [`crate::apply::Configurator`] seam) and for day-two operations (the
//! [`crate::ops::Operations`] seam), over a [`fleet::Fleet`].
//!
//! Secrets (database and Slony-I passwords) are `secrecy::SecretString` in
//! memory: a `Debug` print shows `[REDACTED]`; they are exposed only where
//! they go into a 0600 file or state.

pub mod app;
pub mod backup;
pub mod configure;
mod configure_db;
mod configure_web;
pub mod console;
pub mod fleet;
pub mod fleet_local;
pub mod fleet_ssh;
pub mod haproxy;
pub mod memcached;
mod moves;
mod moves_restore;
mod operations;
mod operations_db;
mod operations_replicas;
pub mod postgres;
pub mod slony;
pub mod web_error;

use std::path::PathBuf;

use crate::graph::ResourceAddress;
use crate::remote::RemoteError;
use crate::templates::TemplateError;

pub use fleet::FleetError;
pub use web_error::{ReleaseFailure, Rollback, WebRoleError};

/// A role step that failed. Remote failures already name the host and the
/// step; the others name the node, the address or the value at fault. Every
/// text here has passed through the transport's redactor or never held a secret.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A web-tier role (app, HAProxy, memcached) failed.
    #[error(transparent)]
    Web(#[from] WebRoleError),
    /// A machine could not be reached.
    #[error(transparent)]
    Connect(#[from] FleetError),
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
    #[error("the TLS certificate {}: {detail}", path.display())]
    Certificate {
        path: std::path::PathBuf,
        detail: String,
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
    /// State lacks something this step needs (a machine, a configuration
    /// applied before this one).
    #[error("{address} is not in state{}", needed_by.map(|a| format!(" (needed by {a})")).unwrap_or_default())]
    NotInState {
        address: ResourceAddress,
        needed_by: Option<ResourceAddress>,
    },
    #[error("{address} has no {attribute} in state")]
    MissingAttribute {
        address: ResourceAddress,
        attribute: &'static str,
    },
    #[error("{machine} has no address in state yet")]
    NoAddress { machine: ResourceAddress },
    #[error("the manifest has no [{table}]")]
    ManifestLacks { table: &'static str },
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot archive the app at {}: {detail}", dir.display())]
    Archive { dir: PathBuf, detail: String },
    /// The address names no role appgrid knows how to run here (a bug in
    /// the caller: the graph never plans one).
    #[error("{address}: {expected}")]
    WrongAddress {
        address: ResourceAddress,
        expected: &'static str,
    },
    #[error("{address} is already the origin")]
    AlreadyOrigin { address: ResourceAddress },
    /// A migration refused before anything ran.
    #[error(transparent)]
    Migration(#[from] slony::MigrationError),
    /// A failover refused, or what it could not do.
    #[error(transparent)]
    Failover(#[from] slony::FailoverError),
    /// A restore onto a new primary failed (boxed: the two errors hold each other).
    #[error(transparent)]
    Restore(Box<backup::BackupError>),
}
