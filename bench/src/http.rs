//! The HTTP layer's load figures: `cargo xtask bench http [--quick]`.
//!
//! A server process (`spane-bench http-server`: the embedded engine behind `spane_http::router`,
//! 16 workers) and this process as the load. Measures, over keep-alive HTTP/1.1 on loopback:
//! GET `/executions/{id}` per second and its latency, executions started per second through
//! `POST /workflows/{id}/executions`, and SSE fan-out: N subscribers on one execution's event
//! stream, the events per second delivered to all of them and the server's memory per
//! subscriber. Writes `target/bench/http.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use spane::events::LocalBus;
use spane::prelude::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

/// Nodes after the held root in the fan-out workflow: each makes two events.
const FAN_CHAIN: usize = 100;

/// The server process: prints `listening <addr>` and serves until stdin closes.
pub(crate) async fn serve() -> anyhow::Result<()> {
    let hold = Arc::new(Semaphore::new(0));
    let mut registry = crate::registry();
    let h = hold.clone();
    registry.register(
        "hold",
        executor_fn(move |ctx| {
            let h = h.clone();
            async move {
                h.acquire()
                    .await
                    .map_err(|e| NodeError::fatal(e.to_string()))?
                    .forget();
                Ok(NodeOutput::new(ctx.input_data))
            }
        }),
    );
    let engine = WorkflowEngine::builder()
        .registry(registry)
        .event_bus(Arc::new(LocalBus::with_journal(16 * 1024, 100_000)))
        .build();
    engine.start_workers(16)?;
    engine.register_workflow(chain("chain3", "pass", 3)).await?;
    engine
        .register_workflow(chain("fan", "hold", FAN_CHAIN + 1))
        .await?;
    let release = axum::routing::post(move || {
        let hold = hold.clone();
        async move {
            hold.add_permits(1);
            "released"
        }
    });
    let app = spane_http::router(
        engine.clone(),
        spane_http::HttpConfig::new().dashboard(false),
    )
    .route("/bench/release", release);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let stdin_closed = async {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stdin_closed)
        .await?;
    Ok(())
}

/// `a0 -> a1 -> ...`: the first node of type `first`, the others `pass`.
fn chain(id: &str, first: &str, nodes: usize) -> WorkflowDefinition {
    let mut d = WorkflowDefinition::new(id, id);
    for i in 0..nodes {
        let kind = if i == 0 { first } else { "pass" };
        d = d.node(NodeDefinition::new(format!("n{i}"), kind));
        if i > 0 {
            d = d.edge(&format!("n{}", i - 1), &format!("n{i}"));
        }
    }
    d
}

/// Resident memory of a process now (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[derive(Debug, Serialize)]
struct Rest {
    endpoint: String,
    concurrency: usize,
    requests: usize,
    errors: usize,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Fanout {
    subscribers: usize,
    events_per_subscriber: usize,
    delivered: usize,
    connect_s: f64,
    deliver_s: f64,
    events_per_s: f64,
    server_rss_before_mb: f64,
    server_rss_with_subscribers_mb: f64,
    kib_per_subscriber: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    quick: bool,
    rest: Vec<Rest>,
    fanout: Vec<Fanout>,
    server_peak_rss_mb: f64,
}

struct ServerProcess {
    child: Child,
    url: String,
    pid: u32,
}

async fn start_server() -> anyhow::Result<ServerProcess> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("http-server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the server process")?;
    let pid = child.id().context("server pid")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the server did not start within 30 s")??
        .context("the server exited")?;
    let addr = line
        .strip_prefix("listening ")
        .context("unexpected server output")?;
    Ok(ServerProcess {
        child,
        url: format!("http://{addr}"),
        pid,
    })
}

