//! stub
pub mod database;
pub mod error;
pub mod inbox;
pub mod outbox;
