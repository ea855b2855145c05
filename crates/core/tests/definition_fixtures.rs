//! The example workflows of the original SPANE README, as JSON: each loads, serializes back
//! unchanged, and compiles.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use spane_core::{
    AnyNodeType, CompiledWorkflow, NodeOutput, NodeRegistry, Trigger, WorkflowDefinition,
    executor_fn,
};

/// `(file stem, file text)` of every fixture.
const FIXTURES: &[(&str, &str)] = &[
    (
        "fetch-and-transform",
        include_str!("fixtures/fetch-and-transform.json"),
    ),
    ("example", include_str!("fixtures/example.json")),
    (
        "triggered-workflow",
        include_str!("fixtures/triggered-workflow.json"),
    ),
    ("send-email", include_str!("fixtures/send-email.json")),
    ("onboarding", include_str!("fixtures/onboarding.json")),
    (
        "order-processing",
        include_str!("fixtures/order-processing.json"),
    ),
    (
        "parallel-enrichment",
        include_str!("fixtures/parallel-enrichment.json"),
    ),
    ("main", include_str!("fixtures/main.json")),
    (
        "level1-workflow",
        include_str!("fixtures/level1-workflow.json"),
    ),
    (
        "level2-workflow",
        include_str!("fixtures/level2-workflow.json"),
    ),
    ("daily-report", include_str!("fixtures/daily-report.json")),
];

fn load(name: &str) -> (WorkflowDefinition, Value) {
    let text = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let original: Value = serde_json::from_str(text).expect("fixture is JSON");
    let def = WorkflowDefinition::from_json(text)
        .unwrap_or_else(|e| panic!("fixture {name} does not load: {e}"));
    (def, original)
}

fn compiled(name: &str) -> CompiledWorkflow {
    let (def, _) = load(name);
    def.compile(&AnyNodeType)
        .unwrap_or_else(|e| panic!("fixture {name} does not compile: {e}"))
}

/// The node types the README registers, as a real registry would hold them.
fn readme_registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    for t in ["http", "transform", "email"] {
        registry.register(
            t,
            executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
        );
    }
    registry
}

#[test]
fn every_fixture_file_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn fixtures_load_and_their_id_is_the_file_name() {
    for (name, _) in FIXTURES {
        let (def, _) = load(name);
        assert_eq!(def.id, *name);
        assert!(!def.nodes.is_empty(), "{name} has nodes");
    }
}

#[test]
fn fixtures_round_trip_unchanged() {
    for (name, text) in FIXTURES {
        let (def, original) = load(name);
        assert_eq!(def.to_json(), original, "{name}: to_json differs");
        let via_serde = serde_json::to_value(&def).expect("serializes");
        assert_eq!(via_serde, original, "{name}: serde_json::to_value differs");
        // And back again: the reparsed definition is the same definition.
        let again: WorkflowDefinition = serde_json::from_value(via_serde).expect("reparses");
        assert_eq!(again, def, "{name}: reparsed definition differs");
        // Text round trip too.
        let text_again = serde_json::to_string_pretty(&def).expect("serializes to text");
        let reparsed: Value = serde_json::from_str(&text_again).expect("JSON");
        let original_again: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(reparsed, original_again, "{name}: text round trip differs");
    }
}

#[test]
fn fixtures_compile_with_any_node_type() {
    for (name, _) in FIXTURES {
        let dag = compiled(name);
        assert_eq!(dag.id(), *name);
        assert_eq!(dag.nodes().len(), load(name).0.nodes.len());
        assert!(!dag.roots().is_empty(), "{name} has a root");
    }
}

#[test]
fn fixtures_compile_against_the_readme_registry() {
    let registry = readme_registry();
    for (name, _) in FIXTURES {
        let (def, _) = load(name);
        if let Err(e) = def.compile(&registry) {
            panic!("fixture {name} does not compile against the registry: {e}");
        }
    }
}

#[test]
fn fixtures_do_not_compile_against_an_empty_registry_unless_all_built_in() {
    // Only `delay` and `sub-workflow` are built in; every fixture uses some other type.
    let registry = NodeRegistry::new();
    for (name, _) in FIXTURES {
        let (def, _) = load(name);
        let err = def
            .compile(&registry)
            .expect_err("unregistered types are rejected");
        for n in def
            .nodes
            .iter()
            .filter(|n| n.node_type != "sub-workflow" && n.node_type != "delay")
        {
            assert!(
                err.any(|e| e.node() == Some(n.id.as_str())),
                "{name}: node {} of type {} not reported in {err}",
                n.id,
                n.node_type
            );
        }
    }
}

#[test]
fn entry_node_ids_are_kept_and_name_roots() {
    for (name, entry) in [
        ("fetch-and-transform", Some("fetch")),
        ("example", Some("start")),
        ("triggered-workflow", Some("start")),
        ("send-email", Some("send")),
        ("onboarding", Some("validate")),
        ("order-processing", Some("validate-order")),
        ("daily-report", Some("generate")),
        ("parallel-enrichment", None),
        ("main", None),
        ("level1-workflow", None),
        ("level2-workflow", None),
    ] {
        let (def, original) = load(name);
        assert_eq!(def.entry_node_id.as_deref(), entry, "{name}");
        assert_eq!(
            original.get("entryNodeId").and_then(Value::as_str),
            entry,
            "{name}"
        );
        let dag = def.compile(&AnyNodeType).expect("compiles");
        if let Some(entry) = entry {
            let i = dag.index_of(entry).expect("entry exists");
            assert!(dag.roots().contains(&i), "{name}: entry is a root");
        }
    }
}

