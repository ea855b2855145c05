//! `interrupt_claims` ends a claim that is waiting for work, however long its wait, on both
//! backends; a claim that starts afterwards waits as usual.

use std::sync::Arc;
use std::time::Duration;

use spane_queue::backend::WorkerId;
use spane_queue::{ExecutionQueue, MemoryQueue, RedisConfig, RedisQueue};

/// Far longer than the test's deadline: a claim that waited it out would fail the test.
const LONG_WAIT: Duration = Duration::from_secs(300);
const DEADLINE: Duration = Duration::from_secs(20);

async fn redis() -> Arc<dyn ExecutionQueue> {
    let url = std::env::var("SPANE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!(
        "spane-interrupt-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let queue = RedisQueue::connect(RedisConfig::new(&url).prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is needed for this test: {e}"));
    Arc::new(queue)
}

async fn an_interrupt_ends_a_waiting_claim(queue: Arc<dyn ExecutionQueue>) {
    let claim = tokio::spawn({
        let queue = queue.clone();
        async move { queue.claim(&WorkerId::new(), 4, LONG_WAIT).await }
    });
    // The claim may not be waiting yet when the first interrupt comes (an interrupt only
    // ends claims already in progress): interrupt until it returns, within the deadline.
    let jobs = tokio::time::timeout(DEADLINE, async {
        loop {
            queue.interrupt_claims();
            if claim.is_finished() {
                return claim.await.expect("claim task");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the interrupted claim returns long before its wait")
    .expect("the claim succeeds");
    assert!(jobs.is_empty(), "nothing was ready");

    // The queue still works: a later claim with a short wait ends at its wait.
    let later = tokio::time::timeout(
        DEADLINE,
        queue.claim(&WorkerId::new(), 1, Duration::from_millis(50)),
    )
    .await
    .expect("a short claim ends at its wait")
    .unwrap();
    assert!(later.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_an_interrupt_ends_a_waiting_claim() {
    an_interrupt_ends_a_waiting_claim(Arc::new(MemoryQueue::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_an_interrupt_ends_a_waiting_claim() {
    an_interrupt_ends_a_waiting_claim(redis().await).await;
}
