//! The `auth_signing_keys` table: the public keys every instance signs with, so that the JWKS
//! any instance answers verifies the tokens of all.

use chrono::{DateTime, Utc};
use emporium_store::Row;

use super::{AuthStore, from_millis, millis};
use crate::error::AuthError;

/// A published public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// The key id.
    pub kid: String,
    /// The Ed25519 public key, base64url (JWK `x`).
    pub x: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing, if it did.
    pub retired_at: Option<DateTime<Utc>>,
}

impl AuthStore {
    /// Publishes a signing key (again, when an instance restarts with it: it signs, so it is
    /// not retired).
    #[tracing::instrument(skip(self, x))]
    pub async fn publish_signing_key(&self, kid: &str, x: &str, created_at: DateTime<Utc>) -> Result<(), AuthError> {
        const UPDATE: &str = "UPDATE auth_signing_keys SET retired_at = NULL WHERE kid = ?";
        const INSERT: &str = "INSERT INTO auth_signing_keys (kid, algorithm, public_key, created_at, retired_at) VALUES (?, 'EdDSA', ?, ?, NULL)";
        let pool = self.database.pool();
        let updated = sqlx::query(UPDATE).bind(kid).execute(pool).await?.rows_affected();
        if updated > 0 {
            return Ok(());
        }
        match sqlx::query(INSERT).bind(kid).bind(x).bind(millis(created_at)).execute(pool).await.map(drop) {
            // Another instance published the same key in between: it is published.
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(()),
            other => Ok(other?),
        }
    }

    /// Marks key `kid` retired at `at`, when it was not already.
    #[tracing::instrument(skip(self))]
    pub async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<(), AuthError> {
        const UPDATE: &str = "UPDATE auth_signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL";
        sqlx::query(UPDATE).bind(millis(at)).bind(kid).execute(self.database.pool()).await?;
        Ok(())
    }

    /// Marks every key but `kid` retired at `at` (a start with an operator-provided key: that
    /// key is the cluster's, and keys it replaced verify for one more window only).
    #[tracing::instrument(skip(self))]
    pub async fn retire_other_signing_keys(&self, kid: &str, at: DateTime<Utc>) -> Result<u64, AuthError> {
        const UPDATE: &str = "UPDATE auth_signing_keys SET retired_at = ? WHERE kid <> ? AND retired_at IS NULL";
        let retired = sqlx::query(UPDATE).bind(millis(at)).bind(kid).execute(self.database.pool()).await?;
        Ok(retired.rows_affected())
    }

    /// The keys still signing or retired after `retired_after`, newest first.
    #[tracing::instrument(skip(self))]
    pub async fn published_signing_keys(&self, retired_after: DateTime<Utc>) -> Result<Vec<PublishedKey>, AuthError> {
        const SELECT: &str = "SELECT kid, public_key, created_at, retired_at FROM auth_signing_keys \
            WHERE retired_at IS NULL OR retired_at > ? ORDER BY created_at DESC, kid";
        let rows = sqlx::query(SELECT).bind(millis(retired_after)).fetch_all(self.database.pool()).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let retired_at: Option<i64> = row.try_get("retired_at")?;
            keys.push(PublishedKey {
                kid: row.try_get("kid")?,
                x: row.try_get("public_key")?,
                created_at: from_millis(row.try_get("created_at")?),
                retired_at: retired_at.map(from_millis),
            });
        }
        Ok(keys)
    }
}
