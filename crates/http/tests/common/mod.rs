//! Shared helpers of the HTTP tests: a server on a free port over an engine, a gate executor,
//! and a small SSE reader.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use spane::events::LocalBus;
use spane::prelude::*;
use spane_http::HttpConfig;
use tokio::sync::Semaphore;

/// How long any wait of a test may take before it fails (a deadline, never a sleep).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The Redis the tests use: `REDIS_URL` / `SPANE_REDIS_URL`, or the standard local port.
pub fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!(
        "spane-test-{}",
        ExecutionId::new().to_string().to_lowercase()
    )
}

/// A running server: its base URL and the task serving it.
pub struct Server {
    pub url: String,
    pub task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops serving (connections it holds are closed).
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Serves `spane_http::router(engine, config)` on a free local port.
pub async fn serve(engine: WorkflowEngine, config: HttpConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = spane_http::router(engine, config);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { url, task }
}

/// A gate that blocking nodes wait on: `open(n)` lets `n` of them through.
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    pub fn new() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }
    pub fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}

/// Executors: `pass` (returns its input), `wait` (waits for the gate, then passes), `flaky`
/// (fails fatally while `failing` is set) and `http` (external, keyed by `config.url`; fails
/// while `failing` is set).
pub fn registry(gate: &Gate, failing: &Arc<AtomicBool>) -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data.clone())) }),
    );
    let g = gate.clone();
    registry.register(
        "wait",
        executor_fn(move |ctx| {
            let g = g.clone();
            async move {
                g.0.acquire().await.expect("gate open").forget();
                Ok(NodeOutput::new(ctx.input_data.clone()))
            }
        }),
    );
    let f = failing.clone();
    registry.register(
        "flaky",
        executor_fn(move |_ctx| {
            let f = f.clone();
            async move {
                if f.load(Ordering::SeqCst) {
                    Err(NodeError::fatal("flaky is failing"))
                } else {
                    Ok(NodeOutput::new(json!({ "ok": true })))
                }
            }
        }),
    );
    let f = failing.clone();
    registry.register(
        "http",
        executor_fn(move |_ctx| {
            let f = f.clone();
            async move {
                if f.load(Ordering::SeqCst) {
                    Err(NodeError::fatal("remote down"))
                } else {
                    Ok(NodeOutput::new(json!({ "status": 200 })))
                }
            }
        }),
    );
    registry.register_external("http", |config| {
        config["url"].as_str().map(ToOwned::to_owned)
    });
    registry
}

/// An embedded engine whose bus journals events (so that SSE clients can resume), workers
/// started.
pub fn embedded(registry: NodeRegistry, bus: Arc<LocalBus>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .registry(registry)
        .event_bus(bus)
        .config(
            spane::EngineConfig::default()
                .claim_wait(Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(5)),
        )
        .build();
    engine.start_workers(4).unwrap();
    engine
}

/// A chain `a -> b -> c` of the given node types.
pub fn chain(id: &str, types: [&str; 3]) -> Value {
    json!({
        "id": id, "name": format!("Chain {id}"),
        "nodes": [
            { "id": "a", "type": types[0], "inputs": [], "outputs": ["b"] },
            { "id": "b", "type": types[1], "inputs": ["a"], "outputs": ["c"] },
            { "id": "c", "type": types[2], "inputs": ["b"], "outputs": [] },
        ]
    })
}

/// Registers a definition over HTTP, asserting 201.
pub async fn register(client: &reqwest::Client, url: &str, definition: &Value) -> u32 {
    let r = client
        .post(format!("{url}/workflows"))
        .json(definition)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap() as u32
}

/// Starts an execution over HTTP, asserting 202.
pub async fn execute(
    client: &reqwest::Client,
    url: &str,
    workflow: &str,
    data: Value,
) -> ExecutionId {
    let r = client
        .post(format!("{url}/workflows/{workflow}/executions"))
        .json(&json!({ "data": data }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    body["executionId"].as_str().unwrap().parse().unwrap()
}

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
    /// A comment line (`: heartbeat`) instead of a message.
    pub comment: Option<String>,
}

impl Message {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads SSE messages off a response body.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    /// Opens `url` as an event stream, optionally resuming after `last_event_id`.
    pub async fn open(client: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next message or comment, within the deadline.
    pub async fn next(&mut self) -> Option<Message> {
        tokio::time::timeout(DEADLINE, self.next_inner())
            .await
            .expect("an SSE message within the deadline")
    }

    async fn next_inner(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut m = Message {
                    event: None,
                    id: None,
                    data: String::new(),
                    comment: None,
                };
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        m.comment = Some(c.trim().to_owned());
                    } else if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        match field {
                            "event" => m.event = Some(value.to_owned()),
                            "id" => m.id = Some(value.to_owned()),
                            "data" => {
                                if !m.data.is_empty() {
                                    m.data.push('\n');
                                }
                                m.data.push_str(value);
                            }
                            _ => {}
                        }
                    }
                }
                return Some(m);
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next message that is not a comment.
    pub async fn next_message(&mut self) -> Option<Message> {
        loop {
            let m = self.next().await?;
            if m.comment.is_none() {
                return Some(m);
            }
        }
    }
}
