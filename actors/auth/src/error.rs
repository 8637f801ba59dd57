//! What can go wrong in the auth service, and how each failure is answered: an HTTP status
//! and a stable `code` ([`AuthError::status_and_code`]), carried as a [`ServiceError`].

use emporium_bus::error::BusError;
use emporium_cluster::edge::{internal_failure, is_busy_database_code, unavailable_dependency};
use emporium_contracts::auth::SERVICE;
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_store::StoreError;

use crate::password::HasherBusy;

/// Every failure of the auth service.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 400: the username breaks the rules.
    #[error("username must be 3 to 32 characters of letters, digits, '.', '_' or '-'")]
    InvalidUsername,
    /// 400: not an email address.
    #[error("email must be an address like name@example.com, at most 254 characters")]
    InvalidEmail,
    /// 400: the full name is empty or too long.
    #[error("full name must be 1 to 100 characters")]
    InvalidFullName,
    /// 400: the password is too short or too long.
    #[error("password must be 8 to 1024 bytes long")]
    WeakPassword,
    /// 400: a sign-in named no account.
    #[error("send an email or a username, and the password")]
    InvalidLogin,
    /// 409: the username is taken (whatever its case).
    #[error("this username is taken")]
    UsernameTaken,
    /// 409: the email address is taken (whatever its case).
    #[error("an account with this email address exists")]
    EmailTaken,
    /// 401: unknown account or wrong password (the same answer for both).
    #[error("wrong email, username or password")]
    InvalidCredentials,
    /// 429: too many failed sign-ins for this account or from this address.
    #[error("too many failed sign-ins; try again in {retry_after_secs} seconds")]
    TooManyAttempts {
        /// When a new attempt may succeed.
        retry_after_secs: u32,
    },
    /// 429: the signing key was rotated less than the minimum interval ago.
    #[error("the signing key was rotated recently; try again in {retry_after_secs} seconds")]
    RotationTooSoon {
        /// When a rotation will be accepted.
        retry_after_secs: u32,
    },
    /// 401: the refresh token is unknown, expired, revoked or was already used.
    #[error("the refresh token is not valid; sign in again")]
    InvalidRefreshToken,
    /// 401: the signed-in account no longer exists.
    #[error("the account of this token no longer exists")]
    AccountGone,
    /// 404: no account has this id.
    #[error("no account has this id")]
    NoSuchUser,
    /// 409: the account is the last one with the admin role; deleting it would leave the
    /// cluster with no admin.
    #[error("this is the last admin account; make another admin first")]
    LastAdmin,
    /// 403: the caller lacks the admin role.
    #[error("this needs the admin role")]
    Forbidden,
    /// 503 or 500: the store failed (a statement, or a transaction's begin or commit).
    #[error("auth store failed: {0}")]
    Store(#[from] sqlx::Error),
    /// 503 or 500: the event bus (outbox) failed.
    #[error("event bus failed: {0}")]
    Bus(#[from] BusError),
    /// 500: anything else; the cause chain stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthError {
    /// The HTTP status and the stable code the client sees.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            AuthError::InvalidUsername => (400, "invalid_username"),
            AuthError::InvalidEmail => (400, "invalid_email"),
            AuthError::InvalidFullName => (400, "invalid_full_name"),
            AuthError::WeakPassword => (400, "weak_password"),
            AuthError::InvalidLogin => (400, "invalid_login"),
            AuthError::UsernameTaken => (409, "username_taken"),
            AuthError::EmailTaken => (409, "email_taken"),
            AuthError::InvalidCredentials => (401, "invalid_credentials"),
            AuthError::TooManyAttempts { .. } => (429, "too_many_attempts"),
            AuthError::RotationTooSoon { .. } => (429, "rotation_too_soon"),
            AuthError::InvalidRefreshToken => (401, "invalid_refresh_token"),
            AuthError::AccountGone => (401, "user_not_found"),
            AuthError::NoSuchUser => (404, "user_not_found"),
            AuthError::Forbidden => (403, "forbidden"),
            AuthError::LastAdmin => (409, "last_admin"),
            AuthError::Store(error) if is_transient(error) => (503, "auth_store_unavailable"),
            AuthError::Bus(error) => match error.status_and_code() {
                (503, _) => (503, "auth_store_unavailable"),
                _ => (500, "internal_error"),
            },
            AuthError::Unexpected(error) if error.is::<HasherBusy>() => (503, "auth_busy"),
            AuthError::Store(_) | AuthError::Unexpected(_) => (500, "internal_error"),
        }
    }

    /// The answer to the caller, by the edge's error policy: a bug (500) or an unavailable
    /// store (503) is logged here with its cause chain and answered without it.
    pub fn to_service_error(&self) -> ServiceError {
        let (status, code) = self.status_and_code();
        let kind = ErrorKind::from_http_status(status);
        match status {
            500 => internal_failure(SERVICE, self),
            503 if code == "auth_busy" => unavailable_dependency(SERVICE, code, "the password hasher", self),
            503 => unavailable_dependency(SERVICE, code, "the auth store", self),
            _ => {
                let mut error = ServiceError::new(kind, code, self.to_string());
                if let AuthError::TooManyAttempts { retry_after_secs }
                | AuthError::RotationTooSoon { retry_after_secs } = self
                {
                    error.retry_after_secs = Some(*retry_after_secs);
                }
                error
            }
        }
    }
}

