//! The notification service: one notification per event it tells users about, always stored
//! (readable through the API) and, when SMTP is configured, emailed with retries.
//!
//! - Event handler: [`recorder::Recorder`] consumes `order.created`, `order.confirmed`,
//!   `order.cancelled` (queue `notification.order-events`), `payment.failed`
//!   (`notification.payment-events`) and `user.registered` (`notification.auth-events`),
//!   renders a subject and body per kind ([`render`]) and writes the notification in the
//!   transaction in which the bus records the event in its inbox: exactly one per event. The
//!   user's email address is learned from `user.registered` (the only event that carries it)
//!   into `notification_recipients`.
//! - Actors: [`reader::NotificationReader`] (`notification/reader`) answers
//!   `ListNotifications`; [`mailer::Mailer`] (`notification/mailer`, only with SMTP) sends
//!   the `PENDING` notifications over SMTP with lettre ([`smtp`]) when its delivery tick (the
//!   supervised task `notification/delivery-tick`) asks (`DeliverDueNotifications`),
//!   retrying with exponential backoff and ending `FAILED` with the error; failures show
//!   in the node's supervision snapshot (the mailer's `num_errors`, and a
//!   `NotificationFailed` fault per notification that failed for good).
//! - Channels: `email` (status `PENDING` -> `SENT` | `FAILED`) when SMTP is configured and the
//!   user's address is known; otherwise `stored` (status `STORED`), nothing sent.
//! - Store: [`store`], one SQL text for MariaDB/MySQL and SQLite, migrations `6_000_001..`.
//! - Settings: [`settings`] (`EMPORIUM_SMTP_URL`, `EMPORIUM_SMTP_FROM`, retry policy).
//! - HTTP: [`routes::routes`] (mounted by the gateway) and [`routes::openapi`].
#![warn(missing_docs)]

mod definition;
pub mod error;
pub mod mailer;
pub mod reader;
pub mod recorder;
pub mod render;
pub mod routes;
pub mod settings;
pub mod smtp;
pub mod store;

use std::sync::{Arc, OnceLock};

use emporium_bus::{Bus, ConsumerSpec};
use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::notification::{DeliverDueNotifications, ListNotifications, SERVICE};
use emporium_runtime::LocalEndpoint;
use emporium_store::Database;
use tokio::sync::Notify;

pub use definition::definition;
pub use routes::{openapi, routes};
pub use settings::{DEFAULT_FROM_ADDRESS, DeliverySettings, NotificationSettings, SmtpSettings};

/// What the notification service needs besides its context.
pub struct NotificationOptions {
    /// Where the notifications and the inbox live.
    pub database: Database,
    /// The event bus it consumes from.
    pub bus: Bus,
    /// The SMTP server (the secret `EMPORIUM_SMTP_URL`); `None`: nothing
    /// is emailed, notifications are only stored.
    pub smtp: Option<SmtpSettings>,
    /// The sender of every email (`notification.from_address`).
    pub from_address: String,
    /// Retries, timeouts and batch sizes of the mailer ([`NotificationSettings::delivery`]).
    pub delivery: DeliverySettings,
}

/// Migrates the store, subscribes the recorder (consumer `notification`, one queue per
/// exchange), and starts the reader and, with SMTP, the mailer and its delivery tick (a
/// supervised task) under the service's supervisor. The consumers live as long as the
/// returned handle; the tick ends on the node's stop signal. An SMTP server that is down is no
/// error here: its emails wait and are retried.
pub async fn start(ctx: ServiceContext, options: NotificationOptions) -> anyhow::Result<ServiceHandle> {
    let NotificationOptions { database, bus, smtp, from_address, delivery } = options;
    delivery.validate()?;
    let smtp_client = match &smtp {
        Some(settings) => Some(smtp::SmtpClient::new(settings, &from_address, delivery.send_timeout)?),
        None => None,
    };
    store::migrate(&database).await?;

    let wake = Arc::new(Notify::new());
    let recorder: Arc<dyn emporium_bus::EventHandler> = Arc::new(recorder::Recorder::new(smtp.is_some(), wake.clone()));
    // The events it makes notifications from: its subscriptions in the contracts' topology.
    let specs = ConsumerSpec::topology_of(SERVICE);
    let mut consumers = Vec::with_capacity(specs.len());
    for spec in specs {
        consumers.push(bus.subscribe(&ctx, spec, database.clone(), recorder.clone()).await?);
    }

    let mut group = ctx.group(SERVICE);
    let reader = group.spawn("reader", {
        let database = database.clone();
        move || reader::NotificationReader::new(database.clone())
    });
    let mailer = smtp_client.map(|client| {
        let context = Arc::new(mailer::MailerContext {
            database: database.clone(),
            smtp: client,
            settings: delivery,
            faults: ctx.tree.faults(),
            monitor: OnceLock::new(),
        });
        let factory_context = context.clone();
        let cell = group.spawn("mailer", move || mailer::Mailer::new(factory_context.clone()));
        let _ = context.monitor.set(cell.monitor.clone());
        mailer::spawn_delivery_tick(&ctx, &mut group, &cell, wake.clone(), delivery);
        cell
    });
    let supervision = group.finish();
    let mut endpoint =
        LocalEndpoint::builder(SERVICE, supervision.health.clone()).route::<ListNotifications, _>(&reader);
    if let Some(mailer) = &mailer {
        endpoint = endpoint.route::<DeliverDueNotifications, _>(mailer);
    }
    let endpoint = endpoint.build();

    if mailer.is_some() {
        tracing::info!(smtp = %smtp.as_ref().map(SmtpSettings::redacted).unwrap_or_default(), "notifications are emailed");
    } else {
        tracing::info!("EMPORIUM_SMTP_URL is not set: notifications are stored, not emailed");
    }
    let mut handle = ServiceHandle::new(endpoint, supervision);
    for consumer in consumers {
        handle = handle.keep(consumer);
    }
    Ok(handle)
}
