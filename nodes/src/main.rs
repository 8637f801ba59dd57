//! `emporium`: one binary, one node. It parses flags, sets up telemetry, starts the services
//! of the requested roles and runs until SIGTERM or Ctrl-C.

mod admin;
mod allocator;
mod cli;
mod run;
mod seed;
mod services;

use std::process::ExitCode;

fn main() -> ExitCode {
    allocator::configure();
    let cli = match cli::Cli::parse_or_explain() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let outcome = match cli.command {
        Some(cli::Command::Seed) => actix_web::rt::System::new().block_on(seed::seed(cli)),
        Some(cli::Command::Admin(cli::AdminCommand::ResetPassword)) => {
            actix_web::rt::System::new().block_on(admin::reset_password(cli))
        }
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
