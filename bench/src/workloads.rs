//! The workloads and the backends they run on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;
use spane::prelude::*;
use spane::queue::backend::ServerStats;
use spane::queue::{RedisConfig, RedisQueue};

use crate::report;
use crate::{Options, RunResult, WorkerProc, registry};

pub(crate) const WORKLOADS: [&str; 5] =
    ["b1_chain", "b2_fanout", "b3_latency", "b4_rate", "b5_wide"];

/// Workload sizes (`--quick` shrinks them).
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    pub(crate) b1: usize,
    pub(crate) b2: usize,
    pub(crate) b3: usize,
    pub(crate) b4_rates: Vec<usize>,
    pub(crate) b4_secs: f64,
    pub(crate) b5: usize,
}

impl Sizes {
    pub(crate) fn new(quick: bool, smoke: bool) -> Self {
        if smoke {
            return Self {
                b1: 10,
                b2: 2,
                b3: 3,
                b4_rates: vec![50],
                b4_secs: 0.2,
                b5: 1,
            };
        }
        if quick {
            Self {
                b1: 200,
                b2: 40,
                b3: 20,
                b4_rates: vec![100, 300],
                b4_secs: 1.0,
                b5: 5,
            }
        } else {
            Self {
                b1: 1000,
                b2: 200,
                b3: 50,
                b4_rates: vec![100, 300, 600, 1000],
                b4_secs: 2.0,
                b5: 20,
            }
        }
    }
}

fn chain(n: usize) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new("chain10", "chain10");
    for i in 0..n {
        wf = wf.node(NodeDefinition::new(format!("n{i}"), "pass"));
        if i > 0 {
            wf = wf.edge(&format!("n{}", i - 1), &format!("n{i}"));
        }
    }
    wf
}

fn fan(id: &str, width: usize) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new(id, id)
        .node(NodeDefinition::new("start", "pass"))
        .node(NodeDefinition::new("join", "pass"));
    for i in 0..width {
        let m = format!("m{i}");
        wf = wf
            .node(NodeDefinition::new(&m, "pass"))
            .edge("start", &m)
            .edge(&m, "join");
    }
    wf
}

/// Whether every execution completed with every node run exactly once.
fn all_once(records: &[ExecutionRecord], nodes: usize) -> bool {
    records.iter().all(|r| {
        r.status == ExecutionStatus::Completed
            && r.node_results.len() == nodes
            && r.node_results
                .values()
                .all(|n| n.status == NodeStatus::Completed && n.attempts == 1)
    })
}

async fn run_batch(
    engine: &WorkflowEngine,
    wf: &str,
    n: usize,
) -> anyhow::Result<Vec<ExecutionRecord>> {
    let ids: Vec<ExecutionId> = stream::iter(0..n)
        .map(|i| engine.enqueue_workflow(wf, json!({ "i": i })))
        .buffered(64)
        .try_collect()
        .await?;
    let records = stream::iter(ids)
        .map(|id| engine.wait_for_execution(id, Duration::from_secs(600)))
        .buffered(512)
        .try_collect()
        .await?;
    Ok(records)
}

