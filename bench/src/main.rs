//! # SPANE benchmarks
//!
//! ```text
//! cargo xtask bench [--quick] [--backend embedded|redis|all|redis-1|redis-2|redis+pg|redis-2+pg] [--out FILE]
//! cargo xtask bench http [--quick]      # the HTTP layer: REST throughput, SSE fan-out
//! ```
//!
//! Runs the workloads of `docs/BENCHMARKS.md` on the embedded backend, on Redis with one and
//! two worker processes, and on Redis with PostgreSQL write-behind history; measures Redis
//! commands, CPU and client round trips per node execution, the CPU of the bench's own
//! processes (enqueuing and workers) per node execution, worker memory, the
//! `redis-benchmark` ceiling and, when Node is installed, the BullMQ peer
//! (`bench/peers/bullmq`), all in one run. Writes a table, `target/bench/latest.json` and
//! `target/bench/latest.svg`. Speed is measured here, never asserted by tests.

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// The bench's processes (the enqueuing one and the worker processes) allocate with mimalloc,
/// as services built on tokio commonly do: with the system allocator, `malloc`/`free` took about
/// a quarter of a worker's CPU in profiles. The engine itself does not choose an allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod http;
mod report;
mod workloads;

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use spane::prelude::*;
use spane::queue::RedisConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One measured run, one object of `"results"`.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct RunResult {
    pub(crate) workload: String,
    pub(crate) backend: String,
    pub(crate) workers: usize,
    pub(crate) executions: usize,
    pub(crate) nodes: usize,
    pub(crate) wall_s: f64,
    pub(crate) nodes_per_s: f64,
    pub(crate) executions_per_s: f64,
    pub(crate) hop_p50_ms: Option<f64>,
    pub(crate) hop_p99_ms: Option<f64>,
    /// b4 only: `[rate, p50, p99, p99.9]` per arrival rate.
    pub(crate) rate_latency_ms: Option<Vec<[f64; 4]>>,
    pub(crate) redis_cmds_per_node: Option<f64>,
    pub(crate) round_trips_per_node: Option<f64>,
    pub(crate) redis_cpu_us_per_node: Option<f64>,
    /// CPU time (user + system) of the bench's own processes per node: the enqueuing and
    /// waiting process and the worker processes (one process for `embedded`), during the run.
    pub(crate) client_cpu_us_per_node: Option<f64>,
    pub(crate) rss_mb: Option<f64>,
    pub(crate) all_completed: bool,
    /// `redis+pg` and `redis-2+pg` only: seconds from the last execution's end until PostgreSQL held every
    /// execution in its final status (`None`: not within 120 s).
    pub(crate) history_catchup_s: Option<f64>,
    /// `+pg` backends only: CPU time of the PostgreSQL server's processes per node, over the
    /// run and the history's catch-up (every `postgres` process on this machine: the bench
    /// assumes it has the server to itself).
    pub(crate) pg_cpu_us_per_node: Option<f64>,
}

/// What `--backend` takes.
const BACKEND_CHOICES: &str = "embedded|redis|all|redis-1|redis-2|redis+pg|redis-2+pg";

/// Options of a bench run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    /// Tiny sizes, no peer: checks that the bench runs and writes a complete report.
    pub(crate) smoke: bool,
    pub(crate) peers: bool,
    pub(crate) backends: Vec<String>,
    /// The workloads to run (`--workload`, repeatable; default all).
    pub(crate) workloads: Vec<String>,
    /// b4's arrival rates (`--rate`, repeatable; default 100, 300, 600, 1,000 per second).
    pub(crate) rates: Vec<usize>,
    /// How long b4 holds each rate (`--rate-secs`; default 2 s).
    pub(crate) rate_secs: Option<f64>,
    pub(crate) out: String,
    pub(crate) redis: String,
    pub(crate) database: String,
}

fn env_url(names: [&str; 2], default: &str) -> String {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .unwrap_or_else(|| default.to_owned())
}

fn parse() -> anyhow::Result<(bool, Options, Vec<String>)> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let worker = args.first().is_some_and(|a| a == "worker");
    if worker {
        args.remove(0);
        return Ok((true, default_options(), args));
    }
    let mut o = default_options();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--smoke" => o.smoke = true,
            "--no-peers" => o.peers = false,
            "--backend" => {
                let b = it
                    .next()
                    .with_context(|| format!("--backend needs {BACKEND_CHOICES}"))?;
                o.backends = match b.as_str() {
                    "embedded" => vec!["embedded".into()],
                    "redis" => vec![
                        "redis-1".into(),
                        "redis-2".into(),
                        "redis+pg".into(),
                        "redis-2+pg".into(),
                    ],
                    "all" => default_options().backends,
                    one @ ("redis-1" | "redis-2" | "redis+pg" | "redis-2+pg") => vec![one.into()],
                    other => anyhow::bail!("unknown backend {other:?}"),
                }
            }
            "--out" => o.out = it.next().context("--out needs a file")?,
            "--workload" => {
                let w = it
                    .next()
                    .context("--workload needs a name such as b1_chain")?;
                if !workloads::WORKLOADS.contains(&w.as_str()) {
                    anyhow::bail!(
                        "unknown workload {w:?}; the workloads are {}",
                        workloads::WORKLOADS.join(", ")
                    );
                }
                if o.workloads.len() == workloads::WORKLOADS.len() {
                    o.workloads.clear();
                }
                o.workloads.push(w);
            }
            "--rate" => {
                let rate = it.next().context("--rate needs executions per second")?;
                o.rates.push(
                    rate.parse()
                        .ok()
                        .filter(|&r: &usize| r > 0)
                        .with_context(|| format!("--rate {rate:?}: a whole number above 0"))?,
                );
            }
            "--rate-secs" => {
                let secs = it.next().context("--rate-secs needs seconds")?;
                o.rate_secs = Some(
                    secs.parse()
                        .ok()
                        .filter(|&s: &f64| s > 0.0 && s <= 3600.0)
                        .with_context(|| {
                            format!("--rate-secs {secs:?}: seconds, above 0 and at most 3600")
                        })?,
                );
            }
            other => anyhow::bail!(
                "unknown option {other:?}\nusage: cargo xtask bench [--quick | --smoke] [--no-peers] [--backend {BACKEND_CHOICES}] [--workload NAME]... [--rate N]... [--rate-secs S] [--out FILE]"
            ),
        }
    }
    Ok((false, o, Vec::new()))
}

