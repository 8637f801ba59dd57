//! How the bus behaves around its semantics: a broker that is not there at start, one relay
//! per service on MariaDB, the commit that wakes the relay, and the in-process bus across a
//! restart of the process.

mod support;

use std::time::{Duration, Instant};

use emporium_bus::{Bus, BusConfig, BusError, RelayRole};
use support::*;

const WITHIN: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn an_unreachable_broker_fails_at_start_with_the_reason() {
    let config = BusConfig::amqp("amqp://guest:guest@127.0.0.1:1/%2f");
    let error = match Bus::connect(config).await {
        Ok(_) => panic!("connected to a port where no broker listens"),
        Err(error) => error,
    };
    assert!(matches!(error, BusError::BrokerUnreachable { .. }), "{error:?}");
    assert_eq!(error.status_and_code(), (503, "broker_unavailable"));
    let text = error.to_string();
    assert!(text.starts_with("rabbitmq unreachable at amqp://guest:***@127.0.0.1:1/%2f: "), "{text}");
}

#[actix_rt::test]
async fn the_in_process_bus_is_always_ready_and_warns_multi_node_clusters() {
    let bus = Bus::connect(BusConfig::default()).await.unwrap();
    assert!(bus.is_in_process());
    assert_eq!(bus.readiness(), Ok(()));
    assert!(bus.multi_node_warning().unwrap().contains("will not leave this process"));
    let namespace = unique_namespace();
    let amqp = connect_bus(Transport::Amqp, &namespace, |_| {}).await;
    assert_eq!(amqp.readiness(), Ok(()));
    assert!(amqp.multi_node_warning().is_none());
    amqp.close().await;
    delete_amqp_names(&namespace, &[]).await;
}

