//! The control panel's pure parts (issue 14): sessions and CSRF tokens
//! ([`auth`]), the autoscaling chart ([`autoscaling`]), where it may listen ([`listen`]), the overview's SVG graph
//! ([`overview`]), the read-only query check ([`query`]) and the pages
//! ([`pages`]). The server itself (`appgrid dashboard`) sits in the binary
//! beside the CLI and runs every action through the functions the CLI runs.

pub mod auth;
pub mod autoscaling;
pub mod listen;
pub mod overview;
pub mod pages;
pub mod query;
