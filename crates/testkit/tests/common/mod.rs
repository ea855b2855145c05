//! Shared by the process tests: worker processes (the `spane-test-worker` binary) with a guard
//! that kills them on every exit path, a key-space guard that deletes a test's keys, readers of
//! the event stream and of the worker counters, and deadline-bounded waits.
//!
//! Nothing here sleeps as synchronisation: every wait polls a condition until a deadline.

#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config, HashesInterface, KeysInterface, ReconnectPolicy,
    StreamsInterface,
};
use fred::types::Value as RedisValue;
use serde_json::json;
use spane::prelude::*;
use spane::queue::RedisConfig;
use spane::{EngineConfig, Error};
use tokio::time::Instant;

/// The worker binary of this crate.
pub const WORKER_BIN: &str = env!("CARGO_BIN_EXE_spane-test-worker");

/// The pause between two polls of a condition.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// How long a worker process may take to print `ready` (a loaded machine starts slowly).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The machine's Redis: `SPANE_REDIS_URL` / `REDIS_URL`, or the standard local port.
pub fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "spane-proc-{tag}-{}",
        ExecutionId::new().to_string().to_lowercase()
    )
}

/// The event stream of a prefix (shard `{0}`).
pub fn events_key(prefix: &str) -> String {
    format!("{prefix}:{{0}}:events")
}

/// The hash of one execution.
pub fn execution_key(prefix: &str, id: ExecutionId) -> String {
    format!("{prefix}:{{0}}:x:{id}")
}

/// Settings of one worker process.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Nodes run at once.
    pub concurrency: usize,
    /// Lease of a claim.
    pub lease_ms: u64,
    /// Simulated work per node.
    pub work_ms: u64,
    /// Cap of the event stream, when not the default.
    pub events_cap: Option<u64>,
}

/// A running `spane-test-worker` process: killed (SIGKILL) and reaped when dropped, whatever
/// the test did. Its stderr is echoed with a `[NAME]` tag and kept for assertions.
#[derive(Debug)]
pub struct Worker {
    /// Its name (the `by` of its outputs).
    pub name: String,
    child: Option<Child>,
    pid: u32,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    /// Starts a worker process on `url` and `prefix` and waits until it prints `ready`.
    pub fn start(url: &str, prefix: &str, name: &str, options: &WorkerOptions) -> Self {
        Self::start_with(url, prefix, name, options, &[])
    }

