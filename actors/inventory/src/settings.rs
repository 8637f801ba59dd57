//! The `[inventory]` section of the configuration; applies live.

use emporium_cluster::settings::ServiceSettings;
use serde::{Deserialize, Serialize};

/// How long reservations hold stock, and how often they are checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySettings {
    /// How long an unpaid order's reservation holds its stock before inventory releases it
    /// itself, in milliseconds (15 minutes).
    pub reservation_ttl_millis: u64,
    /// How often inventory looks for expired reservations, in milliseconds (1 s).
    pub expiry_sweep_millis: u64,
}

impl Default for InventorySettings {
    fn default() -> Self {
        InventorySettings { reservation_ttl_millis: 15 * 60 * 1000, expiry_sweep_millis: 1_000 }
    }
}

impl ServiceSettings for InventorySettings {
    const SECTION: &'static str = "inventory";

    fn validate(&self) -> Result<(), String> {
        if self.reservation_ttl_millis == 0 || self.expiry_sweep_millis == 0 {
            return Err("reservation_ttl_millis and expiry_sweep_millis must be positive".to_string());
        }
        Ok(())
    }
}
