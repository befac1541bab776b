//! Integration tests: one binary (each file under tests/ would link the whole SDK).
//!
//! The harness may use `unsafe` (libc::kill on test processes, pre_exec to
//! put a child in its own session); the library and the binary may not.
#![allow(unsafe_code)]

mod apply_moto;
mod autoscale_compare;
mod autoscale_e2e;
mod aws_provider;
mod backup;
mod cdp;
mod cli;
mod console;
mod dashboard;
mod dashboard_db;
mod failover;
mod farm;
mod fault_trials;
mod faultproxy;
mod faults;
mod fleet;
mod hosts_e2e;
mod http;
mod kill_configure;
mod lb_day2;
mod lease;
mod local_cycles;
mod local_e2e;
mod lone_move;
mod manifest_fuzz;
mod migrate;
mod moto;
mod moves;
mod preflight;
mod queue_time;
mod releases;
mod replicas_autoscale;
mod roles_pg;
mod roles_web;
mod s3_state;
mod ssh_transport;
mod ux;
