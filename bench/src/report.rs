//! Measurements outside the engine (memory, the Redis ceiling, the BullMQ peer) and the reports.

use std::path::Path;
use std::process::Stdio;

use serde::Serialize;
use spane::queue::{RedisConfig, RedisQueue};
use tokio::process::Command;

use crate::workloads::Sizes;
use crate::{Options, RunResult};

/// `redis-benchmark` GET throughput against the same Redis, unpipelined and pipelined.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Ceiling {
    pub(crate) get_rps_p1: f64,
    pub(crate) get_rps_p16: f64,
}

/// Peak resident memory of a process (`VmHWM`), in MiB.
pub(crate) fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU time (user + system) the live threads of process `pid` have used, in microseconds.
///
/// The sum of `/proc/<pid>/task/*/schedstat` (nanoseconds on a CPU, per thread); where that is
/// missing, `utime + stime` of `/proc/<pid>/stat` (clock ticks of 10 ms). Threads that exited are
/// not in the first (the bench's threads live through a run: tokio's workers, the stdin reader).
/// `None` off Linux or once the process is gone.
pub(crate) fn cpu_micros(pid: u32) -> Option<u64> {
    let per_thread = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .map(|tasks| {
            // A thread that ends meanwhile is skipped.
            tasks
                .filter_map(|t| {
                    let path = t.ok()?.path().join("schedstat");
                    let text = std::fs::read_to_string(path).ok()?;
                    text.split_whitespace().next()?.parse::<u64>().ok()
                })
                .sum::<u64>()
        })
        .filter(|ns| *ns > 0);
    if let Some(ns) = per_thread {
        return Some(ns / 1000);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: state,
    // then ..., utime (11th) and stime (12th), in clock ticks (USER_HZ, 100 per second).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000)
}

/// CPU time of every process named `postgres` on this machine, by pid (the server and its
/// backends); empty off Linux.
pub(crate) fn postgres_cpu() -> std::collections::HashMap<u32, u64> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    procs
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "postgres").then_some(())?;
            Some((pid, cpu_micros(pid)?))
        })
        .collect()
}

/// CPU the PostgreSQL processes used between two [`postgres_cpu`] readings (a backend that
/// started meanwhile counts from zero; one that ended meanwhile is not counted).
pub(crate) fn postgres_cpu_since(before: &std::collections::HashMap<u32, u64>) -> u64 {
    postgres_cpu()
        .into_iter()
        .map(|(pid, now)| now.saturating_sub(before.get(&pid).copied().unwrap_or(0)))
        .sum()
}

/// [`cpu_micros`] summed over `pids`; `None` if any of them cannot be read.
pub(crate) fn cpu_micros_of(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&p| cpu_micros(p)).sum()
}

pub(crate) fn header() {
    let cols = [
        "workload",
        "backend",
        "execs",
        "nodes",
        "wall_s",
        "nodes/s",
        "hop_p50",
        "hop_p99",
        "cmds/node",
        "rt/node",
        "redis_us/n",
        "client_us/n",
        "rss_mb",
        "ok",
    ];
    println!(
        "{:<11} {:<9} {:>6} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>7} {}",
        cols[0],
        cols[1],
        cols[2],
        cols[3],
        cols[4],
        cols[5],
        cols[6],
        cols[7],
        cols[8],
        cols[9],
        cols[10],
        cols[11],
        cols[12],
        cols[13]
    );
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
}

pub(crate) fn row(r: &RunResult) {
    println!(
        "{:<11} {:<9} {:>6} {:>7} {:>8.3} {:>10.0} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>7} {}",
        r.workload,
        r.backend,
        r.executions,
        r.nodes,
        r.wall_s,
        r.nodes_per_s,
        opt(r.hop_p50_ms, 3),
        opt(r.hop_p99_ms, 3),
        opt(r.redis_cmds_per_node, 1),
        opt(r.round_trips_per_node, 2),
        opt(r.redis_cpu_us_per_node, 1),
        opt(r.client_cpu_us_per_node, 1),
        opt(r.rss_mb, 1),
        if r.all_completed { "yes" } else { "NO" }
    );
    if r.backend.ends_with("+pg") {
        match r.history_catchup_s {
            Some(s) => println!(
                "    history in PostgreSQL complete {s:.3} s after the last execution ended; PostgreSQL CPU {} µs/node",
                opt(r.pg_cpu_us_per_node, 1)
            ),
            None => println!(
                "    history in PostgreSQL NOT complete 120 s after the last execution ended"
            ),
        }
    }
    if let Some(rows) = &r.rate_latency_ms {
        for [rate, p50, p99, p999] in rows {
            println!(
                "    rate {rate:>6.0}/s  latency p50 {p50:.2} ms  p99 {p99:.2} ms  p99.9 {p999:.2} ms"
            );
        }
    }
}

fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let hp = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match hp.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.to_owned()),
        None => (hp.to_owned(), "6379".to_owned()),
    }
}

async fn redis_benchmark(host: &str, port: &str, pipeline: &str, requests: u32) -> Option<f64> {
    let requests = requests.to_string();
    let out = Command::new("redis-benchmark")
        .args([
            "-h", host, "-p", port, "-t", "get", "-n", &requests, "-c", "50", "-q", "-P", pipeline,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "GET: 97560.98 requests per second, p50=0.263 msec" (after carriage-return progress).
    let line = text
        .split(['\r', '\n'])
        .rev()
        .find(|l| l.starts_with("GET:"))?;
    line.trim_start_matches("GET:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(crate) async fn ceiling(redis: &str, requests: u32) -> Option<Ceiling> {
    let (host, port) = host_port(redis);
    let p1 = redis_benchmark(&host, &port, "1", requests).await;
    let p16 = redis_benchmark(&host, &port, "16", requests).await;
    match (p1, p16) {
        (Some(a), Some(b)) => {
            println!(
                "\nceiling: redis-benchmark GET {a:.0}/s unpipelined, {b:.0}/s with pipeline 16"
            );
            Some(Ceiling {
                get_rps_p1: a,
                get_rps_p16: b,
            })
        }
        _ => {
            println!("\nceiling: redis-benchmark is not installed or failed; skipped");
            None
        }
    }
}

/// The BullMQ peer (`bench/peers/bullmq`), when Node is installed.
pub(crate) async fn peers(o: &Options, s: &Sizes) -> Vec<RunResult> {
    let dir = Path::new("bench/peers/bullmq");
    let node = Command::new("node").arg("--version").output().await;
    if !node.is_ok_and(|n| n.status.success()) || !dir.join("bench.mjs").exists() {
        println!("peer: Node.js or bench/peers/bullmq is missing; the BullMQ peer is skipped");
        return Vec::new();
    }
    if !dir.join("node_modules").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !ok {
            println!("peer: npm ci failed in bench/peers/bullmq; the BullMQ peer is skipped");
            return Vec::new();
        }
    }
    let probe = RedisQueue::connect(RedisConfig::new(&o.redis).prefix("spane-bench-probe"))
        .await
        .ok();
    let mut out = Vec::new();
    for (w, n) in [("b1", s.b1), ("b2", s.b2), ("b3", s.b3), ("b5", s.b5)] {
        if !o.workloads.iter().any(|x| x.starts_with(w)) {
            continue;
        }
        let before = match &probe {
            Some(q) => spane::queue::backend::QueueCounters::server_stats(q)
                .await
                .ok(),
            None => None,
        };
        let prefix = format!(
            "bmq-bench-{}",
            spane::ExecutionId::new().to_string().to_lowercase()
        );
        let run = Command::new("node")
            .args(["bench.mjs", "--redis", &o.redis, "--workload", w])
            .args([
                "--executions",
                &n.to_string(),
                "--concurrency",
                "50",
                "--prefix",
                &prefix,
            ])
            .current_dir(dir)
            .stderr(Stdio::null())
            .output()
            .await;
        let after = match &probe {
            Some(q) => spane::queue::backend::QueueCounters::server_stats(q)
                .await
                .ok(),
            None => None,
        };
        let Ok(run) = run else { continue };
        let text = String::from_utf8_lossy(&run.stdout);
        let Some(line) = text.lines().rev().find(|l| l.trim_start().starts_with('{')) else {
            println!("peer {w}: no result line");
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let mut r = RunResult {
            workload: v["workload"].as_str().unwrap_or(w).to_owned(),
            backend: "bullmq".into(),
            workers: 1,
            executions: v["executions"].as_u64().unwrap_or(0) as usize,
            nodes: v["nodes"].as_u64().unwrap_or(0) as usize,
            wall_s: v["wall_s"].as_f64().unwrap_or(0.0),
            nodes_per_s: v["nodes_per_s"].as_f64().unwrap_or(0.0),
            hop_p50_ms: v["hop_p50_ms"].as_f64(),
            hop_p99_ms: v["hop_p99_ms"].as_f64(),
            all_completed: v["all_completed"].as_bool().unwrap_or(false),
            ..RunResult::default()
        };
        r.executions_per_s = r.executions as f64 / r.wall_s.max(1e-9);
        if let (Some(b), Some(a)) = (before, after)
            && r.nodes > 0
        {
            r.redis_cmds_per_node =
                Some(a.commands.saturating_sub(b.commands) as f64 / r.nodes as f64);
            r.redis_cpu_us_per_node =
                Some(a.cpu_micros.saturating_sub(b.cpu_micros) as f64 / r.nodes as f64);
        }
        row(&r);
        out.push(r);
    }
    out
}

/// Drops a PostgreSQL schema the bench created.
pub(crate) async fn drop_schema(database: &str, schema: &str) {
    use sea_orm::{ConnectionTrait, Database};
    if let Ok(db) = Database::connect(database).await {
        let _ = db
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
}

#[derive(Serialize)]
struct Report<'a> {
    machine: String,
    quick: bool,
    smoke: bool,
    results: &'a [RunResult],
    ceiling: Option<Ceiling>,
    peers: &'a [RunResult],
}

fn machine() -> String {
    // What `nproc` counts; `available_parallelism` can report the host's CPUs in a VM.
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpus} CPUs, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Writes the JSON report and the SVG chart (nodes/s per workload and backend).
pub(crate) fn write(
    o: &Options,
    results: &[RunResult],
    ceiling: Option<Ceiling>,
    peers: &[RunResult],
) -> anyhow::Result<()> {
    let report = Report {
        machine: machine(),
        quick: o.quick,
        smoke: o.smoke,
        results,
        ceiling,
        peers,
    };
    let path = Path::new(&o.out);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    let svg = path.with_extension("svg");
    std::fs::write(&svg, chart(results, peers))?;
    println!("\nwrote {} and {}", path.display(), svg.display());
    Ok(())
}

fn chart(results: &[RunResult], peers: &[RunResult]) -> String {
    let all: Vec<&RunResult> = results
        .iter()
        .chain(peers)
        .filter(|r| r.workload != "b4_rate")
        .collect();
    let max = all.iter().map(|r| r.nodes_per_s).fold(1.0, f64::max);
    let (row_h, left, width) = (18.0, 210.0, 560.0);
    let height = 40.0 + row_h * all.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<text x=\"10\" y=\"18\" font-size=\"13\">node executions per second (higher is better)</text>\n",
        left + width + 90.0
    );
    for (i, r) in all.iter().enumerate() {
        let y = 30.0 + i as f64 * row_h;
        let w = r.nodes_per_s / max * width;
        let color = match r.backend.as_str() {
            "bullmq" => "#999999",
            "embedded" => "#4c78a8",
            "redis+pg" => "#54a24b",
            "redis-2+pg" => "#b279a2",
            _ => "#f58518",
        };
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\">{} · {}</text><rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.0}</text>\n",
            y + 12.0,
            r.workload,
            r.backend,
            row_h - 4.0,
            left + w + 4.0,
            y + 12.0,
            r.nodes_per_s
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// The server counters of `queue`, when its backend keeps them.
pub(crate) async fn server_stats(
    queue: &dyn spane::queue::ExecutionQueue,
) -> Result<Option<spane::queue::backend::ServerStats>, spane::queue::QueueError> {
    match queue.counters() {
        Some(c) => Ok(Some(c.server_stats().await?)),
        None => Ok(None),
    }
}
