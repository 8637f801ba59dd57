//! Supervised tasks (long-running loops beside a service's actors): a panic or an error is a
//! fault in the tree followed by a fresh run, the stop signal ends the task for good, and the
//! supervisor's intensity covers tasks as it covers actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Arbiter;
use emporium_runtime::fault::FaultKind;
use emporium_runtime::monitor::ActorStatus;
use emporium_runtime::task::TASK_RUN;
use emporium_runtime::{
    Backoff, Intensity, RestartStrategy, RestartType, ServiceGroup, ServiceHealth, SupervisionPolicy, SupervisionTree,
};
use tokio::sync::watch;

const PATIENCE: Duration = Duration::from_secs(5);

fn policy(max_restarts: u32) -> SupervisionPolicy {
    SupervisionPolicy {
        strategy: RestartStrategy::OneForOne,
        restart: RestartType::Permanent,
        intensity: Intensity { max_restarts, period: Duration::from_secs(10) },
        backoff: Backoff { min: Duration::from_millis(1), max: Duration::from_millis(10) },
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !condition() {
            actix::clock::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

/// A loop that panics on its first run and errors on its second is restarted each time, with
/// both faults in the tree, and then runs until its stop signal.
#[actix_rt::test]
async fn a_panicking_task_is_a_fault_and_runs_again_until_stopped() {
    let tree = SupervisionTree::new("task-node", 64, 16);
    let arbiter = Arbiter::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let num_runs = Arc::new(AtomicU64::new(0));
    let num_ticks = Arc::new(AtomicU64::new(0));
    let mut group = ServiceGroup::new(&tree, "loops", policy(10), arbiter.handle());
    let task = group.spawn_task("sweeper", stop_rx, {
        let (num_runs, num_ticks) = (num_runs.clone(), num_ticks.clone());
        move |context| {
            let run = num_runs.fetch_add(1, Ordering::SeqCst) + 1;
            let num_ticks = num_ticks.clone();
            Box::pin(async move {
                match run {
                    1 => panic!("sweep {run} broke"),
                    2 => return Err("the store refused the sweep".to_string()),
                    _ => {}
                }
                loop {
                    tokio::select! {
                        _ = context.stop_requested() => return Ok(()),
                        _ = actix::clock::sleep(Duration::from_millis(5)) => { num_ticks.fetch_add(1, Ordering::SeqCst); }
                    }
                }
            })
        }
    });
    let supervision = group.finish();

    wait_until("the third run ticking", || num_ticks.load(Ordering::SeqCst) >= 3).await;
    let snapshot = tree.snapshot();
    let kinds: Vec<(&str, &str, FaultKind)> =
        snapshot.faults.iter().map(|fault| (fault.actor_path.as_str(), fault.message_type, fault.kind)).collect();
    assert_eq!(kinds, [("loops/sweeper", TASK_RUN, FaultKind::Panic), ("loops/sweeper", TASK_RUN, FaultKind::Error)]);
    assert!(snapshot.faults[0].error.starts_with("sweep 1 broke"), "{}", snapshot.faults[0].error);
    assert_eq!(snapshot.faults[1].error, "the store refused the sweep");
    let actor = snapshot.services[0].actors.iter().find(|actor| actor.path == "loops/sweeper").expect("in the tree");
    assert_eq!(actor.num_restarts, 2);
    assert_eq!(actor.status, ActorStatus::Running);
    assert_eq!(*supervision.health.borrow(), ServiceHealth::Up);

    stop_tx.send_replace(true);
    tokio::time::timeout(PATIENCE, task.wait_stopped()).await.expect("the task stops on its signal");
    assert_eq!(num_runs.load(Ordering::SeqCst), 3, "no run after the stop");
    assert!(arbiter.stop());
}

/// A task that keeps failing uses up the supervisor's intensity: the service goes DOWN and the
/// task is not started again.
#[actix_rt::test]
async fn a_task_failing_past_the_intensity_takes_its_service_down() {
    let tree = SupervisionTree::new("task-node", 64, 16);
    let arbiter = Arbiter::new();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let num_runs = Arc::new(AtomicU64::new(0));
    let mut group = ServiceGroup::new(&tree, "loops", policy(3), arbiter.handle());
    let _task = group.spawn_task("flaky", stop_rx, {
        let num_runs = num_runs.clone();
        move |_context| {
            num_runs.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err("always".to_string()) })
        }
    });
    let supervision = group.finish();
    let health = supervision.health.clone();
    wait_until("the service going down", move || matches!(*health.borrow(), ServiceHealth::Down { .. })).await;
    let runs_when_down = num_runs.load(Ordering::SeqCst);
    actix::clock::sleep(Duration::from_millis(100)).await;
    assert!(num_runs.load(Ordering::SeqCst) <= runs_when_down + 1, "a terminated task is not restarted");
    assert!(arbiter.stop());
}

/// A task that returns before it was asked to stop is a fault too (a loop must not end quietly).
#[actix_rt::test]
async fn a_task_that_returns_early_is_restarted() {
    let tree = SupervisionTree::new("task-node", 64, 16);
    let arbiter = Arbiter::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let num_runs = Arc::new(AtomicU64::new(0));
    let mut group = ServiceGroup::new(&tree, "loops", policy(10), arbiter.handle());
    let task = group.spawn_task("once", stop_rx, {
        let num_runs = num_runs.clone();
        move |context| {
            let run = num_runs.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                if run == 1 {
                    return Ok(());
                }
                context.stop_requested().await;
                Ok(())
            })
        }
    });
    let _supervision = group.finish();
    wait_until("the second run", || num_runs.load(Ordering::SeqCst) >= 2).await;
    let faults = tree.snapshot().faults;
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].error, "the task returned before it was asked to stop");
    stop_tx.send_replace(true);
    tokio::time::timeout(PATIENCE, task.wait_stopped()).await.expect("stopped");
    assert!(arbiter.stop());
}
