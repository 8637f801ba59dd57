//! The repository suite. Every case runs twice, on a fresh SQLite file and on a fresh database
//! of the machine's MariaDB (`EMPORIUM_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`),
//! dropped when the case ends.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use emporium_contracts::identity::Role;
use emporium_store::Database;

use super::*;
use crate::error::AuthError;
use crate::validation::LoginName;

fn mysql_url() -> String {
    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// A migrated store on a fresh database, dropped by [`TestStore::destroy`].
struct TestStore {
    store: AuthStore,
    mysql_database: Option<String>,
    sqlite_path: Option<PathBuf>,
}

impl TestStore {
    async fn sqlite() -> TestStore {
        let path = std::env::temp_dir().join(format!("auth_test_{}.db", uuid::Uuid::new_v4().simple()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        TestStore::migrated(database, None, Some(path)).await
    }

    async fn mariadb() -> TestStore {
        let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
        let server = Database::connect(&mysql_url())
            .await
            .unwrap_or_else(|error| panic!("MariaDB at {} is needed for this test: {error}", mysql_url()));
        server.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        server.close().await;
        let database = Database::connect(&format!("{}/{name}", mysql_url())).await.unwrap();
        TestStore::migrated(database, Some(name), None).await
    }

    async fn migrated(database: Database, mysql_database: Option<String>, sqlite_path: Option<PathBuf>) -> TestStore {
        emporium_bus::migrate(&database).await.unwrap();
        let store = AuthStore::new(database);
        store.migrate().await.unwrap();
        store.migrate().await.expect("migrating twice is a no-op");
        TestStore { store, mysql_database, sqlite_path }
    }
}

impl TestStore {
    /// Closes the pool (letting dropped transactions roll back) and drops the database.
    async fn destroy(mut self) {
        self.store.database().close().await;
        if let Some(name) = self.mysql_database.take() {
            let server = Database::connect(&mysql_url()).await.unwrap();
            server.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
            server.close().await;
        }
        if let Some(path) = self.sqlite_path.take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// Runs `case` on `test`, then destroys the database whether the case passed or not.
async fn run(test: TestStore, case: impl AsyncFnOnce(&TestStore)) {
    use futures::FutureExt as _;
    let outcome = std::panic::AssertUnwindSafe(case(&test)).catch_unwind().await;
    test.destroy().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs the async case `$case(TestStore)` once per store.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    super::run(super::TestStore::sqlite().await, super::$case).await;
                }

                #[tokio::test]
                async fn mariadb() {
                    super::run(super::TestStore::mariadb().await, super::$case).await;
                }
            }
        )*
    };
}

on_both_stores!(
    users_are_found_by_id_email_and_username_in_any_case,
    usernames_and_emails_are_unique_whatever_their_case_by_the_indexes,
    of_two_concurrent_sign_ups_for_one_name_exactly_one_wins,
    an_admin_is_found_and_hashes_are_replaced,
    deleting_a_user_takes_their_tokens_and_failures,
    a_refresh_token_is_claimed_once_while_live,
    revoking_a_family_and_finding_it_by_access_token,
    login_failures_are_counted_per_account_and_address_within_a_window,
    signing_keys_are_published_retired_and_republished,
    a_rolled_back_transaction_leaves_neither_the_user_nor_its_event,
);

#[test]
fn the_migrations_are_ordered_within_the_auth_range() {
    MIGRATIONS.check().unwrap();
    assert!(MIGRATIONS.list.iter().all(|(version, ..)| (2_000_001..=2_999_999).contains(version)));
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn user(username: &str, email: &str) -> UserRecord {
    UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_string(),
        email: email.to_string(),
        full_name: format!("{username} Example"),
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_string(),
        roles: vec![Role::Customer],
        created_at: from_millis(millis(Utc::now())),
    }
}

async fn insert(store: &AuthStore, user: &UserRecord) -> Result<(), AuthError> {
    let mut tx = store.database().begin().await.unwrap();
    store.insert_user(&mut tx, user).await?;
    tx.commit().await.unwrap();
    Ok(())
}

fn refresh(user_id: &str, family_id: &str, hash: &str, issued: DateTime<Utc>) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.to_string(),
        family_id: family_id.to_string(),
        user_id: user_id.to_string(),
        access_jti: format!("jti-{hash}"),
        issued_at: issued,
        expires_at: issued + Duration::days(14),
        rotated_at: None,
        revoked_at: None,
    }
}

async fn insert_refresh(store: &AuthStore, record: &RefreshRecord) {
    let mut tx = store.database().begin().await.unwrap();
    store.insert_refresh_token(&mut tx, record).await.unwrap();
    tx.commit().await.unwrap();
}

