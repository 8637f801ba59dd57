//! The event bus (being built).
