//! Event bus on a Redis stream: the queue's scripts append each transition's events to a capped
//! stream; every engine instance tails it and fans the events out to its local subscribers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use futures::StreamExt;
use spane_core::{EngineEvent, EventSink};
use spane_redis::RedisEndpoint;
use tokio::sync::broadcast;

use crate::resume::filtered;
use crate::{
    Delivery, EventBus, EventError, EventFilter, EventId, EventStream, LocalBus, ResumableBus,
    SequencedEvent, SequencedStream,
};

/// Entries read per XRANGE while a resumed subscription catches up.
const CATCH_UP_BATCH: u64 = 256;

/// Entries read per XREAD by the process's reader; a full batch means it is behind, and it then
/// checks whether the stream was trimmed past what it read.
const TAIL_BATCH: u64 = 1000;

/// Delivers the events that the Redis queue appends to its streams to every subscriber of this
/// process. Create one per process with the streams of the queue
/// (`RedisQueue::event_streams`). The first subscription starts a reader at the current end
/// of the stream; a process that never subscribes costs Redis nothing.
#[derive(Clone)]
pub struct RedisBus {
    local: LocalBus,
    client: Client,
    endpoint: RedisEndpoint,
    stream: String,
    cap: u64,
    /// The reader task, started by the first subscription (a process that never subscribes
    /// costs Redis nothing).
    reader: Arc<tokio::sync::Mutex<Option<tokio::task::AbortHandle>>>,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        if Arc::strong_count(&self.reader) == 1
            && let Ok(reader) = self.reader.try_lock()
            && let Some(task) = reader.as_ref()
        {
            task.abort();
        }
    }
}

fn unavailable(e: fred::error::Error) -> EventError {
    EventError::Unavailable {
        reason: e.to_string(),
        source: Some(spane_core::ErrorSource::new(e)),
    }
}

async fn connect(endpoint: &RedisEndpoint) -> Result<Client, EventError> {
    spane_redis::connect(endpoint)
        .await
        .map_err(EventError::Connect)
}

