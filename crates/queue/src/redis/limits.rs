//! Circuit breakers (`P:cb:{<key>}` hashes) and rate limits (`P:rl:{<key>}`, the earliest
//! start of the next run) on Redis, shared by every worker process (`limits.lua`).

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use spane_core::{BreakerDecision, BreakerState, BreakerStatus, CircuitBreakerConfig};

use super::{RedisQueue, unavailable};
use crate::error::QueueError;
use crate::limits::{BreakerInfo, SharedLimits};

impl RedisQueue {
    fn breaker_key(&self, key: &str) -> String {
        format!("{}:cb:{{{key}}}", self.inner.config.prefix)
    }

    async fn limits_call(&self, key: String, args: Vec<String>) -> Result<Value, QueueError> {
        self.trip();
        self.inner
            .scripts
            .limits
            .evalsha_with_reload(&self.inner.client, vec![key], args)
            .await
            .map_err(unavailable)
    }
}

fn thresholds(config: &CircuitBreakerConfig) -> [String; 3] {
    [
        config.failure_threshold.to_string(),
        config.success_threshold.to_string(),
        config.open_timeout.as_millis().to_string(),
    ]
}

#[async_trait]
impl SharedLimits for RedisQueue {
    async fn breaker_acquire(
        &self,
        key: &str,
        config: &CircuitBreakerConfig,
        probe_lease: Duration,
    ) -> Result<BreakerDecision, QueueError> {
        let mut args = vec!["acquire".to_owned()];
        args.extend(thresholds(config));
        args.push(probe_lease.as_millis().max(1).to_string());
        let reply = self
            .limits_call(self.breaker_key(key), args)
            .await?
            .into_array();
        let wait = reply.get(1).and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
        Ok(match reply.first().and_then(Value::as_string).as_deref() {
            Some("allow") => BreakerDecision::Allow,
            Some("probe") => BreakerDecision::Probe,
            _ => BreakerDecision::Reject {
                retry_in: Duration::from_millis(wait),
            },
        })
    }

    async fn breaker_record(
        &self,
        key: &str,
        config: &CircuitBreakerConfig,
        success: bool,
    ) -> Result<(), QueueError> {
        let mut args = vec!["record".to_owned()];
        args.extend(thresholds(config));
        args.push(if success { "1" } else { "0" }.to_owned());
        self.limits_call(self.breaker_key(key), args).await?;
        Ok(())
    }

    async fn breakers(&self) -> Result<Vec<BreakerInfo>, QueueError> {
        let prefix = format!("{}:cb:{{", self.inner.config.prefix);
        let mut out = Vec::new();
        for redis_key in self.scan_keys(&format!("{prefix}*")).await? {
            self.trip();
            let f: std::collections::HashMap<String, String> = self
                .inner
                .client
                .hgetall(&redis_key)
                .await
                .map_err(unavailable)?;
            let num = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            let key = redis_key
                .strip_prefix(&prefix)
                .and_then(|k| k.strip_suffix('}'))
                .unwrap_or(&redis_key)
                .to_owned();
            let status = match f.get("status").map(String::as_str) {
                Some("OPEN") => BreakerStatus::Open,
                Some("HALF_OPEN") => BreakerStatus::HalfOpen,
                _ => BreakerStatus::Closed,
            };
            out.push(BreakerInfo {
                key,
                state: BreakerState {
                    status,
                    failures: num("failures") as u32,
                    successes: num("successes") as u32,
                    opened_at: num("openedAt"),
                    probe_until: num("probeUntil"),
                },
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn reset_breaker(&self, key: &str) -> Result<bool, QueueError> {
        self.trip();
        let n: i64 = self
            .inner
            .client
            .del(self.breaker_key(key))
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn rate_acquire(
        &self,
        key: &str,
        max: u32,
        per: Duration,
    ) -> Result<Option<Duration>, QueueError> {
        let per_ms = per.as_millis().max(1) as i64;
        let redis_key = format!("{}:rl:{{{key}}}", self.inner.config.prefix);
        let wait = self
            .limits_call(
                redis_key,
                vec!["rate".to_owned(), max.to_string(), per_ms.to_string()],
            )
            .await?
            .as_i64()
            .unwrap_or(0);
        Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
    }
}
