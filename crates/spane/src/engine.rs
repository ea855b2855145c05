//! The workflow engine: register definitions, start executions, run workers, observe.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use spane_core::{
    ExecutionId, ExecutionRecord, ExecutionStatus, NodeRegistry, RateLimit, WorkflowDefinition,
    now_millis,
};
#[cfg(feature = "redis")]
use spane_events::RedisBus;
use spane_events::{EventBus, EventFilter, EventStream, LocalBus};
use spane_queue::backend::StartExecution;
use spane_queue::{
    BreakerInfo, DeadLetter, DeadLetterQueue, ExecutionControl, ExecutionQueue, MemoryQueue,
    QueueError, SharedLimits,
};
#[cfg(feature = "redis")]
use spane_queue::{RedisConfig, RedisQueue};
use spane_store::{MemoryStore, Store};
use spane_worker::{
    Definitions, ExecutionStarter, HistoryConfig, HistoryWriter, NodeProcessor, ShutdownReport,
    WorkerConfig, WorkerManager,
};
use tokio::time::Instant;

use crate::error::Error;
#[cfg(feature = "redis")]
use crate::redis_store::RedisDefinitionStore;
use crate::waiters::Waiters;

/// Engine settings, with documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How long one worker claim call waits for work before looping (default 1 s); longer
    /// values cost fewer idle calls. Shutdown does not wait for it: it ends idle claims at
    /// once.
    pub claim_wait: Duration,
    /// The most [`WorkflowEngine::shutdown`] lets in-flight nodes run before it cancels them
    /// and gives their jobs back to the queue (default 30 s). Shutdown returns as soon as the
    /// in-flight nodes are done, so an idle engine stops at once.
    pub shutdown_timeout: Duration,
    /// The global rate limiter: at most `max` node runs per `per` across every worker sharing
    /// the backend (default none). Per-type limits are set on the registry.
    pub rate_limit: Option<RateLimit>,
    /// Threads of the pool that runs executors of CPU-heavy node types (default 2; the pool is
    /// only started when the registry marks a type CPU-heavy).
    pub cpu_threads: usize,
    /// How execution history reaches the store (default [`HistoryMode::Auto`]).
    pub history: HistoryMode,
    /// Write-behind: how long a batch another writer read may stay unwritten before this
    /// engine's writer takes it over (default 30 s).
    pub history_reclaim_idle: Duration,
    /// Write-behind: how long transitions are gathered before they are written, so that an
    /// execution that changes several times meanwhile is written once (default 100 ms; see
    /// [`HistoryConfig::linger`](spane_worker::HistoryConfig::linger)).
    pub history_linger: Duration,
    /// Write-behind: how often the state of a running execution is copied; one that comes to
    /// rest (completed, failed, cancelled, paused) is copied within
    /// [`history_linger`](Self::history_linger) (default 1 s; see
    /// [`HistoryConfig::running_interval`](spane_worker::HistoryConfig::running_interval)).
    pub history_running_interval: Duration,
    /// Claim check: node outputs larger than this many bytes (as JSON) are kept aside in the
    /// queue backend and the execution state holds a reference; every reader (executor
    /// inputs, previous results, `all_results`, `get_execution`, history) sees the data.
    /// Default 50 KiB; `None` keeps every output inline.
    pub payload_threshold: Option<usize>,
}

/// How execution history reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HistoryMode {
    /// Write-behind when the queue offers a history feed (Redis) and the store keeps history;
    /// write-through otherwise.
    #[default]
    Auto,
    /// Each worker writes a node's result right after its commit, and the whole record when
    /// the execution ends: one store write per node on the worker's path.
    WriteThrough,
    /// A writer per engine copies changed executions from the queue to the store in batches,
    /// off the hot path; what was committed reaches the store even if a worker process dies
    /// (another writer takes its unfinished batch over). History lags the live state by a
    /// batch; live reads (`get_execution`) come from the queue meanwhile.
    WriteBehind,
}

impl Default for EngineConfig {
    fn default() -> Self {
        // The history writer's defaults are its own.
        let history = HistoryConfig::default();
        Self {
            claim_wait: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            rate_limit: None,
            cpu_threads: 2,
            history: HistoryMode::Auto,
            history_reclaim_idle: history.reclaim_idle,
            history_linger: history.linger,
            history_running_interval: history.running_interval,
            payload_threshold: Some(50 * 1024),
        }
    }
}

impl EngineConfig {
    /// Sets [`claim_wait`](Self::claim_wait).
    pub fn claim_wait(mut self, claim_wait: Duration) -> Self {
        self.claim_wait = claim_wait;
        self
    }

