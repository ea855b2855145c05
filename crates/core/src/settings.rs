//! The parts of a node's `config` that the engine itself reads, parsed and checked once at
//! registration: retry policy, circuit breaker, timeout, delay and sub-workflow settings.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::ValidationError;

/// Node type of the built-in delay node.
pub const DELAY_NODE_TYPE: &str = "delay";
/// Node type of the built-in sub-workflow node.
pub const SUB_WORKFLOW_NODE_TYPE: &str = "sub-workflow";

/// How a node is retried: `config.retryPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (`maxAttempts`, default 3 when a policy is given,
    /// 1 when the node has no `retryPolicy`).
    pub max_attempts: u32,
    /// Wait before each retry.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff: Backoff::default(),
        }
    }
}

/// Backoff between attempts: `retryPolicy.backoff`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Fixed or exponential.
    pub kind: BackoffKind,
    /// Base delay (`delay`, milliseconds, default 1000).
    pub delay: Duration,
    /// Upper bound on one delay (`maxDelay`, milliseconds), if any.
    pub max_delay: Option<Duration>,
    /// Random spread as a fraction of the delay, 0 to 1 (`jitter`, default 0).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            kind: BackoffKind::Fixed,
            delay: Duration::from_millis(1000),
            max_delay: None,
            jitter: 0.0,
        }
    }
}

/// Shape of the backoff curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffKind {
    /// The same delay before every retry.
    Fixed,
    /// `delay × 2^(attempt-1)`.
    Exponential,
}

impl Backoff {
    /// The wait before the attempt that follows attempt `attempt` (1-based), before jitter.
    /// `random` in `[0, 1)` spreads the result by up to ±`jitter`.
    pub fn delay_after(&self, attempt: u32, random: f64) -> Duration {
        let base = match self.kind {
            BackoffKind::Fixed => self.delay,
            BackoffKind::Exponential => {
                let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
                self.delay.saturating_mul(factor)
            }
        };
        let capped = self
            .max_delay
            .map_or(base, |m| base.min(m))
            .min(MAX_DURATION);
        if self.jitter <= 0.0 {
            return capped;
        }
        let spread = (random.clamp(0.0, 1.0) * 2.0 - 1.0) * self.jitter;
        capped.mul_f64((1.0 + spread).max(0.0))
    }
}

/// Circuit breaker thresholds: `config.circuitBreaker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker (default 5).
    pub failure_threshold: u32,
    /// Consecutive successes in half-open state that close it (default 2).
    pub success_threshold: u32,
    /// Time the breaker stays open before a probe is allowed (`timeout`, ms, default 60000).
    pub open_timeout: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            open_timeout: Duration::from_millis(60_000),
        }
    }
}

/// Settings of a `sub-workflow` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubWorkflowConfig {
    /// The workflow to run as a child execution.
    pub workflow_id: String,
    /// `{target: source}`: child input key ← parent data key.
    pub input_mapping: Vec<(String, String)>,
    /// `{target: source}`: node output key ← child result key.
    pub output_mapping: Vec<(String, String)>,
}

/// What the engine reads from one node's `config`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSettings {
    /// Retry policy (one attempt when absent).
    pub retry: RetryPolicy,
    /// On failure for good, record the node as failed-and-continued and run its children.
    pub continue_on_fail: bool,
    /// Per-attempt timeout (`timeout`, ms).
    pub timeout: Option<Duration>,
    /// Circuit breaker thresholds, when the node configures one.
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// For `delay` nodes: how long to wait.
    pub delay: Option<Duration>,
    /// For `sub-workflow` nodes: the child workflow.
    pub sub_workflow: Option<SubWorkflowConfig>,
}

/// Collects problems while parsing one node's config.
struct Parser<'a> {
    node: &'a str,
    errors: &'a mut Vec<ValidationError>,
}

