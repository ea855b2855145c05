//! Execution semantics, driven through `ExecutionState` and `node_input` alone: readiness, joins,
//! data passing, branching, skip propagation, failure, continueOnFail, completion and cancel.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use spane_core::{
    AnyNodeType, CompiledWorkflow, ExecutionState, ExecutionStatus, NodeDefinition, NodeIndex,
    NodeState, Transition, TransitionError, WorkflowDefinition, failure_output, node_input,
};

/// Compiles a workflow of nodes named `ids` (type `t`) with `edges`.
fn dag(ids: &[&str], edges: &[(&str, &str)]) -> CompiledWorkflow {
    let mut w = WorkflowDefinition::new("wf", "Test");
    for id in ids {
        w = w.node(NodeDefinition::new(*id, "t"));
    }
    for (a, b) in edges {
        w = w.edge(a, b);
    }
    w.compile(&AnyNodeType)
        .unwrap_or_else(|e| panic!("test graph is valid: {e}"))
}

/// Drives one execution like a backend would: keeps outputs, counts readiness and endings, and
/// checks the invariants that hold after every transition.
struct Run {
    dag: CompiledWorkflow,
    state: ExecutionState,
    initial: Value,
    /// Outputs of nodes that completed (or failed with continueOnFail).
    outputs: BTreeMap<NodeIndex, Value>,
    /// Inputs each node received when it became ready.
    inputs: BTreeMap<NodeIndex, Value>,
    /// How many times each node was reported ready.
    ready_count: Vec<usize>,
    /// Nodes ready and not yet reported back.
    in_flight: BTreeSet<NodeIndex>,
    /// Every `finished` reported.
    finishes: Vec<ExecutionStatus>,
}

impl Run {
    fn start(dag: CompiledWorkflow, initial: Value) -> (Self, Transition) {
        let (state, t) = ExecutionState::start(&dag);
        let n = dag.nodes().len();
        let mut run = Self {
            dag,
            state,
            initial,
            outputs: BTreeMap::new(),
            inputs: BTreeMap::new(),
            ready_count: vec![0; n],
            in_flight: BTreeSet::new(),
            finishes: Vec::new(),
        };
        assert_eq!(run.state.status(), ExecutionStatus::Running);
        run.absorb(&t);
        (run, t)
    }