/// A transaction that could not begin, commit or roll back is a store failure like a failed
/// statement (503 when transient). The other store errors (migrations, URLs, files) arise only
/// at start, never in a request.
impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => AuthError::Store(error),
            other => AuthError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        error.to_service_error()
    }
}

/// Whether a store failure is the store being unreachable or busy (retry later) rather than a
/// bug; the same rule as [`emporium_cluster::edge::is_store_unavailable`], for the statement
/// errors auth keeps as they are.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| is_busy_database_code(&code)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_has_its_status_code_and_lowercase_message() {
        let cases = [
            (AuthError::InvalidUsername, 400, "invalid_username"),
            (AuthError::InvalidEmail, 400, "invalid_email"),
            (AuthError::InvalidFullName, 400, "invalid_full_name"),
            (AuthError::WeakPassword, 400, "weak_password"),
            (AuthError::InvalidLogin, 400, "invalid_login"),
            (AuthError::UsernameTaken, 409, "username_taken"),
            (AuthError::EmailTaken, 409, "email_taken"),
            (AuthError::InvalidCredentials, 401, "invalid_credentials"),
            (AuthError::InvalidRefreshToken, 401, "invalid_refresh_token"),
            (AuthError::AccountGone, 401, "user_not_found"),
            (AuthError::NoSuchUser, 404, "user_not_found"),
            (AuthError::Forbidden, 403, "forbidden"),
            (AuthError::LastAdmin, 409, "last_admin"),
        ];
        for (error, status, code) in cases {
            let answer = error.to_service_error();
            assert_eq!((answer.http_status(), answer.code.as_str()), (status, code));
            let first = answer.message.chars().next().unwrap();
            assert!(first.is_lowercase() && !answer.message.ends_with('.'), "{}", answer.message);
        }
    }

    #[test]
    fn too_many_attempts_carries_retry_after() {
        let answer = AuthError::TooManyAttempts { retry_after_secs: 42 }.to_service_error();
        assert_eq!(answer.http_status(), 429);
        assert_eq!(answer.code, "too_many_attempts");
        assert_eq!(answer.retry_after_secs, Some(42));
    }

    #[test]
    fn store_failures_are_503_when_transient_and_500_without_their_cause_otherwise() {
        let unreachable = AuthError::Store(sqlx::Error::PoolTimedOut).to_service_error();
        assert_eq!((unreachable.http_status(), unreachable.code.as_str()), (503, "auth_store_unavailable"));
        assert!(unreachable.retry_after_secs.is_some());
        let bug = AuthError::Store(sqlx::Error::ColumnNotFound("secret_column".into())).to_service_error();
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
        assert!(!bug.message.contains("secret_column"), "the cause stays in the logs");
        let busy_begin = AuthError::from(StoreError::Database(sqlx::Error::PoolTimedOut)).to_service_error();
        assert_eq!((busy_begin.http_status(), busy_begin.code.as_str()), (503, "auth_store_unavailable"));
        let unexpected = AuthError::Unexpected(anyhow::anyhow!("disk on fire")).to_service_error();
        assert_eq!((unexpected.http_status(), unexpected.code.as_str()), (500, "internal_error"));
        assert!(!unexpected.message.contains("disk"));
        let closed = AuthError::Store(sqlx::Error::PoolClosed).to_service_error();
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "auth_store_unavailable"));
    }
}
