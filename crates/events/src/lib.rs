//! # spane-events
//!
//! Live events of executions and nodes ([`EngineEvent`]), delivered to subscribers.
//!
//! - [`EventBus`] — the trait: subscribe to every event, or to one execution's.
//! - [`LocalBus`] — in-process fan-out on a tokio broadcast channel; also an [`EventSink`], so
//!   the in-memory queue publishes into it inside its commit step (events of one execution
//!   arrive in causal order).
//!
//! - [`RedisBus`] — tails the capped event stream that the Redis queue's scripts append to,
//!   so every engine instance sees every event, in the order the transitions were committed.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use futures::StreamExt;
//! use spane_core::{EngineEvent, EventSink, ExecutionId, WorkflowEvent, WorkflowEventStatus};
//! use spane_events::{EventBus, EventFilter, LocalBus};
//!
//! let bus = LocalBus::new(1024);
//! let id = ExecutionId::new();
//! let mut events = bus.subscribe(EventFilter::Execution(id)).await.unwrap();
//! bus.emit(vec![EngineEvent::Workflow(WorkflowEvent {
//!     execution_id: id,
//!     workflow_id: "wf".into(),
//!     status: WorkflowEventStatus::Started,
//!     error: None,
//!     timestamp: 0,
//! })]);
//! assert_eq!(events.next().await.unwrap().unwrap().execution_id(), id);
//! # });
//! ```

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use spane_core::{EngineEvent, EventSink, ExecutionId};
use tokio::sync::broadcast;

mod redis;

pub use redis::RedisBus;

/// Errors of the event bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The subscriber fell behind and `missed` events were dropped; re-read the state you need
    /// (for example the execution record) and go on.
    #[error("subscriber lagged behind: {missed} events dropped")]
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
    /// The bus could not be reached.
    #[error("event bus unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
}

/// Which events a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFilter {
    /// Every event.
    #[default]
    All,
    /// Events of one execution.
    Execution(ExecutionId),
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &EngineEvent) -> bool {
        match self {
            Self::All => true,
            Self::Execution(id) => event.execution_id() == *id,
        }
    }
}

/// A subscription: a stream of events, with [`EventError::Lagged`] when events were dropped.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<EngineEvent, EventError>> + Send>>;

/// Delivers events to subscribers.
#[async_trait]
pub trait EventBus: EventSink + fmt::Debug {
    /// Subscribes; events emitted after this call returns are delivered.
    async fn subscribe(&self, filter: EventFilter) -> Result<EventStream, EventError>;

    /// Subscribes to the workflow-level events ([`EngineEvent::Workflow`]) of every
    /// execution only; events emitted after this call returns are delivered, with
    /// [`EventError::Lagged`] when some were dropped. A bus may deliver these more cheaply than
    /// [`subscribe`](Self::subscribe) with a filter (the [`LocalBus`] keeps a channel for
    /// them, so that node events need not be built when nobody else listens).
    async fn subscribe_workflow_events(&self) -> Result<EventStream, EventError> {
        let all = self.subscribe(EventFilter::All).await?;
        Ok(Box::pin(all.filter(|item| {
            futures::future::ready(!matches!(item, Ok(EngineEvent::Node(_))))
        })))
    }
}

/// In-process event bus on tokio broadcast channels.
#[derive(Clone)]
pub struct LocalBus {
    /// Every event, for [`EventBus::subscribe`].
    tx: broadcast::Sender<EngineEvent>,
    /// Workflow events only, for [`EventBus::subscribe_workflow_events`].
    workflow: broadcast::Sender<EngineEvent>,
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBus")
            .field("subscribers", &self.tx.receiver_count())
            .field("workflow_subscribers", &self.workflow.receiver_count())
            .finish()
    }
}

impl LocalBus {
    /// A bus that buffers up to `capacity` events per slow subscriber before it lags.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (workflow, _) = broadcast::channel(capacity.max(1));
        Self { tx, workflow }
    }
}

/// A subscription stream over a broadcast receiver.
fn receiver_stream(
    rx: broadcast::Receiver<EngineEvent>,
) -> impl Stream<Item = Result<EngineEvent, EventError>> {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(e) => Some((Ok(e), rx)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Some((Err(EventError::Lagged { missed }), rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

impl LocalBus {
    pub(crate) fn sender(&self) -> broadcast::Sender<EngineEvent> {
        self.tx.clone()
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(16 * 1024)
    }
}

impl EventSink for LocalBus {
    fn emit(&self, events: Vec<EngineEvent>) {
        // No subscriber is not an error: events are live, not stored.
        let everyone = self.tx.receiver_count() > 0;
        for e in events {
            if matches!(e, EngineEvent::Workflow(_)) && self.workflow.receiver_count() > 0 {
                if everyone {
                    let _ = self.workflow.send(e.clone());
                } else {
                    let _ = self.workflow.send(e);
                    continue;
                }
            }
            if everyone {
                let _ = self.tx.send(e);
            }
        }
    }

    fn wants_node_events(&self) -> bool {
        self.tx.receiver_count() > 0
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn subscribe(&self, filter: EventFilter) -> Result<EventStream, EventError> {
        let stream = receiver_stream(self.tx.subscribe()).filter(move |item| {
            let keep = match item {
                Ok(e) => filter.matches(e),
                Err(_) => true,
            };
            futures::future::ready(keep)
        });
        Ok(Box::pin(stream))
    }

    async fn subscribe_workflow_events(&self) -> Result<EventStream, EventError> {
        Ok(Box::pin(receiver_stream(self.workflow.subscribe())))
    }
}
