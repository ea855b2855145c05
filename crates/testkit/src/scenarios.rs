//! The scenarios of the conformance suite, one `async fn` each. Every scenario builds its own
//! queues from the factory, so scenarios can run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use spane_core::{
    ExecutionId, ExecutionStatus, NodeDefinition, NodeStatus, WorkflowDefinition, failure_output,
};
use spane_queue::QueueError;
use spane_queue::backend::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution};
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::QueueFactory;
use crate::harness::{
    DEADLINE, Harness, LONG_LEASE, NODE_TYPE, POLL, bounded, compile, ids, start_of, status_of,
    workflow,
};

/// Tolerance for lower bounds on delays: a backend may measure time in whole milliseconds.
const CLOCK_SLACK: Duration = Duration::from_millis(5);

fn completed(data: Value) -> NodeCommit {
    NodeCommit::Completed {
        data,
        next_nodes: None,
    }
}

fn routed(data: Value, next: &[&str]) -> NodeCommit {
    NodeCommit::Completed {
        data,
        next_nodes: Some(next.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn failed(error: &str, continue_on_fail: bool) -> NodeCommit {
    NodeCommit::failed(error, continue_on_fail)
}

fn retry(delay: Duration, consume_attempt: bool) -> NodeCommit {
    NodeCommit::Retry {
        error: "try again".to_owned(),
        delay,
        consume_attempt,
    }
}

/// A copy of `job` carrying a token that is not its lease's.
fn forged(job: &ClaimedJob) -> ClaimedJob {
    let mut forged = job.clone();
    forged.token = job.token.wrapping_add(7919);
    forged
}

/// `start_execution` makes every root claimable at once, each with the initial data as input,
/// attempt 1, and the execution's metadata; starting the same id again is refused with
/// [`QueueError::DuplicateExecution`] and enqueues nothing.
pub async fn start_makes_roots_claimable(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-roots",
        &["left", "right", "join"],
        &[("left", "join"), ("right", "join")],
    );
    let parent = ExecutionId::new();
    let data = json!({"order": 42, "items": ["a", "b"]});
    let start = StartExecution::new(ExecutionId::new(), Arc::clone(&wf), 7, data.clone())
        .child_of(parent, "caller", 2);
    let id = q.start_execution(start.clone()).await;

    let record = q.record(id).await;
    assert_eq!(record.execution_id, id);
    assert_eq!(record.workflow_id, "wf-roots");
    assert_eq!(record.workflow_version, 7);
    assert_eq!(
        record.status,
        ExecutionStatus::Running,
        "a started execution runs"
    );
    assert_eq!(record.initial_data, data);
    assert_eq!(record.parent_execution_id, Some(parent));
    assert_eq!(record.depth, 2);

    let jobs = q.claim_exactly(2, 10).await;
    let roots: BTreeSet<&str> = jobs.iter().map(|j| j.node_id.as_str()).collect();
    assert_eq!(
        roots,
        BTreeSet::from(["left", "right"]),
        "every root is claimable"
    );
    for job in &jobs {
        assert_eq!(job.execution_id, id);
        assert_eq!(job.workflow_id, "wf-roots");
        assert_eq!(job.workflow_version, 7);
        assert_eq!(job.node, wf.index_of(&job.node_id).unwrap_or(usize::MAX));
        assert_eq!(
            job.attempt, 1,
            "{}: the first claim runs attempt 1",
            job.node_id
        );
        assert_eq!(
            job.input, data,
            "{}: a root receives the initial data",
            job.node_id
        );
        assert!(
            job.previous_results.is_empty(),
            "{}: a root has no previous results",
            job.node_id
        );
        assert!(
            job.ready_at
                .is_some_and(|t| t <= spane_core::now_millis() && t >= record.created_at - 1000),
            "{}: a claim says when the job became claimable ({:?})",
            job.node_id,
            job.ready_at
        );
        assert_eq!(job.parent_execution_id, Some(parent));
        assert_eq!(job.depth, 2);
        assert!(!job.delay_elapsed);
        assert_eq!(
            job.lease, LONG_LEASE,
            "the claim carries the configured lease"
        );
    }
    assert_ne!(jobs[0].token, jobs[1].token, "each claim has its own token");
    q.assert_idle("the join waits for both roots").await;

    let again = bounded("start_execution", q.queue.start_execution(start)).await;
    assert_eq!(again, Err(QueueError::DuplicateExecution(id)));
    q.assert_idle("a refused duplicate start enqueues nothing")
        .await;
}

/// A claim with nothing ready waits (up to its `wait`) and returns an empty list, both on an
/// empty queue and when every ready job is already claimed.
pub async fn empty_claim_waits_and_returns_nothing(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wait = Duration::from_millis(50);
    assert!(
        q.claim(10, wait).await.is_empty(),
        "an empty queue hands out nothing"
    );

    let wf = workflow("wf-one", &["only"], &[]);
    let id = q.start(&wf, json!({})).await;
    let job = q.claim_node(id, "only").await;
    let other = q.other_worker();
    assert!(
        other.claim(10, wait).await.is_empty(),
        "a claimed job is not handed out again"
    );
    assert_eq!(
        q.complete(&job, json!(1)).await,
        Some(ExecutionStatus::Completed)
    );
    assert!(
        other.claim(10, wait).await.is_empty(),
        "a finished execution hands out nothing"
    );
}

/// In a chain each child receives its parent's output as input (and in `previous_results`);
/// the commit of the last node reports the execution completed, and the record lists every
/// node completed with its output.
pub async fn chain_passes_data_and_completes(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let nodes = ["first", "second", "third"];
    let wf = workflow(
        "wf-chain",
        &nodes,
        &[("first", "second"), ("second", "third")],
    );
    let initial = json!({"seed": 1});
    let id = q.start(&wf, initial.clone()).await;
    assert_eq!(q.status(id).await, Some(ExecutionStatus::Running));
    assert_eq!(
        q.status(ExecutionId::new()).await,
        None,
        "unknown execution"
    );

    let mut expected_input = initial;
    let mut parent: Option<(&str, Value)> = None;
    for (i, node) in nodes.iter().enumerate() {
        let job = q.claim_node(id, node).await;
        assert_eq!(job.attempt, 1);
        assert_eq!(
            job.input, expected_input,
            "{node}: input is the parent's output"
        );
        let expected_previous: BTreeMap<String, Value> = parent
            .iter()
            .map(|(p, v)| ((*p).to_owned(), v.clone()))
            .collect();
        assert_eq!(
            job.previous_results, expected_previous,
            "{node}: previous_results holds the parent's output"
        );
        let output = json!({"node": node, "step": i});
        let finished = q.complete(&job, output.clone()).await;
        if i + 1 < nodes.len() {
            assert_eq!(finished, None, "{node}: the execution goes on");
        } else {
            assert_eq!(
                finished,
                Some(ExecutionStatus::Completed),
                "the last commit completes the execution"
            );
        }
        expected_input = output.clone();
        parent = Some((node, output));
    }
    q.assert_idle("a completed execution hands out nothing")
        .await;
    assert_eq!(q.status(id).await, Some(ExecutionStatus::Completed));

    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Completed);
    assert_eq!(record.error, None);
    assert!(
        record.finished_at.is_some(),
        "a finished execution has an end time"
    );
    for (i, node) in nodes.iter().enumerate() {
        let result = record
            .node_results
            .get(*node)
            .unwrap_or_else(|| panic!("{node} is missing from the record"));
        assert_eq!(result.status, NodeStatus::Completed, "{node}");
        assert_eq!(
            result.data,
            Some(json!({"node": node, "step": i})),
            "{node}: output"
        );
        assert_eq!(result.attempts, 1, "{node}: attempts");
    }
}

/// Fan-out 1 → 20 → 1: the twenty middle nodes are claimed (in several batches) and committed
/// concurrently; the join becomes ready exactly once, is handed to exactly one of several
/// concurrent claimers, and receives an object with the twenty parents' outputs.
pub async fn join_becomes_ready_exactly_once(factory: &dyn QueueFactory) {
    const WIDTH: usize = 20;
    let q = Harness::new(factory, LONG_LEASE).await;
    let middle: Vec<String> = (0..WIDTH).map(|i| format!("m{i:02}")).collect();
    let mut def = WorkflowDefinition::new("wf-join", "Join")
        .node(NodeDefinition::new("fan", NODE_TYPE))
        .node(NodeDefinition::new("join", NODE_TYPE));
    for m in &middle {
        def = def
            .node(NodeDefinition::new(m.clone(), NODE_TYPE))
            .edge("fan", m)
            .edge(m, "join");
    }
    let wf = compile(def);
    let id = q.start(&wf, json!({"fan": "out"})).await;

    let fan = q.claim_node(id, "fan").await;
    assert_eq!(q.complete(&fan, json!({"fanned": true})).await, None);

    let jobs = q.claim_exactly(WIDTH, 8).await;
    let claimed: BTreeSet<String> = jobs.iter().map(|j| j.node_id.clone()).collect();
    let expected: BTreeSet<String> = middle.iter().cloned().collect();
    assert_eq!(
        claimed, expected,
        "the twenty middle nodes are claimed, each once"
    );
    for job in &jobs {
        assert_eq!(
            job.input,
            json!({"fanned": true}),
            "{}: input from fan",
            job.node_id
        );
    }
    q.assert_idle("the join waits for all twenty parents").await;

    let barrier = Arc::new(Barrier::new(WIDTH));
    let mut commits = Vec::with_capacity(WIDTH);
    for job in jobs {
        let q = q.clone();
        let barrier = Arc::clone(&barrier);
        commits.push(tokio::spawn(async move {
            barrier.wait().await;
            let data = json!({"from": job.node_id});
            let outcome = q.commit(&job, completed(data)).await;
            (job.node_id, outcome)
        }));
    }
    for task in commits {
        let (node, outcome) = bounded("concurrent commit", task)
            .await
            .unwrap_or_else(|e| panic!("commit task panicked: {e}"));
        assert_eq!(
            outcome,
            CommitOutcome::Applied { finished: None },
            "{node}: a concurrent commit applies and does not end the execution"
        );
    }

    // Several workers race for the join: exactly one gets it.
    let found = Arc::new(AtomicBool::new(false));
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let w = q.other_worker();
        let found = Arc::clone(&found);
        claimers.push(tokio::spawn(async move {
            let deadline = Instant::now() + DEADLINE;
            let mut got = Vec::new();
            while !found.load(Ordering::SeqCst) && Instant::now() < deadline {
                let jobs = w.claim(4, POLL).await;
                if !jobs.is_empty() {
                    found.store(true, Ordering::SeqCst);
                    got.extend(jobs);
                }
            }
            got
        }));
    }
    let mut joins = Vec::new();
    for task in claimers {
        joins.extend(
            bounded("concurrent claim", task)
                .await
                .unwrap_or_else(|e| panic!("claim task panicked: {e}")),
        );
    }
    assert_eq!(
        ids(&joins),
        vec!["join"],
        "the join is handed out exactly once"
    );
    q.assert_idle("the join was already claimed").await;

    let join = joins.remove(0);
    let input = join
        .input
        .as_object()
        .unwrap_or_else(|| panic!("the join's input is an object, got {}", join.input));
    assert_eq!(
        input.len(),
        WIDTH,
        "the join's input has one key per parent"
    );
    for m in &middle {
        assert_eq!(input.get(m), Some(&json!({"from": m})), "join input[{m}]");
    }
    assert_eq!(join.previous_results.len(), WIDTH);
    assert_eq!(
        q.complete(&join, json!("joined")).await,
        Some(ExecutionStatus::Completed)
    );
}

