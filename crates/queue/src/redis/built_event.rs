//! The committed node's event, built in the worker from the core's decision
//! ([`spane_core::CommitPlan::event`]) and finished by the commit script, which adds what only it
//! knows: the output (for a completion, already in the script's arguments) and the time.

use spane_core::{EngineEvent, NodeEmit, NodeEvent};

use crate::error::QueueError;
use crate::job::ClaimedJob;

/// The event of `emit` for `job`, as `(head, tail)`: the script appends
/// `head [,"data":<output>] tail <timestamp>}` to the event stream (`built_event` in
/// `lib.lua`). `head` ends with the status; `tail` ends with `"timestamp":`.
pub(super) fn split_event(
    job: &ClaimedJob,
    emit: &NodeEmit,
) -> Result<(String, String), QueueError> {
    let mut node = NodeEvent::new(
        job.execution_id,
        job.workflow_id.as_str(),
        job.node_id.as_str(),
        emit.status,
    )
    .continued(emit.continued)
    .at(0);
    node.error = emit.error.clone();
    node.attempt = emit.attempt;
    node.next_delay_ms = emit.next_delay_ms;
    let event = EngineEvent::Node(node);
    let unexpected = |what: &str| QueueError::Backend {
        reason: format!("building the event of node {:?}: {what}", job.node_id),
        source: None,
    };
    let json = serde_json::to_string(&event).map_err(|e| unexpected(&e.to_string()))?;
    // Fields in declaration order: type, ids, status, then data (absent here), error, attempt,
    // nextDelayMs, continued, timestamp.
    let body = json
        .strip_suffix("0}")
        .ok_or_else(|| unexpected("no timestamp at the end"))?;
    // The status is the first `,"status":"` outside a string: inside the ids, quotes are
    // escaped. Its value is a plain word.
    const STATUS: &str = ",\"status\":\"";
    let start = body.find(STATUS).ok_or_else(|| unexpected("no status"))? + STATUS.len();
    let end = body[start..]
        .find('"')
        .ok_or_else(|| unexpected("an unterminated status"))?
        + start
        + 1;
    Ok((body[..end].to_owned(), body[end..].to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use spane_core::{CommitPlan, ExecutionId};

    use super::*;

    fn job() -> ClaimedJob {
        ClaimedJob {
            execution_id: ExecutionId::new(),
            workflow_id: "w\"f".to_owned(),
            workflow_version: 1,
            node: 2,
            node_id: "n,\"status\":\"x".to_owned(),
            children: Vec::new(),
            attempt: 3,
            claims: 4,
            token: 1,
            input: Value::Null,
            previous_results: Default::default(),
            parent_execution_id: None,
            depth: 0,
            delay_elapsed: false,
            lease: std::time::Duration::from_secs(1),
            ready_at: None,
        }
    }

    /// What the script makes of the parts.
    fn finish(head: &str, tail: &str, data: Option<&str>) -> Value {
        let data = data.map(|d| format!(",\"data\":{d}")).unwrap_or_default();
        serde_json::from_str(&format!("{head}{data}{tail}1234}}")).unwrap()
    }

    #[test]
    fn a_completion_gets_its_output_and_the_time() {
        let job = job();
        let emit = CommitPlan::Complete { routes: None }.event(2, 3);
        let (head, tail) = split_event(&job, &emit.unwrap()).unwrap();
        let event = finish(&head, &tail, Some("{\"a\":[1,2]}"));
        assert_eq!(event["type"], json!("node:progress"));
        assert_eq!(event["nodeId"], json!(job.node_id));
        assert_eq!(event["workflowId"], json!("w\"f"));
        assert_eq!(event["status"], json!("completed"));
        assert_eq!(event["data"], json!({"a": [1, 2]}));
        assert_eq!(event["attempt"], json!(3));
        assert_eq!(event["timestamp"], json!(1234));
    }

    #[test]
    fn a_failure_carries_its_error() {
        let job = job();
        let plan = CommitPlan::Fail {
            error: "boom \"quoted\" / slash".to_owned(),
        };
        let (head, tail) = split_event(&job, &plan.event(2, 3).unwrap()).unwrap();
        let event = finish(&head, &tail, None);
        assert_eq!(event["status"], json!("failed"));
        assert_eq!(event["error"], json!("boom \"quoted\" / slash"));
        assert_eq!(event.get("data"), None);
    }
}
