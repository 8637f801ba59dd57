//! Supervision running real actix actors: the counter service of [`support`], whose handlers
//! panic, fail fatally, answer errors and sleep on purpose, called through its
//! `LocalEndpoint` exactly as a node calls a local service.
//!
//! Every test starts its own [`Sandbox`] (a supervision tree and an arbiter thread for the
//! service's actors) and ends with [`Sandbox::shutdown`], which fails the test when a fault was
//! recorded that the test did not expect, when a message is still queued or in flight, when the
//! arbiter thread died, or when an actor is still running after its arbiter stopped.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use emporium_contracts::ErrorKind;
use emporium_runtime::fault::FaultKind;
use emporium_runtime::monitor::{ActorStatus, Outcome};
use emporium_runtime::supervisor::ReviveService;
use emporium_runtime::{
    Backoff, CallMeta, Intensity, RestartStrategy, RestartType, ServiceHealth, SupervisionPolicy, TraceParent,
};

use support::{
    Fail, HowToFail, Increment, Sandbox, Sleep, ask, ask_json, ask_with, assert_error, fast_policy, wait_until, within,
};

/// A fault in a handler answers the caller with `actor_fault`, is recorded with its text and
/// flight record, and the same address serves the next message from fresh state.
async fn a_fault_restarts_the_actor_with_fresh_state(how: HowToFail, kind: FaultKind, error_prefix: &str) {
    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));
    assert_eq!(ask(endpoint, Increment {}).await, Ok(2));

    let trace = TraceParent::new_root();
    let meta = CallMeta { deadline: None, trace: Some(trace) };
    let error = assert_error(ask_with(endpoint, Fail { how }, meta).await, ErrorKind::Fault, "actor_fault");
    assert_eq!(error.message, "Fail failed in test/counter (fault 1); the actor restarts");
    assert_eq!(error.http_status(), 500);

    let snapshot = sandbox.tree.snapshot();
    assert_eq!(snapshot.num_faults, 1);
    assert_eq!(snapshot.faults.len(), 1);
    let fault = &snapshot.faults[0];
    assert_eq!(fault.id, 1);
    assert_eq!(fault.actor_path, "test/counter");
    assert_eq!(fault.message_type, "Fail");
    assert_eq!(fault.kind, kind);
    assert!(fault.error.starts_with(error_prefix), "fault text {:?} should start with {error_prefix:?}", fault.error);
    assert_eq!(fault.backtrace.is_some(), kind == FaultKind::Panic, "a panic keeps its backtrace");
    assert_eq!(fault.trace_id.as_deref(), Some(trace.trace_id_hex().as_str()));
    let flight: Vec<(&str, Outcome)> =
        fault.flight_record.iter().map(|entry| (entry.message_type, entry.outcome)).collect();
    let failed_outcome = if kind == FaultKind::Panic { Outcome::Panic } else { Outcome::Error };
    assert_eq!(flight, [("Increment", Outcome::Ok), ("Increment", Outcome::Ok), ("Fail", failed_outcome)]);
    let last = fault.flight_record.last().expect("the flight record has the failing message");
    assert_eq!(last.summary, format!("how={how:?}"));
    assert_eq!(last.trace_id.as_deref(), Some(trace.trace_id_hex().as_str()));

    // The same endpoint, hence the same address, answers from a fresh counter.
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));
    assert_eq!(ask(endpoint, Increment {}).await, Ok(2));
    assert!(service.cell(0).addr.connected());
    assert!(endpoint.is_up());

    let actor = sandbox.actor("test/counter");
    assert_eq!(actor.status, ActorStatus::Running);
    assert_eq!(actor.num_restarts, 1);
    let (num_panics, num_errors) = match kind {
        FaultKind::Panic => (1, 0),
        _ => (0, 1),
    };
    assert_eq!((actor.num_panics, actor.num_errors), (num_panics, num_errors), "a fatal error is no panic");
    assert_eq!(actor.num_handled, 4 + num_errors, "four increments, and the fatal error answered");
    assert_eq!(*service.supervision.health.borrow(), ServiceHealth::Up);
    sandbox.shutdown(service, &["test/counter"]);
}

#[actix_rt::test]
async fn a_panic_before_an_await_is_answered_recorded_and_restarts_the_actor() {
    a_fault_restarts_the_actor_with_fresh_state(
        HowToFail::PanicBeforeAwait,
        FaultKind::Panic,
        "counter panicked before await with count 2 at actors/runtime/tests/support/mod.rs:",
    )
    .await;
}