/// Routing: `A→B, A→C, C→D, B→J, D→J`; A routes to `B` only, so C and D are skipped at once,
/// J runs after B with only `B` in its input. Routing to no child at all skips every
/// descendant and completes the execution on that commit.
pub async fn branching_skips_unrouted_nodes(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-branch",
        &["A", "B", "C", "D", "J"],
        &[("A", "B"), ("A", "C"), ("C", "D"), ("B", "J"), ("D", "J")],
    );
    let id = q.start(&wf, json!({"route": "B"})).await;
    let a = q.claim_node(id, "A").await;
    assert_eq!(q.applied(&a, routed(json!({"a": 1}), &["B"])).await, None);

    let record = q.record(id).await;
    assert_eq!(status_of(&record, "C"), Some(NodeStatus::Skipped), "C");
    assert_eq!(
        status_of(&record, "D"),
        Some(NodeStatus::Skipped),
        "D (cascade)"
    );

    let b = q.claim_node(id, "B").await;
    assert_eq!(b.input, json!({"a": 1}));
    q.assert_idle("only B was routed to; J waits for B").await;
    assert_eq!(q.complete(&b, json!({"b": 2})).await, None);

    let j = q.claim_node(id, "J").await;
    assert_eq!(
        j.input,
        json!({"B": {"b": 2}}),
        "J's input has only the live parent B"
    );
    assert_eq!(
        j.previous_results.keys().collect::<Vec<_>>(),
        vec!["B"],
        "J's previous results"
    );
    assert_eq!(
        q.complete(&j, json!("done")).await,
        Some(ExecutionStatus::Completed)
    );
    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Completed);
    assert_eq!(
        Harness::nodes_with(&record, NodeStatus::Completed),
        BTreeSet::from(["A".to_owned(), "B".to_owned(), "J".to_owned()])
    );
    assert_eq!(
        Harness::nodes_with(&record, NodeStatus::Skipped),
        BTreeSet::from(["C".to_owned(), "D".to_owned()])
    );

    // Routing to nothing: every descendant is skipped and the commit ends the execution.
    let id = q.start(&wf, json!({"route": "none"})).await;
    let a = q.claim_node(id, "A").await;
    assert_eq!(
        q.applied(&a, routed(json!({}), &[])).await,
        Some(ExecutionStatus::Completed),
        "routing to no child skips everything after A and completes the execution"
    );
    q.assert_idle("every descendant of A was skipped").await;
    let record = q.record(id).await;
    assert_eq!(
        Harness::nodes_with(&record, NodeStatus::Skipped),
        BTreeSet::from(["B", "C", "D", "J"].map(str::to_owned))
    );
}

