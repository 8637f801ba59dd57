//! Input rules for registration and sign-in, checked before anything touches the store.

use emporium_contracts::auth::{LoginRequest, RegisterRequest};

use crate::error::AuthError;

/// Fewest characters of a username.
pub const USERNAME_MIN_CHARS: usize = 3;
/// Most characters of a username.
pub const USERNAME_MAX_CHARS: usize = 32;
/// Most characters of an email address (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Most characters of a full name.
pub const FULL_NAME_MAX_CHARS: usize = 100;
/// Fewest bytes of a password.
pub const PASSWORD_MIN_BYTES: usize = 8;
/// Most bytes of a password: bounds the work one request can ask of argon2.
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// A registration that passed every rule, with the case-folded keys the store keeps unique.
#[derive(Clone)]
pub struct ValidRegistration {
    /// The username as given.
    pub username: String,
    /// The email address as given (trimmed).
    pub email: String,
    /// The full name (trimmed).
    pub full_name: String,
    /// The password.
    pub password: String,
}

/// Checks a registration: username, email, full name, password, in that order.
pub fn validate_registration(request: RegisterRequest) -> Result<ValidRegistration, AuthError> {
    validate_username(&request.username)?;
    let email = request.email.trim().to_string();
    validate_email(&email)?;
    let full_name = request.full_name.trim().to_string();
    validate_full_name(&full_name)?;
    validate_password(&request.password)?;
    Ok(ValidRegistration { username: request.username, email, full_name, password: request.password })
}

/// 3 to 32 characters of `[A-Za-z0-9._-]`.
pub fn validate_username(username: &str) -> Result<(), AuthError> {
    let length = username.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&length) && username.chars().all(allowed) {
        Ok(())
    } else {
        Err(AuthError::InvalidUsername)
    }
}

/// One `@`, a non-empty local part, a domain with a dot between non-empty labels, at most 254
/// characters, no whitespace or control characters.
pub fn validate_email(email: &str) -> Result<(), AuthError> {
    let well_formed = (|| {
        if email.chars().count() > EMAIL_MAX_CHARS || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return false;
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        !local.is_empty() && domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
    })();
    if well_formed { Ok(()) } else { Err(AuthError::InvalidEmail) }
}

/// 1 to 100 characters once trimmed, no control characters.
pub fn validate_full_name(full_name: &str) -> Result<(), AuthError> {
    let length = full_name.chars().count();
    if (1..=FULL_NAME_MAX_CHARS).contains(&length) && !full_name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(AuthError::InvalidFullName)
    }
}

/// 8 to 1024 bytes.
pub fn validate_password(password: &str) -> Result<(), AuthError> {
    if (PASSWORD_MIN_BYTES..=PASSWORD_MAX_BYTES).contains(&password.len()) {
        Ok(())
    } else {
        Err(AuthError::WeakPassword)
    }
}

/// What a sign-in names the account by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginName {
    /// An email address, case-folded.
    Email(String),
    /// A username, case-folded.
    Username(String),
}

impl LoginName {
    /// The name as given (case-folded), for the `user.login_failed` event.
    pub fn as_str(&self) -> &str {
        match self {
            LoginName::Email(name) | LoginName::Username(name) => name,
        }
    }
}

/// The account a sign-in names: `email` when present, else `username`; 400 `invalid_login`
/// when neither is.
pub fn login_name(request: &LoginRequest) -> Result<LoginName, AuthError> {
    let present = |value: &Option<String>| value.as_deref().map(str::trim).filter(|value| !value.is_empty()).map(fold);
    if let Some(email) = present(&request.email) {
        return Ok(LoginName::Email(email));
    }
    if let Some(username) = present(&request.username) {
        return Ok(LoginName::Username(username));
    }
    Err(AuthError::InvalidLogin)
}

