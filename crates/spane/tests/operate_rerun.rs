//! Re-running part of an execution, on every backend: outputs reused exactly, executors above
//! the node not called again, skipped nodes decided afresh below it, retry_failed, and the
//! named errors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::json;
use spane::core::rerun::RerunError;
use spane::prelude::*;
use spane::{RerunOptions, core::explain::Reason};

fn diamond(id: &str) -> WorkflowDefinition {
    graph(
        id,
        &["a", "b", "c", "d"],
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    )
}

async fn rerun_from_the_middle_of_a_diamond(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 4).await;
    let first = run(&engine, diamond("diamond"), json!({"n": 1})).await;
    assert_eq!(first.status, ExecutionStatus::Completed);
    assert_eq!(calls.total(), 4);

    let rerun = engine
        .rerun_from(first.execution_id, "b", RerunOptions::new())
        .await
        .unwrap();
    assert_eq!(rerun.rerun_of, first.execution_id);
    assert_eq!(rerun.kept, vec!["a", "c"]);
    assert_eq!(rerun.rerun, vec!["b", "d"]);
    let second = engine
        .wait_for_execution(rerun.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(second.status, ExecutionStatus::Completed);
    // Above and beside the node: not called again, outputs reused exactly.
    assert_eq!((calls.count("a"), calls.count("c")), (1, 1));
    assert_eq!((calls.count("b"), calls.count("d")), (2, 2));
    for node in ["a", "b", "c", "d"] {
        assert_eq!(second.output(node), first.output(node), "{node}");
    }
    // The link is visible on the new execution.
    let e = engine.explain(rerun.execution_id).await.unwrap();
    assert_eq!(e.rerun_of, Some(first.execution_id));
    engine.shutdown().await;
}

/// `route` sends its input's `to` on; `pass` records.
fn branch_registry(calls: &Calls) -> NodeRegistry {
    let mut r = pass_registry(calls);
    let c = calls.clone();
    r.register(
        "route",
        executor_fn(move |ctx| {
            let c = c.clone();
            async move {
                c.hit(&ctx.node_id);
                let to = ctx.input_data["to"].as_str().unwrap_or("left").to_owned();
                Ok(NodeOutput::new(json!({"went": to})).with_next_nodes(vec![to]))
            }
        }),
    );
    r
}

fn branch(id: &str) -> WorkflowDefinition {
    WorkflowDefinition::new(id, id)
        .node(NodeDefinition::new("start", "pass"))
        .node(NodeDefinition::new("side", "pass"))
        .node(NodeDefinition::new("decide", "route"))
        .node(NodeDefinition::new("left", "pass"))
        .node(NodeDefinition::new("right", "pass"))
        .edge("start", "side")
        .edge("start", "decide")
        .edge("decide", "left")
        .edge("decide", "right")
}