/// A commit, renew or release carrying a token other than the lease's is refused and changes
/// nothing: the node is neither completed nor failed, the execution goes on, and the real
/// owner's commit still applies.
pub async fn stale_token_is_refused(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-fence", &["a", "b"], &[("a", "b")]);
    let id = q.start(&wf, json!({})).await;
    let job = q.claim_node(id, "a").await;
    let fake = forged(&job);

    q.assert_stale(
        &fake,
        failed("forged", false),
        "a failure with a wrong token is refused",
    )
    .await;
    q.assert_stale(
        &fake,
        completed(json!("forged")),
        "a completion with a wrong token is refused",
    )
    .await;
    assert!(
        !q.renew(&fake).await,
        "renewing with a wrong token reports the lease lost"
    );
    q.release(&fake).await;
    q.other_worker()
        .assert_idle("a release with a wrong token does not give the job away")
        .await;

    let record = q.record(id).await;
    assert_eq!(
        record.status,
        ExecutionStatus::Running,
        "a refused failure does not fail the execution"
    );
    assert_eq!(record.error, None);
    assert!(
        !matches!(
            status_of(&record, "a"),
            Some(NodeStatus::Completed | NodeStatus::Failed)
        ),
        "a refused commit does not resolve the node: {:?}",
        status_of(&record, "a")
    );
    assert!(
        record.output("a").is_none(),
        "a refused commit stores no output"
    );

    assert_eq!(q.complete(&job, json!("real")).await, None);
    let b = q.claim_node(id, "b").await;
    assert_eq!(b.input, json!("real"), "the real owner's output stands");
}

/// Committing the same claim twice: the second commit is refused as stale and the first
/// outcome stands (the child is made ready once).
pub async fn second_commit_is_stale(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-twice", &["a", "b"], &[("a", "b")]);
    let id = q.start(&wf, json!({})).await;
    let job = q.claim_node(id, "a").await;
    assert_eq!(q.complete(&job, json!("first")).await, None);
    q.assert_stale(
        &job,
        completed(json!("second")),
        "a second commit of the same claim is stale",
    )
    .await;
    q.assert_stale(
        &job,
        failed("late failure", false),
        "a failure after the completion is stale",
    )
    .await;
    assert!(!q.renew(&job).await, "a committed claim cannot be renewed");

    let b = q.claim_node(id, "b").await;
    assert_eq!(b.input, json!("first"), "the first commit stands");
    q.assert_idle("the child is made ready once").await;
    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Running);
    assert_eq!(record.output("a"), Some(&json!("first")));
}

/// A claim that is not renewed expires after its lease: the job is claimable again with a new
/// token, the old owner's renew and commit are refused, and the new owner's commit applies.
pub async fn expired_lease_is_reclaimed_with_new_token(factory: &dyn QueueFactory) {
    let lease = Duration::from_millis(250);
    let q = Harness::new(factory, lease).await;
    let wf = workflow("wf-expire", &["a", "b"], &[("a", "b")]);
    let id = q.start(&wf, json!({"x": 1})).await;
    let old = q.claim_node(id, "a").await;

    // Not renewed: another worker gets it once the lease has expired.
    let second = q.other_worker();
    let new = second.claim_node(id, "a").await;
    assert_ne!(
        new.token, old.token,
        "a reclaimed job carries a new fencing token"
    );
    assert_eq!(
        new.input,
        json!({"x": 1}),
        "the reclaimed job has the same input"
    );
    assert!(new.attempt >= 1);

    q.assert_stale(
        &old,
        completed(json!("old owner")),
        "the expired claim's commit is stale",
    )
    .await;
    assert!(!q.renew(&old).await, "the expired claim cannot be renewed");
    assert_eq!(
        second.complete(&new, json!("new owner")).await,
        None,
        "the new owner's commit applies"
    );

    let b = q.claim_node(id, "b").await;
    assert_eq!(b.input, json!("new owner"), "the new owner's result stands");
    let record = q.record(id).await;
    assert_eq!(record.output("a"), Some(&json!("new owner")));
}

