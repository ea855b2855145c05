//! The `ExecutionQueue` conformance suite of `spane-testkit`, run against [`RedisQueue`] on the
//! Redis of `REDIS_URL` (or 127.0.0.1:6379); every queue gets its own key prefix.

use std::sync::Arc;
use std::time::Duration;

use spane_queue::{ExecutionQueue, RedisConfig, RedisQueue};
use spane_testkit::{QueueFactory, async_trait};

struct Redis;

#[async_trait]
impl QueueFactory for Redis {
    async fn queue(&self, lease: Duration) -> Arc<dyn ExecutionQueue> {
        let url = std::env::var("SPANE_REDIS_URL")
            .or_else(|_| std::env::var("REDIS_URL"))
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!(
            "spane-conf-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let config = RedisConfig::new(&url)
            .prefix(prefix)
            .lease(lease)
            .retention(Duration::from_secs(120))
            .reclaim_every(Duration::from_millis(20));
        let queue = RedisQueue::connect(config)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} is needed for this test: {e}"));
        Arc::new(queue)
    }
}

spane_testkit::queue_conformance_tests!(Redis);
