//! Stalled-job recovery on Redis: a job whose lease keeps expiring goes to the dead-letter
//! queue with the reason "stalled" instead of being retried forever.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use spane_core::{AnyNodeType, ExecutionId, ExecutionStatus, NodeDefinition, WorkflowDefinition};
use spane_queue::backend::{CommitOutcome, NodeCommit, StartExecution, WorkerId};
use spane_queue::{DeadLetterReason, ExecutionQueue, RedisConfig, RedisQueue};

async fn queue(max_stalled: u32) -> RedisQueue {
    let url = std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!(
        "spane-stall-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    RedisQueue::connect(
        RedisConfig::new(&url)
            .prefix(prefix)
            .lease(Duration::from_millis(100))
            .max_stalled(max_stalled)
            .reclaim_every(Duration::from_millis(20))
            .retention(Duration::from_secs(60)),
    )
    .await
    .unwrap_or_else(|e| panic!("Redis at {url} is needed for this test: {e}"))
}

async fn start(q: &RedisQueue) -> ExecutionId {
    let wf = WorkflowDefinition::new("stall", "stall")
        .node(NodeDefinition::new("a", "x"))
        .node(NodeDefinition::new("b", "x"))
        .edge("a", "b");
    let id = ExecutionId::new();
    q.start_execution(StartExecution::new(
        id,
        Arc::new(wf.compile(&AnyNodeType).unwrap()),
        1,
        json!({}),
    ))
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_stalls_too_often_goes_to_the_dlq_as_stalled() {
    let q = queue(0).await;
    let id = start(&q).await;
    let worker = WorkerId::new();
    let claimed = q.claim(&worker, 1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let dead = q.dead_letters().unwrap();

    // Never renewed: once the lease expires, the next claim call's recovery fails the node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead.count_dead_letters().await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter before the deadline"
        );
        assert!(
            q.claim(&worker, 1, Duration::from_millis(50))
                .await
                .unwrap()
                .is_empty()
        );
    }
    let item = dead.get_dead_letter(id, "a").await.unwrap().unwrap();
    assert_eq!(item.reason, DeadLetterReason::Stalled);
    assert!(item.error.contains("stalled"), "{}", item.error);
    let rec = q.execution(id).await.unwrap().unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert!(rec.error.unwrap().contains("stalled"));

    // The stalled worker's late commit is refused.
    let late = NodeCommit::Completed {
        data: json!("late"),
        next_nodes: None,
    };
    assert_eq!(
        q.commit(&claimed[0], late).await.unwrap(),
        CommitOutcome::Stale
    );

    // A retry runs it again and the execution completes.
    assert!(dead.retry_dead_letter(id, "a").await.unwrap());
    for node in ["a", "b"] {
        let job = q
            .claim(&worker, 1, Duration::from_secs(5))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(job.node_id, node);
        let done = NodeCommit::Completed {
            data: json!(node),
            next_nodes: None,
        };
        q.commit(&job, done).await.unwrap();
    }
    assert_eq!(
        q.execution(id).await.unwrap().unwrap().status,
        ExecutionStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_stall_makes_the_job_claimable_again_with_a_new_token() {
    let q = queue(1).await;
    let id = start(&q).await;
    let worker = WorkerId::new();
    let first = q
        .claim(&worker, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reclaimed before the deadline"
        );
        if let Some(j) = q
            .claim(&worker, 1, Duration::from_millis(50))
            .await
            .unwrap()
            .pop()
        {
            break j;
        }
    };
    assert_eq!((second.execution_id, second.node_id.as_str()), (id, "a"));
    assert_ne!(second.token, first.token);
    assert_eq!(second.attempt, 2, "the stalled attempt counts");
    assert_eq!(
        q.dead_letters()
            .unwrap()
            .count_dead_letters()
            .await
            .unwrap(),
        0
    );
}