/// A job whose lease expires counts the attempt: the next claim runs attempt 2. With the
/// default `max_stalled` of 1, a second expiry fails the node for good with reason `stalled`:
/// a dead letter whose attempts are the attempts run, and a failed execution. The same on
/// every backend.
pub async fn stalled_job_counts_attempts_then_dead_letters(factory: &dyn QueueFactory) {
    let lease = Duration::from_millis(200);
    let q = Harness::new(factory, lease).await;
    let wf = workflow("wf-stall", &["hang", "after"], &[("hang", "after")]);
    let id = q.start(&wf, json!({})).await;
    let first = q.claim_node(id, "hang").await;
    assert_eq!(first.attempt, 1);

    let second = q.claim_node(id, "hang").await;
    assert_eq!(
        second.attempt, 2,
        "an expired lease counts as an attempt: the reclaimed job runs the next one"
    );

    // Not renewed again: past `max_stalled` (1) the node fails for good. Claims keep asking
    // (the memory backend reclaims while claiming) until the execution has failed.
    let deadline = Instant::now() + DEADLINE;
    while q.status(id).await != Some(ExecutionStatus::Failed) {
        assert!(
            Instant::now() < deadline,
            "the execution did not fail within {DEADLINE:?} after the second stall"
        );
        let jobs = q.claim(4, POLL).await;
        assert!(
            jobs.is_empty(),
            "a node stalled past max_stalled is not handed out again: {:?}",
            ids(&jobs)
        );
    }
    let record = q.record(id).await;
    let hang = &record.node_results["hang"];
    assert_eq!(hang.status, NodeStatus::Failed);
    assert_eq!(hang.attempts, 2, "both runs were attempts");
    assert_eq!(hang.claims, 2, "and both were claims");
    assert!(
        hang.error
            .as_deref()
            .is_some_and(|e| e.starts_with("stalled")),
        "the node's error says it stalled: {:?}",
        hang.error
    );
    assert_eq!(
        status_of(&record, "after"),
        None,
        "its child never became ready"
    );
    let dlq = q.queue.dead_letters().expect("a dead-letter queue");
    let item = bounded("get_dead_letter", dlq.get_dead_letter(id, "hang"))
        .await
        .unwrap_or_else(|e| panic!("get_dead_letter failed: {e}"))
        .unwrap_or_else(|| panic!("the stalled node is in the dead-letter queue"));
    assert_eq!(item.reason, spane_queue::DeadLetterReason::Stalled);
    assert_eq!(item.attempts, 2);
    q.assert_stale(
        &second,
        completed(json!("too late")),
        "the stalled claim is spent",
    )
    .await;
}

/// A retry committed after its execution failed (another node failed for good meanwhile)
/// does not fail the node and makes no dead letter: the node only waited, so it is held and
/// shown as pending. A dead-letter retry of the failed node revives the execution and runs
/// the held node again, with the attempt its retry decided.
pub async fn retry_after_the_execution_failed_is_held(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-held-retry",
        &["root", "bad", "flaky"],
        &[("root", "bad"), ("root", "flaky")],
    );
    let id = q.start(&wf, json!({})).await;
    let root = q.claim_node(id, "root").await;
    assert_eq!(q.complete(&root, json!("r")).await, None);
    let jobs = q.claim_exactly(2, 2).await;
    let bad = jobs
        .iter()
        .find(|j| j.node_id == "bad")
        .expect("bad is claimed");
    let flaky = jobs
        .iter()
        .find(|j| j.node_id == "flaky")
        .expect("flaky is claimed");
    assert_eq!(
        q.applied(bad, failed("fatal", false)).await,
        Some(ExecutionStatus::Failed)
    );
    assert_eq!(
        q.applied(flaky, retry(Duration::from_millis(10), true))
            .await,
        None
    );
    q.assert_idle("a retry of a failed execution is not scheduled")
        .await;

    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(
        status_of(&record, "flaky"),
        Some(NodeStatus::Pending),
        "held, not failed"
    );
    assert_eq!(status_of(&record, "bad"), Some(NodeStatus::Failed));
    let dlq = q.queue.dead_letters().expect("a dead-letter queue");
    let items = bounded("list_dead_letters", dlq.list_dead_letters(0, 100))
        .await
        .unwrap_or_else(|e| panic!("list_dead_letters failed: {e}"));
    let nodes: Vec<&str> = items
        .iter()
        .filter(|d| d.execution_id == id)
        .map(|d| d.node_id.as_str())
        .collect();
    assert_eq!(
        nodes,
        ["bad"],
        "only the node that failed for good is a dead letter"
    );

    assert!(
        bounded("retry_dead_letter", dlq.retry_dead_letter(id, "bad"))
            .await
            .unwrap_or_else(|e| panic!("retry_dead_letter failed: {e}"))
    );
    let again = q.claim_exactly(2, 2).await;
    let flaky = again
        .iter()
        .find(|j| j.node_id == "flaky")
        .expect("the held node runs again");
    assert_eq!(
        flaky.attempt, 2,
        "the held retry runs the attempt it decided"
    );
    let bad = again
        .iter()
        .find(|j| j.node_id == "bad")
        .expect("the revived node runs");
    assert_eq!(bad.attempt, 1, "a dead-letter retry starts from attempt 1");
    assert_eq!(q.complete(flaky, json!("f")).await, None);
    assert_eq!(
        q.complete(bad, json!("b")).await,
        Some(ExecutionStatus::Completed)
    );
}

/// A node that fails for good while its execution is paused fails the execution: a later
/// resume is refused instead of leaving it running with a node that never resolves.
pub async fn failure_while_paused_fails_the_execution(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-pause-fail", &["a", "b"], &[("a", "b")]);
    let id = q.start(&wf, json!({})).await;
    let a = q.claim_node(id, "a").await;
    let control = q.queue.control().expect("pause and resume");
    let paused = bounded("pause", control.pause(id))
        .await
        .unwrap_or_else(|e| panic!("pause failed: {e}"));
    assert_eq!(paused, ExecutionStatus::Paused);
    assert_eq!(
        q.applied(&a, failed("fatal", false)).await,
        Some(ExecutionStatus::Failed),
        "the failure ends the paused execution"
    );
    assert_eq!(q.status(id).await, Some(ExecutionStatus::Failed));
    let resumed = bounded("resume", control.resume(id)).await;
    assert!(
        matches!(resumed, Err(QueueError::NotAllowed { .. })),
        "a failed execution cannot resume: {resumed:?}"
    );
}

