//! The auth service as the gateway and other services see it: messages asked through its
//! `LocalEndpoint`, on SQLite and on MariaDB. Every failure is checked by status and code.

mod support;

use std::time::Duration;

use emporium_auth::{ADMIN_EMAIL, ADMIN_USERNAME, AuthOptions, LoginLimits, SecretString};
use emporium_contracts::auth::{
    CheckUserActive, ClientInfo, DeleteUser, GetCurrentUser, LogOut, RefreshTokens, RegisterRequest, RegisterUser,
    RotateSigningKey,
};
use emporium_contracts::identity::{Caller, Role};
use support::{ADMIN_PASSWORD, Harness, assert_error, kid_of, registration, verify, verify_claims};

const PASSWORD: &str = "correct horse battery";

on_both_stores!(
    sign_up_sign_in_and_who_am_i,
    sign_up_refuses_bad_input_and_taken_names_with_exact_codes,
    unknown_accounts_and_wrong_passwords_get_the_same_answer,
    failed_sign_ins_slow_the_failing_client_and_never_lock_out_the_owner,
    failed_sign_ins_are_limited_per_client_address,
    refresh_rotates_and_a_replayed_token_revokes_its_family,
    of_two_concurrent_refreshes_with_one_token_exactly_one_wins,
    expired_and_unknown_refresh_tokens_are_refused,
    logout_revokes_the_session_of_the_access_token_or_the_given_token,
    a_deleted_user_is_inactive_and_can_neither_refresh_nor_sign_in,
    only_admins_delete_accounts_and_rotate_keys,
    the_last_admin_cannot_be_deleted,
    rotation_keeps_old_tokens_verifying_until_they_expire,
    the_bootstrap_admin_is_made_once_and_the_key_survives_a_restart,
    two_instances_publish_each_others_keys,
);

async fn sign_up_sign_in_and_who_am_i(harness: &mut Harness) {
    let request = RegisterRequest {
        username: "Ada.Lovelace".into(),
        email: " Ada@Example.com ".into(),
        full_name: " Ada Lovelace ".into(),
        password: PASSWORD.into(),
    };
    let ada = harness.ask(RegisterUser { request, client: ClientInfo::default() }).await.unwrap();
    assert_eq!(
        (ada.username.as_str(), ada.email.as_str(), ada.full_name.as_str()),
        ("Ada.Lovelace", "Ada@Example.com", "Ada Lovelace")
    );
    assert_eq!(ada.roles, vec![Role::Customer]);
    assert_eq!(ada.id.len(), 36);

    for login in ["ada@example.com", "ADA@EXAMPLE.COM", "ada.lovelace", "Ada.Lovelace"] {
        let pair = harness.log_in(login, PASSWORD, Some("10.0.0.1")).await.unwrap();
        assert_eq!(pair.token_type, "Bearer");
        assert_eq!(pair.expires_in, 900);
        assert_eq!(pair.refresh_token.len(), 43, "32 random bytes, base64url");
        let claims = verify_claims(&harness.jwks().await, &pair.access_token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.iss.as_str(), claims.aud.as_str()),
            (ada.id.as_str(), "emporium", "emporium-api")
        );
        assert_eq!(claims.roles, vec![Role::Customer]);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.jti.len(), 36);
    }

    let pair = harness.log_in("ada.lovelace", PASSWORD, None).await.unwrap();
    let caller = harness.caller_of(&pair).await;
    assert_eq!(harness.ask(GetCurrentUser { caller: caller.clone() }).await.unwrap(), ada, "me is the registered user");
    assert!(harness.ask(CheckUserActive { user_id: ada.id.clone() }).await.unwrap());
    assert!(!harness.ask(CheckUserActive { user_id: "no-such-user".into() }).await.unwrap());
    let other = harness.log_in("ada.lovelace", PASSWORD, None).await.unwrap();
    assert_ne!(other.refresh_token, pair.refresh_token);
    assert_ne!(harness.caller_of(&other).await.token_id, caller.token_id);
}

