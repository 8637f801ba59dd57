//! Asking a bus actor from its driver, as a local caller would.

use actix::MailboxError;
use emporium_contracts::{Request, ServiceError};
use emporium_runtime::{Ask, CallMeta, CellHandle, ServiceHandler, TraceParent};

/// Sends `message` to `cell` and waits for the answer.
pub(crate) async fn ask<B, M>(
    cell: &CellHandle<B>,
    message: M,
    trace: Option<TraceParent>,
) -> Result<M::Reply, ServiceError>
where
    B: ServiceHandler<M>,
    M: Request,
{
    cell.monitor.record_enqueued();
    match cell.addr.send(Ask { message, meta: CallMeta { deadline: None, trace } }).await {
        Ok(answer) => answer,
        Err(MailboxError::Closed) => Err(ServiceError::unavailable(
            "actor_stopped",
            format!("{} stopped before answering {}", cell.monitor.path(), M::NAME),
        )),
        Err(MailboxError::Timeout) => Err(ServiceError::timeout(format!("{} did not answer in time", M::NAME))),
    }
}
