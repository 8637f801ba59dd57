//! The `auth_refresh_tokens` table: hashed refresh tokens, their families and their fate.

use chrono::{DateTime, Utc};
use emporium_store::{AnyRow, DbTx, Row};

use super::{AuthStore, from_millis, millis};
use crate::error::AuthError;

/// A refresh token as stored (never the token itself: its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The sign-in this token descends from.
    pub family_id: String,
    /// Whose it is.
    pub user_id: String,
    /// The `jti` of the access token issued with it.
    pub access_jti: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new pair (it may not be used again).
    pub rotated_at: Option<DateTime<Utc>>,
    /// When its family was revoked (logout, reuse, account deletion).
    pub revoked_at: Option<DateTime<Utc>>,
}

const REFRESH_COLUMNS: &str =
    "token_hash, family_id, user_id, access_jti, issued_at, expires_at, rotated_at, revoked_at";

fn refresh_from_row(row: &AnyRow) -> Result<RefreshRecord, sqlx::Error> {
    let rotated_at: Option<i64> = row.try_get("rotated_at")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    Ok(RefreshRecord {
        token_hash: row.try_get("token_hash")?,
        family_id: row.try_get("family_id")?,
        user_id: row.try_get("user_id")?,
        access_jti: row.try_get("access_jti")?,
        issued_at: from_millis(row.try_get("issued_at")?),
        expires_at: from_millis(row.try_get("expires_at")?),
        rotated_at: rotated_at.map(from_millis),
        revoked_at: revoked_at.map(from_millis),
    })
}

impl AuthStore {
    /// Stores a new refresh token.
    #[tracing::instrument(skip_all, fields(user_id = %record.user_id, family_id = %record.family_id))]
    pub async fn insert_refresh_token(&self, tx: &mut DbTx, record: &RefreshRecord) -> Result<(), AuthError> {
        const INSERT: &str = "INSERT INTO auth_refresh_tokens \
            (token_hash, family_id, user_id, access_jti, issued_at, expires_at, rotated_at, revoked_at) \
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        sqlx::query(INSERT)
            .bind(&record.token_hash)
            .bind(&record.family_id)
            .bind(&record.user_id)
            .bind(&record.access_jti)
            .bind(millis(record.issued_at))
            .bind(millis(record.expires_at))
            .bind(record.rotated_at.map(millis))
            .bind(record.revoked_at.map(millis))
            .execute(tx.connection())
            .await?;
        Ok(())
    }

    /// Marks the token `token_hash` used at `now`, when it is live (not used, not revoked, not
    /// expired). One statement, so that of two concurrent uses exactly one wins. Answers the
    /// record when this call won.
    #[tracing::instrument(skip_all)]
    pub async fn claim_refresh_token(
        &self,
        tx: &mut DbTx,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshRecord>, AuthError> {
        const UPDATE: &str = "UPDATE auth_refresh_tokens SET rotated_at = ? \
            WHERE token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > ?";
        let select = format!("SELECT {REFRESH_COLUMNS} FROM auth_refresh_tokens WHERE token_hash = ?");
        let claimed = sqlx::query(UPDATE)
            .bind(millis(now))
            .bind(token_hash)
            .bind(millis(now))
            .execute(tx.connection())
            .await?
            .rows_affected();
        if claimed != 1 {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(select)).bind(token_hash).fetch_one(tx.connection()).await?;
        Ok(Some(refresh_from_row(&row)?))
    }

    /// The token `token_hash`, whatever its state.
    #[tracing::instrument(skip_all)]
    pub async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRecord>, AuthError> {
        let select = format!("SELECT {REFRESH_COLUMNS} FROM auth_refresh_tokens WHERE token_hash = ?");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(select)).bind(token_hash).fetch_optional(self.database.pool()).await?;
        Ok(row.as_ref().map(refresh_from_row).transpose()?)
    }

    /// Revokes every live token of `family_id`; answers how many.
    #[tracing::instrument(skip(self))]
    pub async fn revoke_family(&self, family_id: &str, now: DateTime<Utc>) -> Result<u64, AuthError> {
        const UPDATE: &str = "UPDATE auth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL";
        let revoked = sqlx::query(UPDATE).bind(millis(now)).bind(family_id).execute(self.database.pool()).await?;
        Ok(revoked.rows_affected())
    }

    /// The family of the refresh token issued with access token `access_jti` of `user_id`.
    #[tracing::instrument(skip(self))]
    pub async fn family_of_access_token(&self, user_id: &str, access_jti: &str) -> Result<Option<String>, AuthError> {
        const SELECT: &str = "SELECT family_id FROM auth_refresh_tokens WHERE access_jti = ? AND user_id = ? LIMIT 1";
        let row = sqlx::query(SELECT).bind(access_jti).bind(user_id).fetch_optional(self.database.pool()).await?;
        Ok(row.map(|row| row.try_get::<String, _>("family_id")).transpose()?)
    }

    /// Deletes the tokens of `user_id` that expired before `before` (housekeeping at sign-in).
    pub async fn purge_expired_refresh_tokens(
        &self,
        tx: &mut DbTx,
        user_id: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, AuthError> {
        const DELETE: &str = "DELETE FROM auth_refresh_tokens WHERE user_id = ? AND expires_at < ?";
        let deleted = sqlx::query(DELETE).bind(user_id).bind(millis(before)).execute(tx.connection()).await?;
        Ok(deleted.rows_affected())
    }
}
