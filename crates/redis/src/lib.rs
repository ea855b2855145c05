//! # spane-redis
//!
//! The one way SPANE connects to Redis: the queue (`spane-queue`'s `RedisQueue`), the event
//! bus (`spane-events`'s `RedisBus`) and the trigger store (`spane-triggers`'s
//! `RedisTriggerStore`) all take a [`RedisEndpoint`] and connect through [`connect`], so a
//! URL form, a TLS setting or a timeout means the same everywhere.
//!
//! - [`RedisEndpoint`] — where the server is (`redis://` or `rediss://` URL, with an ACL user
//!   and password or a password alone) and, for TLS, which roots to trust and an optional
//!   client certificate; the connect timeout. `&str` and `String` convert into it.
//! - [`connect`] — a ready client with SPANE's reconnect policy, or a [`ConnectError`] that
//!   names the problem: which part of the URL is invalid, TLS asked for in a build without it,
//!   an untrusted server certificate, a refused user (never the password), an unreachable
//!   `host:port`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), spane_redis::ConnectError> {
//! use spane_redis::{RedisEndpoint, connect};
//!
//! // A managed Redis with a certificate from a public CA: the URL is enough.
//! let client = connect(&"rediss://app:secret@redis.example.com:6380".into()).await?;
//!
//! // A private CA (self-hosted Redis, or a provider that gives you a CA file).
//! let ca = std::fs::read("redis-ca.pem").expect("CA file");
//! let endpoint = RedisEndpoint::new("rediss://app:secret@redis.internal:6380").tls_root_pem(ca);
//! let client = connect(&endpoint).await?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! ## Feature flags
//!
//! - `tls-rustls` (off by default) — `rediss://` and `valkeys://` URLs, with rustls on the
//!   *ring* provider. The server's certificate is checked against Mozilla's root certificates
//!   (the `webpki-roots` set, compiled in: the system's CA bundle is not read, so a minimal
//!   container behaves like a full one) plus the endpoint's
//!   [`tls_root_pem`](RedisEndpoint::tls_root_pem) certificates, and against the host name of
//!   the URL. Without the feature a TLS URL is refused with [`ConnectError::TlsNotEnabled`]
//!   rather than tried in plain text. `spane`, `spane-queue`, `spane-events` and
//!   `spane-triggers` forward the feature under the same name.

mod connect;
mod endpoint;
mod error;
#[cfg(feature = "tls-rustls")]
mod tls;

pub use connect::connect;
pub use endpoint::RedisEndpoint;
pub use error::{Cause, ConnectError, UrlPart};

#[cfg(all(test, not(feature = "tls-rustls")))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tls_url_without_the_feature_asks_for_it() {
        let error = connect(&"rediss://app:s3cret@127.0.0.1:6380".into())
            .await
            .expect_err("no TLS in this build");
        assert!(
            matches!(error, ConnectError::TlsNotEnabled { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("tls-rustls"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
