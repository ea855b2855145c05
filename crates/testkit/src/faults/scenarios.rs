//! The faults: one function per fault that sets up a run, injects the fault at its point, lets
//! the system recover and measures what happened.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, KeysInterface, SortedSetsInterface};
use serde_json::json;
use spane::prelude::*;
use spane::store::{ExecutionStore, SqlStore, SqlStoreOptions};

use super::cluster::{Run, WorkerSpec};
use super::{FaultError, FaultReport, RunOutcome, SuiteOptions};
use crate::process::RedisServer;
use crate::proxy::TcpProxy;

/// How long executions may take to end after a fault.
const SETTLE: Duration = Duration::from_secs(60);
/// The longest one run may take (the soak excepted, which has its own deadlines).
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// The lease of the worker processes: short, so that recovery from a dead worker is quick.
const LEASE_MS: u64 = 1000;

/// One fault of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// Its name (`--only NAME`).
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The Redis persistence it runs on (arguments of `redis-server`).
    redis_args: &'static [&'static str],
}

/// Every fault, in the order the suite runs them.
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "kill-before-effect",
        description: "SIGKILL of a worker whose executor is about to perform its side effect",
        redis_args: &[],
    },
    Fault {
        name: "kill-after-effect",
        description: "SIGKILL after the executor's side effect, before the commit",
        redis_args: &[],
    },
    Fault {
        name: "kill-commit-in-flight",
        description: "the worker dies as its first commit's reply arrives (applied; its handed-off next job leased to a dead worker)",
        redis_args: &[],
    },
    Fault {
        name: "kill-fan-out",
        description: "SIGKILL during a fan-out of 50 children into a join",
        redis_args: &[],
    },
    Fault {
        name: "sigstop-past-lease",
        description: "SIGSTOP past the lease, another worker completes the node, SIGCONT",
        redis_args: &[],
    },
    Fault {
        name: "worker-cut-off",
        description: "a worker's Redis connections dropped (not killed) past its lease, then restored",
        redis_args: &[],
    },
    Fault {
        name: "redis-restart-always",
        description: "Redis SIGKILLed mid-run and restarted; AOF, appendfsync always",
        redis_args: &["--appendonly", "yes", "--appendfsync", "always"],
    },
    Fault {
        name: "redis-restart-everysec",
        description: "Redis SIGKILLed mid-run and restarted; AOF, appendfsync everysec",
        redis_args: &["--appendonly", "yes", "--appendfsync", "everysec"],
    },
    Fault {
        name: "pg-outage",
        description: "PostgreSQL unreachable under write-behind history (a proxy the suite cuts)",
        redis_args: &[],
    },
    Fault {
        name: "sub-workflow-resume",
        description: "the worker dies between a child's end and its parent's resumption",
        redis_args: &[],
    },
    Fault {
        name: "trigger-instance-killed",
        description: "one of two engine instances firing a seconds-cron schedule is SIGKILLed at a random moment and restarted",
        redis_args: &[],
    },
    Fault {
        name: "soak",
        description: "thousands of executions with a 2 s retention: no key left without a TTL, memory back to its baseline",
        redis_args: &[],
    },
];

