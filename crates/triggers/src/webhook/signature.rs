//! HMAC-SHA256 signatures of webhook deliveries.
//!
//! A trigger asks for verification with a `signature` object in its config:
//!
//! ```json
//! { "type": "webhook", "config": { "path": "orders", "method": "POST",
//!   "signature": { "secret": "s3cret", "header": "X-Signature",
//!                  "timestampHeader": "X-Timestamp", "tolerance": "5m" } } }
//! ```
//!
//! The signature is the lower- or upper-case hex HMAC-SHA256, keyed with `secret`, of the body,
//! or of `"{timestamp}.{body}"` when `timestampHeader` is set; an optional `sha256=` prefix is
//! accepted. The timestamp is Unix seconds and must be within `tolerance` (default 5 minutes)
//! of now, which bounds replays.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use spane_core::{WebhookTrigger, parse_human_duration};

use crate::error::{TriggerError, WebhookError};

/// The header that carries the signature when the trigger names none.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Spane-Signature";
/// How far a signed timestamp may be from now when the trigger sets no `tolerance`.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// How one webhook trigger verifies signatures.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureConfig {
    /// The HMAC key.
    pub secret: String,
    /// The header that carries the signature.
    pub header: String,
    /// The header that carries the signed Unix timestamp (seconds), if the sender signs one.
    pub timestamp_header: Option<String>,
    /// How far the timestamp may be from now.
    pub tolerance: Duration,
}

impl fmt::Debug for SignatureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureConfig")
            .field("secret", &"<redacted>")
            .field("header", &self.header)
            .field("timestamp_header", &self.timestamp_header)
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

