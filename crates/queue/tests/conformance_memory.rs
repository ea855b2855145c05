//! The `ExecutionQueue` conformance suite of `spane-testkit`, run against [`MemoryQueue`].

use std::sync::Arc;
use std::time::Duration;

use spane_core::NoEvents;
use spane_queue::{ExecutionQueue, MemoryQueue, MemoryQueueConfig};
use spane_testkit::{QueueFactory, async_trait};

/// A fresh in-memory queue per test: isolation comes for free.
struct Memory;

#[async_trait]
impl QueueFactory for Memory {
    async fn queue(&self, lease: Duration) -> Arc<dyn ExecutionQueue> {
        let config = MemoryQueueConfig::default().lease(lease);
        Arc::new(MemoryQueue::with_config(Arc::new(NoEvents), config))
    }
}

spane_testkit::queue_conformance_tests!(Memory);