    /// [`Worker::start`] with more arguments for the worker binary.
    pub fn start_with(
        url: &str,
        prefix: &str,
        name: &str,
        options: &WorkerOptions,
        extra: &[&str],
    ) -> Self {
        let mut command = Command::new(WORKER_BIN);
        command.args(extra);
        command
            .args(["--redis", url, "--prefix", prefix, "--name", name])
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--lease-ms", &options.lease_ms.to_string()])
            .args(["--work-ms", &options.work_ms.to_string()])
            // The worker stops when this pipe closes: if this process dies, so do its workers.
            .arg("--watch-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cap) = options.events_cap {
            command.args(["--events-cap", &cap.to_string()]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {WORKER_BIN}: {e}"));
        let pid = child.id();
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("piped stderr");
        let (kept, tag) = (stderr.clone(), name.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                kept.lock().unwrap().push(line);
            }
        });
        let mut worker = Self {
            name: name.to_owned(),
            child: Some(child),
            pid,
            stdout,
            stderr,
        };
        match worker.stdout.recv_timeout(READY_WITHIN) {
            Ok(line) if line == "ready" => worker,
            other => {
                let status = worker.child.as_mut().and_then(|c| c.try_wait().ok());
                panic!(
                    "worker {name} did not print `ready` within {READY_WITHIN:?} (got {other:?}, exit {status:?}); stderr:\n{}",
                    worker.stderr_lines().join("\n")
                )
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, ...) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.pid));
        assert!(
            status.success(),
            "kill -{signal} {} failed: {status}",
            self.pid
        );
    }

    /// Kills it with SIGKILL (no shutdown: its leases are left to expire) and reaps it.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (polling, at most `within`) until it exits; returns its exit
    /// status and what it printed after `ready`.
    pub fn terminate(&mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + within;
        let mut child = self.child.take().expect("the worker runs");
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "worker {} did not exit within {within:?} of SIGTERM; stderr:\n{}",
                    self.name,
                    self.stderr_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let printed = self.stdout.try_iter().collect();
        (status, printed)
    }

    /// Waits (polling, at most `within`) until it exits on its own; returns its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + within;
        let child = self.child.as_mut().expect("the worker runs");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "worker {} did not exit within {within:?}; stderr:\n{}",
                self.name,
                self.stderr_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it wrote on stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// How many lines of its stderr contain `needle`.
    pub fn stderr_count(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a stopped process.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Deletes every key of a prefix on drop (on every exit path), so that runs leave nothing in
/// the shared Redis.
#[derive(Debug)]
pub struct Keyspace {
    url: String,
    prefix: String,
}

impl Keyspace {
    /// Guards the keys of `prefix` on `url`.
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}:*", self.prefix));
        // A thread of its own: drop may run inside the test's runtime, which must not block on
        // a future.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let client = connect(&url).await.ok()?;
                let mut cursor = "0".to_owned();
                loop {
                    let (next, keys): (String, Vec<String>) = client
                        .scan_page(cursor, pattern.as_str(), Some(1000), None)
                        .await
                        .ok()?;
                    if !keys.is_empty() {
                        let _: i64 = client.unlink(keys).await.ok()?;
                    }
                    if next == "0" {
                        return Some(());
                    }
                    cursor = next;
                }
            })
        });
        let _ = done.join();
    }
}

/// A fred client with reconnection, as the engine's.
pub async fn connect(url: &str) -> Result<Client, fred::error::Error> {
    let client = Builder::from_config(Config::from_url(url)?)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
        .build()?;
    client.init().await?;
    Ok(client)
}

/// Polls `probe` every [`POLL_EVERY`] until it returns `Some`, failing the test with `what`
/// after `within`.
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A hash of counters (`HGETALL`), empty when missing or unreadable.
pub async fn counters(client: &Client, key: &str) -> HashMap<String, i64> {
    client
        .hgetall::<HashMap<String, i64>, _>(key)
        .await
        .unwrap_or_default()
}

/// `P:test:invocations`: executor calls by `<execution>:<node>`.
pub async fn invocations(client: &Client, prefix: &str) -> HashMap<String, i64> {
    counters(client, &format!("{prefix}:test:invocations")).await
}

/// `P:test:finished`: executor calls that returned, by `<execution>:<node>`.
pub async fn finished(client: &Client, prefix: &str) -> HashMap<String, i64> {
    counters(client, &format!("{prefix}:test:finished")).await
}

/// `P:test:workers`: executor calls (`NAME`) and returns (`NAME:finished`) per worker.
pub async fn per_worker(client: &Client, prefix: &str) -> HashMap<String, i64> {
    counters(client, &format!("{prefix}:test:workers")).await
}

/// One event of the stream, with the fields the tests count (the rest, `data` included, is
/// skipped unread).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `node:progress` or `workflow:status`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `running`, `completed`, `started`, ...
    pub status: String,
    /// The execution.
    pub execution_id: String,
    /// The node (node events only).
    #[serde(default)]
    pub node_id: Option<String>,
}

/// Every event of a stream, oldest first, read with XRANGE in chunks.
pub async fn read_events(client: &Client, stream: &str) -> Vec<Event> {
    let mut out = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let chunk: Vec<(String, HashMap<String, String>)> = client
            .xrange_values(stream, start.as_str(), "+", Some(2000))
            .await
            .unwrap_or_else(|e| panic!("XRANGE {stream}: {e}"));
        let Some((last, _)) = chunk.last() else {
            return out;
        };
        start = format!("({last}");
        for (id, fields) in chunk {
            let text = fields
                .get("e")
                .unwrap_or_else(|| panic!("stream entry {id} has no `e` field"));
            match serde_json::from_str::<Vec<Event>>(text) {
                Ok(events) => out.extend(events),
                Err(e) => panic!("stream entry {id} is not a JSON array of events ({e}): {text}"),
            }
        }
    }
}

