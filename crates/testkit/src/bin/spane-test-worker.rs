//! `spane-test-worker`: a worker process on the Redis backend, driven by the process tests of
//! `spane-testkit` (they start, kill, stop and resume it).
//!
//! ```text
//! spane-test-worker --redis URL --prefix P --concurrency N --lease-ms L --work-ms W --name NAME
//!                   [--events-cap N] [--reclaim-ms R] [--retention-ms T] [--watch-stdin]
//!                   [--database-url URL --schema S [--history-reclaim-ms H]]
//!                   [--abort-after-first-end | --abort-after-first-commit]
//!                   [--hold-node ID --hold-at before-effect|after-effect]
//! ```
//!
//! Fault hooks, so that a test kills the process at a chosen point rather than by chance:
//!
//! - `--abort-after-first-end`: the process aborts the moment its first commit that ends an
//!   execution has been applied, before it does anything else (it counts
//!   `spane_executions_finished_total`, through a metrics recorder that aborts): for a
//!   sub-workflow's child, that is between the child's end and its parent's resumption.
//! - `--abort-after-first-commit`: the same at the first applied node commit
//!   (`spane_node_executions_total`): Redis applied the commit (and may have handed this worker
//!   its next job), the worker dies before acting on the reply.
//! - `--hold-node ID --hold-at before-effect|after-effect`: the executor of node `ID` blocks for
//!   ever, before or after its side effect (the `invocations` counter), having first counted
//!   itself in the hash `P:test:holding` (field `<execution>:<node>`); the test kills the process
//!   once it sees that count.
//!
//! It registers one executor type, `pass`, which sleeps `W` ms (simulated work) and returns
//! `{"node": <node id>, "input": <its input>, "by": NAME}`. Every invocation is counted in
//! Redis, on a client of its own: `HINCRBY P:test:invocations <execution>:<node> 1` before the
//! work, and `HINCRBY P:test:finished <execution>:<node> 1` after it; the hash
//! `P:test:workers` counts the same per process (fields `NAME` and `NAME:finished`). The
//! process never registers a workflow: Redis holds the definitions of the executions it runs.
//!
//! It prints `ready` on stdout once its workers run, then runs until SIGTERM or SIGINT, shuts
//! down gracefully (in-flight nodes drain within 5 s) and prints
//! `stopped drained=<n> released=<n>`. With `--watch-stdin` the end of its stdin does the same,
//! so that a worker whose parent died (its end of the pipe closed) does not run on.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use fred::prelude::{Builder, Client, ClientLike, Config, HashesInterface, ReconnectPolicy};
use serde_json::json;
use spane::prelude::*;
use spane::queue::RedisConfig;
use spane::{EngineConfig, WorkflowEngine};
use tokio::signal::unix::{SignalKind, signal};

