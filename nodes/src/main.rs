//! `emporium`: one binary, one node. It parses flags, sets up telemetry, wires the requested
//! roles to their services and runs until SIGTERM or Ctrl-C.

mod cli;
mod roles;
mod run;
mod stores;
mod wiring;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_or_explain() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match actix_web::rt::System::new().block_on(run::run_node(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emporium: {error:#}");
            ExitCode::from(2)
        }
    }
}
