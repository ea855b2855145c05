//! Settings of the Redis backend.

use std::time::Duration;

use spane_redis::RedisEndpoint;

/// Settings of a [`RedisQueue`](super::RedisQueue), with a builder-style API.
///
/// ```
/// use std::time::Duration;
/// use spane_queue::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .prefix("myapp")
///     .lease(Duration::from_secs(10));
/// assert_eq!(config.prefix_str(), "myapp");
///
/// // TLS (the `tls-rustls` feature) with a private CA:
/// # let ca_pem = Vec::new();
/// let config = RedisConfig::new("rediss://app:secret@redis.internal:6380").tls_root_pem(ca_pem);
/// assert!(config.redis_endpoint().uses_tls());
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub(crate) endpoint: RedisEndpoint,
    pub(crate) prefix: String,
    pub(crate) lease: Duration,
    pub(crate) retention: Duration,
    pub(crate) max_stalled: u32,
    pub(crate) events_cap: u64,
    pub(crate) events_max_age: Duration,
    pub(crate) allow_eviction: bool,
    pub(crate) reclaim_every: Duration,
}

impl RedisConfig {
    /// Settings for the Redis at `endpoint`: a URL (`redis://[[user]:pass@]host:port[/db]`,
    /// or `rediss://…` for TLS with the `tls-rustls` feature) or a [`RedisEndpoint`] with TLS
    /// settings, with defaults: prefix `spane`, lease 30 s, retention of finished executions
    /// 24 h, at most 1 stall before the dead-letter queue, event stream capped at about 100,000
    /// entries and about 24 h of age.
    pub fn new(endpoint: impl Into<RedisEndpoint>) -> Self {
        Self {
            endpoint: endpoint.into(),
            prefix: "spane".to_owned(),
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(24 * 3600),
            max_stalled: 1,
            events_cap: 100_000,
            events_max_age: Duration::from_secs(24 * 3600),
            allow_eviction: false,
            reclaim_every: Duration::from_millis(500),
        }
    }

    /// Key prefix; every key the backend writes starts with it (default `spane`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The Redis URL (with its password: log [`RedisEndpoint::redacted_url`] instead).
    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// Replaces the endpoint (the URL and its TLS settings); the other settings stay.
    pub fn endpoint(mut self, endpoint: RedisEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Also trusts the CA certificates in `pem` for a `rediss://` URL (see
    /// [`RedisEndpoint::tls_root_pem`]).
    pub fn tls_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.endpoint = self.endpoint.tls_root_pem(pem);
        self
    }

    /// The endpoint: URL and TLS settings. The event bus and the trigger store of the same
    /// engine connect to it too.
    pub fn redis_endpoint(&self) -> &RedisEndpoint {
        &self.endpoint
    }

    /// The prefix in use.
    pub fn prefix_str(&self) -> &str {
        &self.prefix
    }

    /// How long a claim is valid without renewal (default 30 s). Workers renew at a third of
    /// it while the executor runs; a job whose lease expires is claimed by another worker.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(10));
        self
    }

    /// How long a completed execution's state stays in Redis (default 24 h). Failed executions
    /// stay while their dead-letter items exist.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention.max(Duration::from_millis(1));
        self
    }

    /// How many times a job may lose its lease before it fails as "stalled" and goes to the
    /// dead-letter queue (default 1).
    pub fn max_stalled(mut self, times: u32) -> Self {
        self.max_stalled = times;
        self
    }

    /// Approximate cap of the event stream (default 100,000 entries). Applied together with
    /// [`events_max_age`](Self::events_max_age): the stream keeps neither more entries nor
    /// older ones.
    pub fn events_cap(mut self, entries: u64) -> Self {
        self.events_cap = entries.max(1);
        self
    }

    /// Approximate age bound of the event stream (default 24 h): each append also drops the
    /// entries older than this (`XTRIM MINID ~`, by the stream ids, which are Redis
    /// millisecond timestamps), so a quiet or short-retention deployment does not keep up to
    /// [`events_cap`](Self::events_cap) entries for ever. Trimming is approximate: Redis drops
    /// whole internal stream nodes (`stream-node-max-entries`, 100 by default), so up to one
    /// node of older entries may remain. An event bus subscriber and the SQL history writer
    /// must not fall further behind than this; with a short [`retention`](Self::retention),
    /// lower it too, since the executions the old events name are gone anyway.
    pub fn events_max_age(mut self, max_age: Duration) -> Self {
        self.events_max_age = max_age.max(Duration::from_millis(1));
        self
    }

    /// Both bounds of the event stream as the scripts take them in one argument:
    /// `"<cap> <max age ms>"`.
    pub(crate) fn events_trim(&self) -> String {
        format!(
            "{} {}",
            self.events_cap,
            self.events_max_age.as_millis().max(1)
        )
    }

    /// How often a worker looks for expired leases (default 500 ms).
    pub fn reclaim_every(mut self, every: Duration) -> Self {
        self.reclaim_every = every.max(Duration::from_millis(10));
        self
    }

    /// Start even when Redis may evict keys (`maxmemory-policy` other than `noeviction`).
    /// Evicted keys are lost jobs: only for throwaway setups.
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }
}
