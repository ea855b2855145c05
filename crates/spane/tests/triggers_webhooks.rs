//! Webhooks through the engine, on both backends: matching, signatures, idempotent
//! redelivery, body limits, and that a webhook's execution runs like any other.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use spane::core::{Trigger, WebhookTrigger};
use spane::prelude::*;
use spane::triggers::chrono::{TimeZone, Utc};
use spane::triggers::{ManualClock, TriggerConfig, TriggerEvent, WebhookError, sign};

fn hooked(id: &str, path: &str, method: Option<&str>, extra: Value) -> WorkflowDefinition {
    let extra = match extra {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    graph(id, &["a"], &[]).trigger(Trigger::Webhook(WebhookTrigger {
        path: path.to_owned(),
        method: method.map(str::to_owned),
        extra,
    }))
}

async fn hook_engine(backend: Backend, config: TriggerConfig) -> WorkflowEngine {
    let builder = WorkflowEngine::builder()
        .registry(pass_registry(&Calls::default()))
        .triggers(config)
        .config(
            spane::EngineConfig::default()
                .claim_wait(Duration::from_millis(200))
                .shutdown_timeout(Duration::from_secs(5)),
        );
    match backend {
        Backend::Embedded => builder.build(),
        Backend::Redis => builder
            .redis(redis_config())
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
            .build(),
    }
}

fn refusal(r: Result<Vec<ExecutionId>, spane::Error>) -> WebhookError {
    match r {
        Err(spane::Error::Webhook(e)) => e,
        other => panic!("expected a webhook refusal, got {other:?}"),
    }
}

async fn matching_and_execution(backend: Backend) {
    let engine = hook_engine(backend, TriggerConfig::default()).await;
    engine.start_workers(2).unwrap();
    let mut events = engine.trigger_events();
    engine
        .register_workflow(hooked(
            "signup",
            "/users/signup/",
            Some("post"),
            Value::Null,
        ))
        .await
        .unwrap();
    engine
        .register_workflow(hooked("audit", "users//signup", None, Value::Null))
        .await
        .unwrap();
    engine
        .register_workflow(hooked("other", "orders", Some("PUT"), Value::Null))
        .await
        .unwrap();

    let body = br#"{"email":"ada@example.com"}"#;
    let ids = engine
        .trigger_webhook("users/signup", "POST", body, &[])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2, "every matching workflow starts");
    let mut workflows = Vec::new();
    for id in &ids {
        let rec = engine.wait_for_execution(*id, DEADLINE).await.unwrap();
        assert_eq!(rec.status, ExecutionStatus::Completed);
        assert_eq!(
            rec.initial_data,
            json!({"email": "ada@example.com"}),
            "the body is the input"
        );
        assert_eq!(
            rec.output("a").unwrap()["input"]["email"],
            "ada@example.com"
        );
        workflows.push(rec.workflow_id);
    }
    workflows.sort();
    assert_eq!(workflows, vec!["audit", "signup"]);
    match events.recv().await.unwrap() {
        TriggerEvent::WebhookAccepted {
            path,
            execution_ids,
            replayed,
        } => {
            assert_eq!(
                (path.as_str(), execution_ids, replayed),
                ("users/signup", ids.clone(), false)
            );
        }
        other => panic!("unexpected event {other:?}"),
    }

    // (path, method, how many start)
    let table: &[(&str, &str, usize)] = &[
        ("/users/signup", "post", 2),
        ("users/signup/", "GET", 1),
        ("//users//signup//", "DELETE", 1),
        ("orders", "PUT", 1),
        ("/orders/", "put", 1),
    ];
    for (path, method, n) in table {
        let ids = engine
            .trigger_webhook(path, method, b"", &[])
            .await
            .unwrap();
        assert_eq!(ids.len(), *n, "{method} {path}");
        let rec = engine.get_execution(ids[0]).await.unwrap().unwrap();
        assert_eq!(rec.initial_data, Value::Null, "an empty body is null");
    }
    for (path, method) in [
        ("orders", "POST"),
        ("users", "POST"),
        ("users/signup/x", "POST"),
        ("", "GET"),
    ] {
        let e = refusal(engine.trigger_webhook(path, method, b"", &[]).await);
        assert!(
            matches!(e, WebhookError::NoMatch { .. }),
            "{method} {path}: {e}"
        );
    }
    // A text body that is not JSON arrives as a string.
    let ids = engine
        .trigger_webhook("orders", "PUT", b"a=1&b=2", &[])
        .await
        .unwrap();
    let rec = engine.get_execution(ids[0]).await.unwrap().unwrap();
    assert_eq!(rec.initial_data, json!("a=1&b=2"));
    let e = refusal(
        engine
            .trigger_webhook("orders", "PUT", &[0xff, 0xfe, 0x00], &[])
            .await,
    );
    assert!(matches!(e, WebhookError::BodyNotText { .. }), "{e}");
    engine.shutdown().await;
}

