//! `spane`: the operator's command-line tool.
//!
//! ```text
//! spane --redis redis://127.0.0.1:6379 --prefix spane explain <execution>
//! spane rerun <execution> --from <node> [--input '{"x":1}'] [--latest]
//! spane retry <execution>
//! spane --database postgres://localhost/test executions [--status failed] [--limit 20]
//! spane dlq [--limit 50]
//! ```
//!
//! It connects to the Redis (and optionally the PostgreSQL or SQLite store) a deployment uses,
//! runs no workers, and prints readable, coloured output (`--color never` or `NO_COLOR` for
//! none, `--json` for machine-readable output). URLs come from the flags or from
//! `SPANE_REDIS_URL`/`REDIS_URL` and `SPANE_DATABASE_URL`/`DATABASE_URL`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod render;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use spane::queue::RedisConfig;
use spane::{ExecutionId, ExecutionStatus, RerunOptions, WorkflowEngine};
use spane_store::{ExecutionQuery, SqlStore, SqlStoreOptions};

/// Why is it stuck? Re-run it. List executions and dead letters.
#[derive(Debug, Parser)]
#[command(name = "spane", version, about)]
struct Cli {
    /// The Redis the engine uses.
    #[arg(
        long,
        env = "SPANE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// The key prefix of the deployment on Redis.
    #[arg(long, env = "SPANE_PREFIX", default_value = "spane")]
    prefix: String,
    /// The history store (postgres://... or sqlite:...); needed by `executions` and to explain
    /// executions Redis no longer holds.
    #[arg(long, env = "SPANE_DATABASE_URL")]
    database: Option<String>,
    /// PostgreSQL schema of the store.
    #[arg(long)]
    schema: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Why an execution is not progressing: every unfinished node and its reason.
    Explain {
        /// The execution id.
        id: String,
    },
    /// Start a new execution that reuses every output not below a node and runs it again.
    Rerun {
        /// The execution id.
        id: String,
        /// The node to re-run from.
        #[arg(long)]
        from: String,
        /// A JSON input for the node instead of what its parents pass.
        #[arg(long)]
        input: Option<String>,
        /// Run the newest definition version (refused when the graph above the node changed).
        #[arg(long)]
        latest: bool,
    },
    /// Start a new execution that re-runs only the failed nodes and what depends on them.
    Retry {
        /// The execution id.
        id: String,
    },
    /// Recent executions, newest first (needs --database).
    Executions {
        /// Only this status (running, completed, failed, cancelled, paused).
        #[arg(long)]
        status: Option<String>,
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Dead-letter items, oldest first.
    Dlq {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn engine(cli: &Cli) -> anyhow::Result<WorkflowEngine> {
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|_| std::env::var("SPANE_REDIS_URL").is_err() && cli.redis == DEFAULT_REDIS)
        .unwrap_or_else(|| cli.redis.clone());
    let mut builder = WorkflowEngine::builder()
        .redis(RedisConfig::new(&redis_url).prefix(&cli.prefix))
        .await
        .with_context(|| format!("connecting to Redis at {redis_url}"))?;
    let database = cli
        .database
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok());
    if let Some(url) = database {
        let mut options = SqlStoreOptions::default();
        if let Some(schema) = &cli.schema {
            options = options.schema(schema.clone());
        }
        let store = SqlStore::connect(&url, options)
            .await
            .with_context(|| format!("connecting to the store at {url}"))?;
        builder = builder.store(std::sync::Arc::new(store));
    }
    Ok(builder.build())
}

const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

fn execution_id(text: &str) -> anyhow::Result<ExecutionId> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{text:?} is not an execution id: {e}"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let colour = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let out = render::Style::new(colour);
    let engine = engine(&cli).await?;
    match &cli.command {
        Command::Explain { id } => {
            let e = engine.explain(execution_id(id)?).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!(
                    "{}",
                    render::explanation(&out, &e, spane::core::now_millis())
                );
            }
        }
        Command::Rerun {
            id,
            from,
            input,
            latest,
        } => {
            let mut options = RerunOptions::new().latest_version(*latest);
            if let Some(input) = input {
                let value = serde_json::from_str(input)
                    .with_context(|| format!("--input is not JSON: {input:?}"))?;
                options = options.input(value);
            }
            let r = engine.rerun_from(execution_id(id)?, from, options).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", render::rerun(&out, &r));
            }
        }
        Command::Retry { id } => {
            let r = engine.retry_failed(execution_id(id)?).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", render::rerun(&out, &r));
            }
        }
        Command::Executions {
            status,
            workflow,
            limit,
        } => {
            let Some(history) = engine.store().history() else {
                bail!("listing executions needs the history store: pass --database");
            };
            let query = ExecutionQuery {
                limit: Some(*limit),
                workflow_id: workflow.clone(),
                status: status.as_deref().map(parse_status).transpose()?,
                ..ExecutionQuery::default()
            };
            let page = history.list_executions_page(&query).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&page.items)?);
            } else {
                print!("{}", render::executions(&out, &page.items));
            }
        }
        Command::Dlq { limit } => {
            let items = engine.dead_letters(0, *limit).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print!("{}", render::dead_letters(&out, &items));
            }
        }
    }
    Ok(())
}

fn parse_status(s: &str) -> anyhow::Result<ExecutionStatus> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        anyhow::anyhow!("--status {s:?}: expected running, paused, completed, failed or cancelled")
    })
}
