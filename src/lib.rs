//! appgrid: an app manifest becomes a dependency graph of machines, a plan of
//! what would change, and an apply that converges the cloud to it.
//!
//! The pure core — [`manifest`], [`graph`], [`plan`] — takes data and returns
//! data. Side effects live at the edge: [`cloud`] (the provider trait),
//! [`state`] (the state file and its lock) and [`apply`] (the walker).

pub mod apply;
pub mod autoscale;
pub mod cloud;
pub mod durable;
pub mod endpoint;
pub mod engine;
pub mod graph;
pub mod hash;
pub mod log_merge;
pub mod maintenance;
pub mod manifest;
pub mod ops;
pub mod plan;
pub mod preflight;
pub mod release;
pub mod remote;
pub mod requirements;
pub mod retry;
pub mod roles;
pub mod state;
pub mod status;
pub mod templates;

#[cfg(test)]
mod fixtures;