#[actix_rt::test]
async fn a_panic_after_an_await_is_answered_recorded_and_restarts_the_actor() {
    a_fault_restarts_the_actor_with_fresh_state(
        HowToFail::PanicAfterAwait,
        FaultKind::Panic,
        "counter panicked after await with count 2 at actors/runtime/tests/support/mod.rs:",
    )
    .await;
}

#[actix_rt::test]
async fn a_fatal_error_is_answered_recorded_and_restarts_the_actor() {
    // The whole text: a fatal error carries no location.
    a_fault_restarts_the_actor_with_fresh_state(HowToFail::Fatal, FaultKind::Error, "counter gave up with count 2")
        .await;
}

#[actix_rt::test]
async fn an_error_reply_keeps_the_actor_and_its_state() {
    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));
    assert_eq!(ask(endpoint, Increment {}).await, Ok(2));

    let error =
        assert_error(ask(endpoint, Fail { how: HowToFail::Conflict }).await, ErrorKind::Conflict, "counter_busy");
    assert_eq!(error.message, "counter refuses at 2");
    assert_eq!(ask(endpoint, Increment {}).await, Ok(3));

    let actor = sandbox.actor("test/counter");
    assert_eq!(actor.status, ActorStatus::Running);
    assert_eq!(actor.num_errors, 1);
    assert_eq!(actor.num_handled, 4);
    assert_eq!(actor.num_panics, 0);
    assert_eq!(actor.num_restarts, 0);
    let outcomes: Vec<Outcome> = actor.flight_recorder.iter().map(|entry| entry.outcome).collect();
    assert_eq!(outcomes, [Outcome::Ok, Outcome::Ok, Outcome::Error, Outcome::Ok]);
    sandbox.shutdown(service, &[]);
}

#[actix_rt::test]
async fn past_its_intensity_the_service_goes_down_until_revived() {
    let sandbox = Sandbox::new();
    let policy = SupervisionPolicy {
        intensity: Intensity { max_restarts: 3, period: Duration::from_secs(10) },
        ..fast_policy()
    };
    let service = sandbox.start_service(policy, &["counter"]);
    let endpoint = service.endpoint(0);
    let mut health_rx = service.supervision.health.clone();

    for fault_number in 1..=3 {
        assert_error(ask(endpoint, Fail { how: HowToFail::PanicBeforeAwait }).await, ErrorKind::Fault, "actor_fault");
        assert_eq!(ask(endpoint, Increment {}).await, Ok(1), "restart {fault_number} is within the intensity");
    }
    assert_eq!(*health_rx.borrow_and_update(), ServiceHealth::Up);

    assert_error(ask(endpoint, Fail { how: HowToFail::PanicBeforeAwait }).await, ErrorKind::Fault, "actor_fault");
    within("the health change", health_rx.changed()).await.expect("the supervisor is gone");
    assert_eq!(
        *health_rx.borrow_and_update(),
        ServiceHealth::Down { reason: "more than 3 restarts in 10s (last: fault 4 in test/counter)".to_string() }
    );
    assert!(!endpoint.is_up());
    let error = assert_error(ask(endpoint, Increment {}).await, ErrorKind::Unavailable, "service_down");
    assert_eq!(error.message, "test/counter is down");
    assert_eq!(error.retry_after_secs, Some(1));
    assert_error(ask_json(endpoint, "Increment", b"{}").await, ErrorKind::Unavailable, "service_down");
    let actor = sandbox.actor("test/counter");
    assert_eq!(actor.status, ActorStatus::Terminated);
    assert_eq!(actor.num_panics, 4);
    assert_eq!(sandbox.tree.snapshot().services[0].health, *health_rx.borrow());

    within("ReviveService", service.supervision.supervisor.send(ReviveService)).await.expect("the supervisor is gone");
    assert_eq!(*health_rx.borrow_and_update(), ServiceHealth::Up);
    assert!(endpoint.is_up());
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));
    assert_eq!(ask(endpoint, Increment {}).await, Ok(2));
    let actor = sandbox.actor("test/counter");
    assert_eq!(actor.status, ActorStatus::Running);
    assert_eq!(actor.num_restarts, 5, "four faults and the revival");
    let escalation = sandbox.tree.snapshot().faults.pop().expect("the escalation is a fault");
    assert_eq!((escalation.kind, escalation.message_type), (FaultKind::Escalation, "Escalation"));
    assert!(escalation.error.starts_with("more than 3 restarts"), "{}", escalation.error);
    sandbox.shutdown(service, &["test/counter", "test/counter", "test/counter", "test/counter", "test"]);
}