    /// Sets [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn shutdown_timeout(mut self, shutdown_timeout: Duration) -> Self {
        self.shutdown_timeout = shutdown_timeout;
        self
    }

    /// Sets [`rate_limit`](Self::rate_limit).
    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// Sets [`cpu_threads`](Self::cpu_threads).
    pub fn cpu_threads(mut self, cpu_threads: usize) -> Self {
        self.cpu_threads = cpu_threads;
        self
    }

    /// Sets [`history`](Self::history).
    pub fn history(mut self, history: HistoryMode) -> Self {
        self.history = history;
        self
    }

    /// Sets [`history_linger`](Self::history_linger).
    pub fn history_linger(mut self, history_linger: Duration) -> Self {
        self.history_linger = history_linger;
        self
    }

    /// Sets [`history_running_interval`](Self::history_running_interval).
    pub fn history_running_interval(mut self, history_running_interval: Duration) -> Self {
        self.history_running_interval = history_running_interval;
        self
    }

    /// Sets [`history_reclaim_idle`](Self::history_reclaim_idle).
    pub fn history_reclaim_idle(mut self, history_reclaim_idle: Duration) -> Self {
        self.history_reclaim_idle = history_reclaim_idle;
        self
    }

    /// Sets [`payload_threshold`](Self::payload_threshold).
    pub fn payload_threshold(mut self, payload_threshold: usize) -> Self {
        self.payload_threshold = Some(payload_threshold);
        self
    }
}

/// What [`WorkflowEngine::cascade`] passes to sub-workflows.
#[derive(Debug, Clone, Copy)]
enum Cascade {
    Pause,
    Resume,
    Cancel,
}

/// The most sub-workflow executions one cascade (or one cycle check) visits.
const CASCADE_LIMIT: usize = 10_000;

/// Refuses an idempotency key the backends cannot keep.
fn check_idempotency_key(key: &str) -> Result<(), Error> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        "it is longer than 512 bytes"
    } else if key.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidIdempotencyKey {
        key: key.chars().take(64).collect(),
        reason,
    })
}

/// A runtime for CPU-heavy executors; shut down in the background when the engine goes, so that
/// dropping it inside async code is safe.
struct CpuPool(Option<tokio::runtime::Runtime>);

impl Drop for CpuPool {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Options of one execution, for [`WorkflowEngine::enqueue_workflow_with`].
///
/// ```
/// use std::time::Duration;
/// use spane::{EnqueueOptions, ExecutionId};
///
/// let id = ExecutionId::new();
/// let options = EnqueueOptions::default()
///     .execution_id(id)
///     .idempotency_key("order-1042")
///     .deadline(Duration::from_secs(60));
/// assert_eq!(options.execution_id, Some(id));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// The whole execution must end within this long: past it, the execution fails with
    /// "execution deadline exceeded", nothing new starts and running executors are cancelled
    /// through `ctx.cancellation`.
    pub deadline: Option<Duration>,
    /// The new execution's id, chosen by the caller (default: a fresh one). Knowing it before
    /// the execution exists lets a caller subscribe to its events first and see every one,
    /// `started` included. An id that exists already is refused
    /// ([`QueueError::DuplicateExecution`]), unless the same idempotency key created it.
    pub execution_id: Option<ExecutionId>,
    /// An idempotency key: every enqueue with the same key, from any process sharing the
    /// backend, returns the one execution the first of them started (the later calls start
    /// nothing). The key is kept as long as the queue keeps a finished execution (its
    /// retention); after that the key starts a new execution. When a key is reused, the
    /// `execution_id` option of the later calls is ignored: they return the first call's id.
    pub idempotency_key: Option<String>,
}

impl EnqueueOptions {
    /// Sets the execution's deadline.
    pub fn deadline(mut self, within: Duration) -> Self {
        self.deadline = Some(within);
        self
    }

    /// Chooses the new execution's id (see [`execution_id`](Self::execution_id)).
    pub fn execution_id(mut self, id: ExecutionId) -> Self {
        self.execution_id = Some(id);
        self
    }

