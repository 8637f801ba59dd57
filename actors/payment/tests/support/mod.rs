//! The payment tests' set-up: the shared test kit.

pub use emporium_testkit::*;