async fn sign_up_refuses_bad_input_and_taken_names_with_exact_codes(harness: &mut Harness) {
    let register = |username: &str, email: &str, full_name: &str, password: &str| RegisterUser {
        request: RegisterRequest {
            username: username.into(),
            email: email.into(),
            full_name: full_name.into(),
            password: password.into(),
        },
        client: ClientInfo::default(),
    };
    let cases = [
        (register("ab", "ab@example.com", "A B", PASSWORD), "invalid_username"),
        (register("ada lovelace", "ada@example.com", "Ada", PASSWORD), "invalid_username"),
        (register(&"a".repeat(33), "ada@example.com", "Ada", PASSWORD), "invalid_username"),
        (register("ada", "not-an-email", "Ada", PASSWORD), "invalid_email"),
        (register("ada", "ada@localhost", "Ada", PASSWORD), "invalid_email"),
        (register("ada", "ada@exa mple.com", "Ada", PASSWORD), "invalid_email"),
        (register("ada", "ada@example.com", "", PASSWORD), "invalid_full_name"),
        (register("ada", "ada@example.com", &"x".repeat(101), PASSWORD), "invalid_full_name"),
        (register("ada", "ada@example.com", "Ada", "short"), "weak_password"),
        (register("ada", "ada@example.com", "Ada", &"p".repeat(1025)), "weak_password"),
    ];
    for (message, code) in cases {
        assert_error(harness.ask(message).await, 400, code);
    }
    harness.register("ada", PASSWORD).await;
    assert_error(harness.ask(register("ADA", "other@example.com", "Ada", PASSWORD)).await, 409, "username_taken");
    assert_error(harness.ask(register("grace", "Ada@Example.COM", "Ada", PASSWORD)).await, 409, "email_taken");
    assert_error(harness.ask(register(ADMIN_USERNAME, "x@example.com", "Ada", PASSWORD)).await, 409, "username_taken");
    assert_error(harness.ask(register("root", ADMIN_EMAIL, "Ada", PASSWORD)).await, 409, "email_taken");
}

async fn unknown_accounts_and_wrong_passwords_get_the_same_answer(harness: &mut Harness) {
    harness.register("ada", PASSWORD).await;
    let unknown = assert_error(harness.log_in("nobody@example.com", PASSWORD, None).await, 401, "invalid_credentials");
    let wrong =
        assert_error(harness.log_in("ada@example.com", "wrong password", None).await, 401, "invalid_credentials");
    assert_eq!(unknown, wrong, "the very same answer");
    assert_error(harness.log_in("ada", "", None).await, 401, "invalid_credentials");
    assert_error(harness.log_in("ada", &"p".repeat(10_000), None).await, 401, "invalid_credentials");
    let nameless = support::log_in("", PASSWORD, None);
    assert_error(harness.ask(nameless).await, 400, "invalid_login");
}

async fn failed_sign_ins_slow_the_failing_client_and_never_lock_out_the_owner(harness: &mut Harness) {
    const ATTACKER: Option<&str> = Some("203.0.113.66");
    const OWNER: Option<&str> = Some("198.51.100.7");
    harness.register("ada", PASSWORD).await;
    for _ in 0..5 {
        assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 401, "invalid_credentials");
    }
    // Past five failures the failing client waits, before its password is even looked at,
    // by email or by username.
    let refused = assert_error(harness.log_in("ada@example.com", PASSWORD, ATTACKER).await, 429, "too_many_attempts");
    assert_eq!(refused.retry_after_secs, Some(1));
    // The owner, from their own client, is not slowed at all.
    harness.log_in("ada", PASSWORD, OWNER).await.expect("another client of the account signs in");

    // Each further failure doubles the attacker's wait, up to a minute; refused attempts do
    // not count. (The owner's success above forgot the account's failures: five free again.)
    for _ in 0..5 {
        assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 401, "invalid_credentials");
    }
    let mut waits = Vec::new();
    for _ in 0..9 {
        let refused = assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 429, "too_many_attempts");
        let wait = refused.retry_after_secs.unwrap();
        assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 429, "too_many_attempts");
        waits.push(wait);
        harness.clock.advance(Duration::from_secs(wait.into()));
        assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 401, "invalid_credentials");
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    harness.log_in("ada", PASSWORD, OWNER).await.expect("the owner still signs in");
    harness.log_in("ada", PASSWORD, None).await.expect("and from an unknown client");

    // Unknown names are throttled the same way, so they cannot be told from accounts.
    for _ in 0..5 {
        assert_error(harness.log_in("ghost", PASSWORD, ATTACKER).await, 401, "invalid_credentials");
    }
    assert_error(harness.log_in("ghost", PASSWORD, ATTACKER).await, 429, "too_many_attempts");
    // A client's failures are forgotten after the window (15 minutes).
    for _ in 0..5 {
        assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 401, "invalid_credentials");
    }
    harness.clock.advance(Duration::from_secs(15 * 60 + 1));
    for _ in 0..5 {
        assert_error(harness.log_in("ada", "wrong password", ATTACKER).await, 401, "invalid_credentials");
    }
    assert_error(harness.log_in("ada", PASSWORD, ATTACKER).await, 429, "too_many_attempts");
}

