//! The SQL database layer every service and the event bus share.
//!
//! A service keeps its state in MariaDB/MySQL (`EMPORIUM_MYSQL_URL`) in production and in an
//! embedded SQLite file otherwise. Both speak through one pool type, sqlx's `Any` driver, so a
//! store function is written once: it takes a [`Database`] (the pool) or a [`DbTx`] (an open
//! transaction) and runs the same SQL text on either dialect (both take `?` placeholders).
//! Where the dialects differ (`INSERT IGNORE` against `INSERT OR IGNORE`, `FOR UPDATE`), the
//! code asks [`Database::dialect`] and picks the text; there is no other dispatch.
//!
//! What `Any` decodes: integers, floats, text, blobs and booleans. Times are stored as epoch
//! milliseconds (`BIGINT`) or as text; a MariaDB `DECIMAL` (what `SUM()` returns) must be cast
//! (`CAST(SUM(x) AS SIGNED)`) before it is read.
//!
//! **Migrations.** Each crate embeds its SQL for both dialects ([`Migrations`]) in its own
//! version range (the bus `1_000_001..`, auth `2_000_001..`, and so on) and applies it with
//! [`Database::migrate`], which ignores the other crates' versions in the shared
//! `_sqlx_migrations` table. On MariaDB/MySQL every migration runs under a server-wide named
//! lock ([`migrate`]), so nodes started at the same moment on a fresh database take turns
//! instead of racing.
//!
//! **Commit signals.** A transaction can name signals to raise once it commits
//! ([`DbTx::signal_on_commit`]); whoever waits on [`Database::commit_signal`] wakes at once
//! (the bus's outbox relay does, for the events a commit enqueued).
#![warn(missing_docs)]

mod database;
mod error;
pub mod migrate;
#[cfg(feature = "testing")]
pub mod testing;

pub use database::{Database, DbTx, Dialect};
pub use error::{StoreError, redact_url};
pub use migrate::{Migrations, SqlMigration};
pub use sqlx::AnyConnection;
pub use sqlx::any::AnyRow;
pub use sqlx::{Row, query, query_scalar};
