//! The SPANE server: the REST API, server-sent events, `/metrics` and the dashboard of
//! `spane-http`, over an engine with two demo workflows.
//!
//! ```sh
//! cargo run -p server-example -- --port 8080                 # embedded: no services needed
//! cargo run -p server-example -- --redis redis://127.0.0.1:6379 --database postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Then open <http://127.0.0.1:8080/>. `curl -X POST localhost:8080/webhooks/orders -d
//! '{"total": 50}'` starts an order through its webhook trigger. Options: `--port N` (8080), `--host ADDR` (127.0.0.1),
//! `--redis URL`, `--database URL` (PostgreSQL or SQLite history; the execution list needs a
//! store that keeps history, which the embedded store does), `--token T` (bearer token),
//! `--no-demo` (register nothing, start nothing).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod demo;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use spane::events::LocalBus;
use spane::prelude::*;
use spane::queue::RedisConfig;
use spane::store::{SqlStore, SqlStoreOptions};
use spane_http::HttpConfig;

struct Options {
    host: String,
    port: u16,
    redis: Option<String>,
    database: Option<String>,
    token: Option<String>,
    demo: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: 8080,
        redis: None,
        database: None,
        token: None,
        demo: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                o.port = v
                    .parse()
                    .with_context(|| format!("--port {v:?} is not a port number"))?;
            }
            "--host" => o.host = value("--host")?,
            "--redis" => o.redis = Some(value("--redis")?),
            "--database" => o.database = Some(value("--database")?),
            "--token" => o.token = Some(value("--token")?),
            "--no-demo" => o.demo = false,
            "-h" | "--help" => {
                println!(
                    "spane-server [--port N] [--host ADDR] [--redis URL] [--database URL] [--token T] [--no-demo]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?} (try --help)"),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let o = options()?;
    let mut builder = WorkflowEngine::builder().registry(demo::registry());
    if let Some(url) = &o.database {
        let store = SqlStore::connect(url, SqlStoreOptions::default())
            .await
            .with_context(|| format!("connecting to the database {url}"))?;
        builder = builder.store(Arc::new(store));
    }
    builder = match &o.redis {
        Some(url) => builder
            .redis(RedisConfig::new(url.clone()))
            .await
            .with_context(|| format!("connecting to Redis at {url}"))?,
        // A journal of the last 100,000 events, so that a browser that reconnects resumes.
        None => builder.event_bus(Arc::new(LocalBus::with_journal(16 * 1024, 100_000))),
    };
    let engine = builder.build();
    engine.start_workers(16)?;

    if o.demo {
        for text in [demo::ORDERS, demo::IMPORT, demo::PAYMENT, demo::CHECKOUT] {
            let definition = WorkflowDefinition::from_json(text)?;
            let id = definition.id.clone();
            let version = engine.register_workflow(definition).await?;
            tracing::info!(workflow = %id, version, "demo workflow registered");
        }
        // A few executions to look at: two orders, one import that fails into the DLQ.
        engine
            .enqueue_workflow("order-processing", json!({ "orderId": 1, "total": 240 }))
            .await?;
        engine
            .enqueue_workflow("order-processing", json!({ "orderId": 2, "total": 4200 }))
            .await?;
        engine
            .enqueue_workflow("nightly-import", json!({ "fail": true }))
            .await?;
        // A checkout whose payment runs as a sub-workflow, and a schedule made through the
        // API (the import's nightly schedule comes from its definition).
        engine
            .enqueue_workflow("checkout", json!({ "cart": ["book", "lamp"], "total": 64 }))
            .await?;
        engine
            .upsert_schedule(
                spane::triggers::ScheduleSpec::cron("order-processing", "*/15 * * * *")
                    .data(json!({ "orderId": 0, "total": 10, "probe": true })),
            )
            .await?;
    }

    let mut config = HttpConfig::new().prometheus(spane_http::install_prometheus()?);
    if let Some(token) = &o.token {
        config = config.bearer_token(token.clone());
    }
    let app = spane_http::router(engine.clone(), config);
    let listener = tokio::net::TcpListener::bind((o.host.as_str(), o.port))
        .await
        .with_context(|| format!("binding {}:{}", o.host, o.port))?;
    println!(
        "SPANE server on http://{}/ (dashboard), API at /openapi.json, metrics at /metrics",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let report = tokio::time::timeout(Duration::from_secs(35), engine.shutdown()).await;
    tracing::info!(?report, "engine stopped");
    Ok(())
}
