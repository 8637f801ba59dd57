//! The auth service (being built).
