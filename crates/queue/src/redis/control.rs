//! Pause, resume and cancel on Redis (`control.lua`), and the cancellation feed: the script
//! publishes each cancelled id on `P:cancel`, which one subscriber per process relays.

use async_trait::async_trait;
use fred::prelude::*;
use spane_core::{ExecutionId, ExecutionStatus};
use tokio::sync::broadcast;

use super::{RedisQueue, millis, record, unavailable};
use crate::control::{CancelStream, ExecutionControl, cancel_stream};
use crate::error::QueueError;

impl RedisQueue {
    pub(super) fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.inner.config.prefix)
    }

    async fn control_call(
        &self,
        id: ExecutionId,
        action: &'static str,
    ) -> Result<ExecutionStatus, QueueError> {
        let k = &self.inner.keys;
        self.trip();
        let reply: Value = self
            .inner
            .scripts
            .control
            .evalsha_with_reload(
                &self.inner.client,
                vec![k.ready.clone(), k.events.clone()],
                vec![
                    k.shard.clone(),
                    id.to_string(),
                    action.to_owned(),
                    self.inner.config.events_trim(),
                    millis(self.inner.config.retention),
                    self.cancel_channel(),
                ],
            )
            .await
            .map_err(unavailable)?;
        let parts: Vec<String> = reply
            .into_array()
            .iter()
            .filter_map(Value::as_string)
            .collect();
        let status = || {
            parts
                .get(1)
                .and_then(|s| record::execution_status(s))
                .ok_or_else(|| QueueError::Backend {
                    reason: format!("unexpected data in Redis: status of execution {id}"),
                    source: None,
                })
        };
        match parts.first().map(String::as_str) {
            Some("ok") => status(),
            Some("denied") => Err(QueueError::NotAllowed {
                execution: id,
                action,
                status: status()?,
            }),
            _ => Err(QueueError::ExecutionNotFound(id)),
        }
    }

    async fn cancel_feed(&self) -> Result<broadcast::Sender<ExecutionId>, QueueError> {
        let mut feed = self.inner.cancel_feed.lock().await;
        if let Some(tx) = feed.as_ref() {
            return Ok(tx.clone());
        }
        let config = Config::from_url(self.inner.config.url()).map_err(unavailable)?;
        let subscriber = Builder::from_config(config)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
            .build_subscriber_client()
            .map_err(unavailable)?;
        subscriber.init().await.map_err(unavailable)?;
        // Resubscribes after a reconnect.
        drop(subscriber.manage_subscriptions());
        subscriber
            .subscribe(self.cancel_channel())
            .await
            .map_err(unavailable)?;
        let (tx, _) = broadcast::channel(1024);
        let relay = tx.clone();
        let mut messages = subscriber.message_rx();
        tokio::spawn(async move {
            // Keeps the subscriber alive as long as the relay runs.
            let _subscriber = subscriber;
            loop {
                match messages.recv().await {
                    Ok(m) => {
                        if let Some(id) = m.value.as_string().and_then(|s| s.parse().ok()) {
                            let _ = relay.send(id);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "cancellation notices dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        *feed = Some(tx.clone());
        Ok(tx)
    }
}

#[async_trait]
impl ExecutionControl for RedisQueue {
    async fn pause(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError> {
        self.control_call(id, "pause").await
    }

    async fn resume(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError> {
        self.control_call(id, "resume").await
    }

    async fn cancel(&self, id: ExecutionId) -> Result<ExecutionStatus, QueueError> {
        self.control_call(id, "cancel").await
    }

    async fn cancellations(&self) -> Result<CancelStream, QueueError> {
        let rx = self.cancel_feed().await?.subscribe();
        Ok(cancel_stream(rx))
    }
}
