//! The rules every backend applies (`spane_core::rules`): commit plans, stalls, retries of an
//! ended execution, failures while paused, and the events of each transition in order.

use std::time::Duration;

use serde_json::json;
use spane_core::{
    AnyNodeType, Attempt, CommitPlan, CompiledWorkflow, DeadLetterCause, Emit, ExecutionState,
    ExecutionStatus, NodeDefinition, NodeEventStatus, NodeStatus, WorkflowDefinition,
    WorkflowEventStatus,
};

fn dag(nodes: &[(&str, bool)], edges: &[(&str, &str)]) -> CompiledWorkflow {
    let mut w = WorkflowDefinition::new("wf", "Rules");
    for (id, continue_on_fail) in nodes {
        let config = json!({"retryPolicy": {"continueOnFail": continue_on_fail}});
        w = w.node(NodeDefinition::new(*id, "t").with_config(config));
    }
    for (a, b) in edges {
        w = w.edge(a, b);
    }
    w.compile(&AnyNodeType)
        .unwrap_or_else(|e| panic!("test graph is valid: {e}"))
}

fn idx(dag: &CompiledWorkflow, id: &str) -> usize {
    dag.index_of(id)
        .unwrap_or_else(|| panic!("node {id} exists"))
}

/// The statuses of the events, node events as `id:status`, workflow events as `wf:status`.
fn trace(dag: &CompiledWorkflow, events: &[Emit]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Emit::Node(n) => format!("{}:{:?}", dag.node(n.node).id, n.status),
            Emit::Workflow { status, .. } => format!("wf:{status:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn an_unknown_route_fails_the_node_or_continues_it() {
    let d = dag(
        &[("a", false), ("b", false), ("c", true), ("x", false)],
        &[("a", "b"), ("c", "x")],
    );
    let next = vec!["nope".to_owned()];
    let plan = CommitPlan::decide(
        &d,
        idx(&d, "a"),
        1,
        Attempt::Completed {
            next_nodes: Some(&next),
        },
    );
    match plan {
        CommitPlan::Fail { error } => {
            assert!(
                error.contains("\"a\"") && error.contains("\"nope\""),
                "{error}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let plan = CommitPlan::decide(
        &d,
        idx(&d, "c"),
        2,
        Attempt::Completed {
            next_nodes: Some(&next),
        },
    );
    match plan {
        CommitPlan::Continue { output, .. } => {
            assert_eq!(output["nodeId"], json!("c"));
            assert_eq!(output["attempts"], json!(2));
            assert_eq!(output["failed"], json!(true));
        }
        other => panic!("expected a continued failure, got {other:?}"),
    }
    let known = vec!["b".to_owned()];
    let plan = CommitPlan::decide(
        &d,
        idx(&d, "a"),
        1,
        Attempt::Completed {
            next_nodes: Some(&known),
        },
    );
    assert_eq!(
        plan,
        CommitPlan::Complete {
            routes: Some(vec![idx(&d, "b")])
        }
    );
}

#[test]
fn a_branch_emits_completion_then_skips_in_cascade_order_then_the_end() {
    let d = dag(
        &[("a", false), ("b", false), ("c", false), ("d", false)],
        &[("a", "b"), ("a", "c"), ("c", "d")],
    );
    let (mut s, _) = ExecutionState::start(&d);
    let a = idx(&d, "a");
    assert!(s.claim(a).is_some());
    let plan = CommitPlan::Complete {
        routes: Some(vec![idx(&d, "b")]),
    };
    let e = s.commit(&d, a, 1, &plan).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        trace(&d, &e.events),
        ["a:Completed", "c:Skipped", "d:Skipped"]
    );
    assert_eq!(e.ready, [idx(&d, "b")]);
    let b = idx(&d, "b");
    assert!(s.claim(b).is_some());
    let e = s
        .commit(&d, b, 1, &CommitPlan::Complete { routes: None })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace(&d, &e.events), ["b:Completed", "wf:Completed"]);
    assert_eq!(e.finished, Some(ExecutionStatus::Completed));
    assert_eq!(s.node_status(idx(&d, "d")), Some(NodeStatus::Skipped));
}

#[test]
fn stalls_count_attempts_then_fail_with_cause_stalled() {
    let d = dag(&[("a", true), ("b", false)], &[("a", "b")]);
    let (mut s, _) = ExecutionState::start(&d);
    let a = idx(&d, "a");
    assert_eq!(s.claim(a).map(|g| g.attempt), Some(1));
    let e = s.stall(&d, a, 1);
    assert_eq!(
        e.requeue,
        Some(a),
        "the job goes back to the head of the queue"
    );
    assert_eq!(s.node_status(a), Some(NodeStatus::Pending));
    assert_eq!(s.claim(a).map(|g| g.attempt), Some(2));
    let e = s.stall(&d, a, 1);
    let dead = e.dead_letter.unwrap_or_else(|| panic!("a dead letter"));
    assert_eq!(dead.cause, DeadLetterCause::Stalled);
    assert_eq!(dead.attempts, 2);
    assert_eq!(
        e.finished,
        Some(ExecutionStatus::Failed),
        "continueOnFail does not apply to a stall"
    );
    assert_eq!(trace(&d, &e.events), ["a:Failed", "wf:Failed"]);
    assert!(e.ready.is_empty());
}

#[test]
fn a_retry_or_delay_of_an_ended_execution_is_held_without_a_dead_letter() {
    let d = dag(
        &[
            ("r", false),
            ("bad", false),
            ("flaky", false),
            ("wait", false),
        ],
        &[("r", "bad"), ("r", "flaky"), ("r", "wait")],
    );
    let (mut s, _) = ExecutionState::start(&d);
    let r = idx(&d, "r");
    assert!(s.claim(r).is_some());
    let e = s
        .commit(&d, r, 1, &CommitPlan::Complete { routes: None })
        .unwrap_or_else(|e| panic!("{e}"));
    for &n in &e.ready {
        assert!(s.claim(n).is_some());
    }
    let bad = idx(&d, "bad");
    let e = s
        .commit(
            &d,
            bad,
            1,
            &CommitPlan::Fail {
                error: "boom".into(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.finished, Some(ExecutionStatus::Failed));
    assert!(e.dead_letter.is_some());

    let flaky = idx(&d, "flaky");
    let retry = CommitPlan::Retry {
        error: "later".into(),
        delay: Duration::from_millis(5),
        consume_attempt: true,
    };
    let e = s
        .commit(&d, flaky, 1, &retry)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        e,
        spane_core::Effects::default(),
        "nothing scheduled, no event, no dead letter"
    );
    assert_eq!(s.node_status(flaky), Some(NodeStatus::Pending));
    let wait = idx(&d, "wait");
    let delay = CommitPlan::Delay {
        delay: Duration::from_millis(5),
    };
    let e = s
        .commit(&d, wait, 1, &delay)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(e.schedule.is_none() && e.dead_letter.is_none());
    assert_eq!(s.node_status(wait), Some(NodeStatus::Pending));

    let e = s.revive_node(&d, bad).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        e.ready.len(),
        3,
        "the revived node and both held nodes: {:?}",
        e.ready
    );
    assert_eq!(trace(&d, &e.events), ["wf:Resumed"]);
    assert_eq!(s.claim(flaky).map(|g| g.attempt), Some(2));
    assert_eq!(s.claim(bad).map(|g| g.attempt), Some(1));
}

#[test]
fn a_failure_while_paused_fails_the_execution() {
    let d = dag(&[("a", false), ("b", false)], &[("a", "b")]);
    let (mut s, _) = ExecutionState::start(&d);
    let a = idx(&d, "a");
    assert!(s.claim(a).is_some());
    let e = s.pause_effects().unwrap_or_else(|st| panic!("{st}"));
    assert!(matches!(
        e.events.as_slice(),
        [Emit::Workflow {
            status: WorkflowEventStatus::Paused,
            ..
        }]
    ));
    let e = s
        .commit(&d, a, 1, &CommitPlan::Fail { error: "x".into() })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.finished, Some(ExecutionStatus::Failed));
    assert_eq!(s.status(), ExecutionStatus::Failed);
    assert_eq!(s.error(), Some("node \"a\" failed: x"));
    assert_eq!(s.resume_effects(), Err(ExecutionStatus::Failed));
}

#[test]
fn a_retry_schedules_the_node_and_emits_retrying() {
    let d = dag(&[("a", false)], &[]);
    let (mut s, _) = ExecutionState::start(&d);
    let a = idx(&d, "a");
    assert!(s.claim(a).is_some());
    let retry = CommitPlan::Retry {
        error: "429".into(),
        delay: Duration::from_millis(250),
        consume_attempt: false,
    };
    let e = s.commit(&d, a, 1, &retry).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.schedule, Some((a, Duration::from_millis(250))));
    match e.events.as_slice() {
        [Emit::Node(n)] => {
            assert_eq!(n.status, NodeEventStatus::Retrying);
            assert_eq!(n.next_delay_ms, Some(250));
            assert_eq!(n.error.as_deref(), Some("429"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.node_status(a), Some(NodeStatus::Delayed));
    assert_eq!(
        s.claim(a).map(|g| g.attempt),
        Some(1),
        "a retry that does not consume an attempt keeps the number"
    );
}
