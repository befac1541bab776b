//! The `appgrid` command: flags, dispatch, rendering and exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