impl Parser<'_> {
    fn invalid(&mut self, field: &str, value: &Value, reason: impl Into<String>) {
        self.errors.push(ValidationError::InvalidConfig {
            node: self.node.to_owned(),
            field: field.to_owned(),
            value: value.to_string(),
            reason: reason.into(),
        });
    }

    fn object<'v>(&mut self, field: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.invalid(field, other, "expected an object");
                None
            }
        }
    }

    /// A non-negative integer number of milliseconds, or a human duration like `"90s"`.
    fn millis(&mut self, field: &str, value: &Value) -> Option<Duration> {
        let parsed = match value {
            Value::Number(n) => match n.as_f64() {
                Some(ms) => duration_from_millis(ms),
                None => Err("expected a number of milliseconds".to_owned()),
            },
            Value::String(s) => parse_human_duration(s),
            _ => Err("expected a number of milliseconds or a duration like \"90s\"".to_owned()),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(reason) => {
                self.invalid(field, value, reason);
                None
            }
        }
    }

    fn scaled(&mut self, field: &str, value: &Value, unit_ms: f64) -> Option<Duration> {
        let parsed = match value.as_f64() {
            Some(n) => duration_from_millis(n * unit_ms),
            None => Err("expected a number".to_owned()),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(reason) => {
                self.invalid(field, value, reason);
                None
            }
        }
    }

    fn positive_int(&mut self, field: &str, value: &Value) -> Option<u32> {
        match value.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Some(n as u32),
            _ => {
                self.invalid(field, value, "expected an integer of at least 1");
                None
            }
        }
    }

    fn bool(&mut self, field: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.invalid(field, other, "expected true or false");
                None
            }
        }
    }

    fn retry(&mut self, value: &Value, continue_on_fail: &mut bool) -> RetryPolicy {
        let mut policy = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::default(),
        };
        let Some(map) = self.object("config.retryPolicy", value) else {
            return policy;
        };
        if let Some(v) = map.get("maxAttempts")
            && let Some(n) = self.positive_int("config.retryPolicy.maxAttempts", v)
        {
            policy.max_attempts = n;
        }
        if let Some(v) = map.get("continueOnFail")
            && let Some(b) = self.bool("config.retryPolicy.continueOnFail", v)
        {
            *continue_on_fail |= b;
        }
        if let Some(v) = map.get("backoff") {
            policy.backoff = self.backoff(v);
        }
        policy
    }

    fn backoff(&mut self, value: &Value) -> Backoff {
        let mut backoff = Backoff::default();
        let Some(map) = self.object("config.retryPolicy.backoff", value) else {
            return backoff;
        };
        if let Some(v) = map.get("type") {
            match v.as_str() {
                Some("fixed") => backoff.kind = BackoffKind::Fixed,
                Some("exponential") => backoff.kind = BackoffKind::Exponential,
                _ => self.invalid(
                    "config.retryPolicy.backoff.type",
                    v,
                    "expected \"fixed\" or \"exponential\"",
                ),
            }
        }
        if let Some(v) = map.get("delay")
            && let Some(d) = self.millis("config.retryPolicy.backoff.delay", v)
        {
            backoff.delay = d;
        }
        if let Some(v) = map.get("maxDelay") {
            backoff.max_delay = self.millis("config.retryPolicy.backoff.maxDelay", v);
        }
        if let Some(v) = map.get("jitter") {
            match v.as_f64() {
                Some(j) if (0.0..=1.0).contains(&j) => backoff.jitter = j,
                _ => self.invalid(
                    "config.retryPolicy.backoff.jitter",
                    v,
                    "expected a fraction between 0 and 1",
                ),
            }
        }
        backoff
    }

    fn circuit_breaker(&mut self, value: &Value) -> CircuitBreakerConfig {
        let mut cb = CircuitBreakerConfig::default();
        let Some(map) = self.object("config.circuitBreaker", value) else {
            return cb;
        };
        if let Some(v) = map.get("failureThreshold")
            && let Some(n) = self.positive_int("config.circuitBreaker.failureThreshold", v)
        {
            cb.failure_threshold = n;
        }
        if let Some(v) = map.get("successThreshold")
            && let Some(n) = self.positive_int("config.circuitBreaker.successThreshold", v)
        {
            cb.success_threshold = n;
        }
        if let Some(v) = map.get("timeout") {
            match self.millis("config.circuitBreaker.timeout", v) {
                Some(d) if d.is_zero() => {
                    self.invalid("config.circuitBreaker.timeout", v, "must be greater than 0");
                }
                Some(d) => cb.open_timeout = d,
                None => {}
            }
        }
        cb
    }

    /// `duration` (ms) takes precedence over `durationSeconds`, then `durationMinutes`.
    fn delay(&mut self, config: &Map<String, Value>) -> Option<Duration> {
        if let Some(v) = config.get("duration") {
            return self.millis("config.duration", v);
        }
        if let Some(v) = config.get("durationSeconds") {
            return self.scaled("config.durationSeconds", v, 1000.0);
        }
        if let Some(v) = config.get("durationMinutes") {
            return self.scaled("config.durationMinutes", v, 60_000.0);
        }
        self.errors.push(ValidationError::MissingConfig {
            node: self.node.to_owned(),
            field: "config.duration".to_owned(),
            hint: Some("a delay node needs duration (ms), durationSeconds or durationMinutes"),
        });
        None
    }

    fn mapping(&mut self, field: &str, value: &Value) -> Vec<(String, String)> {
        let Some(map) = self.object(field, value) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (target, source) in map {
            match source.as_str() {
                Some(s) => out.push((target.clone(), s.to_owned())),
                None => self.invalid(
                    &format!("{field}.{target}"),
                    source,
                    "expected the name of a source key",
                ),
            }
        }
        out
    }

    fn sub_workflow(&mut self, config: &Map<String, Value>) -> Option<SubWorkflowConfig> {
        let workflow_id = match config.get("workflowId") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(other) => {
                self.invalid(
                    "config.workflowId",
                    other,
                    "expected a non-empty workflow id",
                );
                return None;
            }
            None => {
                self.errors.push(ValidationError::MissingConfig {
                    node: self.node.to_owned(),
                    field: "config.workflowId".to_owned(),
                    hint: Some("a sub-workflow node names the workflow it runs"),
                });
                return None;
            }
        };
        let input_mapping = config
            .get("inputMapping")
            .map(|v| self.mapping("config.inputMapping", v))
            .unwrap_or_default();
        let output_mapping = config
            .get("outputMapping")
            .map(|v| self.mapping("config.outputMapping", v))
            .unwrap_or_default();
        Some(SubWorkflowConfig {
            workflow_id,
            input_mapping,
            output_mapping,
        })
    }
}