async fn rerun_a_branch_keeps_skips_unless_the_route_changes(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, branch_registry(&calls), 4).await;
    let first = run(&engine, branch("branch"), json!({"to": "left"})).await;
    assert_eq!(first.node_results["right"].status, NodeStatus::Skipped);

    // Same input: the same route, right stays skipped; start and side are not called again.
    let same = engine
        .rerun_from(first.execution_id, "decide", RerunOptions::new())
        .await
        .unwrap();
    let second = engine
        .wait_for_execution(same.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(second.status, ExecutionStatus::Completed);
    assert_eq!(second.node_results["right"].status, NodeStatus::Skipped);
    assert_eq!((calls.count("start"), calls.count("side")), (1, 1));
    assert_eq!((calls.count("decide"), calls.count("left")), (2, 2));
    assert_eq!(second.output("start"), first.output("start"));

    // A changed input for decide: the route changes, right runs and left is skipped.
    let changed = engine
        .rerun_from(
            first.execution_id,
            "decide",
            RerunOptions::new().input(json!({"to": "right"})),
        )
        .await
        .unwrap();
    let third = engine
        .wait_for_execution(changed.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(third.status, ExecutionStatus::Completed);
    assert_eq!(third.node_results["left"].status, NodeStatus::Skipped);
    assert_eq!(third.node_results["right"].status, NodeStatus::Completed);
    assert_eq!(third.output("decide"), Some(&json!({"went": "right"})));
    assert_eq!((calls.count("start"), calls.count("right")), (1, 1));
    engine.shutdown().await;
}

async fn retry_failed_reruns_only_the_failed_part(b: Backend) {
    let calls = Calls::default();
    let broken = Arc::new(AtomicBool::new(true));
    let mut r = pass_registry(&calls);
    let (c, flag) = (calls.clone(), broken.clone());
    r.register(
        "fragile",
        executor_fn(move |ctx| {
            let (c, flag) = (c.clone(), flag.clone());
            async move {
                c.hit(&ctx.node_id);
                if flag.load(Ordering::SeqCst) {
                    Err(NodeError::fatal("disk full"))
                } else {
                    Ok(NodeOutput::new(json!("saved")))
                }
            }
        }),
    );
    let engine = engine(b, r, 4).await;
    let wf = WorkflowDefinition::new("fragile", "fragile")
        .node(NodeDefinition::new("a", "pass"))
        .node(NodeDefinition::new("ok", "pass"))
        .node(NodeDefinition::new("save", "fragile"))
        .node(NodeDefinition::new("after", "pass"))
        .edge("a", "ok")
        .edge("a", "save")
        .edge("save", "after");
    let first = run(&engine, wf, json!({})).await;
    assert_eq!(first.status, ExecutionStatus::Failed);
    let e = engine.explain(first.execution_id).await.unwrap();
    assert!(matches!(
        e.node("save").map(|n| &n.reason),
        Some(Reason::DeadLettered { .. })
    ));

    broken.store(false, Ordering::SeqCst);
    let retry = engine.retry_failed(first.execution_id).await.unwrap();
    assert_eq!(retry.rerun, vec!["save", "after"]);
    let second = engine
        .wait_for_execution(retry.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(second.status, ExecutionStatus::Completed);
    assert_eq!((calls.count("a"), calls.count("ok")), (1, 1));
    assert_eq!((calls.count("save"), calls.count("after")), (2, 1));
    assert_eq!(second.output("save"), Some(&json!("saved")));

    // Nothing failed in the new one.
    match engine.retry_failed(second.execution_id).await {
        Err(spane::Error::Rerun(RerunError::NothingFailed)) => {}
        other => panic!("{other:?}"),
    }
    engine.shutdown().await;
}

async fn a_changed_graph_above_the_node_is_refused(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 4).await;
    let first = run(&engine, diamond("evolving"), json!({})).await;

    // Version 2 changes only below b: the re-run takes it.
    let below = diamond("evolving")
        .node(NodeDefinition::new("e", "pass"))
        .edge("d", "e");
    assert_eq!(engine.register_workflow(below).await.unwrap(), 2);
    let ok = engine
        .rerun_from(
            first.execution_id,
            "b",
            RerunOptions::new().latest_version(true),
        )
        .await
        .unwrap();
    assert_eq!(ok.workflow_version, 2);
    let done = engine
        .wait_for_execution(ok.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("e"), 1);
    assert_eq!(calls.count("a"), 1);

    // Version 3 changes c's config (beside b, kept by the re-run): refused, naming c.
    let mut changed = diamond("evolving")
        .node(NodeDefinition::new("e", "pass"))
        .edge("d", "e");
    for n in &mut changed.nodes {
        if n.id == "c" {
            n.config = json!({"v": 3});
        }
    }
    assert_eq!(engine.register_workflow(changed).await.unwrap(), 3);
    match engine
        .rerun_from(
            first.execution_id,
            "b",
            RerunOptions::new().latest_version(true),
        )
        .await
    {
        Err(spane::Error::Rerun(RerunError::GraphChanged { node, version, .. })) => {
            assert_eq!((node.as_str(), version), ("c", 3));
        }
        other => panic!("{other:?}"),
    }
    // On the pinned version it is still allowed.
    let pinned = engine
        .rerun_from(first.execution_id, "b", RerunOptions::new())
        .await
        .unwrap();
    assert_eq!(pinned.workflow_version, 1);
    match engine
        .rerun_from(first.execution_id, "nope", RerunOptions::new())
        .await
    {
        Err(spane::Error::Rerun(RerunError::UnknownNode { node, .. })) => assert_eq!(node, "nope"),
        other => panic!("{other:?}"),
    }
    // An execution nobody knows is not found (not "gone past its retention").
    let unknown = ExecutionId::new();
    match engine.rerun_from(unknown, "b", RerunOptions::new()).await {
        Err(spane::Error::ExecutionNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("{other:?}"),
    }
    match engine.retry_failed(unknown).await {
        Err(spane::Error::ExecutionNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("{other:?}"),
    }
    engine
        .wait_for_execution(pinned.execution_id, DEADLINE)
        .await
        .unwrap();
    engine.shutdown().await;
}

on_every_backend!(
    rerun_from_the_middle_of_a_diamond,
    rerun_a_branch_keeps_skips_unless_the_route_changes,
    retry_failed_reruns_only_the_failed_part,
    a_changed_graph_above_the_node_is_refused,
);
