//! What one fault run works with: its own key prefix on the suite's Redis, worker processes
//! (`spane-test-worker`) it starts, kills and stops, an engine of its own that registers,
//! enqueues and observes without running nodes, and the workers' bookkeeping.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::{
    Builder, Client, ClientLike, Config, HashesInterface, KeysInterface, ReconnectPolicy,
    StreamsInterface,
};
use serde_json::json;
use spane::prelude::*;
use spane::queue::RedisConfig;
use spane::{EngineConfig, WorkflowEngine};

use super::FaultError;

/// How long a worker process may take to print `ready`.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// The pause between two probes of a condition (a poll interval, not a wait).
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// A worker process of a fault run, killed when dropped.
#[derive(Debug)]
pub(crate) struct WorkerProc {
    child: Option<Child>,
    pid: u32,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// How a worker process runs.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub(crate) concurrency: usize,
    pub(crate) lease_ms: u64,
    pub(crate) work_ms: u64,
    /// Extra arguments (fault hooks, `--database-url`, ...).
    pub(crate) extra: Vec<String>,
}

impl WorkerSpec {
    pub(crate) fn new(concurrency: usize, lease_ms: u64, work_ms: u64) -> Self {
        Self {
            concurrency,
            lease_ms,
            work_ms,
            extra: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }
}

impl WorkerProc {
    /// Starts `spane-test-worker` on `url` (`prefix`), named `name`, and waits for `ready`.
    pub(crate) fn start(
        url: &str,
        prefix: &str,
        name: &str,
        spec: &WorkerSpec,
    ) -> Result<Self, FaultError> {
        let program = std::env::current_exe()
            .map_err(|e| FaultError::new(format!("locating the worker binary: {e}")))?
            .with_file_name("spane-test-worker");
        let mut child = Command::new(&program)
            .args(&spec.extra)
            .args(["--redis", url, "--prefix", prefix, "--name", name])
            .args(["--concurrency", &spec.concurrency.to_string()])
            .args(["--lease-ms", &spec.lease_ms.to_string()])
            .args(["--work-ms", &spec.work_ms.to_string()])
            .arg("--watch-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                FaultError::new(format!(
                    "cannot start {} (build it with `cargo build -p spane-testkit --bins`): {e}",
                    program.display()
                ))
            })?;
        let pid = child.id();
        let (tx, ready) = mpsc::channel();
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
        let kept = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut worker = Self {
            child: Some(child),
            pid,
            stderr,
        };
        match ready.recv_timeout(READY_WITHIN) {
            Ok(line) if line == "ready" => Ok(worker),
            other => {
                worker.kill();
                Err(FaultError::new(format!(
                    "worker {name} did not start ({other:?}): {}",
                    worker.stderr_tail()
                )))
            }
        }
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`) with `kill(1)`.
    pub(crate) fn signal(&self, signal: &str) -> Result<(), FaultError> {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .map_err(|e| FaultError::new(format!("kill -{signal}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(FaultError::new(format!(
                "kill -{signal} {} failed",
                self.pid
            )))
        }
    }

    /// Waits until it exits on its own (an abort hook), at most `within`.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Result<(), FaultError> {
        let deadline = Instant::now() + within;
        while let Some(child) = self.child.as_mut() {
            if child
                .try_wait()
                .map_err(|e| FaultError::new(e.to_string()))?
                .is_some()
            {
                self.child = None;
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(FaultError::new(format!(
                    "the worker did not exit within {within:?}: {}",
                    self.stderr_tail()
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// How many lines of its stderr contain `needle`.
    pub(crate) fn stderr_count(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines[lines.len().saturating_sub(10)..].join(" | ")
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One run's key prefix, engine and bookkeeping client.
pub(crate) struct Run {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) engine: WorkflowEngine,
    pub(crate) client: Client,
}

/// A registry that knows the `pass` type (the run's engine validates definitions; it runs no
/// nodes).
fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry.register(
        "pass",
        executor_fn(|_ctx| async { Err(NodeError::fatal("the fault suite runs no nodes")) }),
    );
    registry
}

/// A fresh bookkeeping client on `url`.
pub(crate) async fn client(url: &str) -> Result<Client, FaultError> {
    let config = Config::from_url(url).map_err(|e| FaultError::new(e.to_string()))?;
    let client = Builder::from_config(config)
        .set_policy(ReconnectPolicy::new_constant(0, 50))
        .build()
        .map_err(|e| FaultError::new(e.to_string()))?;
    client
        .init()
        .await
        .map_err(|e| FaultError::new(format!("Redis at {url}: {e}")))?;
    Ok(client)
}

impl Run {
    /// A run on `url` under a fresh prefix.
    pub(crate) async fn new(url: &str, tag: &str) -> Result<Self, FaultError> {
        let prefix = format!(
            "faults-{tag}-{}",
            ExecutionId::new().to_string().to_lowercase()
        );
        Self::with_prefix(url, prefix, None).await
    }

    /// A run on `url` under `prefix`, its finished executions kept for `retention`.
    pub(crate) async fn with_prefix(
        url: &str,
        prefix: String,
        retention: Option<Duration>,
    ) -> Result<Self, FaultError> {
        let mut config = RedisConfig::new(url).prefix(&prefix);
        if let Some(retention) = retention {
            config = config.retention(retention);
        }
        let engine = WorkflowEngine::builder()
            .registry(registry())
            .config(EngineConfig::default().claim_wait(Duration::from_millis(200)))
            .redis(config)
            .await
            .map_err(|e| FaultError::new(format!("Redis at {url}: {e}")))?
            .build();
        Ok(Self {
            url: url.to_owned(),
            client: client(url).await?,
            prefix,
            engine,
        })
    }

    /// Starts a worker process.
    pub(crate) fn worker(&self, name: &str, spec: &WorkerSpec) -> Result<WorkerProc, FaultError> {
        WorkerProc::start(&self.url, &self.prefix, name, spec)
    }

    /// Registers `definition`.
    pub(crate) async fn register(&self, definition: WorkflowDefinition) -> Result<(), FaultError> {
        self.engine
            .register_workflow(definition)
            .await
            .map(|_| ())
            .map_err(|e| FaultError::new(format!("registering: {e}")))
    }

    /// Enqueues `count` executions of `workflow`.
    pub(crate) async fn enqueue(
        &self,
        workflow: &str,
        count: usize,
    ) -> Result<Vec<ExecutionId>, FaultError> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            ids.push(
                self.engine
                    .enqueue_workflow(workflow, json!({ "i": i }))
                    .await
                    .map_err(|e| FaultError::new(format!("enqueue: {e}")))?,
            );
        }
        Ok(ids)
    }

    /// A hash of the workers' bookkeeping (`P:test:<name>`), by field.
    pub(crate) async fn counters(&self, name: &str) -> HashMap<String, i64> {
        self.client
            .hgetall(format!("{}:test:{name}", self.prefix))
            .await
            .unwrap_or_default()
    }

    /// Polls `probe` until it answers `Some`, at most `within`.
    pub(crate) async fn until<T, F, Fut>(
        &self,
        what: &str,
        within: Duration,
        mut probe: F,
    ) -> Result<T, FaultError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = probe().await {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(FaultError::new(format!("{what}: not within {within:?}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every execution of `ids` has ended or is gone, at most `within`; returns
    /// the ones that did not complete (lost).
    pub(crate) async fn settle(&self, ids: &[ExecutionId], within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let mut lost = 0;
        for &id in ids {
            loop {
                let status = self.engine.queue().execution_status(id).await;
                match status {
                    Ok(Some(ExecutionStatus::Completed)) => break,
                    Ok(Some(s)) if s.is_terminal() => {
                        lost += 1;
                        break;
                    }
                    // Gone: never enqueued as far as Redis knows (lost with an unsynced AOF).
                    Ok(None) => {
                        lost += 1;
                        break;
                    }
                    _ => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    lost += 1;
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        lost
    }

    /// The events of the run's stream, as (execution, node or "", status) counts.
    pub(crate) async fn tally(&self) -> HashMap<(String, String, String), usize> {
        let stream = format!("{}:{{0}}:events", self.prefix);
        let mut out = HashMap::new();
        let mut start = "-".to_owned();
        loop {
            let chunk: Vec<(String, HashMap<String, String>)> = self
                .client
                .xrange_values(&stream, start.as_str(), "+", Some(2000))
                .await
                .unwrap_or_default();
            let Some((last, _)) = chunk.last() else {
                return out;
            };
            start = format!("({last}");
            for (_, fields) in chunk {
                let Some(text) = fields.get("e") else {
                    continue;
                };
                let Ok(events) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
                    continue;
                };
                for e in events {
                    let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    *out.entry((s("executionId"), s("nodeId"), s("status")))
                        .or_default() += 1;
                }
            }
        }
    }

    /// Deletes the run's keys.
    pub(crate) async fn cleanup(&self) {
        let pattern = format!("{}:*", self.prefix);
        let mut cursor = "0".to_owned();
        loop {
            let reply: (String, Vec<String>) = match self
                .client
                .custom(
                    fred::cmd!("SCAN"),
                    vec![
                        cursor.clone(),
                        "MATCH".into(),
                        pattern.clone(),
                        "COUNT".into(),
                        "1000".into(),
                    ],
                )
                .await
            {
                Ok(r) => r,
                Err(_) => return,
            };
            if !reply.1.is_empty() {
                let _: Result<i64, _> = self.client.del(reply.1).await;
            }
            if reply.0 == "0" {
                return;
            }
            cursor = reply.0;
        }
    }
}
