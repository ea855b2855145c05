//! Sub-workflows on every backend: the original's four defects as scenarios, mappings,
//! failures, retries, nesting depth, cascading control, and the parent/child API.

mod common;

use std::sync::Arc;

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};
use spane::core::{ValidationError, WorkflowEventStatus};
use spane::prelude::*;
use tokio::sync::Notify;

/// A sub-workflow node calling `workflow` with `config` merged in.
fn call(id: &str, workflow: &str, extra: Value) -> NodeDefinition {
    let mut config = json!({ "workflowId": workflow });
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    NodeDefinition::new(id, "sub-workflow").with_config(config)
}

/// A registry with `pass`, `fail_once` (fails its first run per node id, then passes),
/// `fail` (always fails) and `gate` (waits for the notify).
/// The gate `gate` executors wait on, and how many of them have started (a watch: tests wait
/// on it, not on a timer).
#[derive(Clone)]
struct Gate {
    open: Arc<Notify>,
    started: tokio::sync::watch::Sender<usize>,
}

impl Gate {
    fn new() -> Self {
        Self {
            open: Arc::new(Notify::new()),
            started: tokio::sync::watch::channel(0).0,
        }
    }

    /// Lets one waiting executor through.
    fn notify_one(&self) {
        self.open.notify_one();
    }