#[actix_rt::test]
async fn a_commit_wakes_the_relay_without_waiting_for_the_poll_interval() {
    for transport in [Transport::InProcess, Transport::Amqp] {
        let namespace = unique_namespace();
        let bus =
            connect_bus(transport, &namespace, |config| config.relay_poll_interval = Duration::from_secs(30)).await;
        let test_database = TestDatabase::create(Store::Sqlite, "bus").await;
        let database = test_database.database.clone();
        create_applied_table(&database).await;
        let ctx = service_context("wake-test");
        let (_recording, handler) = recorder();
        let consumer = bus.subscribe(&ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
        let relay = bus.start_relay(&ctx, "order", database.clone()).await.unwrap();
        bus.start_delivery();
        // Let the relay find the outbox empty and go to sleep for its 30 s poll interval.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let enqueued = Instant::now();
        enqueue_event(&database, "order", "order-1", None).await;
        wait_until("the event is applied", Duration::from_secs(5), || async { applied_counts(&database).await.0 == 1 })
            .await;
        assert!(enqueued.elapsed() < Duration::from_secs(5), "{transport:?}: woken by the commit");
        wait_until("the lag is measured at zero", WITHIN, || async { relay.snapshot().lag.num_unsent == 0 }).await;
        consumer.stop().await;
        relay.stop().await;
        bus.close().await;
        if transport == Transport::Amqp {
            delete_amqp_names(&namespace, &[consumer.queue_names().clone()]).await;
        }
        test_database.drop_now().await;
    }
}

#[actix_rt::test]
async fn only_one_instance_of_a_service_relays_on_mariadb_and_another_takes_over() {
    let namespace = unique_namespace();
    let bus = connect_bus(Transport::Amqp, &namespace, |_| {}).await;
    let test_database = TestDatabase::create(Store::MariaDb, "bus").await;
    let database = test_database.database.clone();
    create_applied_table(&database).await;
    let first_node = service_context("node-1");
    let second_node = service_context("node-2");
    let (_recording, handler) = recorder();
    let consumer = bus.subscribe(&first_node, test_spec("payment"), database.clone(), handler).await.unwrap();
    let first = bus.start_relay(&first_node, "order", database.clone()).await.unwrap();
    wait_until("the first relay to take the lock", WITHIN, || async { first.snapshot().role == RelayRole::Active })
        .await;
    let second = bus.start_relay(&second_node, "order", test_database.reopen().await).await.unwrap();
    wait_until("the second relay to stand by", WITHIN, || async { second.snapshot().role == RelayRole::Standby }).await;

    for index in 0..100 {
        enqueue_event(&database, "order", &format!("order-{index}"), None).await;
    }
    wait_until("100 events applied", WITHIN, || async { applied_counts(&database).await.1 == 100 }).await;
    // A relay counts a batch once the broker confirmed it and its rows are marked sent, which
    // may be just after the consumer applied the events: wait for the count, do not sample it.
    wait_until("the first relay counts 100", WITHIN, || async { first.snapshot().num_published == 100 }).await;
    assert_eq!(second.snapshot().num_published, 0, "the standby published nothing");

    first.stop().await;
    wait_until("the second relay to take over", WITHIN, || async { second.snapshot().role == RelayRole::Active }).await;
    for index in 100..150 {
        enqueue_event(&database, "order", &format!("order-{index}"), None).await;
    }
    wait_until("150 events applied", WITHIN, || async { applied_counts(&database).await.1 == 150 }).await;
    assert_eq!(applied_counts(&database).await, (150, 150), "each event applied once");
    wait_until("the second relay counts 50", WITHIN, || async { second.snapshot().num_published == 50 }).await;
    assert_eq!(first.snapshot().num_published, 100, "the stopped relay published nothing more");

    consumer.stop().await;
    second.stop().await;
    bus.close().await;
    delete_amqp_names(&namespace, &[consumer.queue_names().clone()]).await;
    test_database.drop_now().await;
}

#[actix_rt::test]
async fn in_process_rows_stay_unsent_until_consumed_and_come_back_after_a_crash_on_mariadb() {
    in_process_rows_survive_a_crash(Store::MariaDb).await;
}

#[actix_rt::test]
async fn in_process_rows_stay_unsent_until_consumed_and_come_back_after_a_crash_on_sqlite() {
    in_process_rows_survive_a_crash(Store::Sqlite).await;
}

async fn in_process_rows_survive_a_crash(store: Store) {
    let test_database = TestDatabase::create(store, "bus").await;
    let database = test_database.database.clone();
    create_applied_table(&database).await;

    // The first life of the process: the consumer never gets to commit.
    let first_bus = connect_bus(Transport::InProcess, "", |_| {}).await;
    let ctx = service_context("first-life");
    let (recording, handler) = recorder();
    recording.failing_subjects.lock().push("order-1".to_string());
    let consumer = first_bus.subscribe(&ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    let relay = first_bus.start_relay(&ctx, "order", database.clone()).await.unwrap();
    first_bus.start_delivery();
    enqueue_event(&database, "order", "order-1", None).await;
    wait_until("the handler to have tried", WITHIN, || async { recording.calls_for("order-1") >= 1 }).await;
    let lag = relay.measure_lag().await.unwrap();
    assert_eq!(lag.num_unsent, 1, "not sent while its consumer has not committed it");
    consumer.kill().await;
    relay.stop().await;
    drop(first_bus);

    // The second life: the row is published again and applied once.
    let second_bus = connect_bus(Transport::InProcess, "", |_| {}).await;
    let ctx = service_context("second-life");
    let (_recording, handler) = recorder();
    let consumer = second_bus.subscribe(&ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    let relay = second_bus.start_relay(&ctx, "order", database.clone()).await.unwrap();
    second_bus.start_delivery();
    wait_until("the event is applied after the restart", WITHIN, || async { applied_counts(&database).await.0 == 1 })
        .await;
    wait_until("the row is marked sent", WITHIN, || async {
        relay.measure_lag().await.map(|lag| lag.num_unsent == 0).unwrap_or(false)
    })
    .await;
    assert_eq!(applied_counts(&database).await, (1, 1));
    consumer.stop().await;
    relay.stop().await;
    test_database.drop_now().await;
}