#[test]
fn fetch_and_transform_is_a_two_node_chain() {
    let dag = compiled("fetch-and-transform");
    let fetch = dag.index_of("fetch").unwrap();
    let transform = dag.index_of("transform").unwrap();
    assert_eq!(dag.roots(), &[fetch]);
    assert_eq!(dag.node(fetch).children, vec![transform]);
    assert_eq!(dag.node(transform).parents, vec![fetch]);
    assert_eq!(
        dag.node(fetch).config,
        json!({"url": "https://api.example.com/data"})
    );
    assert_eq!(dag.leaves().collect::<Vec<_>>(), vec![transform]);
}

#[test]
fn example_triggers_are_parsed() {
    let (def, _) = load("example");
    let triggers = def.triggers.expect("triggers");
    assert_eq!(triggers.len(), 2);
    match &triggers[0] {
        Trigger::Webhook(w) => {
            assert_eq!(w.path, "example");
            assert_eq!(w.method.as_deref(), Some("POST"));
        }
        other => panic!("expected a webhook trigger, got {other:?}"),
    }
    match &triggers[1] {
        Trigger::Schedule(s) => {
            assert_eq!(s.cron, "0 * * * *");
            assert_eq!(s.timezone, None);
        }
        other => panic!("expected a schedule trigger, got {other:?}"),
    }
}

#[test]
fn triggered_workflow_has_webhook_and_schedule() {
    let (def, _) = load("triggered-workflow");
    let triggers = def.triggers.expect("triggers");
    assert!(
        matches!(&triggers[0], Trigger::Webhook(w) if w.path == "user-signup" && w.method.as_deref() == Some("POST"))
    );
    assert!(matches!(&triggers[1], Trigger::Schedule(s) if s.cron == "0 * * * *"));
}

#[test]
fn daily_report_keeps_its_timezone() {
    let (def, _) = load("daily-report");
    let triggers = def.triggers.expect("triggers");
    assert_eq!(triggers.len(), 1);
    assert!(matches!(
        &triggers[0],
        Trigger::Schedule(s) if s.cron == "0 9 * * *" && s.timezone.as_deref() == Some("America/New_York")
    ));
}

#[test]
fn onboarding_calls_send_email() {
    let dag = compiled("onboarding");
    let call = dag.node(dag.index_of("call-email").unwrap());
    assert!(call.is_sub_workflow());
    let sub = call
        .settings
        .sub_workflow
        .as_ref()
        .expect("sub-workflow settings");
    assert_eq!(sub.workflow_id, "send-email");
    assert!(sub.input_mapping.is_empty());
    assert!(sub.output_mapping.is_empty());
    // The child it names is itself a fixture that compiles.
    compiled(&sub.workflow_id);
}

#[test]
fn order_processing_mappings_and_continue_on_fail_are_read() {
    let dag = compiled("order-processing");
    let pay = dag.node(dag.index_of("process-payment").unwrap());
    let sub = pay
        .settings
        .sub_workflow
        .as_ref()
        .expect("sub-workflow settings");
    assert_eq!(sub.workflow_id, "payment-workflow");
    let input: BTreeSet<(String, String)> = sub.input_mapping.iter().cloned().collect();
    let output: BTreeSet<(String, String)> = sub.output_mapping.iter().cloned().collect();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        input,
        BTreeSet::from([
            pair("amount", "orderTotal"),
            pair("currency", "orderCurrency")
        ])
    );
    assert_eq!(
        output,
        BTreeSet::from([
            pair("transactionId", "paymentId"),
            pair("status", "paymentStatus")
        ])
    );
    assert!(!pay.settings.continue_on_fail);
    // A chain of three.
    let ids: Vec<&str> = dag.nodes().iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        ["validate-order", "process-payment", "send-confirmation"]
    );
    assert_eq!(dag.node(0).children, vec![1]);
    assert_eq!(dag.node(1).children, vec![2]);
}

#[test]
fn parallel_enrichment_has_two_final_nodes() {
    let dag = compiled("parallel-enrichment");
    let leaves: Vec<&str> = dag.leaves().map(|i| dag.node(i).id.as_str()).collect();
    assert_eq!(leaves, ["enrich-a", "enrich-b"]);
    // Nodes without a config keep none.
    assert!(dag.nodes().iter().all(|n| n.config.is_null()));
    assert_eq!(dag.definition().name, "");
}

#[test]
fn nested_sub_workflows_chain_main_to_level2() {
    let mut id = "main".to_owned();
    let mut depth = 0;
    loop {
        let dag = compiled(&id);
        let next = dag.nodes().iter().find_map(|n| {
            n.settings
                .sub_workflow
                .as_ref()
                .map(|s| s.workflow_id.clone())
        });
        match next {
            Some(child) => {
                id = child;
                depth += 1;
            }
            None => break,
        }
    }
    assert_eq!(id, "level2-workflow");
    assert_eq!(depth, 2);
}

#[test]
fn default_settings_for_plain_nodes() {
    let dag = compiled("fetch-and-transform");
    for n in dag.nodes() {
        assert_eq!(n.settings.retry.max_attempts, 1);
        assert!(!n.settings.continue_on_fail);
        assert_eq!(n.settings.circuit_breaker, None);
        assert_eq!(n.settings.timeout, None);
        assert_eq!(n.settings.delay, None::<Duration>);
    }
}