async fn failed_sign_ins_are_limited_per_client_address(harness: &mut Harness) {
    harness.register("ada", PASSWORD).await;
    for attempt in 0..20 {
        let login = format!("user{attempt}");
        assert_error(harness.log_in(&login, PASSWORD, Some("192.0.2.7")).await, 401, "invalid_credentials");
    }
    let refused = assert_error(harness.log_in("ada", PASSWORD, Some("192.0.2.7")).await, 429, "too_many_attempts");
    assert_eq!(refused.retry_after_secs, Some(60));
    harness.log_in("ada", PASSWORD, Some("192.0.2.8")).await.expect("another address is not limited");
    harness.clock.advance(Duration::from_secs(60));
    harness.log_in("ada", PASSWORD, Some("192.0.2.7")).await.expect("the minute passed");
}

async fn refresh_rotates_and_a_replayed_token_revokes_its_family(harness: &mut Harness) {
    let ada = harness.register("ada", PASSWORD).await;
    let first = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let other_session = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let refresh = |token: &str| RefreshTokens { refresh_token: token.to_string(), client: ClientInfo::default() };

    let second = harness.ask(refresh(&first.refresh_token)).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let caller = harness.caller_of(&second).await;
    assert_eq!((caller.user_id.as_str(), caller.roles.as_slice()), (ada.id.as_str(), &[Role::Customer][..]));
    let third = harness.ask(refresh(&second.refresh_token)).await.unwrap();

    // `first` was rotated: presenting it again is a replay and revokes the whole family.
    assert_error(harness.ask(refresh(&first.refresh_token)).await, 401, "invalid_refresh_token");
    assert_error(harness.ask(refresh(&third.refresh_token)).await, 401, "invalid_refresh_token");
    assert_error(harness.ask(refresh(&second.refresh_token)).await, 401, "invalid_refresh_token");
    // Another sign-in is another family.
    harness.ask(refresh(&other_session.refresh_token)).await.expect("the other session lives");
}

async fn of_two_concurrent_refreshes_with_one_token_exactly_one_wins(harness: &mut Harness) {
    harness.register("ada", PASSWORD).await;
    let pair = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let refresh = || RefreshTokens { refresh_token: pair.refresh_token.clone(), client: ClientInfo::default() };
    let (first, second) = futures::join!(harness.ask(refresh()), harness.ask(refresh()));
    let outcomes = [first, second];
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 1, "{outcomes:?}");
    let loser = outcomes.into_iter().find(|outcome| outcome.is_err()).unwrap();
    assert_error(loser, 401, "invalid_refresh_token");
}

async fn expired_and_unknown_refresh_tokens_are_refused(harness: &mut Harness) {
    harness.register("ada", PASSWORD).await;
    let refresh = |token: &str| RefreshTokens { refresh_token: token.to_string(), client: ClientInfo::default() };
    assert_error(harness.ask(refresh("not-a-token")).await, 401, "invalid_refresh_token");
    assert_error(harness.ask(refresh("")).await, 401, "invalid_refresh_token");
    let pair = harness.log_in("ada", PASSWORD, None).await.unwrap();
    harness.clock.advance(Duration::from_secs(14 * 24 * 3600 - 1));
    let renewed = harness.ask(refresh(&pair.refresh_token)).await.expect("valid until the 14th day");
    harness.clock.advance(Duration::from_secs(14 * 24 * 3600));
    assert_error(harness.ask(refresh(&renewed.refresh_token)).await, 401, "invalid_refresh_token");
}