fn default_options() -> Options {
    Options {
        quick: false,
        smoke: false,
        peers: true,
        backends: vec![
            "embedded".into(),
            "redis-1".into(),
            "redis-2".into(),
            "redis+pg".into(),
            "redis-2+pg".into(),
        ],
        workloads: workloads::WORKLOADS
            .iter()
            .map(|w| (*w).to_owned())
            .collect(),
        rates: Vec::new(),
        rate_secs: None,
        out: "target/bench/latest.json".into(),
        redis: env_url(["SPANE_REDIS_URL", "REDIS_URL"], "redis://127.0.0.1:6379"),
        database: env_url(
            ["SPANE_DATABASE_URL", "DATABASE_URL"],
            "postgres://postgres@127.0.0.1:5432/test",
        ),
    }
}

/// The node types every workload uses: trivial pass-through.
pub(crate) fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
    );
    r
}

/// Worker process: `spane-bench worker --prefix P [--history URL]`; stops when stdin closes and
/// prints its round trips and peak memory.
async fn run_worker(args: Vec<String>, o: Options) -> anyhow::Result<()> {
    let mut prefix = None;
    let mut history = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--prefix" => prefix = it.next(),
            "--history" => history = it.next(),
            other => anyhow::bail!("unknown worker option {other:?}"),
        }
    }
    let prefix = prefix.context("--prefix")?;
    let mut config = spane::EngineConfig::default().claim_wait(Duration::from_millis(200));
    // For comparing history settings in one session; the bench's figures use the default.
    if let Some(ms) = std::env::var("SPANE_BENCH_HISTORY_LINGER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.history_linger(Duration::from_millis(ms));
    }
    let mut builder = WorkflowEngine::builder()
        .registry(registry())
        .config(config);
    if let Some(url) = history {
        let schema = prefix.replace('-', "_");
        let store = spane::store::SqlStore::connect(
            &url,
            spane::store::SqlStoreOptions::default().schema(schema),
        )
        .await?;
        builder = builder.store(Arc::new(store));
    }
    let engine = builder
        .redis(RedisConfig::new(&o.redis).prefix(&prefix))
        .await?
        .build();
    // Slots of the worker process (default 50), for comparing in one session.
    let slots = std::env::var("SPANE_BENCH_WORKER_SLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    engine.start_workers(slots)?;
    println!("ready");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
    let rss = report::peak_rss_mb(std::process::id()).unwrap_or(0.0);
    engine.shutdown().await;
    println!(
        "round_trips={} rss_mb={rss:.1}",
        engine
            .queue()
            .counters()
            .map_or(0, |c| c.stats().round_trips)
    );
    Ok(())
}

/// A worker process of the bench.
pub(crate) struct WorkerProc {
    child: Child,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl WorkerProc {
    /// Starts `spane-bench worker` and waits for `ready`.
    pub(crate) async fn start(prefix: &str, history: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["worker", "--prefix", prefix])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(h) = history {
            cmd.args(["--history", h]);
        }
        let mut child = cmd.spawn()?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
        while let Some(line) = out.next_line().await? {
            if line == "ready" {
                return Ok(Self { child, out });
            }
        }
        anyhow::bail!("worker exited before it was ready")
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops it; returns its round trips and peak memory.
    pub(crate) async fn stop(mut self) -> (u64, f64) {
        drop(self.child.stdin.take());
        let (mut trips, mut rss) = (0, 0.0);
        while let Ok(Some(line)) = self.out.next_line().await {
            for part in line.split(' ') {
                if let Some(v) = part.strip_prefix("round_trips=") {
                    trips = v.parse().unwrap_or(0);
                }
                if let Some(v) = part.strip_prefix("rss_mb=") {
                    rss = v.parse().unwrap_or(0.0);
                }
            }
        }
        let _ = self.child.wait().await;
        (trips, rss)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("http-server") => return exit(http::serve().await),
        Some("http") => {
            let rest: Vec<String> = args.collect();
            if let Some(bad) = rest.iter().find(|a| *a != "--quick") {
                eprintln!(
                    "spane-bench: unknown option {bad:?}\nusage: cargo xtask bench http [--quick]"
                );
                return ExitCode::from(2);
            }
            return exit(http::run(!rest.is_empty()).await);
        }
        _ => {}
    }
    let (worker, options, rest) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("spane-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if worker {
        run_worker(rest, options).await
    } else {
        workloads::run_all(options).await
    };
    exit(result)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spane-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