    /// Sets the idempotency key (see [`idempotency_key`](Self::idempotency_key)).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 512;

/// Builds a [`WorkflowEngine`]; every backend defaults to its in-memory implementation.
///
/// ```
/// use std::sync::Arc;
/// use spane::{EngineConfig, NodeRegistry, WorkflowEngine};
/// use spane::events::LocalBus;
/// use spane::store::MemoryStore;
///
/// let engine = WorkflowEngine::builder()
///     .registry(NodeRegistry::new())
///     .store(Arc::new(MemoryStore::new()))
///     .event_bus(Arc::new(LocalBus::default()))
///     .config(EngineConfig::default())
///     .build();
/// # let _ = engine;
/// ```
#[derive(Default)]
pub struct EngineBuilder {
    registry: Option<NodeRegistry>,
    queue: Option<Arc<dyn ExecutionQueue>>,
    store: Option<Arc<dyn Store>>,
    bus: Option<Arc<dyn EventBus>>,
    config: EngineConfig,
    pub(crate) triggers: crate::engine_triggers::TriggerSetup,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The executors, by node type.
    pub fn registry(mut self, registry: NodeRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The queue backend (default: a [`MemoryQueue`] publishing into the event bus).
    pub fn queue(mut self, queue: Arc<dyn ExecutionQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The store for definitions and history (default: [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The event bus (default: [`LocalBus`]). When you also pass a queue, make that queue
    /// publish into this bus.
    pub fn event_bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Runs on Redis: connects a [`RedisQueue`] with `config` and a [`RedisBus`] on its event
    /// stream, so that any number of processes share executions, workers and events. Unless a
    /// store was given, definitions are kept in Redis too ([`RedisDefinitionStore`]), so every
    /// process agrees on versions; execution history is then the live state in Redis, kept for
    /// the configured retention.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), spane::Error> {
    /// use spane::{NodeRegistry, WorkflowEngine};
    /// use spane::queue::RedisConfig;
    ///
    /// let engine = WorkflowEngine::builder()
    ///     .registry(NodeRegistry::new())
    ///     .redis(RedisConfig::new("redis://127.0.0.1:6379").prefix("myapp"))
    ///     .await?
    ///     .build();
    /// # let _ = engine; Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    pub async fn redis(mut self, config: RedisConfig) -> Result<Self, Error> {
        // One endpoint (URL and TLS settings) for the queue, the bus and the trigger store.
        let endpoint = config.redis_endpoint().clone();
        self.triggers
            .connect_redis(endpoint.clone(), config.prefix_str())
            .await?;
        let queue = RedisQueue::connect(config).await?;
        let stream = queue.event_streams().remove(0);
        let bus = RedisBus::connect(endpoint, stream).await?;
        if self.store.is_none() {
            self.store = Some(Arc::new(RedisDefinitionStore::new(queue.clone())));
        }
        self.queue = Some(Arc::new(queue));
        self.bus = Some(Arc::new(bus));
        Ok(self)
    }

    /// Engine settings.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the engine. Workers do not run until [`WorkflowEngine::start_workers`].
    pub fn build(self) -> WorkflowEngine {
        let registry = Arc::new(self.registry.unwrap_or_default());
        let bus: Arc<dyn EventBus> = self.bus.unwrap_or_else(|| Arc::new(LocalBus::default()));
        let queue: Arc<dyn ExecutionQueue> = match self.queue {
            Some(queue) => queue,
            None => Arc::new(MemoryQueue::new(bus.clone())),
        };
        let (store, memory_store): (Arc<dyn Store>, _) = match self.store {
            Some(store) => (store, None),
            None => {
                let memory = Arc::new(MemoryStore::new());
                (memory.clone(), Some(memory))
            }
        };
        let definitions = Arc::new(Definitions::new(
            registry.clone(),
            store.clone(),
            queue.clone(),
        ));
        let cpu_pool = registry.has_cpu_heavy_types().then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.config.cpu_threads.max(1))
                .thread_name("spane-cpu")
                .enable_time()
                .build()
        });
        let cpu_pool = match cpu_pool {
            Some(Ok(rt)) => CpuPool(Some(rt)),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot start the CPU pool; CPU-heavy executors run on the main runtime");
                CpuPool(None)
            }
            None => CpuPool(None),
        };
        let write_behind = match self.config.history {
            HistoryMode::WriteThrough => false,
            HistoryMode::WriteBehind => queue.history_feed().is_some(),
            HistoryMode::Auto => queue.history_feed().is_some() && store.keeps_history(),
        };
        let processor = Arc::new(
            NodeProcessor::new(queue.clone(), store.clone(), definitions.clone())
                .with_write_through(!write_behind && store.keeps_history())
                .with_payload_threshold(self.config.payload_threshold)
                .with_global_rate_limit(self.config.rate_limit)
                .with_cpu_pool(cpu_pool.0.as_ref().map(|rt| rt.handle().clone())),
        );
        // Under write-behind history the writer copies a new execution from the queue: the
        // enqueue path makes no store write.
        let starter =
            ExecutionStarter::new(queue.clone(), store.clone()).record_at_start(!write_behind);
        WorkflowEngine {
            inner: Arc::new(Inner {
                starter,
                registry,
                queue,
                store,
                memory_store,
                bus,
                definitions,
                processor,
                workers: Mutex::new(Vec::new()),
                config: self.config,
                _cpu_pool: cpu_pool,
                write_behind,
                history_writer: tokio::sync::Mutex::new(None),
                waiters: Arc::new(Waiters::default()),
                triggers: self.triggers.build(),
            }),
        }
    }
}

