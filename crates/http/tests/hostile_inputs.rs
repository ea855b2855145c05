//! Hostile HTTP input: generated requests (methods, paths with odd segments, query strings,
//! headers, bodies that are not UTF-8, not JSON, deeply nested, huge, or of the wrong shape)
//! against the router, in process. None may panic or answer 500; every refusal is a problem
//! document with a stable `code`.
//!
//! CI runs 600 cases from a fixed seed; `SPANE_HOSTILE_HTTP_CASES` and
//! `SPANE_HOSTILE_HTTP_SEED` run more or others.

// The test reports the answers it saw.
#![allow(clippy::print_stderr)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use spane::prelude::*;
use spane_http::HttpConfig;
use tower::ServiceExt;

/// A small deterministic generator (xorshift64*), so that a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A path segment: ordinary, empty-ish, encoded bytes, traversal, long, unicode, numbers.
fn segment(rng: &mut Rng) -> String {
    let fixed = [
        "w",
        "hostile",
        "..",
        "%2e%2e",
        "%00",
        "%ff%fe",
        "%25",
        "a%2Fb",
        "%20",
        "-1",
        "99999999999999999999999",
        "0",
        "01M8P6DKRPXP8SEG1RKJAW8VF8",
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "é%F0%9F%98%80",
        "'%3B%20DROP%20TABLE%20x",
        "null",
    ];
    match rng.below(10) {
        0 => "x".repeat(1 + rng.below(9000)),
        1 => ExecutionId::new().to_string(),
        _ => (*rng.pick(&fixed)).to_owned(),
    }
}

fn path(rng: &mut Rng) -> String {
    let s = |rng: &mut Rng| segment(rng);
    match rng.below(22) {
        0 => "/workflows".to_owned(),
        1 => format!("/workflows/{}", s(rng)),
        2 => format!("/workflows/{}/versions/{}", s(rng), s(rng)),
        3 => format!("/workflows/{}/executions", s(rng)),
        4 => format!("/workflows/{}/deactivate", s(rng)),
        5 => format!(
            "/executions?status={}&cursor={}&limit={}",
            s(rng),
            s(rng),
            s(rng)
        ),
        6 => format!("/executions/{}", s(rng)),
        7 => format!(
            "/executions/{}/{}",
            s(rng),
            rng.pick(&[
                "pause",
                "resume",
                "cancel",
                "children",
                "explain",
                "rerun",
                "retry-failed"
            ])
        ),
        8 => format!("/executions/{}", rng.pick(&["pause", "resume", "cancel"])),
        9 => format!("/dlq/{}/{}", s(rng), s(rng)),
        10 => format!("/dlq/{}/retry", s(rng)),
        11 => format!("/dlq?offset={}&limit={}", s(rng), s(rng)),
        12 => "/schedules".to_owned(),
        13 => format!("/schedules/{}", s(rng)),
        14 => format!("/workflows/{}/scheduled-executions", s(rng)),
        15 => format!("/webhooks/{}", s(rng)),
        16 => format!("/webhooks/{}/{}", s(rng), s(rng)),
        17 => format!("/circuit-breakers/{}/reset", s(rng)),
        18 => format!("/{}", s(rng)),
        19 => "/workflows/w/executions".to_owned(),
        20 => format!("/schedules?workflowId={}", s(rng)),
        _ => "/queue/stats".to_owned(),
    }
}

/// Nested arrays `depth` deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(14) {
        0 => Vec::new(),
        1 => vec![0xff, 0xfe, 0x00, 0xc3, 0x28],
        2 => b"{not json".to_vec(),
        3 => nested(1 + rng.below(5000)).into_bytes(),
        4 => json!({"id": "w", "nodes": "nope"}).to_string().into_bytes(),
        5 => json!({"id": "", "nodes": []}).to_string().into_bytes(),
        6 => json!({"id": "w", "nodes": [{"id": "a", "type": "sub-workflow", "config": {"inputMapping": 7}}]})
            .to_string()
            .into_bytes(),
        7 => json!({"id": "w", "nodes": [{"id": "a", "type": "delay", "config": {"duration": 1e300}}]})
            .to_string()
            .into_bytes(),
        8 => json!({"workflowId": "w", "cron": "* * * * * * * *", "timezone": "Mars/Olympus"})
            .to_string()
            .into_bytes(),
        9 => json!({"at": "yesterday", "data": [1, 2]}).to_string().into_bytes(),
        10 => json!({"ids": ["x", 1, null]}).to_string().into_bytes(),
        11 => format!("\"{}\"", "y".repeat(rng.below(200_000))).into_bytes(),
        12 => json!(99999999999999999999999999999.0_f64).to_string().into_bytes(),
        _ => json!({"data": {"deep": nested(100)}, "extra": "z".repeat(rng.below(1000))})
            .to_string()
            .into_bytes(),
    }
}

fn request(rng: &mut Rng) -> Request<Body> {
    let method = rng
        .pick(&[
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
            Method::OPTIONS,
        ])
        .clone();
    let mut builder = Request::builder().method(method).uri(path(rng));
    if rng.below(2) == 0 {
        builder = builder.header(
            "content-type",
            *rng.pick(&[
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "",
            ]),
        );
    }
    if rng.below(4) == 0 {
        builder = builder.header("idempotency-key", segment(rng).replace('%', "p"));
    }
    if rng.below(4) == 0 {
        builder = builder.header("last-event-id", segment(rng).replace('%', "p"));
    }
    builder
        .body(Body::from(body(rng)))
        .expect("a request the generator can build")
}

/// A refusal's body (at most 1 MiB; refusals are small).
async fn head_of(body: Body) -> Vec<u8> {
    match tokio::time::timeout(DEADLINE, axum::body::to_bytes(body, 1 << 20)).await {
        Ok(Ok(bytes)) => bytes.to_vec(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_named_refusals_never_a_crash() {
    let cases: usize = std::env::var("SPANE_HOSTILE_HTTP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("SPANE_HOSTILE_HTTP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01);
    let gate = Gate::new();
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let engine = WorkflowEngine::embedded(registry(&gate, &failing));
    engine
        .register_workflow(WorkflowDefinition::new("w", "w").node(NodeDefinition::new("a", "wait")))
        .await
        .unwrap();
    let app = spane_http::router(engine, HttpConfig::new());
    let mut rng = Rng(seed | 1);
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for case in 0..cases {
        let req = request(&mut rng);
        let head = req.method() == Method::HEAD;
        let what = format!("case {case} (seed {seed}): {} {}", req.method(), req.uri());
        let response = tokio::time::timeout(DEADLINE, app.clone().oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within {DEADLINE:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        *by_status.entry(status.as_u16()).or_default() += 1;
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: an internal error"
        );
        // A HEAD answer has no body; a 405 is the router's own.
        if status.is_client_error() && status != StatusCode::METHOD_NOT_ALLOWED && !head {
            let bytes = head_of(response.into_body()).await;
            let problem: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{what}: a {status} that is not JSON ({e})"));
            assert!(
                problem["code"].as_str().is_some_and(|c| !c.is_empty()),
                "{what}: a {status} without a code: {problem}"
            );
        }
    }
    assert!(
        by_status.len() > 3,
        "the cases reach several outcomes: {by_status:?}"
    );
    eprintln!("hostile_inputs: {cases} cases, seed {seed}, answers by status {by_status:?}");
}
