//! The auth events leave through the outbox: with the node's bus (in-process here), the
//! service's relay publishes `user.registered`, `user.login_failed` and `user.logged_in` to
//! `auth-events`, where a subscriber receives them with their payloads.

mod support;

use std::sync::Arc;
use std::time::Duration;

use emporium_bus::{Bus, BusConfig, ConsumerSpec, handler_fn};
use emporium_contracts::events::{AUTH_EVENTS, UserLoggedIn, UserLoginFailed, UserRegistered};
use parking_lot::Mutex;
use support::{Harness, Store, assert_error};

macro_rules! on_both_stores_with_bus {
    ($case:ident) => {
        mod $case {
            #[actix_rt::test]
            async fn sqlite() {
                super::with_bus(super::support::Store::Sqlite).await;
            }

            #[actix_rt::test]
            async fn mariadb() {
                super::with_bus(super::support::Store::MariaDb).await;
            }
        }
    };
}

on_both_stores_with_bus!(sign_up_and_sign_ins_reach_a_subscriber);

async fn with_bus(store: Store) {
    let bus = Bus::connect(BusConfig::default()).await.unwrap();
    let received: Arc<Mutex<Vec<emporium_contracts::EventEnvelope>>> = Arc::default();
    let relay_bus = bus.clone();
    let mut harness = Harness::start(store, move |options| options.bus = Some(relay_bus)).await;
    let sink = received.clone();
    let handler = handler_fn(move |event, tx| {
        let sink = sink.clone();
        async move {
            sink.lock().push(event.envelope);
            Ok(tx)
        }
    });
    let spec = ConsumerSpec::new("audit", AUTH_EVENTS, &["user.*"]);
    let consumer = bus.subscribe(&harness.ctx, spec, harness.database.clone(), handler).await.unwrap();
    bus.start_delivery();

    let outcome = {
        use futures::FutureExt as _;
        std::panic::AssertUnwindSafe(sign_up_and_sign_ins_reach_a_subscriber(&mut harness, &received))
            .catch_unwind()
            .await
    };
    drop(consumer);
    harness.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn sign_up_and_sign_ins_reach_a_subscriber(
    harness: &mut Harness,
    received: &Mutex<Vec<emporium_contracts::EventEnvelope>>,
) {
    let ada = harness.register("ada", "correct horse").await;
    assert_error(harness.log_in("ada", "wrong password", Some("10.0.0.1")).await, 401, "invalid_credentials");
    assert_error(harness.log_in("nobody", "wrong password", None).await, 401, "invalid_credentials");
    harness.log_in("ada@example.com", "correct horse", None).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The bootstrap admin's registration, ada's, two failures and one success.
    while received.lock().len() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = received.lock().clone();
    let of_type =
        |event_type: &str| events.iter().filter(|event| event.event_type == event_type).cloned().collect::<Vec<_>>();
    assert_eq!(events.len(), 5, "{events:?}");

    let registered = of_type("user.registered");
    assert_eq!(registered.len(), 2);
    let ada_registered = registered.iter().find(|event| event.subject == ada.id).expect("ada's registration");
    assert_eq!(
        ada_registered.payload::<UserRegistered>().unwrap(),
        UserRegistered {
            user_id: ada.id.clone(),
            username: "ada".into(),
            email: "ada@example.com".into(),
            full_name: "Test User".into()
        }
    );
    assert_eq!(ada_registered.source, "/emporium/auth");

    let failed = of_type("user.login_failed");
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].subject, ada.id, "a failure of a known account is about that account");
    assert_eq!(
        failed[0].payload::<UserLoginFailed>().unwrap(),
        UserLoginFailed { login: "ada".into(), reason: "invalid_credentials".into() }
    );
    assert_eq!(failed[1].payload::<UserLoginFailed>().unwrap().login, "nobody");

    let logged_in = of_type("user.logged_in");
    assert_eq!(logged_in.len(), 1);
    assert_eq!(logged_in[0].payload::<UserLoggedIn>().unwrap(), UserLoggedIn { user_id: ada.id.clone() });
}