/// A dead-letter retry that cannot revive its node now (the execution is paused) is refused
/// and the item stays listed, so it can be retried once the execution resumes.
pub async fn refused_dead_letter_retry_keeps_the_item(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-dlq-refused", &["a", "b"], &[]);
    let id = q.start(&wf, json!({})).await;
    let jobs = q.claim_exactly(2, 2).await;
    for job in &jobs {
        q.applied(job, failed("boom", false)).await;
    }
    let dlq = q.queue.dead_letters().expect("a dead-letter queue");
    let retry = |node: &'static str| {
        let dlq = q.queue.dead_letters().expect("a dead-letter queue");
        async move {
            bounded("retry_dead_letter", dlq.retry_dead_letter(id, node))
                .await
                .unwrap_or_else(|e| panic!("retry_dead_letter failed: {e}"))
        }
    };
    assert!(
        retry("a").await,
        "the first item revives the failed execution"
    );
    let control = q.queue.control().expect("pause");
    bounded("pause", control.pause(id))
        .await
        .unwrap_or_else(|e| panic!("pause failed: {e}"));
    assert!(
        !retry("b").await,
        "a paused execution's node is not revived"
    );
    let item = bounded("get_dead_letter", dlq.get_dead_letter(id, "b"))
        .await
        .unwrap_or_else(|e| panic!("get_dead_letter failed: {e}"));
    assert!(item.is_some(), "the refused item is still listed");
    bounded("resume", control.resume(id))
        .await
        .unwrap_or_else(|e| panic!("resume failed: {e}"));
    assert!(retry("b").await, "after the resume the item can be retried");
}

/// Renewing a claim every third of its lease keeps it alive well past the lease length: no
/// other worker gets the job meanwhile, and the owner's commit then applies.
pub async fn renew_keeps_lease_alive(factory: &dyn QueueFactory) {
    let lease = Duration::from_millis(450);
    let q = Harness::new(factory, lease).await;
    let wf = workflow("wf-renew", &["a"], &[]);
    let id = q.start(&wf, json!({})).await;
    let job = q.claim_node(id, "a").await;

    let other = q.other_worker();
    let since = Instant::now();
    let mut renewals = 0;
    while since.elapsed() < 2 * lease {
        let stolen = other.claim(4, lease / 3).await;
        assert!(
            stolen.is_empty(),
            "a job renewed every {:?} was handed out after {:?} (renewal {renewals}): {:?}",
            lease / 3,
            since.elapsed(),
            ids(&stolen)
        );
        assert!(q.renew(&job).await, "renewal {renewals} of a live lease");
        renewals += 1;
    }
    assert_eq!(
        q.complete(&job, json!("kept")).await,
        Some(ExecutionStatus::Completed),
        "the renewed claim's commit applies"
    );
}

/// `Retry` with `consume_attempt` makes the node claimable again after the delay with the next
/// attempt number and a new token; without `consume_attempt` the attempt number is kept. The
/// record tells the attempts (2) from the claims (3), and so does each claimed job.
pub async fn retry_reschedules_the_node(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-retry", &["flaky", "after"], &[("flaky", "after")]);
    let id = q.start(&wf, json!({"n": 1})).await;
    let delay = Duration::from_millis(50);

    let first = q.claim_node(id, "flaky").await;
    assert_eq!((first.attempt, first.claims), (1, 1));
    let at = Instant::now();
    assert_eq!(q.applied(&first, retry(delay, true)).await, None);
    q.assert_stale(
        &first,
        completed(json!("late")),
        "the retried attempt's claim is spent",
    )
    .await;

    let second = q.claim_node(id, "flaky").await;
    assert!(
        at.elapsed() + CLOCK_SLACK >= delay,
        "a retry is claimable only after its delay ({:?} < {delay:?})",
        at.elapsed()
    );
    assert_eq!(
        second.attempt, 2,
        "a retry that consumes an attempt runs the next one"
    );
    assert_ne!(second.token, first.token);
    assert_eq!(second.input, json!({"n": 1}), "a retry gets the same input");

    assert_eq!(q.applied(&second, retry(delay, false)).await, None);
    let third = q.claim_node(id, "flaky").await;
    assert_eq!(
        third.attempt, 2,
        "a retry that does not consume an attempt keeps the number"
    );
    assert_eq!((second.claims, third.claims), (2, 3), "every claim counts");

    assert_eq!(q.complete(&third, json!("ok")).await, None);
    let after = q.claim_node(id, "after").await;
    assert_eq!(after.input, json!("ok"));
    assert_eq!(
        q.complete(&after, json!(null)).await,
        Some(ExecutionStatus::Completed)
    );
    let record = q.record(id).await;
    let flaky = &record.node_results["flaky"];
    assert_eq!(flaky.status, NodeStatus::Completed);
    assert_eq!(
        flaky.attempts, third.attempt,
        "attempts of the retried node"
    );
    assert_eq!(flaky.claims, 3, "claims of the retried node");
    assert_eq!(
        (
            record.node_results["after"].attempts,
            record.node_results["after"].claims
        ),
        (1, 1)
    );
}

