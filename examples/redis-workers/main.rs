//! # Redis workers: many worker processes sharing one Redis
//!
//! ```text
//! docker compose -f docker/compose.yml up -d       # Redis at 127.0.0.1:6379
//! cargo run -p redis-workers --example redis-workers -- --workers 4 --executions 1000
//! cargo run -p redis-workers --example redis-workers -- --shape fanout --executions 50
//! ```
//!
//! The process you start is the *producer*. It starts `--workers` copies of its own executable
//! as separate worker processes (`--role worker`), each with its own engine on the same Redis,
//! running up to `--concurrency` nodes at once. The producer's engine runs no workers: it
//! registers the workflow, waits until every worker has printed `ready`, enqueues
//! `--executions` executions, waits for all of them, and prints the throughput and how many
//! nodes each worker process ran. Every node is a trivial `pass` node that writes the name of
//! the worker that ran it into its output (`"by"`), so the split is read from the results:
//!
//! ```text
//! chain   n01 ─> n02 ─> ... ─> n10                      10 nodes
//!
//!                 ┌─> p01 ─┐
//! fanout  start ──┼─> ...  ┼──> end                     52 nodes (1 → 50 → 1)
//!                 └─> p50 ─┘
//! ```
//!
//! Only Redis is shared: the workers never register the workflow, they read its definition
//! from Redis, and any worker may run any node of any execution. When all executions ended the
//! producer closes the workers' stdin; each worker drains its in-flight nodes and exits.
//! Exits 0 when every execution completed, 1 otherwise.
//!
//! Options: `--workers N` (default 2), `--executions E` (1000), `--concurrency C` per worker
//! (32), `--shape chain|fanout` (chain), `--timeout SECS` to wait for the executions (300).
//! The Redis URL comes from `SPANE_REDIS_URL` or `REDIS_URL` (default
//! `redis://127.0.0.1:6379`). Keys go under a fresh prefix `spane-example-<random>` so that
//! runs never collide (`--prefix P` picks one); finished executions expire after an hour.
//!
//! A worker can also be started by hand, for example on another machine:
//! `redis-workers --role worker --prefix P --name W [--concurrency C]`. It runs until its
//! stdin closes (Ctrl-D) or Ctrl-C.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde_json::{Value, json};
use spane::events::EventError;
use spane::prelude::*;
use spane::queue::{QueueError, RedisConfig};
use spane::{EngineBuilder, Error};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const USAGE: &str = "\
usage: redis-workers [--workers N] [--executions E] [--concurrency C] [--shape chain|fanout]
                     [--timeout SECS] [--prefix P] [--history POSTGRES_URL [--history-mode behind|through]]
       redis-workers --role worker --prefix P --name W [--concurrency C] [--history URL ...]";

/// How long finished executions stay in Redis (the backend's default is 24 h).
const RETENTION: Duration = Duration::from_secs(3600);
/// How long the producer waits for the workers to print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker lets in-flight nodes finish when it stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Chain,
    Fanout,
}

