//! One test per class of invalid definition: each asserts the specific `ValidationError` variant
//! and that the error names the node (and the field, where there is one).

use serde_json::{Value, json};
use spane_core::{
    AnyNodeType, NodeDefinition, NodeOutput, NodeRegistry, ScheduleTrigger, Trigger,
    ValidationError, ValidationErrors, WebhookTrigger, WorkflowDefinition, executor_fn,
};

/// A node of type `t` with an empty config.
fn node(id: &str) -> NodeDefinition {
    NodeDefinition::new(id, "t")
}

/// A node with explicit (possibly inconsistent) edge lists.
fn raw(id: &str, inputs: &[&str], outputs: &[&str]) -> NodeDefinition {
    let mut n = node(id);
    n.inputs = inputs.iter().map(|s| (*s).to_owned()).collect();
    n.outputs = outputs.iter().map(|s| (*s).to_owned()).collect();
    n
}

/// A workflow of `nodes` joined by `edges` (both lists written).
fn wf(nodes: Vec<NodeDefinition>, edges: &[(&str, &str)]) -> WorkflowDefinition {
    let mut w = WorkflowDefinition::new("wf", "Test");
    for n in nodes {
        w = w.node(n);
    }
    for (a, b) in edges {
        w = w.edge(a, b);
    }
    w
}

/// A one-node workflow whose node has the given type and config.
fn single(id: &str, node_type: &str, config: Value) -> WorkflowDefinition {
    wf(
        vec![NodeDefinition::new(id, node_type).with_config(config)],
        &[],
    )
}

fn errors(w: &WorkflowDefinition) -> ValidationErrors {
    match w.compile(&AnyNodeType) {
        Ok(_) => panic!("{} should not compile", w.id),
        Err(e) => e,
    }
}

fn with_trigger(trigger: Trigger) -> WorkflowDefinition {
    wf(vec![node("a")], &[]).trigger(trigger)
}

fn schedule(cron: &str, timezone: Option<&str>) -> Trigger {
    Trigger::Schedule(ScheduleTrigger {
        cron: cron.to_owned(),
        timezone: timezone.map(str::to_owned),
        extra: Default::default(),
    })
}

fn webhook(path: &str, method: Option<&str>) -> Trigger {
    Trigger::Webhook(WebhookTrigger {
        path: path.to_owned(),
        method: method.map(str::to_owned),
        extra: Default::default(),
    })
}

/// Asserts that `errs` holds an `InvalidConfig` for `node` and `field`, and that its Display names both.
fn assert_invalid_config(errs: &ValidationErrors, node: &str, field: &str) {
    let found = errs.iter().find(|e| {
        matches!(e, ValidationError::InvalidConfig { node: n, field: f, .. } if n == node && f == field)
    });
    let e = found.unwrap_or_else(|| panic!("no InvalidConfig {{{node}, {field}}} in {errs}"));
    assert_eq!(e.node(), Some(node));
    let text = e.to_string();
    assert!(text.contains(node), "{text:?} names the node");
    assert!(text.contains(field), "{text:?} names the field");
    assert!(errs.to_string().contains(field), "{errs} names the field");
}

fn assert_missing_config(errs: &ValidationErrors, node: &str, field: &str) {
    let found = errs.iter().find(|e| {
        matches!(e, ValidationError::MissingConfig { node: n, field: f, .. } if n == node && f == field)
    });
    let e = found.unwrap_or_else(|| panic!("no MissingConfig {{{node}, {field}}} in {errs}"));
    assert_eq!(e.node(), Some(node));
    let text = e.to_string();
    assert!(text.contains(node) && text.contains(field), "{text:?}");
}

fn assert_invalid_trigger(
    errs: &ValidationErrors,
    index: usize,
    kind: &str,
    field: &str,
    value: &str,
) {
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::InvalidTrigger { index: i, kind: k, field: f, value: v, .. }
                if *i == index && *k == kind && *f == field && v == value
        )),
        "no InvalidTrigger {{#{index} {kind} {field} = {value:?}}} in {errs}"
    );
    let text = errs.to_string();
    assert!(text.contains(field) && text.contains(value), "{text}");
}