/// Runs a few chains before measuring on the embedded backend, so that its first workload does
/// not pay for the process's warm-up (thread pool, allocator arenas); not counted anywhere.
/// (The Redis backends start fresh worker processes for every workload, all alike, and count
/// the workers' round trips over their whole life, so they run no warm-up.)
async fn warm_up(engine: &WorkflowEngine) -> anyhow::Result<()> {
    run_batch(engine, "chain10", 100).await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs one workload on `engine`; fills everything but the backend's costs.
async fn workload(engine: &WorkflowEngine, name: &str, s: &Sizes) -> anyhow::Result<RunResult> {
    let mut r = RunResult {
        workload: name.to_owned(),
        ..RunResult::default()
    };
    let t0 = Instant::now();
    match name {
        "b1_chain" => {
            let recs = run_batch(engine, "chain10", s.b1).await?;
            r.all_completed = all_once(&recs, 10);
            (r.executions, r.nodes) = (s.b1, s.b1 * 10);
        }
        "b2_fanout" => {
            let recs = run_batch(engine, "fan50", s.b2).await?;
            r.all_completed = all_once(&recs, 52);
            (r.executions, r.nodes) = (s.b2, s.b2 * 52);
        }
        "b5_wide" => {
            let recs = run_batch(engine, "wide1000", s.b5).await?;
            r.all_completed = all_once(&recs, 1002);
            (r.executions, r.nodes) = (s.b5, s.b5 * 1002);
        }
        "b3_latency" => {
            let mut hops = Vec::with_capacity(s.b3);
            let mut ok = true;
            for i in 0..s.b3 {
                let t = Instant::now();
                let id = engine
                    .enqueue_workflow("chain10", json!({ "i": i }))
                    .await?;
                let rec = engine
                    .wait_for_execution(id, Duration::from_secs(60))
                    .await?;
                hops.push(t.elapsed().as_secs_f64() * 1000.0 / 10.0);
                ok &= all_once(std::slice::from_ref(&rec), 10);
            }
            hops.sort_by(f64::total_cmp);
            r.hop_p50_ms = Some(percentile(&hops, 50.0));
            r.hop_p99_ms = Some(percentile(&hops, 99.0));
            r.all_completed = ok;
            (r.executions, r.nodes) = (s.b3, s.b3 * 10);
        }
        "b4_rate" => {
            // Open loop: executions arrive on a fixed schedule whatever the engine does.
            let mut rows = Vec::new();
            let mut ok = true;
            for &rate in &s.b4_rates {
                let count = (rate as f64 * s.b4_secs) as usize;
                let interval = Duration::from_secs_f64(1.0 / rate as f64);
                let start = tokio::time::Instant::now();
                let mut waits = Vec::with_capacity(count);
                for i in 0..count {
                    tokio::time::sleep_until(start + interval * i as u32).await;
                    let e = engine.clone();
                    waits.push(tokio::spawn(async move {
                        let t = Instant::now();
                        let id = e.enqueue_workflow("chain10", json!({ "i": i })).await?;
                        let rec = e.wait_for_execution(id, Duration::from_secs(120)).await?;
                        Ok::<_, spane::Error>((t.elapsed().as_secs_f64() * 1000.0, rec))
                    }));
                }
                let mut lat = Vec::with_capacity(count);
                for w in waits {
                    let (ms, rec) = w.await??;
                    ok &= all_once(std::slice::from_ref(&rec), 10);
                    lat.push(ms);
                }
                lat.sort_by(f64::total_cmp);
                rows.push([
                    rate as f64,
                    percentile(&lat, 50.0),
                    percentile(&lat, 99.0),
                    percentile(&lat, 99.9),
                ]);
                r.executions += count;
            }
            r.nodes = r.executions * 10;
            r.rate_latency_ms = Some(rows);
            r.all_completed = ok;
        }
        other => anyhow::bail!("unknown workload {other}"),
    }
    r.wall_s = t0.elapsed().as_secs_f64();
    r.nodes_per_s = r.nodes as f64 / r.wall_s.max(1e-9);
    r.executions_per_s = r.executions as f64 / r.wall_s.max(1e-9);
    Ok(r)
}

async fn register_all(engine: &WorkflowEngine) -> anyhow::Result<()> {
    engine.register_workflow(chain(10)).await?;
    engine.register_workflow(fan("fan50", 50)).await?;
    engine.register_workflow(fan("wide1000", 1000)).await?;
    Ok(())
}

fn per_node(
    before: Option<ServerStats>,
    after: Option<ServerStats>,
    nodes: usize,
) -> (Option<f64>, Option<f64>) {
    match (before, after) {
        (Some(b), Some(a)) if nodes > 0 => (
            Some(a.commands.saturating_sub(b.commands) as f64 / nodes as f64),
            Some(a.cpu_micros.saturating_sub(b.cpu_micros) as f64 / nodes as f64),
        ),
        _ => (None, None),
    }
}

/// CPU microseconds per node between two readings of [`report::cpu_micros_of`].
fn cpu_per_node(before: Option<u64>, after: Option<u64>, nodes: usize) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if nodes > 0 => Some(a.saturating_sub(b) as f64 / nodes as f64),
        _ => None,
    }
}

