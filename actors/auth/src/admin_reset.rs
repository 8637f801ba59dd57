//! `emporium admin reset-password`: a new password for the bootstrap admin account, set
//! directly in the auth store by an operator who can reach it (the embedded store under
//! `--data-dir`, or `EMPORIUM_MYSQL_URL`).

use anyhow::Context as _;
use emporium_store::{Database, DbTx};

use crate::password::{PasswordHasher, PasswordHashing};
use crate::secret::{SecretString, random_token};
use crate::service::ADMIN_USERNAME;
use crate::store::AuthStore;
use crate::throttle::account_key_of_user;
use crate::validation::LoginName;

/// Sets a new random password on the `admin` account and clears its failed sign-ins, so the
/// operator can sign in at once; answers the password, to show once. Fails when the account
/// does not exist yet (a node with the auth role creates it on its first start).
pub async fn reset_admin_password(database: Database, hashing: PasswordHashing) -> anyhow::Result<SecretString> {
    let store = AuthStore::new(database);
    store.migrate().await?;
    let admin =
        store.find_user_by_login(&LoginName::Username(ADMIN_USERNAME.to_string())).await?.with_context(|| {
            format!("there is no {ADMIN_USERNAME} account yet: start a node with the auth role once to create it")
        })?;
    let password = SecretString::new(random_token(18)?);
    let hasher = PasswordHasher::new(hashing).await?;
    let password_hash = hasher.hash(password.expose().to_string()).await?;
    store.update_password_hash(&admin.id, &password_hash).await?;
    let mut tx: DbTx = store.database().begin().await?;
    store.clear_login_failures(&mut tx, &account_key_of_user(&admin.id)).await?;
    tx.commit().await?;
    tracing::info!(user_id = %admin.id, "the admin password was reset");
    Ok(password)
}

/// The block a node or the reset command prints on standard error for the operator: who the
/// admin is and the password, once, apart from the JSON logs.
pub fn admin_password_notice(headline: &str, password: &SecretString) -> String {
    let rule = "=".repeat(72);
    format!(
        "\n{rule}\n  {headline}\n\n    username  {ADMIN_USERNAME}\n    email     {email}\n    password  {password}\n\n  \
         It is shown once and never logged. Sign in and change it, or set a new one with\n  \
         `emporium admin reset-password` (same --data-dir or EMPORIUM_MYSQL_URL).\n{rule}\n",
        email = crate::service::ADMIN_EMAIL,
        password = password.expose(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_names_the_account_and_the_password() {
        let notice = admin_password_notice("created", &SecretString::new("pa55-word-xyz"));
        assert!(notice.contains("username  admin") && notice.contains("password  pa55-word-xyz"), "{notice}");
        assert!(notice.contains("reset-password"));
    }
}
