//! # Metrics: the worker runtime's numbers on a Prometheus `/metrics` endpoint
//!
//! ```text
//! cargo run -p metrics-example --example metrics
//! cargo run -p metrics-example --example metrics -- --port 9100 --executions 50
//! cargo run -p metrics-example --example metrics -- --forever     # until Ctrl-C
//! ```
//!
//! Installs the Prometheus exporter (`metrics-exporter-prometheus`) as the process's `metrics`
//! recorder, with its HTTP listener on `127.0.0.1:<port>` (default 9000), and prints the URL.
//! SPANE itself installs no recorder; it records through the `metrics` facade, so whatever
//! recorder the application installs gets the numbers.
//!
//! It then runs a small workflow on the embedded engine (no services needed):
//!
//! ```text
//! fetch ──> save
//! ```
//!
//! `fetch` fails its first attempt of every execution with a retryable error and succeeds on
//! the second, so each execution shows one retry. By default 20 executions run, then the
//! program fetches its own `/metrics` once (a plain HTTP/1.0 GET) and prints the `spane_` lines:
//! executions started and finished, node attempts by type and outcome (`fetch` has `retry` and
//! `completed`), retries, executor durations (a summary per node type) and the dead-letter
//! queue size. It exits 0 when every execution completed.
//!
//! With `--forever` it starts an execution every 200 ms until Ctrl-C, so that a Prometheus
//! server (or `curl http://127.0.0.1:9000/metrics`) can scrape it meanwhile.
//!
//! Options: `--port P` (9000), `--executions N` (20), `--forever`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;
use spane::prelude::*;

struct Args {
    port: u16,
    executions: usize,
    forever: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        port: 9000,
        executions: 20,
        forever: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => {
                out.port = it
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port")?;
            }
            "--executions" => {
                out.executions = it
                    .next()
                    .context("--executions needs a value")?
                    .parse()
                    .context("--executions")?;
            }
            "--forever" => out.forever = true,
            other => bail!("unknown option {other:?} (use --port P, --executions N, --forever)"),
        }
    }
    Ok(out)
}

fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(
        "fetch",
        executor_fn(|ctx| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if ctx.attempt == 1 {
                return Err(NodeError::retryable("upstream timed out (first attempt)"));
            }
            Ok(NodeOutput::new(json!({ "item": ctx.input_data["item"] })))
        }),
    );
    r.register(
        "save",
        executor_fn(|ctx| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(NodeOutput::new(json!({ "saved": ctx.input_data["item"] })))
        }),
    );
    r
}

fn workflow() -> WorkflowDefinition {
    WorkflowDefinition::new("fetch-and-save", "Fetch and save")
        .node(NodeDefinition::new("fetch", "fetch").with_config(json!({
            "retryPolicy": { "maxAttempts": 3, "backoff": { "type": "fixed", "delay": 20 } }
        })))
        .node(NodeDefinition::new("save", "save"))
        .edge("fetch", "save")
}

/// `GET /metrics` over a plain TCP connection (HTTP/1.0: the server closes when done).
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!(
            "GET /metrics: {}",
            head.lines().next().unwrap_or("no status line")
        );
    }
    Ok(body.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("installing the Prometheus exporter on {addr}"))?;
    spane::worker::metrics::describe();
    println!("metrics at http://{addr}/metrics");

    let engine = WorkflowEngine::embedded(registry());
    engine.register_workflow(workflow()).await?;
    engine.start_workers(8)?;

    let mut ids = Vec::new();
    if args.forever {
        println!("starting an execution every 200 ms; Ctrl-C to stop");
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {
                    engine.enqueue_workflow("fetch-and-save", json!({ "item": n })).await?;
                    n += 1;
                }
            }
        }
        println!("stopping after {n} executions");
    } else {
        for n in 0..args.executions {
            ids.push(
                engine
                    .enqueue_workflow("fetch-and-save", json!({ "item": n }))
                    .await?,
            );
        }
    }

    let mut failed = 0;
    for id in ids.iter().copied() {
        let record = engine
            .wait_for_execution(id, Duration::from_secs(30))
            .await?;
        if record.status != ExecutionStatus::Completed {
            failed += 1;
        }
    }
    engine.shutdown().await;
    if args.forever {
        return Ok(());
    }

    println!(
        "{} executions ran; spane_ lines of GET /metrics:",
        ids.len()
    );
    let body = tokio::task::spawn_blocking(move || scrape(addr)).await??;
    for line in body.lines().filter(|l| l.starts_with("spane_")) {
        println!("  {line}");
    }
    if failed > 0 {
        bail!("{failed} executions did not complete");
    }
    Ok(())
}
