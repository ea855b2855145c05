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
//!   It connects through `spane-redis` (`redis://`, or `rediss://` with the `tls-rustls`
//!   feature).
//! - [`ResumableBus`] — the capability both buses offer ([`EventBus::resumable`]): every event
//!   has an [`EventId`], and a subscriber that reconnects resumes after the last id it saw,
//!   missing and repeating nothing. On Redis the id is the stream entry's (it survives a restart
//!   of the process that read it); a [`LocalBus`] numbers its events and keeps the last ones in
//!   a bounded journal ([`LocalBus::with_journal`]).
//!
//! A subscriber never loses events silently: one that falls behind receives
//! [`EventError::Lagged`] (it overran its buffer) or [`EventError::Trimmed`] (the Redis stream
//! dropped events before this process read them) as an item, and the stream goes on.
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
//! bus.emit(vec![EngineEvent::Workflow(WorkflowEvent::new(
//!     id,
//!     "wf",
//!     WorkflowEventStatus::Started,
//! ))]);
//! assert_eq!(events.next().await.unwrap().unwrap().execution_id(), id);
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use spane_core::{EngineEvent, EventSink, ExecutionId};
use tokio::sync::broadcast;

#[cfg(feature = "redis")]
mod redis;
mod resume;

#[cfg(feature = "redis")]
pub use redis::RedisBus;
pub use resume::{EventId, InvalidEventId, ResumableBus, SequencedEvent, SequencedStream};

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
        /// The underlying error (the Redis client's or the database driver's), when there is one.
        #[source]
        source: Option<spane_core::ErrorSource>,
    },
    #[cfg(feature = "redis")]
    /// Connecting to Redis failed (invalid URL, TLS, authentication, unreachable); the source
    /// says which.
    #[error("event bus connection failed: {0}")]
    Connect(#[source] spane_redis::ConnectError),
    /// Events after `after` were trimmed from the Redis event stream before this process read
    /// them: an unknown number of events is lost. The subscription goes on with the oldest
    /// event still held; re-read the state you need (for example the execution record).
    #[error("events after {after} were trimmed from the event stream before they were read")]
    Trimmed {
        /// The last event read before the gap.
        after: EventId,
    },
    /// A subscription cannot resume after this event: some later event may no longer be held.
    /// Re-read the state you need and subscribe again from now.
    #[error("cannot resume after event {after}: {reason}")]
    CannotResume {
        /// The id the subscriber asked to resume after.
        after: EventId,
        /// Why (trimmed, older than the journal, from another bus instance).
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

/// A subscription: a stream of events. A subscriber never loses events silently: when some were
/// dropped it receives [`EventError::Lagged`] (it fell behind the bus's buffer) or
/// [`EventError::Trimmed`] (they left the Redis stream before they were read), then the stream
/// goes on.
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

    /// Subscriptions with event ids that can resume after a given event, when this bus offers
    /// them (both built-in buses do).
    fn resumable(&self) -> Option<&dyn ResumableBus> {
        None
    }
}

/// In-process event bus on tokio broadcast channels.
///
/// Every event gets an [`EventId`] (this bus's instance, then a sequence number). With a
/// journal ([`with_journal`](Self::with_journal)) the bus keeps its last events, so that a
/// subscriber resumes after an id it saw ([`ResumableBus`]); node events are then always built,
/// even when nobody listens.
#[derive(Clone)]
pub struct LocalBus {
    /// Every event, for [`EventBus::subscribe`] (and gaps the Redis reader found).
    tx: broadcast::Sender<Delivery>,
    /// Workflow events only, for [`EventBus::subscribe_workflow_events`].
    workflow: broadcast::Sender<EngineEvent>,
    /// Numbers the events and keeps the last ones; numbering and sending happen under its
    /// lock, so ids reach every subscriber in increasing order.
    journal: Arc<Mutex<Journal>>,
    /// This instance, the major part of its ids.
    instance: u64,
    /// Events kept for resumption (0: none).
    journal_cap: usize,
}

#[derive(Default)]
struct Journal {
    /// The sequence of the last event numbered.
    last: u64,
    /// The last `journal_cap` events, oldest first.
    events: VecDeque<SequencedEvent>,
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBus")
            .field("subscribers", &self.tx.receiver_count())
            .field("workflow_subscribers", &self.workflow.receiver_count())
            .field("journal_cap", &self.journal_cap)
            .finish()
    }
}

impl LocalBus {
    /// A bus that buffers up to `capacity` events per slow subscriber before it lags, and keeps
    /// no journal (a subscription resumes only while no event was emitted since the id).
    pub fn new(capacity: usize) -> Self {
        Self::with_journal(capacity, 0)
    }