#[derive(Debug)]
struct Args {
    worker: bool,
    workers: usize,
    executions: usize,
    concurrency: usize,
    shape: Shape,
    timeout: Duration,
    prefix: Option<String>,
    name: Option<String>,
    /// PostgreSQL history: URL, and write-through instead of write-behind.
    database: Option<String>,
    write_through: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        worker: false,
        workers: 2,
        executions: 1000,
        concurrency: 32,
        shape: Shape::Chain,
        timeout: Duration::from_secs(300),
        prefix: None,
        name: None,
        database: None,
        write_through: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || -> anyhow::Result<usize> {
            let n: usize = value
                .parse()
                .with_context(|| format!("{flag} {value:?}: not a number"))?;
            if n == 0 {
                bail!("{flag} must be at least 1");
            }
            Ok(n)
        };
        match flag.as_str() {
            "--role" => match value.as_str() {
                "worker" => args.worker = true,
                "producer" => args.worker = false,
                other => bail!("unknown role {other:?} (worker or producer)"),
            },
            "--workers" => args.workers = number()?,
            "--executions" => args.executions = number()?,
            "--concurrency" => args.concurrency = number()?,
            "--timeout" => args.timeout = Duration::from_secs(number()? as u64),
            "--shape" => {
                args.shape = match value.as_str() {
                    "chain" => Shape::Chain,
                    "fanout" => Shape::Fanout,
                    other => bail!("unknown shape {other:?} (chain or fanout)"),
                }
            }
            "--prefix" => args.prefix = Some(value),
            "--name" => args.name = Some(value),
            "--history" => args.database = Some(value),
            "--history-mode" => {
                args.write_through = match value.as_str() {
                    "behind" => false,
                    "through" => true,
                    other => bail!("unknown history mode {other:?} (behind or through)"),
                }
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(args)
}

fn redis_url() -> String {
    ["SPANE_REDIS_URL", "REDIS_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn random_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // RandomState is seeded randomly per process: no extra dependency for a random id.
    let bits = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("spane-example-{:012x}", bits & 0xffff_ffff_ffff)
}

/// The executors: one trivial `pass` type that hands the execution's sequence number on and
/// says which worker ran it. `ran` counts the calls in this process.
fn registry(worker: &str, ran: Arc<AtomicU64>) -> NodeRegistry {
    let worker = worker.to_owned();
    let mut r = NodeRegistry::new();
    r.register(
        "pass",
        executor_fn(move |ctx| {
            ran.fetch_add(1, Ordering::Relaxed);
            let output = json!({ "seq": seq_of(&ctx.input_data), "by": worker });
            async move { Ok(NodeOutput::new(output)) }
        }),
    );
    r
}

/// The sequence number in a node's input: the initial data of a root, the output of a single
/// parent, or at a join (`{parentId: output, ...}`) any parent's.
fn seq_of(input: &Value) -> Value {
    input
        .get("seq")
        .or_else(|| input.as_object()?.values().next()?.get("seq"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The workflow of `shape` and the id of its last node.
fn workflow(shape: Shape) -> (WorkflowDefinition, String) {
    match shape {
        Shape::Chain => {
            let ids: Vec<String> = (1..=10).map(|i| format!("n{i:02}")).collect();
            let mut wf = WorkflowDefinition::new("redis-workers-chain", "10-node chain");
            for id in &ids {
                wf = wf.node(NodeDefinition::new(id.as_str(), "pass"));
            }
            for pair in ids.windows(2) {
                wf = wf.edge(&pair[0], &pair[1]);
            }
            let last = ids[ids.len() - 1].clone();
            (wf, last)
        }
        Shape::Fanout => {
            let mut wf = WorkflowDefinition::new("redis-workers-fanout", "1 -> 50 -> 1")
                .node(NodeDefinition::new("start", "pass"))
                .node(NodeDefinition::new("end", "pass"));
            for i in 1..=50 {
                let id = format!("p{i:02}");
                wf = wf
                    .node(NodeDefinition::new(id.as_str(), "pass"))
                    .edge("start", &id)
                    .edge(&id, "end");
            }
            (wf, "end".to_owned())
        }
    }
}

/// `builder` connected to the Redis at `url` under `prefix` and built, or the one line to
/// print when there is no Redis there.
async fn connect(
    builder: EngineBuilder,
    url: &str,
    prefix: &str,
) -> Result<WorkflowEngine, String> {
    let unreachable = |reason: &dyn std::fmt::Display| {
        format!(
            "Redis is not reachable at {} ({reason}); start it with `docker compose -f docker/compose.yml up -d` or set SPANE_REDIS_URL",
            redacted(url)
        )
    };
    let redis = RedisConfig::new(url).prefix(prefix).retention(RETENTION);
    match tokio::time::timeout(Duration::from_secs(15), builder.redis(redis)).await {
        Ok(Ok(builder)) => Ok(builder.build()),
        Ok(Err(
            Error::Queue(QueueError::Unavailable { reason, .. })
            | Error::Events(EventError::Unavailable { reason, .. }),
        )) => Err(unreachable(&reason)),
        Ok(Err(e)) => Err(format!("cannot use the Redis at {}: {e}", redacted(url))),
        Err(_) => Err(unreachable(&"no answer within 15 s")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = if args.worker {
        run_worker(args).await
    } else {
        run_producer(args).await
    };
    run.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

// ---------------------------------------------------------------------------------------------
// Worker process

async fn run_worker(args: Args) -> anyhow::Result<ExitCode> {
    let prefix = args.prefix.context("--role worker needs --prefix")?;
    let name = args.name.context("--role worker needs --name")?;
    let ran = Arc::new(AtomicU64::new(0));
    let config = spane::EngineConfig::default()
        .claim_wait(Duration::from_millis(500))
        .shutdown_timeout(DRAIN_TIMEOUT);
    let mut builder = WorkflowEngine::builder()
        .registry(registry(&name, ran.clone()))
        .config(config.history(if args.write_through {
            spane::HistoryMode::WriteThrough
        } else {
            spane::HistoryMode::Auto
        }));
    if let Some(url) = &args.database {
        builder = builder.store(Arc::new(history_store(url, &prefix).await?));
    }
    let engine = match connect(builder, &redis_url(), &prefix).await {
        Ok(e) => e,
        Err(line) => {
            eprintln!("[{name}] {line}");
            return Ok(ExitCode::FAILURE);
        }
    };
    engine.start_workers(args.concurrency)?;
    say("ready");

    let why = stop_requested().await;
    let report = engine.shutdown().await;
    // Nodes still running after DRAIN_TIMEOUT were cancelled and given back to the queue, so
    // another worker runs them.
    let released = match report.released {
        0 => String::new(),
        n => format!("; {n} unfinished nodes given back to the queue"),
    };
    say(&format!(
        "stopped ({why}) after running {} nodes{released}",
        ran.load(Ordering::Relaxed)
    ));
    // Read by the producer: the requests this worker sent to Redis.
    say(&format!(
        "round_trips={}",
        engine
            .queue()
            .counters()
            .map_or(0, |c| c.stats().round_trips)
    ));
    Ok(ExitCode::SUCCESS)
}

/// One line to the producer. A producer that died leaves a closed pipe: ignore it rather than
/// panic like `println!` would.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Resolves when stdin closes (the producer's stop signal), or on Ctrl-C or SIGTERM.
async fn stop_requested() -> &'static str {
    let (tx, rx) = oneshot::channel::<()>();
    // A plain thread: tokio's stdin reads on a blocking thread that would hold up the runtime's
    // shutdown until the read returns.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    tokio::select! {
        _ = rx => "stdin closed",
        _ = tokio::signal::ctrl_c() => "interrupted",
        () = terminated() => "terminated",
    }
}

#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}

// ---------------------------------------------------------------------------------------------
// Producer process

/// A worker process started by the producer.
struct WorkerProcess {
    name: String,
    child: Child,
    ready: Option<oneshot::Receiver<()>>,
    /// Echoes the worker's stdout (but `ready`) until it closes; returns the worker's round
    /// trips to Redis, from its last line.
    output: JoinHandle<u64>,
}

/// The PostgreSQL history of a run, in a schema named after its prefix.
async fn history_store(url: &str, prefix: &str) -> anyhow::Result<spane::store::SqlStore> {
    let schema = prefix.replace('-', "_");
    Ok(spane::store::SqlStore::connect(
        url,
        spane::store::SqlStoreOptions::default().schema(schema),
    )
    .await?)
}

/// The history options passed on to the worker processes.
fn history_args(args: &Args) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(url) = &args.database {
        out.extend(["--history".to_owned(), url.clone()]);
        if args.write_through {
            out.extend(["--history-mode".to_owned(), "through".to_owned()]);
        }
    }
    out
}

fn spawn_workers(args: &Args, prefix: &str) -> anyhow::Result<Vec<WorkerProcess>> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let concurrency = args.concurrency.to_string();
    let mut workers = Vec::with_capacity(args.workers);
    for i in 1..=args.workers {
        let name = format!("w{i}");
        let mut child = Command::new(&exe)
            .args(["--role", "worker", "--prefix", prefix, "--name", &name])
            .args(["--concurrency", &concurrency])
            .args(history_args(args))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Only a safety net for early returns: workers are normally stopped via stdin.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {name}"))?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let (tx, rx) = oneshot::channel();
        let tag = name.clone();
        let output = tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut round_trips = 0;
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(n) = line.strip_prefix("round_trips=") {
                    round_trips = n.parse().unwrap_or(0);
                } else if line == "ready" {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                } else {
                    println!("  [{tag}] {line}");
                }
            }
            round_trips
        });
        workers.push(WorkerProcess {
            name,
            child,
            ready: Some(rx),
            output,
        });
    }
    Ok(workers)
}

async fn wait_ready(workers: &mut [WorkerProcess]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    for w in workers {
        let Some(ready) = w.ready.take() else {
            continue;
        };
        match tokio::time::timeout_at(deadline, ready).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("worker {} exited before it was ready", w.name),
            Err(_) => bail!("worker {} not ready after {READY_TIMEOUT:?}", w.name),
        }
    }
    Ok(())
}

/// Closes every worker's stdin, then waits for each to drain and exit (killing stragglers).
/// Returns the round trips the workers sent to Redis.
async fn stop_workers(mut workers: Vec<WorkerProcess>) -> u64 {
    let mut round_trips = 0;
    for w in &mut workers {
        drop(w.child.stdin.take());
    }
    for mut w in workers {
        match tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(10), w.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => eprintln!("worker {} exited with {status}", w.name),
            Ok(Err(e)) => eprintln!("worker {}: {e}", w.name),
            Err(_) => {
                eprintln!("worker {} did not stop in time; killing it", w.name);
                let _ = w.child.kill().await;
            }
        }
        round_trips += w.output.await.unwrap_or(0);
    }
    round_trips
}