impl NodeSettings {
    /// Parses the engine's settings out of a node's `config`, pushing every problem found.
    pub fn parse(
        node: &str,
        node_type: &str,
        config: &Value,
        errors: &mut Vec<ValidationError>,
    ) -> Self {
        let mut p = Parser { node, errors };
        let mut settings = NodeSettings::default();
        let empty = Map::new();
        let map = match config {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                p.invalid("config", other, "expected an object");
                &empty
            }
        };
        if let Some(v) = map.get("continueOnFail")
            && let Some(b) = p.bool("config.continueOnFail", v)
        {
            settings.continue_on_fail = b;
        }
        if let Some(v) = map.get("retryPolicy") {
            settings.retry = p.retry(v, &mut settings.continue_on_fail);
        }
        if let Some(v) = map.get("circuitBreaker") {
            settings.circuit_breaker = Some(p.circuit_breaker(v));
        }
        if let Some(v) = map.get("timeout") {
            match p.millis("config.timeout", v) {
                Some(d) if d.is_zero() => p.invalid("config.timeout", v, "must be greater than 0"),
                other => settings.timeout = other,
            }
        }
        match node_type {
            DELAY_NODE_TYPE => settings.delay = p.delay(map),
            SUB_WORKFLOW_NODE_TYPE => settings.sub_workflow = p.sub_workflow(map),
            _ => {}
        }
        settings
    }
}

/// Parses `"250ms"`, `"90s"`, `"5m"`, `"2h"`, `"1d"` (one number, one unit).
pub fn parse_human_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("expected a duration like \"90s\" or \"5m\", got {text:?}"))?;
    let unit_ms = match unit.trim() {
        "ms" => 1.0,
        "s" | "sec" | "secs" => 1000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m, h or d)"
            ));
        }
    };
    duration_from_millis(n * unit_ms)
}

