//! Event ids and resumable subscriptions: a subscriber that reconnects gives the id of the last
//! event it saw and receives every later event once, in order.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;

use async_trait::async_trait;
use futures::Stream;
use spane_core::EngineEvent;

use crate::{EventError, EventFilter};

/// The position of an event in its bus's order; ids of one bus compare in delivery order.
///
/// Written `<major>-<minor>.<index>`:
/// - on [`RedisBus`](crate::RedisBus), `<major>-<minor>` is the entry id of the Redis stream
///   the event was appended to (so the id survives a restart of the server that read it) and
///   `<index>` the event's place in that entry;
/// - on [`LocalBus`](crate::LocalBus), `<major>` names the bus instance (a process that
///   restarts has a new one, so an id from before is recognised as such) and `<minor>` is a
///   sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    major: u64,
    minor: u64,
    index: u32,
}

impl EventId {
    /// An id from its three parts.
    pub fn new(major: u64, minor: u64, index: u32) -> Self {
        Self {
            major,
            minor,
            index,
        }
    }

    /// The first part: a Redis entry's milliseconds, or a local bus's instance.
    pub fn major(&self) -> u64 {
        self.major
    }

    /// The second part: a Redis entry's sequence, or a local bus's event sequence.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// The event's place within its Redis entry (0 on a local bus).
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}.{}", self.major, self.minor, self.index)
    }
}

/// An event id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event id {0:?} is not of the form <major>-<minor>.<index>")]
pub struct InvalidEventId(pub String);

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidEventId(s.to_owned());
        let (entry, index) = match s.split_once('.') {
            Some((entry, index)) => (entry, index.parse().map_err(|_| bad())?),
            None => (s, 0),
        };
        let (major, minor) = entry.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
            index,
        })
    }
}

/// An event with its id.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SequencedEvent {
    /// Its position; give it to [`ResumableBus::subscribe_after`] to resume after it.
    pub id: EventId,
    /// The event.
    pub event: EngineEvent,
}

/// A subscription whose events carry their ids.
pub type SequencedStream = Pin<Box<dyn Stream<Item = Result<SequencedEvent, EventError>> + Send>>;

/// Capability of a bus that can resume a subscription after a given event (see
/// [`EventBus::resumable`](crate::EventBus::resumable)).
#[async_trait]
pub trait ResumableBus: Send + Sync {
    /// Subscribes to the events matching `filter`, each with its id: when `after` is given,
    /// first every such event the bus still holds that came after it, then live ones, each
    /// exactly once and in order; without `after`, the events emitted after this call returns.
    ///
    /// Returns [`EventError::CannotResume`] when some event after `after` may no longer be
    /// held (trimmed from the Redis stream, older than the local journal, or `after` comes from
    /// another instance of a local bus): the caller should re-read the state it needs and
    /// subscribe without `after`. A local subscriber that falls too far behind receives
    /// [`EventError::Lagged`] and may resume after the last id it saw.
    async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<SequencedStream, EventError>;
}

/// Keeps the events of `stream` that pass `filter` (errors always pass).
pub(crate) fn filtered(
    stream: impl Stream<Item = Result<SequencedEvent, EventError>> + Send + 'static,
    filter: EventFilter,
) -> SequencedStream {
    use futures::StreamExt;
    Box::pin(stream.filter(move |item| {
        futures::future::ready(match item {
            Ok(e) => filter.matches(&e.event),
            Err(_) => true,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::EventId;

    #[test]
    fn ids_round_trip_order_and_reject_garbage() {
        let id = EventId::new(1_700_000_000_000, 3, 2);
        assert_eq!(id.to_string(), "1700000000000-3.2");
        assert_eq!("1700000000000-3.2".parse::<EventId>().unwrap(), id);
        assert_eq!(
            "5-1".parse::<EventId>().unwrap(),
            EventId::new(5, 1, 0),
            "a bare Redis entry id is index 0"
        );
        assert!(EventId::new(5, 1, 9) < EventId::new(5, 2, 0));
        assert!(EventId::new(5, 9, 0) < EventId::new(6, 0, 0));
        for bad in ["", "5", "a-b", "5-1.x", "5-1.2.3", "-1-2"] {
            let err = bad.parse::<EventId>().unwrap_err();
            assert!(err.to_string().contains("event id"), "{bad}: {err}");
        }
    }
}
