//! A `RedisBus` subscriber is told when it lost events: one that fell behind while the stream
//! was trimmed past what it read gets `EventError::Trimmed`, then the events still held.

use std::time::Duration;

use fred::prelude::*;
use futures::StreamExt;
use spane_core::{EngineEvent, ExecutionId, WorkflowEvent, WorkflowEventStatus};
use spane_events::{EventBus, EventError, EventFilter, EventId, RedisBus, ResumableBus};

fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn event(timestamp: i64) -> EngineEvent {
    EngineEvent::Workflow(
        WorkflowEvent::new(ExecutionId::new(), "wf", WorkflowEventStatus::Started).at(timestamp),
    )
}

/// Appends one entry holding one event, as the queue's scripts do; returns its id.
async fn append(client: &Client, stream: &str, timestamp: i64) -> EventId {
    let json = serde_json::to_string(&vec![event(timestamp)]).unwrap();
    let id: String = client
        .xadd(stream, false, None, "*", vec![("e", json)])
        .await
        .unwrap();
    id.parse().unwrap()
}

fn timestamp(e: &EngineEvent) -> i64 {
    match e {
        EngineEvent::Workflow(w) => w.timestamp,
        other => panic!("workflow event expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_told_what_the_stream_trimmed() {
    let stream = format!(
        "spane-test-{}:{{0}}:events",
        ExecutionId::new().to_string().to_lowercase()
    );
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    client
        .init()
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()));
    let first = append(&client, &stream, 1).await;
    append(&client, &stream, 2).await;
    let third = append(&client, &stream, 3).await;

    let bus = RedisBus::connect(&redis_url(), stream.clone())
        .await
        .unwrap()
        .buffer(4);
    let mut slow = bus
        .subscribe_after(EventFilter::All, Some(first))
        .await
        .unwrap();
    let mut watcher = bus.subscribe(EventFilter::All).await.unwrap();
    let within = Duration::from_secs(10);
    for expected in [2, 3] {
        let e = tokio::time::timeout(within, slow.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        assert_eq!(timestamp(&e.event), expected);
    }
    // Caught up: the slow subscriber now follows the process's reader (this poll finds
    // nothing new).
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow.next())
            .await
            .is_err()
    );

    // Far more events than its buffer while it does not read...
    let mut last = first;
    for t in 4..=20 {
        last = append(&client, &stream, t).await;
    }
    // ...delivered to this process (the watcher reads as they come; it may lag too).
    tokio::time::timeout(within, async {
        loop {
            match watcher.next().await {
                Some(Ok(e)) if timestamp(&e) == 20 => break,
                Some(_) => {}
                None => panic!("the watcher's stream ended"),
            }
        }
    })
    .await
    .expect("the reader delivers every append");
    // ...and the stream trimmed to its last entries, past what the slow one read.
    let keep = format!("{}-{}", last.major(), last.minor());
    let _: i64 = client
        .xtrim(&stream, ("MINID", "=", keep.as_str()))
        .await
        .unwrap();

    let gap = tokio::time::timeout(within, slow.next())
        .await
        .expect("an item")
        .expect("stream open");
    match gap {
        Err(EventError::Trimmed { after }) => {
            assert_eq!(after, third, "the gap follows the last event it read")
        }
        other => panic!("expected Trimmed, got {other:?}"),
    }
    let next = tokio::time::timeout(within, slow.next())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    assert_eq!(
        timestamp(&next.event),
        20,
        "then what the stream still holds"
    );
    let _: i64 = client.del(&stream).await.unwrap();
}
