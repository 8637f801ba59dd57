//! Supervised long-running tasks: loops (an outbox relay's driver, an event consumer's driver,
//! an expiry sweep, a key refresher, a store monitor) that run beside a service's actors and
//! under the same supervisor.
//!
//! A task is a future built by a factory, run by a [`TaskCell`] on the service's arbiter. A
//! panic while it runs, an error it returns, or a return before its stop signal is a fault in
//! the node's tree (kind, text, the task's path) and a restart with a fresh future after the
//! policy's backoff, counted against the supervisor's intensity like any actor's. Its monitor
//! shows it in `/admin/v1/supervision` (status, restarts, panics). The stop signal
//! ([`TaskContext::stop_requested`]) ends it for good: the future is expected to return `Ok`
//! soon after, and [`TaskHandle::wait_stopped`] resolves then.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use tokio::sync::watch;

use crate::control::{INJECTED_FAULT, InjectedFault, OperatorControl};
use crate::fault::{CatchPanic, Fault, FaultKind, FaultLog, catch_panic};
use crate::monitor::{ActorMonitor, ActorStatus, Outcome};
use crate::policy::{Backoff, RestartWindow};
use crate::supervisor::{ChildFaulted, RestartChild};

/// The message type a task's faults and runs are recorded under.
pub const TASK_RUN: &str = "TaskRun";

/// What a task's future gets each time it (re)starts.
#[derive(Clone)]
pub struct TaskContext {
    stop_rx: watch::Receiver<bool>,
    monitor: Arc<ActorMonitor>,
}

impl TaskContext {
    /// Whether the task was asked to stop.
    pub fn is_stopping(&self) -> bool {
        *self.stop_rx.borrow()
    }

    /// Resolves once the task is asked to stop (at once when it already was). It never
    /// resolves when the stop signal's sender is gone without a stop (a service started outside
    /// a node whose context was dropped): no stop can come then, and returning would end the
    /// task early, a fault.
    pub async fn stop_requested(&self) {
        let mut stop_rx = self.stop_rx.clone();
        if stop_rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The stop signal itself, for loops that select on it.
    pub fn stop_receiver(&self) -> watch::Receiver<bool> {
        self.stop_rx.clone()
    }

    /// The task's monitor (its path names it in logs).
    pub fn monitor(&self) -> &Arc<ActorMonitor> {
        &self.monitor
    }
}

/// Builds a fresh run of a task. `Ok(())` after the stop signal ends it; anything else is a
/// fault followed by a restart.
pub type TaskFactory = Arc<dyn Fn(TaskContext) -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A handle on a supervised task.
#[derive(Clone)]
pub struct TaskHandle {
    /// The task's live state.
    pub monitor: Arc<ActorMonitor>,
    stopped_rx: watch::Receiver<bool>,
}

impl TaskHandle {
    /// Resolves once the task ended after its stop signal.
    pub async fn wait_stopped(&self) {
        let mut stopped_rx = self.stopped_rx.clone();
        let _ = stopped_rx.wait_for(|stopped| *stopped).await;
    }

    /// Whether the task ended after its stop signal.
    pub fn is_stopped(&self) -> bool {
        *self.stopped_rx.borrow()
    }
}

/// Everything a task cell needs besides its factory.
pub(crate) struct TaskSetup {
    pub(crate) monitor: Arc<ActorMonitor>,
    pub(crate) faults: Arc<FaultLog>,
    pub(crate) child_index: usize,
    pub(crate) supervisor: Arc<OnceLock<Recipient<ChildFaulted>>>,
    pub(crate) backoff: Backoff,
    pub(crate) restart_window: RestartWindow,
    pub(crate) stop_rx: watch::Receiver<bool>,
}

/// The actix actor that runs one task under supervision.
pub struct TaskCell {
    factory: TaskFactory,
    setup: TaskSetup,
    stopped_tx: watch::Sender<bool>,
    run: Option<SpawnHandle>,
    generation: u64,
}

impl TaskCell {
    pub(crate) fn start(
        factory: TaskFactory,
        setup: TaskSetup,
        arbiter: &ArbiterHandle,
    ) -> (Addr<TaskCell>, TaskHandle) {
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let handle = TaskHandle { monitor: setup.monitor.clone(), stopped_rx };
        let addr = TaskCell::start_in_arbiter(arbiter, move |_ctx| TaskCell {
            factory,
            setup,
            stopped_tx,
            run: None,
            generation: 0,
        });
        (addr, handle)
    }

    fn is_stopping(&self) -> bool {
        *self.setup.stop_rx.borrow()
    }