async fn users_are_found_by_id_email_and_username_in_any_case(test: &TestStore) {
    let store = &test.store;
    let ada = user("Ada.Lovelace", "Ada@Example.com");
    insert(store, &ada).await.unwrap();
    assert_eq!(store.find_user(&ada.id).await.unwrap(), Some(ada.clone()), "every field round-trips");
    let by_email = store.find_user_by_login(&LoginName::Email("ada@example.COM".into())).await.unwrap();
    assert_eq!(by_email.map(|found| found.id), Some(ada.id.clone()));
    let by_username = store.find_user_by_login(&LoginName::Username("ADA.lovelace".into())).await.unwrap();
    assert_eq!(by_username.unwrap().username, "Ada.Lovelace", "kept as registered");
    assert!(store.find_user_by_login(&LoginName::Username("ada@example.com".into())).await.unwrap().is_none());
    assert!(store.find_user("no-such-id").await.unwrap().is_none());
    assert!(store.user_exists(&ada.id).await.unwrap());
    assert!(!store.user_exists("no-such-id").await.unwrap());
}

async fn usernames_and_emails_are_unique_whatever_their_case_by_the_indexes(test: &TestStore) {
    let store = &test.store;
    insert(store, &user("ada", "ada@example.com")).await.unwrap();
    assert!(matches!(store.find_conflict("ADA", "other@example.com").await.unwrap(), Some(AuthError::UsernameTaken)));
    assert!(matches!(store.find_conflict("bob", "ADA@example.com").await.unwrap(), Some(AuthError::EmailTaken)));
    assert!(matches!(store.find_conflict("Ada", "ADA@EXAMPLE.COM").await.unwrap(), Some(AuthError::UsernameTaken)));
    assert!(store.find_conflict("bob", "bob@example.com").await.unwrap().is_none());
    // Straight to the insert, no check first: the unique indexes refuse.
    let same_username = insert(store, &user("ADA", "other@example.com")).await;
    assert!(matches!(same_username, Err(AuthError::UsernameTaken)), "{same_username:?}");
    let same_email = insert(store, &user("bob", "ADA@EXAMPLE.COM")).await;
    assert!(matches!(same_email, Err(AuthError::EmailTaken)), "{same_email:?}");
    // A username that looks like the index name does not confuse the mapping.
    insert(store, &user("auth_users.email_lower", "x@example.com")).await.unwrap();
    let tricky = insert(store, &user("AUTH_USERS.EMAIL_LOWER", "y@example.com")).await;
    assert!(matches!(tricky, Err(AuthError::UsernameTaken)), "{tricky:?}");
}

async fn of_two_concurrent_sign_ups_for_one_name_exactly_one_wins(test: &TestStore) {
    let store = &test.store;
    let attempt = |user: UserRecord| async move {
        let mut tx = store.database().begin().await?;
        store.insert_user(&mut tx, &user).await?;
        tokio::task::yield_now().await;
        tx.commit().await?;
        Ok::<_, AuthError>(())
    };
    let (first, second) =
        futures::join!(attempt(user("grace", "grace@example.com")), attempt(user("Grace", "hopper@example.com")));
    let outcomes = [first, second];
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().any(|outcome| matches!(outcome, Err(AuthError::UsernameTaken))), "{outcomes:?}");
}

async fn an_admin_is_found_and_hashes_are_replaced(test: &TestStore) {
    let store = &test.store;
    insert(store, &user("ada", "ada@example.com")).await.unwrap();
    assert!(!store.admin_exists().await.unwrap());
    let mut admin = user("root", "root@example.com");
    admin.roles = vec![Role::Admin, Role::Customer];
    insert(store, &admin).await.unwrap();
    assert!(store.admin_exists().await.unwrap());
    assert_eq!(store.find_user(&admin.id).await.unwrap().unwrap().roles, vec![Role::Customer, Role::Admin]);
    store.update_password_hash(&admin.id, "$argon2id$new").await.unwrap();
    assert_eq!(store.find_user(&admin.id).await.unwrap().unwrap().password_hash, "$argon2id$new");
}

