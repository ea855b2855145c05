//! # spane-core
//!
//! The heart of SPANE, with no I/O: workflow definitions (the original SPANE JSON format),
//! validation and compilation into a DAG, the execution semantics every backend shares, the
//! executor contract, and the node registry.
//!
//! - [`WorkflowDefinition`] — what users write (JSON or Rust builders).
//! - [`WorkflowDefinition::compile`] — validates every rule at once into a [`CompiledWorkflow`],
//!   or returns [`ValidationErrors`] naming each node and field at fault.
//! - [`ExecutionState`] — the state machine: readiness, joins, branching, skip propagation,
//!   failure and completion decisions. [`node_input`] — data passing.
//! - [`NodeExecutor`], [`ExecutionContext`], [`NodeOutput`], [`NodeError`] — the executor
//!   contract; [`NodeRegistry`] holds executors by node type.
//! - [`EngineEvent`] — events, with the original's wire names.
//! - [`explain`] — why an execution is not progressing, from a backend's snapshot;
//!   [`rerun`] — which nodes a re-run keeps.
//!
//! ```
//! use spane_core::{ExecutionState, NodeDefinition, NodeRegistry, WorkflowDefinition};
//!
//! let wf = WorkflowDefinition::new("diamond", "Diamond")
//!     .node(NodeDefinition::new("a", "delay").with_config(serde_json::json!({"duration": 0})))
//!     .node(NodeDefinition::new("b", "delay").with_config(serde_json::json!({"duration": 0})))
//!     .node(NodeDefinition::new("c", "delay").with_config(serde_json::json!({"duration": 0})))
//!     .edge("a", "b")
//!     .edge("a", "c");
//! let dag = wf.compile(&NodeRegistry::new()).unwrap();
//! let (mut state, start) = ExecutionState::start(&dag);
//! assert_eq!(start.ready, vec![0]);
//! let t = state.complete(&dag, 0, Some(&["b".to_owned()])).unwrap();
//! assert_eq!((t.ready, t.skipped), (vec![1], vec![2]));
//! ```

pub use async_trait::async_trait;

mod breaker;
mod cron;
mod dag;
mod data;
mod definition;
mod error;
mod event;
mod executor;
pub mod explain;
mod id;
mod record;
mod registry;
pub mod rerun;
pub mod rules;
mod settings;
mod source;
mod state;
mod status;
pub mod subworkflow;

pub use breaker::{BreakerDecision, BreakerState, BreakerStatus};
pub use cron::CronPattern;
pub use dag::{AnyNodeType, CompiledNode, CompiledWorkflow, NodeIndex, NodeTypes};
pub use data::{failure_output, node_input};
pub use definition::{
    NodeDefinition, ScheduleTrigger, Trigger, WebhookTrigger, WorkflowDefinition,
};
pub use error::{ValidationError, ValidationErrors};
pub use event::{
    EngineEvent, EventSink, NoEvents, NodeEvent, NodeEventStatus, WorkflowEvent,
    WorkflowEventStatus, now_millis,
};
pub use executor::{
    ExecutionContext, FnExecutor, NodeError, NodeExecutor, NodeOutput, ResultsSource, executor_fn,
};
pub use id::{ExecutionId, InvalidExecutionId};
pub use record::{ExecutionRecord, NodeResult};
pub use registry::{KeyExtractor, NodeRegistry, RateLimit};
pub use rules::{
    Attempt, CommitPlan, DeadLetterCause, DeadLetterPlan, Effects, Emit, Grant, NodeBook, NodeEmit,
};
pub use settings::{
    Backoff, BackoffKind, CircuitBreakerConfig, DELAY_NODE_TYPE, MAX_DURATION, NodeSettings,
    RetryPolicy, SUB_WORKFLOW_NODE_TYPE, SubWorkflowConfig, parse_human_duration,
};
pub use source::ErrorSource;
pub use state::{ExecutionState, NodeState, Transition, TransitionError};
pub use status::{ExecutionStatus, NodeStatus};
pub use subworkflow::{ChildFailure, MAX_DEPTH};
