//! A service's local endpoint: the table from message name to the cell that handles it.
//!
//! Callers in the same node ask through [`LocalEndpoint::route`] with the typed message (no
//! serialization); the cluster transport asks through [`LocalEndpoint::ask_json`] with the
//! JSON body it received from another node. Both reach the same actor.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use actix::{MailboxError, Recipient};
use emporium_contracts::{Request, ServiceError};
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::cell::{Ask, CallMeta, ServiceHandler};
use crate::monitor::ActorMonitor;
use crate::supervisor::CellHandle;
use crate::tree::ServiceHealth;

/// A JSON body as bytes.
type Body = Vec<u8>;

/// The typed way into one message handler of a local service.
pub struct LocalRoute<M: Request> {
    recipient: Recipient<Ask<M>>,
    monitor: Arc<ActorMonitor>,
}

impl<M: Request> Clone for LocalRoute<M> {
    fn clone(&self) -> Self {
        LocalRoute { recipient: self.recipient.clone(), monitor: self.monitor.clone() }
    }
}

impl<M: Request> LocalRoute<M> {
    pub(crate) fn new(recipient: Recipient<Ask<M>>, monitor: Arc<ActorMonitor>) -> Self {
        LocalRoute { recipient, monitor }
    }

    /// Sends `message` to the actor and waits for its answer.
    pub async fn ask(&self, message: M, meta: CallMeta) -> Result<M::Reply, ServiceError> {
        self.monitor.record_enqueued();
        match self.recipient.send(Ask { message, meta }).await {
            Ok(answer) => answer,
            Err(MailboxError::Closed) => Err(ServiceError::unavailable(
                "actor_restarted",
                format!("{} stopped before answering {}", self.monitor.path(), M::NAME),
            )),
            Err(MailboxError::Timeout) => Err(ServiceError::timeout(format!("{} did not answer in time", M::NAME))),
        }
    }
}

trait JsonRoute: Send + Sync {
    fn ask_json(&self, body: Body, meta: CallMeta) -> BoxFuture<'static, Result<Body, ServiceError>>;
    fn idempotent(&self) -> bool;
}

impl<M: Request> JsonRoute for LocalRoute<M> {
    fn ask_json(&self, body: Body, meta: CallMeta) -> BoxFuture<'static, Result<Body, ServiceError>> {
        let route = self.clone();
        Box::pin(async move {
            let message: M = serde_json::from_slice(&body).map_err(|error| {
                ServiceError::invalid(
                    "malformed_message",
                    format!("{} could not be read: {}", M::NAME, crate::input_errors::describe_json_error(&error).1),
                )
            })?;
            let reply = route.ask(message, meta).await?;
            serde_json::to_vec(&reply)
                .map_err(|error| ServiceError::internal(format!("reply not serializable: {error}")))
        })
    }

    fn idempotent(&self) -> bool {
        M::IDEMPOTENT
    }
}

struct RouteEntry {
    typed: Box<dyn Any + Send + Sync>,
    json: Arc<dyn JsonRoute>,
}

/// The message table of one service running in this node.
#[derive(Clone)]
pub struct LocalEndpoint {
    inner: Arc<EndpointInner>,
}

struct EndpointInner {
    service: String,
    routes_by_type: HashMap<TypeId, RouteEntry>,
    names: HashMap<&'static str, TypeId>,
    health: watch::Receiver<ServiceHealth>,
}

impl LocalEndpoint {
    /// Starts the table of `service`, whose health `health` follows.
    pub fn builder(service: &str, health: watch::Receiver<ServiceHealth>) -> EndpointBuilder {
        EndpointBuilder { service: service.to_string(), routes_by_type: HashMap::new(), names: HashMap::new(), health }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Whether the service's supervisor still runs it.
    pub fn is_up(&self) -> bool {
        *self.inner.health.borrow() == ServiceHealth::Up
    }

    /// The service's health.
    pub fn health(&self) -> watch::Receiver<ServiceHealth> {
        self.inner.health.clone()
    }

    /// The typed route for `M`, when this service handles it.
    pub fn route<M: Request>(&self) -> Option<&LocalRoute<M>> {
        self.inner.routes_by_type.get(&TypeId::of::<M>()).and_then(|entry| entry.typed.downcast_ref::<LocalRoute<M>>())
    }

    /// The names of the messages this service handles.
    pub fn message_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.inner.names.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Whether message `name` may be delivered twice.
    pub fn is_idempotent(&self, name: &str) -> Option<bool> {
        let type_id = self.inner.names.get(name)?;
        self.inner.routes_by_type.get(type_id).map(|entry| entry.json.idempotent())
    }

    /// Delivers a JSON-encoded message by name and answers the JSON-encoded reply.
    pub fn ask_json(
        &self,
        name: &str,
        body: Vec<u8>,
        meta: CallMeta,
    ) -> BoxFuture<'static, Result<Vec<u8>, ServiceError>> {
        let route = self
            .inner
            .names
            .get(name)
            .and_then(|type_id| self.inner.routes_by_type.get(type_id))
            .map(|entry| entry.json.clone());
        match route {
            Some(route) => route.ask_json(body, meta),
            None => {
                let error = ServiceError::not_found(
                    "unknown_message",
                    format!("service {} has no message {name}", self.inner.service),
                );
                Box::pin(async move { Err(error) })
            }
        }
    }
}

/// Builds a [`LocalEndpoint`].
pub struct EndpointBuilder {
    service: String,
    routes_by_type: HashMap<TypeId, RouteEntry>,
    names: HashMap<&'static str, TypeId>,
    health: watch::Receiver<ServiceHealth>,
}

impl EndpointBuilder {
    /// Routes message `M` to `cell`.
    pub fn route<M, B>(mut self, cell: &CellHandle<B>) -> Self
    where
        M: Request,
        B: ServiceHandler<M>,
    {
        assert_eq!(M::SERVICE, self.service, "message {} belongs to another service", M::NAME);
        let route = cell.route::<M>();
        self.names.insert(M::NAME, TypeId::of::<M>());
        self.routes_by_type
            .insert(TypeId::of::<M>(), RouteEntry { typed: Box::new(route.clone()), json: Arc::new(route) });
        self
    }

    /// The finished table.
    pub fn build(self) -> LocalEndpoint {
        LocalEndpoint {
            inner: Arc::new(EndpointInner {
                service: self.service,
                routes_by_type: self.routes_by_type,
                names: self.names,
                health: self.health,
            }),
        }
    }
}