// ---------------------------------------------------------------- graph shape

#[test]
fn cycle_is_reported_with_its_path() {
    // r -> a -> b -> c -> a: a root exists, so the cycle is the only graph problem.
    let w = wf(
        vec![node("r"), node("a"), node("b"), node("c")],
        &[("r", "a"), ("a", "b"), ("b", "c"), ("c", "a")],
    );
    let errs = errors(&w);
    let paths: Vec<&Vec<String>> = errs
        .iter()
        .filter_map(|e| match e {
            ValidationError::Cycle { path } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(paths.len(), 1, "{errs}");
    assert_eq!(*paths[0], ["a", "b", "c", "a"]);
    assert_eq!(errs.errors.len(), 1, "only the cycle is wrong: {errs}");
    assert!(errs.to_string().contains("a -> b -> c -> a"), "{errs}");
}

#[test]
fn cycle_without_root_reports_both() {
    // a -> b -> c -> a and nothing else: no root either.
    let w = wf(
        vec![node("a"), node("b"), node("c")],
        &[("a", "b"), ("b", "c"), ("c", "a")],
    );
    let errs = errors(&w);
    assert!(errs.any(|e| matches!(e, ValidationError::NoRoot)), "{errs}");
    let path = errs
        .iter()
        .find_map(|e| match e {
            ValidationError::Cycle { path } => Some(path.clone()),
            _ => None,
        })
        .expect("a cycle error");
    assert_eq!(path.first(), path.last());
    assert_eq!(path, ["a", "b", "c", "a"]);
}

#[test]
fn self_loop_is_a_cycle() {
    let w = wf(vec![node("r"), node("x")], &[("r", "x"), ("x", "x")]);
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(e, ValidationError::Cycle { path } if path == &["x", "x"])),
        "{errs}"
    );
}

#[test]
fn duplicate_ids_are_reported_once_per_id() {
    let w = wf(vec![node("a"), node("b"), node("a"), node("a")], &[]);
    let errs = errors(&w);
    let dups: Vec<&ValidationError> = errs
        .iter()
        .filter(|e| matches!(e, ValidationError::DuplicateNodeId { .. }))
        .collect();
    assert_eq!(dups.len(), 1, "{errs}");
    assert!(matches!(dups[0], ValidationError::DuplicateNodeId { node } if node == "a"));
    assert_eq!(dups[0].node(), Some("a"));
    assert!(errs.to_string().contains("\"a\""), "{errs}");
}

#[test]
fn unknown_reference_in_inputs() {
    let w = wf(vec![node("a"), raw("b", &["ghost"], &[])], &[]);
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::UnknownReference { node, field: "inputs", reference }
                if node == "b" && reference == "ghost"
        )),
        "{errs}"
    );
    let text = errs.to_string();
    assert!(text.contains("\"b\"") && text.contains("inputs") && text.contains("ghost"));
}

#[test]
fn unknown_reference_in_outputs() {
    let w = wf(vec![raw("a", &[], &["phantom"])], &[]);
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::UnknownReference { node, field: "outputs", reference }
                if node == "a" && reference == "phantom"
        )),
        "{errs}"
    );
    assert_eq!(errs.errors[0].node(), Some("a"));
    let text = errs.to_string();
    assert!(text.contains("\"a\"") && text.contains("outputs") && text.contains("phantom"));
}

#[test]
fn output_without_matching_input_is_an_edge_mismatch() {
    // a lists b as an output; b does not list a as an input.
    let w = wf(vec![raw("a", &[], &["b"]), raw("b", &[], &[])], &[]);
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::EdgeMismatch { node, field: "outputs", other, counterpart: "inputs" }
                if node == "a" && other == "b"
        )),
        "{errs}"
    );
    assert_eq!(errs.errors.len(), 1, "{errs}");
    let text = errs.to_string();
    assert!(text.contains("\"a\"") && text.contains("\"b\"") && text.contains("outputs"));
}