/// The command line.
#[derive(Debug)]
struct Args {
    redis: String,
    prefix: String,
    concurrency: usize,
    lease: Duration,
    work: Duration,
    name: String,
    events_cap: Option<u64>,
    reclaim_every: Duration,
    watch_stdin: bool,
    /// PostgreSQL history (write-behind): URL and schema.
    database: Option<(String, String)>,
    history_reclaim: Duration,
    /// How long finished executions stay in Redis.
    retention: Option<Duration>,
    /// Abort at the first increment of this counter (a fault hook).
    abort_on: Option<&'static str>,
    /// Block node `.0` for ever, before (`false`) or after (`true`) its side effect.
    hold: Option<(String, bool)>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut redis = None;
    let mut prefix = None;
    let mut concurrency = 4usize;
    let mut lease = Duration::from_secs(30);
    let mut work = Duration::ZERO;
    let mut name = None;
    let mut events_cap = None;
    let mut reclaim_every = Duration::from_millis(100);
    let mut watch_stdin = false;
    let mut abort_on = None;
    let mut retention = None;
    let mut hold_node = None;
    let mut hold_after = None;
    let mut database_url = None;
    let mut schema = None;
    let mut history_reclaim = Duration::from_secs(30);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--watch-stdin" {
            watch_stdin = true;
            continue;
        }
        if flag == "--abort-after-first-end" {
            abort_on = Some(spane::worker::metrics::EXECUTIONS_FINISHED);
            continue;
        }
        if flag == "--abort-after-first-commit" {
            abort_on = Some(spane::worker::metrics::NODE_EXECUTIONS);
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = || -> anyhow::Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag} takes a number, not {value:?}"))
        };
        match flag.as_str() {
            "--redis" => redis = Some(value.clone()),
            "--prefix" => prefix = Some(value.clone()),
            "--concurrency" => concurrency = number()? as usize,
            "--lease-ms" => lease = Duration::from_millis(number()?),
            "--work-ms" => work = Duration::from_millis(number()?),
            "--name" => name = Some(value.clone()),
            "--events-cap" => events_cap = Some(number()?),
            "--reclaim-ms" => reclaim_every = Duration::from_millis(number()?),
            "--database-url" => database_url = Some(value.clone()),
            "--schema" => schema = Some(value.clone()),
            "--history-reclaim-ms" => history_reclaim = Duration::from_millis(number()?),
            "--hold-node" => hold_node = Some(value.clone()),
            "--retention-ms" => retention = Some(Duration::from_millis(number()?)),
            "--hold-at" => {
                hold_after = Some(match value.as_str() {
                    "before-effect" => false,
                    "after-effect" => true,
                    other => bail!("--hold-at takes before-effect or after-effect, not {other:?}"),
                })
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(Args {
        redis: redis.context("--redis URL is required")?,
        prefix: prefix.context("--prefix P is required")?,
        concurrency,
        lease,
        work,
        name: name.context("--name NAME is required")?,
        events_cap,
        reclaim_every,
        watch_stdin,
        database: match (database_url, schema) {
            (Some(url), Some(schema)) => Some((url, schema)),
            (None, None) => None,
            _ => bail!("--database-url and --schema go together"),
        },
        history_reclaim,
        retention,
        abort_on,
        hold: match (hold_node, hold_after) {
            (Some(node), Some(after)) => Some((node, after)),
            (None, None) => None,
            _ => bail!("--hold-node and --hold-at go together"),
        },
    })
}

/// A metrics recorder that aborts the process when counter `.0` is first incremented (the
/// fault hooks `--abort-after-first-end` and `--abort-after-first-commit`); every other metric
/// is dropped.
#[derive(Debug)]
struct AbortOn(&'static str);

#[derive(Debug)]
struct AbortCounter(&'static str);

impl metrics::CounterFn for AbortCounter {
    fn increment(&self, _: u64) {
        if self.0 == spane::worker::metrics::EXECUTIONS_FINISHED {
            eprintln!("aborting after the first execution end, as asked");
        } else {
            eprintln!("aborting after the first node commit, as asked");
        }
        std::process::abort();
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for AbortOn {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == self.0 {
            metrics::Counter::from_arc(std::sync::Arc::new(AbortCounter(self.0)))
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The client of the test bookkeeping (counters), separate from the engine's.
async fn bookkeeping_client(url: &str) -> anyhow::Result<Client> {
    let config = Config::from_url(url).context("invalid Redis URL")?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
        .build()?;
    client.init().await?;
    Ok(client)
}

/// The test bookkeeping: how often each node's executor started and returned, overall and per
/// worker process.
#[derive(Clone)]
struct Counters {
    client: Client,
    /// `P:test:invocations`, by `<execution>:<node>`: executor calls.
    invocations: String,
    /// `P:test:finished`, by `<execution>:<node>`: executor calls that returned.
    finished: String,
    /// `P:test:workers`, by `NAME` and `NAME:finished`: the same per worker process.
    workers: String,
    /// `P:test:holding`, by `<execution>:<node>`: executors blocked by `--hold-node`.
    holding: String,
    name: String,
}

impl Counters {
    /// Adds one to `field` of `key` and to `worker_field` of the per-worker hash, in one round
    /// trip. A failure is reported on stderr and otherwise ignored: the counters are
    /// bookkeeping, the engine does not depend on them.
    async fn count(&self, key: &str, field: &str, worker_field: &str) {
        let pipeline = self.client.pipeline();
        let queued = async {
            let () = pipeline.hincrby(key, field, 1).await?;
            let () = pipeline.hincrby(&self.workers, worker_field, 1).await?;
            pipeline.all::<Vec<i64>>().await
        };
        match tokio::time::timeout(Duration::from_secs(10), queued).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("spane-test-worker: HINCRBY {key} {field} failed: {e}"),
            Err(_) => eprintln!("spane-test-worker: HINCRBY {key} {field} timed out"),
        }
    }

    async fn started(&self, field: &str) {
        self.count(&self.invocations, field, &self.name).await;
    }

    async fn returned(&self, field: &str) {
        let worker_field = format!("{}:finished", self.name);
        self.count(&self.finished, field, &worker_field).await;
    }

    /// Counts `field` in `P:test:holding`, then never returns (the `--hold-node` fault hook:
    /// the test kills the process once it sees the count).
    async fn hold(&self, field: &str) -> ! {
        self.count(&self.holding, field, "holding").await;
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn registry(args: &Args, counters: Counters) -> NodeRegistry {
    let work = args.work;
    let name = args.name.clone();
    let hold = args.hold.clone();
    let mut registry = NodeRegistry::new();
    registry.register(
        "pass",
        executor_fn(move |ctx| {
            let counters = counters.clone();
            let name = name.clone();
            let hold = hold.clone();
            async move {
                let field = format!("{}:{}", ctx.execution_id, ctx.node_id);
                let held = hold.as_ref().filter(|(node, _)| *node == ctx.node_id);
                if let Some((_, false)) = held {
                    counters.hold(&field).await;
                }
                counters.started(&field).await;
                if let Some((_, true)) = held {
                    counters.hold(&field).await;
                }
                if !work.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(work) => {}
                        () = ctx.cancellation.cancelled() => {
                            counters.returned(&field).await;
                            return Err(NodeError::retryable("cancelled by shutdown"));
                        }
                    }
                }
                counters.returned(&field).await;
                Ok(NodeOutput::new(json!({
                    "node": ctx.node_id,
                    "input": ctx.input_data,
                    "by": name,
                })))
            }
        }),
    );
    registry
}

/// The engine settings: short claim waits, a 5 s drain on shutdown.
fn engine_config() -> EngineConfig {
    EngineConfig::default()
        .claim_wait(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(5))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let counters = Counters {
        client: bookkeeping_client(&args.redis).await?,
        invocations: format!("{}:test:invocations", args.prefix),
        finished: format!("{}:test:finished", args.prefix),
        workers: format!("{}:test:workers", args.prefix),
        holding: format!("{}:test:holding", args.prefix),
        name: args.name.clone(),
    };
    let mut redis = RedisConfig::new(&args.redis)
        .prefix(&args.prefix)
        .lease(args.lease)
        .reclaim_every(args.reclaim_every);
    if let Some(cap) = args.events_cap {
        redis = redis.events_cap(cap);
    }
    if let Some(retention) = args.retention {
        redis = redis.retention(retention);
    }
    let mut builder = WorkflowEngine::builder()
        .registry(registry(&args, counters))
        .config(engine_config().history_reclaim_idle(args.history_reclaim));
    if let Some((url, schema)) = &args.database {
        // PostgreSQL history, written behind by this worker's history writer.
        let store = spane::store::SqlStore::connect(
            url,
            spane::store::SqlStoreOptions::default().schema(schema.clone()),
        )
        .await?;
        builder = builder.store(std::sync::Arc::new(store));
    }
    let engine = builder.redis(redis).await?.build();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    engine.start_workers(args.concurrency.max(1))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    // With --watch-stdin, the end of stdin (the parent died, so its pipe closed) stops the
    // worker as SIGTERM does: a test that is killed leaves no worker behind.
    let watch_stdin = args.watch_stdin;
    let orphaned = async move {
        if watch_stdin {
            let (eof, at_eof) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                let _ = eof.send(());
            });
            let _ = at_eof.await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        _ = orphaned => {}
    }
    let report = engine.shutdown().await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "stopped drained={} released={}",
        report.drained, report.released
    )?;
    out.flush()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if let Some(counter) = args.abort_on {
        metrics::set_global_recorder(AbortOn(counter))
            .map_err(|e| anyhow::anyhow!("installing the fault hook: {e}"))?;
    }
    // Warnings of the engine (reclaimed jobs, refused stale commits, lost leases) on stderr;
    // RUST_LOG overrides the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let name = args.name.clone();
    runtime
        .block_on(run(args))
        .with_context(|| format!("worker {name}"))
}
