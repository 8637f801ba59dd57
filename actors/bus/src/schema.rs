//! The bus's tables: `bus_outbox`, `bus_inbox` and `bus_dead_letter`, in every database a
//! service that publishes or consumes events keeps its state in.

use emporium_store::{Database, Migrations, StoreError};

/// The bus's migrations: versions `1_000_001..=1_999_999`.
pub const MIGRATIONS: Migrations = Migrations {
    owner: "bus",
    list: &[
        (
            1_000_001,
            "bus outbox",
            include_str!("../migrations/mysql/1000001_bus_outbox.sql"),
            include_str!("../migrations/sqlite/1000001_bus_outbox.sql"),
        ),
        (
            1_000_002,
            "bus inbox",
            include_str!("../migrations/mysql/1000002_bus_inbox.sql"),
            include_str!("../migrations/sqlite/1000002_bus_inbox.sql"),
        ),
        (
            1_000_003,
            "bus dead letter",
            include_str!("../migrations/mysql/1000003_bus_dead_letter.sql"),
            include_str!("../migrations/sqlite/1000003_bus_dead_letter.sql"),
        ),
    ],
};

/// Creates or updates the bus's tables in `database` (other crates' tables are left alone).
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    database.migrate(&MIGRATIONS).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_migrations_are_ordered_in_their_range() {
        MIGRATIONS.check().unwrap();
        assert_eq!(MIGRATIONS.list[0].0, 1_000_001);
    }

    #[tokio::test]
    async fn sqlite_migrates_twice() {
        let path = std::env::temp_dir().join(format!("bus-unit-{}.db", uuid::Uuid::new_v4()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        migrate(&database).await.unwrap();
        migrate(&database).await.unwrap();
        database
            .execute("INSERT INTO bus_inbox (consumer, event_id, processed_at) VALUES ('c', 'e', 'now')")
            .await
            .unwrap();
        database.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
