//! The `auth_users` table.

use chrono::{DateTime, Utc};
use emporium_contracts::auth::UserView;
use emporium_contracts::identity::Role;
use emporium_store::{AnyRow, DbTx, Row};

use super::{AuthStore, from_millis, millis};
use crate::error::AuthError;
use crate::validation::{LoginName, fold};

/// An account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The id (a UUID).
    pub id: String,
    /// The username as registered.
    pub username: String,
    /// The email address as registered.
    pub email: String,
    /// The full name.
    pub full_name: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// The roles.
    pub roles: Vec<Role>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// The account as the API shows it.
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            full_name: self.full_name.clone(),
            roles: self.roles.clone(),
            created_at: self.created_at,
        }
    }
}

/// Roles as stored: sorted, comma-separated (`customer`, `admin`, `customer,admin`).
pub fn encode_roles(roles: &[Role]) -> String {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    roles.iter().map(|role| role_name(*role)).collect::<Vec<_>>().join(",")
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Admin => "admin",
    }
}

fn decode_roles(text: &str) -> Vec<Role> {
    text.split(',')
        .filter_map(|name| match name.trim() {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            "" => None,
            unknown => {
                tracing::warn!(role = unknown, "ignoring an unknown stored role");
                None
            }
        })
        .collect()
}

const USER_COLUMNS: &str = "id, username, email, full_name, password_hash, roles, created_at";

