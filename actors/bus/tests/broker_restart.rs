//! RabbitMQ stopped and started again (`rabbitmqctl stop_app` / `start_app`) in the middle of a
//! stream of 1,000 outbox events: every event arrives, none is applied twice, and readiness
//! follows the broker down and up.
//!
//! Alone in its test binary because it takes the machine's broker away; cargo runs test
//! binaries one after another, so no other suite sees the outage. The broker is started again
//! even when the test fails.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const NUM_EVENTS: usize = 1_000;

/// Starts the broker's application again when dropped, whatever happened.
struct BrokerRestorer;

impl Drop for BrokerRestorer {
    fn drop(&mut self) {
        let _ = rabbitmqctl("start_app");
    }
}

fn rabbitmqctl(command: &str) -> Result<(), String> {
    let output = Command::new("rabbitmqctl")
        .arg(command)
        .output()
        .map_err(|error| format!("rabbitmqctl {command} could not run ({error}); is RabbitMQ installed here?"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("rabbitmqctl {command} failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

async fn rabbitmqctl_async(command: &'static str) {
    tokio::task::spawn_blocking(move || rabbitmqctl(command)).await.unwrap().unwrap_or_else(|error| panic!("{error}"));
}

#[actix_rt::test]
async fn every_event_arrives_once_across_a_rabbitmq_restart() {
    let _restorer = BrokerRestorer;
    rabbitmqctl_async("start_app").await;
    let namespace = unique_namespace();
    let bus = connect_bus(Transport::Amqp, &namespace, |_| {}).await;
    let test_database = TestDatabase::create(Store::MariaDb, "bus").await;
    let database = test_database.database.clone();
    create_applied_table(&database).await;
    let ctx = service_context("restart-test-node");
    let (_recording, handler) = recorder();
    let consumer = bus.subscribe(&ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    let relay = bus.start_relay(&ctx, "order", database.clone()).await.unwrap();
    assert!(bus.readiness().is_ok());

    let producer_database = database.clone();
    let producer = tokio::spawn(async move {
        for index in 0..NUM_EVENTS {
            enqueue_event(&producer_database, "order", &format!("order-{index}"), None).await;
            if index % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    wait_until("a third of the stream applied", Duration::from_secs(30), || async {
        applied_counts(&database).await.1 >= (NUM_EVENTS / 3) as i64
    })
    .await;
    rabbitmqctl_async("stop_app").await;
    wait_until("readiness to report the broker down", Duration::from_secs(10), || async { bus.readiness().is_err() })
        .await;
    let reason = bus.readiness().unwrap_err();
    assert!(!reason.is_empty());
    let applied_during_outage = applied_counts(&database).await.1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rabbitmqctl_async("start_app").await;
    let restarted = Instant::now();

    producer.await.unwrap();
    let caught_up = tokio::time::timeout(Duration::from_secs(60), async {
        while applied_counts(&database).await.1 != NUM_EVENTS as i64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "not every event applied within 60 s of start_app: applied {:?}, consumer {:?}, relay {:?}, readiness {:?}",
        applied_counts(&database).await,
        consumer.snapshot(),
        relay.snapshot(),
        bus.readiness()
    );
    wait_until("the relay marked every row sent", Duration::from_secs(30), || async {
        relay.measure_lag().await.map(|lag| lag.num_unsent == 0).unwrap_or(false)
    })
    .await;
    // Give late redeliveries the time to show up as second effects, were there any.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (num_rows, num_distinct) = applied_counts(&database).await;
    assert_eq!((num_rows, num_distinct), (NUM_EVENTS as i64, NUM_EVENTS as i64), "each event applied exactly once");
    assert!(applied_during_outage < NUM_EVENTS as i64, "the outage happened mid-stream");
    wait_until("readiness to report the broker up", Duration::from_secs(10), || async { bus.readiness().is_ok() })
        .await;
    eprintln!(
        "broker restart: {applied_during_outage} of {NUM_EVENTS} applied before the outage; caught up {:?} after start_app; \
         consumer {:?}; relay {:?}",
        restarted.elapsed(),
        consumer.snapshot(),
        relay.snapshot()
    );

    consumer.stop().await;
    relay.stop().await;
    bus.close().await;
    delete_amqp_names(&namespace, &[consumer.queue_names().clone()]).await;
    test_database.drop_now().await;
}