async fn deleting_a_user_takes_their_tokens_and_failures(test: &TestStore) {
    let store = &test.store;
    let ada = user("ada", "ada@example.com");
    let bob = user("bob", "bob@example.com");
    insert(store, &ada).await.unwrap();
    insert(store, &bob).await.unwrap();
    insert_refresh(store, &refresh(&ada.id, "f1", "h1", at(0))).await;
    insert_refresh(store, &refresh(&bob.id, "f2", "h2", at(0))).await;
    let mut tx = store.database().begin().await.unwrap();
    let ada_key = crate::throttle::account_key_of_user(&ada.id);
    store.record_login_failure(&mut tx, &ada_key, None, at(0)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.database().begin().await.unwrap();
    assert!(store.delete_user(&mut tx, &ada.id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.find_user(&ada.id).await.unwrap().is_none());
    assert!(store.find_refresh_token("h1").await.unwrap().is_none());
    assert!(store.find_refresh_token("h2").await.unwrap().is_some(), "other users keep theirs");
    let failures = store.nth_latest_login_failure(FailureScope::Account(&ada_key), at(-60), 1).await.unwrap();
    assert!(failures.is_none());

    let mut tx = store.database().begin().await.unwrap();
    assert!(!store.delete_user(&mut tx, &ada.id).await.unwrap(), "already gone");
    assert!(!store.delete_user(&mut tx, "no-such-id").await.unwrap());
}

async fn a_refresh_token_is_claimed_once_while_live(test: &TestStore) {
    let store = &test.store;
    let ada = user("ada", "ada@example.com");
    insert(store, &ada).await.unwrap();
    insert_refresh(store, &refresh(&ada.id, "family", "live", at(0))).await;

    let mut tx = store.database().begin().await.unwrap();
    let claimed = store.claim_refresh_token(&mut tx, "live", at(10)).await.unwrap().unwrap();
    assert_eq!((claimed.user_id.as_str(), claimed.family_id.as_str()), (ada.id.as_str(), "family"));
    assert_eq!(claimed.rotated_at, Some(at(10)));
    assert!(store.claim_refresh_token(&mut tx, "live", at(11)).await.unwrap().is_none(), "once only");
    tx.commit().await.unwrap();
    let mut tx = store.database().begin().await.unwrap();
    assert!(store.claim_refresh_token(&mut tx, "live", at(12)).await.unwrap().is_none());
    assert!(store.claim_refresh_token(&mut tx, "unknown", at(12)).await.unwrap().is_none());
    drop(tx);
    let stored = store.find_refresh_token("live").await.unwrap().unwrap();
    assert_eq!((stored.rotated_at, stored.revoked_at), (Some(at(10)), None));

    // Expired and revoked tokens cannot be claimed.
    insert_refresh(store, &refresh(&ada.id, "family-2", "old", at(0))).await;
    let mut tx = store.database().begin().await.unwrap();
    assert!(store.claim_refresh_token(&mut tx, "old", at(0) + Duration::days(14)).await.unwrap().is_none());
    drop(tx);
    store.revoke_family("family-2", at(1)).await.unwrap();
    let mut tx = store.database().begin().await.unwrap();
    assert!(store.claim_refresh_token(&mut tx, "old", at(2)).await.unwrap().is_none());
    drop(tx);

    // A claim rolled back leaves the token live.
    insert_refresh(store, &refresh(&ada.id, "family-3", "again", at(0))).await;
    let mut tx = store.database().begin().await.unwrap();
    assert!(store.claim_refresh_token(&mut tx, "again", at(5)).await.unwrap().is_some());
    tx.rollback().await.unwrap();
    let mut tx = store.database().begin().await.unwrap();
    assert!(store.claim_refresh_token(&mut tx, "again", at(6)).await.unwrap().is_some());
    let purged = store.purge_expired_refresh_tokens(&mut tx, &ada.id, at(0) + Duration::days(15)).await.unwrap();
    assert_eq!(purged, 3);
    tx.commit().await.unwrap();
}

async fn revoking_a_family_and_finding_it_by_access_token(test: &TestStore) {
    let store = &test.store;
    let ada = user("ada", "ada@example.com");
    insert(store, &ada).await.unwrap();
    insert_refresh(store, &refresh(&ada.id, "family", "first", at(0))).await;
    insert_refresh(store, &refresh(&ada.id, "family", "second", at(1))).await;
    insert_refresh(store, &refresh(&ada.id, "other", "third", at(2))).await;
    assert_eq!(store.family_of_access_token(&ada.id, "jti-second").await.unwrap().as_deref(), Some("family"));
    assert!(store.family_of_access_token("someone-else", "jti-second").await.unwrap().is_none());
    assert_eq!(store.revoke_family("family", at(5)).await.unwrap(), 2);
    assert_eq!(store.revoke_family("family", at(6)).await.unwrap(), 0, "revoked once");
    assert_eq!(store.find_refresh_token("first").await.unwrap().unwrap().revoked_at, Some(at(5)));
    assert!(store.find_refresh_token("third").await.unwrap().unwrap().revoked_at.is_none());
}

async fn login_failures_are_counted_per_account_and_address_within_a_window(test: &TestStore) {
    let store = &test.store;
    let mut tx = store.database().begin().await.unwrap();
    for second in [0, 1, 2] {
        store.record_login_failure(&mut tx, "user:a", Some("10.0.0.1"), at(second)).await.unwrap();
    }
    store.record_login_failure(&mut tx, "user:b", Some("10.0.0.1"), at(3)).await.unwrap();
    store.record_login_failure(&mut tx, "user:b", None, at(4)).await.unwrap();
    tx.commit().await.unwrap();

    let account = |nth, since| store.nth_latest_login_failure(FailureScope::Account("user:a"), since, nth);
    assert_eq!(account(1, at(-10)).await.unwrap(), Some(at(2)));
    assert_eq!(account(3, at(-10)).await.unwrap(), Some(at(0)));
    assert_eq!(account(4, at(-10)).await.unwrap(), None);
    assert_eq!(account(3, at(0)).await.unwrap(), None, "the window starts after `since`");
    let address = |nth| store.nth_latest_login_failure(FailureScope::Address("10.0.0.1"), at(-10), nth);
    assert_eq!(address(4).await.unwrap(), Some(at(0)));
    assert_eq!(address(5).await.unwrap(), None);

    let mut tx = store.database().begin().await.unwrap();
    store.clear_login_failures(&mut tx, "user:a").await.unwrap();
    assert_eq!(store.purge_login_failures(&mut tx, at(4)).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(account(1, at(-10)).await.unwrap(), None);
    let left = store.nth_latest_login_failure(FailureScope::Account("user:b"), at(-10), 1).await.unwrap();
    assert_eq!(left, Some(at(4)));
}

async fn signing_keys_are_published_retired_and_republished(test: &TestStore) {
    let store = &test.store;
    store.publish_signing_key("k1", "x1", at(0)).await.unwrap();
    store.publish_signing_key("k1", "x1", at(0)).await.expect("publishing again is fine");
    store.publish_signing_key("k2", "x2", at(10)).await.unwrap();
    store.retire_signing_key("k1", at(10)).await.unwrap();
    let kids = |keys: Vec<super::signing_keys::PublishedKey>| keys.into_iter().map(|key| key.kid).collect::<Vec<_>>();
    assert_eq!(kids(store.published_signing_keys(at(5)).await.unwrap()), ["k2", "k1"], "newest first");
    assert_eq!(kids(store.published_signing_keys(at(10)).await.unwrap()), ["k2"], "k1 retired at the cut-off");
    let keys = store.published_signing_keys(at(0)).await.unwrap();
    assert_eq!((keys[1].x.as_str(), keys[1].retired_at), ("x1", Some(at(10))));
    store.retire_signing_key("k1", at(20)).await.unwrap();
    assert_eq!(store.published_signing_keys(at(0)).await.unwrap()[1].retired_at, Some(at(10)), "retired once");
    store.publish_signing_key("k1", "x1", at(0)).await.unwrap();
    assert_eq!(kids(store.published_signing_keys(at(100)).await.unwrap()), ["k2", "k1"], "signing again");
    assert_eq!(store.retire_other_signing_keys("k2", at(200)).await.unwrap(), 1);
    assert_eq!(kids(store.published_signing_keys(at(199)).await.unwrap()), ["k2", "k1"]);
    assert_eq!(kids(store.published_signing_keys(at(200)).await.unwrap()), ["k2"]);
}

async fn a_rolled_back_transaction_leaves_neither_the_user_nor_its_event(test: &TestStore) {
    let store = &test.store;
    let ada = user("ada", "ada@example.com");
    let mut tx = store.database().begin().await.unwrap();
    store.insert_user(&mut tx, &ada).await.unwrap();
    let event = emporium_contracts::events::UserLoggedIn { user_id: ada.id.clone() };
    crate::shared::enqueue(&mut tx, emporium_contracts::events::USER_LOGGED_IN, &ada.id, &event, None).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(store.find_user(&ada.id).await.unwrap().is_none());
    assert_eq!(store.database().execute("DELETE FROM bus_outbox").await.unwrap(), 0, "no event either");

    let mut tx = store.database().begin().await.unwrap();
    store.insert_user(&mut tx, &ada).await.unwrap();
    crate::shared::enqueue(&mut tx, emporium_contracts::events::USER_LOGGED_IN, &ada.id, &event, None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.database().execute("DELETE FROM bus_outbox").await.unwrap(), 1, "both committed");
}
