//! Waiting for executions to end: one event subscription per engine wakes every waiter of the
//! execution an event is about, so many concurrent waits cost one pass over the events instead
//! of one per waiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use spane_core::{EngineEvent, ExecutionId};
use spane_events::EventBus;
use tokio::sync::Notify;

/// Wakes the waiters of an execution when a workflow-level event about it arrives.
#[derive(Default)]
pub(crate) struct Waiters {
    by_execution: Mutex<HashMap<ExecutionId, (Arc<Notify>, usize)>>,
    /// Woken on a lag or a closed bus: every waiter re-reads its execution.
    everyone: Notify,
    started: tokio::sync::OnceCell<()>,
}

impl Waiters {
    /// Starts the subscription once.
    pub(crate) async fn ensure_started(
        self: &Arc<Self>,
        bus: &Arc<dyn EventBus>,
    ) -> Result<(), spane_events::EventError> {
        self.started
            .get_or_try_init(|| async {
                // Workflow events only: node events are not needed to wake waiters, and a
                // bus may then skip building them when nobody else listens.
                let mut events = bus.subscribe_workflow_events().await?;
                let me = Arc::downgrade(self);
                tokio::spawn(async move {
                    while let Some(item) = events.next().await {
                        let Some(me) = me.upgrade() else { return };
                        match item {
                            Ok(EngineEvent::Workflow(w)) => me.wake(w.execution_id),
                            Ok(_) => {}
                            Err(_) => me.everyone.notify_waiters(),
                        }
                    }
                    if let Some(me) = me.upgrade() {
                        me.everyone.notify_waiters();
                    }
                });
                Ok(())
            })
            .await
            .map(|_| ())
    }

    fn wake(&self, id: ExecutionId) {
        let map = self
            .by_execution
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((notify, _)) = map.get(&id) {
            notify.notify_waiters();
        }
    }

    /// Registers a waiter of `id`; the guard unregisters it.
    pub(crate) fn register(self: &Arc<Self>, id: ExecutionId) -> WaiterGuard {
        let mut map = self
            .by_execution
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map
            .entry(id)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        WaiterGuard {
            waiters: self.clone(),
            id,
            notify: entry.0.clone(),
        }
    }
}

/// One registered waiter.
pub(crate) struct WaiterGuard {
    waiters: Arc<Waiters>,
    id: ExecutionId,
    notify: Arc<Notify>,
}

impl WaiterGuard {
    /// Resolves when an event about the execution (or a lag) arrives after `enable` was called
    /// on the returned futures; see [`WorkflowEngine::wait_for_execution`](crate::WorkflowEngine).
    pub(crate) fn notified(
        &self,
    ) -> (
        tokio::sync::futures::Notified<'_>,
        tokio::sync::futures::Notified<'_>,
    ) {
        (self.notify.notified(), self.waiters.everyone.notified())
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let mut map = self
            .waiters
            .by_execution
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&self.id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.id);
            }
        }
    }
}
