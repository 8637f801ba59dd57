//! The mailer actor (`notification/mailer`): emails the `PENDING` notifications that are due,
//! outside any consumer transaction, when its delivery tick asks it
//! ([`DeliverDueNotifications`]). The tick (`notification/delivery-tick`,
//! [`spawn_delivery_tick`]) is a supervised task of the same group: a panic in it is a fault
//! in the node's tree followed by a restart, and the node's stop signal ends it.
//!
//! Each due notification is leased (so another instance does not send it too), sent, and
//! recorded: `SENT`; or, after a failure, tried again later with exponential backoff
//! ([`DeliverySettings::retry_delay_after`]); or `FAILED` with the error once the attempts are
//! used up or the server refused it for good (5xx, bad address). A round in which some email
//! was not sent answers 503 `smtp_unavailable`, so the actor's `num_errors` shows an outage
//! in the node's supervision snapshot; a notification that failed for good is also recorded
//! there as a fault (`NotificationFailed`). The consumers never wait for any of this.
//!
//! Delivery is at least once: a mailer that dies between the server's answer and the record
//! sends again once its lease ran out; the Message-ID (the notification id) lets the
//! receiving side recognise the repeat.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use emporium_cluster::ServiceContext;
use emporium_contracts::notification::{DeliverDueNotifications, DeliveryRound};
use emporium_runtime::fault::{Fault, FaultKind, FaultLog};
use emporium_runtime::monitor::ActorMonitor;
use emporium_runtime::{
    Behavior, CallMeta, CellHandle, LocalRoute, Reply, ServiceGroup, ServiceHandler, TaskContext, TaskHandle,
};
use emporium_store::Database;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::error::NotificationError;
use crate::settings::DeliverySettings;
use crate::smtp::SmtpClient;
use crate::store::{self, AttemptOutcome, DueNotification};

/// The fault message type of a notification that failed for good.
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";

/// How long the tick waits after a wake-up, so that the transaction that made the
/// notification has committed.
const SETTLE_DELAY: Duration = Duration::from_millis(20);

/// What the mailer needs; it outlives restarts of the actor.
pub struct MailerContext {
    /// Where the notifications are.
    pub database: Database,
    /// The SMTP client.
    pub smtp: SmtpClient,
    /// Retries, timeouts, batch sizes.
    pub settings: DeliverySettings,
    /// The node's fault log, for notifications that failed for good.
    pub faults: Arc<FaultLog>,
    /// The mailer's own monitor (its path and flight record go into those faults); set once
    /// the actor is spawned.
    pub monitor: OnceLock<Arc<ActorMonitor>>,
}

/// The mailer.
pub struct Mailer {
    context: Arc<MailerContext>,
}

impl Mailer {
    /// A mailer over `context`.
    pub fn new(context: Arc<MailerContext>) -> Self {
        Mailer { context }
    }
}

impl Behavior for Mailer {}

impl ServiceHandler<DeliverDueNotifications> for Mailer {
    fn handle(&mut self, _message: DeliverDueNotifications, _meta: &CallMeta) -> Reply<DeliveryRound> {
        let context = self.context.clone();
        Box::pin(async move { Ok(deliver_due(context).await?) })
    }
}

/// How one notification's turn ended.
enum Turn {
    /// Another mailer leased it first.
    Skipped,
    /// The attempt and what it came to.
    Attempted(AttemptOutcome),
}

async fn deliver_due(context: Arc<MailerContext>) -> Result<DeliveryRound, NotificationError> {
    let settings = context.settings;
    let due = store::due(&context.database, store::now_millis(), settings.batch_size).await?;
    let turns: Vec<Result<Turn, NotificationError>> = futures::stream::iter(due)
        .map(|notification| deliver_one(context.clone(), notification))
        .buffer_unordered(settings.max_concurrent_sends)
        .collect()
        .await;
    let mut round = DeliveryRound::default();
    let mut last_error = None;
    for turn in turns {
        match turn? {
            Turn::Skipped => {}
            Turn::Attempted(AttemptOutcome::Sent { .. }) => round.num_sent += 1,
            Turn::Attempted(AttemptOutcome::Retry { error, .. }) => {
                round.num_retrying += 1;
                last_error = Some(error);
            }
            Turn::Attempted(AttemptOutcome::Failed { error }) => {
                round.num_failed += 1;
                last_error = Some(error);
            }
        }
    }
    match last_error {
        None => Ok(round),
        Some(last_error) => {
            Err(NotificationError::SmtpUnavailable { num_unsent: round.num_retrying + round.num_failed, last_error })
        }
    }
}

