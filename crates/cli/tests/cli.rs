//! The `spane` binary against a real Redis (its own key prefix): the output of `explain` for a
//! stuck execution (a snapshot, ids and times normalised), `dlq`, `rerun` and the errors.

use std::process::Command;

use serde_json::json;
use spane::prelude::*;

fn redis_url() -> String {
    std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn spane(prefix: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spane"))
        .args([
            "--redis",
            &redis_url(),
            "--prefix",
            prefix,
            "--color",
            "never",
        ])
        .args(args)
        .env_remove("SPANE_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces `id` with `<ID>` and relative times with `<T>`.
fn normalise(text: &str, id: &str) -> String {
    let text = text.replace(id, "<ID>");
    let mut out = String::new();
    for word in text.split(' ') {
        let is_time = word.contains('.') && word.chars().all(|c| c.is_ascii_digit() || c == '.');
        out.push_str(if is_time { "<T>" } else { word });
        out.push(' ');
    }
    out.trim_end().replace(" \n", "\n")
}

async fn engine(prefix: &str, registry: NodeRegistry) -> WorkflowEngine {
    WorkflowEngine::builder()
        .registry(registry)
        .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix))
        .await
        .expect("Redis is needed for this test")
        .build()
}

fn prefix() -> String {
    format!(
        "spane-cli-{}",
        ExecutionId::new().to_string().to_lowercase()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_a_stuck_execution() {
    let prefix = prefix();
    let mut r = NodeRegistry::new();
    r.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
    );
    let engine = engine(&prefix, r).await;
    let wf = WorkflowDefinition::new("orders", "orders")
        .node(NodeDefinition::new("fetch", "pass"))
        .node(NodeDefinition::new("charge", "pass"))
        .edge("fetch", "charge");
    engine.register_workflow(wf).await.unwrap();
    // No worker runs: the execution is stuck at its root.
    let id = engine.enqueue_workflow("orders", json!({})).await.unwrap();
    let (ok, out, err) = spane(&prefix, &["explain", &id.to_string()]);
    assert!(ok, "{err}");
    let expected = "\
<ID> orders v1 running
  => running: node \"fetch\" is ready but no worker is alive
  fetch            queued             ready <T> s ago, 0 ahead of it, queue depth 1, no worker is alive
  charge           waitingForParents  waits for fetch (not started)
";
    assert_eq!(
        normalise(&out, &id.to_string()),
        expected.trim_end(),
        "{out}"
    );

    let (ok, json_out, _) = spane(&prefix, &["explain", &id.to_string(), "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["nodes"][0]["reason"]["kind"], "queued");
    assert_eq!(v["headline"], "fetch");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_rerun_and_errors() {
    let prefix = prefix();
    let mut r = NodeRegistry::new();
    r.register(
        "broken",
        executor_fn(|_| async { Err(NodeError::fatal("bad credentials")) }),
    );
    r.register(
        "pass",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
    );
    let engine = engine(&prefix, r).await;
    let wf = WorkflowDefinition::new("dead", "dead")
        .node(NodeDefinition::new("a", "pass"))
        .node(NodeDefinition::new("b", "broken"))
        .edge("a", "b");
    engine.register_workflow(wf).await.unwrap();
    engine.start_workers(2).unwrap();
    let id = engine.enqueue_workflow("dead", json!({})).await.unwrap();
    let record = engine
        .wait_for_execution(id, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(record.status, ExecutionStatus::Failed);

    let (ok, out, _) = spane(&prefix, &["dlq"]);
    assert!(ok);
    assert!(
        out.contains(&id.to_string()) && out.contains("bad credentials"),
        "{out}"
    );

    let (ok, out, err) = spane(
        &prefix,
        &["rerun", &id.to_string(), "--from", "b", "--json"],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kept"], json!(["a"]));
    assert_eq!(v["rerunOf"], json!(id.to_string()));

    let (ok, _, err) = spane(&prefix, &["rerun", &id.to_string(), "--from", "zzz"]);
    assert!(!ok);
    assert!(err.contains("\"zzz\""), "{err}");
    let (ok, _, err) = spane(&prefix, &["explain", "not-an-id"]);
    assert!(!ok);
    assert!(err.contains("not-an-id"), "{err}");
    let (ok, _, err) = spane(&prefix, &["executions"]);
    assert!(!ok);
    assert!(err.contains("--database"), "{err}");
    engine.shutdown().await;
}