/// `Delay` puts a node to sleep: it is claimed again after the delay with `delay_elapsed`
/// set, the same attempt and the same input.
pub async fn delay_reclaims_with_delay_elapsed(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = compile(
        WorkflowDefinition::new("wf-delay", "Delay")
            .node(NodeDefinition::new("pause", "delay").with_config(json!({"duration": 50})))
            .node(NodeDefinition::new("after", NODE_TYPE))
            .edge("pause", "after"),
    );
    let id = q.start(&wf, json!({"carry": "on"})).await;
    let delay = Duration::from_millis(50);

    let first = q.claim_node(id, "pause").await;
    assert!(
        !first.delay_elapsed,
        "the first claim of a delay node starts the delay"
    );
    let at = Instant::now();
    assert_eq!(q.applied(&first, NodeCommit::Delay { delay }).await, None);

    let second = q.claim_node(id, "pause").await;
    assert!(
        at.elapsed() + CLOCK_SLACK >= delay,
        "a delayed node is claimable only after its delay ({:?} < {delay:?})",
        at.elapsed()
    );
    assert!(second.delay_elapsed, "the claim after the delay says so");
    assert_eq!(second.attempt, first.attempt, "a delay is not an attempt");
    assert_eq!(second.input, json!({"carry": "on"}));
    assert_ne!(second.token, first.token);

    assert_eq!(q.complete(&second, second.input.clone()).await, None);
    let after = q.claim_node(id, "after").await;
    assert_eq!(after.input, json!({"carry": "on"}));
    assert!(!after.delay_elapsed);
    assert_eq!(
        q.complete(&after, json!(null)).await,
        Some(ExecutionStatus::Completed)
    );
}

/// A node that fails for good (without `continue_on_fail`) fails the execution on that commit;
/// a sibling that was ready but not claimed is no longer handed out, and the record's error
/// names the failed node.
pub async fn failure_stops_handing_out_ready_nodes(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-fail",
        &["root", "alpha-node", "beta-node"],
        &[("root", "alpha-node"), ("root", "beta-node")],
    );
    let id = q.start(&wf, json!({})).await;
    let root = q.claim_node(id, "root").await;
    assert_eq!(q.complete(&root, json!("r")).await, None);

    // Both siblings are ready; take one and fail it.
    let mut jobs = q.claim_exactly(1, 1).await;
    let failing = jobs.remove(0);
    assert!(["alpha-node", "beta-node"].contains(&failing.node_id.as_str()));
    assert_eq!(
        q.applied(&failing, failed("boom: disk on fire", false))
            .await,
        Some(ExecutionStatus::Failed),
        "a failure without continue_on_fail ends the execution"
    );
    q.assert_idle("a failed execution hands out no ready sibling")
        .await;

    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    let error = record
        .error
        .as_deref()
        .unwrap_or_else(|| panic!("a failed execution has an error"));
    assert!(
        error.contains(&failing.node_id),
        "the execution error names the failed node {:?}: {error:?}",
        failing.node_id
    );
    let result = &record.node_results[&failing.node_id];
    assert_eq!(result.status, NodeStatus::Failed);
    assert_eq!(result.error.as_deref(), Some("boom: disk on fire"));
    assert!(!result.continued);
    assert!(record.finished_at.is_some());
}

/// After a failure ends the execution, a node that was already running still commits: its
/// result is recorded, the commit reports no new final status, and its children do not start.
pub async fn in_flight_commit_after_failure_is_recorded(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-inflight",
        &["root", "doomed", "survivor", "grandchild"],
        &[
            ("root", "doomed"),
            ("root", "survivor"),
            ("survivor", "grandchild"),
        ],
    );
    let id = q.start(&wf, json!({})).await;
    let root = q.claim_node(id, "root").await;
    assert_eq!(q.complete(&root, json!("r")).await, None);

    let jobs = q.claim_exactly(2, 2).await;
    let (doomed, survivor) = match (jobs[0].node_id.as_str(), jobs[1].node_id.as_str()) {
        ("doomed", "survivor") => (&jobs[0], &jobs[1]),
        ("survivor", "doomed") => (&jobs[1], &jobs[0]),
        other => panic!("expected doomed and survivor, got {other:?}"),
    };
    assert_eq!(
        q.applied(doomed, failed("fatal", false)).await,
        Some(ExecutionStatus::Failed)
    );
    assert_eq!(
        q.complete(survivor, json!({"late": true})).await,
        None,
        "the in-flight commit applies without deciding the status again"
    );
    q.assert_idle("a failed execution starts no new node").await;

    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(
        status_of(&record, "survivor"),
        Some(NodeStatus::Completed),
        "the in-flight node's result is recorded"
    );
    assert_eq!(record.output("survivor"), Some(&json!({"late": true})));
    assert_eq!(status_of(&record, "doomed"), Some(NodeStatus::Failed));
    assert!(
        !matches!(
            status_of(&record, "grandchild"),
            Some(NodeStatus::Running | NodeStatus::Completed | NodeStatus::Failed)
        ),
        "the child of the in-flight node does not run: {:?}",
        status_of(&record, "grandchild")
    );
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("doomed"),
        "the execution error names the failed node: {error:?}"
    );
}

/// `Failed { continue_on_fail: true }` records the node as failed-and-continued and hands its
/// children the error object (`failure_output`); the execution completes.
pub async fn continue_on_fail_feeds_children(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-continue", &["shaky", "next"], &[("shaky", "next")]);
    let id = q.start(&wf, json!({})).await;
    let shaky = q.claim_node(id, "shaky").await;
    assert_eq!(
        q.applied(&shaky, failed("upstream said no", true)).await,
        None,
        "a continued failure does not end the execution"
    );

    let next = q.claim_node(id, "next").await;
    let expected = failure_output("shaky", "upstream said no", 1);
    assert_eq!(
        next.input.get("failed"),
        Some(&json!(true)),
        "input: {}",
        next.input
    );
    assert_eq!(next.input.get("nodeId"), Some(&json!("shaky")));
    assert_eq!(next.input.get("error"), Some(&json!("upstream said no")));
    assert_eq!(
        next.input, expected,
        "the child receives the failure output"
    );
    assert_eq!(next.previous_results.get("shaky"), Some(&expected));

    assert_eq!(
        q.complete(&next, json!("handled")).await,
        Some(ExecutionStatus::Completed)
    );
    let record = q.record(id).await;
    assert_eq!(record.status, ExecutionStatus::Completed);
    assert_eq!(record.error, None, "a completed execution has no error");
    let result = &record.node_results["shaky"];
    assert_eq!(result.status, NodeStatus::Failed);
    assert!(result.continued, "recorded as failed-and-continued");
    assert_eq!(result.error.as_deref(), Some("upstream said no"));
    assert_eq!(result.data.as_ref(), Some(&expected));
}