async fn run_producer(args: Args) -> anyhow::Result<ExitCode> {
    let url = redis_url();
    let prefix = args.prefix.clone().unwrap_or_else(random_prefix);
    // The producer needs the executor types to validate the workflow, but never runs a node.
    // Its in-memory store holds the definition, which `enqueue_workflow` reads.
    let mut builder = WorkflowEngine::builder().registry(registry("producer", Arc::default()));
    if let Some(db) = &args.database {
        builder = builder.store(Arc::new(history_store(db, &prefix).await?));
    }
    let engine = match connect(builder, &url, &prefix).await {
        Ok(e) => e,
        Err(line) => {
            eprintln!("{line}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "redis {} prefix {prefix}: {} worker processes x concurrency {}",
        redacted(&url),
        args.workers,
        args.concurrency
    );

    let spawned = Instant::now();
    let mut workers = spawn_workers(&args, &prefix)?;
    let outcome = produce(&engine, &args, &mut workers, spawned).await;
    let round_trips = stop_workers(workers).await;
    engine.shutdown().await;
    // The run's keys (executions, event stream, definitions) are of no use afterwards.
    if args.prefix.is_none()
        && let Ok(q) =
            spane::queue::RedisQueue::connect(RedisConfig::new(&url).prefix(&prefix)).await
    {
        let _ = q.delete_all_keys().await;
    }
    if let Ok((_, nodes)) = &outcome
        && *nodes > 0
    {
        println!(
            "client round trips per node (workers): {:.2}",
            round_trips as f64 / *nodes as f64
        );
    }
    outcome.map(|(code, _)| code)
}

async fn produce(
    engine: &WorkflowEngine,
    args: &Args,
    workers: &mut [WorkerProcess],
    spawned: Instant,
) -> anyhow::Result<(ExitCode, u64)> {
    let (definition, last) = workflow(args.shape);
    let workflow_id = definition.id.clone();
    let nodes = definition.nodes.len();
    let version = engine.register_workflow(definition).await?;
    println!("registered workflow {workflow_id} v{version} ({nodes} nodes)");

    wait_ready(workers).await?;
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    println!(
        "workers ready in {:.2} s: {}",
        spawned.elapsed().as_secs_f64(),
        workers
            .iter()
            .map(|w| format!("{} (pid {})", w.name, w.child.id().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let before = server_stats(engine).await?;
    let t0 = Instant::now();
    // `buffered` keeps the order: ids[seq] is the execution started with {"seq": seq}.
    let ids: Vec<ExecutionId> = stream::iter(0..args.executions)
        .map(|seq| engine.enqueue_workflow(&workflow_id, json!({ "seq": seq })))
        .buffered(32)
        .try_collect()
        .await?;
    let enqueued = t0.elapsed();
    let deadline = tokio::time::Instant::now() + args.timeout;
    let results: Vec<Result<ExecutionRecord, Error>> = stream::iter(ids)
        .map(|id| {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            engine.wait_for_execution(id, left)
        })
        .buffered(256)
        .collect()
        .await;
    let wall = t0.elapsed();
    let after = server_stats(engine).await?;

    let mut completed = 0usize;
    let mut node_runs = 0u64;
    let mut by_worker: BTreeMap<String, u64> = names.iter().map(|n| ((*n).to_owned(), 0)).collect();
    let mut problems = Vec::new();
    for (seq, result) in results.into_iter().enumerate() {
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        for r in record.node_results.values() {
            if r.status == NodeStatus::Completed {
                node_runs += 1;
                let by = r
                    .data
                    .as_ref()
                    .and_then(|d| d["by"].as_str())
                    .unwrap_or("?");
                *by_worker.entry(by.to_owned()).or_default() += 1;
            }
        }
        if record.status != ExecutionStatus::Completed {
            problems.push(format!(
                "execution {} ended {}: {}",
                record.execution_id,
                record.status,
                record.error.as_deref().unwrap_or("no error recorded")
            ));
        } else if record.output(&last).map(|o| &o["seq"]) != Some(&json!(seq)) {
            problems.push(format!(
                "execution {} completed with the wrong output: {:?}",
                record.execution_id,
                record.output(&last)
            ));
        } else {
            completed += 1;
        }
    }

    let secs = wall.as_secs_f64().max(1e-9);
    println!(
        "executions:        {completed} of {} completed",
        args.executions
    );
    println!("nodes executed:    {node_runs}");
    println!(
        "wall time:         {secs:.3} s (enqueueing took {:.3} s)",
        enqueued.as_secs_f64()
    );
    println!("node executions/s: {:.0}", node_runs as f64 / secs);
    println!("executions/s:      {:.1}", completed as f64 / secs);
    let split: Vec<String> = by_worker
        .iter()
        .map(|(name, n)| {
            let share = if node_runs == 0 {
                0.0
            } else {
                *n as f64 * 100.0 / node_runs as f64
            };
            format!("{name} {n} ({share:.1}%)")
        })
        .collect();
    println!("nodes per worker:  {}", split.join(", "));
    if let (Some(b), Some(a)) = (before, after)
        && node_runs > 0
    {
        // Server side, so commands inside scripts count; the producer's enqueues and waits are
        // included too.
        let n = node_runs as f64;
        println!(
            "redis commands per node:  {:.1}",
            a.commands.saturating_sub(b.commands) as f64 / n
        );
        println!(
            "redis CPU per node:       {:.1} µs",
            a.cpu_micros.saturating_sub(b.cpu_micros) as f64 / n
        );
    }

    if problems.is_empty() {
        return Ok((ExitCode::SUCCESS, node_runs));
    }
    eprintln!("{} executions did not complete correctly:", problems.len());
    for p in problems.iter().take(5) {
        eprintln!("  {p}");
    }
    if problems.len() > 5 {
        eprintln!("  ...");
    }
    Ok((ExitCode::FAILURE, node_runs))
}

/// Redis's own counters (commands, CPU), to show what the run cost the server.
async fn server_stats(
    engine: &WorkflowEngine,
) -> Result<Option<spane::queue::backend::ServerStats>, QueueError> {
    match engine.queue().counters() {
        Some(c) => Ok(Some(c.server_stats().await?)),
        None => Ok(None),
    }
}
