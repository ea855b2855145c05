//! Webhooks: which workflows a request starts ([`WebhookRouter`]), signature checks
//! ([`SignatureConfig`]) and idempotent redelivery ([`IdempotencyStore`]).

mod idempotency;
mod router;
mod signature;

pub use idempotency::{Delivery, IN_PROGRESS_TTL, IdempotencyStore, MemoryIdempotencyStore};
pub use router::{WebhookRoute, WebhookRouter, normalize_path};
pub use signature::{DEFAULT_SIGNATURE_HEADER, DEFAULT_TOLERANCE, SignatureConfig, header, sign};