/// Runs `fault` `options.runs` times (the soak once) on a Redis of its own.
pub(super) async fn run_fault(fault: &Fault, options: &SuiteOptions) -> FaultReport {
    let mut report = FaultReport {
        fault: fault.name,
        description: fault.description,
        runs: Vec::new(),
        errors: Vec::new(),
    };
    let mut redis = match RedisServer::start(fault.redis_args) {
        Ok(redis) => redis,
        Err(e) => {
            report
                .errors
                .push(format!("redis-server did not start: {e}"));
            return report;
        }
    };
    // The soak is one long run; a PostgreSQL outage lasts 30 s (5 s quick), so it runs at
    // most 5 times (2 quick).
    let runs = match fault.name {
        "soak" => 1,
        "pg-outage" => options.runs.min(if options.quick { 2 } else { 5 }),
        // About eight seconds of real ticks each.
        "trigger-instance-killed" => options.runs.min(if options.quick { 3 } else { 20 }),
        _ => options.runs,
    };
    for _ in 0..runs {
        // A Redis that a restart left down ends the fault (its next runs could not connect).
        if !redis.ping() && redis.restart().is_err() {
            report.errors.push(format!(
                "redis-server is down and does not restart: {}",
                redis.log_tail()
            ));
            break;
        }
        let run = async {
            match fault.name {
                "kill-before-effect" => kill_holding(&redis.url(), "before-effect").await,
                "kill-after-effect" => kill_holding(&redis.url(), "after-effect").await,
                "kill-commit-in-flight" => kill_commit_in_flight(&redis.url()).await,
                "kill-fan-out" => kill_fan_out(&redis.url()).await,
                "sigstop-past-lease" => sigstop(&redis.url()).await,
                "worker-cut-off" => cut_off(&redis).await,
                "redis-restart-always" | "redis-restart-everysec" => {
                    redis_restart(&mut redis).await
                }
                "pg-outage" => match &options.database_url {
                    Some(db) => pg_outage(&redis.url(), db, options.quick).await,
                    None => Err(FaultError::new("no PostgreSQL (DATABASE_URL) given")),
                },
                "sub-workflow-resume" => sub_workflow_resume(&redis.url()).await,
                "trigger-instance-killed" => trigger_instance_killed(&redis.url()).await,
                "soak" => soak(&redis.url(), if options.quick { 1_000 } else { 10_000 }).await,
                other => Err(FaultError::new(format!("unknown fault {other}"))),
            }
        };
        // No run may hang the suite.
        let outcome = match tokio::time::timeout(RUN_LIMIT, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(FaultError::new(format!(
                "the run did not end within {RUN_LIMIT:?}"
            ))),
        };
        match outcome {
            Ok(o) => report.runs.push(o),
            Err(e) => report.errors.push(e.0),
        }
    }
    report
}

/// A chain `n0 → n1 → ...` of `pass` nodes.
fn chain(id: &str, n: usize) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new(id, id);
    for i in 0..n {
        wf = wf.node(NodeDefinition::new(format!("n{i}"), "pass"));
    }
    for i in 1..n {
        wf = wf.edge(&format!("n{}", i - 1), &format!("n{i}"));
    }
    wf
}

/// `root` → `m0..m{width}` → `join`.
fn fan_out(id: &str, width: usize) -> WorkflowDefinition {
    let mut wf = WorkflowDefinition::new(id, id)
        .node(NodeDefinition::new("root", "pass"))
        .node(NodeDefinition::new("join", "pass"));
    for i in 0..width {
        let m = format!("m{i}");
        wf = wf.node(NodeDefinition::new(&m, "pass"));
        wf = wf.edge("root", &m).edge(&m, "join");
    }
    wf
}

/// Counts what the run's events and the workers' bookkeeping show.
async fn measure(run: &Run, lost: usize, recovery: Option<Duration>, joins: &[&str]) -> RunOutcome {
    let tally = run.tally().await;
    let mut doubled = 0;
    let mut joins_doubled = 0;
    for ((_, node, status), count) in &tally {
        if status == "completed" && *count > 1 {
            doubled += count - 1;
            if joins.contains(&node.as_str()) {
                joins_doubled += count - 1;
            }
        }
    }
    let repeated_effects = run
        .counters("invocations")
        .await
        .values()
        .map(|&n| usize::try_from(n - 1).unwrap_or(0))
        .sum();
    RunOutcome {
        lost,
        doubled,
        joins_doubled,
        repeated_effects,
        recovery,
        note: None,
    }
}

/// A worker blocks in node `n1`'s executor before or after its side effect; the suite kills it
/// there and another worker finishes.
async fn kill_holding(url: &str, at: &str) -> Result<RunOutcome, FaultError> {
    let run = Run::new(url, "hold").await?;
    run.register(chain("c", 3)).await?;
    let spec = WorkerSpec::new(1, LEASE_MS, 0).with(&["--hold-node", "n1", "--hold-at", at]);
    let mut a = run.worker("A", &spec)?;
    let ids = run.enqueue("c", 1).await?;
    run.until("the executor to hold", SETTLE, || async {
        (!run.counters("holding").await.is_empty()).then_some(())
    })
    .await?;
    a.kill();
    let injected = Instant::now();
    let _b = run.worker("B", &WorkerSpec::new(4, LEASE_MS, 0))?;
    let lost = run.settle(&ids, SETTLE).await;
    let outcome = measure(&run, lost, Some(injected.elapsed()), &[]).await;
    run.cleanup().await;
    Ok(outcome)
}