/// The engine: the one object an application holds. Cheap to clone.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use serde_json::json;
/// use spane::prelude::*;
///
/// let mut registry = NodeRegistry::new();
/// registry.register("double", executor_fn(|ctx| async move {
///     Ok(NodeOutput::new(json!(ctx.input_data.as_i64().unwrap_or(0) * 2)))
/// }));
/// let engine = WorkflowEngine::embedded(registry);
/// engine.register_workflow(
///     WorkflowDefinition::new("twice", "Double twice")
///         .node(NodeDefinition::new("a", "double"))
///         .node(NodeDefinition::new("b", "double"))
///         .edge("a", "b"),
/// ).await.unwrap();
/// engine.start_workers(4).unwrap();
/// let id = engine.enqueue_workflow("twice", json!(5)).await.unwrap();
/// let done = engine.wait_for_execution(id, Duration::from_secs(10)).await.unwrap();
/// assert_eq!(done.status, ExecutionStatus::Completed);
/// assert_eq!(done.output("b"), Some(&json!(20)));
/// engine.shutdown().await;
/// # });
/// ```
#[derive(Clone)]
pub struct WorkflowEngine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    registry: Arc<NodeRegistry>,
    queue: Arc<dyn ExecutionQueue>,
    store: Arc<dyn Store>,
    /// The store again when it is the built-in [`MemoryStore`], to read a workflow's latest
    /// version without copying its definition.
    memory_store: Option<Arc<MemoryStore>>,
    bus: Arc<dyn EventBus>,
    definitions: Arc<Definitions>,
    starter: ExecutionStarter,
    processor: Arc<NodeProcessor>,
    workers: Mutex<Vec<WorkerManager>>,
    config: EngineConfig,
    _cpu_pool: CpuPool,
    write_behind: bool,
    history_writer: tokio::sync::Mutex<Option<HistoryWriter>>,
    waiters: Arc<Waiters>,
    pub(crate) triggers: Arc<spane_triggers::Triggers>,
}

impl fmt::Debug for WorkflowEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowEngine")
            .field("registry", &self.inner.registry)
            .field("queue", &self.inner.queue)
            .field("store", &self.inner.store)
            .field("bus", &self.inner.bus)
            .finish_non_exhaustive()
    }
}

impl WorkflowEngine {
    /// A builder; see [`EngineBuilder`].
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// An engine on in-memory backends: no services needed, state lost when the process ends.
    pub fn embedded(registry: NodeRegistry) -> Self {
        Self::builder().registry(registry).build()
    }

    /// The queue backend (for its capabilities and counters).
    pub fn queue(&self) -> &Arc<dyn ExecutionQueue> {
        &self.inner.queue
    }

    /// The node registry.
    pub fn registry(&self) -> &NodeRegistry {
        &self.inner.registry
    }

    /// The store of definitions and history (for its query capabilities:
    /// [`WorkflowStore::catalog`](spane_store::WorkflowStore::catalog) and
    /// [`ExecutionStore::history`](spane_store::ExecutionStore::history)).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The event bus (for its capabilities, such as resuming a subscription from an event id).
    pub fn event_bus(&self) -> &Arc<dyn EventBus> {
        &self.inner.bus
    }

    /// Validates and saves a definition; returns its version (unchanged definitions keep
    /// theirs). Executions already running keep the version they started with.
    ///
    /// A sub-workflow node may name a workflow that is not registered yet (register the child
    /// later; until then the node fails at run time, naming it). A cycle of sub-workflow calls
    /// through this definition over the workflows registered so far (A calls B calls A) is
    /// refused with [`ValidationError::SubWorkflowCycle`](spane_core::ValidationError).
    pub async fn register_workflow(&self, definition: WorkflowDefinition) -> Result<u32, Error> {
        let compiled = Arc::new(definition.compile(self.inner.registry.as_ref())?);
        self.check_sub_workflow_cycle(&definition).await?;
        self.check_triggers(&definition)?;
        let version = self.inner.store.save_workflow(&definition).await?;
        self.sync_triggers(&definition).await?;
        self.inner.definitions.insert(version, compiled);
        tracing::info!(workflow = %definition.id, version, "workflow registered");
        Ok(version)
    }

    /// The latest definition of a workflow.
    pub async fn get_workflow(&self, id: &str) -> Result<Option<WorkflowDefinition>, Error> {
        Ok(self
            .inner
            .store
            .get_workflow(id, None)
            .await?
            .map(|w| w.definition))
    }

    /// Starts an execution of the latest version of `workflow_id`; every root receives
    /// `initial_data`. Returns at once; workers run the nodes.
    pub async fn enqueue_workflow(
        &self,
        workflow_id: &str,
        initial_data: Value,
    ) -> Result<ExecutionId, Error> {
        self.enqueue_workflow_with(workflow_id, initial_data, EnqueueOptions::default())
            .await
    }