    /// Waits until `n` gate executors have started.
    async fn started(&self, n: usize) {
        let mut rx = self.started.subscribe();
        tokio::time::timeout(DEADLINE, rx.wait_for(|s| *s >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} gate executors did not start before the deadline"))
            .expect("the gate lives");
    }
}

fn registry(calls: &Calls, gate: Gate) -> NodeRegistry {
    let mut r = pass_registry(calls);
    let c = calls.clone();
    r.register(
        "fail_once",
        executor_fn(move |ctx| {
            let c = c.clone();
            async move {
                c.hit(&ctx.node_id);
                if c.count(&ctx.node_id) == 1 {
                    return Err(NodeError::fatal("first run fails"));
                }
                Ok(NodeOutput::new(json!({"second": true})))
            }
        }),
    );
    let c = calls.clone();
    r.register(
        "fail",
        executor_fn(move |ctx| {
            let c = c.clone();
            async move {
                c.hit(&ctx.node_id);
                Err(NodeError::fatal("card declined"))
            }
        }),
    );
    let c = calls.clone();
    r.register(
        "gate",
        executor_fn(move |ctx| {
            let (c, gate) = (c.clone(), gate.clone());
            async move {
                c.hit(&ctx.node_id);
                gate.started.send_modify(|n| *n += 1);
                tokio::select! {
                    _ = gate.open.notified() => Ok(NodeOutput::new(json!("opened"))),
                    _ = ctx.cancellation.cancelled() => Err(NodeError::fatal("cancelled")),
                }
            }
        }),
    );
    r
}

async fn setup(b: Backend) -> (WorkflowEngine, Calls, Gate) {
    let calls = Calls::default();
    let gate = Gate::new();
    let engine = engine(b, registry(&calls, gate.clone()), 4).await;
    (engine, calls, gate)
}

async fn register(engine: &WorkflowEngine, wf: WorkflowDefinition) {
    engine.register_workflow(wf).await.expect("valid workflow");
}

async fn start_and_wait(engine: &WorkflowEngine, workflow: &str, input: Value) -> ExecutionRecord {
    let id = engine
        .enqueue_workflow(workflow, input)
        .await
        .expect("enqueued");
    engine
        .wait_for_execution(id, DEADLINE)
        .await
        .expect("the parent ends before the deadline")
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not before the deadline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Defect 1 of the original: the parent never resumed. Here it resumes with the child's
/// output, mapped, and the next node receives it.
async fn parent_resumes_with_the_child_output(b: Backend) {
    let (engine, _, _) = setup(b).await;
    register(&engine, graph("payment", &["charge"], &[])).await;
    register(
        &engine,
        WorkflowDefinition::new("order", "Order")
            .node(NodeDefinition::new("validate", "pass"))
            .node(call(
                "pay",
                "payment",
                json!({"inputMapping": {"amount": "input.total"}, "outputMapping": {"receipt": "input"}}),
            ))
            .node(NodeDefinition::new("ship", "pass"))
            .edge("validate", "pay")
            .edge("pay", "ship"),
    )
    .await;
    let done = start_and_wait(&engine, "order", json!({"total": 42})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    // charge received {"amount": 42} and returned {"node": "charge", "input": {...}}; the
    // output mapping keeps its input as `receipt`.
    assert_eq!(
        done.output("pay"),
        Some(&json!({"receipt": {"amount": 42}}))
    );
    assert_eq!(
        done.output("ship"),
        Some(&json!({"node": "ship", "input": {"receipt": {"amount": 42}}}))
    );
    assert_eq!(done.node_results["pay"].attempts, 1);
    engine.shutdown().await;
}

/// Defect 2: with two final nodes the merged output lost its keys.
async fn two_final_nodes_keep_both_keys(b: Backend) {
    let (engine, _, _) = setup(b).await;
    register(
        &engine,
        graph("fork", &["x", "y1", "y2"], &[("x", "y1"), ("x", "y2")]),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("caller", "Caller").node(call("sub", "fork", json!({}))),
    )
    .await;
    let done = start_and_wait(&engine, "caller", json!("in")).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let out = done.output("sub").expect("sub has an output");
    assert_eq!(out["y1"]["node"], json!("y1"));
    assert_eq!(out["y2"]["node"], json!("y2"));
    assert_eq!(out.as_object().map(|m| m.len()), Some(2));
    engine.shutdown().await;
}

/// Defects 3 and 4: the child's entry node ran twice, and a child graph with a shared node
/// hung. Here X → Y1, X → Y2 → join completes, and every child node runs once.
async fn child_nodes_run_once_and_a_shared_node_completes(b: Backend) {
    let (engine, calls, _) = setup(b).await;
    register(
        &engine,
        graph(
            "shared",
            &["x", "y1", "y2", "join"],
            &[("x", "y1"), ("x", "y2"), ("y1", "join"), ("y2", "join")],
        ),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("caller2", "Caller").node(call("sub", "shared", json!({}))),
    )
    .await;
    let done = start_and_wait(&engine, "caller2", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    for node in ["x", "y1", "y2", "join"] {
        assert_eq!(calls.count(node), 1, "child node {node} ran once");
    }
    assert_eq!(done.output("sub").unwrap()["node"], json!("join"));
    engine.shutdown().await;
}

/// Mappings read and write nested (dotted) paths; a missing source is left out.
async fn mappings_follow_nested_paths(b: Backend) {
    let (engine, _, _) = setup(b).await;
    register(&engine, graph("echo", &["e"], &[])).await;
    register(
        &engine,
        WorkflowDefinition::new("mapper", "Mapper").node(call(
            "sub",
            "echo",
            json!({
                "inputMapping": {"payment.amount": "order.total", "who": "user.name", "none": "no.such"},
                "outputMapping": {"result.amount": "input.payment.amount", "result.by": "input.who"}
            }),
        )),
    )
    .await;
    let done = start_and_wait(
        &engine,
        "mapper",
        json!({"order": {"total": 7}, "user": {"name": "ann"}}),
    )
    .await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.output("sub"),
        Some(&json!({"result": {"amount": 7, "by": "ann"}}))
    );
    engine.shutdown().await;
}

/// A failed child fails the parent's node (no retries left) and the parent, naming the child;
/// the node goes to the dead-letter queue.
async fn a_failed_child_fails_the_parent_node(b: Backend) {
    let (engine, _, _) = setup(b).await;
    register(
        &engine,
        graph("ok", &["a"], &[])
            .node(NodeDefinition::new("b", "fail"))
            .edge("a", "b"),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("strict", "Strict").node(call("sub", "ok", json!({}))),
    )
    .await;
    let done = start_and_wait(&engine, "strict", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.node_results["sub"].error.clone().unwrap_or_default();
    assert!(
        error.contains("sub-workflow \"ok\"") && error.contains("card declined"),
        "{error}"
    );
    let children = engine.child_executions(done.execution_id).await.unwrap();
    assert_eq!(children.len(), 1);
    let child = engine.get_execution(children[0]).await.unwrap().unwrap();
    assert_eq!(child.status, ExecutionStatus::Failed);
    assert!(
        engine
            .dead_letter(done.execution_id, "sub")
            .await
            .unwrap()
            .is_some(),
        "the parent's node is a dead letter"
    );
    engine.shutdown().await;
}

/// With continueOnFail the parent's node continues with the error object and the child's
/// partial results, and the parent completes.
async fn continue_on_fail_hands_on_partial_results(b: Backend) {
    let (engine, _, _) = setup(b).await;
    register(
        &engine,
        graph("half", &["a"], &[])
            .node(NodeDefinition::new("b", "fail"))
            .edge("a", "b"),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("lenient", "Lenient")
            .node(call("sub", "half", json!({"continueOnFail": true})))
            .node(NodeDefinition::new("after", "pass"))
            .edge("sub", "after"),
    )
    .await;
    let done = start_and_wait(&engine, "lenient", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let sub = &done.node_results["sub"];
    assert_eq!(sub.status, NodeStatus::Failed);
    assert!(sub.continued);
    let handed = &done.output("after").unwrap()["input"];
    assert_eq!(handed["failed"], json!(true));
    assert_eq!(handed["nodeId"], json!("sub"));
    assert_eq!(handed["partialResults"]["a"]["node"], json!("a"));
    assert!(handed["partialResults"].get("b").is_none());
    engine.shutdown().await;
}

/// The node's retry policy starts a fresh child after a failed one.
async fn a_retry_starts_a_fresh_child(b: Backend) {
    let (engine, calls, _) = setup(b).await;
    register(
        &engine,
        WorkflowDefinition::new("flaky", "Flaky").node(NodeDefinition::new("f", "fail_once")),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("retrying", "Retrying").node(call(
            "sub",
            "flaky",
            json!({"retryPolicy": {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}}}),
        )),
    )
    .await;
    let done = start_and_wait(&engine, "retrying", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.node_results["sub"].attempts, 2);
    assert_eq!(done.output("sub"), Some(&json!({"second": true})));
    assert_eq!(calls.count("f"), 2);
    let children = engine.child_executions(done.execution_id).await.unwrap();
    assert_eq!(children.len(), 2, "one child per attempt");
    let first = engine.get_execution(children[0]).await.unwrap().unwrap();
    let second = engine.get_execution(children[1]).await.unwrap().unwrap();
    assert_eq!(first.status, ExecutionStatus::Failed);
    assert_eq!(second.status, ExecutionStatus::Completed);
    engine.shutdown().await;
}

/// A dead-letter retry of the parent's node starts a fresh child, and the parent completes.
async fn a_dead_letter_retry_starts_a_fresh_child(b: Backend) {
    let (engine, calls, _) = setup(b).await;
    register(
        &engine,
        WorkflowDefinition::new("flaky2", "Flaky").node(NodeDefinition::new("g", "fail_once")),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("once", "Once").node(call("sub", "flaky2", json!({}))),
    )
    .await;
    let failed = start_and_wait(&engine, "once", json!({})).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert!(
        engine
            .retry_dead_letter(failed.execution_id, "sub")
            .await
            .unwrap()
    );
    let done = engine
        .wait_for_execution(failed.execution_id, DEADLINE)
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output("sub"), Some(&json!({"second": true})));
    assert_eq!(calls.count("g"), 2);
    let children = engine.child_executions(done.execution_id).await.unwrap();
    assert_eq!(children.len(), 2, "the retry ran a fresh child");
    engine.shutdown().await;
}

/// A chain of `levels` workflows, each calling the next; the last one passes.
async fn register_chain(engine: &WorkflowEngine, prefix: &str, levels: usize) {
    for i in (0..levels).rev() {
        let id = format!("{prefix}{i}");
        let wf = if i + 1 == levels {
            WorkflowDefinition::new(&id, &id).node(NodeDefinition::new("leaf", "pass"))
        } else {
            WorkflowDefinition::new(&id, &id).node(call(
                "down",
                &format!("{prefix}{}", i + 1),
                json!({}),
            ))
        };
        register(engine, wf).await;
    }
}

/// Nine nested levels below the top run; a tenth is refused with the chain of workflow ids.
async fn nine_nested_levels_run_and_a_tenth_is_refused(b: Backend) {
    let (engine, _, _) = setup(b).await;
    // Top (depth 0) plus nine nested levels: ten workflows.
    register_chain(&engine, "ok", 10).await;
    let done = start_and_wait(&engine, "ok0", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);

    // One more level: the execution at depth 9 may not start a child.
    register_chain(&engine, "deep", 11).await;
    let done = start_and_wait(&engine, "deep0", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let mut id = done.execution_id;
    let mut depth = 0;
    let deepest = loop {
        let record = engine.get_execution(id).await.unwrap().unwrap();
        assert_eq!(record.depth, depth);
        match engine.child_executions(id).await.unwrap().as_slice() {
            [] => break record,
            [child] => {
                id = *child;
                depth += 1;
            }
            more => panic!("one child per level, got {more:?}"),
        }
    };
    assert_eq!(deepest.depth, 9);
    assert_eq!(deepest.workflow_id, "deep9");
    let error = deepest.node_results["down"]
        .error
        .clone()
        .unwrap_or_default();
    let chain = (0..=10)
        .map(|i| format!("deep{i}"))
        .collect::<Vec<_>>()
        .join(" -> ");
    assert!(error.contains(&chain), "{error}");
    engine.shutdown().await;
}

/// Cancelling the parent cancels its running child; pausing it pauses the child, and resume
/// lets both finish.
async fn pause_resume_and_cancel_reach_the_child(b: Backend) {
    let (engine, calls, gate) = setup(b).await;
    register(
        &engine,
        WorkflowDefinition::new("slow", "Slow")
            .node(NodeDefinition::new("wait", "gate"))
            .node(NodeDefinition::new("then", "pass"))
            .edge("wait", "then"),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("outer", "Outer").node(call("sub", "slow", json!({}))),
    )
    .await;

    // Pause and resume.
    let parent = engine.enqueue_workflow("outer", json!({})).await.unwrap();
    gate.started(1).await;
    let child = engine.child_executions(parent).await.unwrap()[0];
    assert_eq!(
        engine.pause_execution(parent).await.unwrap(),
        ExecutionStatus::Paused
    );
    let paused = engine.get_execution(child).await.unwrap().unwrap();
    assert_eq!(
        paused.status,
        ExecutionStatus::Paused,
        "the child is paused too"
    );
    let mut events = engine
        .subscribe(spane::events::EventFilter::Execution(child))
        .await
        .unwrap();
    gate.notify_one();
    // The gate's commit is recorded: its `completed` event.
    loop {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("the gate's commit before the deadline")
            .expect("stream open")
            .expect("event");
        if let EngineEvent::Node(n) = event
            && n.node_id == "wait"
            && n.status == spane::core::NodeEventStatus::Completed
        {
            break;
        }
    }
    assert_eq!(
        calls.count("then"),
        0,
        "the paused child holds its next node"
    );
    engine.resume_execution(parent).await.unwrap();
    let done = engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(calls.count("then"), 1);

    // Cancel.
    let parent = engine.enqueue_workflow("outer", json!({})).await.unwrap();
    gate.started(2).await;
    let child = engine.child_executions(parent).await.unwrap()[0];
    engine.cancel_execution(parent).await.unwrap();
    let child_done = engine.wait_for_execution(child, DEADLINE).await.unwrap();
    assert_eq!(child_done.status, ExecutionStatus::Cancelled);
    let parent_done = engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    assert_eq!(parent_done.status, ExecutionStatus::Cancelled);
    assert_eq!(calls.count("then"), 1, "nothing after the cancel ran");
    engine.shutdown().await;
}

/// Cancelling a child alone fails its parent's node; with continueOnFail the parent goes on.
async fn cancelling_the_child_alone_fails_the_parent_node(b: Backend) {
    let (engine, calls, gate) = setup(b).await;
    register(
        &engine,
        WorkflowDefinition::new("held", "Held").node(NodeDefinition::new("wait", "gate")),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("strict2", "Strict")
            .node(call(
                "sub",
                "held",
                json!({"retryPolicy": {"maxAttempts": 3}}),
            ))
            .node(NodeDefinition::new("after", "pass"))
            .edge("sub", "after"),
    )
    .await;
    register(
        &engine,
        WorkflowDefinition::new("lenient2", "Lenient")
            .node(call("sub", "held", json!({"continueOnFail": true})))
            .node(NodeDefinition::new("after", "pass"))
            .edge("sub", "after"),
    )
    .await;

    let parent = engine.enqueue_workflow("strict2", json!({})).await.unwrap();
    gate.started(1).await;
    let child = engine.child_executions(parent).await.unwrap()[0];
    engine.cancel_execution(child).await.unwrap();
    let done = engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.node_results["sub"].error.clone().unwrap_or_default();
    assert!(error.contains("was cancelled"), "{error}");
    assert_eq!(
        done.node_results["sub"].attempts, 1,
        "a cancel is not retried"
    );
    assert_eq!(calls.count("after"), 0);

    let parent = engine
        .enqueue_workflow("lenient2", json!({}))
        .await
        .unwrap();
    gate.started(2).await;
    let child = engine.child_executions(parent).await.unwrap()[0];
    engine.cancel_execution(child).await.unwrap();
    let done = engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert!(done.node_results["sub"].continued);
    assert_eq!(calls.count("after"), 1);
    engine.shutdown().await;
}

/// A child records its parent, node and depth; its workflow events carry the link.
async fn a_child_knows_its_parent(b: Backend) {
    let (engine, _, _) = setup(b).await;
    let mut events = engine
        .subscribe(spane::events::EventFilter::All)
        .await
        .unwrap();
    register(&engine, graph("leafy", &["l"], &[])).await;
    register(
        &engine,
        WorkflowDefinition::new("top", "Top").node(call("sub", "leafy", json!({}))),
    )
    .await;
    let done = start_and_wait(&engine, "top", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.depth, 0);
    assert_eq!(
        engine.parent_execution(done.execution_id).await.unwrap(),
        None
    );
    let child = engine.child_executions(done.execution_id).await.unwrap()[0];
    let record = engine.get_execution(child).await.unwrap().unwrap();
    assert_eq!(record.parent_execution_id, Some(done.execution_id));
    assert_eq!(record.parent_node_id.as_deref(), Some("sub"));
    assert_eq!(record.depth, 1);
    assert_eq!(
        engine.parent_execution(child).await.unwrap(),
        Some((done.execution_id, "sub".to_owned()))
    );
    // The child's started and completed events name the parent.
    let mut linked = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while linked.len() < 2 {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the child's events arrive")
            .expect("stream open")
            .expect("event");
        if let EngineEvent::Workflow(w) = event
            && w.execution_id == child
        {
            assert_eq!(w.parent_execution_id, Some(done.execution_id));
            assert_eq!(w.parent_node_id.as_deref(), Some("sub"));
            linked.push(w.status);
        }
    }
    assert_eq!(
        linked,
        vec![WorkflowEventStatus::Started, WorkflowEventStatus::Completed]
    );
    engine.shutdown().await;
}

/// An unknown child workflow is allowed at registration (it may come later) and fails the
/// node at run time, naming it; registering it afterwards makes the next run work.
async fn an_unknown_child_fails_at_run_time(b: Backend) {
    let (engine, _, _) = setup(b).await;
    register(
        &engine,
        WorkflowDefinition::new("early", "Early").node(call("sub", "later", json!({}))),
    )
    .await;
    let done = start_and_wait(&engine, "early", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let error = done.node_results["sub"].error.clone().unwrap_or_default();
    assert!(error.contains("\"later\" is not registered"), "{error}");
    register(&engine, graph("later", &["x"], &[])).await;
    let done = start_and_wait(&engine, "early", json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    engine.shutdown().await;
}

/// Registration names what is wrong: a missing workflowId, a mapping that is not an object of
/// strings, and a cycle of sub-workflow calls.
async fn bad_sub_workflow_definitions_are_refused(b: Backend) {
    let (engine, _, _) = setup(b).await;
    let err = engine
        .register_workflow(
            WorkflowDefinition::new("nowf", "No workflow")
                .node(NodeDefinition::new("sub", "sub-workflow").with_config(json!({}))),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("workflowId"), "{err}");
    let err = engine
        .register_workflow(WorkflowDefinition::new("badmap", "Bad mapping").node(call(
            "sub",
            "x",
            json!({"inputMapping": {"a": 1}}),
        )))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("inputMapping.a"), "{err}");

    register(
        &engine,
        WorkflowDefinition::new("cy-b", "B").node(call("to-a", "cy-a", json!({}))),
    )
    .await;
    let err = engine
        .register_workflow(WorkflowDefinition::new("cy-a", "A").node(call(
            "to-b",
            "cy-b",
            json!({}),
        )))
        .await
        .unwrap_err();
    match err {
        spane::Error::Invalid(e) => assert!(
            e.any(|v| matches!(v, ValidationError::SubWorkflowCycle { chain } if chain == &["cy-a", "cy-b", "cy-a"])),
            "{e}"
        ),
        other => panic!("expected a validation error, got {other}"),
    }
    engine.shutdown().await;
}

/// A worker that dies between a child's end and its parent's resumption. The child is run
/// here by hand through the queue (as a worker would, up to its finishing commit) and nobody
/// resumes the parent: the child's end waits in the outbox. Workers started afterwards sweep
/// it and resume the parent exactly once; a repeated resumption finds nothing to do.
async fn a_lost_resumption_is_swept_exactly_once(b: Backend) {
    use spane::queue::backend::{NodeCommit, StartExecution, WorkerId};
    let calls = Calls::default();
    let engine = engine_with(
        b,
        registry(&calls, Gate::new()),
        spane::EngineConfig::default().claim_wait(std::time::Duration::from_millis(100)),
    )
    .await;
    let child_wf = graph("quick", &["q"], &[]);
    register(&engine, child_wf.clone()).await;
    register(
        &engine,
        WorkflowDefinition::new("waiter", "Waiter")
            .node(call("sub", "quick", json!({})))
            .node(NodeDefinition::new("after", "pass"))
            .edge("sub", "after"),
    )
    .await;
    let queue = engine.queue().clone();
    let links = queue.sub_workflows().expect("sub-workflows");
    let worker = WorkerId::new();
    let wait = std::time::Duration::from_secs(5);
    let parent = engine.enqueue_workflow("waiter", json!({})).await.unwrap();

    // The parent's node: bind, start the child, wait for it.
    let job = queue
        .claim(&worker, 1, wait)
        .await
        .unwrap()
        .pop()
        .expect("the sub node");
    assert_eq!(job.node_id, "sub");
    let child = links
        .bind_child(&job, ExecutionId::new())
        .await
        .unwrap()
        .unwrap();
    let again = links.bind_child(&job, ExecutionId::new()).await.unwrap();
    assert_eq!(again, Some(child), "a replayed bind returns the same child");
    let compiled = Arc::new(child_wf.compile(&spane::core::AnyNodeType).unwrap());
    queue
        .start_execution(
            StartExecution::new(child, compiled, 1, json!({})).child_of(parent, "sub", 1),
        )
        .await
        .unwrap();
    queue
        .commit(&job, NodeCommit::AwaitChild { child })
        .await
        .unwrap();

    // The child's only node, committed by hand: the child ends, nobody resumes the parent.
    let child_job = queue
        .claim(&worker, 1, wait)
        .await
        .unwrap()
        .pop()
        .expect("the child node");
    assert_eq!(child_job.execution_id, child);
    queue
        .commit(
            &child_job,
            NodeCommit::Completed {
                data: json!({"paid": true}),
                next_nodes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        links
            .ended_children(std::time::Duration::ZERO, 10)
            .await
            .unwrap(),
        vec![child],
        "the child's end is in the outbox"
    );
    assert_eq!(
        engine.get_execution(parent).await.unwrap().unwrap().status,
        ExecutionStatus::Running,
        "the parent waits"
    );

    // Workers start: their sweep resumes the parent once.
    engine.start_workers(2).unwrap();
    let done = engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.output("sub"), Some(&json!({"paid": true})));
    assert_eq!(done.node_results["sub"].attempts, 1);
    assert_eq!(calls.count("after"), 1);
    wait_until("the outbox is emptied", async || {
        links
            .ended_children(std::time::Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    assert!(
        links
            .awaiting_parent(parent, "sub", child)
            .await
            .unwrap()
            .is_none(),
        "a repeated resumption finds the node resumed"
    );
    engine.shutdown().await;
}

on_every_backend!(
    parent_resumes_with_the_child_output,
    two_final_nodes_keep_both_keys,
    child_nodes_run_once_and_a_shared_node_completes,
    mappings_follow_nested_paths,
    a_failed_child_fails_the_parent_node,
    continue_on_fail_hands_on_partial_results,
    a_retry_starts_a_fresh_child,
    a_dead_letter_retry_starts_a_fresh_child,
    nine_nested_levels_run_and_a_tenth_is_refused,
    pause_resume_and_cancel_reach_the_child,
    cancelling_the_child_alone_fails_the_parent_node,
    a_child_knows_its_parent,
    an_unknown_child_fails_at_run_time,
    bad_sub_workflow_definitions_are_refused,
    a_lost_resumption_is_swept_exactly_once,
);
