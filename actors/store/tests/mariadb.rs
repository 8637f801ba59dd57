//! The database layer on the machine's MariaDB (`EMPORIUM_TEST_MYSQL_URL`, started by
//! `ops/test.sh`): concurrent starts on a fresh database take turns on the migration lock, and
//! the dialect's values come back through the one pool type.

use emporium_store::testing::{StoreKind, TestDatabase};
use emporium_store::{Database, Dialect, Migrations, Row};

const BUS_LIKE: Migrations = Migrations {
    owner: "bus-like",
    list: &[
        (
            1_000_001,
            "outbox",
            "CREATE TABLE t_outbox (id BIGINT PRIMARY KEY)",
            "CREATE TABLE t_outbox (id INTEGER PRIMARY KEY)",
        ),
        (
            1_000_002,
            "inbox",
            "CREATE TABLE t_inbox (id BIGINT PRIMARY KEY)",
            "CREATE TABLE t_inbox (id INTEGER PRIMARY KEY)",
        ),
    ],
};

const SERVICE_LIKE: Migrations = Migrations {
    owner: "service-like",
    list: &[(3_000_001, "stock", "CREATE TABLE t_stock (sku VARCHAR(64) PRIMARY KEY, n BIGINT NOT NULL)", "x")],
};

/// Seven nodes start at the same moment on a fresh database, each migrating the shared tables
/// and its own, five rounds in a row: every one succeeds (without the lock they race on
/// `_sqlx_migrations` and most fail with a duplicate entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_nodes_migrating_a_fresh_database_at_once_all_succeed() {
    for round in 0..5 {
        let test_database = TestDatabase::create(StoreKind::MariaDb, "store_migrate").await;
        let url = test_database.url();
        let mut starts = Vec::new();
        for _ in 0..7 {
            let url = url.clone();
            starts.push(tokio::spawn(async move {
                let database = Database::connect(&url).await?;
                database.migrate(&BUS_LIKE).await?;
                database.migrate(&SERVICE_LIKE).await?;
                database.close().await;
                Ok::<_, emporium_store::StoreError>(())
            }));
        }
        for start in starts {
            start.await.unwrap().unwrap_or_else(|error| panic!("round {round}: a node failed to migrate: {error}"));
        }
        let database = Database::connect(&url).await.unwrap();
        let applied: i64 = emporium_store::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(database.pool())
            .await
            .unwrap();
        assert_eq!(applied, 3, "round {round}");
        database.close().await;
        test_database.drop_now().await;
    }
}

#[tokio::test]
async fn mariadb_values_come_back_through_the_one_pool_type() {
    let test_database = TestDatabase::create(StoreKind::MariaDb, "store_values").await;
    let database = &test_database.database;
    assert_eq!(database.dialect(), Dialect::MySql);
    database.migrate(&SERVICE_LIKE).await.unwrap();
    let mut tx = database.begin().await.unwrap();
    emporium_store::query("INSERT INTO t_stock (sku, n) VALUES (?, ?), (?, ?)")
        .bind("A-1")
        .bind(5_i64)
        .bind("B-2")
        .bind(7_i32)
        .execute(tx.connection())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row = emporium_store::query(
        "SELECT CAST(SUM(n) AS SIGNED) AS total, COUNT(*) AS num_lines, MAX(sku) AS last FROM t_stock",
    )
    .fetch_one(database.pool())
    .await
    .unwrap();
    assert_eq!(row.try_get::<i64, _>("total").unwrap(), 12);
    assert_eq!(row.try_get::<i64, _>("num_lines").unwrap(), 2);
    assert_eq!(row.try_get::<String, _>("last").unwrap(), "B-2");
    test_database.drop_now().await;
}
