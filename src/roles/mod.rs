//! What each role renders and runs on its machines, through [`crate::remote`].

pub mod app;
pub mod configure;
pub mod fleet_local;
pub mod fleet_ssh;
pub mod haproxy;
pub mod memcached;
pub mod web_error;