    fn start_run(&mut self, ctx: &mut Context<Self>) {
        if self.is_stopping() {
            self.finish_stopped();
            return;
        }
        if self.setup.monitor.status() == ActorStatus::Terminated {
            return;
        }
        self.setup.monitor.set_status(ActorStatus::Running);
        self.generation += 1;
        let generation = self.generation;
        let monitor = self.setup.monitor.clone();
        let seq = monitor.record_started(TASK_RUN, format!("run {generation}"), None);
        let started = Instant::now();
        let task_context = TaskContext { stop_rx: self.setup.stop_rx.clone(), monitor };
        let future = match catch_panic(|| (self.factory)(task_context)) {
            Ok(future) => CatchPanic::new(future),
            Err(panic) => {
                self.fail(ctx, seq, started, FaultKind::Panic, panic.message, panic.backtrace);
                return;
            }
        };
        let run = future.into_actor(self).map(move |result, cell, ctx| {
            if cell.generation != generation {
                return;
            }
            cell.run = None;
            match result {
                Ok(Ok(())) if cell.is_stopping() => {
                    cell.setup.monitor.record_finished(seq, Outcome::Ok, started.elapsed());
                    cell.finish_stopped();
                }
                Ok(Ok(())) => {
                    let error = "the task returned before it was asked to stop".to_string();
                    cell.fail(ctx, seq, started, FaultKind::Error, error, None);
                }
                Ok(Err(error)) => cell.fail(ctx, seq, started, FaultKind::Error, error, None),
                Err(panic) => cell.fail(ctx, seq, started, FaultKind::Panic, panic.message, panic.backtrace),
            }
        });
        self.run = Some(ctx.spawn(run));
    }

    fn finish_stopped(&mut self) {
        if !self.stopped_tx.send_replace(true) {
            tracing::debug!(task = self.setup.monitor.path(), "task stopped");
        }
    }

    /// Records a fault, tells the supervisor, and schedules a fresh run after the backoff.
    fn fail(
        &mut self,
        ctx: &mut Context<Self>,
        seq: u64,
        started: Instant,
        kind: FaultKind,
        error: String,
        backtrace: Option<String>,
    ) {
        let outcome = match kind {
            FaultKind::Panic => Outcome::Panic,
            _ => Outcome::Error,
        };
        let monitor = self.setup.monitor.clone();
        monitor.record_finished(seq, outcome, started.elapsed());
        let fault = self.setup.faults.record(Fault {
            id: 0,
            at: chrono::Utc::now(),
            actor_path: monitor.path().to_string(),
            message_type: TASK_RUN,
            kind,
            error: error.clone(),
            backtrace,
            trace_id: None,
            flight_record: monitor.recent_messages(16),
        });
        tracing::error!(task = monitor.path(), fault_id = fault.id, error = %error, "task fault; restarting");
        if let Some(supervisor) = self.setup.supervisor.get() {
            supervisor.do_send(ChildFaulted { child_index: self.setup.child_index, fault_id: fault.id });
        }
        if self.is_stopping() {
            self.finish_stopped();
            return;
        }
        self.schedule_restart(ctx);
    }

    fn schedule_restart(&mut self, ctx: &mut Context<Self>) {
        let monitor = self.setup.monitor.clone();
        monitor.record_restart();
        self.setup.restart_window.admit(Instant::now());
        let attempt = self.setup.restart_window.num_recent().saturating_sub(1) as u32;
        let delay = self.setup.backoff.delay(attempt);
        if monitor.status() != ActorStatus::Terminated {
            monitor.set_status(ActorStatus::BackingOff);
        }
        let generation = self.generation;
        ctx.run_later(delay, move |cell, ctx| {
            if cell.generation == generation && cell.run.is_none() {
                cell.start_run(ctx);
            }
        });
    }
}

impl Actor for TaskCell {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_run(ctx);
        // A stop while backing off (no run to notice it) still ends the task.
        let mut stop_rx = self.setup.stop_rx.clone();
        ctx.spawn(
            async move {
                // A sender gone without a stop is no stop.
                if stop_rx.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            .into_actor(self)
            .map(|_, cell, _ctx| {
                if cell.run.is_none() {
                    cell.finish_stopped();
                }
            }),
        );
    }
}

impl Handler<RestartChild> for TaskCell {
    type Result = ();

    fn handle(&mut self, _message: RestartChild, ctx: &mut Self::Context) {
        if let Some(run) = self.run.take() {
            ctx.cancel_future(run);
        }
        tracing::warn!(task = self.setup.monitor.path(), "restarting with its siblings");
        self.generation += 1;
        self.setup.monitor.record_restart();
        self.start_run(ctx);
    }
}

impl Handler<OperatorControl> for TaskCell {
    type Result = Result<(), String>;

    fn handle(&mut self, control: OperatorControl, ctx: &mut Self::Context) -> Self::Result {
        let monitor = self.setup.monitor.clone();
        let fault = match control {
            OperatorControl::Restart => {
                tracing::warn!(task = monitor.path(), "restarting at an operator's request");
                self.handle(RestartChild, ctx);
                return Ok(());
            }
            OperatorControl::Inject(InjectedFault::Stall(_)) => {
                return Err(format!("{} is a task: it has no mailbox to stall", monitor.path()));
            }
            OperatorControl::Inject(fault) => fault,
        };
        tracing::warn!(task = monitor.path(), ?fault, "fault injected by an operator");
        // The current run ends as if it had failed.
        if let Some(run) = self.run.take() {
            ctx.cancel_future(run);
        }
        self.generation += 1;
        let seq = monitor.record_started(INJECTED_FAULT, format!("{fault:?}"), None);
        let started = Instant::now();
        let (kind, error, backtrace) = match catch_panic(|| {
            if fault == InjectedFault::Panic {
                panic!("fault injected by an operator");
            }
        }) {
            Err(panic) => (FaultKind::Panic, panic.message, panic.backtrace),
            Ok(()) => (FaultKind::Error, "fatal error injected by an operator".to_string(), None),
        };
        self.fail(ctx, seq, started, kind, error, backtrace);
        Ok(())
    }
}
