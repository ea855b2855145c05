//! The Redis backend: any number of worker processes share one Redis; every transition is one
//! server-side script over keys that share a hash tag.
//!
//! Layout (prefix `P`, shard tag `{0}`): `P:{0}:x:<execution>` one hash per execution (state,
//! results, graph), `P:{0}:ready` list of ready jobs, `P:{0}:delayed` sorted set by due time,
//! `P:{0}:leases` sorted set by lease expiry, `P:{0}:dlq` sorted set of dead-letter items,
//! `P:{0}:events` capped stream of events, `P:{0}:ik:<key>` the execution an idempotency key
//! maps to; `P:wf:{<workflow>}` and
//! `P:def:{<workflow>}:<version>` versioned definitions.
//! Every per-execution key and its shard's queues share one hash tag, so the layout can be
//! spread over shards (and Redis Cluster slots) later without changing the scripts.

mod batch;
mod built_event;
mod children;
mod config;
mod control;
mod definitions;
mod dlq;
mod graphs;
mod history;
mod idempotency;
mod inspect;
mod limits;
mod record;
mod scripts;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::lists::LMoveDirection;
use serde_json::Value as Json;
use spane_core::{CommitPlan, CompiledWorkflow, ExecutionId, ExecutionRecord, WorkflowDefinition};
use tokio::time::Instant;

use crate::error::QueueError;
use crate::job::{ClaimedJob, CommitOutcome, NodeCommit, StartExecution, WorkerId};
use crate::queue::{ExecutionQueue, QueueCounters, QueueStats, ServerStats};

pub use config::RedisConfig;
pub use definitions::StoredDefinition;
use scripts::Scripts;

/// Queue backend on Redis 7 (fred client, Lua scripts).
///
/// ```no_run
/// # async fn demo() -> Result<(), spane_queue::QueueError> {
/// use spane_queue::{RedisConfig, RedisQueue};
///
/// let queue = RedisQueue::connect(RedisConfig::new("redis://127.0.0.1:6379").prefix("myapp")).await?;
/// # let _ = queue; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    blocker: tokio::sync::Mutex<Client>,
    scripts: Scripts,
    config: RedisConfig,
    keys: Keys,
    /// Compiled graphs by workflow, then version: each one published to Redis once. Keyed
    /// in two levels so that a lookup, once per commit and per claimed job, allocates nothing.
    graphs: Mutex<HashMap<String, HashMap<u32, Arc<CompiledWorkflow>>>>,
    last_reclaim: Mutex<Option<Instant>>,
    round_trips: Arc<AtomicU64>,
    commits: batch::CommitBatcher,
    cancel_feed: tokio::sync::Mutex<Option<tokio::sync::broadcast::Sender<ExecutionId>>>,
    history_group: std::sync::OnceLock<()>,
    /// Bumped by [`ExecutionQueue::interrupt_claims`]: a claim that sees it change returns.
    interrupts: AtomicU64,
    /// Wakes the claims waiting when `interrupts` is bumped.
    interrupted: tokio::sync::Notify,
}

struct Keys {
    shard: String,
    ready: String,
    delayed: String,
    leases: String,
    events: String,
    dlq: String,
    deadlines: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let shard = format!("{prefix}:{{0}}:");
        Self {
            ready: format!("{shard}ready"),
            delayed: format!("{shard}delayed"),
            leases: format!("{shard}leases"),
            events: format!("{shard}events"),
            dlq: format!("{shard}dlq"),
            deadlines: format!("{shard}deadlines"),
            shard,
        }
    }

    fn execution(&self, id: ExecutionId) -> String {
        format!("{}x:{id}", self.shard)
    }
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(e: fred::error::Error) -> QueueError {
    use fred::error::ErrorKind;
    match e.kind() {
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled | ErrorKind::Routing => {
            QueueError::Unavailable {
                reason: e.to_string(),
                source: Some(spane_core::ErrorSource::new(e.clone())),
            }
        }
        _ => QueueError::Backend {
            reason: e.to_string(),
            source: Some(spane_core::ErrorSource::new(e.clone())),
        },
    }
}

