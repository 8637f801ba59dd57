//! The roles a node can take, as `--role` names them.

use crate::cli::RoleList;

/// What a node can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Discovery and configuration.
    Registry,
    /// Users, passwords and tokens.
    Auth,
    /// The catalog.
    Product,
    /// Stock and reservations.
    Inventory,
    /// Orders.
    Order,
    /// Payments through the payment provider.
    Payment,
    /// Notifications (stored, and emailed when SMTP is configured).
    Notification,
    /// The public HTTP entry (last, so the services of its node are up when it opens).
    Gateway,
    /// The diagnostic echo service (builds with the `test-services` feature only).
    #[cfg(feature = "test-services")]
    Echo,
    /// The diagnostic probe service, which asks `echo` through `ServiceRef`.
    #[cfg(feature = "test-services")]
    Probe,
}

impl Role {
    /// Every role `all` stands for.
    const ALL: [Role; 8] = [
        Role::Registry,
        Role::Auth,
        Role::Product,
        Role::Inventory,
        Role::Order,
        Role::Payment,
        Role::Notification,
        Role::Gateway,
    ];

    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Registry => "registry",
            Role::Auth => "auth",
            Role::Product => "product",
            Role::Inventory => "inventory",
            Role::Order => "order",
            Role::Payment => "payment",
            Role::Notification => "notification",
            Role::Gateway => "gateway",
            #[cfg(feature = "test-services")]
            Role::Echo => "echo",
            #[cfg(feature = "test-services")]
            Role::Probe => "probe",
        }
    }

    /// Whether the role's service publishes or consumes events.
    pub fn uses_the_bus(self) -> bool {
        matches!(self, Role::Auth | Role::Inventory | Role::Order | Role::Payment | Role::Notification)
    }

    /// Parses `--role`: comma-separated names, `all` for every production role.
    pub fn parse_list(text: &str) -> Result<RoleList, String> {
        let mut roles = Vec::new();
        for name in text.split(',').map(str::trim) {
            match name {
                "all" => roles.extend(Role::ALL),
                "registry" => roles.push(Role::Registry),
                "auth" => roles.push(Role::Auth),
                "product" => roles.push(Role::Product),
                "inventory" => roles.push(Role::Inventory),
                "order" => roles.push(Role::Order),
                "payment" => roles.push(Role::Payment),
                "notification" => roles.push(Role::Notification),
                "gateway" => roles.push(Role::Gateway),
                #[cfg(feature = "test-services")]
                "echo" => roles.push(Role::Echo),
                #[cfg(feature = "test-services")]
                "probe" => roles.push(Role::Probe),
                "" => return Err("empty role name".to_string()),
                unknown => {
                    return Err(format!(
                        "unknown role {unknown:?} (expected registry, gateway, auth, product, inventory, order, payment, notification or all)"
                    ));
                }
            }
        }
        roles.sort();
        roles.dedup();
        Ok(RoleList(roles))
    }
}