/// `XINFO STREAM` as a map of its top-level fields.
pub async fn stream_info(client: &Client, stream: &str) -> HashMap<String, RedisValue> {
    let info: RedisValue = client
        .xinfo_stream(stream, false, None)
        .await
        .unwrap_or_else(|e| panic!("XINFO STREAM {stream}: {e}"));
    let mut out = HashMap::new();
    match info {
        RedisValue::Map(map) => {
            for (k, v) in map.inner() {
                if let Some(k) = k.as_str() {
                    out.insert(k.to_string(), v);
                }
            }
        }
        other => {
            let items = other.into_array();
            for pair in items.chunks(2) {
                if let [k, v] = pair
                    && let Some(k) = k.as_string()
                {
                    out.insert(k, v.clone());
                }
            }
        }
    }
    out
}

/// Whether the stream never dropped an entry (no trim): `max-deleted-entry-id` is `0-0` and
/// `entries-added` equals `length` (Redis 7). Returns `(length, entries added, max deleted)`.
pub async fn stream_totals(client: &Client, stream: &str) -> (i64, i64, String) {
    let info = stream_info(client, stream).await;
    let int = |k: &str| info.get(k).and_then(RedisValue::as_i64).unwrap_or(-1);
    let max_deleted = info
        .get("max-deleted-entry-id")
        .and_then(RedisValue::as_string)
        .unwrap_or_default();
    (int("length"), int("entries-added"), max_deleted)
}

/// The events of a stream, counted.
#[derive(Debug, Default)]
pub struct Tally {
    /// `node:progress` events by (execution, node, status).
    pub nodes: HashMap<(String, String, String), usize>,
    /// `workflow:status` events by (execution, status).
    pub workflows: HashMap<(String, String), usize>,
    /// Every event, by type and status (`node:progress/completed`, ...).
    pub totals: BTreeMap<String, usize>,
}

impl Tally {
    /// Counts `events`.
    pub fn of(events: &[Event]) -> Self {
        let mut tally = Self::default();
        for e in events {
            let (kind, status, exec) = (e.kind.clone(), e.status.clone(), e.execution_id.clone());
            *tally.totals.entry(format!("{kind}/{status}")).or_default() += 1;
            match kind.as_str() {
                "node:progress" => {
                    let node = e.node_id.clone().unwrap_or_default();
                    *tally.nodes.entry((exec, node, status)).or_default() += 1;
                }
                "workflow:status" => *tally.workflows.entry((exec, status)).or_default() += 1,
                other => panic!("unknown event type {other:?} in {e:?}"),
            }
        }
        tally
    }