async fn signatures_are_verified(backend: Backend) {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let engine = hook_engine(backend, TriggerConfig::default().clock(clock.clone())).await;
    let signature = json!({"signature": {"secret": "whsec", "header": "X-Hub-Signature-256",
        "timestampHeader": "X-Timestamp", "tolerance": "2m"}});
    engine
        .register_workflow(hooked("paid", "billing", Some("POST"), signature))
        .await
        .unwrap();
    let body = br#"{"invoice":42}"#;
    let ts = now.timestamp().to_string();
    let good = sign("whsec", Some(now.timestamp()), body);

    let ok = engine
        .trigger_webhook(
            "billing",
            "POST",
            body,
            &[("x-hub-signature-256", &good), ("x-timestamp", &ts)],
        )
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);

    let forged = sign("guess", Some(now.timestamp()), body);
    let e = refusal(
        engine
            .trigger_webhook(
                "billing",
                "POST",
                body,
                &[("X-Hub-Signature-256", &forged), ("X-Timestamp", &ts)],
            )
            .await,
    );
    assert_eq!(
        e,
        WebhookError::BadSignature {
            path: "billing".into(),
            workflow: "paid".into(),
            header: "X-Hub-Signature-256".into()
        }
    );
    // The body changed in transit.
    let e = refusal(
        engine
            .trigger_webhook(
                "billing",
                "POST",
                br#"{"invoice":43}"#,
                &[("X-Hub-Signature-256", &good), ("X-Timestamp", &ts)],
            )
            .await,
    );
    assert!(matches!(e, WebhookError::BadSignature { .. }), "{e}");
    let e = refusal(
        engine
            .trigger_webhook("billing", "POST", body, &[("X-Timestamp", &ts)])
            .await,
    );
    assert!(matches!(e, WebhookError::MissingSignature { .. }), "{e}");
    let e = refusal(
        engine
            .trigger_webhook("billing", "POST", body, &[("X-Hub-Signature-256", &good)])
            .await,
    );
    assert!(matches!(e, WebhookError::BadTimestamp { .. }), "{e}");
    // A replay three minutes later is outside the two-minute tolerance.
    clock.advance(spane::triggers::chrono::Duration::minutes(3));
    let e = refusal(
        engine
            .trigger_webhook(
                "billing",
                "POST",
                body,
                &[("X-Hub-Signature-256", &good), ("X-Timestamp", &ts)],
            )
            .await,
    );
    assert!(matches!(e, WebhookError::StaleTimestamp { .. }), "{e}");
    assert!(e.to_string().contains("tolerance"), "{e}");

    // Invalid signature settings are refused at registration, naming the field.
    let bad = hooked("bad", "x", None, json!({"signature": {"secret": ""}}));
    let e = engine.register_workflow(bad).await.unwrap_err().to_string();
    assert!(e.contains("config.signature.secret"), "{e}");
    assert!(engine.get_workflow("bad").await.unwrap().is_none());
}

async fn idempotent_redelivery(backend: Backend) {
    let engine = hook_engine(
        backend,
        TriggerConfig::default().idempotency_window(Duration::from_secs(600)),
    )
    .await;
    engine
        .register_workflow(hooked("a", "events", None, Value::Null))
        .await
        .unwrap();
    engine
        .register_workflow(hooked("b", "events", None, Value::Null))
        .await
        .unwrap();
    let first = engine
        .trigger_webhook("events", "POST", b"{}", &[("Idempotency-Key", "evt_1")])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let again = engine
        .trigger_webhook("/events/", "POST", b"{}", &[("idempotency-key", "evt_1")])
        .await
        .unwrap();
    assert_eq!(again, first, "a redelivery returns the first executions");
    let other = engine
        .trigger_webhook("events", "POST", b"{}", &[("Idempotency-Key", "evt_2")])
        .await
        .unwrap();
    assert_eq!(other.len(), 2);
    assert!(
        other.iter().all(|id| !first.contains(id)),
        "another key starts new executions"
    );
    let none = engine
        .trigger_webhook("events", "POST", b"{}", &[])
        .await
        .unwrap();
    assert!(
        none.iter()
            .all(|id| !first.contains(id) && !other.contains(id))
    );
    let e = refusal(
        engine
            .trigger_webhook("events", "POST", b"{}", &[("Idempotency-Key", "")])
            .await,
    );
    assert!(matches!(e, WebhookError::BadIdempotencyKey { .. }), "{e}");
}

async fn body_limit(backend: Backend) {
    let engine = hook_engine(backend, TriggerConfig::default().max_body_bytes(16)).await;
    engine
        .register_workflow(hooked("small", "tiny", None, Value::Null))
        .await
        .unwrap();
    let e = refusal(
        engine
            .trigger_webhook("tiny", "POST", &[b' '; 17], &[])
            .await,
    );
    assert_eq!(
        e,
        WebhookError::BodyTooLarge {
            path: "tiny".into(),
            size: 17,
            limit: 16
        }
    );
    assert_eq!(
        engine
            .trigger_webhook("tiny", "POST", b"[1,2,3]", &[])
            .await
            .unwrap()
            .len(),
        1
    );
}

on_every_backend!(
    matching_and_execution,
    signatures_are_verified,
    idempotent_redelivery,
    body_limit
);

/// Two instances on one Redis: a redelivery to the other instance returns the same
/// executions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_shared_across_instances() {
    let prefix = unique_prefix();
    let make = || async {
        WorkflowEngine::builder()
            .registry(pass_registry(&Calls::default()))
            .redis(spane::queue::RedisConfig::new(redis_url()).prefix(&prefix))
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
            .build()
    };
    let (a, b) = (make().await, make().await);
    for e in [&a, &b] {
        e.register_workflow(hooked("w", "shared", None, Value::Null))
            .await
            .unwrap();
    }
    let first = a
        .trigger_webhook("shared", "POST", b"{}", &[("Idempotency-Key", "k")])
        .await
        .unwrap();
    let again = b
        .trigger_webhook("shared", "POST", b"{}", &[("Idempotency-Key", "k")])
        .await
        .unwrap();
    assert_eq!(first, again);
}