#[actix_rt::test]
async fn one_for_all_restarts_every_sibling() {
    let sandbox = Sandbox::new();
    let policy = SupervisionPolicy { strategy: RestartStrategy::OneForAll, ..fast_policy() };
    let service = sandbox.start_service(policy, &["first", "second"]);
    let (first, second) = (service.endpoint(0), service.endpoint(1));
    assert_eq!(ask(first, Increment {}).await, Ok(1));
    assert_eq!(ask(first, Increment {}).await, Ok(2));
    assert_eq!(ask(second, Increment {}).await, Ok(1));

    assert_error(ask(second, Fail { how: HowToFail::PanicAfterAwait }).await, ErrorKind::Fault, "actor_fault");
    let first_monitor = service.cell(0).monitor.clone();
    wait_until("the restart of test/first", || first_monitor.num_restarts() == 1).await;

    assert_eq!(ask(first, Increment {}).await, Ok(1), "the sibling's state is fresh too");
    assert_eq!(ask(second, Increment {}).await, Ok(1));
    let (first_actor, second_actor) = (sandbox.actor("test/first"), sandbox.actor("test/second"));
    assert_eq!((first_actor.num_restarts, first_actor.num_panics), (1, 0));
    assert_eq!((second_actor.num_restarts, second_actor.num_panics), (1, 1));
    sandbox.shutdown(service, &["test/second"]);
}

#[actix_rt::test]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let sandbox = Sandbox::new();
    let policy = SupervisionPolicy { strategy: RestartStrategy::RestForOne, ..fast_policy() };
    let service = sandbox.start_service(policy, &["first", "second", "third"]);
    for endpoint in &service.endpoints {
        assert_eq!(ask(endpoint, Increment {}).await, Ok(1));
        assert_eq!(ask(endpoint, Increment {}).await, Ok(2));
    }

    assert_error(ask(service.endpoint(1), Fail { how: HowToFail::Fatal }).await, ErrorKind::Fault, "actor_fault");
    let third_monitor = service.cell(2).monitor.clone();
    wait_until("the restart of test/third", || third_monitor.num_restarts() == 1).await;

    // Had the supervisor told the first child to restart, it would have done so before
    // handling this message, which was sent later.
    assert_eq!(ask(service.endpoint(0), Increment {}).await, Ok(3), "the first child keeps its state");
    assert_eq!(ask(service.endpoint(1), Increment {}).await, Ok(1));
    assert_eq!(ask(service.endpoint(2), Increment {}).await, Ok(1));
    let num_restarts: Vec<u64> =
        ["test/first", "test/second", "test/third"].iter().map(|path| sandbox.actor(path).num_restarts).collect();
    assert_eq!(num_restarts, [0, 1, 1]);
    sandbox.shutdown(service, &["test/second"]);
}

#[actix_rt::test]
async fn a_temporary_child_is_not_restarted_after_a_fault() {
    let sandbox = Sandbox::new();
    let policy = SupervisionPolicy { restart: RestartType::Temporary, ..fast_policy() };
    let service = sandbox.start_service(policy, &["counter"]);
    let endpoint = service.endpoint(0);
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));

    // The increment is queued behind the fault: a fresh behaviour must not serve it either.
    let (fault, queued) =
        futures::future::join(ask(endpoint, Fail { how: HowToFail::PanicBeforeAwait }), ask(endpoint, Increment {}))
            .await;
    assert_error(fault, ErrorKind::Fault, "actor_fault");
    let error = assert_error(queued, ErrorKind::Unavailable, "service_down");
    assert_eq!(error.message, "test/counter is down");
    assert_error(ask(endpoint, Increment {}).await, ErrorKind::Unavailable, "service_down");
    assert_eq!(
        *service.supervision.health.borrow(),
        ServiceHealth::Up,
        "a temporary child does not take the service down"
    );

    let actor = sandbox.actor("test/counter");
    assert_eq!(actor.status, ActorStatus::Terminated);
    assert_eq!(actor.num_handled, 1, "no message was handled after the fault");
    assert_eq!(service.num_handler_calls.load(Ordering::SeqCst), 2);
    sandbox.shutdown(service, &["test/counter"]);
}