async fn logout_revokes_the_session_of_the_access_token_or_the_given_token(harness: &mut Harness) {
    harness.register("ada", PASSWORD).await;
    harness.register("grace", PASSWORD).await;
    let refresh = |token: &str| RefreshTokens { refresh_token: token.to_string(), client: ClientInfo::default() };

    // By the access token: the refresh token issued with it goes, even after a rotation.
    let session = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let kept = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let caller = harness.caller_of(&session).await;
    harness.ask(LogOut { caller: caller.clone(), refresh_token: None }).await.unwrap();
    assert_error(harness.ask(refresh(&session.refresh_token)).await, 401, "invalid_refresh_token");
    harness.ask(LogOut { caller: caller.clone(), refresh_token: None }).await.expect("logging out twice is fine");
    let kept = harness.ask(refresh(&kept.refresh_token)).await.expect("another session lives");

    // By a given refresh token, only the caller's own.
    let graces = harness.log_in("grace", PASSWORD, None).await.unwrap();
    harness.ask(LogOut { caller: caller.clone(), refresh_token: Some(graces.refresh_token.clone()) }).await.unwrap();
    let graces = harness.ask(refresh(&graces.refresh_token)).await.expect("ada cannot sign grace out");
    harness.ask(LogOut { caller: caller.clone(), refresh_token: Some(kept.refresh_token.clone()) }).await.unwrap();
    assert_error(harness.ask(refresh(&kept.refresh_token)).await, 401, "invalid_refresh_token");
    let grace = harness.caller_of(&graces).await;
    harness.ask(LogOut { caller: grace, refresh_token: Some("unknown".into()) }).await.expect("204 whatever");
    harness.ask(refresh(&graces.refresh_token)).await.expect("an unknown token revokes nothing");
}

async fn a_deleted_user_is_inactive_and_can_neither_refresh_nor_sign_in(harness: &mut Harness) {
    let ada = harness.register("ada", PASSWORD).await;
    let pair = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let caller = harness.caller_of(&pair).await;
    let admin = harness.caller_of(&harness.log_in(ADMIN_USERNAME, ADMIN_PASSWORD, None).await.unwrap()).await;
    assert_eq!(admin.roles, vec![Role::Admin]);

    harness.ask(DeleteUser { caller: admin.clone(), user_id: ada.id.clone() }).await.unwrap();
    assert!(!harness.ask(CheckUserActive { user_id: ada.id.clone() }).await.unwrap());
    assert_error(harness.ask(GetCurrentUser { caller: caller.clone() }).await, 401, "user_not_found");
    let refresh = RefreshTokens { refresh_token: pair.refresh_token.clone(), client: ClientInfo::default() };
    assert_error(harness.ask(refresh).await, 401, "invalid_refresh_token");
    assert_error(harness.log_in("ada", PASSWORD, None).await, 401, "invalid_credentials");
    assert_error(harness.ask(DeleteUser { caller: admin, user_id: ada.id.clone() }).await, 404, "user_not_found");
    // The name is free again, for a new account with a new id.
    let again = harness.register("ada", PASSWORD).await;
    assert_ne!(again.id, ada.id);
}

async fn the_last_admin_cannot_be_deleted(harness: &mut Harness) {
    let admin = harness.caller_of(&harness.log_in(ADMIN_USERNAME, ADMIN_PASSWORD, None).await.unwrap()).await;
    let delete = |caller: &Caller, user_id: &str| DeleteUser { caller: caller.clone(), user_id: user_id.to_string() };
    assert_error(harness.ask(delete(&admin, &admin.user_id)).await, 409, "last_admin");
    assert!(harness.ask(CheckUserActive { user_id: admin.user_id.clone() }).await.unwrap());

    // With a second admin, either may go, but not both.
    let grace = harness.register("grace", PASSWORD).await;
    let make_admin = format!("UPDATE auth_users SET roles = 'admin' WHERE id = '{}'", grace.id);
    harness.database.execute(&make_admin).await.unwrap();
    let grace_caller = harness.caller_of(&harness.log_in("grace", PASSWORD, None).await.unwrap()).await;
    assert!(grace_caller.is_admin());
    harness.ask(delete(&grace_caller, &admin.user_id)).await.expect("another admin remains");
    assert_error(harness.ask(delete(&grace_caller, &grace.id)).await, 409, "last_admin");
    assert!(harness.ask(CheckUserActive { user_id: grace.id }).await.unwrap());
}

