//! How the notification service declares itself to a node.

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::settings::{NotificationSettings, SMTP_URL_VAR, SmtpSettings};
use crate::{NotificationOptions, openapi, routes};

/// The `notification` service: notifications stored from events, and emailed when the
/// secret `EMPORIUM_SMTP_URL` names an SMTP server.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("notification", "notifications (stored, and emailed when SMTP is configured)", start_on_node)
        .with_settings::<NotificationSettings>()
        .with_routes(routes, openapi)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let settings = setup.settings::<NotificationSettings>();
        let smtp = match setup.secret(SMTP_URL_VAR)? {
            Some(url) => Some(SmtpSettings::parse(&url)?),
            None => None,
        };
        let options = NotificationOptions {
            database: setup.database("notification").await?,
            bus: emporium_bus::node_bus(setup).await?,
            smtp,
            from_address: settings.from_address.clone(),
            delivery: settings.delivery(),
        };
        let handle = crate::start(setup.context(), options).await?;
        setup.node().add_service(handle);
        Ok(())
    })
}
