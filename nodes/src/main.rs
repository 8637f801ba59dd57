//! `emporium`: one binary, one node. It parses flags, sets up telemetry, starts the services
//! of the requested roles and runs until SIGTERM or Ctrl-C.

mod admin;
mod cli;
mod run;
mod seed;
mod services;

use std::process::ExitCode;

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
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

/// Allocations of 1 MiB and more are mapped for themselves and unmapped when freed. glibc's
/// default raises that threshold to the largest block freed so far (up to 32 MiB), after which
/// each argon2id hash (19 MiB) stays in the heap arena of whichever blocking thread ran it: with
/// tokio's changing blocking threads and glibc's up to 8 arenas per core, a node that had served
/// a burst of sign-ins kept hundreds of MiB it no longer used (docs/BENCHMARKS.md, "Memory under
/// abuse"). A fixed threshold turns the dynamic one off.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LARGE_BLOCK: libc::c_int = 1024 * 1024;
        // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK);
        }
    }
}