/// `release` gives a job back: another worker claims it at once (long before the lease would
/// expire) with the same attempt number and a new token; the released claim is spent.
pub async fn release_makes_job_claimable_at_once(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-release", &["a"], &[]);
    let id = q.start(&wf, json!({"keep": 1})).await;
    let first = q.claim_node(id, "a").await;
    q.release(&first).await;

    let other = q.other_worker();
    let second = other.claim_node(id, "a").await;
    assert_eq!(
        second.attempt, first.attempt,
        "a release does not count an attempt"
    );
    assert_ne!(second.token, first.token);
    assert_eq!(second.input, json!({"keep": 1}));
    q.assert_stale(
        &first,
        completed(json!("released")),
        "the released claim's commit is stale",
    )
    .await;
    assert!(!q.renew(&first).await, "a released claim cannot be renewed");
    q.release(&first).await;
    q.assert_idle("releasing a spent claim does not give the new owner's job away")
        .await;

    // After a retry, the release keeps the retry's attempt number.
    assert_eq!(
        other
            .applied(&second, retry(Duration::from_millis(10), true))
            .await,
        None
    );
    let third = other.claim_node(id, "a").await;
    assert_eq!(third.attempt, 2);
    other.release(&third).await;
    let fourth = q.claim_node(id, "a").await;
    assert_eq!(fourth.attempt, 2, "a release keeps the attempt number");
    assert_eq!(
        q.complete(&fourth, json!("done")).await,
        Some(ExecutionStatus::Completed)
    );
}

/// `results` returns the outputs of the nodes completed so far; `execution` of an unknown id is
/// `Ok(None)`, and `results` of one is empty or [`QueueError::ExecutionNotFound`].
pub async fn results_and_unknown_executions(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-results", &["a", "b", "c"], &[("a", "b"), ("a", "c")]);
    let id = q.start(&wf, json!({})).await;
    let results = bounded("results", q.queue.results(id))
        .await
        .unwrap_or_else(|e| panic!("results failed: {e}"));
    assert!(
        results.is_empty(),
        "no results before any node completed: {results:?}"
    );

    let a = q.claim_node(id, "a").await;
    assert_eq!(q.complete(&a, json!({"a": [1, 2]})).await, None);
    let results = bounded("results", q.queue.results(id))
        .await
        .unwrap_or_else(|e| panic!("results failed: {e}"));
    assert_eq!(
        results,
        BTreeMap::from([("a".to_owned(), json!({"a": [1, 2]}))])
    );

    let jobs = q.claim_exactly(2, 2).await;
    for job in &jobs {
        q.complete(job, json!(format!("out-{}", job.node_id))).await;
    }
    let results = bounded("results", q.queue.results(id))
        .await
        .unwrap_or_else(|e| panic!("results failed: {e}"));
    assert_eq!(
        results,
        BTreeMap::from([
            ("a".to_owned(), json!({"a": [1, 2]})),
            ("b".to_owned(), json!("out-b")),
            ("c".to_owned(), json!("out-c")),
        ]),
        "results of a completed execution"
    );

    let unknown = ExecutionId::new();
    let record = bounded("execution", q.queue.execution(unknown)).await;
    assert_eq!(record, Ok(None), "an unknown execution has no record");
    match bounded("results", q.queue.results(unknown)).await {
        Ok(results) => assert!(
            results.is_empty(),
            "an unknown execution has no results: {results:?}"
        ),
        Err(QueueError::ExecutionNotFound(missing)) => assert_eq!(missing, unknown),
        Err(other) => panic!("results of an unknown execution: unexpected error {other}"),
    }
}

/// The queue holds the definition an execution was started with, by workflow id and version,
/// so that a worker that never registered the workflow can run it; other versions and other
/// workflows are not found.
pub async fn definition_of_started_execution(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = compile(
        WorkflowDefinition::new("wf-pinned", "Pinned")
            .node(NodeDefinition::new("a", NODE_TYPE).with_config(json!({"timeout": 1000})))
            .node(NodeDefinition::new("b", NODE_TYPE))
            .edge("a", "b"),
    );
    let definition = |workflow_id: &str, version: u32| {
        let queue = Arc::clone(&q.queue);
        let workflow_id = workflow_id.to_owned();
        async move {
            bounded("definition", queue.definition(&workflow_id, version))
                .await
                .unwrap_or_else(|e| panic!("definition({workflow_id:?}, {version}) failed: {e}"))
        }
    };
    assert_eq!(
        definition("wf-pinned", 3).await,
        None,
        "nothing is known before a start"
    );
    let mut start = start_of(&wf, json!({}));
    start.workflow_version = 3;
    q.start_execution(start).await;
    assert_eq!(
        definition("wf-pinned", 3).await.as_ref(),
        Some(wf.definition()),
        "the started execution's definition is held under its version"
    );
    assert_eq!(definition("wf-pinned", 4).await, None, "another version");
    assert_eq!(definition("wf-other", 3).await, None, "another workflow");
}

/// Two queues from the factory share nothing: one does not see (or refuse) the other's
/// executions and jobs.
pub async fn queues_are_isolated(factory: &dyn QueueFactory) {
    let q1 = Harness::new(factory, LONG_LEASE).await;
    let q2 = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow("wf-isolated", &["a"], &[]);
    let start = start_of(&wf, json!("one"));
    let id = q1.start_execution(start.clone()).await;

    q2.assert_idle("another queue does not see this queue's jobs")
        .await;
    let record = bounded("execution", q2.queue.execution(id)).await;
    assert_eq!(
        record,
        Ok(None),
        "another queue does not see this queue's executions"
    );
    let definition = bounded("definition", q2.queue.definition("wf-isolated", 1)).await;
    assert_eq!(
        definition,
        Ok(None),
        "another queue does not see this queue's definitions"
    );

    let id2 = q2
        .start_execution({
            let mut again = start;
            again.initial_data = json!("two");
            again
        })
        .await;
    assert_eq!(id2, id);
    let j1 = q1.claim_node(id, "a").await;
    let j2 = q2.claim_node(id, "a").await;
    assert_eq!(j1.input, json!("one"));
    assert_eq!(j2.input, json!("two"));
    q1.assert_idle("each queue hands out its own job once")
        .await;
    q2.assert_idle("each queue hands out its own job once")
        .await;

    assert_eq!(
        q1.complete(&j1, json!(1)).await,
        Some(ExecutionStatus::Completed)
    );
    assert_eq!(q2.record(id).await.status, ExecutionStatus::Running);
    assert_eq!(
        q2.complete(&j2, json!(2)).await,
        Some(ExecutionStatus::Completed)
    );
    assert_eq!(q1.record(id).await.output("a"), Some(&json!(1)));
    assert_eq!(q2.record(id).await.output("a"), Some(&json!(2)));
}