#[tracing::instrument(skip_all, fields(notification_id = %notification.id, attempt = notification.attempts + 1))]
async fn deliver_one(context: Arc<MailerContext>, notification: DueNotification) -> Result<Turn, NotificationError> {
    let settings = context.settings;
    let lease_until = store::now_millis() + settings.lease().as_millis() as i64;
    if !store::lease(&context.database, &notification.id, notification.next_attempt_at_ms, lease_until).await? {
        return Ok(Turn::Skipped);
    }
    let attempt = notification.attempts.saturating_add(1);
    let sent = match &notification.recipient {
        Some(recipient) => {
            context.smtp.send(&notification.id, recipient, &notification.subject, &notification.body).await
        }
        None => Err(crate::smtp::SendFailure { permanent: true, message: "no recipient address".into() }),
    };
    let outcome = match sent {
        Ok(()) => AttemptOutcome::Sent { at_ms: store::now_millis() },
        Err(failure) if failure.permanent || attempt >= settings.max_attempts => {
            AttemptOutcome::Failed { error: failure.message }
        }
        Err(failure) => AttemptOutcome::Retry {
            error: failure.message,
            next_attempt_at_ms: store::now_millis() + settings.retry_delay_after(attempt).as_millis() as i64,
        },
    };
    store::record_attempt(&context.database, &notification.id, attempt, &outcome).await?;
    match &outcome {
        AttemptOutcome::Sent { .. } => tracing::info!("notification emailed"),
        AttemptOutcome::Retry { error, next_attempt_at_ms } => {
            tracing::warn!(error = %error, retry_in_ms = next_attempt_at_ms - store::now_millis(), "email not sent; will retry")
        }
        AttemptOutcome::Failed { error } => {
            tracing::error!(error = %error, "email failed for good");
            record_fault(&context, &notification.id, attempt, error);
        }
    }
    Ok(Turn::Attempted(outcome))
}

/// Records a notification that failed for good in the node's fault log (without the address).
fn record_fault(context: &MailerContext, notification_id: &str, attempts: u32, error: &str) {
    let (actor_path, flight_record) = match context.monitor.get() {
        Some(monitor) => (monitor.path().to_string(), monitor.recent_messages(16)),
        None => ("notification/mailer".to_string(), Vec::new()),
    };
    context.faults.record(Fault {
        id: 0,
        at: chrono::Utc::now(),
        actor_path,
        message_type: NOTIFICATION_FAILED,
        kind: FaultKind::Error,
        error: format!("notification {notification_id} not emailed after {attempts} attempt(s): {error}"),
        backtrace: None,
        trace_id: None,
        flight_record,
    });
}

/// The delivery tick's name in its service's group (its path is `notification/delivery-tick`).
pub const DELIVERY_TICK: &str = "delivery-tick";

/// Starts the delivery tick of `mailer` as a supervised task of `group`
/// ([`run_delivery_tick`]), stopped by the node's stop signal (`ctx.lifecycle`).
pub fn spawn_delivery_tick(
    ctx: &ServiceContext,
    group: &mut ServiceGroup,
    mailer: &CellHandle<Mailer>,
    wake: Arc<Notify>,
    settings: DeliverySettings,
) -> TaskHandle {
    let route = mailer.route::<DeliverDueNotifications>();
    ctx.spawn_task(group, DELIVERY_TICK, move |task_context| {
        Box::pin(run_delivery_tick(task_context, route.clone(), wake.clone(), settings))
    })
}

/// One run of the delivery tick: asks the mailer to deliver every `poll_interval`, and soon
/// after `wake` is notified, until the task's stop signal (also in the middle of a round,
/// which the mailer finishes on its own). A round that fails is only logged: the mailer's
/// monitor and faults show it, and the next round tries again.
pub async fn run_delivery_tick(
    task_context: TaskContext,
    route: LocalRoute<DeliverDueNotifications>,
    wake: Arc<Notify>,
    settings: DeliverySettings,
) -> Result<(), String> {
    loop {
        tokio::select! {
            _ = task_context.stop_requested() => return Ok(()),
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = wake.notified() => tokio::time::sleep(SETTLE_DELAY).await,
        }
        let meta = CallMeta { deadline: Some(std::time::Instant::now() + settings.lease()), trace: None };
        tokio::select! {
            _ = task_context.stop_requested() => return Ok(()),
            round = route.ask(DeliverDueNotifications {}, meta) => match round {
                Ok(round) if round.num_sent > 0 => tracing::debug!(num_sent = round.num_sent, "notifications emailed"),
                Ok(_) => {}
                Err(error) => tracing::debug!(code = %error.code, message = %error.message, "delivery round incomplete"),
            },
        }
    }
}