#[actix_rt::test]
async fn messages_sent_after_a_fault_wait_out_the_restart_backoff() {
    let sandbox = Sandbox::new();
    let policy = SupervisionPolicy {
        backoff: Backoff { min: Duration::from_millis(200), max: Duration::from_secs(1) },
        ..fast_policy()
    };
    let service = sandbox.start_service(policy, &["counter"]);
    let endpoint = service.endpoint(0).clone();
    assert_eq!(ask(&endpoint, Increment {}).await, Ok(1));

    let fault_sent_at = Instant::now();
    assert_error(ask(&endpoint, Fail { how: HowToFail::PanicBeforeAwait }).await, ErrorKind::Fault, "actor_fault");
    let pending_increment = actix_rt::spawn(async move { ask(&endpoint, Increment {}).await });

    // The first restart of a burst waits between half of `min` and `min`: 100 to 200 ms. Look
    // at the status every millisecond until the answer comes; as long as no two looks are
    // 90 ms apart (a machine too loaded to observe), one of them falls within the backoff.
    let monitor = service.cell(0).monitor.clone();
    let mut saw_backing_off = false;
    let mut last_look_at = fault_sent_at;
    let mut longest_gap_between_looks = Duration::ZERO;
    within("the backoff", async {
        loop {
            let answered = pending_increment.is_finished();
            let status = monitor.status();
            let looked_at = Instant::now();
            longest_gap_between_looks = longest_gap_between_looks.max(looked_at - last_look_at);
            last_look_at = looked_at;
            saw_backing_off |= status == ActorStatus::BackingOff;
            if answered {
                break;
            }
            actix::clock::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(
        saw_backing_off || longest_gap_between_looks >= Duration::from_millis(90),
        "the status was never BackingOff, looking at least every {longest_gap_between_looks:?}"
    );

    let answer = within("the increment", pending_increment).await.expect("the asking task panicked");
    let elapsed = fault_sent_at.elapsed();
    assert_eq!(answer, Ok(1));
    assert!(elapsed >= Duration::from_millis(100), "answered {elapsed:?} after the fault, before the backoff ended");
    assert_eq!(monitor.status(), ActorStatus::Running);
    assert_eq!(monitor.num_restarts(), 1);
    sandbox.shutdown(service, &["test/counter"]);
}

#[actix_rt::test]
async fn a_message_in_flight_when_the_actor_faults_is_answered_not_lost() {
    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);
    let monitor = service.cell(0).monitor.clone();
    let sleep_route = endpoint.route::<Sleep>().expect("the endpoint routes Sleep").clone();
    let pending_sleep =
        actix_rt::spawn(async move { sleep_route.ask(Sleep { millis: 60_000 }, CallMeta::default()).await });
    wait_until("the sleep to start", || monitor.snapshot().num_in_flight == 1).await;

    assert_error(ask(endpoint, Fail { how: HowToFail::PanicAfterAwait }).await, ErrorKind::Fault, "actor_fault");
    let sleep_answer = within("the sleep", pending_sleep).await.expect("the asking task panicked");
    let error = assert_error(sleep_answer, ErrorKind::Unavailable, "actor_restarted");
    assert_eq!(error.message, "test/counter stopped before answering Sleep");
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));
    let actor = sandbox.actor("test/counter");
    assert_eq!((actor.num_restarts, actor.num_in_flight), (1, 0));
    sandbox.shutdown(service, &["test/counter"]);
}

#[actix_rt::test]
async fn a_passed_deadline_is_answered_without_running_the_handler() {
    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);

    let passed = Instant::now().checked_sub(Duration::from_millis(10)).expect("the clock is past 10 ms");
    let meta = CallMeta { deadline: Some(passed), trace: None };
    let error = assert_error(ask_with(endpoint, Increment {}, meta).await, ErrorKind::Timeout, "deadline_exceeded");
    assert_eq!(error.http_status(), 504);
    assert_eq!(service.num_handler_calls.load(Ordering::SeqCst), 0);
    let actor = sandbox.actor("test/counter");
    assert_eq!((actor.num_handled, actor.mailbox_depth), (0, 0));
    assert!(actor.flight_recorder.is_empty());

    assert_eq!(ask(endpoint, Increment {}).await, Ok(1), "the counter never saw the late message");
    sandbox.shutdown(service, &[]);
}

#[actix_rt::test]
async fn a_cell_runs_handler_futures_concurrently() {
    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);

    let started_at = Instant::now();
    let answers = within(
        "twenty sleeps",
        futures::future::join_all((0..20).map(|_| {
            let route = endpoint.route::<Sleep>().expect("the endpoint routes Sleep");
            route.ask(Sleep { millis: 50 }, CallMeta::default())
        })),
    )
    .await;
    let elapsed = started_at.elapsed();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert!(elapsed < Duration::from_millis(800), "20 sleeps of 50 ms took {elapsed:?}: they ran one after another");

    let actor = sandbox.actor("test/counter");
    assert_eq!(actor.num_handled, 20);
    assert_eq!((actor.mailbox_depth, actor.num_in_flight), (0, 0));
    assert!(actor.current_message.is_none());
    let num_timed: u64 = actor.handler_time_histogram.iter().map(|(_, count)| count).sum();
    assert_eq!(num_timed, 20);
    assert!(actor.handler_time_sum_micros >= 20 * 50_000, "each sleep took at least 50 ms");
    sandbox.shutdown(service, &[]);
}