/// The case-folded form the store keeps unique (`Ada@Example.COM` -> `ada@example.com`).
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(username: &str, email: &str, full_name: &str, password: &str) -> RegisterRequest {
        RegisterRequest {
            username: username.to_string(),
            email: email.to_string(),
            full_name: full_name.to_string(),
            password: password.to_string(),
        }
    }

    fn code(result: Result<impl Sized, AuthError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(error) => error.status_and_code().1,
        }
    }

    #[test]
    fn usernames_are_3_to_32_of_the_allowed_characters() {
        for good in ["ada", "Ada.Lovelace_1-2", &"a".repeat(32), "a.b", "___"] {
            assert_eq!(code(validate_username(good)), "ok", "{good}");
        }
        for bad in ["", "ab", &"a".repeat(33), "ada lovelace", "ada@home", "adé", "ad\u{0}a", "a/b", "ad+a"] {
            assert_eq!(code(validate_username(bad)), "invalid_username", "{bad:?}");
        }
    }

    #[test]
    fn emails_need_one_at_a_local_part_and_a_dotted_domain() {
        for good in ["ada@example.com", "a@b.co", "first.last+tag@sub.example.org", "ADA@EXAMPLE.COM"] {
            assert_eq!(code(validate_email(good)), "ok", "{good}");
        }
        let too_long = format!("{}@example.com", "a".repeat(243));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "ada@exa@mple.com",
            "ada lovelace@example.com",
            "ada@example .com",
            "ada@example.com\n",
            "ada\t@example.com",
            "ada@.com",
            "ada@example.",
            "ada@example..com",
            &too_long,
        ] {
            assert_eq!(code(validate_email(bad)), "invalid_email", "{bad:?}");
        }
        assert_eq!(format!("{}@example.com", "a".repeat(242)).len(), 254);
        assert_eq!(code(validate_email(&format!("{}@example.com", "a".repeat(242)))), "ok");
    }

    #[test]
    fn full_names_are_1_to_100_characters_once_trimmed() {
        assert_eq!(code(validate_full_name("Ada Lovelace")), "ok");
        assert_eq!(code(validate_full_name(&"é".repeat(100))), "ok", "characters, not bytes");
        for bad in ["", &"x".repeat(101), "Ada\u{7}"] {
            assert_eq!(code(validate_full_name(bad)), "invalid_full_name", "{bad:?}");
        }
        let request = registration("ada", "ada@example.com", "   ", "correct horse");
        assert_eq!(code(validate_registration(request)), "invalid_full_name", "blank after trimming");
    }

    #[test]
    fn passwords_are_8_to_1024_bytes() {
        assert_eq!(code(validate_password("12345678")), "ok");
        assert_eq!(code(validate_password(&"p".repeat(1024))), "ok");
        assert_eq!(code(validate_password("1234567")), "weak_password");
        assert_eq!(code(validate_password("")), "weak_password");
        assert_eq!(code(validate_password(&"p".repeat(1025))), "weak_password");
    }

    #[test]
    fn a_registration_reports_its_first_bad_field_and_trims_what_it_keeps() {
        let bad_everything = registration("a", "nope", "", "short");
        assert_eq!(code(validate_registration(bad_everything)), "invalid_username");
        assert_eq!(code(validate_registration(registration("ada", "nope", "", "short"))), "invalid_email");
        let valid = validate_registration(registration("Ada", "  Ada@Example.com ", " Ada Lovelace ", "correct horse"))
            .unwrap();
        assert_eq!(valid.email, "Ada@Example.com");
        assert_eq!(valid.full_name, "Ada Lovelace");
        assert_eq!(valid.username, "Ada");
    }

    #[test]
    fn a_login_names_the_account_by_email_first_then_username() {
        let request = |email: Option<&str>, username: Option<&str>| LoginRequest {
            email: email.map(str::to_string),
            username: username.map(str::to_string),
            password: "x".to_string(),
        };
        assert_eq!(login_name(&request(Some("Ada@X.org"), Some("ada"))).unwrap(), LoginName::Email("ada@x.org".into()));
        assert_eq!(login_name(&request(None, Some("Ada"))).unwrap(), LoginName::Username("ada".into()));
        assert_eq!(login_name(&request(Some("  "), Some("Ada"))).unwrap(), LoginName::Username("ada".into()));
        assert_eq!(code(login_name(&request(None, None))), "invalid_login");
        assert_eq!(code(login_name(&request(Some(""), Some(" ")))), "invalid_login");
    }
}