impl RedisBus {
    /// Connects to `endpoint` (a `redis://` or `rediss://` URL, or a [`RedisEndpoint`] with TLS
    /// settings); the first subscription starts tailing `stream` over a second connection to
    /// the same endpoint.
    pub async fn connect(
        endpoint: impl Into<RedisEndpoint>,
        stream: impl Into<String>,
    ) -> Result<Self, EventError> {
        let endpoint = endpoint.into();
        let stream = stream.into();
        let client = connect(&endpoint).await?;
        Ok(Self {
            local: LocalBus::default(),
            client,
            endpoint,
            stream,
            cap: 100_000,
            reader: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// How many events this process's subscribers may fall behind before they lag (default
    /// 16,384). A plain subscriber that lags gets [`EventError::Lagged`]; a resumable one
    /// ([`ResumableBus`]) reads what it missed from the stream again, and gets
    /// [`EventError::Trimmed`] only for what the stream no longer holds. Set it before the
    /// first subscription.
    pub fn buffer(mut self, events: usize) -> Self {
        self.local = LocalBus::new(events);
        self
    }

    async fn ensure_reader(&self) -> Result<(), EventError> {
        let mut reader = self.reader.lock().await;
        if reader.is_none() {
            // Start after the newest entry: subscribers see what happens from now on.
            let newest: Value = self
                .client
                .xrevrange(&self.stream, "+", "-", Some(1))
                .await
                .map_err(unavailable)?;
            let start = newest
                .into_array()
                .into_iter()
                .next()
                .and_then(|e| e.into_array().into_iter().next())
                .and_then(|id| id.as_string())
                .unwrap_or_else(|| "0-0".to_owned());
            let client = connect(&self.endpoint).await?;
            let task = tokio::spawn(tail(
                client,
                self.stream.clone(),
                start,
                self.local.sender(),
            ));
            *reader = Some(task.abort_handle());
        }
        Ok(())
    }
}

async fn tail(client: Client, stream: String, mut last: String, tx: broadcast::Sender<Delivery>) {
    let mut backoff = Duration::from_millis(50);
    // After a failed read, the next one checks for a gap: the stream may have been trimmed
    // meanwhile.
    let mut check_gap = false;
    loop {
        let reply: Result<Value, _> = client
            .xread(Some(TAIL_BATCH), Some(1000), stream.as_str(), last.as_str())
            .await;
        match reply {
            Ok(value) => {
                backoff = Duration::from_millis(50);
                let batch = entries(value);
                if check_gap || batch.len() as u64 >= TAIL_BATCH {
                    check_gap = false;
                    report_gap(&client, &stream, &last, &tx).await;
                }
                for (id, events) in batch {
                    if let Some(entry) = entry_id(&id) {
                        for (index, event) in events.into_iter().enumerate() {
                            let id = EventId::new(entry.0, entry.1, index as u32);
                            let _ = tx.send(Ok(SequencedEvent { id, event }));
                        }
                    }
                    last = id;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, %stream, "reading events failed, retrying");
                check_gap = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Tells every subscriber when entries after `last` were trimmed before they were read.
async fn report_gap(client: &Client, stream: &str, last: &str, tx: &broadcast::Sender<Delivery>) {
    // A reader that started on an empty stream has read nothing that a gap could follow.
    let Some(after) = entry_id(last).filter(|e| *e != (0, 0)) else {
        return;
    };
    match trimmed_after(client, stream, after).await {
        Ok(true) => {
            tracing::warn!(%stream, after = last, "events were trimmed from the stream before this process read them");
            let _ = tx.send(Err(EventError::Trimmed {
                after: EventId::new(after.0, after.1, u32::MAX),
            }));
        }
        Ok(false) => {}
        Err(e) => tracing::debug!(error = %e, "cannot check the event stream for a gap"),
    }
}

/// Whether the stream was trimmed past entry `after`: its oldest entry is later, so `after`
/// and, as far as the stream can tell, some entries after it are gone. (Redis keeps no record
/// of the ids `XTRIM` dropped, so losing exactly `after` and nothing later is reported too.)
async fn trimmed_after(
    client: &Client,
    stream: &str,
    after: (u64, u64),
) -> Result<bool, EventError> {
    let oldest = oldest_entry(client, stream).await?;
    Ok(oldest.is_none_or(|oldest| oldest > after))
}

/// The id of the oldest entry the stream still holds (`None`: it is empty or gone).
async fn oldest_entry(client: &Client, stream: &str) -> Result<Option<(u64, u64)>, EventError> {
    let oldest: Value = client
        .xrange(stream, "-", "+", Some(1))
        .await
        .map_err(unavailable)?;
    Ok(entry_list(oldest)
        .into_iter()
        .next()
        .and_then(|(id, _)| entry_id(&id)))
}

/// A stream entry id `<ms>-<seq>` as numbers.
fn entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Entries of an XREAD reply (RESP2 arrays or RESP3 maps), each with its decoded events.
fn entries(value: Value) -> Vec<(String, Vec<EngineEvent>)> {
    let streams: Vec<Value> = match value {
        Value::Map(m) => m.inner().into_values().collect(),
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| s.into_array().into_iter().nth(1))
            .collect(),
        _ => Vec::new(),
    };
    streams.into_iter().flat_map(entry_list).collect()
}

/// The entries of one stream (an XRANGE reply), each with its decoded events.
fn entry_list(list: Value) -> Vec<(String, Vec<EngineEvent>)> {
    let mut out = Vec::new();
    for entry in list.into_array() {
        let mut parts = entry.into_array().into_iter();
        let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(id) = id.as_string() else { continue };
        let fields: Vec<String> = match fields {
            Value::Map(m) => m
                .inner()
                .into_iter()
                .flat_map(|(k, v)| [k.as_str().map(|s| s.to_string()), v.as_string()])
                .flatten()
                .collect(),
            other => other
                .into_array()
                .iter()
                .filter_map(Value::as_string)
                .collect(),
        };
        let events = fields
            .chunks(2)
            .filter(|kv| kv.len() == 2 && kv[0] == "e")
            .filter_map(
                |kv| match serde_json::from_str::<Vec<EngineEvent>>(&kv[1]) {
                    Ok(e) => Some(e),
                    Err(err) => {
                        tracing::warn!(error = %err, "undecodable event entry skipped");
                        None
                    }
                },
            )
            .flatten()
            .collect();
        out.push((id, events));
    }
    out
}

impl EventSink for RedisBus {
    fn emit(&self, events: Vec<EngineEvent>) {
        let Ok(json) = serde_json::to_string(&events) else {
            return;
        };
        let client = self.client.clone();
        let stream = self.stream.clone();
        let cap = self.cap;
        tokio::spawn(async move {
            let r: Result<Value, _> = client
                .xadd(
                    stream,
                    false,
                    ("MAXLEN", "~", cap as i64),
                    "*",
                    vec![("e", json)],
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "publishing events failed");
            }
        });
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn subscribe(&self, filter: EventFilter) -> Result<EventStream, EventError> {
        // Subscribe locally first, so nothing the reader delivers from now on is missed.
        let stream = self.local.subscribe(filter).await?;
        self.ensure_reader().await?;
        Ok(stream)
    }

    fn resumable(&self) -> Option<&dyn ResumableBus> {
        Some(self)
    }
}

/// Where a resumed subscription is: reading the stream from Redis, or the shared tail.
enum Phase {
    /// Reading entries from Redis after the last delivered id (from this entry, inclusive,
    /// when `inclusive`: then a first entry other than it may follow a gap).
    CatchUp { inclusive: bool },
    /// Following the process's reader; ids not after the last delivered one are skipped.
    Live,
}

struct Resumed {
    client: Client,
    stream: String,
    rx: broadcast::Receiver<Delivery>,
    last: EventId,
    phase: Phase,
    pending: std::collections::VecDeque<SequencedEvent>,
}

impl Resumed {
    /// The next event after `last`, reading Redis while catching up.
    async fn next(&mut self) -> Option<Result<SequencedEvent, EventError>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.last = e.id;
                return Some(Ok(e));
            }
            match self.phase {
                Phase::CatchUp { inclusive } => {
                    let entry = format!("{}-{}", self.last.major(), self.last.minor());
                    let start = if inclusive {
                        entry
                    } else {
                        format!("({entry}")
                    };
                    let reply: Result<Value, _> = self
                        .client
                        .xrange(&self.stream, start, "+", Some(CATCH_UP_BATCH))
                        .await;
                    let list = match reply {
                        Ok(list) => list,
                        Err(e) => return Some(Err(unavailable(e))),
                    };
                    let entries = entry_list(list);
                    let after = (self.last.major(), self.last.minor());
                    if inclusive && entries.first().and_then(|(id, _)| entry_id(id)) != Some(after)
                    {
                        // The last entry read is gone: later ones may be too.
                        match trimmed_after(&self.client, &self.stream, after).await {
                            Ok(false) => {}
                            Ok(true) => {
                                self.phase = Phase::CatchUp { inclusive: false };
                                return Some(Err(EventError::Trimmed { after: self.last }));
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    if entries.is_empty() {
                        self.phase = Phase::Live;
                        continue;
                    }
                    self.phase = Phase::CatchUp { inclusive: false };
                    let mut advanced = false;
                    for (id, events) in entries {
                        let Some((ms, seq)) = entry_id(&id) else {
                            continue;
                        };
                        advanced = true;
                        for (index, event) in events.into_iter().enumerate() {
                            let id = EventId::new(ms, seq, index as u32);
                            if id > self.last {
                                self.pending.push_back(SequencedEvent { id, event });
                            }
                        }
                        // An entry whose events were all delivered still moves the position.
                        if self.pending.is_empty() {
                            self.last = self.last.max(EventId::new(ms, seq, u32::MAX));
                        }
                    }
                    if !advanced {
                        self.phase = Phase::Live;
                    }
                }
                Phase::Live => match self.rx.recv().await {
                    Ok(Ok(e)) if e.id > self.last => {
                        self.last = e.id;
                        return Some(Ok(e));
                    }
                    Ok(Ok(_)) => {}
                    // The process's reader found a gap: this subscriber missed it too.
                    Ok(Err(gap)) => return Some(Err(gap)),
                    // The stream still holds what the local channel dropped: read it again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.rx = self.rx.resubscribe();
                        self.phase = Phase::CatchUp { inclusive: true };
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[async_trait]
impl ResumableBus for RedisBus {
    async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<SequencedStream, EventError> {
        // The live channel first, so nothing the reader delivers from now on is missed.
        let rx = self.local.sender().subscribe();
        self.ensure_reader().await?;
        let Some(after) = after else {
            let live = crate::delivery_stream(rx);
            return Ok(filtered(live, filter));
        };
        // The oldest entry still held: anything before it may have been trimmed.
        let oldest = oldest_entry(&self.client, &self.stream).await?;
        let after_entry = (after.major(), after.minor());
        if let Some(oldest) = oldest
            && oldest > after_entry
        {
            return Err(EventError::CannotResume {
                after,
                reason: format!(
                    "the event stream was trimmed past it (oldest entry {}-{})",
                    oldest.0, oldest.1
                ),
            });
        }
        let state = Resumed {
            client: self.client.clone(),
            stream: self.stream.clone(),
            rx,
            last: after,
            phase: Phase::CatchUp { inclusive: true },
            pending: Default::default(),
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(filtered(stream.boxed(), filter))
    }
}
