//! The supervised actor cell: an actix actor that owns a service's behaviour, catches its
//! panics and fatal errors, records them as faults, answers the waiting caller with an error,
//! and restarts with fresh state behind the same address (after a backoff).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use emporium_contracts::{Request, ServiceError};
use futures::future::LocalBoxFuture;
use tracing::Instrument;

use crate::control::{INJECTED_FAULT, InjectedFault, OperatorControl};
use crate::fault::{CatchPanic, Fault, FaultKind, FaultLog, catch_panic};
use crate::monitor::{ActorMonitor, ActorStatus, Outcome};
use crate::policy::{Backoff, Intensity, RestartWindow};
use crate::spans::{SpanKind, SpanTimer};
use crate::supervisor::{ChildFaulted, RestartChild};
use crate::trace_context::TraceParent;

/// What travels with every ask besides the message: the deadline and the trace.
#[derive(Debug, Clone, Default)]
pub struct CallMeta {
    /// When the caller stops waiting.
    pub deadline: Option<Instant>,
    /// The caller's trace context.
    pub trace: Option<TraceParent>,
}

impl CallMeta {
    /// The time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }
}

/// A request delivered to a cell, with its call metadata.
pub struct Ask<M: Request> {
    /// The message.
    pub message: M,
    /// Deadline and trace.
    pub meta: CallMeta,
}

impl<M: Request> Message for Ask<M> {
    type Result = Result<M::Reply, ServiceError>;
}

/// How a handler fails.
#[derive(Debug)]
pub enum HandlerError {
    /// An answer for the caller; the actor goes on.
    Reply(ServiceError),
    /// The actor cannot go on: the fault is recorded and the actor restarts by policy.
    Fatal(String),
}

impl From<ServiceError> for HandlerError {
    fn from(error: ServiceError) -> Self {
        HandlerError::Reply(error)
    }
}

/// What a handler returns: a future that owns what it needs (it must not borrow the actor).
pub type Reply<T> = LocalBoxFuture<'static, Result<T, HandlerError>>;

/// The state and behaviour of a supervised actor. A fresh value is built by its factory at
/// start and after every restart.
pub trait Behavior: Unpin + 'static {}

/// A behaviour that handles message `M`.
pub trait ServiceHandler<M: Request>: Behavior {
    /// Handles one message. Synchronous work happens here; I/O goes into the returned future.
    fn handle(&mut self, message: M, meta: &CallMeta) -> Reply<M::Reply>;
}

/// Builds a fresh behaviour.
pub type Factory<B> = Arc<dyn Fn() -> B + Send + Sync>;

/// The actix actor that runs a [`Behavior`] under supervision.
pub struct Cell<B: Behavior> {
    behavior: B,
    factory: Factory<B>,
    monitor: Arc<ActorMonitor>,
    faults: Arc<FaultLog>,
    child_index: usize,
    supervisor: Arc<OnceLock<Recipient<ChildFaulted>>>,
    backoff: Backoff,
    restart_window: RestartWindow,
    pending_backoff: Option<Duration>,
}

/// Everything a cell needs besides its factory.
pub(crate) struct CellSetup {
    pub(crate) monitor: Arc<ActorMonitor>,
    pub(crate) faults: Arc<FaultLog>,
    pub(crate) child_index: usize,
    pub(crate) supervisor: Arc<OnceLock<Recipient<ChildFaulted>>>,
    pub(crate) backoff: Backoff,
    pub(crate) intensity: Intensity,
}

impl<B: Behavior> Cell<B> {
    pub(crate) fn new(factory: Factory<B>, setup: CellSetup) -> Self {
        Cell {
            behavior: factory(),
            factory,
            monitor: setup.monitor,
            faults: setup.faults,
            child_index: setup.child_index,
            supervisor: setup.supervisor,
            backoff: setup.backoff,
            restart_window: RestartWindow::new(setup.intensity),
            pending_backoff: None,
        }
    }