    fn idx(&self, id: &str) -> NodeIndex {
        self.dag
            .index_of(id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn ids(&self, nodes: &[NodeIndex]) -> Vec<String> {
        nodes.iter().map(|&i| self.dag.node(i).id.clone()).collect()
    }

    fn absorb(&mut self, t: &Transition) {
        for &r in &t.ready {
            self.ready_count[r] += 1;
            assert_eq!(
                self.ready_count[r],
                1,
                "{} ready twice",
                self.dag.node(r).id
            );
            assert_eq!(self.state.node(r), &NodeState::Ready);
            for &p in &self.dag.node(r).parents {
                assert!(
                    matches!(
                        self.state.node(p),
                        NodeState::Completed { .. } | NodeState::Failed { .. } | NodeState::Skipped
                    ),
                    "{} ready before parent {} resolved",
                    self.dag.node(r).id,
                    self.dag.node(p).id
                );
            }
            let live: Vec<(NodeIndex, &Value)> = self
                .state
                .live_parents(&self.dag, r)
                .map(|p| (p, &self.outputs[&p]))
                .collect();
            let input = node_input(&self.dag, r, &self.initial, live);
            self.inputs.insert(r, input);
            self.in_flight.insert(r);
        }
        for &s in &t.skipped {
            assert_eq!(self.state.node(s), &NodeState::Skipped);
            assert_eq!(self.state.live_parents(&self.dag, s).count(), 0);
        }
        if let Some(f) = t.finished {
            self.finishes.push(f);
            assert_eq!(self.state.status(), f);
        }
    }

    fn complete_with(&mut self, id: &str, data: Value, next: Option<&[&str]>) -> Transition {
        let i = self.idx(id);
        let next: Option<Vec<String>> = next.map(|n| n.iter().map(|s| (*s).to_owned()).collect());
        let t = self
            .state
            .complete(&self.dag, i, next.as_deref())
            .unwrap_or_else(|e| panic!("complete {id}: {e}"));
        self.outputs.insert(i, data);
        self.in_flight.remove(&i);
        self.absorb(&t);
        t
    }

    /// Completes `id` with output `"{id}-out"`, routing to every child.
    fn complete(&mut self, id: &str) -> Transition {
        self.complete_with(id, json!(format!("{id}-out")), None)
    }

    fn fail(&mut self, id: &str, continued: bool) -> Transition {
        let i = self.idx(id);
        let t = self
            .state
            .fail(&self.dag, i, continued)
            .unwrap_or_else(|e| panic!("fail {id}: {e}"));
        if continued {
            self.outputs.insert(i, failure_output(id, "boom", 1));
        }
        self.in_flight.remove(&i);
        self.absorb(&t);
        t
    }

    fn input(&self, id: &str) -> &Value {
        &self.inputs[&self.idx(id)]
    }

    fn state_of(&self, id: &str) -> &NodeState {
        self.state.node(self.idx(id))
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn ten_node_chain_runs_in_order_and_passes_data() {
    let ids: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let edges: Vec<(&str, &str)> = names.windows(2).map(|w| (w[0], w[1])).collect();
    let (mut run, t) = Run::start(dag(&names, &edges), json!({"userId": 123}));
    assert_eq!(run.ids(&t.ready), ["n0"]);
    assert_eq!(run.input("n0"), &json!({"userId": 123}));

    for i in 0..10 {
        let id = format!("n{i}");
        let t = run.complete_with(&id, json!({"step": i}), None);
        assert!(t.skipped.is_empty());
        if i < 9 {
            assert_eq!(run.ids(&t.ready), [format!("n{}", i + 1)]);
            assert_eq!(t.finished, None);
            assert_eq!(run.state.status(), ExecutionStatus::Running);
            // One parent: its data as it is.
            assert_eq!(run.input(&format!("n{}", i + 1)), &json!({"step": i}));
        } else {
            assert!(t.ready.is_empty());
            assert_eq!(t.finished, Some(ExecutionStatus::Completed));
        }
    }
    assert_eq!(run.finishes, [ExecutionStatus::Completed]);
    assert!(run.state.all_resolved());
    assert!(run.ready_count.iter().all(|&c| c == 1));
}

#[test]
fn diamond_join_is_ready_once_after_both_parents() {
    let (mut run, t) = Run::start(
        dag(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
        ),
        json!(1),
    );
    assert_eq!(run.ids(&t.ready), ["a"]);
    let t = run.complete_with("a", json!("A"), None);
    assert_eq!(run.ids(&t.ready), ["b", "c"]);
    assert_eq!(run.input("b"), &json!("A"));
    assert_eq!(run.input("c"), &json!("A"));

    let t = run.complete_with("c", json!({"from": "c"}), None);
    assert!(t.ready.is_empty(), "d waits for b");
    assert_eq!(run.state_of("d"), &NodeState::Waiting);
    let t = run.complete_with("b", json!({"from": "b"}), None);
    assert_eq!(run.ids(&t.ready), ["d"]);
    assert_eq!(
        run.input("d"),
        &json!({"b": {"from": "b"}, "c": {"from": "c"}})
    );
    let live: Vec<NodeIndex> = run.state.live_parents(&run.dag, run.idx("d")).collect();
    assert_eq!(run.ids(&live), ["b", "c"]);

    let t = run.complete("d");
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
    assert_eq!(run.finishes.len(), 1);
    assert_eq!(run.ready_count, [1, 1, 1, 1]);
}

#[test]
fn fan_out_fifty_and_join_once() {
    let mids: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    let mut names = vec!["src"];
    names.extend(mids.iter().map(String::as_str));
    names.push("join");
    let mut edges = Vec::new();
    for m in &mids {
        edges.push(("src", m.as_str()));
        edges.push((m.as_str(), "join"));
    }
    let (mut run, _) = Run::start(dag(&names, &edges), json!({"seed": true}));
    let t = run.complete_with("src", json!({"n": 0}), None);
    assert_eq!(t.ready.len(), 50);
    assert_eq!(sorted(run.ids(&t.ready)), mids);

    // Complete them in reverse order; the join becomes ready on the last one only.
    for (k, m) in mids.iter().rev().enumerate() {
        let t = run.complete_with(m, json!(m), None);
        if k < 49 {
            assert!(t.ready.is_empty(), "join ready early after {k}");
            assert_eq!(t.finished, None);
        } else {
            assert_eq!(run.ids(&t.ready), ["join"]);
        }
    }
    let input = run
        .input("join")
        .as_object()
        .expect("merged object")
        .clone();
    assert_eq!(input.len(), 50);
    for m in &mids {
        assert_eq!(input[m.as_str()], json!(m));
    }
    let t = run.complete("join");
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
    assert_eq!(run.finishes, [ExecutionStatus::Completed]);
    assert!(run.ready_count.iter().all(|&c| c == 1));
}

#[test]
fn two_roots_feed_a_join() {
    let (mut run, t) = Run::start(
        dag(&["r1", "r2", "j"], &[("r1", "j"), ("r2", "j")]),
        json!({"init": 1}),
    );
    assert_eq!(run.ids(&t.ready), ["r1", "r2"]);
    assert_eq!(run.input("r1"), &json!({"init": 1}));
    assert_eq!(run.input("r2"), &json!({"init": 1}));
    assert!(run.complete("r2").ready.is_empty());
    let t = run.complete("r1");
    assert_eq!(run.ids(&t.ready), ["j"]);
    assert_eq!(run.input("j"), &json!({"r1": "r1-out", "r2": "r2-out"}));
    assert_eq!(run.complete("j").finished, Some(ExecutionStatus::Completed));
}

#[test]
fn branching_skips_the_unchosen_branch_and_its_descendants() {
    // A→B, A→C, C→D, B→J, D→J; A routes to B only.
    let (mut run, _) = Run::start(
        dag(
            &["A", "B", "C", "D", "J"],
            &[("A", "B"), ("A", "C"), ("C", "D"), ("B", "J"), ("D", "J")],
        ),
        json!(null),
    );
    let t = run.complete_with("A", json!({"routed": "B"}), Some(&["B"]));
    assert_eq!(run.ids(&t.ready), ["B"]);
    assert_eq!(sorted(run.ids(&t.skipped)), ["C", "D"]);
    assert_eq!(t.finished, None);
    assert_eq!(run.state_of("C"), &NodeState::Skipped);
    assert_eq!(run.state_of("D"), &NodeState::Skipped);
    assert_eq!(run.state_of("J"), &NodeState::Waiting);

    let t = run.complete_with("B", json!({"b": 1}), None);
    assert_eq!(run.ids(&t.ready), ["J"]);
    assert!(t.skipped.is_empty());
    let live: Vec<NodeIndex> = run.state.live_parents(&run.dag, run.idx("J")).collect();
    assert_eq!(run.ids(&live), ["B"]);
    // J has two declared parents: merged input, the skipped parent absent.
    assert_eq!(run.input("J"), &json!({"B": {"b": 1}}));

    let t = run.complete("J");
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
    assert_eq!(run.finishes, [ExecutionStatus::Completed]);
    assert_eq!(run.ready_count, [1, 1, 0, 0, 1]);
    assert!(run.state.all_resolved());
}

#[test]
fn routing_data_reaches_a_partly_skipped_join_only_from_live_parents() {
    // A routes to both, but B routes away from J: J's only live parent is C.
    let (mut run, _) = Run::start(
        dag(
            &["A", "B", "C", "J", "X"],
            &[("A", "B"), ("A", "C"), ("B", "J"), ("B", "X"), ("C", "J")],
        ),
        json!(null),
    );
    run.complete("A");
    let t = run.complete_with("B", json!("b"), Some(&["X"]));
    assert_eq!(run.ids(&t.ready), ["X"]);
    let t = run.complete_with("C", json!("c"), None);
    assert_eq!(run.ids(&t.ready), ["J"]);
    assert_eq!(run.input("J"), &json!({"C": "c"}));
    run.complete("X");
    assert_eq!(run.complete("J").finished, Some(ExecutionStatus::Completed));
    assert_eq!(run.finishes.len(), 1);
}

#[test]
fn empty_next_nodes_skips_every_child_and_completes_once() {
    let (mut run, _) = Run::start(
        dag(
            &["A", "B", "C", "D", "E"],
            &[("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("D", "E")],
        ),
        json!(null),
    );
    let t = run.complete_with("A", json!("a"), Some(&[]));
    assert!(t.ready.is_empty());
    assert_eq!(sorted(run.ids(&t.skipped)), ["B", "C", "D", "E"]);
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
    assert_eq!(run.state.status(), ExecutionStatus::Completed);
    assert!(run.state.all_resolved());
    assert_eq!(run.finishes, [ExecutionStatus::Completed]);

    // Nothing else can happen.
    let a = run.idx("A");
    assert!(matches!(
        run.state.complete(&run.dag, a, None),
        Err(TransitionError::NotReady { .. })
    ));
    assert_eq!(run.state.cancel(), None);
    assert_eq!(run.state.status(), ExecutionStatus::Completed);
}

#[test]
fn empty_next_nodes_on_a_single_leaf_child_completes() {
    let (mut run, _) = Run::start(dag(&["A", "B"], &[("A", "B")]), json!(null));
    let t = run.complete_with("A", json!("a"), Some(&[]));
    assert_eq!(run.ids(&t.skipped), ["B"]);
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
}

#[test]
fn a_failure_fails_the_execution_once_and_starts_nothing_new() {
    // A→B, A→C, B→D, C→D, C→E.
    let (mut run, _) = Run::start(
        dag(
            &["A", "B", "C", "D", "E"],
            &[("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("C", "E")],
        ),
        json!(null),
    );
    let t = run.complete("A");
    assert_eq!(run.ids(&t.ready), ["B", "C"]);

    let t = run.fail("B", false);
    assert_eq!(t.finished, Some(ExecutionStatus::Failed));
    assert!(t.ready.is_empty() && t.skipped.is_empty());
    assert_eq!(run.state.status(), ExecutionStatus::Failed);
    assert_eq!(run.state_of("B"), &NodeState::Failed { continued: false });

    // The sibling in flight finishes and is recorded, but nothing new becomes ready.
    let t = run.complete("C");
    assert_eq!(t, Transition::default());
    assert!(matches!(
        run.state_of("C"),
        NodeState::Completed { routes: None }
    ));
    assert_eq!(
        run.state_of("D"),
        &NodeState::Waiting,
        "D still waits for B"
    );
    assert_eq!(
        run.state_of("E"),
        &NodeState::Held,
        "E would run now, but the execution has failed"
    );
    assert_eq!(run.state.status(), ExecutionStatus::Failed);
    assert_eq!(run.finishes, [ExecutionStatus::Failed]);
    assert!(run.in_flight.is_empty());
    assert_eq!(run.ready_count, [1, 1, 1, 0, 0]);

    // Cancel after the end does nothing.
    assert_eq!(run.state.cancel(), None);
    assert_eq!(run.state.status(), ExecutionStatus::Failed);
}

#[test]
fn a_second_failure_in_flight_does_not_fail_twice() {
    let (mut run, _) = Run::start(
        dag(&["A", "B", "C"], &[("A", "B"), ("A", "C")]),
        json!(null),
    );
    run.complete("A");
    assert_eq!(run.fail("B", false).finished, Some(ExecutionStatus::Failed));
    let t = run.fail("C", false);
    assert_eq!(t.finished, None);
    assert_eq!(run.state_of("C"), &NodeState::Failed { continued: false });
    assert_eq!(run.finishes, [ExecutionStatus::Failed]);
}

#[test]
fn a_failing_last_node_fails_rather_than_completes() {
    let (mut run, _) = Run::start(dag(&["A", "B"], &[("A", "B")]), json!(null));
    run.complete("A");
    let t = run.fail("B", false);
    assert_eq!(t.finished, Some(ExecutionStatus::Failed));
    assert_eq!(run.finishes, [ExecutionStatus::Failed]);
}

#[test]
fn continue_on_fail_lets_children_run_with_the_error_and_completes() {
    // A→B→C, A→D, B→D: B fails with continueOnFail.
    let (mut run, _) = Run::start(
        dag(
            &["A", "B", "C", "D"],
            &[("A", "B"), ("B", "C"), ("A", "D"), ("B", "D")],
        ),
        json!({"x": 1}),
    );
    run.complete_with("A", json!({"a": true}), None);
    let t = run.fail("B", true);
    assert_eq!(t.finished, None);
    assert_eq!(run.ids(&t.ready), ["C", "D"]);
    assert_eq!(run.state_of("B"), &NodeState::Failed { continued: true });
    let err = failure_output("B", "boom", 1);
    assert_eq!(err["failed"], json!(true));
    assert_eq!(err["nodeId"], json!("B"));
    // C has one parent: it receives the error object as it is.
    assert_eq!(run.input("C"), &err);
    // D has two: the error object under B's key.
    assert_eq!(run.input("D"), &json!({"A": {"a": true}, "B": err}));

    run.complete("C");
    let t = run.complete("D");
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
    assert_eq!(run.finishes, [ExecutionStatus::Completed]);
}

#[test]
fn continue_on_fail_on_the_last_node_completes_the_execution() {
    let (mut run, _) = Run::start(dag(&["A"], &[]), json!(null));
    let t = run.fail("A", true);
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
}

#[test]
fn duplicate_completion_is_not_ready() {
    let (mut run, _) = Run::start(dag(&["a", "b"], &[("a", "b")]), json!(null));
    let a = run.idx("a");
    let b = run.idx("b");

    // b has never been ready.
    let err = run.state.complete(&run.dag, b, None).unwrap_err();
    assert_eq!(
        err,
        TransitionError::NotReady {
            node: "b".to_owned(),
            state: NodeState::Waiting
        }
    );
    assert!(err.to_string().contains("\"b\""));
    assert!(matches!(
        run.state.fail(&run.dag, b, false),
        Err(TransitionError::NotReady { .. })
    ));

    run.complete("a");
    let err = run.state.complete(&run.dag, a, None).unwrap_err();
    assert!(
        matches!(&err, TransitionError::NotReady { node, state: NodeState::Completed { routes: None } } if node == "a"),
        "{err:?}"
    );
    // A stale failure of a completed node is rejected too, and changes nothing.
    assert!(matches!(
        run.state.fail(&run.dag, a, false),
        Err(TransitionError::NotReady { .. })
    ));
    assert_eq!(run.state.status(), ExecutionStatus::Running);
    assert_eq!(run.state_of("b"), &NodeState::Ready);

    run.complete("b");
    assert!(matches!(
        run.state.complete(&run.dag, b, None),
        Err(TransitionError::NotReady { .. })
    ));
    assert_eq!(run.finishes, [ExecutionStatus::Completed]);
}

#[test]
fn unknown_next_nodes_target_is_rejected_and_changes_nothing() {
    let (mut run, _) = Run::start(
        dag(&["a", "b", "c"], &[("a", "b"), ("b", "c")]),
        json!(null),
    );
    let a = run.idx("a");
    for target in ["ghost", "c", "a"] {
        // "ghost" does not exist; "c" exists but is not a child of a; "a" is a itself.
        let err = run
            .state
            .complete(&run.dag, a, Some(&["b".to_owned(), target.to_owned()]))
            .unwrap_err();
        assert_eq!(
            err,
            TransitionError::UnknownRoute {
                node: "a".to_owned(),
                target: target.to_owned()
            }
        );
        assert!(err.to_string().contains(target));
        assert_eq!(run.state_of("a"), &NodeState::Ready, "a is still ready");
    }
    // The node can still be completed correctly.
    let t = run.complete_with("a", json!(1), Some(&["b"]));
    assert_eq!(run.ids(&t.ready), ["b"]);
}

#[test]
fn cancel_ends_once_and_in_flight_nodes_start_nothing() {
    let (mut run, _) = Run::start(
        dag(&["a", "b", "c"], &[("a", "b"), ("b", "c")]),
        json!(null),
    );
    let t = run.state.cancel().expect("running executions cancel");
    assert_eq!(
        t,
        Transition {
            finished: Some(ExecutionStatus::Cancelled),
            ..Transition::default()
        }
    );
    run.absorb(&t);
    assert_eq!(run.state.status(), ExecutionStatus::Cancelled);
    assert_eq!(run.state.cancel(), None, "a second cancel does nothing");

    // a was running; it finishes and is recorded, but b does not start.
    let t = run.complete("a");
    assert_eq!(t, Transition::default());
    assert!(matches!(run.state_of("a"), NodeState::Completed { .. }));
    assert_eq!(run.state_of("b"), &NodeState::Held);
    assert_eq!(run.state.status(), ExecutionStatus::Cancelled);
    assert_eq!(run.finishes, [ExecutionStatus::Cancelled]);
}

#[test]
fn cancel_then_failure_in_flight_stays_cancelled() {
    let (mut run, _) = Run::start(dag(&["a", "b"], &[("a", "b")]), json!(null));
    let t = run.state.cancel().expect("running executions cancel");
    run.absorb(&t);
    let t = run.fail("a", false);
    assert_eq!(t, Transition::default());
    assert_eq!(run.state.status(), ExecutionStatus::Cancelled);
    assert_eq!(run.finishes, [ExecutionStatus::Cancelled]);
}

#[test]
fn a_single_node_workflow_completes_on_its_only_node() {
    let (mut run, t) = Run::start(dag(&["only"], &[]), json!("hello"));
    assert_eq!(run.ids(&t.ready), ["only"]);
    assert_eq!(run.input("only"), &json!("hello"));
    let t = run.complete("only");
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
}

#[test]
fn reviving_a_failed_node_runs_it_and_the_dropped_nodes_and_completes() {
    let d = dag(
        &["A", "B", "C", "D", "E"],
        &[("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"), ("C", "E")],
    );
    let (mut state, _) = ExecutionState::start(&d);
    let idx = |id: &str| d.index_of(id).unwrap();
    state.complete(&d, idx("A"), None).unwrap();
    assert_eq!(
        state.fail(&d, idx("B"), false).unwrap().finished,
        Some(ExecutionStatus::Failed)
    );
    state.complete(&d, idx("C"), None).unwrap();
    assert_eq!(state.node(idx("E")), &NodeState::Held);

    let t = state.revive(&d, idx("B")).unwrap();
    assert_eq!(t.ready, vec![idx("B"), idx("E")]);
    assert_eq!(state.status(), ExecutionStatus::Running);
    assert!(matches!(
        state.revive(&d, idx("B")),
        Err(TransitionError::NotRevivable { .. })
    ));
    assert_eq!(state.complete(&d, idx("E"), None).unwrap().finished, None);
    let t = state.complete(&d, idx("B"), None).unwrap();
    assert_eq!(t.ready, vec![idx("D")]);
    let t = state.complete(&d, idx("D"), None).unwrap();
    assert_eq!(
        t.finished,
        Some(ExecutionStatus::Completed),
        "completes exactly once"
    );
}

#[test]
fn pause_holds_what_becomes_ready_and_resume_releases_it() {
    let d = dag(&["a", "b", "c"], &[("a", "b"), ("b", "c")]);
    let idx = |id: &str| d.index_of(id).unwrap();
    let (mut state, _) = ExecutionState::start(&d);
    assert_eq!(state.pause(), Ok(true));
    assert_eq!(state.pause(), Ok(false), "pausing twice is harmless");
    assert_eq!(state.status(), ExecutionStatus::Paused);

    // `a` was running: it finishes and is recorded; its child is held.
    let t = state.complete(&d, idx("a"), None).unwrap();
    assert!(t.ready.is_empty() && t.finished.is_none());
    assert_eq!(state.node(idx("b")), &NodeState::Held);

    assert_eq!(state.resume(), Ok(Some(vec![idx("b")])));
    assert_eq!(
        state.resume(),
        Ok(None),
        "resuming a running execution is harmless"
    );
    assert_eq!(
        state.complete(&d, idx("b"), None).unwrap().ready,
        vec![idx("c")]
    );
    let t = state.complete(&d, idx("c"), None).unwrap();
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
}

#[test]
fn a_paused_execution_whose_last_node_finishes_completes() {
    let d = dag(&["only"], &[]);
    let (mut state, _) = ExecutionState::start(&d);
    state.pause().unwrap();
    let t = state.complete(&d, 0, None).unwrap();
    assert_eq!(t.finished, Some(ExecutionStatus::Completed));
}

#[test]
fn cancelled_and_finished_executions_cannot_resume_or_pause() {
    let d = dag(&["a", "b"], &[("a", "b")]);
    let (mut state, _) = ExecutionState::start(&d);
    state.pause().unwrap();
    assert!(
        state.cancel().is_some(),
        "a paused execution can be cancelled"
    );
    assert_eq!(state.resume(), Err(ExecutionStatus::Cancelled));
    assert_eq!(state.pause(), Err(ExecutionStatus::Cancelled));
    state.hold(0);
    assert_eq!(
        state.node(0),
        &NodeState::Held,
        "a ready node of a cancelled execution is held"
    );
}
