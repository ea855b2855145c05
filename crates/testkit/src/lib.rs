//! # spane-testkit
//!
//! The conformance suite of [`ExecutionQueue`]: the behaviour every coordination backend must
//! show, written once and run against each implementation (the in-memory queue, Redis, ...).
//!
//! A backend provides a [`QueueFactory`] that builds a fresh, isolated queue per test, and
//! instantiates the whole suite with [`queue_conformance_tests!`] in its `tests/` directory:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use spane_queue::{ExecutionQueue, MemoryQueue, MemoryQueueConfig};
//! use spane_testkit::{QueueFactory, async_trait};
//!
//! struct Memory;
//!
//! #[async_trait]
//! impl QueueFactory for Memory {
//!     async fn queue(&self, lease: Duration) -> Arc<dyn ExecutionQueue> {
//!         let config = MemoryQueueConfig::default().lease(lease);
//!         Arc::new(MemoryQueue::with_config(Arc::new(spane_core::NoEvents), config))
//!     }
//! }
//!
//! spane_testkit::queue_conformance_tests!(Memory);
//! # fn main() {}
//! ```
//!
//! Each scenario is also a plain `async fn` in [`scenarios`], for a backend that wants to run
//! one on its own. Every wait in the suite has a deadline and fails the test with a message
//! when reached; no scenario uses a sleep as synchronisation.
//!
//! The crate also holds the multi-process tests of the Redis backend (`tests/process_*.rs`):
//! real worker processes (the `spane-test-worker` binary of this crate) share one Redis and
//! are killed, stopped and restarted, and the tests check that no transition is lost or
//! duplicated. [`process`] has the helpers they share: [`process::free_port`] and
//! [`process::RedisServer`], a `redis-server` owned by a test.

pub mod faults;
mod harness;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod scenarios;

use std::sync::Arc;
use std::time::Duration;

pub use async_trait::async_trait;
use spane_queue::ExecutionQueue;

/// Builds a fresh, isolated queue for one test (on Redis: its own key prefix), so that tests
/// running in parallel never see each other's jobs.
#[async_trait]
pub trait QueueFactory: Send + Sync {
    /// A new queue whose claims are valid for `lease` without renewal.
    async fn queue(&self, lease: Duration) -> Arc<dyn ExecutionQueue>;
}

/// Expands into one `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per scenario
/// of [`scenarios`], each building its queues with the given [`QueueFactory`] expression.
///
/// The expression is evaluated inside each (async) test, so it may `.await`, for example
/// `queue_conformance_tests!(RedisFactory::connect().await)`. The calling crate needs `tokio`
/// (with the `macros` feature) among its dependencies; the test functions are named after the
/// scenarios, so invoke the macro inside its own module when the names could clash.
#[macro_export]
macro_rules! queue_conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::queue_conformance_tests!(@tests ($factory)
            start_makes_roots_claimable,
            empty_claim_waits_and_returns_nothing,
            chain_passes_data_and_completes,
            join_becomes_ready_exactly_once,
            branching_skips_unrouted_nodes,
            stale_token_is_refused,
            second_commit_is_stale,
            expired_lease_is_reclaimed_with_new_token,
            stalled_job_counts_attempts_then_dead_letters,
            retry_after_the_execution_failed_is_held,
            failure_while_paused_fails_the_execution,
            refused_dead_letter_retry_keeps_the_item,
            renew_keeps_lease_alive,
            retry_reschedules_the_node,
            delay_reclaims_with_delay_elapsed,
            failure_stops_handing_out_ready_nodes,
            in_flight_commit_after_failure_is_recorded,
            continue_on_fail_feeds_children,
            release_makes_job_claimable_at_once,
            results_and_unknown_executions,
            definition_of_started_execution,
            queues_are_isolated,
            unknown_route_fails_the_node,
            commit_and_claim_hands_out_next_jobs_once,
            concurrent_commits_each_apply,
        );
    };
    (@tests ($factory:expr) $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let factory = $factory;
                $crate::scenarios::$name(&factory).await;
            }
        )*
    };
}

#[async_trait]
impl<F: QueueFactory + ?Sized> QueueFactory for Arc<F> {
    async fn queue(&self, lease: Duration) -> Arc<dyn ExecutionQueue> {
        (**self).queue(lease).await
    }
}

/// The conformance suite of the store traits (`spane-store`): [`store_scenarios::StoreFactory`],
/// the scenarios, and the [`store_conformance_tests!`] macro that instantiates them.
pub mod store_scenarios;
