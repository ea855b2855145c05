//! The store conformance suite on [`MemoryStore`].

use std::sync::Arc;

use spane_store::{HistoryStore, MemoryStore};
use spane_testkit::async_trait;
use spane_testkit::store_scenarios::StoreFactory;

struct Memory;

#[async_trait]
impl StoreFactory for Memory {
    async fn store(&self) -> Arc<dyn HistoryStore> {
        Arc::new(MemoryStore::new())
    }
}

spane_testkit::store_conformance_tests!(Memory);