    /// [`enqueue_workflow`](Self::enqueue_workflow) with options: a deadline for the whole
    /// execution, an execution id chosen by the caller, an idempotency key. Returns the
    /// execution's id: the chosen one, a fresh one, or, for an idempotency key used before,
    /// the id of the execution the first call with that key started.
    ///
    /// Errors: [`Error::WorkflowNotFound`]; [`QueueError::DuplicateExecution`] (as
    /// [`Error::Queue`]) when the chosen id exists and was not started with the same key;
    /// [`Error::InvalidIdempotencyKey`]; [`Error::Unsupported`] when a key is given and the
    /// queue backend keeps no idempotency keys (both built-in backends do).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use futures::StreamExt;
    /// use serde_json::json;
    /// use spane::prelude::*;
    /// use spane::EnqueueOptions;
    ///
    /// let mut registry = NodeRegistry::new();
    /// registry.register("noop", executor_fn(|_| async { Ok(NodeOutput::new(json!(null))) }));
    /// let engine = WorkflowEngine::embedded(registry);
    /// engine.register_workflow(
    ///     WorkflowDefinition::new("w", "W").node(NodeDefinition::new("a", "noop")),
    /// ).await.unwrap();
    /// // Subscribe first, with the id the execution will have: no event is missed.
    /// let id = ExecutionId::new();
    /// let mut events = engine.subscribe(EventFilter::Execution(id)).await.unwrap();
    /// let options = EnqueueOptions::default().execution_id(id).idempotency_key("order-7");
    /// assert_eq!(engine.enqueue_workflow_with("w", json!({}), options.clone()).await.unwrap(), id);
    /// // The same key again: the same execution, nothing new started.
    /// assert_eq!(engine.enqueue_workflow_with("w", json!({}), options).await.unwrap(), id);
    /// let first = events.next().await.unwrap().unwrap();
    /// assert!(matches!(first, EngineEvent::Workflow(ref w) if w.status == WorkflowEventStatus::Started));
    /// # });
    /// ```
    pub async fn enqueue_workflow_with(
        &self,
        workflow_id: &str,
        initial_data: Value,
        options: EnqueueOptions,
    ) -> Result<ExecutionId, Error> {
        if let Some(key) = &options.idempotency_key {
            check_idempotency_key(key)?;
        }
        let latest = match &self.inner.memory_store {
            Some(memory) => memory.latest_version(workflow_id),
            None => self.inner.store.latest_version(workflow_id).await?,
        };
        let version = latest.ok_or_else(|| Error::WorkflowNotFound {
            id: workflow_id.to_owned(),
        })?;
        let workflow = self.inner.definitions.get(workflow_id, version).await?;
        let deadline = options
            .deadline
            .map(|d| now_millis() + d.as_millis().min(i64::MAX as u128) as i64);
        let chosen = options.execution_id;
        let execution_id = chosen.unwrap_or_default();
        let start = |id: ExecutionId| {
            StartExecution::new(id, workflow.clone(), version, initial_data.clone())
                .deadline(deadline)
        };
        let Some(key) = options.idempotency_key else {
            // Refused before the history record is written, so that it is not overwritten.
            if chosen.is_some() && self.execution_exists(execution_id).await? {
                return Err(QueueError::DuplicateExecution(execution_id).into());
            }
            self.start_execution(start(execution_id)).await?;
            return Ok(execution_id);
        };
        let keys = self
            .inner
            .queue
            .idempotency_keys()
            .ok_or(Error::Unsupported {
                what: "idempotency keys",
            })?;
        match keys.reserve(&key, execution_id).await? {
            // This call took the key: start the execution as usual.
            None => {
                if chosen.is_some() && self.execution_exists(execution_id).await? {
                    keys.release(&key, execution_id).await?;
                    return Err(QueueError::DuplicateExecution(execution_id).into());
                }
                let started = self
                    .start_execution(start(execution_id).idempotency_key(key.clone()))
                    .await;
                if let Err(Error::Queue(QueueError::DuplicateExecution(_))) = &started {
                    keys.release(&key, execution_id).await?;
                }
                started.map(|()| execution_id)
            }
            // The key was taken: the execution it maps to, created here if the call that took
            // the key has not created it yet (or died before it did). A start with the same
            // key succeeds without change when it exists meanwhile.
            Some(existing) => {
                if !self.execution_exists(existing).await? {
                    self.start_execution(start(existing).idempotency_key(key))
                        .await?;
                }
                tracing::debug!(execution = %existing, "idempotency key used before: the same execution");
                Ok(existing)
            }
        }
    }