    /// A bus that also keeps its last `journal` events, so that a subscriber that reconnects
    /// resumes after any id among them ([`ResumableBus::subscribe_after`]).
    pub fn with_journal(capacity: usize, journal: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (workflow, _) = broadcast::channel(capacity.max(1));
        // Distinct per instance, so that an id from an earlier process is not taken for one of
        // this bus's.
        let instance = spane_core::now_millis().unsigned_abs() * 1000
            + u64::from(INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1000);
        Self {
            tx,
            workflow,
            journal: Arc::new(Mutex::new(Journal::default())),
            instance,
            journal_cap: journal,
        }
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn sender(&self) -> broadcast::Sender<Delivery> {
        self.tx.clone()
    }
}

/// What the channel of every event carries: an event, or a gap the Redis reader found.
pub(crate) type Delivery = Result<SequencedEvent, EventError>;

/// A subscription stream over the channel of every event; a gap is passed on as an error.
fn delivery_stream(
    rx: broadcast::Receiver<Delivery>,
) -> impl Stream<Item = Result<SequencedEvent, EventError>> {
    receiver_stream(rx).map(|item| item.and_then(|delivery| delivery))
}

static INSTANCES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A subscription stream over a broadcast receiver.
fn receiver_stream<T: Clone + Send + 'static>(
    rx: broadcast::Receiver<T>,
) -> impl Stream<Item = Result<T, EventError>> {
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

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(16 * 1024)
    }
}

impl EventSink for LocalBus {
    fn emit(&self, events: Vec<EngineEvent>) {
        // No subscriber is not an error: events are live, not stored (but journaled if asked).
        let everyone = self.tx.receiver_count() > 0;
        let journal = self.journal_cap > 0;
        let workflow = self.workflow.receiver_count() > 0;
        if !everyone && !journal {
            if workflow {
                for e in events {
                    if matches!(e, EngineEvent::Workflow(_)) {
                        let _ = self.workflow.send(e);
                    }
                }
            }
            return;
        }
        let mut state = self.lock_journal();
        for e in events {
            if workflow && matches!(e, EngineEvent::Workflow(_)) {
                let _ = self.workflow.send(e.clone());
            }
            state.last += 1;
            let sequenced = SequencedEvent {
                id: EventId::new(self.instance, state.last, 0),
                event: e,
            };
            if journal {
                if state.events.len() == self.journal_cap {
                    state.events.pop_front();
                }
                state.events.push_back(sequenced.clone());
            }
            if everyone {
                let _ = self.tx.send(Ok(sequenced));
            }
        }
    }

    fn wants_node_events(&self) -> bool {
        self.journal_cap > 0 || self.tx.receiver_count() > 0
    }
}

#[async_trait]
impl ResumableBus for LocalBus {
    async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<SequencedStream, EventError> {
        // Subscribing and reading the journal under its lock: nothing emitted meanwhile is
        // missed or delivered twice.
        let state = self.lock_journal();
        let rx = self.tx.subscribe();
        let backlog: Vec<SequencedEvent> = match after {
            None => Vec::new(),
            Some(after) => {
                let cannot = |reason: &str| EventError::CannotResume {
                    after,
                    reason: reason.to_owned(),
                };
                if after.major() != self.instance {
                    return Err(cannot("the id comes from another instance of the bus"));
                }
                if after.minor() > state.last {
                    return Err(cannot("the id is ahead of this bus"));
                }
                let oldest_kept = state
                    .events
                    .front()
                    .map_or(state.last + 1, |e| e.id.minor());
                if after.minor() + 1 < oldest_kept {
                    return Err(cannot("later events are no longer in the journal"));
                }
                state
                    .events
                    .iter()
                    .filter(|e| e.id > after && filter.matches(&e.event))
                    .cloned()
                    .collect()
            }
        };
        drop(state);
        let live = delivery_stream(rx);
        Ok(resume::filtered(
            futures::stream::iter(backlog.into_iter().map(Ok)).chain(live),
            filter,
        ))
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn subscribe(&self, filter: EventFilter) -> Result<EventStream, EventError> {
        let stream = delivery_stream(self.tx.subscribe()).filter_map(move |item| {
            futures::future::ready(match item {
                Ok(e) => filter.matches(&e.event).then_some(Ok(e.event)),
                Err(e) => Some(Err(e)),
            })
        });
        Ok(Box::pin(stream))
    }

    async fn subscribe_workflow_events(&self) -> Result<EventStream, EventError> {
        Ok(Box::pin(receiver_stream(self.workflow.subscribe())))
    }

    fn resumable(&self) -> Option<&dyn ResumableBus> {
        Some(self)
    }
}