    /// Records a fault, tells the supervisor, stops (actix restarts the cell) and answers the
    /// error for the caller.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        ctx: &mut Context<Self>,
        seq: u64,
        started: Instant,
        message_type: &'static str,
        kind: FaultKind,
        error: String,
        backtrace: Option<String>,
        trace: Option<TraceParent>,
    ) -> ServiceError {
        // A fatal error is an error answer, not a panic: it must not show up in `num_panics`.
        let outcome = match kind {
            FaultKind::Panic => Outcome::Panic,
            _ => Outcome::Error,
        };
        self.monitor.record_finished(seq, outcome, started.elapsed());
        let fault = self.faults.record(Fault {
            id: 0,
            at: chrono::Utc::now(),
            actor_path: self.monitor.path().to_string(),
            message_type,
            kind,
            error: error.clone(),
            backtrace,
            trace_id: trace.map(|trace| trace.trace_id_hex()),
            flight_record: self.monitor.recent_messages(16),
        });
        tracing::error!(
            actor = self.monitor.path(),
            message_type,
            fault_id = fault.id,
            trace_id = fault.trace_id.as_deref().unwrap_or(""),
            error = %error,
            "actor fault; restarting"
        );
        if let Some(supervisor) = self.supervisor.get() {
            supervisor.do_send(ChildFaulted { child_index: self.child_index, fault_id: fault.id });
        }
        ctx.stop();
        ServiceError::fault(format!(
            "{message_type} failed in {} (fault {}); the actor restarts",
            self.monitor.path(),
            fault.id
        ))
    }
}

impl<B: Behavior> Actor for Cell<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        if let Some(delay) = self.pending_backoff.take() {
            self.monitor.set_status(ActorStatus::BackingOff);
            ctx.wait(actix::clock::sleep(delay).into_actor(self).map(|_, cell, _| {
                if cell.monitor.status() == ActorStatus::BackingOff {
                    cell.monitor.set_status(ActorStatus::Running);
                }
            }));
        }
    }
}

impl<B: Behavior> Supervised for Cell<B> {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.behavior = (self.factory)();
        self.monitor.record_restart();
        self.restart_window.admit(Instant::now());
        let attempt = self.restart_window.num_recent().saturating_sub(1) as u32;
        self.pending_backoff = Some(self.backoff.delay(attempt));
    }
}

impl<B: Behavior> Handler<RestartChild> for Cell<B> {
    type Result = ();

    fn handle(&mut self, _message: RestartChild, ctx: &mut Self::Context) {
        tracing::warn!(actor = self.monitor.path(), "restarting with its siblings");
        ctx.stop();
    }
}

impl<B: Behavior> Handler<OperatorControl> for Cell<B> {
    type Result = Result<(), String>;

    fn handle(&mut self, control: OperatorControl, ctx: &mut Self::Context) -> Self::Result {
        let fault = match control {
            OperatorControl::Restart => {
                tracing::warn!(actor = self.monitor.path(), "restarting at an operator's request");
                ctx.stop();
                return Ok(());
            }
            OperatorControl::Inject(fault) => fault,
        };
        tracing::warn!(actor = self.monitor.path(), ?fault, "fault injected by an operator");
        let seq = self.monitor.record_started(INJECTED_FAULT, format!("{fault:?}"), None);
        let started = Instant::now();
        match fault {
            InjectedFault::Panic => {
                // A real panic, caught the way a handler's is.
                let panic = catch_panic(|| panic!("fault injected by an operator")).expect_err("it panicked");
                self.fail(ctx, seq, started, INJECTED_FAULT, FaultKind::Panic, panic.message, panic.backtrace, None);
            }
            InjectedFault::Error => {
                let error = "fatal error injected by an operator".to_string();
                self.fail(ctx, seq, started, INJECTED_FAULT, FaultKind::Error, error, None, None);
            }
            InjectedFault::Stall(duration) => {
                // The mailbox waits, as behind a handler stuck in a blocking call.
                ctx.wait(actix::clock::sleep(duration).into_actor(self).map(move |_, cell, _| {
                    cell.monitor.record_finished(seq, Outcome::Ok, started.elapsed());
                }));
            }
        }
        Ok(())
    }
}