async fn connect_client(config: &RedisConfig) -> Result<Client, QueueError> {
    spane_redis::connect(&config.endpoint)
        .await
        .map_err(QueueError::Connect)
}

impl RedisQueue {
    /// Connects, checks that Redis will not evict keys, loads the scripts, and creates the
    /// event stream with its `history` consumer group (reading from the first entry, so the
    /// SQL history writers, whenever they start, miss no event; an existing group is kept).
    ///
    /// Fails with [`QueueError::Misconfigured`] when `maxmemory-policy` is not `noeviction`
    /// (evicted keys are lost jobs) unless [`RedisConfig::allow_eviction`] is set.
    pub async fn connect(config: RedisConfig) -> Result<Self, QueueError> {
        let client = connect_client(&config).await?;
        let blocker = connect_client(&config).await?;
        let policy: Vec<String> = client
            .config_get("maxmemory-policy")
            .await
            .map_err(unavailable)?;
        let policy = policy.get(1).cloned().unwrap_or_default();
        if policy != "noeviction" {
            if config.allow_eviction {
                tracing::warn!(%policy, "Redis may evict keys (maxmemory-policy is not noeviction): evicted keys are lost jobs");
            } else {
                return Err(QueueError::Misconfigured {
                    reason: format!(
                        "Redis maxmemory-policy is {policy:?}: evicted keys would be lost jobs; set it to noeviction (CONFIG SET maxmemory-policy noeviction) or opt out with RedisConfig::allow_eviction(true)"
                    ),
                });
            }
        }
        let scripts = Scripts::new();
        for s in scripts.all() {
            s.load(&client).await.map_err(unavailable)?;
        }
        let keys = Keys::new(&config.prefix);
        // Before anything is appended: the history writers, whenever they start, read every
        // event from the first one.
        history::create_history_group(&client, &keys.events).await?;
        let round_trips = Arc::new(AtomicU64::new(0));
        let commits = batch::CommitBatcher::start(batch::BatchTarget {
            client: client.clone(),
            script: scripts.commit.clone(),
            keys: vec![
                keys.ready.clone(),
                keys.delayed.clone(),
                keys.leases.clone(),
                keys.events.clone(),
            ],
            head: vec![
                keys.shard.clone(),
                millis(config.retention),
                config.events_trim(),
                millis(config.lease),
            ],
            round_trips: round_trips.clone(),
            release: scripts.release.clone(),
            release_keys: vec![keys.ready.clone(), keys.leases.clone()],
        });
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                blocker: tokio::sync::Mutex::new(blocker),
                scripts,
                config,
                keys,
                graphs: Mutex::new(HashMap::new()),
                last_reclaim: Mutex::new(None),
                round_trips,
                commits,
                cancel_feed: tokio::sync::Mutex::new(None),
                history_group: std::sync::OnceLock::new(),
                interrupts: AtomicU64::new(0),
                interrupted: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Counts one request to Redis.
    fn trip(&self) {
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// The settings in use.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The stream keys the events are appended to, for an event bus to read.
    pub fn event_streams(&self) -> Vec<String> {
        vec![self.inner.keys.events.clone()]
    }

    fn queue_keys(&self) -> Vec<String> {
        let k = &self.inner.keys;
        vec![
            k.ready.clone(),
            k.delayed.clone(),
            k.leases.clone(),
            k.events.clone(),
        ]
    }

    async fn publish_definition(&self, start: &StartExecution) -> Result<(), QueueError> {
        if self
            .known_graph(start.workflow.id(), start.workflow_version)
            .is_some()
        {
            return Ok(());
        }
        let json = serde_json::to_string(start.workflow.definition()).map_err(|e| {
            QueueError::Backend {
                reason: format!("serializing the definition: {e}"),
                source: None,
            }
        })?;
        let redis_key = self.definition_key(start.workflow.id(), start.workflow_version);
        self.trip();
        let _: Option<String> = self
            .inner
            .client
            .set(redis_key, json, None, Some(SetOptions::NX), false)
            .await
            .map_err(unavailable)?;
        self.publish_graph(&start.workflow, start.workflow_version)
            .await?;
        self.remember_graph(start.workflow_version, start.workflow.clone());
        Ok(())
    }

    /// Runs stalled-job recovery if this process has not done so recently.
    async fn maybe_reclaim(&self) -> Result<(), QueueError> {
        {
            let mut last = self
                .inner
                .last_reclaim
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            if last.is_some_and(|l| now.duration_since(l) < self.inner.config.reclaim_every) {
                return Ok(());
            }
            *last = Some(now);
        }
        let k = &self.inner.keys;
        let c = &self.inner.config;
        self.trip();
        let n: i64 = self
            .inner
            .scripts
            .reclaim
            .evalsha_with_reload(
                &self.inner.client,
                vec![
                    k.ready.clone(),
                    k.leases.clone(),
                    k.events.clone(),
                    k.deadlines.clone(),
                ],
                vec![
                    k.shard.clone(),
                    c.max_stalled.to_string(),
                    millis(c.retention),
                    c.events_trim(),
                    self.cancel_channel(),
                ],
            )
            .await
            .map_err(unavailable)?;
        if n > 0 {
            tracing::warn!(
                count = n,
                "reclaimed jobs whose lease expired or ended executions past their deadline"
            );
        }
        Ok(())
    }

    /// One claim script call: the jobs it handed out and, when it handed out none, how long
    /// until the earliest delayed job is due (by Redis's clock), if any is waiting.
    async fn claim_once(
        &self,
        max: usize,
    ) -> Result<(Vec<ClaimedJob>, Option<Duration>), QueueError> {
        let k = &self.inner.keys;
        self.trip();
        let reply: Value = self
            .inner
            .scripts
            .claim
            .evalsha_with_reload(
                &self.inner.client,
                self.queue_keys(),
                vec![
                    k.shard.clone(),
                    max.max(1).to_string(),
                    millis(self.inner.config.lease),
                    self.inner.config.events_trim(),
                    // Identifies this call, so that a replay returns the same jobs.
                    ulid::Ulid::new().to_string(),
                ],
            )
            .await
            .map_err(unavailable)?;
        let mut parts = reply.into_array().into_iter();
        let jobs = parts.next().map(Value::into_array).unwrap_or_default();
        let until_due = parts
            .next()
            .and_then(|v| v.as_i64())
            .and_then(|us| u64::try_from(us).ok())
            .map(Duration::from_micros);
        let jobs = self.jobs(jobs).await?;
        Ok((jobs, until_due))
    }

    /// Waits until the ready list has an entry or `wake_at` comes, whichever is first.
    ///
    /// Redis checks the timeouts of blocked clients on its clock tick (`hz`, 10 per second by
    /// default), so a `BLMOVE` given 5 ms returns after up to 100 ms: a delayed job would wait
    /// for that tick. The timeout given to Redis is only a backstop; the wake is timed here, and
    /// at `wake_at` a `CLIENT UNBLOCK` sent on the other connection ends the wait.
    /// Whether [`ExecutionQueue::interrupt_claims`] was called since the count was `seen`.
    fn interrupted_since(&self, seen: u64) -> bool {
        self.inner.interrupts.load(Ordering::SeqCst) != seen
    }

    async fn wait_for_ready(&self, wake_at: Instant, interrupts: u64) -> Result<(), QueueError> {
        // Armed before the check, so that an interrupt between the two is seen.
        let interrupted = self.inner.interrupted.notified();
        tokio::pin!(interrupted);
        interrupted.as_mut().enable();
        if self.interrupted_since(interrupts) {
            return Ok(());
        }
        let blocker = tokio::select! {
            blocker = self.inner.blocker.lock() => blocker,
            () = &mut interrupted => return Ok(()),
        };
        let now = Instant::now();
        if wake_at <= now {
            return Ok(());
        }
        // Redis reads a timeout that rounds to 0 as "forever".
        let backstop = (wake_at - now).max(Duration::from_millis(1));
        // The blocked connection's id, cached by the client at (re)connection.
        let id = blocker.connection_ids().into_values().next();
        // Rotating the ready list onto itself moves nothing.
        self.trip();
        let blmove = blocker.blmove::<Option<String>, _, _>(
            &self.inner.keys.ready,
            &self.inner.keys.ready,
            LMoveDirection::Left,
            LMoveDirection::Left,
            backstop.as_secs_f64(),
        );
        tokio::pin!(blmove);
        let woke = tokio::select! {
            woke = &mut blmove => woke,
            () = tokio::time::sleep_until(wake_at) => match id {
                Some(id) => self.unblock(id, blmove).await,
                None => blmove.await,
            },
            // Ended at once rather than dropped, so that the connection is not left blocked
            // for the next claim.
            () = &mut interrupted => match id {
                Some(id) => self.unblock(id, blmove).await,
                None => return Ok(()),
            },
        };
        match woke {
            Ok(_) => Ok(()),
            // fred reports the blocking timeout (a nil reply) as a timeout error.
            Err(e) if *e.kind() == fred::error::ErrorKind::Timeout => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Ends the `BLMOVE` of connection `id` (as a timeout) and returns its reply.
    ///
    /// `CLIENT UNBLOCK` answers 0 when the connection is not blocked: its `BLMOVE` just returned,
    /// or has not reached Redis yet, or the connection was replaced (a reconnection gives a new
    /// id). A few more tries cover the second case; otherwise Redis's timeout ends the wait.
    async fn unblock<F>(
        &self,
        id: i64,
        mut blmove: std::pin::Pin<&mut F>,
    ) -> Result<Option<String>, fred::error::Error>
    where
        F: std::future::Future<Output = Result<Option<String>, fred::error::Error>>,
    {
        for _ in 0..UNBLOCK_TRIES {
            self.trip();
            let unblocked: Result<i64, _> = self
                .inner
                .client
                .custom(
                    fred::cmd!("CLIENT"),
                    vec![
                        Value::from("UNBLOCK"),
                        Value::from(id),
                        Value::from("TIMEOUT"),
                    ],
                )
                .await;
            match unblocked {
                Ok(1) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "CLIENT UNBLOCK failed; the wait ends at Redis's timeout");
                    break;
                }
            }
            tokio::select! {
                woke = &mut blmove => return woke,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
        blmove.await
    }

    /// A commit through the group-commit batcher, claiming up to `want` next jobs with it.
    async fn commit_claiming(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
        want: usize,
    ) -> Result<(CommitOutcome, Vec<ClaimedJob>), QueueError> {
        // Decided here by the core's rules; the script applies the plan.
        let graph = self.graph(&job.workflow_id, job.workflow_version).await?;
        let plan = CommitPlan::decide(&graph, job.node, job.attempt, commit.attempt());
        let (event_head, event_tail) = match plan.event(job.node, job.attempt) {
            Some(emit) => built_event::split_event(job, &emit)?,
            None => (String::new(), String::new()),
        };
        let csv = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let (kind, payload, next, delay, consume) = match (plan, commit) {
            (CommitPlan::Complete { routes }, NodeCommit::Completed { data, .. }) => (
                "complete",
                data.to_string(),
                routes.map_or_else(|| "*".to_owned(), |r| csv(&r)),
                Duration::ZERO,
                false,
            ),
            (CommitPlan::Continue { error, output }, _) => {
                ("continue", error, output.to_string(), Duration::ZERO, false)
            }
            (
                CommitPlan::Retry {
                    error,
                    delay,
                    consume_attempt,
                },
                _,
            ) => ("retry", error, String::new(), delay, consume_attempt),
            (CommitPlan::Delay { delay }, _) => {
                ("delay", String::new(), String::new(), delay, false)
            }
            (CommitPlan::Fail { error }, _) => {
                ("fail", error, String::new(), Duration::ZERO, false)
            }
            (CommitPlan::AwaitChild, NodeCommit::AwaitChild { child }) => (
                "await",
                child.to_string(),
                String::new(),
                Duration::ZERO,
                false,
            ),
            (plan, _) => {
                return Err(QueueError::Backend {
                    reason: format!("a commit plan this backend cannot apply: {plan:?}"),
                    source: None,
                });
            }
        };
        // Per child: whether this node is its only parent (its ready entry then needs no read
        // of its parent list).
        let single_parent: String = job
            .children
            .iter()
            .map(|&c| {
                if graph.nodes().get(c).is_some_and(|n| n.parents.len() == 1) {
                    '1'
                } else {
                    '0'
                }
            })
            .collect();
        // Same content, same fingerprint: a replay of this call is recognised as such.
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (kind, &payload, &next, delay.as_millis(), consume).hash(&mut h);
            h.finish().to_string()
        };
        let (tag, finished, jobs) = self
            .inner
            .commits
            .commit(
                [
                    job.execution_id.to_string(),
                    job.node.to_string(),
                    job.token.to_string(),
                    kind.to_owned(),
                    payload,
                    next,
                    single_parent,
                    delay.as_millis().to_string(),
                    if consume { "1" } else { "0" }.to_owned(),
                    fingerprint,
                    job.children
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    want.to_string(),
                    event_head,
                    event_tail,
                ],
                want,
            )
            .await?;
        let jobs = self.jobs(jobs).await?;
        if tag != "applied" {
            tracing::debug!(execution_id = %job.execution_id, node_id = %job.node_id, attempt = job.attempt, token = job.token, "commit refused: the token is not the lease's");
            return Ok((CommitOutcome::Stale, jobs));
        }
        let finished = record::execution_status(&finished);
        Ok((CommitOutcome::Applied { finished }, jobs))
    }

    /// An execution's hash, decoded for its record; `None` when it does not exist.
    async fn execution_fields(
        &self,
        id: ExecutionId,
    ) -> Result<Option<record::ExecutionFields>, QueueError> {
        self.trip();
        // As a custom command: the flat reply, not the map `hgetall` builds of it.
        let reply: fred::types::Value = self
            .inner
            .client
            .custom(fred::cmd!("HGETALL"), vec![self.inner.keys.execution(id)])
            .await
            .map_err(unavailable)?;
        record::ExecutionFields::from_reply(reply)
    }
}

/// The arguments of `start.lua` for a re-run: per node its id and join counter as the core
/// computed them from the kept nodes, the nodes ready at start, and the kept nodes' fields.
fn rerun_args(
    args: &mut Vec<String>,
    dag: &CompiledWorkflow,
    rerun: &crate::job::RerunStart,
    json_str: impl Fn(&str) -> String,
) {
    use spane_core::rerun::Seed;
    const ENC: usize = 65536;
    let (state, start) = spane_core::ExecutionState::seeded(dag, &rerun.seeds);
    for (i, n) in dag.nodes().iter().enumerate() {
        let (remaining, live) = state.join_counters(i);
        args.push(json_str(&n.id));
        args.push((remaining + ENC * live).to_string());
    }
    let csv = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    args.push(csv(&start.ready));
    let now = spane_core::now_millis().to_string();
    let mut set = |k: String, v: String| {
        args.push(k);
        args.push(v);
    };
    for (i, seed) in rerun.seeds.iter().enumerate() {
        let Some(seed) = seed else { continue };
        let (s, ns) = match seed {
            Seed::Completed { .. } => ("C", "completed"),
            Seed::Continued => ("K", "failed"),
            _ => ("S", "skipped"),
        };
        set(format!("s:{i}"), s.to_owned());
        set(format!("ns:{i}"), ns.to_owned());
        set(format!("tf:{i}"), now.clone());
        if let Seed::Completed { routes: Some(r) } = seed {
            set(format!("rt:{i}"), csv(r));
        }
        if let Some(Some(output)) = rerun.outputs.get(i) {
            set(format!("o:{i}"), output.to_string());
        }
    }
    for &i in &start.skipped {
        set(format!("s:{i}"), "S".to_owned());
        set(format!("ns:{i}"), "skipped".to_owned());
        set(format!("tf:{i}"), now.clone());
    }
    set("un".to_owned(), state.unresolved().to_string());
    set("rof".to_owned(), rerun.of.to_string());
    if let Some((node, input)) = &rerun.input {
        set(format!("in:{node}"), input.to_string());
    }
}

/// `CLIENT UNBLOCK` tries before a waiting claim falls back on Redis's own blocking timeout.
const UNBLOCK_TRIES: usize = 3;

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

#[async_trait]
impl ExecutionQueue for RedisQueue {
    async fn start_execution(&self, start: StartExecution) -> Result<(), QueueError> {
        self.publish_definition(&start).await?;
        let k = &self.inner.keys;
        let dag = &start.workflow;
        let json_str = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let mut args: Vec<String> = vec![
            k.shard.clone(),
            start.execution_id.to_string(),
            self.inner.config.events_trim(),
            dag.id().to_owned(),
            json_str(dag.id()),
            start.workflow_version.to_string(),
            start
                .parent_execution_id
                .map(|p| p.to_string())
                .unwrap_or_default(),
            start.depth.to_string(),
            start.initial_data.to_string(),
            dag.nodes().len().to_string(),
            start.deadline.map(|d| d.to_string()).unwrap_or_default(),
            // The request nonce: a replay of this call, or a start sent with the same
            // idempotency key, finds it and answers 'ok'.
            match &start.idempotency_key {
                Some(key) => idempotency::nonce(key),
                None => ulid::Ulid::new().to_string(),
            },
            self.graph_key(dag.id(), start.workflow_version),
            start.parent_node_id.clone().unwrap_or_default(),
            children::parent_link(&start),
        ];
        match &start.rerun {
            None => {
                for n in dag.nodes() {
                    args.push(json_str(&n.id));
                    args.push(n.parents.len().to_string());
                }
            }
            Some(rerun) => rerun_args(&mut args, dag, rerun, json_str),
        }
        self.trip();
        let reply: String = self
            .inner
            .scripts
            .start
            .evalsha_with_reload(
                &self.inner.client,
                vec![k.ready.clone(), k.events.clone(), k.deadlines.clone()],
                args,
            )
            .await
            .map_err(unavailable)?;
        if reply == "duplicate" {
            return Err(QueueError::DuplicateExecution(start.execution_id));
        }
        Ok(())
    }

    async fn claim(
        &self,
        _worker: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let deadline = Instant::now() + wait;
        let interrupts = self.inner.interrupts.load(Ordering::SeqCst);
        loop {
            self.maybe_reclaim().await?;
            let (jobs, until_due) = self.claim_once(max).await?;
            if !jobs.is_empty() {
                return Ok(jobs);
            }
            let now = Instant::now();
            if now >= deadline || self.interrupted_since(interrupts) {
                return Ok(Vec::new());
            }
            // Wake for new ready jobs, or when the earliest delayed job is due (its promotion
            // is the next claim call's), or to run the stalled-job recovery, or at the deadline.
            // A commit that delays a job ahead of the earliest one pushes a 'tick' onto the
            // ready list, so that waiting workers come back for the new due time.
            let mut wake_at = deadline.min(now + self.inner.config.reclaim_every);
            if let Some(until_due) = until_due {
                wake_at = wake_at.min(now + until_due);
            }
            self.wait_for_ready(wake_at, interrupts).await?;
        }
    }

    fn interrupt_claims(&self) {
        self.inner.interrupts.fetch_add(1, Ordering::SeqCst);
        self.inner.interrupted.notify_waiters();
    }

    async fn renew(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        let k = &self.inner.keys;
        self.trip();
        let renewed: i64 = self
            .inner
            .scripts
            .renew
            .evalsha_with_reload(
                &self.inner.client,
                vec![k.leases.clone()],
                vec![
                    k.shard.clone(),
                    job.execution_id.to_string(),
                    job.node.to_string(),
                    job.token.to_string(),
                    millis(self.inner.config.lease),
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(renewed == 1)
    }

    async fn commit(
        &self,
        job: &ClaimedJob,
        commit: NodeCommit,
    ) -> Result<CommitOutcome, QueueError> {
        Ok(self.commit_claiming(job, commit, 0).await?.0)
    }

    async fn commit_and_claim(
        &self,
        _worker: &WorkerId,
        job: &ClaimedJob,
        commit: NodeCommit,
        want: usize,
    ) -> Result<(CommitOutcome, Vec<ClaimedJob>), QueueError> {
        self.commit_claiming(job, commit, want).await
    }

    async fn release(&self, job: &ClaimedJob) -> Result<(), QueueError> {
        let k = &self.inner.keys;
        self.trip();
        let _: i64 = self
            .inner
            .scripts
            .release
            .evalsha_with_reload(
                &self.inner.client,
                vec![k.ready.clone(), k.leases.clone()],
                vec![
                    k.shard.clone(),
                    job.execution_id.to_string(),
                    job.node.to_string(),
                    job.token.to_string(),
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, QueueError> {
        match self.execution_fields(id).await? {
            Some(fields) => record::execution_record(id, fields).map(Some),
            None => Ok(None),
        }
    }

    async fn execution_status(
        &self,
        id: ExecutionId,
    ) -> Result<Option<spane_core::ExecutionStatus>, QueueError> {
        self.trip();
        let status: Option<String> = self
            .inner
            .client
            .hget(self.inner.keys.execution(id), "st")
            .await
            .map_err(unavailable)?;
        Ok(status.as_deref().and_then(record::execution_status))
    }

    async fn results(&self, id: ExecutionId) -> Result<BTreeMap<String, Json>, QueueError> {
        let fields = self
            .execution_fields(id)
            .await?
            .ok_or(QueueError::ExecutionNotFound(id))?;
        Ok(record::outputs(&fields))
    }

    fn counters(&self) -> Option<&dyn QueueCounters> {
        Some(self)
    }

    fn dead_letters(&self) -> Option<&dyn crate::dlq::DeadLetterQueue> {
        Some(self)
    }

    fn control(&self) -> Option<&dyn crate::control::ExecutionControl> {
        Some(self)
    }

    fn sub_workflows(&self) -> Option<&dyn crate::children::ChildExecutions> {
        Some(self)
    }

    fn limits(&self) -> Option<&dyn crate::limits::SharedLimits> {
        Some(self)
    }

    fn history_feed(&self) -> Option<&dyn crate::history::HistoryFeed> {
        Some(self)
    }

    fn payloads(&self) -> Option<&dyn crate::payload::PayloadStore> {
        Some(self)
    }

    fn inspection(&self) -> Option<&dyn crate::inspect::ExecutionInspection> {
        Some(self)
    }

    fn workers(&self) -> Option<&dyn crate::workers::WorkerRegistry> {
        Some(self)
    }

    fn idempotency_keys(&self) -> Option<&dyn crate::idempotency::IdempotencyKeys> {
        Some(self)
    }

    async fn definition(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<WorkflowDefinition>, QueueError> {
        let key = self.definition_key(workflow_id, version);
        self.trip();
        let json: Option<String> = self.inner.client.get(key).await.map_err(unavailable)?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| QueueError::Backend {
                reason: format!("stored definition {workflow_id:?} v{version} is unreadable: {e}"),
                source: None,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl crate::payload::PayloadStore for RedisQueue {
    async fn put_payload(
        &self,
        execution: ExecutionId,
        json: String,
    ) -> Result<String, QueueError> {
        // In the execution's shard; kept twice the retention, so it outlives the execution's
        // hash (which expires `retention` after the execution ends).
        let key = format!(
            "{}pl:{execution}:{}",
            self.inner.keys.shard,
            ulid::Ulid::new()
        );
        let ttl = self
            .inner
            .config
            .retention
            .as_millis()
            .saturating_mul(2)
            .max(1) as i64;
        self.trip();
        let _: Value = self
            .inner
            .client
            .set(&key, json, Some(Expiration::PX(ttl)), None, false)
            .await
            .map_err(unavailable)?;
        Ok(key)
    }

    async fn get_payload(&self, key: &str) -> Result<Option<Json>, QueueError> {
        self.trip();
        let text: Option<String> = self.inner.client.get(key).await.map_err(unavailable)?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| QueueError::Backend {
                reason: format!("payload {key} is unreadable: {e}"),
                source: None,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl QueueCounters for RedisQueue {
    fn stats(&self) -> QueueStats {
        QueueStats {
            round_trips: self.inner.round_trips.load(Ordering::Relaxed),
        }
    }

    async fn server_stats(&self) -> Result<ServerStats, QueueError> {
        let info: String = self
            .inner
            .client
            .custom(fred::cmd!("INFO"), vec!["commandstats", "cpu"])
            .await
            .map_err(unavailable)?;
        Ok(record::server_stats(&info))
    }
}