#[actix_rt::test]
async fn ask_json_reads_the_body_and_names_what_is_wrong() {
    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);
    assert_eq!(endpoint.message_names(), ["Fail", "Increment", "Sleep"]);

    assert_eq!(ask_json(endpoint, "Increment", b"{}").await, Ok(b"1".to_vec()));
    assert_eq!(ask_json(endpoint, "Sleep", br#"{"millis":1}"#).await, Ok(b"null".to_vec()));

    let error =
        assert_error(ask_json(endpoint, "Increment", b"{not json").await, ErrorKind::InvalidInput, "malformed_message");
    assert!(error.message.starts_with("Increment could not be read: "), "{}", error.message);
    assert_error(
        ask_json(endpoint, "Sleep", br#"{"millis":"soon"}"#).await,
        ErrorKind::InvalidInput,
        "malformed_message",
    );
    assert_error(
        ask_json(endpoint, "Fail", br#"{"how":"explode"}"#).await,
        ErrorKind::InvalidInput,
        "malformed_message",
    );

    let error = assert_error(ask_json(endpoint, "Decrement", b"{}").await, ErrorKind::NotFound, "unknown_message");
    assert_eq!(error.message, "service test has no message Decrement");
    assert_eq!(error.http_status(), 404);

    let error =
        assert_error(ask_json(endpoint, "Fail", br#"{"how":"conflict"}"#).await, ErrorKind::Conflict, "counter_busy");
    assert_eq!(error.message, "counter refuses at 1");
    assert_eq!(ask_json(endpoint, "Increment", b"{}").await, Ok(b"2".to_vec()), "bad bodies never reached the actor");
    assert_eq!(service.num_handler_calls.load(Ordering::SeqCst), 4);
    sandbox.shutdown(service, &[]);
}

/// An operator's injected panic takes the real fault path (recorded with its flight record,
/// restart, fresh state); an injected stall holds the mailbox; a restart asked for is no fault;
/// an unknown actor is refused by name.
#[actix_rt::test]
async fn operators_restart_actors_and_inject_faults_through_the_tree() {
    use emporium_runtime::control::{ControlError, INJECTED_FAULT, InjectedFault, OperatorControl};

    let sandbox = Sandbox::new();
    let service = sandbox.start_service(fast_policy(), &["counter"]);
    let endpoint = service.endpoint(0);
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1));

    sandbox.tree.control_actor("test/counter", OperatorControl::Inject(InjectedFault::Panic)).await.unwrap();
    let snapshot = sandbox.tree.snapshot();
    let fault = &snapshot.faults[0];
    assert_eq!((fault.kind, fault.message_type), (FaultKind::Panic, INJECTED_FAULT));
    assert!(fault.error.starts_with("fault injected by an operator"), "{}", fault.error);
    let flight: Vec<&str> = fault.flight_record.iter().map(|entry| entry.message_type).collect();
    assert_eq!(flight, ["Increment", INJECTED_FAULT]);
    // The restart is counted when the new actor starts: wait for that, not for "running" (the
    // old actor may still read as running just after the panic).
    wait_until("the actor restarted", || {
        let actor = sandbox.actor("test/counter");
        actor.num_restarts == 1 && actor.status == ActorStatus::Running
    })
    .await;
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1), "fresh state after the injected panic");
    let in_window = || sandbox.tree.snapshot().services[0].restarts_in_window;
    wait_until("the supervisor counted the restart", || in_window() == 1).await;

    let stall = Duration::from_millis(300);
    sandbox.tree.control_actor("test/counter", OperatorControl::Inject(InjectedFault::Stall(stall))).await.unwrap();
    let started = Instant::now();
    assert_eq!(ask(endpoint, Increment {}).await, Ok(2));
    assert!(started.elapsed() >= Duration::from_millis(250), "the stall held the mailbox: {:?}", started.elapsed());

    sandbox.tree.control_actor("test/counter", OperatorControl::Restart).await.unwrap();
    wait_until("the asked-for restart", || sandbox.actor("test/counter").num_restarts == 2).await;
    assert_eq!(ask(endpoint, Increment {}).await, Ok(1), "fresh state after the restart");
    assert_eq!(
        sandbox.tree.control_actor("test/nobody", OperatorControl::Restart).await,
        Err(ControlError::UnknownActor("test/nobody".to_string()))
    );
    sandbox.shutdown(service, &["test/counter"]);
}
