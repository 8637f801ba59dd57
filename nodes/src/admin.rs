//! `emporium admin ...`: operator tasks run against the stores directly.

use emporium_auth::{PasswordHashing, admin_password_notice, reset_admin_password};
use emporium_store::Database;

use crate::cli::Cli;

/// `emporium admin reset-password`.
pub async fn reset_password(cli: Cli) -> anyhow::Result<()> {
    let (environment, _vault) = emporium_cluster::vault::process_environment().await?;
    let mysql_url = environment.secret("EMPORIUM_MYSQL_URL")?;
    let database = Database::open_for_service("auth", mysql_url.as_deref(), &cli.data_dir).await?;
    let password = reset_admin_password(database, PasswordHashing::default()).await?;
    eprintln!("{}", admin_password_notice("The admin password was reset.", &password));
    Ok(())
}
