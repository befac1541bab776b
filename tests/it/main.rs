//! Integration tests: one binary (each file under tests/ would link the whole SDK).

mod apply_moto;
mod autoscale_e2e;
mod aws_provider;
mod cli;
mod farm;
mod fault_trials;
mod faultproxy;
mod faults;
mod hosts_e2e;
mod http;
mod kill_configure;
mod lease;
mod local_cycles;
mod local_e2e;
mod manifest_fuzz;
mod moto;
mod preflight;
mod s3_state;
mod roles_pg;
mod roles_web;
mod ssh_transport;
mod ux;
