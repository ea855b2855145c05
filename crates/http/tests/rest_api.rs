//! The REST API over an embedded engine: workflows, executions, control, the DLQ, circuit
//! breakers, problems, auth, limits, CORS, metrics and the OpenAPI document.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::{Value, json};
use spane::events::LocalBus;
use spane::prelude::*;
use spane_http::HttpConfig;

struct Setup {
    engine: WorkflowEngine,
    server: Server,
    client: reqwest::Client,
    gate: Gate,
    failing: Arc<AtomicBool>,
}

async fn setup(config: HttpConfig) -> Setup {
    let gate = Gate::new();
    let failing = Arc::new(AtomicBool::new(false));
    let engine = embedded(
        registry(&gate, &failing),
        Arc::new(LocalBus::with_journal(1024, 1024)),
    );
    let server = serve(engine.clone(), config).await;
    Setup {
        engine,
        server,
        client: reqwest::Client::new(),
        gate,
        failing,
    }
}

async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("urn:spane:problem:{code}"));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_registered_listed_read_by_version_and_deactivated() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    assert_eq!(
        register(c, url, &chain("orders", ["pass", "pass", "pass"])).await,
        1
    );
    let mut changed = chain("orders", ["pass", "pass", "pass"]);
    changed["name"] = json!("Orders v2");
    assert_eq!(register(c, url, &changed).await, 2);
    register(c, url, &chain("billing", ["pass", "pass", "pass"])).await;

    let list: Value = c
        .get(format!("{url}/workflows"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["id"], "billing", "ordered by id");
    assert_eq!(list["items"][1]["latestVersion"], 2);
    assert_eq!(list["items"][1]["active"], true);

    let latest: Value = c
        .get(format!("{url}/workflows/orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["definition"]["name"], "Orders v2");
    let v1: Value = c
        .get(format!("{url}/workflows/orders/versions/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1["definition"]["name"], "Chain orders");
    let r = c
        .get(format!("{url}/workflows/orders/versions/9"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 404, "workflow_version_not_found").await;
    assert!(body["detail"].as_str().unwrap().contains("version 9"));

    // Deactivated: executions are refused until it is activated again.
    let r = c
        .post(format!("{url}/workflows/orders/deactivate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{url}/workflows/orders/executions"))
        .send()
        .await
        .unwrap();
    problem(r, 409, "workflow_inactive").await;
    let r = c
        .post(format!("{url}/workflows/orders/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = execute(c, url, "orders", json!({ "n": 1 })).await;
    s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let r = c
        .post(format!("{url}/workflows/nope/deactivate"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "workflow_not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_naming_what_is_wrong() {
    let s = setup(HttpConfig::new().body_limit(4096)).await;
    let (c, url) = (&s.client, &s.server.url);
    // A definition whose edge names a node that does not exist.
    let mut bad = chain("bad", ["pass", "pass", "pass"]);
    bad["nodes"][2]["inputs"] = json!(["ghost"]);
    let r = c
        .post(format!("{url}/workflows"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    let body = problem(r, 422, "invalid_definition").await;
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e.as_str().unwrap().contains("ghost")),
        "{errors:?}"
    );
    // Malformed JSON, a body over the limit, an id that is not one, an unknown execution,
    // an unknown workflow, an unknown route.
    let r = c
        .post(format!("{url}/workflows"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let body: Value = r.json().await.unwrap();
    assert!(body["code"].is_string(), "{body}");
    let big = json!({ "id": "big", "nodes": [], "pad": "x".repeat(8192) });
    let r = c
        .post(format!("{url}/workflows"))
        .json(&big)
        .send()
        .await
        .unwrap();
    problem(r, 413, "payload_too_large").await;
    let r = c
        .get(format!("{url}/executions/not-an-id"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 400, "bad_request").await;
    assert!(body["detail"].as_str().unwrap().contains("not-an-id"));
    let missing = ExecutionId::new();
    let r = c
        .get(format!("{url}/executions/{missing}"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 404, "execution_not_found").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&missing.to_string())
    );
    let r = c
        .post(format!("{url}/workflows/none/executions"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "workflow_not_found").await;
    let r = c
        .get(format!("{url}/executions?status=sleeping"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 400, "bad_request").await;
    assert!(body["detail"].as_str().unwrap().contains("sleeping"));
    let r = c.get(format!("{url}/nowhere")).send().await.unwrap();
    problem(r, 404, "route_not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_by_status_in_cursor_pages_with_node_results() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    register(c, url, &chain("ok", ["pass", "pass", "pass"])).await;
    register(c, url, &chain("bad", ["pass", "flaky", "pass"])).await;
    let mut done = Vec::new();
    for n in 0..5 {
        let id = execute(c, url, "ok", json!({ "n": n })).await;
        s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
        done.push(id.to_string());
    }
    s.failing.store(true, Ordering::SeqCst);
    let failed = execute(c, url, "bad", json!({})).await;
    s.engine.wait_for_execution(failed, DEADLINE).await.unwrap();

    // One execution, with its node results.
    let one: Value = c
        .get(format!("{url}/executions/{}", done[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "completed");
    assert_eq!(one["nodeResults"]["c"]["data"], json!({ "n": 0 }));
    assert_eq!(one["nodeResults"]["a"]["attempts"], 1);
    assert_eq!(one["nodeResults"]["a"]["claims"], 1);

    // Status filter.
    let page: Value = c
        .get(format!("{url}/executions?status=failed"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["executionId"], failed.to_string());
    assert!(
        items[0]["nodeResults"]["b"]["error"]
            .as_str()
            .unwrap()
            .contains("flaky")
    );

    // Cursor pages of 2: every completed execution exactly once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = c
            .get(format!("{url}/executions"))
            .query(&[("status", "completed"), ("limit", "2")]);
        if let Some(cur) = &cursor {
            request = request.query(&[("cursor", cur)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["executionId"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 5, "paging does not end: {seen:?}");
    }
    let mut expected = done.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    let r = c
        .get(format!("{url}/executions?cursor=garbage"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 400, "bad_request").await;
    assert!(body["detail"].as_str().unwrap().contains("cursor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_paused_resumed_and_cancelled_one_or_many() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    register(c, url, &chain("slow", ["wait", "pass", "pass"])).await;
    let id = execute(c, url, "slow", json!({ "n": 1 })).await;
    let r: Value = c
        .post(format!("{url}/executions/{id}/pause"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "paused");
    // The running node finishes; its children are held until resume.
    s.gate.open(1);
    let r: Value = c
        .post(format!("{url}/executions/{id}/resume"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "running");
    let record = s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Completed);
    let r = c
        .post(format!("{url}/executions/{id}/resume"))
        .send()
        .await
        .unwrap();
    problem(r, 409, "not_allowed").await;

    // Bulk: two held executions cancelled at once; a bad id gets its own problem.
    let a = execute(c, url, "slow", json!({})).await;
    let b = execute(c, url, "slow", json!({})).await;
    let r: Value = c
        .post(format!("{url}/executions/cancel"))
        .json(&json!({ "executionIds": [a.to_string(), "nope", b.to_string()] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results = r["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "cancelled");
    assert_eq!(results[1]["error"]["code"], "bad_request");
    assert_eq!(results[2]["status"], "cancelled");
    s.gate.open(2);
    for id in [a, b] {
        let record = s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
        assert_eq!(record.status, ExecutionStatus::Cancelled);
    }
    let r: Value = c
        .post(format!("{url}/executions/pause"))
        .json(&json!({ "executionIds": [a.to_string()] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["error"]["code"], "not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_read_retried_and_purged() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    register(c, url, &chain("bad", ["pass", "flaky", "pass"])).await;
    s.failing.store(true, Ordering::SeqCst);
    let first = execute(c, url, "bad", json!({})).await;
    let second = execute(c, url, "bad", json!({})).await;
    for id in [first, second] {
        let record = s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
        assert_eq!(record.status, ExecutionStatus::Failed);
    }
    let list: Value = c
        .get(format!("{url}/dlq"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2);
    let ids: HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["executionId"].as_str().unwrap())
        .collect();
    assert!(ids.contains(first.to_string().as_str()));
    let item: Value = c
        .get(format!("{url}/dlq/{first}/b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(item["nodeId"], "b");
    assert!(item["error"].as_str().unwrap().contains("flaky"));

    // Retry with the cause fixed: the execution runs again and completes.
    s.failing.store(false, Ordering::SeqCst);
    let r = c
        .post(format!("{url}/dlq/{first}/b/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut events = s
        .engine
        .subscribe(EventFilter::Execution(first))
        .await
        .unwrap();
    let record = s.engine.get_execution(first).await.unwrap().unwrap();
    if record.status != ExecutionStatus::Completed {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let e = tokio::time::timeout_at(deadline, events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let EngineEvent::Workflow(w) = e
                && w.status == WorkflowEventStatus::Completed
            {
                break;
            }
        }
    }
    let r = c.get(format!("{url}/dlq/{first}/b")).send().await.unwrap();
    problem(r, 404, "dead_letter_not_found").await;
    let r: Value = c
        .delete(format!("{url}/dlq"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["count"], 1);
    let list: Value = c
        .get(format!("{url}/dlq"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breakers_are_inspected_and_reset() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    let definition = json!({
        "id": "call", "nodes": [{ "id": "call", "type": "http",
            "config": { "url": "api.example.test", "circuitBreaker": { "failureThreshold": 1 } } }]
    });
    register(c, url, &definition).await;
    s.failing.store(true, Ordering::SeqCst);
    let id = execute(c, url, "call", json!({})).await;
    s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let list: Value = c
        .get(format!("{url}/circuit-breakers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let key = items[0]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("http:"), "{key}");
    assert_eq!(items[0]["status"], "OPEN", "{list}");
    let r = c
        .post(format!("{url}/circuit-breakers/{key}/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{url}/circuit-breakers/{key}/reset"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "breaker_not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_guards_everything_but_the_probes() {
    let s = setup(HttpConfig::new().bearer_token("s3cret")).await;
    let (c, url) = (&s.client, &s.server.url);
    let r = c.get(format!("{url}/workflows")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    problem(r, 401, "missing_token").await;
    let r = c
        .get(format!("{url}/workflows"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    problem(r, 401, "invalid_token").await;
    let r = c
        .get(format!("{url}/workflows"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for open in ["/health", "/ready"] {
        let r = c.get(format!("{url}{open}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{open}");
    }
    // An EventSource cannot send headers: event streams take the token in the query.
    let r = c
        .get(format!("{url}/events?access_token=s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{url}/executions?access_token=s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "only event streams take a query token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_an_origin_is_allowed() {
    let s = setup(HttpConfig::new()).await;
    let preflight = |url: String| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", "https://app.example.test")
            .header("access-control-request-method", "POST")
    };
    let r = preflight(format!("{}/workflows", s.server.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let open = setup(HttpConfig::new().allow_origin("https://app.example.test")).await;
    let r = preflight(format!("{}/workflows", open.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.test"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_histograms_and_stats_count_the_backend() {
    // nextest runs each test in its own process, so this global recorder is this test's.
    let handle = spane_http::install_prometheus().unwrap();
    let s = setup(HttpConfig::new().prometheus(handle)).await;
    let (c, url) = (&s.client, &s.server.url);
    register(c, url, &chain("ok", ["pass", "pass", "pass"])).await;
    let id = execute(c, url, "ok", json!({})).await;
    s.engine.wait_for_execution(id, DEADLINE).await.unwrap();
    let text = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("spane_http_request_duration_seconds_bucket{")
            && text.contains("le=\"0.005\""),
        "{text}"
    );
    assert!(
        text.contains("route=\"/workflows/{id}/executions\""),
        "{text}"
    );
    assert!(text.contains("spane_http_requests_total"), "{text}");
    let stats: Value = c
        .get(format!("{url}/queue/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["deadLetters"], 0);
    assert_eq!(stats["executionsByStatus"]["completed"], 1, "{stats}");
    let ready: Value = c
        .get(format!("{url}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_a_recorder_say_so() {
    let s = setup(HttpConfig::new()).await;
    let r = s
        .client
        .get(format!("{}/metrics", s.server.url))
        .send()
        .await
        .unwrap();
    let body = problem(r, 501, "unsupported").await;
    assert!(body["detail"].as_str().unwrap().contains("Prometheus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_the_definition_schema_are_served() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    let doc: Value = c
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/workflows",
        "/workflows/{id}/executions",
        "/executions",
        "/executions/{id}/events",
        "/dlq/{executionId}/{nodeId}/retry",
        "/circuit-breakers/{key}/reset",
        "/metrics",
        "/executions/{id}/children",
        "/schedules",
        "/schedules/{id}",
        "/workflows/{id}/schedules",
        "/workflows/{id}/scheduled-executions",
        "/webhooks/{path}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let schema: Value = c
        .get(format!("{url}/schemas/workflow-definition.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["title"], "WorkflowDefinition");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"id") && required.contains(&"nodes"),
        "{schema}"
    );
    assert!(
        schema["properties"]["entryNodeId"].is_object(),
        "camelCase as on the wire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_execution_is_explained_and_a_failed_one_is_re_run() {
    let s = setup(HttpConfig::new()).await;
    let (c, url) = (&s.client, &s.server.url);
    register(c, url, &chain("stuck", ["pass", "wait", "pass"])).await;
    register(c, url, &chain("bad", ["pass", "flaky", "pass"])).await;

    // Why is it stuck: `b` runs (waits for the gate), `c` waits for it.
    let stuck = execute(c, url, "stuck", json!({})).await;
    let explained = tokio::time::timeout(DEADLINE, async {
        loop {
            let r = c
                .get(format!("{url}/executions/{stuck}/explain"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            if body["nodes"][0]["reason"]["kind"] == "running" {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("node b is running");
    assert_eq!(explained["executionId"], stuck.to_string());
    assert_eq!(explained["status"], "running");
    assert_eq!(explained["nodes"][0]["nodeId"], "b");
    assert_eq!(explained["nodes"][1]["nodeId"], "c");
    assert_eq!(explained["nodes"][1]["reason"]["kind"], "waitingForParents");
    assert!(explained["summary"].as_str().is_some_and(|s| !s.is_empty()));
    s.gate.open(1);
    s.engine.wait_for_execution(stuck, DEADLINE).await.unwrap();

    // A failed execution: retry what failed, keeping `a`.
    s.failing.store(true, Ordering::SeqCst);
    let failed = execute(c, url, "bad", json!({ "order": 7 })).await;
    s.engine.wait_for_execution(failed, DEADLINE).await.unwrap();
    s.failing.store(false, Ordering::SeqCst);
    let r = c
        .post(format!("{url}/executions/{failed}/retry-failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let retried: Value = r.json().await.unwrap();
    assert_eq!(retried["rerunOf"], failed.to_string());
    assert_eq!(retried["kept"], json!(["a"]));
    assert_eq!(retried["rerun"], json!(["b", "c"]));
    let retry_id: ExecutionId = retried["executionId"].as_str().unwrap().parse().unwrap();
    let done = s
        .engine
        .wait_for_execution(retry_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);

    // Re-run its last node with another input.
    let r = c
        .post(format!("{url}/executions/{retry_id}/rerun"))
        .json(&json!({ "fromNode": "c", "input": { "order": 8 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let rerun: Value = r.json().await.unwrap();
    assert_eq!(rerun["kept"], json!(["a", "b"]));
    assert_eq!(rerun["rerun"], json!(["c"]));
    let rerun_id: ExecutionId = rerun["executionId"].as_str().unwrap().parse().unwrap();
    let done = s
        .engine
        .wait_for_execution(rerun_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(done.output("c"), Some(&json!({ "order": 8 })));

    // Refusals name the problem.
    let r = c
        .post(format!("{url}/executions/{retry_id}/rerun"))
        .json(&json!({ "fromNode": "nope" }))
        .send()
        .await
        .unwrap();
    let body = problem(r, 422, "unknown_node").await;
    assert!(body["detail"].as_str().unwrap().contains("nope"), "{body}");
    let r = c
        .post(format!("{url}/executions/{retry_id}/retry-failed"))
        .send()
        .await
        .unwrap();
    problem(r, 409, "nothing_failed").await;
    let r = c
        .post(format!("{url}/executions/{retry_id}/rerun"))
        .json(&json!({ "fromNode": "c", "extra": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let unknown = ExecutionId::new();
    for r in [
        c.get(format!("{url}/executions/{unknown}/explain")),
        c.post(format!("{url}/executions/{unknown}/retry-failed")),
        c.post(format!("{url}/executions/{unknown}/rerun"))
            .json(&json!({ "fromNode": "a" })),
    ] {
        problem(r.send().await.unwrap(), 404, "execution_not_found").await;
    }
}