/// A worker aborts when its first commit's reply arrives.
async fn kill_commit_in_flight(url: &str) -> Result<RunOutcome, FaultError> {
    let run = Run::new(url, "commit").await?;
    run.register(chain("c", 3)).await?;
    let spec = WorkerSpec::new(1, LEASE_MS, 0).with(&["--abort-after-first-commit"]);
    let mut a = run.worker("A", &spec)?;
    let ids = run.enqueue("c", 1).await?;
    a.wait_exit(SETTLE)?;
    let injected = Instant::now();
    if a.stderr_count("aborting after the first node commit") != 1 {
        return Err(FaultError::new(
            "the worker did not die at its first commit",
        ));
    }
    let _b = run.worker("B", &WorkerSpec::new(4, LEASE_MS, 0))?;
    let lost = run.settle(&ids, SETTLE).await;
    let outcome = measure(&run, lost, Some(injected.elapsed()), &[]).await;
    run.cleanup().await;
    Ok(outcome)
}

/// A worker is killed with 10 or more of 50 fan-out children started and some unfinished.
async fn kill_fan_out(url: &str) -> Result<RunOutcome, FaultError> {
    let run = Run::new(url, "fan").await?;
    run.register(fan_out("f", 50)).await?;
    let mut a = run.worker("A", &WorkerSpec::new(16, LEASE_MS, 100))?;
    let ids = run.enqueue("f", 1).await?;
    run.until("the fan-out to be under way", SETTLE, || async {
        let w = run.counters("workers").await;
        let started = w.get("A").copied().unwrap_or(0);
        let done = w.get("A:finished").copied().unwrap_or(0);
        (started >= 10 && started > done).then_some(())
    })
    .await?;
    a.kill();
    let injected = Instant::now();
    let _b = run.worker("B", &WorkerSpec::new(16, LEASE_MS, 0))?;
    let lost = run.settle(&ids, SETTLE).await;
    let outcome = measure(&run, lost, Some(injected.elapsed()), &["join"]).await;
    run.cleanup().await;
    Ok(outcome)
}

/// Waits until worker `name`'s stderr mentions a refused stale commit (or `within` passes);
/// returns how many it mentions.
async fn stale_refusals(run: &Run, worker: &super::cluster::WorkerProc, within: Duration) -> usize {
    let _ = run
        .until("the stale commit to be refused", within, || async {
            (worker.stderr_count("stale commit refused") > 0).then_some(())
        })
        .await;
    worker.stderr_count("stale commit refused")
}

/// SIGSTOP past the lease; another worker completes; SIGCONT: the stale commit is refused.
async fn sigstop(url: &str) -> Result<RunOutcome, FaultError> {
    let run = Run::new(url, "stop").await?;
    run.register(chain("c", 1)).await?;
    let a = run.worker("A", &WorkerSpec::new(1, 500, 1500))?;
    let ids = run.enqueue("c", 1).await?;
    run.until("A to start the node", SETTLE, || async {
        (!run.counters("invocations").await.is_empty()).then_some(())
    })
    .await?;
    a.signal("STOP")?;
    let injected = Instant::now();
    let _b = run.worker("B", &WorkerSpec::new(2, 500, 0))?;
    let lost = run.settle(&ids, SETTLE).await;
    let recovery = injected.elapsed();
    a.signal("CONT")?;
    let refused = stale_refusals(&run, &a, Duration::from_secs(10)).await;
    let mut outcome = measure(&run, lost, Some(recovery), &[]).await;
    outcome.note = Some(format!("stale commits refused: {refused}"));
    run.cleanup().await;
    Ok(outcome)
}

/// A worker reaches Redis through a proxy that is cut past its lease, then restored.
async fn cut_off(redis: &RedisServer) -> Result<RunOutcome, FaultError> {
    let mut proxy = TcpProxy::start(format!("127.0.0.1:{}", redis.port()))
        .await
        .map_err(|e| FaultError::new(format!("proxy: {e}")))?;
    let run = Run::new(&redis.url(), "cut").await?;
    run.register(chain("c", 1)).await?;
    let via_proxy = format!("redis://127.0.0.1:{}", proxy.port());
    let a = super::cluster::WorkerProc::start(
        &via_proxy,
        &run.prefix,
        "A",
        &WorkerSpec::new(1, 500, 1500),
    )?;
    let ids = run.enqueue("c", 1).await?;
    run.until("A to start the node", SETTLE, || async {
        (!run.counters("invocations").await.is_empty()).then_some(())
    })
    .await?;
    proxy.cut().await;
    let injected = Instant::now();
    let _b = run.worker("B", &WorkerSpec::new(2, 500, 0))?;
    let lost = run.settle(&ids, SETTLE).await;
    let recovery = injected.elapsed();
    proxy
        .restore()
        .await
        .map_err(|e| FaultError::new(format!("proxy: {e}")))?;
    let refused = stale_refusals(&run, &a, Duration::from_secs(15)).await;
    let mut outcome = measure(&run, lost, Some(recovery), &[]).await;
    outcome.note = Some(format!(
        "stale commits refused after reconnection: {refused}"
    ));
    run.cleanup().await;
    Ok(outcome)
}