impl<B, M> Handler<Ask<M>> for Cell<B>
where
    B: ServiceHandler<M>,
    M: Request,
{
    // `ActorResponse::reply` answers at once: a reply future spawned on the context would be
    // dropped unanswered when `fail` stops the cell before the future is polled.
    type Result = ActorResponse<Self, Result<M::Reply, ServiceError>>;

    fn handle(&mut self, ask: Ask<M>, ctx: &mut Self::Context) -> Self::Result {
        let Ask { message, meta } = ask;
        if self.monitor.status() == ActorStatus::Terminated {
            self.monitor.record_dropped_before_delivery();
            let error = ServiceError::unavailable("service_down", format!("{} is down", self.monitor.path()));
            return ActorResponse::reply(Err(error));
        }
        if meta.remaining().is_some_and(|left| left.is_zero()) {
            self.monitor.record_dropped_before_delivery();
            return ActorResponse::reply(Err(ServiceError::timeout("deadline passed before handling")));
        }
        // The handling is a span of its own, child of the caller's: the handler's asks and
        // events carry it on.
        let trace = meta.trace.map(|caller| caller.child());
        let caller_span_id = meta.trace.map(|caller| caller.span_id);
        let meta = CallMeta { deadline: meta.deadline, trace };
        let seq = self.monitor.record_started(M::NAME, message.summary(), trace.map(|trace| trace.trace_id_hex()));
        let started = Instant::now();
        let mut timer = trace.and_then(|trace| SpanTimer::start(M::NAME, SpanKind::Internal, trace, caller_span_id));
        if let Some(timer) = timer.as_mut() {
            timer.attribute("emporium.actor", self.monitor.path()).attribute("emporium.message", M::NAME);
        }
        // Every line logged while a traced message is handled carries its trace (log_format.rs
        // in emporium-cluster lifts the ids to the top level of the line).
        let span = match trace {
            Some(trace) => tracing::info_span!(
                "handle",
                actor = %self.monitor.path(),
                message = M::NAME,
                trace_id = %trace.trace_id_hex(),
                span_id = %trace.span_id_hex(),
            ),
            None => tracing::Span::none(),
        };
        let future = match catch_panic(|| span.in_scope(|| self.behavior.handle(message, &meta))) {
            Ok(future) if span.is_none() => CatchPanic::new(future),
            Ok(future) => match trace.filter(|_| crate::spans::enabled()) {
                // The handling span is the current one for what has no CallMeta (a transaction).
                Some(trace) => CatchPanic::new(Box::pin(crate::spans::within(trace, future.instrument(span)))),
                None => CatchPanic::new(Box::pin(future.instrument(span))),
            },
            Err(panic) => {
                let error =
                    self.fail(ctx, seq, started, M::NAME, FaultKind::Panic, panic.message, panic.backtrace, trace);
                finish_span(timer, Some(&error));
                return ActorResponse::reply(Err(error));
            }
        };
        ActorResponse::r#async(future.into_actor(self).map(move |result, cell, ctx| {
            let answer = match result {
                Ok(Ok(reply)) => {
                    cell.monitor.record_finished(seq, Outcome::Ok, started.elapsed());
                    Ok(reply)
                }
                Ok(Err(HandlerError::Reply(error))) => {
                    cell.monitor.record_finished(seq, Outcome::Error, started.elapsed());
                    Err(error)
                }
                Ok(Err(HandlerError::Fatal(error))) => {
                    Err(cell.fail(ctx, seq, started, M::NAME, FaultKind::Error, error, None, trace))
                }
                Err(panic) => {
                    Err(cell.fail(ctx, seq, started, M::NAME, FaultKind::Panic, panic.message, panic.backtrace, trace))
                }
            };
            finish_span(timer, answer.as_ref().err());
            answer
        }))
    }
}

/// Records the handling span: failed when the answer is a server-side error (5xx), not when
/// the caller was refused (4xx).
fn finish_span(timer: Option<SpanTimer>, error: Option<&ServiceError>) {
    if let Some(timer) = timer {
        timer.finish(error.filter(|error| error.http_status() >= 500).map(|error| error.code.to_string()));
    }
}
