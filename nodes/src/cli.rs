//! Command-line flags and their environment variables (API.md section 1).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::services::{RoleList, parse_roles};

/// Starts an Emporium node.
#[derive(Debug, Parser)]
#[command(name = "emporium", version, about = "Starts an Emporium node: one binary, one or more roles")]
pub struct Cli {
    /// Comma-separated roles: registry, gateway, auth, product, inventory, order, payment,
    /// notification, all.
    #[arg(long, env = "EMPORIUM_ROLE", default_value = "all", value_parser = parse_roles)]
    pub role: RoleList,
    /// The configuration repository (read by the registry role). Default: `config` when that
    /// directory exists, else the built-in defaults (the values of the repository's
    /// `config/application.toml`).
    #[arg(long, env = "EMPORIUM_CONFIG_DIR", conflicts_with = "config_repo")]
    pub config_dir: Option<PathBuf>,
    /// A git repository (a path, or a file:// URL) whose commit at --config-label holds the
    /// configuration files, instead of --config-dir (read by the registry role).
    #[arg(long, env = "EMPORIUM_CONFIG_REPO")]
    pub config_repo: Option<String>,
    /// The branch, tag or commit of --config-repo to serve.
    #[arg(long, env = "EMPORIUM_CONFIG_LABEL", default_value = "main", requires = "config_repo")]
    pub config_label: String,
    /// Selects `<name>-<profile>.toml` overlays.
    #[arg(long, env = "EMPORIUM_PROFILE", default_value = "local")]
    pub profile: String,
    /// Registry URL(s), comma-separated. Default: this node when it has the registry role,
    /// else http://127.0.0.1:8761.
    #[arg(long, env = "EMPORIUM_REGISTRY", value_delimiter = ',')]
    pub registry: Vec<String>,
    /// Cluster, health and metrics listener. Default: 0.0.0.0:8761 with the registry role,
    /// else 127.0.0.1:0.
    #[arg(long, env = "EMPORIUM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address other nodes use to reach this one. Default: the bound listen address.
    #[arg(long, env = "EMPORIUM_ADVERTISE")]
    pub advertise: Option<String>,
    /// Public HTTP listener (gateway role only).
    #[arg(long, env = "EMPORIUM_HTTP", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,
    /// Stable identity of this node. Default: generated.
    #[arg(long, env = "EMPORIUM_NODE_ID")]
    pub node_id: Option<String>,
    /// Where the embedded stores live.
    #[arg(long, env = "EMPORIUM_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// A one-off task instead of running a node.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-off tasks.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Loads a small demo catalog with stock into empty stores (the embedded ones under
    /// --data-dir, or EMPORIUM_MONGODB_URL and EMPORIUM_MYSQL_URL), then exits.
    Seed,
    /// Administration of a deployment.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `emporium admin ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Sets a new random password on the `admin` account, in the auth store under --data-dir
    /// or at EMPORIUM_MYSQL_URL, clears its failed sign-ins, and prints the password once on
    /// standard error.
    ResetPassword,
}

impl Cli {
    /// Parses the command line; a bad flag gives one clear line on stderr and a non-zero code.
    pub fn parse_or_explain() -> Result<Cli, ExitCode> {
        Cli::try_parse().map_err(|error| {
            use clap::error::ErrorKind;
            match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = error.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let rendered = error.to_string();
                    let first_line = rendered.lines().next().unwrap_or("invalid arguments");
                    let first_line = first_line.strip_prefix("error: ").unwrap_or(first_line);
                    eprintln!("emporium: {first_line} (see emporium --help)");
                    ExitCode::from(2)
                }
            }
        })
    }
}