/// A completion whose `next_nodes` names a node that is not one of the node's children (an
/// unknown id, or a node elsewhere in the graph) fails the node, and the error names the target.
pub async fn unknown_route_fails_the_node(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-route",
        &["a", "b", "far-away"],
        &[("a", "b"), ("b", "far-away")],
    );
    for target in ["no-such-node", "far-away"] {
        let id = q.start(&wf, json!({})).await;
        let a = q.claim_node(id, "a").await;
        assert_eq!(
            q.applied(&a, routed(json!("x"), &[target])).await,
            Some(ExecutionStatus::Failed),
            "routing to {target:?} fails the node and the execution"
        );
        q.assert_idle("a failed route starts no child").await;
        let record = q.record(id).await;
        assert_eq!(record.status, ExecutionStatus::Failed);
        assert_eq!(status_of(&record, "a"), Some(NodeStatus::Failed));
        let error = record.error.unwrap_or_default();
        assert!(
            error.contains(target),
            "the execution error names the route target {target:?}: {error:?}"
        );
    }
}

/// `commit_and_claim` applies the commit like `commit` and may hand out, in the same step, jobs
/// that are ready, at most as many as asked: a node made ready by the commit is handed out
/// exactly once, either in the reply or by a later claim, with its parent's output as input
/// and a token that commits. Asking for none hands out none.
pub async fn commit_and_claim_hands_out_next_jobs_once(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let wf = workflow(
        "wf-next",
        &["a", "b", "c", "d"],
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    );
    let id = q.start(&wf, json!({"n": 0})).await;
    let a = q.claim_node(id, "a").await;

    let (outcome, mut next) = bounded(
        "commit_and_claim",
        q.queue
            .commit_and_claim(&q.worker, &a, completed(json!({"n": 1})), 1),
    )
    .await
    .unwrap_or_else(|e| panic!("commit_and_claim failed: {e}"));
    assert_eq!(outcome, CommitOutcome::Applied { finished: None });
    assert!(next.len() <= 1, "asked for one job, got {:?}", ids(&next));
    next.extend(q.claim_exactly(2 - next.len(), 10).await);
    let mut got: Vec<&str> = next.iter().map(|j| j.node_id.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["b", "c"], "each child of a handed out once");
    for job in &next {
        assert_eq!(job.input, json!({"n": 1}), "{}: input", job.node_id);
    }
    q.assert_idle("both children are out").await;

    // Commit both children asking for nothing: no job comes with the reply, and the join is
    // claimable once.
    for job in &next {
        let (outcome, more) = bounded(
            "commit_and_claim",
            q.queue
                .commit_and_claim(&q.worker, job, completed(json!(job.node_id)), 0),
        )
        .await
        .unwrap_or_else(|e| panic!("commit_and_claim failed: {e}"));
        assert_eq!(outcome, CommitOutcome::Applied { finished: None });
        assert!(more.is_empty(), "asked for none, got {:?}", ids(&more));
    }
    let d = q.claim_node(id, "d").await;
    assert_eq!(d.input, json!({"b": "b", "c": "c"}));

    // The last commit asks for more than there is: it completes the execution and hands out
    // nothing.
    let (outcome, more) = bounded(
        "commit_and_claim",
        q.queue
            .commit_and_claim(&q.worker, &d, completed(json!("done")), 4),
    )
    .await
    .unwrap_or_else(|e| panic!("commit_and_claim failed: {e}"));
    assert_eq!(
        outcome,
        CommitOutcome::Applied {
            finished: Some(ExecutionStatus::Completed)
        }
    );
    assert!(more.is_empty(), "nothing was ready, got {:?}", ids(&more));
    q.assert_stale(&d, completed(json!("again")), "d was committed")
        .await;
}

/// Many commits at once (a worker finishing many nodes together) all apply, each exactly once,
/// and the join they feed becomes ready once with every parent's output.
pub async fn concurrent_commits_each_apply(factory: &dyn QueueFactory) {
    let q = Harness::new(factory, LONG_LEASE).await;
    let middle: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    let mut nodes: Vec<&str> = vec!["start"];
    nodes.extend(middle.iter().map(String::as_str));
    nodes.push("end");
    let mut edges: Vec<(&str, &str)> = Vec::new();
    for m in &middle {
        edges.push(("start", m));
        edges.push((m, "end"));
    }
    let wf = workflow("wf-many", &nodes, &edges);
    let id = q.start(&wf, json!(null)).await;
    let start = q.claim_node(id, "start").await;
    q.complete(&start, json!("s")).await;
    let jobs = q.claim_exactly(middle.len(), 64).await;
    let outcomes = futures::future::join_all(
        jobs.iter()
            .map(|j| q.queue.commit(j, completed(json!(j.node_id.clone())))),
    )
    .await;
    for (job, outcome) in jobs.iter().zip(outcomes) {
        assert_eq!(
            outcome.unwrap_or_else(|e| panic!("{}: commit failed: {e}", job.node_id)),
            CommitOutcome::Applied { finished: None },
            "{}",
            job.node_id
        );
    }
    let end = q.claim_node(id, "end").await;
    let expected: serde_json::Map<String, Value> =
        middle.iter().map(|m| (m.clone(), json!(m))).collect();
    assert_eq!(end.input, Value::Object(expected));
    q.assert_idle("the join is out").await;
    for job in &jobs {
        q.assert_stale(job, completed(json!("again")), "committed already")
            .await;
    }
}
