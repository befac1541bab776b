//! Integration tests: one binary (each file under tests/ would link the whole SDK).

mod aws_provider;
mod moto;
mod apply_moto;
mod cli;
