//! Settings of the HTTP layer.

use std::fmt;
use std::time::Duration;

use axum::http::HeaderValue;
#[cfg(feature = "prometheus")]
use metrics_exporter_prometheus::PrometheusHandle;

/// Settings of [`router`](crate::router), with a builder; the defaults suit a private network.
///
/// | Setting | Default |
/// |---|---|
/// | bearer token | none (no authentication) |
/// | request body limit | 1 MiB |
/// | CORS allowed origins | none (CORS off) |
/// | SSE heartbeat | every 15 s |
/// | Prometheus handle for `/metrics` | none (`/metrics` answers 501) |
/// | dashboard at `/` | on |
/// | bearer token required on `/webhooks/*` | no (the triggers' signatures authenticate them) |
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    pub(crate) token: Option<String>,
    pub(crate) body_limit: usize,
    pub(crate) cors_origins: Vec<HeaderValue>,
    pub(crate) heartbeat: Duration,
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) dashboard: bool,
    pub(crate) webhooks_need_token: bool,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("body_limit", &self.body_limit)
            .field("cors_origins", &self.cors_origins)
            .field("heartbeat", &self.heartbeat)
            .field("dashboard", &self.dashboard)
            .field("webhooks_need_token", &self.webhooks_need_token)
            .finish()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            token: None,
            body_limit: 1024 * 1024,
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(15),
            #[cfg(feature = "prometheus")]
            prometheus: None,
            dashboard: true,
            webhooks_need_token: false,
        }
    }
}

impl HttpConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `Authorization: Bearer <token>` on every endpoint except `/health`, `/ready`
    /// and the dashboard's static files. Event streams also accept `?access_token=<token>`,
    /// since browsers cannot set headers on an `EventSource`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The largest request body accepted, in bytes (larger ones get 413 `payload_too_large`).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Allows cross-origin requests from `origin` (for example `https://app.example.com`).
    /// An origin that is not a valid header value is ignored with a warning.
    pub fn allow_origin(mut self, origin: &str) -> Self {
        match HeaderValue::from_str(origin) {
            Ok(v) => self.cors_origins.push(v),
            Err(_) => tracing::warn!(origin, "ignoring a CORS origin that is not a header value"),
        }
        self
    }

    /// How often an idle event stream sends a heartbeat comment (default 15 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    #[cfg(feature = "prometheus")]
    /// Serves `/metrics` from this Prometheus recorder (see
    /// [`install_prometheus`](crate::install_prometheus)).
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Serves the dashboard at `/` (default on).
    pub fn dashboard(mut self, on: bool) -> Self {
        self.dashboard = on;
        self
    }

    /// Requires the bearer token on `/webhooks/*` too (default off). Webhook senders (GitHub,
    /// Stripe, ...) cannot add one; their deliveries are authenticated by the trigger's HMAC
    /// `signature` instead, so a webhook trigger without a signature is open to anyone who
    /// can reach the server unless this is on.
    pub fn webhooks_need_token(mut self, on: bool) -> Self {
        self.webhooks_need_token = on;
        self
    }
}
