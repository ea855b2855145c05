//! Server-sent events: an execution's snapshot, then its events in order, resumable with
//! `Last-Event-ID`.
//!
//! Every event message carries the bus's [`EventId`] as its SSE `id`, so a client that
//! reconnects (browsers do it by themselves, sending `Last-Event-ID`) receives every later
//! event exactly once. The messages:
//!
//! | `event:` | `data:` | `id:` |
//! |---|---|---|
//! | `snapshot` | the execution record, as `GET /executions/{id}` (first message; again after a reconnect that cannot resume) | none |
//! | `node:progress`, `workflow:status` | the engine event | its event id |
//! | `dropped` | `{"reason", "lastEventId"}`: the server ended the stream (the client fell too far behind); reconnect with `Last-Event-ID` | none |
//!
//! Comments (`: heartbeat`) keep idle connections open. Memory per connection is bounded: the
//! bus's channel holds a fixed number of events per subscriber, and a subscriber that falls
//! further behind is dropped with a `dropped` message (on Redis it reads the missed events
//! from the stream again instead).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use spane::events::{EventError, EventFilter, EventId, SequencedEvent, SequencedStream};
use spane::{EngineEvent, ExecutionId, ExecutionRecord};
use utoipa::IntoParams;

use crate::api::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{PathParams, QueryParams, execution_id};

/// The filter of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Only this execution's events (and its snapshot first); every event when absent.
    execution_id: Option<String>,
    /// Resume after this event id (as the `Last-Event-ID` header, which wins when both are
    /// given).
    last_event_id: Option<String>,
}

/// One execution's events: its snapshot, then every event, resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/executions/{id}/events", tag = "events",
    params(("id" = String, Path, description = "Execution id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "snapshot, then node:progress and workflow:status events"),
        (status = 404, body = Problem)))]
pub(crate) async fn execution_events(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = execution_id(&id)?;
    let after = last_event_id(&headers, None);
    open(state, Some(id), after).await
}

/// Events of every execution, or of one (`executionId`), resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", body = String),
        (status = 404, body = Problem)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = q.execution_id.as_deref().map(execution_id).transpose()?;
    let after = last_event_id(&headers, q.last_event_id.as_deref());
    open(state, id, after).await
}

/// The id to resume after: the header, else the query parameter. One that does not parse is
/// treated as absent (the client then gets a fresh snapshot).
fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Option<EventId> {
    let text = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query)?;
    match text.trim().parse() {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring a Last-Event-ID that does not parse");
            None
        }
    }
}

async fn open(
    state: AppState,
    execution: Option<ExecutionId>,
    after: Option<EventId>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let bus = state.engine.event_bus();
    let resumable = bus.resumable().ok_or_else(|| {
        ApiError::unsupported("the event bus in use cannot give event ids (no ResumableBus)")
    })?;
    let filter = execution.map_or(EventFilter::All, EventFilter::Execution);
    // Resume when the bus still holds everything after `after`; otherwise start afresh with
    // a snapshot.
    let (events, resumed) = match after {
        Some(after) => match resumable.subscribe_after(filter, Some(after)).await {
            Ok(events) => (events, true),
            Err(EventError::CannotResume { reason, .. }) => {
                tracing::debug!(%after, reason, "cannot resume, sending a snapshot");
                (resumable.subscribe_after(filter, None).await?, false)
            }
            Err(e) => return Err(e.into()),
        },
        None => (resumable.subscribe_after(filter, None).await?, false),
    };
    // Subscribed before reading the snapshot, so no event between the two is lost (one may be
    // reflected in the snapshot and delivered too: applying it again changes nothing).
    let snapshot = match execution {
        Some(id) if !resumed => Some(state.engine.get_execution(id).await?.ok_or_else(|| {
            ApiError::not_found("execution_not_found", format!("execution {id} not found"))
        })?),
        Some(id) => {
            // Resuming: the execution must still exist, but the client has its state.
            if state.engine.get_execution(id).await?.is_none() {
                return Err(ApiError::not_found(
                    "execution_not_found",
                    format!("execution {id} not found"),
                ));
            }
            None
        }
        None => None,
    };
    let stream = messages(snapshot, events, after);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(state.config.heartbeat.max(Duration::from_millis(10)))
            .text("heartbeat"),
    ))
}

fn snapshot_event(record: &ExecutionRecord) -> Event {
    Event::default()
        .event("snapshot")
        .json_data(record)
        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()))
}

fn engine_event(e: &SequencedEvent) -> Event {
    let kind = match &e.event {
        EngineEvent::Node(_) => "node:progress",
        EngineEvent::Workflow(_) => "workflow:status",
        _ => "event",
    };
    Event::default()
        .id(e.id.to_string())
        .event(kind)
        .json_data(&e.event)
        .unwrap_or_else(|err| Event::default().event("error").data(err.to_string()))
}

fn dropped_event(reason: String, last: Option<EventId>) -> Event {
    Event::default()
        .event("dropped")
        .data(json!({ "reason": reason, "lastEventId": last.map(|id| id.to_string()) }).to_string())
}

/// The SSE messages: the snapshot (if any), then the events; the stream ends after a
/// `dropped` message when the subscriber lagged or the bus failed.
fn messages(
    snapshot: Option<ExecutionRecord>,
    events: SequencedStream,
    after: Option<EventId>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Tail {
        events: SequencedStream,
        last: Option<EventId>,
        done: bool,
    }
    let first = futures::stream::iter(snapshot.as_ref().map(snapshot_event).map(Ok));
    let tail = futures::stream::unfold(
        Tail {
            events,
            last: after,
            done: false,
        },
        |mut t| async move {
            if t.done {
                return None;
            }
            match t.events.next().await? {
                Ok(e) => {
                    t.last = Some(e.id);
                    Some((Ok(engine_event(&e)), t))
                }
                Err(EventError::Lagged { missed }) => {
                    t.done = true;
                    let reason = format!(
                        "slow consumer: {missed} events were not delivered in time; reconnect with Last-Event-ID to resume"
                    );
                    Some((Ok(dropped_event(reason, t.last)), t))
                }
                Err(e) => {
                    t.done = true;
                    let reason = format!("event bus error: {e}; reconnect to resume");
                    Some((Ok(dropped_event(reason, t.last)), t))
                }
            }
        },
    );
    first.chain(tail)
}