fn user_from_row(row: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    let roles: String = row.try_get("roles")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        password_hash: row.try_get("password_hash")?,
        roles: decode_roles(&roles),
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// The conflict a unique-index violation stands for, by the index it names.
fn conflict_of(error: &sqlx::Error) -> Option<AuthError> {
    let sqlx::Error::Database(database_error) = error else { return None };
    if !database_error.is_unique_violation() {
        return None;
    }
    // MariaDB: "Duplicate entry '..' for key 'auth_users_email_lower'"; SQLite: "UNIQUE
    // constraint failed: auth_users.email_lower". The index name ends the message.
    let message = database_error.message().trim_end_matches('\'');
    if message.ends_with("email_lower") {
        Some(AuthError::EmailTaken)
    } else if message.ends_with("username_lower") {
        Some(AuthError::UsernameTaken)
    } else {
        None
    }
}

impl AuthStore {
    /// Inserts `user`; 409 `username_taken` / `email_taken` when the unique indexes refuse it.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn insert_user(&self, tx: &mut DbTx, user: &UserRecord) -> Result<(), AuthError> {
        const INSERT: &str = "INSERT INTO auth_users \
            (id, username, username_lower, email, email_lower, full_name, password_hash, roles, created_at) \
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let result = sqlx::query(INSERT)
            .bind(&user.id)
            .bind(&user.username)
            .bind(fold(&user.username))
            .bind(&user.email)
            .bind(fold(&user.email))
            .bind(&user.full_name)
            .bind(&user.password_hash)
            .bind(encode_roles(&user.roles))
            .bind(millis(user.created_at))
            .execute(tx.connection())
            .await
            .map(drop);
        result.map_err(|error| conflict_of(&error).unwrap_or(AuthError::Store(error)))
    }

    /// Which of `username` and `email` (any case) an account already has, username first.
    #[tracing::instrument(skip_all)]
    pub async fn find_conflict(&self, username: &str, email: &str) -> Result<Option<AuthError>, AuthError> {
        const SELECT: &str =
            "SELECT username_lower, email_lower FROM auth_users WHERE username_lower = ? OR email_lower = ? LIMIT 2";
        let (username, email) = (fold(username), fold(email));
        let rows = sqlx::query(SELECT).bind(&username).bind(&email).fetch_all(self.database.pool()).await?;
        let taken: Vec<(String, String)> = rows
            .iter()
            .map(|row| Ok((row.try_get("username_lower")?, row.try_get("email_lower")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if taken.iter().any(|(taken_username, _)| *taken_username == username) {
            return Ok(Some(AuthError::UsernameTaken));
        }
        if taken.iter().any(|(_, taken_email)| *taken_email == email) {
            return Ok(Some(AuthError::EmailTaken));
        }
        Ok(None)
    }

    /// The account a sign-in names (by case-folded email or username).
    #[tracing::instrument(skip_all)]
    pub async fn find_user_by_login(&self, login: &LoginName) -> Result<Option<UserRecord>, AuthError> {
        let (sql, key) = match login {
            LoginName::Email(email) => (select_user_by("email_lower"), fold(email)),
            LoginName::Username(username) => (select_user_by("username_lower"), fold(username)),
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&key).fetch_optional(self.database.pool()).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// The account with id `user_id`.
    #[tracing::instrument(skip(self))]
    pub async fn find_user(&self, user_id: &str) -> Result<Option<UserRecord>, AuthError> {
        let sql = select_user_by("id");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_optional(self.database.pool()).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// The roles of `user_id` within `tx`, when the account exists.
    pub async fn user_roles_in(&self, tx: &mut DbTx, user_id: &str) -> Result<Option<Vec<Role>>, AuthError> {
        const SELECT: &str = "SELECT roles FROM auth_users WHERE id = ?";
        let row = sqlx::query(SELECT).bind(user_id).fetch_optional(tx.connection()).await?;
        let roles: Option<String> = row.map(|row| row.try_get("roles")).transpose()?;
        Ok(roles.map(|roles| decode_roles(&roles)))
    }

    /// Whether account `user_id` exists.
    #[tracing::instrument(skip(self))]
    pub async fn user_exists(&self, user_id: &str) -> Result<bool, AuthError> {
        const SELECT: &str = "SELECT 1 AS present FROM auth_users WHERE id = ?";
        let found = sqlx::query(SELECT).bind(user_id).fetch_optional(self.database.pool()).await?;
        Ok(found.is_some())
    }

    /// Whether any account holds the admin role.
    pub async fn admin_exists(&self) -> Result<bool, AuthError> {
        let sql = format!(
            "SELECT 1 AS present FROM auth_users WHERE roles IN ('{}', '{}') LIMIT 1",
            encode_roles(&[Role::Admin]),
            encode_roles(&[Role::Customer, Role::Admin])
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(self.database.pool()).await?;
        Ok(found.is_some())
    }

    /// The ids of the accounts holding the admin role, read within `tx` and (on MariaDB)
    /// locked until it ends, so two transactions cannot each remove one of the last two admins.
    pub async fn admin_ids_for_update(&self, tx: &mut DbTx) -> Result<Vec<String>, AuthError> {
        let lock = match self.database.dialect() {
            emporium_store::Dialect::MySql => " FOR UPDATE",
            emporium_store::Dialect::Sqlite => "",
        };
        let sql = format!(
            "SELECT id FROM auth_users WHERE roles IN ('{}', '{}'){lock}",
            encode_roles(&[Role::Admin]),
            encode_roles(&[Role::Customer, Role::Admin])
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(tx.connection()).await?;
        rows.iter().map(|row| row.try_get("id").map_err(AuthError::from)).collect()
    }

    /// Replaces the password hash of `user_id` (re-hash with new parameters).
    pub async fn update_password_hash(&self, user_id: &str, password_hash: &str) -> Result<(), AuthError> {
        const UPDATE: &str = "UPDATE auth_users SET password_hash = ? WHERE id = ?";
        sqlx::query(UPDATE).bind(password_hash).bind(user_id).execute(self.database.pool()).await?;
        Ok(())
    }

    /// Deletes account `user_id` with its refresh tokens and failed sign-ins; `false` when no
    /// such account exists.
    #[tracing::instrument(skip(self, tx))]
    pub async fn delete_user(&self, tx: &mut DbTx, user_id: &str) -> Result<bool, AuthError> {
        const DELETE_TOKENS: &str = "DELETE FROM auth_refresh_tokens WHERE user_id = ?";
        const DELETE_FAILURES: &str = "DELETE FROM auth_login_failures WHERE account_key = ?";
        const DELETE_USER: &str = "DELETE FROM auth_users WHERE id = ?";
        let account_key = crate::throttle::account_key_of_user(user_id);
        sqlx::query(DELETE_TOKENS).bind(user_id).execute(tx.connection()).await?;
        sqlx::query(DELETE_FAILURES).bind(&account_key).execute(tx.connection()).await?;
        let deleted = sqlx::query(DELETE_USER).bind(user_id).execute(tx.connection()).await?.rows_affected();
        Ok(deleted > 0)
    }
}

/// `SELECT <user columns> FROM auth_users WHERE <column> = ?`.
fn select_user_by(column: &str) -> String {
    format!("SELECT {USER_COLUMNS} FROM auth_users WHERE {column} = ?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_stored_sorted_and_read_back() {
        assert_eq!(encode_roles(&[Role::Admin, Role::Customer, Role::Admin]), "customer,admin");
        assert_eq!(encode_roles(&[Role::Admin]), "admin");
        assert_eq!(decode_roles("customer,admin"), vec![Role::Customer, Role::Admin]);
        assert_eq!(decode_roles("customer,wizard"), vec![Role::Customer]);
        assert_eq!(decode_roles(""), Vec::<Role>::new());
    }
}