    /// How many `node:progress` events with `status` the node has.
    pub fn node(&self, execution: ExecutionId, node: &str, status: &str) -> usize {
        self.nodes
            .get(&(execution.to_string(), node.to_owned(), status.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// How many `workflow:status` events with `status` the execution has.
    pub fn workflow(&self, execution: ExecutionId, status: &str) -> usize {
        self.workflows
            .get(&(execution.to_string(), status.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The total of one `type/status`.
    pub fn total(&self, key: &str) -> usize {
        self.totals.get(key).copied().unwrap_or(0)
    }
}

/// A `pass` node type for the test's own engine: it validates workflows but never runs (the
/// test process starts no workers).
fn validating_registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry.register(
        "pass",
        executor_fn(|_ctx| async { Err(NodeError::fatal("the test process runs no nodes")) }),
    );
    registry
}

/// The engine settings of the tests: short claim waits, a 5 s drain on shutdown.
pub fn engine_config() -> EngineConfig {
    EngineConfig::default()
        .claim_wait(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(5))
}

/// The test process's engine on `config`: registers workflows, enqueues, observes; no workers.
pub async fn client_engine(config: RedisConfig) -> WorkflowEngine {
    let url = config.url().to_owned();
    WorkflowEngine::builder()
        .registry(validating_registry())
        .config(engine_config())
        .redis(config)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is needed for this test: {e}"))
        .build()
}

/// A workflow of `pass` nodes: `root` → `m0..m{width}` → `join`.
pub fn fan_out(id: &str, width: usize) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new(id, id)
        .node(NodeDefinition::new("root", "pass"))
        .node(NodeDefinition::new("join", "pass"));
    for m in 0..width {
        let name = format!("m{m}");
        wf = wf
            .node(NodeDefinition::new(name.clone(), "pass"))
            .edge("root", &name)
            .edge(&name, "join");
    }
    wf
}

/// A chain of `n` `pass` nodes `n0 → n1 → ...`.
pub fn chain(id: &str, n: usize) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new(id, id);
    for i in 0..n {
        wf = wf.node(NodeDefinition::new(format!("n{i}"), "pass"));
        if i > 0 {
            wf = wf.edge(&format!("n{}", i - 1), &format!("n{i}"));
        }
    }
    wf
}

/// The node ids of a chain of `n`.
pub fn chain_nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// Enqueues `count` executions of `workflow`, each with `{"i": <index>}`.
pub async fn enqueue_many(
    engine: &WorkflowEngine,
    workflow: &str,
    count: usize,
) -> Vec<ExecutionId> {
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = count.div_ceil(4);
    for chunk in 0..4 {
        let engine = engine.clone();
        let workflow = workflow.to_owned();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in chunk * per_task..((chunk + 1) * per_task).min(count) {
                let id = engine
                    .enqueue_workflow(&workflow, json!({ "i": i }))
                    .await
                    .unwrap_or_else(|e| panic!("enqueue {i}: {e}"));
                ids.push(id);
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(chunk) = tasks.join_next().await {
        ids.extend(chunk.expect("enqueue task"));
    }
    ids
}

/// Waits for every execution to end (with `wait_for_execution`, four at a time), all within
/// `within`; returns the records in the order of `ids`. Errors other than the deadline (the
/// backend briefly unavailable) are retried until the deadline.
pub async fn wait_all(
    engine: &WorkflowEngine,
    ids: &[ExecutionId],
    within: Duration,
) -> Vec<ExecutionRecord> {
    const AT_ONCE: usize = 4;
    let deadline = Instant::now() + within;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..AT_ONCE {
        let engine = engine.clone();
        let mine: Vec<(usize, ExecutionId)> = ids
            .iter()
            .copied()
            .enumerate()
            .skip(lane)
            .step_by(AT_ONCE)
            .collect();
        let total = ids.len();
        tasks.spawn(async move {
            let mut records = Vec::with_capacity(mine.len());
            for (n, id) in mine {
                records.push((n, wait_one(&engine, id, deadline, within, n, total).await));
            }
            records
        });
    }
    let mut records = Vec::with_capacity(ids.len());
    while let Some(done) = tasks.join_next().await {
        records.extend(done.expect("waiting task"));
    }
    records.sort_by_key(|(n, _)| *n);
    records.into_iter().map(|(_, r)| r).collect()
}

async fn wait_one(
    engine: &WorkflowEngine,
    id: ExecutionId,
    deadline: Instant,
    within: Duration,
    n: usize,
    total: usize,
) -> ExecutionRecord {
    let mut retried = 0usize;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match engine.wait_for_execution(id, left).await {
            Ok(record) => return record,
            Err(Error::Timeout { status, .. }) => {
                panic!("execution {n}/{total} ({id}) still {status:?} after {within:?}")
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "waiting for execution {id}: {e} (deadline passed)"
                );
                retried += 1;
                if retried % 20 == 1 {
                    eprintln!("waiting for {id}: {e}; retrying");
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }
}

/// The `by` field of a node's output.
pub fn by(record: &ExecutionRecord, node: &str) -> String {
    record
        .output(node)
        .and_then(|o| o["by"].as_str())
        .unwrap_or_default()
        .to_owned()
}
