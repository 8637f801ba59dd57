//! The cluster layer of a node (in progress).
#![warn(missing_docs)]

pub mod credential;
pub mod settings;