async fn run_backend(o: &Options, backend: &str, s: &Sizes) -> anyhow::Result<Vec<RunResult>> {
    let mut out = Vec::new();
    if backend == "embedded" {
        let engine = WorkflowEngine::embedded(registry());
        register_all(&engine).await?;
        engine.start_workers(50)?;
        warm_up(&engine).await?;
        for w in WORKLOADS
            .iter()
            .filter(|w| o.workloads.iter().any(|x| x == *w))
        {
            let pid = [std::process::id()];
            let cpu = report::cpu_micros_of(&pid);
            let mut r = workload(&engine, w, s).await?;
            r.client_cpu_us_per_node = cpu_per_node(cpu, report::cpu_micros_of(&pid), r.nodes);
            r.backend = "embedded".into();
            r.workers = 1;
            r.rss_mb = report::peak_rss_mb(std::process::id());
            report::row(&r);
            out.push(r);
        }
        engine.shutdown().await;
        return Ok(out);
    }
    let (workers, history) = match backend {
        "redis-1" => (1, false),
        "redis-2" => (2, false),
        "redis+pg" => (1, true),
        "redis-2+pg" => (2, true),
        other => anyhow::bail!("unknown backend {other}"),
    };
    for w in WORKLOADS
        .iter()
        .filter(|w| o.workloads.iter().any(|x| x == *w))
    {
        let prefix = format!(
            "spane-bench-{}",
            ExecutionId::new().to_string().to_lowercase()
        );
        let history_url = history.then_some(o.database.as_str());
        let mut procs = Vec::new();
        for _ in 0..workers {
            procs.push(WorkerProc::start(&prefix, history_url).await?);
        }
        let mut builder = WorkflowEngine::builder().registry(registry());
        if history {
            let schema = prefix.replace('-', "_");
            let store = spane::store::SqlStore::connect(
                &o.database,
                spane::store::SqlStoreOptions::default().schema(schema),
            )
            .await
            .context("PostgreSQL for the redis+pg backend")?;
            builder = builder.store(Arc::new(store));
        }
        let engine = builder
            .redis(RedisConfig::new(&o.redis).prefix(&prefix))
            .await?
            .build();
        register_all(&engine).await?;
        // This process (enqueues and waits) and the workers, over the run only.
        let pids: Vec<u32> = std::iter::once(std::process::id())
            .chain(procs.iter().filter_map(WorkerProc::pid))
            .collect();
        let before = crate::report::server_stats(engine.queue().as_ref()).await?;
        let cpu = report::cpu_micros_of(&pids);
        let pg_before = report::postgres_cpu();
        let mut r = workload(&engine, w, s).await?;
        if history {
            // The history writer's work counts: CPU and Redis figures are taken once it has
            // caught up.
            r.history_catchup_s = history_catchup(&engine, r.executions).await?;
            let pg = report::postgres_cpu_since(&pg_before);
            r.pg_cpu_us_per_node = Some(pg as f64 / r.nodes.max(1) as f64);
        }
        r.client_cpu_us_per_node = cpu_per_node(cpu, report::cpu_micros_of(&pids), r.nodes);
        let after = crate::report::server_stats(engine.queue().as_ref()).await?;
        let (mut trips, mut rss) = (0, 0.0f64);
        for p in procs {
            let (t, m) = p.stop().await;
            trips += t;
            rss = rss.max(m);
        }
        (r.redis_cmds_per_node, r.redis_cpu_us_per_node) = per_node(before, after, r.nodes);
        r.round_trips_per_node = Some(trips as f64 / r.nodes.max(1) as f64);
        r.rss_mb = Some(rss);
        r.backend = backend.to_owned();
        r.workers = workers;
        report::row(&r);
        out.push(r);
        engine.shutdown().await;
        if let Ok(q) = RedisQueue::connect(RedisConfig::new(&o.redis).prefix(&prefix)).await {
            let _ = q.delete_all_keys().await;
        }
        if history {
            report::drop_schema(&o.database, &prefix.replace('-', "_")).await;
        }
    }
    Ok(out)
}

/// Seconds from now until the store holds `executions` executions in a final status (the
/// write-behind history caught up with the workload); `None` when it did not within 120 s.
async fn history_catchup(
    engine: &WorkflowEngine,
    executions: usize,
) -> anyhow::Result<Option<f64>> {
    let history = engine
        .store()
        .history()
        .context("the redis+pg store keeps history")?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let finished: u64 = history
            .count_by_status(None)
            .await?
            .iter()
            .filter(|(status, _)| status.is_terminal())
            .map(|(_, n)| n)
            .sum();
        if finished >= executions as u64 {
            return Ok(Some(start.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// Every backend, then the ceiling and the peer; writes the reports.
pub(crate) async fn run_all(o: Options) -> anyhow::Result<()> {
    let mut s = Sizes::new(o.quick, o.smoke);
    if !o.rates.is_empty() {
        s.b4_rates.clone_from(&o.rates);
    }
    if let Some(secs) = o.rate_secs {
        s.b4_secs = secs;
    }
    report::header();
    let mut results = Vec::new();
    for b in &o.backends {
        match run_backend(&o, b, &s).await {
            Ok(rs) => results.extend(rs),
            Err(e) => eprintln!("backend {b}: {e:#}"),
        }
    }
    let ceiling = report::ceiling(&o.redis, if o.smoke { 5_000 } else { 200_000 }).await;
    let peers = if o.peers && !o.smoke {
        report::peers(&o, &s).await
    } else {
        println!("peer: skipped (--no-peers or --smoke)");
        Vec::new()
    };
    report::write(&o, &results, ceiling, &peers)
}