#[test]
fn input_without_matching_output_is_an_edge_mismatch() {
    // b lists a as an input; a does not list b as an output.
    let w = wf(vec![raw("a", &[], &[]), raw("b", &["a"], &[])], &[]);
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::EdgeMismatch { node, field: "inputs", other, counterpart: "outputs" }
                if node == "b" && other == "a"
        )),
        "{errs}"
    );
    assert_eq!(errs.errors.len(), 1, "{errs}");
    assert_eq!(errs.errors[0].node(), Some("b"));
}

#[test]
fn repeated_reference_is_reported() {
    let w = wf(vec![raw("a", &[], &["b", "b"]), raw("b", &["a"], &[])], &[]);
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::RepeatedReference { node, field: "outputs", reference }
                if node == "a" && reference == "b"
        )),
        "{errs}"
    );
}

#[test]
fn entry_node_that_is_not_a_root() {
    let mut w = wf(vec![node("a"), node("b")], &[("a", "b")]);
    w.entry_node_id = Some("b".to_owned());
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::EntryNotRoot { entry, inputs } if entry == "b" && inputs == &["a"]
        )),
        "{errs}"
    );
    assert_eq!(errs.errors.len(), 1);
    assert_eq!(errs.errors[0].node(), Some("b"));
    assert!(errs.to_string().contains("\"b\""));
}

#[test]
fn entry_node_that_does_not_exist() {
    let mut w = wf(vec![node("a")], &[]);
    w.entry_node_id = Some("nowhere".to_owned());
    let errs = errors(&w);
    assert!(
        errs.any(|e| matches!(e, ValidationError::UnknownEntry { entry } if entry == "nowhere")),
        "{errs}"
    );
    assert!(errs.to_string().contains("nowhere"));
}

#[test]
fn entry_node_that_is_a_root_is_accepted() {
    let mut w = wf(vec![node("a"), node("b")], &[("a", "b")]);
    w.entry_node_id = Some("a".to_owned());
    w.compile(&AnyNodeType).expect("a is a root");
}

#[test]
fn no_root_at_all() {
    let w = wf(vec![node("a"), node("b")], &[("a", "b"), ("b", "a")]);
    let errs = errors(&w);
    assert!(errs.any(|e| matches!(e, ValidationError::NoRoot)), "{errs}");
    assert!(
        errs.any(|e| matches!(e, ValidationError::Cycle { path } if path.first() == path.last())),
        "{errs}"
    );
}

#[test]
fn empty_workflow_and_empty_ids() {
    let errs = errors(&WorkflowDefinition::new("", "nothing"));
    assert!(
        errs.any(|e| matches!(e, ValidationError::EmptyWorkflowId)),
        "{errs}"
    );
    assert!(
        errs.any(|e| matches!(e, ValidationError::NoNodes)),
        "{errs}"
    );

    let errs = errors(&wf(vec![node("a"), node(" ")], &[]));
    assert!(
        errs.any(|e| matches!(e, ValidationError::EmptyNodeId { index: 1 })),
        "{errs}"
    );
}

// ---------------------------------------------------------------- node types

