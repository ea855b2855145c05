//! Resuming a `RedisBus` subscription after a stream entry id, from a new connection (as a
//! server that restarted would): nothing missed, nothing repeated; a trimmed stream is refused.

use std::time::Duration;

use fred::prelude::*;
use futures::StreamExt;
use spane_core::{EngineEvent, EventSink, ExecutionId, WorkflowEvent, WorkflowEventStatus};
use spane_events::{EventError, EventFilter, EventId, RedisBus, ResumableBus, SequencedStream};

fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A stream key no other test uses.
fn unique_stream() -> String {
    format!(
        "spane-test-{}:{{0}}:events",
        ExecutionId::new().to_string().to_lowercase()
    )
}

async fn bus(stream: &str) -> RedisBus {
    RedisBus::connect(&redis_url(), stream)
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
}

fn event(execution: ExecutionId, timestamp: i64) -> EngineEvent {
    EngineEvent::Workflow(
        WorkflowEvent::new(execution, "wf", WorkflowEventStatus::Started).at(timestamp),
    )
}

async fn take(stream: &mut SequencedStream, n: usize) -> Vec<(EventId, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("no error");
        let EngineEvent::Workflow(w) = &next.event else {
            panic!("workflow event expected")
        };
        out.push((next.id, w.timestamp));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_resumes_after_a_stream_id() {
    let stream = unique_stream();
    let a = ExecutionId::new();
    let first_bus = bus(&stream).await;
    let mut first = first_bus
        .subscribe_after(EventFilter::Execution(a), None)
        .await
        .unwrap();
    // One entry holding three events (one of another execution), then one more.
    first_bus.emit(vec![
        event(a, 1),
        event(ExecutionId::new(), 50),
        event(a, 2),
    ]);
    let seen = take(&mut first, 2).await;
    assert_eq!(seen[0].0.index(), 0);
    assert_eq!(
        seen[1].0.index(),
        2,
        "the event's place within its stream entry"
    );
    // The "server" goes away after delivering the first event.
    drop(first);
    drop(first_bus);
    let writer = bus(&stream).await;
    writer.emit(vec![event(a, 3)]);
    // Wait until the entry is in the stream (emit is asynchronous).
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let len: u64 = client.xlen(&stream).await.unwrap();
        if len == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "entry not appended");
        tokio::task::yield_now().await;
    }
    let restarted = bus(&stream).await;
    let mut resumed = restarted
        .subscribe_after(EventFilter::Execution(a), Some(seen[0].0))
        .await
        .unwrap();
    let caught_up = take(&mut resumed, 2).await;
    assert_eq!(caught_up.iter().map(|e| e.1).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(caught_up[0].0, seen[1].0, "ids survive the restart");
    // Then live events, after the caught-up ones.
    writer.emit(vec![event(a, 4)]);
    let live = take(&mut resumed, 1).await;
    assert_eq!(live[0].1, 4);
    assert!(live[0].0 > caught_up[1].0);
    let _: () = client.del(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_past_a_trimmed_stream_is_refused() {
    let stream = unique_stream();
    let a = ExecutionId::new();
    let bus = bus(&stream).await;
    let mut live = bus.subscribe_after(EventFilter::All, None).await.unwrap();
    bus.emit(vec![event(a, 1)]);
    let first = take(&mut live, 1).await[0].0;
    bus.emit(vec![event(a, 2)]);
    let _ = take(&mut live, 1).await;
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _: u64 = client.xtrim(&stream, ("MAXLEN", 1)).await.unwrap();
    match bus.subscribe_after(EventFilter::All, Some(first)).await {
        Err(EventError::CannotResume { after, reason }) => {
            assert_eq!(after, first);
            assert!(reason.contains("trimmed"), "{reason}");
        }
        other => panic!("expected CannotResume, got {:?}", other.map(|_| ())),
    }
    let _: () = client.del(&stream).await.unwrap();
}
