//! Server-sent events: the snapshot first, then every event in order with its id, heartbeats,
//! resumption after a dropped connection and after a server restart (Redis), and a slow
//! client dropped with a reason it can see.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use serde_json::json;
use spane::events::{EventId, LocalBus};
use spane::prelude::*;
use spane_http::HttpConfig;

/// Reads events until the execution's `workflow:status` `completed`; returns (id, data) pairs.
async fn until_completed(reader: &mut SseReader) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    loop {
        let m = reader.next_message().await.expect("stream open");
        assert_ne!(m.event.as_deref(), Some("dropped"), "{m:?}");
        let data = m.json();
        let done = m.event.as_deref() == Some("workflow:status") && data["status"] == "completed";
        out.push((m.id.expect("events carry ids"), data));
        if done {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_comes_first_then_every_event_in_order() {
    let gate = Gate::new();
    let engine = embedded(
        registry(&gate, &Arc::new(AtomicBool::new(false))),
        Arc::new(LocalBus::with_journal(1024, 1024)),
    );
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let c = reqwest::Client::new();
    register(&c, &server.url, &chain("slow", ["wait", "pass", "pass"])).await;
    let id = execute(&c, &server.url, "slow", json!({ "n": 1 })).await;
    let mut reader =
        SseReader::open(&c, &format!("{}/executions/{id}/events", server.url), None).await;
    let snapshot = reader.next_message().await.unwrap();
    assert_eq!(snapshot.event.as_deref(), Some("snapshot"));
    assert_eq!(
        snapshot.id, None,
        "a snapshot is not a position in the event order"
    );
    assert_eq!(snapshot.json()["executionId"], id.to_string());
    assert_eq!(snapshot.json()["status"], "running");
    gate.open(1);
    let events = until_completed(&mut reader).await;
    let completed: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["type"] == "node:progress" && d["status"] == "completed")
        .map(|(_, d)| d["nodeId"].as_str().unwrap())
        .collect();
    assert_eq!(completed, ["a", "b", "c"], "in causal order");
    let ids: Vec<EventId> = events.iter().map(|(i, _)| i.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    // The same through /events?executionId=, which also starts with the snapshot.
    let mut other =
        SseReader::open(&c, &format!("{}/events?executionId={id}", server.url), None).await;
    let snapshot = other.next_message().await.unwrap();
    assert_eq!(snapshot.event.as_deref(), Some("snapshot"));
    assert_eq!(snapshot.json()["status"], "completed");
    let missing = ExecutionId::new();
    let r = c
        .get(format!("{}/executions/{missing}/events", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_stream_open() {
    let engine = embedded(
        registry(&Gate::new(), &Arc::new(AtomicBool::new(false))),
        Arc::new(LocalBus::with_journal(64, 64)),
    );
    let server = serve(
        engine,
        HttpConfig::new().heartbeat(Duration::from_millis(50)),
    )
    .await;
    let c = reqwest::Client::new();
    let mut reader = SseReader::open(&c, &format!("{}/events", server.url), None).await;
    let m = reader.next().await.unwrap();
    assert_eq!(m.comment.as_deref(), Some("heartbeat"), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_last_event_id_missing_and_repeating_nothing() {
    let gate = Gate::new();
    let engine = embedded(
        registry(&gate, &Arc::new(AtomicBool::new(false))),
        Arc::new(LocalBus::with_journal(1024, 4096)),
    );
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let c = reqwest::Client::new();
    register(&c, &server.url, &chain("gated", ["wait", "wait", "wait"])).await;
    let id = execute(&c, &server.url, "gated", json!({})).await;
    let url = format!("{}/executions/{id}/events", server.url);
    // A reference client that never disconnects.
    let mut reference = SseReader::open(&c, &url, None).await;
    assert_eq!(
        reference.next_message().await.unwrap().event.as_deref(),
        Some("snapshot")
    );
    let mut client = SseReader::open(&c, &url, None).await;
    assert_eq!(
        client.next_message().await.unwrap().event.as_deref(),
        Some("snapshot")
    );
    gate.open(1);
    // Read up to node a's completion, then drop the connection.
    let mut got = Vec::new();
    loop {
        let m = client.next_message().await.unwrap();
        let data = m.json();
        got.push(m.id.clone().unwrap());
        if data["nodeId"] == "a" && data["status"] == "completed" {
            break;
        }
    }
    drop(client);
    // Events happen while the client is away.
    gate.open(2);
    engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let mut resumed = SseReader::open(&c, &url, got.last().map(String::as_str)).await;
    let rest = until_completed(&mut resumed).await;
    got.extend(rest.into_iter().map(|(i, _)| i));
    let all: Vec<String> = until_completed(&mut reference)
        .await
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    // The reference subscribed first, so it may also hold events from before the client
    // subscribed (the client's snapshot reflects those). From there on the two must agree
    // exactly: nothing missing across the reconnection, nothing repeated.
    let first = all.iter().position(|i| *i == got[0]).unwrap_or_else(|| {
        panic!(
            "the reference saw the client's first event {}: {all:?}",
            got[0]
        )
    });
    assert_eq!(
        got,
        all[first..],
        "the resumed client saw exactly the reference's events from its first one on"
    );
    // An id the bus cannot resume from (another server instance) gets a fresh snapshot.
    let mut fresh = SseReader::open(&c, &url, Some("1-1.0")).await;
    let m = fresh.next_message().await.unwrap();
    assert_eq!(m.event.as_deref(), Some("snapshot"));
    assert_eq!(m.json()["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_with_a_reason_and_resumes() {
    // A channel of 4 events per subscriber: a burst of 20 overflows it.
    let bus = Arc::new(LocalBus::with_journal(4, 4096));
    let engine = embedded(
        registry(&Gate::new(), &Arc::new(AtomicBool::new(false))),
        bus.clone(),
    );
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let c = reqwest::Client::new();
    register(&c, &server.url, &chain("quick", ["pass", "pass", "pass"])).await;
    let id = execute(&c, &server.url, "quick", json!({})).await;
    engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let url = format!("{}/executions/{id}/events", server.url);
    let mut client = SseReader::open(&c, &url, None).await;
    assert_eq!(
        client.next_message().await.unwrap().event.as_deref(),
        Some("snapshot")
    );
    let event = |n: i64| {
        EngineEvent::Workflow(WorkflowEvent::new(id, "quick", WorkflowEventStatus::Resumed).at(n))
    };
    use spane::core::EventSink;
    bus.emit(vec![event(0)]);
    let first = client.next_message().await.unwrap();
    assert_eq!(first.json()["timestamp"], 0);
    let first_id = first.id.unwrap();
    // 20 events at once, faster than the client's channel holds.
    bus.emit((1..=20).map(event).collect());
    let mut delivered = Vec::new();
    let dropped = loop {
        let m = client
            .next_message()
            .await
            .expect("a dropped message before the end");
        if m.event.as_deref() == Some("dropped") {
            break m;
        }
        delivered.push(m.json()["timestamp"].as_i64().unwrap());
    };
    let reason = dropped.json();
    assert!(
        reason["reason"].as_str().unwrap().contains("slow consumer"),
        "{reason}"
    );
    assert!(
        client.next().await.is_none(),
        "the server ends the stream after dropped"
    );
    // Resume after the last event delivered: the rest arrive, none twice.
    let last = reason["lastEventId"]
        .as_str()
        .unwrap_or(&first_id)
        .to_owned();
    let mut resumed = SseReader::open(&c, &url, Some(&last)).await;
    let mut seen = delivered;
    seen.insert(0, 0);
    while seen.last() != Some(&20) {
        let m = resumed.next_message().await.unwrap();
        assert_ne!(
            m.event.as_deref(),
            Some("snapshot"),
            "resumed, not restarted"
        );
        seen.push(m.json()["timestamp"].as_i64().unwrap());
    }
    assert_eq!(seen, (0..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_client_resumes_across_a_server_restart() {
    let prefix = unique_prefix();
    let gate = Gate::new();
    let failing = Arc::new(AtomicBool::new(false));
    let on_redis = |registry: NodeRegistry| {
        let prefix = prefix.clone();
        async move {
            WorkflowEngine::builder()
                .registry(registry)
                .config(spane::EngineConfig::default().claim_wait(Duration::from_millis(100)))
                .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix))
                .await
                .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
                .build()
        }
    };
    // The workers run in their own engine; each "server" is an engine of its own, on the same
    // Redis, serving HTTP only.
    let workers = on_redis(registry(&gate, &failing)).await;
    workers.start_workers(4).unwrap();
    let first = serve(on_redis(registry(&gate, &failing)).await, HttpConfig::new()).await;
    let c = reqwest::Client::new();
    register(&c, &first.url, &chain("gated", ["wait", "wait", "wait"])).await;
    let id = execute(&c, &first.url, "gated", json!({})).await;
    let mut reference = workers.subscribe(EventFilter::Execution(id)).await.unwrap();
    let mut client =
        SseReader::open(&c, &format!("{}/executions/{id}/events", first.url), None).await;
    assert_eq!(
        client.next_message().await.unwrap().event.as_deref(),
        Some("snapshot")
    );
    gate.open(1);
    let mut got = Vec::new();
    loop {
        let m = client.next_message().await.unwrap();
        let data = m.json();
        got.push((m.id.clone().unwrap(), data.clone()));
        if data["nodeId"] == "a" && data["status"] == "completed" {
            break;
        }
    }
    // The server goes away; the execution goes on.
    drop(client);
    first.stop();
    gate.open(2);
    workers.wait_for_execution(id, DEADLINE).await.unwrap();
    let second = serve(on_redis(registry(&gate, &failing)).await, HttpConfig::new()).await;
    let mut resumed = SseReader::open(
        &c,
        &format!("{}/executions/{id}/events", second.url),
        Some(&got.last().unwrap().0),
    )
    .await;
    got.extend(until_completed(&mut resumed).await);
    // Compare with what the workers' own subscription saw, to the execution's end. It may
    // have seen events from before the client's snapshot (node a's claim can come before the
    // client connects): the client's events are the reference's from its first one on.
    use futures::StreamExt;
    let mut all = Vec::new();
    loop {
        let e = tokio::time::timeout(DEADLINE, reference.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let value = serde_json::to_value(&e).unwrap();
        let end = value["type"] == "workflow:status" && value["status"] == "completed";
        all.push(value);
        if end {
            break;
        }
    }
    let seen: Vec<serde_json::Value> = got.iter().map(|(_, d)| d.clone()).collect();
    let from = all
        .iter()
        .position(|e| Some(e) == seen.first())
        .expect("the client's first event is one the workers saw");
    let expected = all[from..].to_vec();
    assert_eq!(
        seen, expected,
        "every event once, in order, across the restart"
    );
    let ids: Vec<EventId> = got.iter().map(|(i, _)| i.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    workers.shutdown().await;
}