#[test]
fn unknown_node_type_is_checked_against_the_registry() {
    let mut registry = NodeRegistry::new();
    registry.register(
        "transform",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
    );
    let w = wf(
        vec![
            NodeDefinition::new("start", "transform"),
            NodeDefinition::new("fetch", "http"),
            NodeDefinition::new("wait", "delay").with_config(json!({"duration": 0})),
            NodeDefinition::new("child", "sub-workflow").with_config(json!({"workflowId": "x"})),
            NodeDefinition::new("mail", "email"),
        ],
        &[
            ("start", "fetch"),
            ("fetch", "wait"),
            ("wait", "child"),
            ("child", "mail"),
        ],
    );
    let errs = w
        .compile(&registry)
        .expect_err("http and email are not registered");
    let unknown: Vec<(&str, &str)> = errs
        .iter()
        .filter_map(|e| match e {
            ValidationError::UnknownNodeType { node, node_type } => {
                Some((node.as_str(), node_type.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(unknown, [("fetch", "http"), ("mail", "email")], "{errs}");
    assert_eq!(errs.errors.len(), 2, "built-ins need no executor: {errs}");
    let text = errs.to_string();
    assert!(
        text.contains("\"fetch\"") && text.contains("\"http\""),
        "{text}"
    );
    assert!(
        text.contains("\"mail\"") && text.contains("\"email\""),
        "{text}"
    );

    // The same definition is fine once the types are registered, and with AnyNodeType.
    w.compile(&AnyNodeType).expect("any type is accepted");
    for t in ["http", "email"] {
        registry.register(
            t,
            executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
        );
    }
    w.compile(&registry).expect("all types registered");
}

// ---------------------------------------------------------------- delay

#[test]
fn delay_with_negative_duration() {
    let errs = errors(&single("wait", "delay", json!({"duration": -5})));
    assert_invalid_config(&errs, "wait", "config.duration");
}

#[test]
fn delay_with_negative_seconds_or_minutes() {
    let errs = errors(&single("wait", "delay", json!({"durationSeconds": -1})));
    assert_invalid_config(&errs, "wait", "config.durationSeconds");
    let errs = errors(&single("wait", "delay", json!({"durationMinutes": -0.5})));
    assert_invalid_config(&errs, "wait", "config.durationMinutes");
}

#[test]
fn delay_without_duration() {
    let errs = errors(&single("wait", "delay", json!({})));
    assert_missing_config(&errs, "wait", "config.duration");
    // A null config is no better.
    let errs = errors(&single("wait", "delay", Value::Null));
    assert_missing_config(&errs, "wait", "config.duration");
}

#[test]
fn delay_with_non_number_duration() {
    for bad in [
        json!(true),
        json!("soon"),
        json!([1]),
        json!({"ms": 1}),
        json!(null),
    ] {
        let errs = errors(&single("wait", "delay", json!({"duration": bad})));
        assert_invalid_config(&errs, "wait", "config.duration");
    }
    let errs = errors(&single("wait", "delay", json!({"durationSeconds": "ten"})));
    assert_invalid_config(&errs, "wait", "config.durationSeconds");
}

#[test]
fn delay_zero_and_human_durations_are_valid() {
    for ok in [
        json!({"duration": 0}),
        json!({"durationSeconds": 0}),
        json!({"durationMinutes": 1.5}),
        json!({"duration": "90s"}),
    ] {
        single("wait", "delay", ok.clone())
            .compile(&AnyNodeType)
            .unwrap_or_else(|e| panic!("{ok} should be valid: {e}"));
    }
}

// ---------------------------------------------------------------- sub-workflow

#[test]
fn sub_workflow_without_workflow_id() {
    let errs = errors(&single("call", "sub-workflow", json!({"inputMapping": {}})));
    assert_missing_config(&errs, "call", "config.workflowId");
}

#[test]
fn sub_workflow_with_empty_or_non_string_workflow_id() {
    let errs = errors(&single("call", "sub-workflow", json!({"workflowId": ""})));
    assert_invalid_config(&errs, "call", "config.workflowId");
    let errs = errors(&single("call", "sub-workflow", json!({"workflowId": 7})));
    assert_invalid_config(&errs, "call", "config.workflowId");
}

#[test]
fn sub_workflow_with_invalid_mapping() {
    let errs = errors(&single(
        "call",
        "sub-workflow",
        json!({"workflowId": "child", "inputMapping": {"amount": 3}, "outputMapping": "all"}),
    ));
    assert_invalid_config(&errs, "call", "config.inputMapping.amount");
    assert_invalid_config(&errs, "call", "config.outputMapping");
}

// ---------------------------------------------------------------- retry policy

#[test]
fn retry_policy_with_zero_attempts() {
    let errs = errors(&single(
        "n",
        "t",
        json!({"retryPolicy": {"maxAttempts": 0}}),
    ));
    assert_invalid_config(&errs, "n", "config.retryPolicy.maxAttempts");
}

#[test]
fn retry_policy_with_linear_backoff() {
    let errs = errors(&single(
        "n",
        "t",
        json!({"retryPolicy": {"backoff": {"type": "linear", "delay": 100}}}),
    ));
    assert_invalid_config(&errs, "n", "config.retryPolicy.backoff.type");
    assert!(errs.to_string().contains("linear"), "{errs}");
}

#[test]
fn retry_policy_with_jitter_above_one() {
    let errs = errors(&single(
        "n",
        "t",
        json!({"retryPolicy": {"backoff": {"type": "fixed", "jitter": 2}}}),
    ));
    assert_invalid_config(&errs, "n", "config.retryPolicy.backoff.jitter");
}

#[test]
fn retry_policy_that_is_not_an_object() {
    let errs = errors(&single("n", "t", json!({"retryPolicy": 3})));
    assert_invalid_config(&errs, "n", "config.retryPolicy");
}

#[test]
fn valid_retry_policy_is_read() {
    let dag = single(
        "n",
        "t",
        json!({"retryPolicy": {"maxAttempts": 5, "backoff": {"type": "exponential", "delay": 10}, "continueOnFail": true}}),
    )
    .compile(&AnyNodeType)
    .expect("valid");
    let s = &dag.node(0).settings;
    assert_eq!(s.retry.max_attempts, 5);
    assert!(s.continue_on_fail);
}

// ---------------------------------------------------------------- circuit breaker

#[test]
fn circuit_breaker_with_zero_failure_threshold() {
    let errs = errors(&single(
        "api",
        "http",
        json!({"circuitBreaker": {"failureThreshold": 0}}),
    ));
    assert_invalid_config(&errs, "api", "config.circuitBreaker.failureThreshold");
}

#[test]
fn circuit_breaker_with_zero_timeout() {
    let errs = errors(&single(
        "api",
        "http",
        json!({"circuitBreaker": {"timeout": 0}}),
    ));
    assert_invalid_config(&errs, "api", "config.circuitBreaker.timeout");
}

#[test]
fn circuit_breaker_from_the_readme_is_valid() {
    let dag = single(
        "api",
        "http",
        json!({
            "retryPolicy": {"maxAttempts": 3, "backoff": {"type": "exponential", "delay": 1000}, "continueOnFail": false},
            "circuitBreaker": {"failureThreshold": 5, "successThreshold": 2, "timeout": 60000}
        }),
    )
    .compile(&AnyNodeType)
    .expect("the README's node configuration is valid");
    let cb = dag
        .node(0)
        .settings
        .circuit_breaker
        .clone()
        .expect("configured");
    assert_eq!(cb.failure_threshold, 5);
    assert_eq!(cb.success_threshold, 2);
    assert_eq!(cb.open_timeout.as_millis(), 60_000);
}

// ---------------------------------------------------------------- triggers

#[test]
fn cron_with_minute_out_of_range() {
    let errs = errors(&with_trigger(schedule("61 * * * *", None)));
    assert_invalid_trigger(&errs, 0, "schedule", "config.cron", "61 * * * *");
}

#[test]
fn cron_that_is_not_a_cron() {
    let errs = errors(&with_trigger(schedule("not a cron", None)));
    assert_invalid_trigger(&errs, 0, "schedule", "config.cron", "not a cron");
}

#[test]
fn unknown_timezone() {
    let errs = errors(&with_trigger(schedule("0 9 * * *", Some("Mars/Olympus"))));
    assert_invalid_trigger(&errs, 0, "schedule", "config.timezone", "Mars/Olympus");
    assert_eq!(errs.errors.len(), 1, "the cron itself is fine: {errs}");
}

#[test]
fn webhook_with_unknown_method() {
    let errs = errors(&with_trigger(webhook("user-signup", Some("FETCH"))));
    assert_invalid_trigger(&errs, 0, "webhook", "config.method", "FETCH");
}

#[test]
fn webhook_with_empty_path() {
    let errs = errors(&with_trigger(webhook("", None)));
    assert!(
        errs.any(|e| matches!(
            e,
            ValidationError::InvalidTrigger {
                index: 0,
                kind: "webhook",
                field: "config.path",
                ..
            }
        )),
        "{errs}"
    );
}

#[test]
fn trigger_errors_carry_the_trigger_index() {
    let w = wf(vec![node("a")], &[])
        .trigger(webhook("ok", Some("POST")))
        .trigger(schedule("0 * * * *", None))
        .trigger(schedule("99 * * * *", None));
    let errs = errors(&w);
    assert_invalid_trigger(&errs, 2, "schedule", "config.cron", "99 * * * *");
    assert_eq!(errs.errors.len(), 1);
}

#[test]
fn six_field_cron_with_seconds_is_accepted() {
    for cron in ["*/10 * * * * *", "0 0 9 * * 1-5", "30 */5 * * * *"] {
        with_trigger(schedule(cron, None))
            .compile(&AnyNodeType)
            .unwrap_or_else(|e| panic!("{cron:?} should be accepted: {e}"));
    }
}

#[test]
fn readme_cron_patterns_are_accepted() {
    for cron in [
        "0 * * * *",
        "*/15 * * * *",
        "0 9 * * *",
        "0 9 * * 1-5",
        "0 0 1 * *",
        "0 */6 * * *",
        "0 0 * * 0",
    ] {
        with_trigger(schedule(cron, None))
            .compile(&AnyNodeType)
            .unwrap_or_else(|e| panic!("{cron:?} should be accepted: {e}"));
    }
}

#[test]
fn iana_timezones_are_accepted() {
    for tz in [
        "America/New_York",
        "Europe/London",
        "Asia/Tokyo",
        "UTC",
        "America/Los_Angeles",
    ] {
        with_trigger(schedule("0 9 * * *", Some(tz)))
            .compile(&AnyNodeType)
            .unwrap_or_else(|e| panic!("{tz:?} should be accepted: {e}"));
    }
}

#[test]
fn webhook_methods_are_accepted_in_any_case() {
    for m in ["GET", "POST", "put", "Patch", "DELETE"] {
        with_trigger(webhook("hook", Some(m)))
            .compile(&AnyNodeType)
            .unwrap_or_else(|e| panic!("{m:?} should be accepted: {e}"));
    }
}

// ---------------------------------------------------------------- all at once

#[test]
fn every_problem_is_reported_at_once() {
    let mut registry = NodeRegistry::new();
    registry.register(
        "transform",
        executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
    );
    let w = wf(
        vec![
            NodeDefinition::new("start", "transform"),
            NodeDefinition::new("start", "transform"),
            NodeDefinition::new("pause", "delay").with_config(json!({"duration": -1})),
            NodeDefinition::new("call", "sub-workflow"),
            NodeDefinition::new("mystery", "quantum"),
            NodeDefinition::new("flaky", "transform")
                .with_config(json!({"retryPolicy": {"maxAttempts": 0}})),
            NodeDefinition {
                node_type: "transform".to_owned(),
                ..raw("dangling", &[], &["ghost"])
            },
        ],
        &[("start", "pause"), ("pause", "call"), ("call", "mystery")],
    )
    .trigger(schedule("not a cron", Some("Mars/Olympus")));
    let errs = w.compile(&registry).expect_err("many problems");

    assert!(
        errs.any(|e| matches!(e, ValidationError::DuplicateNodeId { node } if node == "start"))
    );
    assert!(errs.any(|e| matches!(e, ValidationError::InvalidConfig { node, field, .. } if node == "pause" && field == "config.duration")));
    assert!(errs.any(|e| matches!(e, ValidationError::MissingConfig { node, field, .. } if node == "call" && field == "config.workflowId")));
    assert!(errs.any(|e| matches!(e, ValidationError::UnknownNodeType { node, node_type } if node == "mystery" && node_type == "quantum")));
    assert!(errs.any(|e| matches!(e, ValidationError::InvalidConfig { node, field, .. } if node == "flaky" && field == "config.retryPolicy.maxAttempts")));
    assert!(errs.any(|e| matches!(e, ValidationError::UnknownReference { node, field: "outputs", reference } if node == "dangling" && reference == "ghost")));
    assert!(errs.any(|e| matches!(
        e,
        ValidationError::InvalidTrigger {
            field: "config.cron",
            ..
        }
    )));
    assert!(errs.any(|e| matches!(
        e,
        ValidationError::InvalidTrigger {
            field: "config.timezone",
            ..
        }
    )));

    // At least three distinct problems (here: eight), without duplicates.
    assert!(errs.errors.len() >= 3);
    for (i, a) in errs.errors.iter().enumerate() {
        for b in &errs.errors[i + 1..] {
            assert_ne!(a, b, "reported twice: {a}");
        }
    }
    assert_eq!(errs.errors.len(), 8, "{errs}");

    let text = errs.to_string();
    assert!(
        text.starts_with("workflow \"wf\" is invalid (8 problems)"),
        "{text}"
    );
    for id in [
        "start", "pause", "call", "mystery", "flaky", "dangling", "ghost",
    ] {
        assert!(
            text.contains(&format!("\"{id}\"")),
            "{text} should name {id}"
        );
    }
    for field in [
        "config.duration",
        "config.workflowId",
        "config.retryPolicy.maxAttempts",
        "config.cron",
        "config.timezone",
    ] {
        assert!(text.contains(field), "{text} should name {field}");
    }
    // Every node-level error names a node of the definition.
    let ids: Vec<&str> = w.nodes.iter().map(|n| n.id.as_str()).collect();
    for e in errs.iter() {
        if let Some(n) = e.node() {
            assert!(ids.contains(&n), "{e} names {n}");
        }
    }
}

#[test]
fn a_single_problem_says_problem() {
    let errs = errors(&single("wait", "delay", json!({})));
    assert_eq!(errs.errors.len(), 1);
    assert!(errs.to_string().contains("(1 problem)"), "{errs}");
    assert_eq!(errs.workflow_id, "wf");
}

#[test]
fn definitions_from_json_report_the_same_errors() {
    let text = r#"{
      "id": "bad", "name": "Bad", "entryNodeId": "b",
      "nodes": [
        {"id": "a", "type": "delay", "config": {"duration": "later"}, "inputs": [], "outputs": ["b"]},
        {"id": "b", "type": "sub-workflow", "config": {}, "inputs": ["a"], "outputs": []}
      ],
      "triggers": [{"type": "webhook", "config": {"path": "x", "method": "FETCH"}}]
    }"#;
    let w = WorkflowDefinition::from_json(text).expect("parses");
    let errs = errors(&w);
    assert_eq!(errs.workflow_id, "bad");
    assert!(errs.any(|e| matches!(e, ValidationError::EntryNotRoot { entry, .. } if entry == "b")));
    assert_invalid_config(&errs, "a", "config.duration");
    assert_missing_config(&errs, "b", "config.workflowId");
    assert_invalid_trigger(&errs, 0, "webhook", "config.method", "FETCH");
    assert_eq!(errs.errors.len(), 4, "{errs}");
}