/// `concurrency` loops sending `request` for `duration`; their latencies.
async fn hammer<F, Fut>(concurrency: usize, duration: Duration, request: F) -> (Vec<f64>, usize)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if request().await {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    all.sort_by(f64::total_cmp);
    (all, errors)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn rest(client: &reqwest::Client, url: &str, quick: bool) -> anyhow::Result<Vec<Rest>> {
    let duration = Duration::from_secs(if quick { 3 } else { 10 });
    let concurrency = 16;
    // One completed execution to read.
    let started: Value = client
        .post(format!("{url}/workflows/chain3/executions"))
        .json(&json!({ "data": { "order": 1 } }))
        .send()
        .await?
        .json()
        .await?;
    let id = started["executionId"]
        .as_str()
        .context("executionId")?
        .to_owned();
    let get_url = format!("{url}/executions/{id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r: Value = client.get(&get_url).send().await?.json().await?;
        if r["status"] == "completed" {
            break;
        }
        if Instant::now() > deadline {
            bail!("execution {id} did not complete");
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // polling another process
    }
    let mut out = Vec::new();
    let (c, u) = (client.clone(), get_url.clone());
    let (lat, errors) = hammer(concurrency, duration, move || {
        let (c, u) = (c.clone(), u.clone());
        async move {
            match c.get(&u).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    out.push(Rest {
        endpoint: "GET /executions/{id}".into(),
        concurrency,
        requests: lat.len(),
        errors,
        per_s: lat.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    });
    let (c, u) = (client.clone(), format!("{url}/workflows/chain3/executions"));
    let (lat, errors) = hammer(concurrency, duration, move || {
        let (c, u) = (c.clone(), u.clone());
        async move {
            match c.post(&u).json(&json!({ "data": { "n": 1 } })).send().await {
                Ok(r) => r.status().as_u16() == 202 && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    out.push(Rest {
        endpoint: "POST /workflows/{id}/executions (3-node chain)".into(),
        concurrency,
        requests: lat.len(),
        errors,
        per_s: lat.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    });
    Ok(out)
}

/// Reads one SSE stream until `workflow:status` `completed`; returns the number of event
/// messages after the snapshot. Signals `connected` once the snapshot arrived.
async fn subscriber(
    client: reqwest::Client,
    url: String,
    connected: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<usize> {
    let response = client
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = 0;
    let mut snapshot = false;
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            match name {
                "snapshot" if !snapshot => {
                    snapshot = true;
                    let _ = connected.send(()).await;
                }
                "node:progress" => events += 1,
                "workflow:status" => {
                    events += 1;
                    if block.contains("\"status\":\"completed\"") {
                        return Ok(events);
                    }
                }
                "dropped" => bail!("subscriber dropped: {block}"),
                _ => {}
            }
        }
    }
    bail!("stream ended after {events} events")
}

async fn fanout(
    client: &reqwest::Client,
    server: &ServerProcess,
    subscribers: usize,
) -> anyhow::Result<Fanout> {
    let url = &server.url;
    let started: Value = client
        .post(format!("{url}/workflows/fan/executions"))
        .send()
        .await?
        .json()
        .await?;
    let id = started["executionId"].as_str().context("executionId")?;
    let before = rss_kib(server.pid).unwrap_or(0.0);
    let (tx, mut rx) = tokio::sync::mpsc::channel(subscribers);
    let connect = Instant::now();
    let tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            tokio::spawn(subscriber(
                client.clone(),
                format!("{url}/executions/{id}/events"),
                tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    for _ in 0..subscribers {
        rx.recv().await.context("a subscriber failed to connect")?;
    }
    let connect_s = connect.elapsed().as_secs_f64();
    let with = rss_kib(server.pid).unwrap_or(0.0);
    let deliver = Instant::now();
    client.post(format!("{url}/bench/release")).send().await?;
    let mut delivered = 0;
    let mut per = 0;
    for t in tasks {
        let n = t.await??;
        per = per.max(n);
        delivered += n;
    }
    let deliver_s = deliver.elapsed().as_secs_f64();
    Ok(Fanout {
        subscribers,
        events_per_subscriber: per,
        delivered,
        connect_s,
        deliver_s,
        events_per_s: delivered as f64 / deliver_s,
        server_rss_before_mb: before / 1024.0,
        server_rss_with_subscribers_mb: with / 1024.0,
        kib_per_subscriber: (with - before) / subscribers as f64,
    })
}

/// The client side: starts the server process, runs the measurements, prints and writes them.
pub(crate) async fn run(quick: bool) -> anyhow::Result<()> {
    let mut server = start_server().await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()?;
    println!(
        "HTTP load against {} (server pid {})",
        server.url, server.pid
    );
    let rest = rest(&client, &server.url, quick).await?;
    for r in &rest {
        println!(
            "  {:<48} c={:<3} {:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  ({} errors)",
            r.endpoint, r.concurrency, r.per_s, r.p50_ms, r.p99_ms, r.errors
        );
    }
    let sizes: &[usize] = if quick {
        &[100, 1000]
    } else {
        &[100, 1000, 5000]
    };
    let mut fan = Vec::new();
    for &n in sizes {
        let f = fanout(&client, &server, n).await?;
        println!(
            "  SSE fan-out: {:>5} subscribers x {} events: {:>9.0} events/s delivered, connect {:.2} s, {:.1} KiB server memory per subscriber",
            f.subscribers,
            f.events_per_subscriber,
            f.events_per_s,
            f.connect_s,
            f.kib_per_subscriber
        );
        fan.push(f);
    }
    let peak = crate::report::peak_rss_mb(server.pid).unwrap_or(0.0);
    drop(server.child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), server.child.wait()).await;
    let report = Report {
        quick,
        rest,
        fanout: fan,
        server_peak_rss_mb: peak,
    };
    println!("  server peak RSS {peak:.1} MiB");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/http.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("wrote target/bench/http.json");
    Ok(())
}