/// The longest duration a definition may set: a delay, a timeout, a backoff delay or a
/// breaker's open time (365 days). Longer values are refused at registration; computed backoff
/// delays are capped to it.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A duration from a number of milliseconds, refusing negative, non-finite and too large values
/// (see [`MAX_DURATION`]) with the reason.
fn duration_from_millis(ms: f64) -> Result<Duration, String> {
    if ms.is_nan() {
        return Err("expected a number of milliseconds".to_owned());
    }
    if ms < 0.0 {
        return Err("must not be negative".to_owned());
    }
    // Compared in milliseconds, so that infinity and numbers past `u64` seconds are refused
    // here instead of panicking in `Duration::from_secs_f64`.
    let max_ms = MAX_DURATION.as_millis() as f64;
    if ms > max_ms {
        return Err(format!(
            "must be at most {max_ms} ms (365 days), got {ms} ms"
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(node_type: &str, config: Value) -> (NodeSettings, Vec<ValidationError>) {
        let mut errors = Vec::new();
        let s = NodeSettings::parse("n", node_type, &config, &mut errors);
        (s, errors)
    }

    #[test]
    fn delay_precedence_is_duration_then_seconds_then_minutes() {
        let (s, e) = parse(
            "delay",
            json!({"duration": 5, "durationSeconds": 1, "durationMinutes": 1}),
        );
        assert!(e.is_empty());
        assert_eq!(s.delay, Some(Duration::from_millis(5)));
        let (s, _) = parse("delay", json!({"durationSeconds": 2, "durationMinutes": 1}));
        assert_eq!(s.delay, Some(Duration::from_secs(2)));
        let (s, _) = parse("delay", json!({"durationMinutes": 1}));
        assert_eq!(s.delay, Some(Duration::from_secs(60)));
        let (s, e) = parse("delay", json!({"duration": 0}));
        assert!(e.is_empty());
        assert_eq!(s.delay, Some(Duration::ZERO));
        let (s, _) = parse("delay", json!({"duration": "90s"}));
        assert_eq!(s.delay, Some(Duration::from_secs(90)));
    }

    #[test]
    fn huge_durations_are_named_errors_not_panics() {
        // Each of these used to reach `Duration::from_secs_f64` and panic.
        let cases = [
            ("delay", json!({"duration": 1e300}), "config.duration"),
            (
                "delay",
                json!({"duration": "99999999999999999999999d"}),
                "config.duration",
            ),
            (
                "delay",
                json!({"durationSeconds": 1e300}),
                "config.durationSeconds",
            ),
            (
                "delay",
                json!({"durationMinutes": 1e300}),
                "config.durationMinutes",
            ),
            ("x", json!({"timeout": 1e300}), "config.timeout"),
            (
                "x",
                json!({"retryPolicy": {"backoff": {"delay": 1e300}}}),
                "config.retryPolicy.backoff.delay",
            ),
            (
                "x",
                json!({"retryPolicy": {"backoff": {"maxDelay": "1000000000000000000000000h"}}}),
                "config.retryPolicy.backoff.maxDelay",
            ),
            (
                "x",
                json!({"circuitBreaker": {"timeout": 1e300}}),
                "config.circuitBreaker.timeout",
            ),
        ];
        for (node_type, config, field) in cases {
            let (_, errors) = parse(node_type, config.clone());
            assert_eq!(errors.len(), 1, "{config}: {errors:?}");
            let message = errors[0].to_string();
            assert!(message.contains(field), "{config}: {message}");
        }
        let (s, e) = parse("delay", json!({"durationMinutes": 365 * 24 * 60}));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.delay, Some(MAX_DURATION));
    }

    #[test]
    fn backoff_never_overflows() {
        let b = Backoff {
            kind: BackoffKind::Exponential,
            delay: MAX_DURATION,
            max_delay: None,
            jitter: 1.0,
        };
        assert_eq!(b.delay_after(u32::MAX, 1.0), MAX_DURATION * 2);
    }

    #[test]
    fn exponential_backoff_doubles_and_is_capped() {
        let b = Backoff {
            kind: BackoffKind::Exponential,
            delay: Duration::from_millis(100),
            max_delay: Some(Duration::from_millis(350)),
            jitter: 0.0,
        };
        assert_eq!(b.delay_after(1, 0.5), Duration::from_millis(100));
        assert_eq!(b.delay_after(2, 0.5), Duration::from_millis(200));
        assert_eq!(b.delay_after(3, 0.5), Duration::from_millis(350));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let b = Backoff {
            jitter: 0.5,
            ..Backoff::default()
        };
        assert_eq!(b.delay_after(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay_after(1, 1.0), Duration::from_millis(1500));
    }

    #[test]
    fn retry_policy_defaults_and_continue_on_fail_are_read() {
        let (s, e) = parse("x", json!({"retryPolicy": {"continueOnFail": true}}));
        assert!(e.is_empty());
        assert_eq!(s.retry.max_attempts, 3);
        assert!(s.continue_on_fail);
        let (s, _) = parse("x", json!({}));
        assert_eq!(s.retry.max_attempts, 1);
    }

    #[test]
    fn human_durations_parse() {
        assert_eq!(
            parse_human_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(parse_human_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_human_duration("5 parsecs").is_err());
        assert!(parse_human_duration("soon").is_err());
    }
}
