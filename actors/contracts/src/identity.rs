//! Who is calling: the identity the gateway takes from a verified access token and hands to
//! services with every request made on a user's behalf.

use serde::{Deserialize, Serialize};

/// A role a user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A shopper.
    Customer,
    /// An operator of the shop.
    Admin,
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    /// The user's id (the token's `sub`).
    pub user_id: String,
    /// The user's roles (the token's `roles`).
    pub roles: Vec<Role>,
    /// The access token's id (`jti`).
    pub token_id: String,
}

impl Caller {
    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }
}