/// The value of header `name` (any case) in `headers`.
pub fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn mac(secret: &str, timestamp: Option<&str>, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    if let Some(ts) = timestamp {
        mac.update(ts.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac
}

/// The signature a sender puts in the header: `sha256=<hex>` of the body, or of
/// `"{timestamp}.{body}"` when a timestamp is signed.
pub fn sign(secret: &str, timestamp: Option<i64>, body: &[u8]) -> String {
    let ts = timestamp.map(|t| t.to_string());
    let bytes = mac(secret, ts.as_deref(), body).finalize().into_bytes();
    format!("sha256={}", hex::encode(bytes))
}

impl SignatureConfig {
    /// A config with `secret`, the default header and no timestamp.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            timestamp_header: None,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Reads the `signature` object of a webhook trigger's config; `None` without one.
    pub fn from_trigger(
        workflow: &str,
        trigger: &WebhookTrigger,
    ) -> Result<Option<Self>, TriggerError> {
        let Some(sig) = trigger.extra.get("signature") else {
            return Ok(None);
        };
        let bad = |field: &'static str, value: String, reason: &str| TriggerError::InvalidWebhook {
            workflow: workflow.to_owned(),
            path: trigger.path.clone(),
            field,
            value,
            reason: reason.to_owned(),
        };
        let Value::Object(sig) = sig else {
            return Err(bad(
                "config.signature",
                sig.to_string(),
                "expected an object",
            ));
        };
        let secret = match sig.get("secret") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            other => {
                let shown = if other.is_some() {
                    "<given>"
                } else {
                    "<absent>"
                };
                return Err(bad(
                    "config.signature.secret",
                    shown.to_owned(),
                    "expected a non-empty string",
                ));
            }
        };
        let text = |field: &'static str, key: &str| -> Result<Option<String>, TriggerError> {
            match sig.get(key) {
                None => Ok(None),
                Some(Value::String(s))
                    if !s.trim().is_empty() && !s.contains(char::is_whitespace) =>
                {
                    Ok(Some(s.clone()))
                }
                Some(v) => Err(bad(field, v.to_string(), "expected a header name")),
            }
        };
        let header = text("config.signature.header", "header")?
            .unwrap_or_else(|| DEFAULT_SIGNATURE_HEADER.to_owned());
        let timestamp_header = text("config.signature.timestampHeader", "timestampHeader")?;
        let tolerance = match sig.get("tolerance") {
            None => DEFAULT_TOLERANCE,
            Some(Value::String(s)) => parse_human_duration(s)
                .map_err(|e| bad("config.signature.tolerance", format!("{s:?}"), &e))?,
            Some(Value::Number(n)) => n.as_u64().map(Duration::from_secs).ok_or_else(|| {
                bad(
                    "config.signature.tolerance",
                    n.to_string(),
                    "expected whole seconds or a duration such as \"5m\"",
                )
            })?,
            Some(v) => {
                return Err(bad(
                    "config.signature.tolerance",
                    v.to_string(),
                    "expected whole seconds or a duration such as \"5m\"",
                ));
            }
        };
        Ok(Some(Self {
            secret,
            header,
            timestamp_header,
            tolerance,
        }))
    }

    /// Checks a delivery to `path` for `workflow`.
    pub fn verify(
        &self,
        workflow: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let Some(given) = header(headers, &self.header) else {
            return Err(WebhookError::MissingSignature {
                path: path.to_owned(),
                workflow: workflow.to_owned(),
                header: self.header.clone(),
            });
        };
        let timestamp = match &self.timestamp_header {
            None => None,
            Some(name) => {
                let value = header(headers, name).unwrap_or("");
                let bad_ts = || WebhookError::BadTimestamp {
                    path: path.to_owned(),
                    workflow: workflow.to_owned(),
                    header: name.clone(),
                    value: value.chars().take(64).collect(),
                };
                let secs: i64 = value.parse().map_err(|_| bad_ts())?;
                let skew = (now.timestamp() - secs).unsigned_abs();
                let skew = Duration::from_secs(skew);
                if skew > self.tolerance {
                    return Err(WebhookError::StaleTimestamp {
                        path: path.to_owned(),
                        workflow: workflow.to_owned(),
                        skew,
                        tolerance: self.tolerance,
                    });
                }
                Some(value)
            }
        };
        let hex_part = given.strip_prefix("sha256=").unwrap_or(given);
        let ok = hex::decode(hex_part).ok().is_some_and(|sig| {
            mac(&self.secret, timestamp, body)
                .verify_slice(&sig)
                .is_ok()
        });
        if ok {
            Ok(())
        } else {
            Err(WebhookError::BadSignature {
                path: path.to_owned(),
                workflow: workflow.to_owned(),
                header: self.header.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signatures_are_checked_with_their_timestamp() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let mut cfg = SignatureConfig::new("k");
        cfg.timestamp_header = Some("X-Ts".to_owned());
        let body = br#"{"a":1}"#;
        let ts = now.timestamp().to_string();
        let good = sign("k", Some(now.timestamp()), body);
        let ok = cfg.verify(
            "w",
            "p",
            body,
            &[("x-spane-signature", &good), ("x-ts", &ts)],
            now,
        );
        assert_eq!(ok, Ok(()));
        // Another body, another key, no header, an old timestamp, no timestamp.
        let other = cfg.verify(
            "w",
            "p",
            b"{}",
            &[("X-Spane-Signature", &good), ("X-Ts", &ts)],
            now,
        );
        assert!(matches!(other, Err(WebhookError::BadSignature { .. })));
        let wrong_key = sign("other", Some(now.timestamp()), body);
        let wrong = cfg.verify(
            "w",
            "p",
            body,
            &[("X-Spane-Signature", &wrong_key), ("X-Ts", &ts)],
            now,
        );
        assert!(matches!(wrong, Err(WebhookError::BadSignature { .. })));
        let missing = cfg.verify("w", "p", body, &[("X-Ts", &ts)], now);
        assert!(matches!(
            missing,
            Err(WebhookError::MissingSignature { .. })
        ));
        let later = now + chrono::Duration::minutes(6);
        let stale = cfg.verify(
            "w",
            "p",
            body,
            &[("X-Spane-Signature", &good), ("X-Ts", &ts)],
            later,
        );
        assert!(matches!(stale, Err(WebhookError::StaleTimestamp { .. })));
        let no_ts = cfg.verify("w", "p", body, &[("X-Spane-Signature", &good)], now);
        assert!(matches!(no_ts, Err(WebhookError::BadTimestamp { .. })));
        // Without a timestamp header the body alone is signed; plain hex is accepted too.
        let plain = SignatureConfig::new("k");
        let sig = sign("k", None, body);
        let bare = sig.trim_start_matches("sha256=").to_uppercase();
        assert_eq!(
            plain.verify("w", "p", body, &[("x-spane-signature", &bare)], now),
            Ok(())
        );
        assert!(!format!("{plain:?}").contains('k') || !format!("{plain:?}").contains("\"k\""));
    }
}
