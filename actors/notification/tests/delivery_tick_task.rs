//! The notification service's delivery tick as `start` runs it (SMTP configured, on the
//! machine's MariaDB and the in-process bus): a supervised task in the service's group, shown
//! in the supervision snapshot, asking the mailer, and ended by the node's stop signal.

mod support;

use std::time::Duration;

use emporium_notification::{DeliverySettings, NotificationOptions, SmtpSettings};
use emporium_runtime::monitor::{ActorSnapshot, ActorStatus};
use support::*;

fn actor(ctx: &emporium_cluster::ServiceContext, path: &str) -> ActorSnapshot {
    let snapshot = ctx.tree.snapshot();
    let service = snapshot.services.into_iter().find(|service| service.service == "notification").expect("in the tree");
    service.actors.into_iter().find(|actor| actor.path == path).unwrap_or_else(|| panic!("{path} in the tree"))
}

#[actix_rt::test]
async fn the_delivery_tick_is_a_supervised_task_that_ends_on_the_stop_signal() {
    let namespace = unique_namespace("ntftick");
    let bus = connect_bus(Transport::InProcess, &namespace).await;
    let store = TestStore::create(StoreKind::MariaDb, "notification").await;
    let (ctx, _settings) = service_context("notification-tick-test");
    // Nothing is due, so the mailer never dials this server (nothing listens there).
    let smtp = SmtpSettings::parse(&format!("smtp://127.0.0.1:{}", closed_port())).unwrap();
    let options = NotificationOptions {
        database: store.database.clone(),
        bus: bus.clone(),
        smtp: Some(smtp),
        from_address: "Emporium <no-reply@emporium.local>".into(),
        delivery: DeliverySettings { poll_interval: Duration::from_millis(20), ..DeliverySettings::default() },
    };
    let handle = emporium_notification::start(ctx.clone(), options).await.expect("the notification service starts");

    assert_eq!(actor(&ctx, "notification/delivery-tick").status, ActorStatus::Running);
    wait_until("the tick asking the mailer twice", Duration::from_secs(10), || async {
        actor(&ctx, "notification/mailer").num_handled >= 2
    })
    .await;

    assert_eq!(ctx.lifecycle.stop(Duration::from_secs(5)).await, Vec::<String>::new(), "the tick ended");
    let snapshot = ctx.tree.snapshot();
    assert!(snapshot.faults.is_empty(), "{:?}", snapshot.faults);

    drop(handle);
    bus.close().await;
    store.drop_now().await;
}
