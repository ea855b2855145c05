//! Graph shapes on the embedded engine: chains, diamonds, fan-out/fan-in, several roots,
//! branching and skip propagation.

mod common;

use common::*;
use serde_json::json;
use spane::prelude::*;

async fn ten_node_chain_passes_data_down_the_chain(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 4).await;
    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    let edges: Vec<(&str, &str)> = nodes.windows(2).map(|w| (w[0], w[1])).collect();
    let rec = run(&engine, graph("chain", &nodes, &edges), json!({"seed": 1})).await;

    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.total(), 10);
    assert!(nodes.iter().all(|n| calls.count(n) == 1));
    // n9's input is n8's output, whose input is n7's output...: nesting depth proves the order.
    let mut v = rec.output("n9").unwrap().clone();
    for i in (0..10).rev() {
        assert_eq!(v["node"], json!(format!("n{i}")));
        v = v["input"].clone();
    }
    assert_eq!(v, json!({"seed": 1}), "the root received the initial data");
    engine.shutdown().await;
}

async fn diamond_join_runs_once_with_both_parents(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 4).await;
    let wf = graph(
        "diamond",
        &["a", "b", "c", "d"],
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    );
    let rec = run(&engine, wf, json!(7)).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("d"), 1);
    let d_input = &rec.output("d").unwrap()["input"];
    assert_eq!(d_input["b"]["node"], json!("b"));
    assert_eq!(d_input["c"]["node"], json!("c"));
    assert_eq!(d_input.as_object().unwrap().len(), 2);
    engine.shutdown().await;
}

async fn fan_out_fifty_and_join_receives_fifty_keys(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 16).await;
    let mids: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let mut nodes = vec!["start", "join"];
    nodes.extend(mids.iter().map(String::as_str));
    let mut edges = Vec::new();
    for m in &mids {
        edges.push(("start", m.as_str()));
        edges.push((m.as_str(), "join"));
    }
    let rec = run(&engine, graph("fan", &nodes, &edges), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("join"), 1, "the join runs exactly once");
    let join_input = rec.output("join").unwrap()["input"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(join_input.len(), 50);
    assert!(mids.iter().all(|m| join_input.contains_key(m)));
    assert_eq!(calls.total(), 52);
    engine.shutdown().await;
}

async fn two_roots_both_get_the_initial_data_and_feed_a_join(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 4).await;
    let wf = graph("roots", &["r1", "r2", "j"], &[("r1", "j"), ("r2", "j")]);
    let rec = run(&engine, wf, json!({"x": 1})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    let j = &rec.output("j").unwrap()["input"];
    assert_eq!(j["r1"]["input"], json!({"x": 1}));
    assert_eq!(j["r2"]["input"], json!({"x": 1}));
    assert_eq!(calls.count("j"), 1);
    engine.shutdown().await;
}

fn branching_registry(calls: &Calls, route: Option<Vec<&'static str>>) -> NodeRegistry {
    let mut r = pass_registry(calls);
    let c = calls.clone();
    r.register(
        "router",
        executor_fn(move |ctx| {
            let c = c.clone();
            let route = route.clone();
            async move {
                c.hit(&ctx.node_id);
                let out = NodeOutput::new(json!({ "node": ctx.node_id, "routed": true }));
                Ok(match route {
                    Some(r) => out.with_next_nodes(r),
                    None => out,
                })
            }
        }),
    );
    r
}

fn branching_graph() -> WorkflowDefinition {
    // A→B, A→C, C→D, B→J, D→J; A is the router.
    let mut wf = graph(
        "branch",
        &["B", "C", "D", "J"],
        &[("C", "D"), ("B", "J"), ("D", "J")],
    );
    wf.nodes.insert(0, NodeDefinition::new("A", "router"));
    wf.edge("A", "B").edge("A", "C")
}

async fn branch_skips_the_other_side_and_the_join_gets_only_the_live_parent(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, branching_registry(&calls, Some(vec!["B"])), 4).await;
    let rec = run(&engine, branching_graph(), json!({})).await;

    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("C"), 0);
    assert_eq!(calls.count("D"), 0);
    assert_eq!(rec.node_results["C"].status, NodeStatus::Skipped);
    assert_eq!(
        rec.node_results["D"].status,
        NodeStatus::Skipped,
        "skips propagate"
    );
    assert_eq!(calls.count("J"), 1);
    let j_input = rec.output("J").unwrap()["input"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        j_input.keys().collect::<Vec<_>>(),
        vec!["B"],
        "only B's data"
    );
    engine.shutdown().await;
}

async fn empty_next_nodes_skips_every_child_and_completes(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, branching_registry(&calls, Some(vec![])), 4).await;
    let rec = run(&engine, branching_graph(), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.total(), 1, "only the router ran");
    for n in ["B", "C", "D", "J"] {
        assert_eq!(rec.node_results[n].status, NodeStatus::Skipped, "{n}");
    }
    engine.shutdown().await;
}

async fn next_nodes_naming_a_non_child_fails_the_node_with_a_clear_error(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, branching_registry(&calls, Some(vec!["J"])), 4).await;
    let rec = run(&engine, branching_graph(), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Failed);
    let err = rec.node_results["A"].error.clone().unwrap();
    assert!(
        err.contains("\"J\"") && err.contains("not one of its outputs"),
        "{err}"
    );
    engine.shutdown().await;
}

on_every_backend!(
    ten_node_chain_passes_data_down_the_chain,
    diamond_join_runs_once_with_both_parents,
    fan_out_fifty_and_join_receives_fifty_keys,
    two_roots_both_get_the_initial_data_and_feed_a_join,
    branch_skips_the_other_side_and_the_join_gets_only_the_live_parent,
    empty_next_nodes_skips_every_child_and_completes,
    next_nodes_naming_a_non_child_fails_the_node_with_a_clear_error,
);

async fn a_thousand_wide_fan_out_joins_once(b: Backend) {
    let calls = Calls::default();
    let engine = engine(b, pass_registry(&calls), 16).await;
    let mids: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let mut nodes = vec!["start", "join"];
    nodes.extend(mids.iter().map(String::as_str));
    let mut edges = Vec::new();
    for m in &mids {
        edges.push(("start", m.as_str()));
        edges.push((m.as_str(), "join"));
    }
    let rec = run(&engine, graph("wide", &nodes, &edges), json!({})).await;
    assert_eq!(rec.status, ExecutionStatus::Completed);
    assert_eq!(calls.count("join"), 1);
    assert_eq!(
        rec.output("join").unwrap()["input"]
            .as_object()
            .unwrap()
            .len(),
        1000
    );
    engine.shutdown().await;
}

on_every_backend!(a_thousand_wide_fan_out_joins_once);
