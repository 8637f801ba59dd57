//! `emporium`: one binary, one node. It parses flags, sets up telemetry, wires the requested
//! roles to their services and runs until SIGTERM or Ctrl-C.

mod cli;
mod roles;
mod run;
mod seed;
mod stores;
mod wiring;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_or_explain() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let outcome = match cli.command {
        Some(cli::Command::Seed) => actix_web::rt::System::new().block_on(seed::seed(cli)),
        None => actix_web::rt::System::new().block_on(run::run_node(cli)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emporium: {error:#}");
            ExitCode::from(2)
        }
    }
}