/// Redis is SIGKILLed while executions run and restarted on its AOF.
async fn redis_restart(redis: &mut RedisServer) -> Result<RunOutcome, FaultError> {
    let url = redis.url();
    let run = Run::new(&url, "restart").await?;
    run.register(chain("c", 3)).await?;
    let _a = run.worker("A", &WorkerSpec::new(4, LEASE_MS, 30))?;
    let ids = run.enqueue("c", 30).await?;
    run.until("the run to be under way", SETTLE, || async {
        let started: i64 = run.counters("invocations").await.values().sum();
        (started >= 20).then_some(())
    })
    .await?;
    redis
        .restart()
        .map_err(|e| FaultError::new(format!("restarting Redis: {e}")))?;
    let injected = Instant::now();
    let lost = run.settle(&ids, SETTLE).await;
    let outcome = measure(&run, lost, Some(injected.elapsed()), &[]).await;
    run.cleanup().await;
    Ok(outcome)
}

/// PostgreSQL refuses connections while executions run under write-behind history; once it
/// answers again, the history must be complete.
async fn pg_outage(url: &str, database: &str, quick: bool) -> Result<RunOutcome, FaultError> {
    let rest = database.split_once("://").map_or(database, |(_, r)| r);
    let (user, rest) = rest.split_once('@').unwrap_or(("", rest));
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    let mut proxy = TcpProxy::start(host)
        .await
        .map_err(|e| FaultError::new(format!("proxy: {e}")))?;
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    let proxied = format!("postgres://{user}127.0.0.1:{}/{db}", proxy.port());
    let schema = format!("faults_{}", ExecutionId::new().to_string().to_lowercase());
    let run = Run::new(url, "pg").await?;
    run.register(chain("c", 3)).await?;
    let spec = WorkerSpec::new(8, LEASE_MS, 10).with(&[
        "--database-url",
        &proxied,
        "--schema",
        &schema,
        "--history-reclaim-ms",
        "1000",
    ]);
    let _a = run.worker("A", &spec)?;
    let direct = SqlStore::connect(
        database,
        SqlStoreOptions::default()
            .schema(schema.clone())
            .run_migrations(false),
    )
    .await
    .map_err(|e| FaultError::new(format!("PostgreSQL at {database}: {e}")))?;
    proxy.cut().await;
    let ids = run.enqueue("c", 100).await?;
    let lost_live = run.settle(&ids, SETTLE).await;
    // The outage lasts this long in all (the executions finished inside it).
    tokio::time::sleep(if quick {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(30)
    })
    .await;
    proxy
        .restore()
        .await
        .map_err(|e| FaultError::new(format!("proxy: {e}")))?;
    let restored = Instant::now();
    let complete = |record: Option<ExecutionRecord>| {
        record.is_some_and(|r| {
            r.status == ExecutionStatus::Completed
                && r.node_results
                    .values()
                    .filter(|n| n.status == NodeStatus::Completed)
                    .count()
                    == 3
        })
    };
    let missing = |direct: &SqlStore| {
        let ids = ids.clone();
        let direct = direct.clone();
        async move {
            let mut missing = 0;
            for id in ids {
                if !complete(direct.get_execution(id).await.ok().flatten()) {
                    missing += 1;
                }
            }
            missing
        }
    };
    let landed = run
        .until("the history to land", SETTLE, || async {
            (missing(&direct).await == 0).then_some(())
        })
        .await;
    let recovery = landed.is_ok().then(|| restored.elapsed());
    let lost = lost_live + missing(&direct).await;
    let mut outcome = measure(&run, lost, recovery, &[]).await;
    outcome.note = Some("recovery: from the end of the outage to the last history row".into());
    let _ = direct.close().await;
    if let Ok(db) = sea_orm::Database::connect(database).await {
        use sea_orm::ConnectionTrait;
        let _ = db
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
        let _ = db.close().await;
    }
    run.cleanup().await;
    Ok(outcome)
}