async fn only_admins_delete_accounts_and_rotate_keys(harness: &mut Harness) {
    let ada = harness.register("ada", PASSWORD).await;
    let grace = harness.register("grace", PASSWORD).await;
    let customer = harness.caller_of(&harness.log_in("ada", PASSWORD, None).await.unwrap()).await;
    assert_error(
        harness.ask(DeleteUser { caller: customer.clone(), user_id: grace.id.clone() }).await,
        403,
        "forbidden",
    );
    assert_error(harness.ask(DeleteUser { caller: customer.clone(), user_id: ada.id.clone() }).await, 403, "forbidden");
    assert_error(harness.ask(RotateSigningKey { caller: customer }).await, 403, "forbidden");
    assert!(harness.ask(CheckUserActive { user_id: grace.id }).await.unwrap());
    let forged = Caller { user_id: ada.id, roles: vec![Role::Customer], token_id: "x".into() };
    assert_error(harness.ask(RotateSigningKey { caller: forged }).await, 403, "forbidden");
}

async fn rotation_keeps_old_tokens_verifying_until_they_expire(harness: &mut Harness) {
    harness.register("ada", PASSWORD).await;
    let before = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let old_kid = kid_of(&before.access_token);
    assert_eq!(harness.jwks().await.keys.iter().map(|key| key.kid.clone()).collect::<Vec<_>>(), vec![old_kid.clone()]);
    let admin = harness.caller_of(&harness.log_in(ADMIN_USERNAME, ADMIN_PASSWORD, None).await.unwrap()).await;

    // At most one rotation per `key_rotation_min_interval` (5 minutes) after the key was made.
    let too_soon =
        assert_error(harness.ask(RotateSigningKey { caller: admin.clone() }).await, 429, "rotation_too_soon");
    assert_eq!(too_soon.retry_after_secs, Some(300));
    harness.clock.advance(Duration::from_secs(299));
    assert_error(harness.ask(RotateSigningKey { caller: admin.clone() }).await, 429, "rotation_too_soon");
    harness.clock.advance(Duration::from_secs(1));
    let rotated = harness.ask(RotateSigningKey { caller: admin.clone() }).await.unwrap();
    let too_soon =
        assert_error(harness.ask(RotateSigningKey { caller: admin.clone() }).await, 429, "rotation_too_soon");
    assert_eq!(too_soon.retry_after_secs, Some(300));
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.verifying_kids, vec![rotated.kid.clone(), old_kid.clone()], "new key first, old key kept");
    let after = harness.log_in("ada", PASSWORD, None).await.unwrap();
    assert_eq!(kid_of(&after.access_token), rotated.kid, "new tokens use the new key");
    let jwks = harness.jwks().await;
    verify(&jwks, &before.access_token).expect("a token of the old key still verifies");
    verify(&jwks, &after.access_token).expect("a token of the new key verifies");
    let refreshed = RefreshTokens { refresh_token: before.refresh_token.clone(), client: ClientInfo::default() };
    assert_eq!(kid_of(&harness.ask(refreshed).await.unwrap().access_token), rotated.kid);

    // The old key stays for the access token lifetime plus a minute of skew, then goes.
    harness.clock.advance(Duration::from_secs(15 * 60 + 59));
    assert_eq!(harness.jwks().await.keys.len(), 2);
    harness.clock.advance(Duration::from_secs(1));
    let kids: Vec<String> = harness.jwks().await.keys.into_iter().map(|key| key.kid).collect();
    assert_eq!(kids, vec![rotated.kid.clone()]);
    let again = harness.ask(RotateSigningKey { caller: admin }).await.unwrap();
    assert_eq!(again.verifying_kids, vec![again.kid.clone(), rotated.kid.clone()]);
}

async fn the_bootstrap_admin_is_made_once_and_the_key_survives_a_restart(harness: &mut Harness) {
    let admin_pair = harness.log_in(ADMIN_EMAIL, ADMIN_PASSWORD, None).await.unwrap();
    let admin = harness.caller_of(&admin_pair).await;
    let me = harness.ask(GetCurrentUser { caller: admin.clone() }).await.unwrap();
    assert_eq!(
        (me.username.as_str(), me.email.as_str(), me.roles.as_slice()),
        (ADMIN_USERNAME, ADMIN_EMAIL, &[Role::Admin][..])
    );

    // A restart on the same database and data directory with another admin password: the
    // admin is not made again, and the signing key is the same.
    let mut options = harness.options();
    options.admin_password = Some(SecretString::new("another-password"));
    let restarted = harness.start_another(options).await;
    let pair = support::ask(&restarted, support::log_in(ADMIN_USERNAME, ADMIN_PASSWORD, None)).await.unwrap();
    assert_eq!(kid_of(&pair.access_token), kid_of(&admin_pair.access_token));
    let refused = support::ask(&restarted, support::log_in(ADMIN_USERNAME, "another-password", None)).await;
    assert_error(refused, 401, "invalid_credentials");
    let registered = support::ask(
        &restarted,
        RegisterUser { request: registration("ada", PASSWORD), client: ClientInfo::default() },
    )
    .await;
    assert!(registered.is_ok(), "the restarted instance serves");
}