    /// Starts `start`, with a duplicate id reported as [`Error::Queue`].
    async fn start_execution(&self, start: StartExecution) -> Result<(), Error> {
        match self.inner.starter.start(start).await {
            Ok(()) => Ok(()),
            Err(spane_worker::WorkerError::Queue(e)) => Err(Error::Queue(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an execution with this id exists, live or in history.
    async fn execution_exists(&self, id: ExecutionId) -> Result<bool, Error> {
        if self.inner.queue.execution_status(id).await?.is_some() {
            return Ok(true);
        }
        Ok(self.inner.store.get_execution(id).await?.is_some())
    }

    /// Starts a worker manager in this process running up to `concurrency` nodes at once.
    /// Call it again to add another manager; any number of processes may run workers on a
    /// shared backend.
    pub fn start_workers(&self, concurrency: usize) -> Result<(), Error> {
        let manager = WorkerManager::start(
            self.inner.queue.clone(),
            self.inner.processor.clone(),
            WorkerConfig::default()
                .concurrency(concurrency)
                .claim_wait(self.inner.config.claim_wait),
        );
        self.inner
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(manager);
        self.start_triggers();
        if self.inner.write_behind
            && let Ok(mut writer) = self.inner.history_writer.try_lock()
            && writer.is_none()
        {
            *writer = HistoryWriter::start(
                self.inner.queue.clone(),
                self.inner.store.clone(),
                HistoryConfig::default()
                    .reclaim_idle(self.inner.config.history_reclaim_idle)
                    .linger(self.inner.config.history_linger)
                    .running_interval(self.inner.config.history_running_interval),
            );
        }
        Ok(())
    }

    /// An execution with its node results: live state while the backend holds it, history
    /// otherwise.
    pub async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>, Error> {
        if let Some(mut live) = self.inner.queue.execution(id).await? {
            if let Some(payloads) = self.inner.queue.payloads() {
                spane_queue::backend::resolve_record(payloads, &mut live).await?;
            }
            return Ok(Some(live));
        }
        Ok(self.inner.store.get_execution(id).await?)
    }

    /// Waits until the execution ends (completed, failed or cancelled), at most `timeout`.
    pub async fn wait_for_execution(
        &self,
        id: ExecutionId,
        timeout: Duration,
    ) -> Result<ExecutionRecord, Error> {
        let deadline = Instant::now() + timeout;
        self.inner.waiters.ensure_started(&self.inner.bus).await?;
        let guard = self.inner.waiters.register(id);
        loop {
            // Armed before reading, so that an end between the read and the wait is seen.
            let (mine, everyone) = guard.notified();
            tokio::pin!(mine);
            tokio::pin!(everyone);
            mine.as_mut().enable();
            everyone.as_mut().enable();
            // The status alone while the execution runs; the whole record once it ended (or
            // when the queue no longer holds it).
            let status = match self.inner.queue.execution_status(id).await? {
                Some(status) if !status.is_terminal() => status,
                _ => {
                    let record = self
                        .get_execution(id)
                        .await?
                        .ok_or(Error::ExecutionNotFound(id))?;
                    if record.status.is_terminal() {
                        return Ok(record);
                    }
                    record.status
                }
            };
            let woke = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    _ = mine => {}
                    _ = everyone => {}
                }
            })
            .await;
            if woke.is_err() {
                return Err(Error::Timeout {
                    execution: id,
                    status,
                    waited: timeout,
                });
            }
        }
    }

    fn control(&self) -> Result<&dyn ExecutionControl, Error> {
        self.inner.queue.control().ok_or(Error::Unsupported {
            what: "pause, resume and cancel",
        })
    }

    /// Pauses an execution: nodes not yet started are held (a delay that elapses meanwhile
    /// waits too); nodes already running finish and are recorded, and their children are held.
    /// The sub-workflows it is waiting for are paused too (and theirs, recursively).
    /// Returns the new status; pausing a paused execution is harmless.
    pub async fn pause_execution(&self, id: ExecutionId) -> Result<ExecutionStatus, Error> {
        let status = self.control()?.pause(id).await?;
        self.cascade(id, Cascade::Pause).await;
        Ok(status)
    }

    /// Resumes a paused execution: everything held runs, in its paused sub-workflows too. A
    /// finished, failed or cancelled execution cannot be resumed
    /// ([`QueueError::NotAllowed`](spane_queue::QueueError)).
    pub async fn resume_execution(&self, id: ExecutionId) -> Result<ExecutionStatus, Error> {
        let status = self.control()?.resume(id).await?;
        self.cascade(id, Cascade::Resume).await;
        Ok(status)
    }

    /// Cancels a running or paused execution: nothing that has not started will run, and the
    /// executors still running are told through `ctx.cancellation` (in every process). Its
    /// running sub-workflows are cancelled too. Cancelling a sub-workflow's execution alone
    /// fails its parent's node (or, with `continueOnFail`, continues it).
    pub async fn cancel_execution(&self, id: ExecutionId) -> Result<ExecutionStatus, Error> {
        let status = self.control()?.cancel(id).await?;
        self.cascade(id, Cascade::Cancel).await;
        // A child's end resumes its parent; the workers' sweep would too, a moment later.
        self.inner.processor.resume_parent(id).await;
        Ok(status)
    }

    /// Applies a pause, resume or cancel of `id` to its sub-workflows that have not ended,
    /// depth first. Best effort: a child that ended meanwhile is left alone; a child started
    /// after this call is paused or cancelled by the worker that starts it.
    async fn cascade(&self, id: ExecutionId, action: Cascade) {
        let (Some(links), Some(control)) =
            (self.inner.queue.sub_workflows(), self.inner.queue.control())
        else {
            return;
        };
        let mut stack = vec![id];
        let mut seen = 0usize;
        while let Some(parent) = stack.pop() {
            let children = match links.children(parent).await {
                Ok(children) => children,
                Err(e) => {
                    tracing::warn!(error = %e, %parent, "listing sub-workflows failed");
                    continue;
                }
            };
            for child in children {
                seen += 1;
                if seen > CASCADE_LIMIT {
                    tracing::warn!(%id, "more sub-workflows than the cascade visits; the rest are left");
                    return;
                }
                let status = match self.inner.queue.execution_status(child).await {
                    Ok(Some(status)) if !status.is_terminal() => status,
                    _ => continue,
                };
                let done = match (action, status) {
                    (Cascade::Pause, ExecutionStatus::Running) => control.pause(child).await,
                    (Cascade::Resume, ExecutionStatus::Paused) => control.resume(child).await,
                    (Cascade::Cancel, _) => control.cancel(child).await,
                    _ => Ok(status),
                };
                if let Err(e) = done {
                    tracing::debug!(error = %e, %child, "passing a pause, resume or cancel to a sub-workflow");
                }
                stack.push(child);
            }
        }
    }

    /// The sub-workflow executions that `id` started, oldest first (a node retried after its
    /// child failed started a fresh child: both are listed). Live while the backend holds the
    /// execution, else from history.
    pub async fn child_executions(&self, id: ExecutionId) -> Result<Vec<ExecutionId>, Error> {
        if let Some(links) = self.inner.queue.sub_workflows()
            && self.inner.queue.execution_status(id).await?.is_some()
        {
            return Ok(links.children(id).await?);
        }
        let query = spane_store::ExecutionQuery {
            parent_execution_id: Some(id),
            ..Default::default()
        };
        let mut children: Vec<ExecutionId> = self
            .inner
            .store
            .list_executions(&query)
            .await?
            .into_iter()
            .map(|r| r.execution_id)
            .collect();
        children.sort();
        Ok(children)
    }

    /// The parent of a sub-workflow's execution: its execution id and the node that started it.
    /// `None` for a top-level execution.
    pub async fn parent_execution(
        &self,
        id: ExecutionId,
    ) -> Result<Option<(ExecutionId, String)>, Error> {
        let record = self
            .get_execution(id)
            .await?
            .ok_or(Error::ExecutionNotFound(id))?;
        Ok(record
            .parent_execution_id
            .map(|p| (p, record.parent_node_id.unwrap_or_default())))
    }

    /// Refuses a definition whose sub-workflow nodes call, through the workflows registered
    /// so far, back into it.
    async fn check_sub_workflow_cycle(&self, definition: &WorkflowDefinition) -> Result<(), Error> {
        let mut calls: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut todo = spane_core::subworkflow::called_workflows(definition);
        while let Some(id) = todo.pop() {
            if id == definition.id || calls.contains_key(&id) {
                continue;
            }
            let called = match self.inner.store.get_workflow(&id, None).await? {
                Some(stored) => spane_core::subworkflow::called_workflows(&stored.definition),
                None => Vec::new(),
            };
            todo.extend(called.iter().cloned());
            calls.insert(id, called);
            if calls.len() > CASCADE_LIMIT {
                break;
            }
        }
        let lookup = |id: &str| calls.get(id).cloned();
        match spane_core::subworkflow::sub_workflow_cycle(definition, &lookup) {
            None => Ok(()),
            Some(chain) => Err(Error::Invalid(spane_core::ValidationErrors {
                workflow_id: definition.id.clone(),
                errors: vec![spane_core::ValidationError::SubWorkflowCycle { chain }],
            })),
        }
    }

    /// Pauses several executions; one result per id, in order.
    pub async fn pause_executions(
        &self,
        ids: &[ExecutionId],
    ) -> Vec<Result<ExecutionStatus, Error>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(self.pause_execution(id).await);
        }
        out
    }

    /// Resumes several executions; one result per id, in order.
    pub async fn resume_executions(
        &self,
        ids: &[ExecutionId],
    ) -> Vec<Result<ExecutionStatus, Error>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(self.resume_execution(id).await);
        }
        out
    }

    /// Cancels several executions; one result per id, in order.
    pub async fn cancel_executions(
        &self,
        ids: &[ExecutionId],
    ) -> Vec<Result<ExecutionStatus, Error>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(self.cancel_execution(id).await);
        }
        out
    }

    fn limits(&self) -> Result<&dyn SharedLimits, Error> {
        self.inner.queue.limits().ok_or(Error::Unsupported {
            what: "circuit breakers and rate limits",
        })
    }

    /// Every circuit breaker that has state (`{type}:{key}`), as all workers share it.
    pub async fn circuit_breakers(&self) -> Result<Vec<BreakerInfo>, Error> {
        Ok(self.limits()?.breakers().await?)
    }

    /// Closes a circuit breaker by forgetting its state. `false` when it had none.
    pub async fn reset_circuit_breaker(&self, key: &str) -> Result<bool, Error> {
        Ok(self.limits()?.reset_breaker(key).await?)
    }

    fn dlq(&self) -> Result<&dyn DeadLetterQueue, Error> {
        self.inner.queue.dead_letters().ok_or(Error::Unsupported {
            what: "a dead-letter queue",
        })
    }

    /// Dead-letter items (nodes that failed for good), oldest first, a page at a time.
    pub async fn dead_letters(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        Ok(self.dlq()?.list_dead_letters(offset, limit).await?)
    }

    /// How many dead-letter items there are.
    pub async fn dead_letter_count(&self) -> Result<usize, Error> {
        Ok(self.dlq()?.count_dead_letters().await?)
    }

    /// The dead-letter items of one execution (the nodes of it that failed for good), oldest
    /// first; empty when it has none.
    pub async fn execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<Vec<DeadLetter>, Error> {
        Ok(self.dlq()?.execution_dead_letters(execution).await?)
    }

    /// One dead-letter item.
    pub async fn dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<Option<DeadLetter>, Error> {
        Ok(self.dlq()?.get_dead_letter(execution, node_id).await?)
    }

    /// Retries one dead-letter item with fresh attempts: the execution runs again and can
    /// still complete. `false` when there is no such item.
    pub async fn retry_dead_letter(
        &self,
        execution: ExecutionId,
        node_id: &str,
    ) -> Result<bool, Error> {
        Ok(self.dlq()?.retry_dead_letter(execution, node_id).await?)
    }

    /// Retries every dead-letter item of one execution; returns how many.
    pub async fn retry_execution_dead_letters(
        &self,
        execution: ExecutionId,
    ) -> Result<usize, Error> {
        Ok(self.dlq()?.retry_execution_dead_letters(execution).await?)
    }

    /// Deletes every dead-letter item; their executions stay failed. Returns how many.
    pub async fn purge_dead_letters(&self) -> Result<usize, Error> {
        Ok(self.dlq()?.purge_dead_letters().await?)
    }

    /// Live events from now on: all of them, or one execution's. Events of one execution
    /// arrive in causal order. A subscriber that falls behind gets
    /// [`EventError::Lagged`](spane_events::EventError::Lagged) (or, on Redis,
    /// [`EventError::Trimmed`](spane_events::EventError::Trimmed)) as an item, never silence.
    /// To see an execution from its first event, choose its id
    /// ([`EnqueueOptions::execution_id`]) and subscribe before enqueueing; to resume after an
    /// event, use [`subscribe_after`](Self::subscribe_after).
    pub async fn subscribe(&self, filter: EventFilter) -> Result<EventStream, Error> {
        Ok(self.inner.bus.subscribe(filter).await?)
    }

    /// Events with their ids ([`SequencedEvent`](spane_events::SequencedEvent)): with
    /// `after`, first every matching event the bus still holds that came after that id, then
    /// live ones, each once and in order; without it, from now on. Keep the id of the last
    /// event you handled and pass it here to resume after a disconnect or restart.
    ///
    /// Nothing is lost silently: when events after `after` are no longer held this returns
    /// [`EventError::CannotResume`](spane_events::EventError::CannotResume) (re-read the state
    /// you need and subscribe from now); a subscriber that falls behind while it reads gets
    /// [`EventError::Lagged`](spane_events::EventError::Lagged) (embedded bus) or
    /// [`EventError::Trimmed`](spane_events::EventError::Trimmed) (Redis, for what the stream
    /// dropped before it was read) as an item, and the stream goes on.
    ///
    /// On Redis the ids are the event stream's entry ids, valid across processes and
    /// restarts while the stream holds them. The embedded bus resumes only from the events it
    /// journals: build the engine with
    /// `.event_bus(Arc::new(LocalBus::with_journal(capacity, journal)))` (the default bus
    /// keeps none, so that node events are not built when nobody listens).
    pub async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<spane_events::EventId>,
    ) -> Result<spane_events::SequencedStream, Error> {
        let bus = self.inner.bus.resumable().ok_or(Error::Unsupported {
            what: "event ids (the event bus in use is not a ResumableBus)",
        })?;
        Ok(bus.subscribe_after(filter, after).await?)
    }

    /// Stops every worker manager of this engine: waiting claims end at once and no new ones
    /// start, in-flight nodes finish within [`EngineConfig::shutdown_timeout`] (the rest are
    /// cancelled and given back to the queue), and the call returns as soon as they are done:
    /// an idle engine stops promptly whatever its [`EngineConfig::claim_wait`].
    pub async fn shutdown(&self) -> ShutdownReport {
        self.stop_triggers().await;
        let managers: Vec<WorkerManager> = std::mem::take(
            &mut *self
                .inner
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut total = ShutdownReport::default();
        for m in managers {
            let r = m.shutdown(self.inner.config.shutdown_timeout).await;
            total.drained += r.drained;
            total.released += r.released;
        }
        // What the workers committed is written before shutdown returns.
        if let Some(writer) = self.inner.history_writer.lock().await.take() {
            writer.flush_and_stop().await;
        }
        total
    }
}
