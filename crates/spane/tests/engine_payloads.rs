//! Claim check: a large output is kept aside, its reference flows through the hot state, and
//! every reader sees the data.

mod common;

use common::*;
use serde_json::{Value, json};
use spane::prelude::*;
use spane::queue::backend::as_payload_ref;

const BIG: usize = 200 * 1024;

async fn a_200_kib_output_flows_to_its_child_and_into_the_record(b: Backend) {
    let mut r = NodeRegistry::new();
    r.register(
        "big",
        executor_fn(|_ctx| async move {
            Ok(NodeOutput::new(
                json!({ "blob": "x".repeat(BIG), "n": 0, "ok": false }),
            ))
        }),
    );
    r.register(
        "measure",
        executor_fn(|ctx| async move {
            let all = ctx.all_results().await?;
            Ok(NodeOutput::new(json!({
                "input_len": ctx.input_data["blob"].as_str().map_or(0, str::len),
                "input_rest": [ctx.input_data["n"].clone(), ctx.input_data["ok"].clone()],
                "previous_len": ctx.previous_results["pause"]["blob"].as_str().map_or(0, str::len),
                "all_len": all["big"]["blob"].as_str().map_or(0, str::len),
            })))
        }),
    );
    let engine = engine(b, r, 2).await;
    let wf = WorkflowDefinition::new("claim", "claim")
        .node(NodeDefinition::new("big", "big"))
        .node(NodeDefinition::new("pause", "delay").with_config(json!({"duration": 0})))
        .node(NodeDefinition::new("measure", "measure"))
        .edge("big", "pause")
        .edge("pause", "measure");
    let rec = run(&engine, wf, json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);

    // The child (through a delay, which passes the reference on) saw the whole payload.
    assert_eq!(
        rec.output("measure"),
        Some(
            &json!({"input_len": BIG, "input_rest": [0, false], "previous_len": BIG, "all_len": BIG})
        )
    );
    // The record the API returns holds the data.
    assert_eq!(
        rec.output("big").unwrap()["blob"].as_str().unwrap().len(),
        BIG
    );
    assert_eq!(rec.output("pause"), rec.output("big"));
    // The hot state holds only references.
    let raw = engine
        .queue()
        .execution(rec.execution_id)
        .await
        .unwrap()
        .unwrap();
    for node in ["big", "pause"] {
        let data: &Value = raw.output(node).unwrap();
        assert!(
            as_payload_ref(data).is_some(),
            "{node}: {}",
            data.to_string().len()
        );
        assert!(
            data.to_string().len() < 200,
            "{node} holds a reference, not the data"
        );
    }
    // Small outputs stay inline.
    assert!(as_payload_ref(raw.output("measure").unwrap()).is_none());
    engine.shutdown().await;
}

on_every_backend!(a_200_kib_output_flows_to_its_child_and_into_the_record);
