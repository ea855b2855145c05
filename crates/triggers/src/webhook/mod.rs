//! Webhooks: which workflows a request starts ([`WebhookRouter`]), signature checks
//! ([`SignatureConfig`]) and idempotent redelivery ([`IdempotencyStore`]).

mod idempotency;
mod router;
mod signature;

pub use idempotency::{Delivery, IN_PROGRESS_TTL, IdempotencyStore, MemoryIdempotencyStore};
pub use router::{WebhookRoute, WebhookRouter, normalize_path};
pub use signature::{DEFAULT_SIGNATURE_HEADER, DEFAULT_TOLERANCE, SignatureConfig, header, sign};

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// The executions started (or, for a replay, those the first delivery started).
    pub execution_ids: Vec<spane_core::ExecutionId>,
    /// `true` when this was a redelivery of an idempotency key seen before: nothing started.
    pub replayed: bool,
}