async fn two_instances_publish_each_others_keys(harness: &mut Harness) {
    // A second instance on the same database with a data directory of its own: its own key.
    let second_dir = harness.data_dir.join("second");
    let second = harness
        .start_another(AuthOptions {
            signing_key: emporium_auth::SigningKeySource::Generated { dir: second_dir.join("auth/keys") },
            ..harness.options()
        })
        .await;
    harness.register("ada", PASSWORD).await;
    let from_first = harness.log_in("ada", PASSWORD, None).await.unwrap();
    let from_second = support::ask(&second, support::log_in("ada", PASSWORD, None)).await.unwrap();
    assert_ne!(kid_of(&from_first.access_token), kid_of(&from_second.access_token));
    for endpoint in [harness.endpoint(), &second] {
        let jwks = support::ask(endpoint, emporium_contracts::auth::GetJwks::default()).await.unwrap();
        verify(&jwks, &from_first.access_token).expect("either JWKS verifies the first instance's tokens");
        verify(&jwks, &from_second.access_token).expect("either JWKS verifies the second instance's tokens");
    }
    // Refresh tokens work on either instance.
    let refresh = RefreshTokens { refresh_token: from_first.refresh_token.clone(), client: ClientInfo::default() };
    support::ask(&second, refresh).await.unwrap();
}

/// The account ceiling: failures spread over many clients (each under its own free count)
/// refuse every client once they reach it, until the oldest leaves the window.
#[actix_rt::test]
async fn failures_from_many_clients_meet_the_account_ceiling() {
    let limits = LoginLimits { max_failures_per_account: 6, ..LoginLimits::default() };
    support::run_with(
        support::Store::Sqlite,
        |options| options.login_limits = limits,
        async |harness: &mut Harness| {
            harness.register("ada", PASSWORD).await;
            for attempt in 0..6 {
                let address = format!("10.0.0.{attempt}");
                assert_error(harness.log_in("ada", "wrong password", Some(&address)).await, 401, "invalid_credentials");
                harness.clock.advance(Duration::from_secs(60));
            }
            let refused =
                assert_error(harness.log_in("ada", PASSWORD, Some("10.9.9.9")).await, 429, "too_many_attempts");
            assert_eq!(refused.retry_after_secs, Some(15 * 60 - 6 * 60));
            harness.clock.advance(Duration::from_secs(15 * 60 - 6 * 60));
            harness.log_in("ada", PASSWORD, Some("10.9.9.9")).await.expect("the oldest failure left the window");
        },
    )
    .await;
}

#[actix_rt::test]
async fn a_replaced_operator_key_verifies_one_more_window_then_leaves_the_jwks() {
    let first = emporium_auth::keys::SigningKey::generate(chrono::Utc::now()).unwrap();
    let first_pem = first.to_pem();
    support::run_with(
        support::Store::Sqlite,
        move |options| options.signing_key = emporium_auth::SigningKeySource::Pem(first_pem),
        async |harness: &mut Harness| {
            harness.register("ada", PASSWORD).await;
            let before = harness.log_in("ada", PASSWORD, None).await.unwrap();
            // The operator installs a new key and restarts.
            let second = emporium_auth::keys::SigningKey::generate(chrono::Utc::now()).unwrap();
            let options =
                AuthOptions { signing_key: emporium_auth::SigningKeySource::Pem(second.to_pem()), ..harness.options() };
            let restarted = harness.start_another(options).await;
            let after = support::ask(&restarted, support::log_in("ada", PASSWORD, None)).await.unwrap();
            assert_eq!(kid_of(&after.access_token), second.kid());
            let jwks = support::ask(&restarted, emporium_contracts::auth::GetJwks::default()).await.unwrap();
            verify(&jwks, &before.access_token).expect("tokens of the replaced key verify for one more window");
            harness.clock.advance(Duration::from_secs(16 * 60));
            let jwks = support::ask(&restarted, emporium_contracts::auth::GetJwks::default()).await.unwrap();
            assert_eq!(jwks.keys.iter().map(|key| key.kid.as_str()).collect::<Vec<_>>(), vec![second.kid()]);
        },
    )
    .await;
}
