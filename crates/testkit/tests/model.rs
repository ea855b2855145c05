//! Model test of the coordination backends: `MemoryQueue` and `RedisQueue` agree with each other
//! and with the core model on random executions.
//!
//! **What it proves.** proptest generates plans: DAGs of up to 30 nodes (chains, fan-outs,
//! joins, several roots, some nodes with continueOnFail), the outcome of every claim of every
//! node (success routing to all, some or none of its children, `next_nodes` naming a node that
//! is not a child, retryable failure with a zero or tiny delay, failure for good, delay, or a
//! stall that lets the lease run out) and an interleaving of claims, commits, pause, resume,
//! cancel and dead-letter retries. One deterministic driver (no worker runtime, no concurrency)
//! runs each plan on both backends through the `ExecutionQueue`, `ExecutionControl` and
//! `DeadLetterQueue` traits, and on the model (`model/oracle.rs`, built on
//! `spane_core::ExecutionState`), and checks at every step:
//!
//! - the jobs each claim hands out (node, attempt, `delay_elapsed`, the keys of
//!   `previous_results` — a join's input keys — and the input itself);
//! - the answer of every commit, control call and dead-letter retry, and that an expired
//!   claim's commit is stale;
//! - the exact sequence of the execution's events (node and workflow events, timestamps
//!   removed; the `running` events of one claim call are compared in node order, since the
//!   order of simultaneously ready jobs is not part of the semantics);
//!
//! and at the end the record (status, error, every node's status, attempts and `continued`) and
//! the dead letters (node, reason). Memory events come through the `EventSink` given to the
//! queue; Redis events are read from the stream the scripts append to. A disagreement fails the
//! case with the shrunk plan, the steps that led to it, and who disagrees with whom.
//!
//! **Running it.** It needs Redis (`REDIS_URL`, default 127.0.0.1:6379); every case uses its
//! own key prefix (`spane-test-model-*`) and deletes its keys. It runs 40 cases with a fixed
//! seed by default, in `cargo xtask ci`. More, or other seeds:
//!
//! ```text
//! cargo xtask model --cases 500             # a random seed, printed
//! cargo xtask model --cases 200 --seed 42   # a given seed
//! SPANE_MODEL_CASES=200 SPANE_MODEL_SEED=42 cargo nextest run -p spane-testkit --test model --no-capture
//! ```
//!
//! `SPANE_MODEL_SKIP=stall,retry,...` leaves kinds of outcomes or actions out of the generated
//! plans (see `model/plan.rs`), to isolate one disagreement while another is being fixed.

#![allow(clippy::print_stderr)]

#[path = "model/backend.rs"]
mod backend;
#[path = "model/driver.rs"]
mod driver;
#[path = "model/oracle.rs"]
mod oracle;
#[path = "model/plan.rs"]
mod plan;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};

/// Cases per run unless `SPANE_MODEL_CASES` says otherwise.
const DEFAULT_CASES: u32 = 40;
/// The seed unless `SPANE_MODEL_SEED` says otherwise: CI runs the same cases every time.
const DEFAULT_SEED: u64 = 0x5_9A4E_0DE1;
/// The longest one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// Runs of one plan when the driver is starved for longer than a lease (see `TOO_SLOW`).
const TRIES: u32 = 3;
/// Shrinking stops after this long (each run of a case talks to Redis and may wait on leases).
const SHRINK_LIMIT: Duration = Duration::from_secs(90);

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={text:?} is not a number"),
    }
}

#[test]
fn memory_and_redis_follow_the_model() {
    let cases = env_number("SPANE_MODEL_CASES").map_or(DEFAULT_CASES, |n| n as u32);
    let seed = env_number("SPANE_MODEL_SEED").unwrap_or(DEFAULT_SEED);
    let skip = plan::Skip::parse(&std::env::var("SPANE_MODEL_SKIP").unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client = runtime
        .block_on(backend::redis_client(&backend::redis_url()))
        .unwrap_or_else(|e| panic!("{e}"));

    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 2_000,
        max_shrink_time: SHRINK_LIMIT.as_millis() as u32,
        ..Config::default()
    };
    let skipped = skip.names();
    eprintln!(
        "model: seed {seed}, {cases} cases{}",
        if skipped.is_empty() {
            String::new()
        } else {
            format!(", leaving out {}", skipped.join(", "))
        }
    );
    let mut runner = TestRunner::new(config);
    let runs = AtomicU32::new(0);
    let first_failure = AtomicU32::new(0);
    let stats = Mutex::new(driver::Stats::default());
    let started = Instant::now();
    let result = runner.run(&plan::plans(skip), |plan| {
        let n = runs.fetch_add(1, Ordering::Relaxed) + 1;
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            let outcome = runtime.block_on(async {
                tokio::time::timeout(CASE_LIMIT, driver::run_case(&plan, &client)).await
            });
            let outcome = match outcome {
                Ok(result) => result,
                Err(_) => Err(format!("the case took longer than {CASE_LIMIT:?}")),
            };
            // A starved driver is not a disagreement: the same plan runs again.
            match outcome {
                Err(e) if e.starts_with(backend::TOO_SLOW) && tries < TRIES => {
                    eprintln!(
                        "model: case {n}, try {tries}: {}",
                        e.lines().next().unwrap_or("")
                    );
                }
                other => break other,
            }
        };
        match outcome {
            Ok(case) => {
                if first_failure.load(Ordering::Relaxed) == 0 {
                    stats.lock().expect("stats").merge(&case);
                }
                Ok(())
            }
            Err(e) => {
                let _ = first_failure.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed);
                Err(TestCaseError::fail(e))
            }
        }
    });
    let runs = runs.into_inner();
    let elapsed = started.elapsed();
    let stats = stats.into_inner().expect("stats");
    match result {
        Ok(()) => eprintln!(
            "model: seed {seed}: {runs} cases passed in {elapsed:.1?}\nmodel: exercised {stats}"
        ),
        Err(TestError::Fail(reason, plan)) => {
            let failed_at = first_failure.into_inner();
            panic!(
                "model: seed {seed}: case {failed_at} of {cases} failed; {} runs while \
                 shrinking, {elapsed:.1?} in all.\n\nMinimal plan:\n{plan}\n\n{reason}\n\n\
                 Reproduce with SPANE_MODEL_SEED={seed} SPANE_MODEL_CASES={failed_at}.\n\
                 Passed before it: {stats}",
                runs - failed_at
            )
        }
        Err(TestError::Abort(reason)) => panic!("model: seed {seed}: aborted: {reason}"),
    }
}
