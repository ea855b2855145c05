//! Turning an executor's result into a commit: retries, backoff, continueOnFail.

use spane_core::{NodeError, NodeOutput, NodeSettings};
use spane_queue::backend::NodeCommit;

/// The commit for attempt `attempt` of a node with `settings` that returned `result`.
///
/// - success → completed (with its `next_nodes`);
/// - an error with `retry_after` → run again after that delay without consuming an attempt;
/// - a retryable error with attempts left → retry after the policy's backoff;
/// - otherwise → failed for good (failed-and-continued with `continueOnFail`).
///
/// `random` in `[0, 1)` drives the backoff jitter.
pub fn decide(
    settings: &NodeSettings,
    attempt: u32,
    result: Result<NodeOutput, NodeError>,
    random: f64,
) -> NodeCommit {
    match result {
        Ok(out) => NodeCommit::Completed {
            data: out.data,
            next_nodes: out.next_nodes,
        },
        Err(NodeError {
            message,
            retry_after: Some(delay),
            ..
        }) => NodeCommit::Retry {
            error: message,
            delay,
            consume_attempt: false,
        },
        Err(e) if e.retryable && attempt < settings.retry.max_attempts => NodeCommit::Retry {
            delay: settings.retry.backoff.delay_after(attempt, random),
            error: e.message,
            consume_attempt: true,
        },
        Err(e) => NodeCommit::failed(e.message, settings.continue_on_fail),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use spane_core::{Backoff, BackoffKind, RetryPolicy};

    use super::*;

    fn settings(max_attempts: u32, continue_on_fail: bool) -> NodeSettings {
        NodeSettings {
            retry: RetryPolicy {
                max_attempts,
                backoff: Backoff {
                    kind: BackoffKind::Exponential,
                    delay: Duration::from_millis(100),
                    max_delay: None,
                    jitter: 0.0,
                },
            },
            continue_on_fail,
            ..NodeSettings::default()
        }
    }

    #[test]
    fn retryable_errors_retry_until_attempts_run_out() {
        let s = settings(3, false);
        let err = || Err(NodeError::retryable("boom"));
        assert!(matches!(
            decide(&s, 1, err(), 0.5),
            NodeCommit::Retry { delay, consume_attempt: true, .. } if delay == Duration::from_millis(100)
        ));
        assert!(matches!(
            decide(&s, 2, err(), 0.5),
            NodeCommit::Retry { delay, .. } if delay == Duration::from_millis(200)
        ));
        assert!(matches!(
            decide(&s, 3, err(), 0.5),
            NodeCommit::Failed {
                continue_on_fail: false,
                ..
            }
        ));
    }

    #[test]
    fn fatal_errors_skip_remaining_attempts_and_honour_continue_on_fail() {
        let s = settings(5, true);
        assert!(matches!(
            decide(&s, 1, Err(NodeError::fatal("bad input")), 0.5),
            NodeCommit::Failed { continue_on_fail: true, ref error, .. } if error == "bad input"
        ));
    }

    #[test]
    fn retry_after_does_not_consume_an_attempt() {
        let s = settings(1, false);
        let e = NodeError::retry_after("429", Duration::from_secs(2));
        assert!(matches!(
            decide(&s, 1, Err(e), 0.5),
            NodeCommit::Retry { consume_attempt: false, delay, .. } if delay == Duration::from_secs(2)
        ));
    }

    #[test]
    fn success_carries_next_nodes() {
        let out = NodeOutput::new(json!(1)).with_next_nodes(["b"]);
        assert_eq!(
            decide(&settings(1, false), 1, Ok(out), 0.5),
            NodeCommit::Completed {
                data: json!(1),
                next_nodes: Some(vec!["b".into()])
            }
        );
    }
}