/// The worker dies between a child's end and its parent's resumption; another worker's sweep
/// resumes the parent.
async fn sub_workflow_resume(url: &str) -> Result<RunOutcome, FaultError> {
    let run = Run::new(url, "sub").await?;
    run.register(chain("payment", 2)).await?;
    run.register(
        WorkflowDefinition::new("order", "order")
            .node(
                NodeDefinition::new("pay", "sub-workflow")
                    .with_config(json!({ "workflowId": "payment" })),
            )
            .node(NodeDefinition::new("after", "pass"))
            .edge("pay", "after"),
    )
    .await?;
    let spec = WorkerSpec::new(1, LEASE_MS, 0).with(&["--abort-after-first-end"]);
    let mut a = run.worker("A", &spec)?;
    let ids = run.enqueue("order", 1).await?;
    a.wait_exit(SETTLE)?;
    let injected = Instant::now();
    let ended: i64 = run
        .client
        .zcard(format!("{}:{{0}}:ended", run.prefix))
        .await
        .map_err(|e| FaultError::new(e.to_string()))?;
    if ended != 1 {
        return Err(FaultError::new(format!(
            "the worker did not die between the child's end and the resumption ({ended} ended children waiting)"
        )));
    }
    let _b = run.worker("B", &WorkerSpec::new(2, LEASE_MS, 0))?;
    let lost = run.settle(&ids, SETTLE).await;
    let outcome = measure(&run, lost, Some(injected.elapsed()), &[]).await;
    run.cleanup().await;
    Ok(outcome)
}

