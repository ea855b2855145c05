//! Schedules, one-shots, webhooks and sub-workflow links over HTTP: on the embedded engine,
//! and on Redis where the state is shared (idempotency keys across two server instances).

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use spane::events::LocalBus;
use spane::prelude::*;
use spane::triggers::chrono::{TimeZone, Utc};
use spane::triggers::{ManualClock, TriggerConfig, sign};
use spane_http::HttpConfig;

/// An embedded engine with workers whose triggers read `clock`.
fn clocked_engine(clock: &Arc<ManualClock>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .registry(registry(&Gate::new(), &Arc::new(AtomicBool::new(false))))
        .event_bus(Arc::new(LocalBus::with_journal(1024, 1024)))
        .triggers(TriggerConfig::default().clock(clock.clone()))
        .config(spane::EngineConfig::default().claim_wait(Duration::from_millis(100)))
        .build();
    engine.start_workers(2).unwrap();
    engine
}

async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap()
}

/// Percent-encodes a schedule id for a path segment (ids hold spaces, `*` and `/`).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_schedules_are_upserted_listed_fired_and_removed() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap(),
    ));
    let engine = clocked_engine(&clock);
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let (c, url) = (&reqwest::Client::new(), &server.url);
    register(c, url, &chain("report", ["pass", "pass", "pass"])).await;

    let body = json!({ "workflowId": "report", "cron": "*/5 * * * *", "timezone": "Europe/London",
                       "catchUp": "all", "catchUpLimit": 3, "data": { "kind": "five" } });
    let r = c
        .post(format!("{url}/schedules"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await.unwrap();
    let id = "schedule:report:*/5 * * * *";
    assert_eq!(stored["id"], id);
    assert_eq!(stored["kind"], "cron");
    assert_eq!(stored["timezone"], "Europe/London");
    assert_eq!(stored["catchUp"], "all");
    assert_eq!(stored["catchUpLimit"], 3);
    assert_eq!(stored["source"], "api");
    assert_eq!(stored["fires"], 0);
    let next = Utc.with_ymd_and_hms(2026, 1, 15, 12, 5, 0).unwrap();
    assert_eq!(stored["nextFire"], next.timestamp_millis());
    // Idempotent: the same body again keeps one schedule and its next fire.
    let again: Value = c
        .post(format!("{url}/schedules"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["nextFire"], stored["nextFire"]);
    let list = get_json(c, &format!("{url}/schedules")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let list = get_json(c, &format!("{url}/schedules?workflowId=other")).await;
    assert_eq!(list["items"], json!([]));

    // The tick fires; the schedule then names the execution it started.
    clock.set(next);
    engine.run_due_schedules().await.unwrap();
    let one = get_json(c, &format!("{url}/schedules/{}", encode(id))).await;
    assert_eq!(one["fires"], 1, "{one}");
    assert_eq!(one["lastFire"], next.timestamp_millis());
    let execution: ExecutionId = one["lastExecutionId"].as_str().unwrap().parse().unwrap();
    let record = engine
        .wait_for_execution(execution, DEADLINE)
        .await
        .unwrap();
    assert_eq!(record.initial_data["kind"], "five");
    assert_eq!(record.initial_data["_trigger"]["scheduleId"], id);

    // Removed one at a time, then a workflow's all at once.
    let r = c
        .delete(format!("{url}/schedules/{}", encode(id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(format!("{url}/schedules/{}", encode(id)))
        .send()
        .await
        .unwrap();
    problem(r, 404, "schedule_not_found").await;
    let r = c
        .delete(format!("{url}/schedules/{}", encode(id)))
        .send()
        .await
        .unwrap();
    problem(r, 404, "schedule_not_found").await;
    for cron in ["0 9 * * *", "0 18 * * *"] {
        let r = c
            .post(format!("{url}/schedules"))
            .json(&json!({ "workflowId": "report", "cron": cron }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let removed: Value = c
        .delete(format!("{url}/workflows/report/schedules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["count"], 2);
    let list = get_json(c, &format!("{url}/schedules")).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_naming_the_field() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap(),
    ));
    let server = serve(clocked_engine(&clock), HttpConfig::new()).await;
    let (c, url) = (&reqwest::Client::new(), &server.url);
    register(c, url, &chain("report", ["pass", "pass", "pass"])).await;
    let post = |body: Value| {
        let c = c.clone();
        let url = url.clone();
        async move {
            c.post(format!("{url}/schedules"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let p = problem(
        post(json!({ "workflowId": "report", "cron": "not a cron" })).await,
        422,
        "invalid_schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("not a cron"), "{p}");
    let p = problem(
        post(json!({ "workflowId": "report", "cron": "0 9 * * *", "timezone": "Mars/Olympus" }))
            .await,
        422,
        "invalid_schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("Mars/Olympus"));
    let p = problem(
        post(json!({ "workflowId": "report", "cron": "0 0 30 2 *" })).await,
        422,
        "invalid_schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("never fires"), "{p}");
    let p = problem(
        post(json!({ "workflowId": "report", "cron": "0 9 * * *", "data": [1, 2] })).await,
        422,
        "invalid_schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("data"), "{p}");
    let p = problem(
        post(json!({ "workflowId": "report", "cron": "0 9 * * *", "catchUp": "sometimes" })).await,
        422,
        "invalid_schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("sometimes"));
    let p = problem(
        post(json!({ "workflowId": "report", "cron": "0 9 * * *", "catchUpLimit": 4 })).await,
        422,
        "invalid_schedule",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("catchUpLimit"));
    problem(
        post(json!({ "workflowId": "ghost", "cron": "0 9 * * *" })).await,
        404,
        "workflow_not_found",
    )
    .await;
    problem(
        post(json!({ "workflowId": "report", "cron": "0 9 * * *", "colour": "red" })).await,
        422,
        "invalid_body",
    )
    .await;
    let r = c
        .post(format!("{url}/workflows/report/scheduled-executions"))
        .json(&json!({ "at": "tomorrow" }))
        .send()
        .await
        .unwrap();
    let p = problem(r, 422, "invalid_schedule").await;
    assert!(p["detail"].as_str().unwrap().contains("tomorrow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_fires_once_or_is_cancelled() {
    let start = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let engine = clocked_engine(&clock);
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let (c, url) = (&reqwest::Client::new(), &server.url);
    register(c, url, &chain("report", ["pass", "pass", "pass"])).await;

    let schedule = |at: Value| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let r = c
                .post(format!("{url}/workflows/report/scheduled-executions"))
                .json(&json!({ "at": at, "data": { "once": true } }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    };
    let soon = schedule(json!("2026-01-15T12:01:00Z")).await;
    let later = schedule(json!(start.timestamp_millis() + 3_600_000)).await;
    let soon_id = soon["scheduleId"].as_str().unwrap().to_owned();
    let later_id = later["scheduleId"].as_str().unwrap().to_owned();
    assert!(soon_id.starts_with("once:report:"));
    assert_eq!(soon["at"], start.timestamp_millis() + 60_000);
    let one = get_json(c, &format!("{url}/schedules/{}", encode(&later_id))).await;
    assert_eq!(one["kind"], "once");
    assert_eq!(one["at"], start.timestamp_millis() + 3_600_000);

    // The later one is cancelled; the sooner one fires and is gone.
    let r = c
        .delete(format!("{url}/schedules/{}", encode(&later_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let mut fired = engine.trigger_events();
    clock.set(start + spane::triggers::chrono::Duration::hours(2));
    engine.run_due_schedules().await.unwrap();
    let execution = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(spane::triggers::TriggerEvent::ScheduleFired {
                schedule_id,
                execution_id,
                ..
            }) = fired.recv().await
            {
                assert_eq!(schedule_id, soon_id, "only the one-shot left fires");
                return execution_id;
            }
        }
    })
    .await
    .expect("the one-shot fires");
    let record = engine
        .wait_for_execution(execution, DEADLINE)
        .await
        .unwrap();
    assert_eq!(record.initial_data["once"], true);
    assert_eq!(
        record.initial_data["_trigger"]["scheduleId"],
        soon_id.as_str()
    );
    let list = get_json(c, &format!("{url}/schedules")).await;
    assert_eq!(list["items"], json!([]), "a fired one-shot is removed");
    // Cancelling after it fired: nothing to cancel.
    let r = c
        .delete(format!("{url}/schedules/{}", encode(&soon_id)))
        .send()
        .await
        .unwrap();
    problem(r, 404, "schedule_not_found").await;
}

fn hooked(id: &str, trigger: Value) -> Value {
    let mut d = chain(id, ["pass", "pass", "pass"]);
    d["triggers"] = json!([{ "type": "webhook", "config": trigger }]);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_start_executions_and_each_refusal_has_its_status() {
    let engine = WorkflowEngine::builder()
        .registry(registry(&Gate::new(), &Arc::new(AtomicBool::new(false))))
        .triggers(TriggerConfig::default().max_body_bytes(64))
        .build();
    engine.start_workers(2).unwrap();
    let server = serve(engine.clone(), HttpConfig::new().bearer_token("t0ken")).await;
    let (c, url) = (&reqwest::Client::new(), &server.url);
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth("t0ken");
    for d in [
        hooked("open", json!({ "path": "hooks/open" })),
        hooked("put-only", json!({ "path": "hooks/put", "method": "PUT" })),
        hooked(
            "signed",
            json!({ "path": "hooks/signed", "method": "POST",
                    "signature": { "secret": "whsec", "timestampHeader": "X-Timestamp", "tolerance": "5m" } }),
        ),
    ] {
        let r = auth(c.post(format!("{url}/workflows")))
            .json(&d)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    // An open trigger, any method, no bearer token needed (senders cannot add one).
    let r = c
        .patch(format!("{url}/webhooks/hooks/open/"))
        .body(r#"{"n": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replayed"], false);
    let id: ExecutionId = body["executionIds"][0].as_str().unwrap().parse().unwrap();
    let record = engine.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(record.workflow_id, "open");
    assert_eq!(record.initial_data, json!({ "n": 1 }));

    // The method the trigger names, and only that one.
    let r = c
        .post(format!("{url}/webhooks/hooks/put"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "webhook_not_found").await;
    let r = c
        .put(format!("{url}/webhooks/hooks/put"))
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .post(format!("{url}/webhooks/nowhere"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "webhook_not_found").await;
    let r = c
        .post(format!("{url}/webhooks/hooks/open"))
        .body(vec![b'x'; 65])
        .send()
        .await
        .unwrap();
    let p = problem(r, 413, "payload_too_large").await;
    assert!(p["detail"].as_str().unwrap().contains("64"), "{p}");
    let r = c
        .post(format!("{url}/webhooks/hooks/open"))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    problem(r, 400, "body_not_text").await;
    let r = c
        .post(format!("{url}/webhooks/hooks/open"))
        .header("Idempotency-Key", "k".repeat(300))
        .send()
        .await
        .unwrap();
    problem(r, 400, "bad_idempotency_key").await;

    // Signatures: the raw body and the headers reach the check.
    let body = br#"{"amount": 5}"#;
    let now = Utc::now().timestamp();
    let signed = |ts: i64, signature: String| {
        c.post(format!("{url}/webhooks/hooks/signed"))
            .header("X-Spane-Signature", signature)
            .header("X-Timestamp", ts.to_string())
            .body(body.to_vec())
    };
    let r = signed(now, sign("whsec", Some(now), body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let r = signed(now, sign("wrong", Some(now), body))
        .send()
        .await
        .unwrap();
    problem(r, 401, "bad_signature").await;
    let r = c
        .post(format!("{url}/webhooks/hooks/signed"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    problem(r, 401, "missing_signature").await;
    let stale = now - 3600;
    let r = signed(stale, sign("whsec", Some(stale), body))
        .send()
        .await
        .unwrap();
    problem(r, 401, "stale_timestamp").await;
    let r = c
        .post(format!("{url}/webhooks/hooks/signed"))
        .header("X-Spane-Signature", sign("whsec", None, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    problem(r, 401, "bad_timestamp").await;

    // With webhooks_need_token, the bearer token is required there too.
    let strict = serve(
        engine.clone(),
        HttpConfig::new()
            .bearer_token("t0ken")
            .webhooks_need_token(true),
    )
    .await;
    let r = c
        .post(format!("{}/webhooks/hooks/open", strict.url))
        .send()
        .await
        .unwrap();
    problem(r, 401, "missing_token").await;
    let r = auth(c.post(format!("{}/webhooks/hooks/open", strict.url)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// Sets a Redis key with a raw RESP command (the test needs no Redis client for one SET).
async fn redis_set(key: &str, value: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = redis_url();
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let parts = ["SET", key, value, "EX", "60"];
    let mut command = format!("*{}\r\n", parts.len());
    for p in parts {
        command.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    stream.write_all(command.as_bytes()).await.unwrap();
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_an_idempotency_key_is_shared_by_two_server_instances() {
    let prefix = unique_prefix();
    let instance = || async {
        let engine = WorkflowEngine::builder()
            .registry(registry(&Gate::new(), &Arc::new(AtomicBool::new(false))))
            .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix.clone()))
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
            .build();
        engine.start_workers(2).unwrap();
        engine
            .register_workflow(
                serde_json::from_value(hooked(
                    "orders",
                    json!({ "path": "orders", "method": "POST" }),
                ))
                .unwrap(),
            )
            .await
            .unwrap();
        engine
    };
    let (a, b) = (instance().await, instance().await);
    let (sa, sb) = (
        serve(a.clone(), HttpConfig::new()).await,
        serve(b.clone(), HttpConfig::new()).await,
    );
    let c = reqwest::Client::new();
    let deliver = |url: &str, key: &str| {
        c.post(format!("{url}/webhooks/orders"))
            .header("Idempotency-Key", key)
            .body(r#"{"order": 7}"#)
            .send()
    };
    let first = deliver(&sa.url, "evt-1").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["replayed"], false);
    // The same key through the other instance: the first delivery's execution, nothing new.
    let repeat = deliver(&sb.url, "evt-1").await.unwrap();
    assert_eq!(repeat.status(), 200);
    let repeat: Value = repeat.json().await.unwrap();
    assert_eq!(repeat["replayed"], true);
    assert_eq!(repeat["executionIds"], first["executionIds"]);
    let id: ExecutionId = first["executionIds"][0].as_str().unwrap().parse().unwrap();
    let record = b.wait_for_execution(id, DEADLINE).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Completed);
    // Another key starts another execution.
    let other = deliver(&sb.url, "evt-2").await.unwrap();
    assert_eq!(other.status(), 202);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["executionIds"], first["executionIds"]);

    // A key another instance is still processing (its in-progress mark, as that instance
    // writes it) is refused with 409 and Retry-After, so the sender comes back.
    redis_set(&format!("{prefix}:{{hooks}}:idem:orders|evt-3"), "pending").await;
    let busy = deliver(&sa.url, "evt-3").await.unwrap();
    assert_eq!(busy.headers()["retry-after"], "1");
    problem(busy, 409, "delivery_in_progress").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_lists_its_sub_workflow_children_and_a_child_names_its_parent() {
    let engine = embedded(
        registry(&Gate::new(), &Arc::new(AtomicBool::new(false))),
        Arc::new(LocalBus::with_journal(1024, 1024)),
    );
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let (c, url) = (&reqwest::Client::new(), &server.url);
    register(c, url, &chain("payment", ["pass", "pass", "pass"])).await;
    let parent_def = json!({
        "id": "order", "name": "Order",
        "nodes": [
            { "id": "validate", "type": "pass", "inputs": [], "outputs": ["pay"] },
            { "id": "pay", "type": "sub-workflow", "config": { "workflowId": "payment" },
              "inputs": ["validate"], "outputs": ["notify"] },
            { "id": "notify", "type": "pass", "inputs": ["pay"], "outputs": [] }
        ]
    });
    register(c, url, &parent_def).await;
    let parent = execute(c, url, "order", json!({ "total": 10 })).await;
    let record = engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Completed);

    let children = get_json(c, &format!("{url}/executions/{parent}/children")).await;
    let items = children["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{children}");
    assert_eq!(items[0]["parentNodeId"], "pay");
    assert_eq!(items[0]["workflowId"], "payment");
    assert_eq!(items[0]["status"], "completed");
    let child = items[0]["executionId"].as_str().unwrap();
    let child_json = get_json(c, &format!("{url}/executions/{child}")).await;
    assert_eq!(child_json["parentExecutionId"], parent.to_string());
    assert_eq!(child_json["parentNodeId"], "pay");
    assert_eq!(child_json["depth"], 1);
    let parent_json = get_json(c, &format!("{url}/executions/{parent}")).await;
    assert!(parent_json.get("parentExecutionId").is_none());
    assert_eq!(parent_json["depth"], 0);
    let none = get_json(c, &format!("{url}/executions/{child}/children")).await;
    assert_eq!(none["items"], json!([]));

    let r = c
        .get(format!("{url}/executions/{}/children", ExecutionId::new()))
        .send()
        .await
        .unwrap();
    problem(r, 404, "execution_not_found").await;
    let r = c
        .get(format!("{url}/executions/nope/children"))
        .send()
        .await
        .unwrap();
    problem(r, 400, "bad_request").await;
}