/// Redis's `used_memory`.
async fn used_memory(run: &Run) -> i64 {
    let info: String = run
        .client
        .custom(fred::cmd!("INFO"), vec!["memory"])
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Keys under the run's prefix that match `pattern`, with their TTL in ms (-1: none).
async fn keys_with_ttl(run: &Run, pattern: &str) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let mut cursor = "0".to_owned();
    loop {
        let reply: Result<(String, Vec<String>), _> = run
            .client
            .custom(
                fred::cmd!("SCAN"),
                vec![
                    cursor.clone(),
                    "MATCH".into(),
                    pattern.to_owned(),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await;
        let Ok((next, keys)) = reply else {
            return out;
        };
        for key in keys {
            let ttl: i64 = run.client.pttl(&key).await.unwrap_or(-2);
            out.insert(key, ttl);
        }
        if next == "0" {
            return out;
        }
        cursor = next;
    }
}

/// `count` executions with a 2 s retention: afterwards no per-execution key is left and Redis's
/// memory is back near its baseline (the event stream, kept by age, is reported apart).
async fn soak(url: &str, count: usize) -> Result<RunOutcome, FaultError> {
    let prefix = format!(
        "faults-soak-{}",
        ExecutionId::new().to_string().to_lowercase()
    );
    let retention = Duration::from_secs(2);
    let run = Run::with_prefix(url, prefix, Some(retention)).await?;
    run.register(chain("c", 3)).await?;
    let _a = run.worker(
        "A",
        &WorkerSpec::new(16, 5000, 0).with(&["--retention-ms", "2000"]),
    )?;
    let baseline = used_memory(&run).await;
    let started = Instant::now();
    run.enqueue("c", count).await?;
    // Finished executions expire 2 s after their end, so their end is read from the events.
    let completed = |tally: HashMap<(String, String, String), usize>| {
        tally
            .keys()
            .filter(|(_, node, status)| node.is_empty() && status == "completed")
            .count()
    };
    let _ = run
        .until(
            "every execution to complete",
            Duration::from_secs(600),
            || async { (completed(run.tally().await) >= count).then_some(()) },
        )
        .await;
    let lost = count - completed(run.tally().await).min(count);
    let ran = started.elapsed();
    // Finished executions expire `retention` after their end; Redis's expiry cycle removes
    // them soon after.
    let execution_keys = format!("{}:{{0}}:x:*", run.prefix);
    let left = run
        .until(
            "finished executions to expire",
            Duration::from_secs(60),
            || async {
                let left = keys_with_ttl(&run, &execution_keys).await;
                left.is_empty().then_some(())
            },
        )
        .await;
    let without_ttl: Vec<String> = keys_with_ttl(&run, &format!("{}:*", run.prefix))
        .await
        .into_iter()
        .filter(|(k, ttl)| *ttl == -1 && (k.contains(":x:") || k.contains(":pl:")))
        .map(|(k, _)| k)
        .collect();
    let stream = format!("{}:{{0}}:events", run.prefix);
    let stream_bytes: i64 = run
        .client
        .custom(
            fred::cmd!("MEMORY"),
            vec!["USAGE".to_owned(), stream.clone()],
        )
        .await
        .unwrap_or(0);
    let after = used_memory(&run).await;
    let mut outcome = RunOutcome {
        lost: lost + without_ttl.len() + usize::from(left.is_err()),
        ..RunOutcome::default()
    };
    outcome.note = Some(format!(
        "{count} executions in {:.1}s; used_memory {} KiB before, {} KiB after, of which the event stream (kept by age) {} KiB; per-execution keys left without a TTL: {}",
        ran.as_secs_f64(),
        baseline / 1024,
        after / 1024,
        stream_bytes / 1024,
        without_ttl.len()
    ));
    let _ = run.client.quit().await;
    Ok(outcome)
}

/// Executions started per schedule tick (`_trigger.tickMs` of each execution's first node's
/// input, from its `completed` event), and how many executions started and completed.
async fn ticks(run: &Run) -> (std::collections::BTreeMap<i64, usize>, usize, usize) {
    use fred::prelude::StreamsInterface;
    let stream = format!("{}:{{0}}:events", run.prefix);
    let mut per_tick = std::collections::BTreeMap::new();
    let (mut started, mut completed) = (0, 0);
    let chunk: Vec<(String, HashMap<String, String>)> = run
        .client
        .xrange_values(&stream, "-", "+", None)
        .await
        .unwrap_or_default();
    for (_, fields) in chunk {
        let Some(text) = fields.get("e") else {
            continue;
        };
        let Ok(events) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
            continue;
        };
        for e in events {
            match (e["type"].as_str(), e["status"].as_str()) {
                (Some("workflow:status"), Some("started")) => started += 1,
                (Some("workflow:status"), Some("completed")) => completed += 1,
                (Some("node:progress"), Some("completed")) => {
                    if let Some(tick) = e["data"]["input"]["_trigger"]["tickMs"].as_i64() {
                        *per_tick.entry(tick).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }
    (per_tick, started, completed)
}

/// Two instances fire a seconds-cron schedule; one is killed at a random moment and started
/// again. A tick fires at most once (an atomic claim); a tick whose claiming instance dies
/// before its enqueue is missed (counted in the note, by design).
async fn trigger_instance_killed(url: &str) -> Result<RunOutcome, FaultError> {
    let run = Run::new(url, "tick").await?;
    run.register(chain("tick", 1)).await?;
    let spec = WorkerSpec::new(4, LEASE_MS, 0);
    let mut a = run.worker("A", &spec)?;
    let _b = run.worker("B", &spec)?;
    run.engine
        .upsert_schedule(spane::triggers::ScheduleSpec::cron("tick", "* * * * * *"))
        .await
        .map_err(|e| FaultError::new(format!("upsert_schedule: {e}")))?;
    run.until("two ticks to fire", SETTLE, || async {
        (ticks(&run).await.0.len() >= 2).then_some(())
    })
    .await?;
    // Somewhere within the next second (a tick's claim and enqueue fall anywhere in it).
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 1000);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    a.kill();
    let injected = Instant::now();
    let fired_at_kill = ticks(&run).await.0.len();
    let _a2 = run.worker("A2", &spec)?;
    let recovered = run
        .until("ticks to fire after the kill", SETTLE, || async {
            (ticks(&run).await.0.len() >= fired_at_kill + 3).then(|| injected.elapsed())
        })
        .await?;
    run.engine
        .remove_schedule("schedule:tick:* * * * * *")
        .await
        .map_err(|e| FaultError::new(format!("remove_schedule: {e}")))?;
    let (per_tick, started, completed) = run
        .until("the fired executions to complete", SETTLE, || async {
            let (per_tick, started, completed) = ticks(&run).await;
            (started == completed).then_some((per_tick, started, completed))
        })
        .await?;
    let doubled = per_tick.values().map(|n| n - 1).sum();
    let span = match (per_tick.keys().next(), per_tick.keys().last()) {
        (Some(first), Some(last)) => ((last - first) / 1000 + 1) as usize,
        _ => 0,
    };
    let missed = span.saturating_sub(per_tick.len());
    Ok(RunOutcome {
        lost: started - completed,
        doubled,
        recovery: Some(recovered),
        note: Some(format!(
            "{} ticks fired over {span} s, {missed} missed (at most once: a tick whose instance dies between its claim and its enqueue is not fired)",
            per_tick.len()
        )),
        ..RunOutcome::default()
    })
}
