//! Hostile workflow definitions against the registration path.
//!
//! A service registers the definitions its users send, so what `register_workflow` runs on one
//! (`WorkflowDefinition::from_json`, then `compile` against the node registry, then the JSON the
//! store saves) must never panic, hang or blow up, whatever the input. This test generates
//! definitions as JSON text with proptest:
//!
//! - valid definitions, small random DAGs and huge ones (fan-out, fan-in and chains of thousands
//!   of nodes), with configs that use every setting the engine reads;
//! - the same, mutated: cycles, self-loops, duplicate, empty and 1 MiB ids, unknown references,
//!   one-sided edges, bad entry nodes, unknown node types, wrong JSON types and missing
//!   required fields, out-of-range numbers in every duration, count and fraction (`1e300`, `-1`,
//!   `-0.0`, `u64::MAX`, `"99999999999999999999999d"`), unicode oddities, deep nesting within
//!   and beyond serde_json's recursion limit, bad cron patterns, timezones, webhook paths and
//!   methods, sub-workflow nodes with bad config, and damaged JSON text;
//! - garbage: arbitrary JSON documents, definition-shaped documents with arbitrary values where
//!   the engine reads settings, arbitrary text.
//!
//! Each case runs on a thread with a 2 MiB stack (the size of a tokio worker's), inside
//! `catch_unwind`, and must finish within [`CASE_BUDGET`]. Then:
//!
//! - a definition the generator knows to be valid compiles, survives a JSON round trip (floats
//!   to within their last digits, see [`same_json`]), and its compiled form is acyclic, with
//!   consistent edges, usable settings and every duration at most `MAX_DURATION`;
//! - a definition with known problems is rejected with each of them among the errors (the
//!   variant, the node and the field);
//! - every rejection is structured: each `ValidationError` has a non-empty message that names
//!   its node (and field, and trigger), and says something true of the definition (the node
//!   exists, the cycle is made of declared edges, the reference is really unknown, ...);
//! - JSON that is not a definition is refused by the parser with a message, never a panic.
//!
//! CI runs 512 cases from a fixed seed, the same cases every time; the seed and the case count
//! are printed (`--no-capture` shows them). To explore further:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo nextest run -p spane-core --test hostile_definitions --no-capture
//! PROPTEST_RNG_SEED=42 PROPTEST_CASES=5000 cargo nextest run -p spane-core --test hostile_definitions
//! ```
#![allow(
    clippy::print_stdout,
    reason = "the seed, the case count and the mix of outcomes are part of the test's output"
)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use spane_core::{
    CompiledWorkflow, MAX_DURATION, NodeOutput, NodeRegistry, ValidationError, ValidationErrors,
    WorkflowDefinition, executor_fn,
};

/// Cases run when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 512;
/// Seed used when `PROPTEST_RNG_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5ba9_e0de_f1ed_0001;
/// Longest time one registration may take before the case counts as a hang.
const CASE_BUDGET: Duration = Duration::from_secs(10);
/// Stack of the thread that registers: the default of a tokio worker thread.
const STACK: usize = 2 * 1024 * 1024;
/// Name of the threads that register, whose panics are reported by the failing case.
const REGISTERING_THREAD: &str = "register";
/// `MAX_DURATION` in milliseconds.
const MAX_MS: u64 = MAX_DURATION.as_millis() as u64;
/// Node types the registry of this test knows, besides the built-in `delay` and `sub-workflow`.
const REGISTERED: [&str; 2] = ["t", "http"];
/// Every node type a definition can use here.
const KNOWN: [&str; 4] = ["t", "http", "delay", "sub-workflow"];
const MIB: usize = 1024 * 1024;

// ================================================================ the property

#[test]
fn hostile_definitions_are_refused_with_named_errors_and_never_panic() {
    let (config, seed) = runner_config();
    let cases = config.cases;
    println!(
        "hostile_definitions: {cases} cases, seed {seed} (set PROPTEST_CASES / PROPTEST_RNG_SEED to change)"
    );
    quiet_registering_panics();
    let registry = Arc::new(registry());
    let stats = RefCell::new(Stats::default());
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case_strategy(), |case| {
        let (outcome, took) = register_on_thread(&registry, &case)?;
        let checking = Instant::now();
        check(&case, &outcome)?;
        let checked = checking.elapsed();
        stats.borrow_mut().record(&case, &outcome, took, checked);
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed}: {e}");
    }
    let stats = stats.into_inner();
    println!("{stats}");
    println!(
        "hostile_definitions: {} cases in {:.2?}",
        stats.cases,
        started.elapsed()
    );
    // The default run covers every targeted error; so does any seed, given enough cases (the
    // rarest kinds come up in about 1% of the cases).
    if (seed == DEFAULT_SEED && cases >= DEFAULT_CASES) || cases >= 2_048 {
        stats.assert_coverage();
    }
}

/// The proptest configuration: `PROPTEST_CASES` and `PROPTEST_RNG_SEED` when set (proptest
/// reads them), else [`DEFAULT_CASES`] from [`DEFAULT_SEED`]. No failure persistence, so that
/// every run, on every machine, replays exactly the same cases.
fn runner_config() -> (Config, u64) {
    let from_env = Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        from_env.cases
    } else {
        DEFAULT_CASES
    };
    let seed = match from_env.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => DEFAULT_SEED,
    };
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        rng_algorithm: RngAlgorithm::ChaCha,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..from_env
    };
    (config, seed)
}

/// Panics on the registering threads are reported by the failing case (and again for every
/// shrinking step), so the default hook's message and backtrace are left out for them.
fn quiet_registering_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name() != Some(REGISTERING_THREAD) {
            default(info);
        }
    }));
}

/// A registry that knows the node types the generator uses (`t`, `http`).
fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    for t in REGISTERED {
        registry.register(
            t,
            executor_fn(|ctx| async move { Ok(NodeOutput::new(ctx.input_data)) }),
        );
    }
    registry
}

// ================================================================ the registration path

/// What registering one text came to.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per case, moved once from the registering thread"
)]
enum Outcome {
    /// Not a definition: the parser's message.
    Unparsed(String),
    /// A definition, refused.
    Rejected(WorkflowDefinition, ValidationErrors),
    /// A definition, compiled; with the definition read back from the JSON the store saves.
    Compiled(
        WorkflowDefinition,
        CompiledWorkflow,
        Option<WorkflowDefinition>,
    ),
}

/// What `register_workflow` does with a definition sent as JSON, up to saving it.
fn register(registry: &NodeRegistry, text: &str) -> Outcome {
    let definition = match WorkflowDefinition::from_json(text) {
        Ok(d) => d,
        Err(e) => return Outcome::Unparsed(e.to_string()),
    };
    match definition.compile(registry) {
        Err(errors) => Outcome::Rejected(definition, errors),
        Ok(compiled) => {
            // The store saves the definition as JSON; it must load back the same.
            let saved = compiled.definition().to_json().to_string();
            let reloaded = WorkflowDefinition::from_json(&saved).ok();
            // What the engine later computes from the settings read at registration.
            for node in compiled.nodes() {
                let backoff = &node.settings.retry.backoff;
                for attempt in [1, 2, 31, 32, u32::MAX] {
                    for random in [0.0, 0.5, 1.0] {
                        let _ = backoff.delay_after(attempt, random);
                    }
                }
            }
            Outcome::Compiled(definition, compiled, reloaded)
        }
    }
}

/// Runs [`register`] on its own thread inside `catch_unwind`: a panic or a case slower than
/// [`CASE_BUDGET`] fails the case.
fn register_on_thread(
    registry: &Arc<NodeRegistry>,
    case: &Case,
) -> Result<(Outcome, Duration), TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let registry = Arc::clone(registry);
    let text = case.text.clone();
    let started = Instant::now();
    let worker = thread::Builder::new()
        .name(REGISTERING_THREAD.to_owned())
        .stack_size(STACK)
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| register(&registry, &text)));
            let _ = tx.send(result.map_err(|payload| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned())
            }));
        })
        .map_err(|e| TestCaseError::fail(format!("cannot spawn the registering thread: {e}")))?;
    match rx.recv_timeout(CASE_BUDGET) {
        Ok(Ok(outcome)) => {
            let took = started.elapsed();
            let _ = worker.join();
            Ok((outcome, took))
        }
        Ok(Err(message)) => {
            let _ = worker.join();
            Err(TestCaseError::fail(format!(
                "registration panicked: {message}"
            )))
        }
        Err(RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "registration still running after {CASE_BUDGET:?} (hang)"
        ))),
        Err(RecvTimeoutError::Disconnected) => Err(TestCaseError::fail(
            "the registering thread ended without an answer",
        )),
    }
}

// ================================================================ checks

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

fn check(case: &Case, outcome: &Outcome) -> Result<(), TestCaseError> {
    match (&case.expect, outcome) {
        (Expect::ParseError, Outcome::Unparsed(_))
        | (Expect::Compiles, Outcome::Compiled(..))
        | (Expect::Rejected(_), Outcome::Rejected(..))
        | (Expect::Any, _) => {}
        (expect, outcome) => {
            return Err(fail(format!(
                "expected {}, got {}",
                expect.summary(),
                describe(outcome)
            )));
        }
    }
    match outcome {
        Outcome::Unparsed(message) => {
            if message.trim().is_empty() {
                return Err(fail(
                    "the parser refused the text without a message".to_owned(),
                ));
            }
        }
        Outcome::Rejected(def, errors) => {
            check_errors(def, errors)?;
            if let Expect::Rejected(wants) = &case.expect {
                for want in wants {
                    if !want.found_in(def, errors) {
                        return Err(fail(format!(
                            "expected {} among the errors: {}",
                            want.describe(def),
                            short(&errors.to_string(), 2_000)
                        )));
                    }
                }
            }
        }
        Outcome::Compiled(def, compiled, reloaded) => {
            check_compiled(def, compiled, reloaded.as_ref())?;
        }
    }
    Ok(())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Unparsed(m) => format!("a parse error: {}", short(m, 300)),
        Outcome::Rejected(_, e) => format!("a rejection: {}", short(&e.to_string(), 2_000)),
        Outcome::Compiled(..) => "a compiled workflow".to_owned(),
    }
}

/// Ids, and the edges as each node declares them, for checking what errors claim.
struct Facts<'a> {
    def: &'a WorkflowDefinition,
    /// Ids (blank ones included) to their positions.
    ids: HashMap<&'a str, Vec<usize>>,
    /// Declared edges `(from, to)`, from `outputs` and from `inputs`.
    edges: HashSet<(&'a str, &'a str)>,
}

impl<'a> Facts<'a> {
    fn new(def: &'a WorkflowDefinition) -> Self {
        let mut ids: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut edges = HashSet::new();
        for (i, n) in def.nodes.iter().enumerate() {
            ids.entry(n.id.as_str()).or_default().push(i);
            for o in &n.outputs {
                edges.insert((n.id.as_str(), o.as_str()));
            }
            for p in &n.inputs {
                edges.insert((p.as_str(), n.id.as_str()));
            }
        }
        Self { def, ids, edges }
    }

    fn nodes_named(&self, id: &str) -> impl Iterator<Item = &'a spane_core::NodeDefinition> {
        let def = self.def;
        self.ids
            .get(id)
            .into_iter()
            .flatten()
            .map(move |&i| &def.nodes[i])
    }

    /// Whether a node answers to `id` (blank ids are never indexed).
    fn exists(&self, id: &str) -> bool {
        !id.trim().is_empty() && self.ids.contains_key(id)
    }
}

fn list<'a>(n: &'a spane_core::NodeDefinition, field: &str) -> &'a [String] {
    if field == "inputs" {
        &n.inputs
    } else {
        &n.outputs
    }
}

/// Every error names its problem and is true of the definition.
fn check_errors(def: &WorkflowDefinition, errors: &ValidationErrors) -> Result<(), TestCaseError> {
    if errors.errors.is_empty() {
        return Err(fail("a rejection without errors".to_owned()));
    }
    if errors.workflow_id != def.id {
        return Err(fail(format!(
            "the rejection names workflow {:?}, the definition is {:?}",
            short(&errors.workflow_id, 80),
            short(&def.id, 80)
        )));
    }
    let facts = Facts::new(def);
    let triggers = def.triggers.as_ref().map_or(0, Vec::len);
    for e in &errors.errors {
        let text = e.to_string();
        let refute = |why: &str| Err(fail(format!("error {:?}: {why}", short(&text, 600))));
        if text.trim().is_empty() {
            return refute("empty message");
        }
        if let Some(node) = e.node()
            && !text.contains(&format!("{node:?}"))
        {
            return refute("does not name its node");
        }
        match e {
            ValidationError::EmptyWorkflowId if !def.id.trim().is_empty() => {
                return refute("the workflow id is not empty");
            }
            ValidationError::NoNodes if !def.nodes.is_empty() => {
                return refute("the workflow has nodes");
            }
            ValidationError::EmptyNodeId { index } => {
                if !text.contains(&format!("#{index}")) {
                    return refute("does not name the node's position");
                }
                if def
                    .nodes
                    .get(*index)
                    .is_none_or(|n| !n.id.trim().is_empty())
                {
                    return refute("that node's id is not empty");
                }
            }
            ValidationError::DuplicateNodeId { node } if facts.nodes_named(node).count() < 2 => {
                return refute("the id is not repeated");
            }
            ValidationError::UnknownReference {
                node,
                field,
                reference,
            } => {
                if facts.exists(reference) {
                    return refute("the reference names a node");
                }
                if !facts
                    .nodes_named(node)
                    .any(|n| list(n, field).contains(reference))
                {
                    return refute("no such reference in that list");
                }
                if !text.contains(&format!("{reference:?}")) || !text.contains(field) {
                    return refute("does not name the reference and the list");
                }
            }
            ValidationError::EdgeMismatch {
                node, field, other, ..
            } => {
                if !facts
                    .nodes_named(node)
                    .any(|n| list(n, field).contains(other))
                {
                    return refute("the node does not list the other end");
                }
                if !text.contains(&format!("{other:?}")) {
                    return refute("does not name the other end");
                }
            }
            ValidationError::RepeatedReference {
                node,
                field,
                reference,
            } if !facts
                .nodes_named(node)
                .any(|n| list(n, field).iter().filter(|r| *r == reference).count() > 1) =>
            {
                return refute("the reference is not repeated");
            }
            ValidationError::Cycle { path } => {
                if path.len() < 2 || path.first() != path.last() {
                    return refute("a cycle path starts and ends with the same node");
                }
                for pair in path.windows(2) {
                    let (a, b) = (pair[0].as_str(), pair[1].as_str());
                    // A node with a blank id cannot be referenced, but its own lists still
                    // declare edges, so it may sit on a cycle.
                    if !facts.ids.contains_key(a) || !facts.edges.contains(&(a, b)) {
                        return refute(&format!(
                            "the cycle uses {:?} -> {:?}, which is not declared",
                            short(a, 40),
                            short(b, 40)
                        ));
                    }
                }
                // Every node of the cycle, in order (a linear scan: cycles can be long).
                let mut rest = text.as_str();
                for id in path {
                    match rest.find(id.as_str()) {
                        Some(at) => rest = &rest[at + id.len()..],
                        None => return refute("does not name every node of the cycle"),
                    }
                }
            }
            ValidationError::NoRoot if def.nodes.iter().any(|n| n.inputs.is_empty()) => {
                return refute("a node without inputs exists");
            }
            ValidationError::UnknownEntry { entry } => {
                if def.entry_node_id.as_ref() != Some(entry) || facts.exists(entry) {
                    return refute("the entry is not the definition's, or names a node");
                }
                if !text.contains(&format!("{entry:?}")) {
                    return refute("does not name the entry");
                }
            }
            ValidationError::EntryNotRoot { entry, .. }
                if def.entry_node_id.as_ref() != Some(entry)
                    || !facts.nodes_named(entry).any(|n| !n.inputs.is_empty()) =>
            {
                return refute("the entry is not the definition's, or is a root");
            }
            ValidationError::UnknownNodeType { node, node_type } => {
                if KNOWN.contains(&node_type.as_str()) {
                    return refute("the type is known");
                }
                if !facts.nodes_named(node).any(|n| &n.node_type == node_type) {
                    return refute("no node with that id has that type");
                }
                if !text.contains(&format!("{node_type:?}")) {
                    return refute("does not name the type");
                }
            }
            ValidationError::InvalidConfig { node, field, .. }
            | ValidationError::MissingConfig { node, field, .. } => {
                if !field.starts_with("config") || !text.contains(field.as_str()) {
                    return refute("does not name a config field");
                }
                if def.nodes.iter().all(|n| &n.id != node) {
                    return refute("no node has that id");
                }
            }
            ValidationError::InvalidTrigger {
                index, kind, field, ..
            } => {
                if *index >= triggers {
                    return refute("no trigger at that position");
                }
                if !field.starts_with("config.")
                    || !text.contains(field)
                    || !text.contains(kind)
                    || !text.contains(&format!("#{index}"))
                {
                    return refute("does not name the trigger and its field");
                }
            }
            _ => {}
        }
    }
    let all = errors.to_string();
    let n = errors.errors.len();
    if !all.contains(&format!("({n} problem")) || !all.contains(&errors.errors[0].to_string()) {
        return Err(fail(format!(
            "the summary does not count or list the problems: {}",
            short(&all, 600)
        )));
    }
    Ok(())
}

/// A compiled workflow is what the definition says, acyclic, with usable settings.
fn check_compiled(
    def: &WorkflowDefinition,
    compiled: &CompiledWorkflow,
    reloaded: Option<&WorkflowDefinition>,
) -> Result<(), TestCaseError> {
    let refute = |why: String| Err(fail(format!("compiled workflow: {why}")));
    if !reloaded.is_some_and(|r| same_json(&r.to_json(), &def.to_json())) {
        return refute("the saved JSON does not load back as the same definition".to_owned());
    }
    if compiled.id() != def.id || def.id.trim().is_empty() {
        return refute("workflow id".to_owned());
    }
    let nodes = compiled.nodes();
    if nodes.len() != def.nodes.len() || nodes.is_empty() {
        return refute(format!("{} nodes for {}", nodes.len(), def.nodes.len()));
    }
    let mut seen = HashSet::new();
    for (i, (n, d)) in nodes.iter().zip(&def.nodes).enumerate() {
        if n.id != d.id || n.id.trim().is_empty() || !seen.insert(n.id.as_str()) {
            return refute(format!("node #{i}: id blank, repeated or changed"));
        }
        if compiled.index_of(&n.id) != Some(i) {
            return refute(format!("node #{i}: index_of"));
        }
        if !KNOWN.contains(&n.node_type.as_str()) {
            return refute(format!("node #{i}: type {:?} has no executor", n.node_type));
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let d = &def.nodes[i];
        let children: HashSet<&str> = n.children.iter().map(|&c| nodes[c].id.as_str()).collect();
        let parents: HashSet<&str> = n.parents.iter().map(|&p| nodes[p].id.as_str()).collect();
        if children != d.outputs.iter().map(String::as_str).collect()
            || parents != d.inputs.iter().map(String::as_str).collect()
        {
            return refute(format!("node #{i}: edges differ from the definition"));
        }
        if n.children.iter().any(|&c| !nodes[c].parents.contains(&i)) {
            return refute(format!("node #{i}: a child does not have it as parent"));
        }
        let s = &n.settings;
        let durations = [
            s.timeout,
            s.delay,
            Some(s.retry.backoff.delay),
            s.retry.backoff.max_delay,
            s.circuit_breaker.as_ref().map(|c| c.open_timeout),
        ];
        if durations.iter().flatten().any(|d| *d > MAX_DURATION) {
            return refute(format!("node #{i}: a duration beyond MAX_DURATION: {s:?}"));
        }
        if s.timeout.is_some_and(|t| t.is_zero())
            || s.circuit_breaker.as_ref().is_some_and(|c| {
                c.open_timeout.is_zero() || c.failure_threshold == 0 || c.success_threshold == 0
            })
            || s.retry.max_attempts == 0
            || !(0.0..=1.0).contains(&s.retry.backoff.jitter)
        {
            return refute(format!("node #{i}: unusable settings {s:?}"));
        }
        if n.is_delay() != s.delay.is_some() {
            return refute(format!(
                "node #{i}: delay node without a delay, or the reverse"
            ));
        }
        if n.is_sub_workflow()
            != s.sub_workflow
                .as_ref()
                .is_some_and(|w| !w.workflow_id.trim().is_empty())
        {
            return refute(format!(
                "node #{i}: sub-workflow node without a workflow id"
            ));
        }
    }
    let roots: Vec<usize> = (0..nodes.len())
        .filter(|&i| def.nodes[i].inputs.is_empty())
        .collect();
    if compiled.roots() != roots.as_slice() || roots.is_empty() {
        return refute("roots".to_owned());
    }
    if let Some(entry) = &def.entry_node_id
        && !compiled.index_of(entry).is_some_and(|i| roots.contains(&i))
    {
        return refute("the entry node is not a root".to_owned());
    }
    // Kahn: every node is reached once all its parents are, so the graph is acyclic.
    let mut remaining: Vec<usize> = nodes.iter().map(|n| n.parents.len()).collect();
    let mut ready = roots;
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &c in &nodes[i].children {
            remaining[c] -= 1;
            if remaining[c] == 0 {
                ready.push(c);
            }
        }
    }
    if done != nodes.len() {
        return refute(format!(
            "{} of {} nodes reachable in topological order",
            done,
            nodes.len()
        ));
    }
    Ok(())
}

/// Equal JSON, floats to the bit: the workspace enables serde_json's `float_roundtrip`, so a
/// float saved and loaded again is the same `f64`.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.to_bits() == y.to_bits(),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_json(vx, vy))
        }
        _ => a == b,
    }
}

// ================================================================ cases and expectations

/// One generated case: the JSON text, how it was made, and what registration must answer.
#[derive(Clone)]
struct Case {
    steps: Vec<String>,
    text: String,
    expect: Expect,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Case {{")?;
        for s in &self.steps {
            writeln!(f, "  step: {s}")?;
        }
        writeln!(f, "  expect: {:?}", self.expect)?;
        writeln!(
            f,
            "  text ({} bytes): {}",
            self.text.len(),
            short(&self.text, 3_000)
        )?;
        write!(f, "}}")
    }
}

/// At most `max` bytes of `s` (on a char boundary), marking the cut.
fn short(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

#[derive(Debug, Clone)]
enum Expect {
    /// A valid definition: it must compile.
    Compiles,
    /// Known problems: the definition must be rejected with (at least) these errors.
    Rejected(Vec<Want>),
    /// Not a definition: the parser must refuse it.
    ParseError,
    /// Garbage: any answer but a panic or a hang, and structured errors if rejected.
    Any,
}

impl Expect {
    fn summary(&self) -> &'static str {
        match self {
            Self::Compiles => "the definition to compile",
            Self::Rejected(_) => "a rejection",
            Self::ParseError => "a parse error",
            Self::Any => "anything",
        }
    }
}

/// An error a case must be rejected with. Nodes are positions in `nodes`, resolved against the
/// parsed definition.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    EmptyWorkflowId,
    NoNodes,
    EmptyNodeId(usize),
    DuplicateNodeId(usize),
    UnknownReference {
        node: usize,
        reference: String,
    },
    EdgeMismatch {
        node: usize,
        other: usize,
    },
    RepeatedReference {
        node: usize,
        reference: usize,
    },
    /// A cycle through all of these nodes.
    Cycle(Vec<usize>),
    NoRoot,
    UnknownEntry,
    EntryNotRoot(usize),
    UnknownNodeType(usize),
    InvalidConfig {
        node: usize,
        field: String,
    },
    MissingConfig {
        node: usize,
        field: String,
    },
    InvalidTrigger {
        index: usize,
        field: &'static str,
    },
}

impl Want {
    fn found_in(&self, def: &WorkflowDefinition, errors: &ValidationErrors) -> bool {
        let id = |i: usize| {
            def.nodes
                .get(i)
                .map_or("\u{0}<no such node>", |n| n.id.as_str())
        };
        errors.iter().any(|e| match (self, e) {
            (Self::EmptyWorkflowId, ValidationError::EmptyWorkflowId)
            | (Self::NoNodes, ValidationError::NoNodes)
            | (Self::NoRoot, ValidationError::NoRoot)
            | (Self::UnknownEntry, ValidationError::UnknownEntry { .. }) => true,
            (Self::EmptyNodeId(i), ValidationError::EmptyNodeId { index }) => i == index,
            (Self::DuplicateNodeId(i), ValidationError::DuplicateNodeId { node }) => node == id(*i),
            (
                Self::UnknownReference { node, reference },
                ValidationError::UnknownReference {
                    node: n,
                    reference: r,
                    ..
                },
            ) => n == id(*node) && r == reference,
            (
                Self::EdgeMismatch { node, other },
                ValidationError::EdgeMismatch {
                    node: n, other: o, ..
                },
            ) => n == id(*node) && o == id(*other),
            (
                Self::RepeatedReference { node, reference },
                ValidationError::RepeatedReference {
                    node: n,
                    reference: r,
                    ..
                },
            ) => n == id(*node) && r == id(*reference),
            (Self::Cycle(through), ValidationError::Cycle { path }) => {
                through.iter().all(|&i| path.iter().any(|p| p == id(i)))
            }
            (Self::EntryNotRoot(i), ValidationError::EntryNotRoot { entry, .. }) => entry == id(*i),
            (Self::UnknownNodeType(i), ValidationError::UnknownNodeType { node, .. }) => {
                node == id(*i)
            }
            (
                Self::InvalidConfig { node, field },
                ValidationError::InvalidConfig {
                    node: n, field: f, ..
                },
            )
            | (
                Self::MissingConfig { node, field },
                ValidationError::MissingConfig {
                    node: n, field: f, ..
                },
            ) => n == id(*node) && f == field,
            (
                Self::InvalidTrigger { index, field },
                ValidationError::InvalidTrigger {
                    index: i, field: f, ..
                },
            ) => i == index && f == field,
            _ => false,
        })
    }

    fn describe(&self, def: &WorkflowDefinition) -> String {
        let id = |i: &usize| short(&format!("{:?}", def.nodes.get(*i).map(|n| &n.id)), 60);
        match self {
            Self::EmptyNodeId(i) | Self::DuplicateNodeId(i) | Self::EntryNotRoot(i) => {
                format!("{self:?} for {}", id(i))
            }
            Self::UnknownNodeType(i) => format!("{self:?} for {}", id(i)),
            Self::InvalidConfig { node, field } | Self::MissingConfig { node, field } => {
                format!("{self:?}, node {}, field {field}", id(node))
            }
            Self::UnknownReference { node, reference } => format!(
                "UnknownReference from {} to {:?}",
                id(node),
                short(reference, 40)
            ),
            Self::Cycle(through) => format!(
                "a cycle through {:?}",
                through.iter().map(id).collect::<Vec<_>>()
            ),
            other => format!("{other:?}"),
        }
    }

    /// The kind, for the coverage report.
    fn kind(&self) -> &'static str {
        match self {
            Self::EmptyWorkflowId => "EmptyWorkflowId",
            Self::NoNodes => "NoNodes",
            Self::EmptyNodeId(_) => "EmptyNodeId",
            Self::DuplicateNodeId(_) => "DuplicateNodeId",
            Self::UnknownReference { .. } => "UnknownReference",
            Self::EdgeMismatch { .. } => "EdgeMismatch",
            Self::RepeatedReference { .. } => "RepeatedReference",
            Self::Cycle(_) => "Cycle",
            Self::NoRoot => "NoRoot",
            Self::UnknownEntry => "UnknownEntry",
            Self::EntryNotRoot(_) => "EntryNotRoot",
            Self::UnknownNodeType(_) => "UnknownNodeType",
            Self::InvalidConfig { .. } => "InvalidConfig",
            Self::MissingConfig { .. } => "MissingConfig",
            Self::InvalidTrigger { .. } => "InvalidTrigger",
        }
    }
}

// ================================================================ statistics

#[derive(Default)]
struct Stats {
    cases: u32,
    compiled: u32,
    rejected: u32,
    unparsed: u32,
    /// Cases whose expectation was exact (not garbage), by expectation.
    expected: BTreeMap<&'static str, u32>,
    /// Wanted errors checked, by kind.
    wants: BTreeMap<&'static str, u32>,
    biggest_text: usize,
    most_nodes: usize,
    slowest: Duration,
    registering: Duration,
    checking: Duration,
}

impl Stats {
    fn record(&mut self, case: &Case, outcome: &Outcome, took: Duration, checked: Duration) {
        self.cases += 1;
        self.registering += took;
        self.checking += checked;
        match outcome {
            Outcome::Unparsed(_) => self.unparsed += 1,
            Outcome::Rejected(def, _) => {
                self.rejected += 1;
                self.most_nodes = self.most_nodes.max(def.nodes.len());
            }
            Outcome::Compiled(def, ..) => {
                self.compiled += 1;
                self.most_nodes = self.most_nodes.max(def.nodes.len());
            }
        }
        *self.expected.entry(case.expect.summary()).or_default() += 1;
        if let Expect::Rejected(wants) = &case.expect {
            for w in wants {
                *self.wants.entry(w.kind()).or_default() += 1;
            }
        }
        self.biggest_text = self.biggest_text.max(case.text.len());
        self.slowest = self.slowest.max(took);
    }

    /// The generator is not degenerate: every class of outcome and every kind of error the
    /// generator targets showed up.
    fn assert_coverage(&self) {
        let tenth = self.cases / 10;
        assert!(
            self.compiled >= tenth && self.rejected >= tenth && self.unparsed >= tenth / 2,
            "too few of some outcome: {self}"
        );
        for kind in [
            "EmptyWorkflowId",
            "NoNodes",
            "EmptyNodeId",
            "DuplicateNodeId",
            "UnknownReference",
            "EdgeMismatch",
            "RepeatedReference",
            "Cycle",
            "UnknownEntry",
            "EntryNotRoot",
            "UnknownNodeType",
            "InvalidConfig",
            "MissingConfig",
            "InvalidTrigger",
        ] {
            assert!(
                self.wants.contains_key(kind),
                "no case wanted {kind}: {self}"
            );
        }
        assert!(self.most_nodes >= 1_000, "no huge definition: {self}");
        assert!(self.biggest_text >= MIB, "no 1 MiB text: {self}");
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "outcomes: {} compiled, {} rejected, {} not parsed",
            self.compiled, self.rejected, self.unparsed
        )?;
        writeln!(f, "expected: {:?}", self.expected)?;
        writeln!(f, "wanted errors checked: {:?}", self.wants)?;
        write!(
            f,
            "largest: {} nodes, {} bytes of JSON; slowest case {:.2?}; {:.2?} registering, {:.2?} checking",
            self.most_nodes, self.biggest_text, self.slowest, self.registering, self.checking
        )
    }
}

// ================================================================ value tables

/// A value for one config field, and whether the engine must accept it.
#[derive(Debug, Clone)]
struct Pick {
    value: Value,
    ok: bool,
}

fn ok(value: Value) -> Pick {
    Pick { value, ok: true }
}

fn bad(value: Value) -> Pick {
    Pick { value, ok: false }
}

/// Values that are neither objects nor arrays of the right kind, out-of-range numbers included.
fn not_objects() -> Vec<Value> {
    vec![
        json!([]),
        json!([1]),
        json!("x"),
        json!(""),
        json!(5),
        json!(-0.0),
        json!(1e300),
        json!(u64::MAX),
        json!(true),
        Value::Null,
    ]
}

/// Milliseconds or a human duration (`timeout`, `backoff.delay`, `duration`, ...); zero (and
/// what rounds to zero) is valid only when `zero_ok`.
fn duration_picks(zero_ok: bool) -> Vec<Pick> {
    let zero = |value| Pick { value, ok: zero_ok };
    vec![
        ok(json!(1)),
        ok(json!(250)),
        ok(json!(1.5)),
        ok(json!(60_000)),
        ok(json!(MAX_MS)),
        ok(json!("90s")),
        ok(json!("250ms")),
        ok(json!("1.5h")),
        ok(json!(" 5 m ")),
        ok(json!("2 mins")),
        ok(json!("365d")),
        zero(json!(0)),
        zero(json!(-0.0)),
        zero(json!("0ms")),
        zero(json!(1e-300)),
        bad(json!(-1)),
        bad(json!(-0.5)),
        bad(json!(-1e300)),
        bad(json!(1e300)),
        bad(json!(f64::MAX)),
        bad(json!(u64::MAX)),
        bad(json!(i64::MIN)),
        bad(json!(MAX_MS + 1)),
        bad(json!("366d")),
        bad(json!("99999999999999999999999d")),
        bad(json!(format!("{}ms", "9".repeat(400)))),
        bad(json!("1e300")),
        bad(json!("")),
        bad(json!("   ")),
        bad(json!("soon")),
        bad(json!("-5s")),
        bad(json!("5 weeks")),
        bad(json!("NaN")),
        bad(json!("inf")),
        bad(json!("1..5s")),
        bad(json!("\u{663}s")),
        bad(json!("5s5")),
        bad(json!(true)),
        bad(Value::Null),
        bad(json!([])),
        bad(json!({})),
        bad(json!([5])),
        bad(json!({"ms": 5})),
    ]
}

/// `durationSeconds` (`unit_ms` 1000) or `durationMinutes` (60000): plain numbers.
fn scaled_picks(unit_ms: u64) -> Vec<Pick> {
    let max = MAX_MS / unit_ms;
    vec![
        ok(json!(0)),
        ok(json!(-0.0)),
        ok(json!(1)),
        ok(json!(0.5)),
        ok(json!(max)),
        bad(json!(max + 1)),
        bad(json!(-1)),
        bad(json!(-1e-300)),
        bad(json!(1e300)),
        bad(json!(f64::MAX)),
        bad(json!(u64::MAX)),
        bad(json!(i64::MIN)),
        bad(json!("90")),
        bad(json!("90s")),
        bad(Value::Null),
        bad(json!(true)),
        bad(json!([])),
        bad(json!({})),
    ]
}

/// `maxAttempts`, `failureThreshold`, `successThreshold`.
fn count_picks() -> Vec<Pick> {
    vec![
        ok(json!(1)),
        ok(json!(3)),
        ok(json!(10)),
        ok(json!(u32::MAX)),
        bad(json!(0)),
        bad(json!(-1)),
        bad(json!(-0.0)),
        bad(json!(1.5)),
        bad(json!(1e300)),
        bad(json!(u64::MAX)),
        bad(json!(u64::from(u32::MAX) + 1)),
        bad(json!(i64::MIN)),
        bad(json!("3")),
        bad(Value::Null),
        bad(json!(true)),
        bad(json!([])),
        bad(json!({})),
    ]
}

fn jitter_picks() -> Vec<Pick> {
    vec![
        ok(json!(0)),
        ok(json!(-0.0)),
        ok(json!(0.25)),
        ok(json!(1)),
        ok(json!(1e-300)),
        bad(json!(-0.1)),
        bad(json!(-1e-300)),
        bad(json!(1.000_000_1)),
        bad(json!(2)),
        bad(json!(1e300)),
        bad(json!(u64::MAX)),
        bad(json!("0.5")),
        bad(Value::Null),
        bad(json!(true)),
        bad(json!([])),
    ]
}

fn bool_picks() -> Vec<Pick> {
    vec![
        ok(json!(true)),
        ok(json!(false)),
        bad(json!("true")),
        bad(json!(1)),
        bad(json!(0)),
        bad(Value::Null),
        bad(json!([])),
        bad(json!({})),
    ]
}

fn backoff_type_picks() -> Vec<Pick> {
    vec![
        ok(json!("fixed")),
        ok(json!("exponential")),
        bad(json!("linear")),
        bad(json!("")),
        bad(json!("Fixed")),
        bad(json!("exponential ")),
        bad(json!(5)),
        bad(Value::Null),
        bad(json!([])),
    ]
}

fn workflow_id_picks() -> Vec<Pick> {
    vec![
        ok(json!("child")),
        ok(json!("\u{fc}n\u{ef}-\u{1F600}")),
        ok(json!("\u{200B}")),
        ok(json!("c".repeat(10_000))),
        bad(json!("")),
        bad(json!("  ")),
        bad(json!("\u{3000}")),
        bad(json!("\n\t")),
        bad(json!(5)),
        bad(Value::Null),
        bad(json!([])),
        bad(json!({})),
        bad(json!(true)),
    ]
}

fn mapping_value_picks() -> Vec<Pick> {
    vec![
        ok(json!("src")),
        ok(json!("")),
        ok(json!("\u{fc}\u{1F600}")),
        bad(json!(5)),
        bad(Value::Null),
        bad(json!([])),
        bad(json!({})),
        bad(json!(true)),
        bad(json!(1e300)),
    ]
}

const MAPPING_KEYS: [&str; 5] = ["k", "", "\u{fc}\u{1F600}", "a.b", "\u{0}"];

const CRON_OK: [&str; 7] = [
    "*/5 * * * *",
    "0 9 * * 1-5",
    "0 0 * * * *",
    "0 0 1 1 *",
    "30 2 * * MON",
    "0 */2 * * *",
    "0 0 12 * * MON-FRI",
];

const CRON_BAD: [&str; 11] = [
    "",
    "   ",
    "61 * * * *",
    "* * * *",
    "not a cron",
    "0 25 * * *",
    "* * 32 * *",
    "* * * 13 *",
    "99999999999999999999 * * * *",
    "* * * * * * * *",
    "\u{1F600} * * * *",
];

fn cron_picks() -> Vec<Pick> {
    CRON_OK
        .iter()
        .map(|c| ok(json!(c)))
        .chain(CRON_BAD.iter().map(|c| bad(json!(c))))
        .collect()
}

fn timezone_picks() -> Vec<Pick> {
    vec![
        ok(json!("UTC")),
        ok(json!("Europe/Paris")),
        ok(json!("America/New_York")),
        ok(json!("Asia/Kolkata")),
        bad(json!("")),
        bad(json!("Mars/Olympus")),
        bad(json!("Europe/Pariss")),
        bad(json!("../../etc/passwd")),
        bad(json!("UTC\u{0}")),
        bad(json!("x".repeat(10_000))),
    ]
}

fn path_picks() -> Vec<Pick> {
    vec![
        ok(json!("user-signup")),
        ok(json!("a/b/c")),
        ok(json!("\u{fc}n\u{ef}/\u{1F600}")),
        ok(json!("%20")),
        ok(json!("p".repeat(10_000))),
        bad(json!("")),
        bad(json!(" ")),
        bad(json!("a b")),
        bad(json!("a\tb")),
        bad(json!("line\nbreak")),
        bad(json!("x\u{3000}y")),
        bad(json!("\u{A0}")),
        bad(json!("\u{2028}")),
    ]
}

fn method_picks() -> Vec<Pick> {
    vec![
        ok(json!("GET")),
        ok(json!("post")),
        ok(json!("Patch")),
        ok(json!("options")),
        ok(json!("DELETE")),
        ok(json!("head")),
        bad(json!("FETCH")),
        bad(json!("")),
        bad(json!("GET ")),
        bad(json!("\u{FF27}\u{FF25}\u{FF34}")),
        bad(json!("get\u{0}")),
        bad(json!("CONNECT")),
        bad(json!("M".repeat(10_000))),
    ]
}

/// Ids that are not blank, for renaming nodes: invisible, combining, bidi, control, astral...
const ODD_IDS: [&str; 15] = [
    "\u{200B}",
    "\u{FEFF}",
    "e\u{301}",
    "\u{202E}evil",
    "\u{1F600}",
    "\u{0}",
    "\u{1F}",
    "a\"b\\c",
    "<script>",
    "\u{1D518}\u{1D52B}\u{1D526}",
    "a -> b",
    "\u{FFFD}",
    "A\u{308}",
    "\u{10FFFF}",
    "\u{C4}",
];

/// Ids that are blank once trimmed: each is refused as empty.
const BLANK_IDS: [&str; 8] = [
    "", " ", "\t\n", "\u{3000}", "\u{A0}", "\u{2028}", "\u{205F}", "\u{85}",
];

/// References that name no node (base ids are `n<number>`, renamed ones come from `ODD_IDS`).
const GHOSTS: [&str; 7] = ["ghost", "", " ", "N0", "n0 ", "\u{0}ghost", "ghost-\u{fc}"];

/// Types no executor is registered for.
const UNKNOWN_TYPES: [&str; 8] = [
    "nope",
    "",
    "Delay",
    "DELAY",
    "sub_workflow",
    "delay ",
    "t\u{0}",
    "\u{FF54}",
];

/// Keys the engine does not read, for executor-specific config.
const EXTRA_KEYS: [&str; 7] = [
    "url",
    "headers",
    "",
    "\u{fc}n\u{ef}\u{1F600}",
    "retrypolicy",
    "RetryPolicy",
    "timeout ",
];

/// Keys the engine reads, at any level, for garbage configs.
const ENGINE_KEYS: [&str; 19] = [
    "retryPolicy",
    "circuitBreaker",
    "timeout",
    "continueOnFail",
    "maxAttempts",
    "backoff",
    "type",
    "delay",
    "maxDelay",
    "jitter",
    "failureThreshold",
    "successThreshold",
    "duration",
    "durationSeconds",
    "durationMinutes",
    "workflowId",
    "inputMapping",
    "outputMapping",
    "x",
];

// ================================================================ config generation

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Only values the engine accepts.
    Valid,
    /// Any value, refused ones included.
    Hostile,
}

/// A problem a config must be refused for.
#[derive(Debug, Clone, PartialEq)]
struct FieldWant {
    field: String,
    missing: bool,
}

impl FieldWant {
    fn invalid(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            missing: false,
        }
    }

    fn missing(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            missing: true,
        }
    }
}

/// Some members of a config object, with the problems they must be refused for.
#[derive(Debug, Clone, Default)]
struct Part {
    entries: Vec<(String, Value)>,
    wants: Vec<FieldWant>,
}

impl Part {
    fn merge(parts: impl IntoIterator<Item = Part>) -> Part {
        let mut out = Part::default();
        for p in parts {
            out.entries.extend(p.entries);
            out.wants.extend(p.wants);
        }
        out
    }

    fn object(self) -> Value {
        Value::Object(self.entries.into_iter().collect())
    }
}

fn choose(picks: Vec<Pick>, mode: Mode) -> BoxedStrategy<Pick> {
    let (good, worse): (Vec<Pick>, Vec<Pick>) = picks.into_iter().partition(|p| p.ok);
    match mode {
        Mode::Valid => select(good).boxed(),
        Mode::Hostile => prop_oneof![1 => select(good), 2 => select(worse)].boxed(),
    }
}

/// `key: value` at `path`, the value from `picks`.
fn leaf(
    key: &'static str,
    path: &'static str,
    picks: Vec<Pick>,
    mode: Mode,
) -> BoxedStrategy<Part> {
    choose(picks, mode)
        .prop_map(move |p| Part {
            entries: vec![(key.to_owned(), p.value)],
            wants: if p.ok {
                Vec::new()
            } else {
                vec![FieldWant::invalid(path)]
            },
        })
        .boxed()
}

/// `key: {…}` at `path` with some of `fields`; in hostile mode sometimes not an object.
fn object(
    key: &'static str,
    path: &'static str,
    fields: Vec<BoxedStrategy<Part>>,
    mode: Mode,
) -> BoxedStrategy<Part> {
    let members: Vec<_> = fields
        .into_iter()
        .map(|f| option::weighted(0.5, f))
        .collect();
    let obj = members
        .prop_map(move |parts| {
            let inner = Part::merge(parts.into_iter().flatten());
            let wants = inner.wants.clone();
            Part {
                entries: vec![(key.to_owned(), inner.object())],
                wants,
            }
        })
        .boxed();
    match mode {
        Mode::Valid => obj,
        Mode::Hostile => prop_oneof![
            5 => obj,
            1 => select(not_objects()).prop_map(move |v| Part {
                entries: vec![(key.to_owned(), v)],
                wants: vec![FieldWant::invalid(path)],
            }),
        ]
        .boxed(),
    }
}

/// What any node may configure: retry policy, circuit breaker, timeout, continueOnFail, and an
/// executor-specific key.
fn common_fields(mode: Mode) -> Vec<BoxedStrategy<Part>> {
    vec![
        object(
            "retryPolicy",
            "config.retryPolicy",
            vec![
                leaf(
                    "maxAttempts",
                    "config.retryPolicy.maxAttempts",
                    count_picks(),
                    mode,
                ),
                leaf(
                    "continueOnFail",
                    "config.retryPolicy.continueOnFail",
                    bool_picks(),
                    mode,
                ),
                object(
                    "backoff",
                    "config.retryPolicy.backoff",
                    vec![
                        leaf(
                            "type",
                            "config.retryPolicy.backoff.type",
                            backoff_type_picks(),
                            mode,
                        ),
                        leaf(
                            "delay",
                            "config.retryPolicy.backoff.delay",
                            duration_picks(true),
                            mode,
                        ),
                        leaf(
                            "maxDelay",
                            "config.retryPolicy.backoff.maxDelay",
                            duration_picks(true),
                            mode,
                        ),
                        leaf(
                            "jitter",
                            "config.retryPolicy.backoff.jitter",
                            jitter_picks(),
                            mode,
                        ),
                    ],
                    mode,
                ),
            ],
            mode,
        ),
        object(
            "circuitBreaker",
            "config.circuitBreaker",
            vec![
                leaf(
                    "failureThreshold",
                    "config.circuitBreaker.failureThreshold",
                    count_picks(),
                    mode,
                ),
                leaf(
                    "successThreshold",
                    "config.circuitBreaker.successThreshold",
                    count_picks(),
                    mode,
                ),
                leaf(
                    "timeout",
                    "config.circuitBreaker.timeout",
                    duration_picks(false),
                    mode,
                ),
            ],
            mode,
        ),
        leaf("timeout", "config.timeout", duration_picks(false), mode),
        leaf(
            "continueOnFail",
            "config.continueOnFail",
            bool_picks(),
            mode,
        ),
        (
            select(EXTRA_KEYS.to_vec()),
            prop_oneof![3 => hostile_json(), 1 => nested_value()],
        )
            .prop_map(|(k, v)| Part {
                entries: vec![(k.to_owned(), v)],
                wants: Vec::new(),
            })
            .boxed(),
    ]
}

/// The duration of a delay node: `duration` (ms or text), `durationSeconds`, `durationMinutes`,
/// `duration` next to an ignored `durationSeconds` (duration takes precedence), or none.
fn delay_part(mode: Mode) -> BoxedStrategy<Part> {
    let ms = leaf("duration", "config.duration", duration_picks(true), mode);
    let secs = leaf(
        "durationSeconds",
        "config.durationSeconds",
        scaled_picks(1_000),
        mode,
    );
    let mins = leaf(
        "durationMinutes",
        "config.durationMinutes",
        scaled_picks(60_000),
        mode,
    );
    let shadowed = (
        leaf(
            "duration",
            "config.duration",
            duration_picks(true),
            Mode::Valid,
        ),
        select(scaled_picks(1_000)),
    )
        .prop_map(|(mut p, ignored)| {
            p.entries
                .push(("durationSeconds".to_owned(), ignored.value));
            p
        });
    match mode {
        Mode::Valid => prop_oneof![ms, secs, mins, shadowed].boxed(),
        Mode::Hostile => prop_oneof![
            3 => ms,
            2 => secs,
            2 => mins,
            1 => shadowed,
            1 => Just(Part {
                entries: Vec::new(),
                wants: vec![FieldWant::missing("config.duration")],
            }),
        ]
        .boxed(),
    }
}

/// `inputMapping` / `outputMapping`: `{target: source}` with string sources.
fn mapping(key: &'static str, path: &'static str, mode: Mode) -> BoxedStrategy<Part> {
    let entries = vec(
        (
            select(MAPPING_KEYS.to_vec()),
            choose(mapping_value_picks(), mode),
        ),
        0..4,
    )
    .prop_map(move |pairs| {
        // Later keys replace earlier ones, as in a JSON object.
        let mut map: BTreeMap<&str, Pick> = BTreeMap::new();
        for (k, p) in pairs {
            map.insert(k, p);
        }
        let wants = map
            .iter()
            .filter(|(_, p)| !p.ok)
            .map(|(k, _)| FieldWant::invalid(&format!("{path}.{k}")))
            .collect();
        let object = map
            .into_iter()
            .map(|(k, p)| (k.to_owned(), p.value))
            .collect::<Map<_, _>>();
        Part {
            entries: vec![(key.to_owned(), Value::Object(object))],
            wants,
        }
    })
    .boxed();
    match mode {
        Mode::Valid => entries,
        Mode::Hostile => prop_oneof![
            4 => entries,
            1 => select(not_objects()).prop_map(move |v| Part {
                entries: vec![(key.to_owned(), v)],
                wants: vec![FieldWant::invalid(path)],
            }),
        ]
        .boxed(),
    }
}

/// A sub-workflow node's `workflowId` and mappings. The mappings are only checked once the
/// workflow id is usable.
fn sub_workflow_part(mode: Mode) -> BoxedStrategy<Part> {
    let id = match mode {
        Mode::Valid => choose(workflow_id_picks(), mode).prop_map(Some).boxed(),
        Mode::Hostile => option::weighted(0.85, choose(workflow_id_picks(), mode)).boxed(),
    };
    (
        id,
        option::of(mapping("inputMapping", "config.inputMapping", mode)),
        option::of(mapping("outputMapping", "config.outputMapping", mode)),
    )
        .prop_map(|(id, input, output)| {
            let mappings = Part::merge(input.into_iter().chain(output));
            let mut entries = mappings.entries;
            let wants = match id {
                None => vec![FieldWant::missing("config.workflowId")],
                Some(p) => {
                    let usable = p.ok;
                    entries.push(("workflowId".to_owned(), p.value));
                    if usable {
                        mappings.wants
                    } else {
                        vec![FieldWant::invalid("config.workflowId")]
                    }
                }
            };
            Part { entries, wants }
        })
        .boxed()
}

/// The config of a node of type `node_type`.
#[derive(Debug, Clone)]
struct NodeConfig {
    /// `None`: no `config` key.
    value: Option<Value>,
    wants: Vec<FieldWant>,
    /// Garbage: no exact expectation.
    any: bool,
}

fn config_for(node_type: &'static str, mode: Mode) -> BoxedStrategy<NodeConfig> {
    let specific = match node_type {
        "delay" => Some(delay_part(mode)),
        "sub-workflow" => Some(sub_workflow_part(mode)),
        _ => None,
    };
    let common: Vec<_> = common_fields(mode)
        .into_iter()
        .map(|f| option::weighted(0.3, f))
        .collect();
    let object = (
        common,
        specific.map_or_else(|| Just(None).boxed(), |s| s.prop_map(Some).boxed()),
    )
        .prop_map(|(common, specific)| {
            let part = Part::merge(common.into_iter().flatten().chain(specific));
            let wants = part.wants.clone();
            NodeConfig {
                value: Some(part.object()),
                wants,
                any: false,
            }
        })
        .boxed();
    let absent_wants = match node_type {
        "delay" => vec![FieldWant::missing("config.duration")],
        "sub-workflow" => vec![FieldWant::missing("config.workflowId")],
        _ => Vec::new(),
    };
    let absent =
        prop_oneof![Just(None), Just(Some(Value::Null))].prop_map(move |value| NodeConfig {
            value,
            wants: absent_wants.clone(),
            any: false,
        });
    match (mode, node_type) {
        (Mode::Valid, "delay" | "sub-workflow") => object,
        (Mode::Valid, _) => prop_oneof![6 => object, 1 => absent].boxed(),
        (Mode::Hostile, _) => prop_oneof![
            24 => object,
            2 => absent,
            2 => select(not_objects())
                .prop_filter("null is no config", |v| !v.is_null())
                .prop_map(|v| NodeConfig {
                    value: Some(v),
                    wants: vec![FieldWant::invalid("config")],
                    any: false,
                }),
            1 => garbage_config().prop_map(|v| NodeConfig {
                value: Some(v),
                wants: Vec::new(),
                any: true,
            }),
        ]
        .boxed(),
    }
}

// ================================================================ arbitrary JSON

/// Numbers and strings that break naive code.
fn hostile_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        select(vec![
            json!(1e300),
            json!(-1e300),
            json!(f64::MAX),
            json!(f64::MIN_POSITIVE),
            json!(1e-300),
            json!(-0.0),
            json!(-1),
            json!(0),
            json!(0.5),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(u64::from(u32::MAX) + 1),
            json!("99999999999999999999999d"),
            json!("1e300"),
            json!("365d"),
            json!("366d"),
            json!("90s"),
            json!("-0"),
            json!(""),
            json!("\u{0}"),
            json!("\u{202E}"),
            json!("\u{FEFF}"),
            json!("fixed"),
            json!("exponential"),
            Value::Null,
            json!(true),
            json!(false),
        ]),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "\\PC{0,12}".prop_map(Value::String),
        "[0-9.]{1,30}(ms|s|m|h|d| d|x)?".prop_map(Value::String),
    ]
    .boxed()
}

/// Arbitrary JSON whose object keys are often ones the engine reads.
fn hostile_json() -> BoxedStrategy<Value> {
    hostile_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec(
                    (
                        prop_oneof![3 => select(ENGINE_KEYS.to_vec()).prop_map(str::to_owned), 1 => "\\PC{0,6}"],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A config object whose engine keys hold arbitrary JSON.
fn garbage_config() -> BoxedStrategy<Value> {
    vec((select(ENGINE_KEYS.to_vec()), hostile_json()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
        .boxed()
}

/// Arrays or objects nested up to 100 deep: within serde_json's recursion limit (128, the
/// config itself sits 4 deep), so the definition still parses.
fn nested_value() -> BoxedStrategy<Value> {
    (1usize..=100, any::<bool>())
        .prop_map(|(depth, arrays)| {
            let mut v = json!(0);
            for _ in 0..depth {
                v = if arrays {
                    Value::Array(vec![v])
                } else {
                    json!({ "a": v })
                };
            }
            v
        })
        .boxed()
}

// ================================================================ graphs

/// A reference in `inputs` / `outputs`: a node by position (its id is written when rendering),
/// or a raw id.
#[derive(Debug, Clone, PartialEq)]
enum Ref {
    Node(usize),
    Raw(String),
}

#[derive(Debug, Clone)]
struct NodeSpec {
    id: String,
    node_type: String,
    config: NodeConfig,
    inputs: Vec<Ref>,
    outputs: Vec<Ref>,
}

impl NodeSpec {
    fn new(i: usize, node_type: &str, config: NodeConfig) -> Self {
        Self {
            id: format!("n{i}"),
            node_type: node_type.to_owned(),
            config,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Shape {
    label: String,
    nodes: Vec<NodeSpec>,
    /// Problems the shape has by itself.
    wants: Vec<Want>,
}

impl Shape {
    fn edge(&mut self, a: usize, b: usize) {
        self.nodes[a].outputs.push(Ref::Node(b));
        self.nodes[b].inputs.push(Ref::Node(a));
    }
}

/// Up to 8 nodes of any type, edges from lower to higher positions.
fn small_shape(mode: Mode) -> BoxedStrategy<Shape> {
    let node = select(KNOWN.to_vec())
        .prop_flat_map(move |t| config_for(t, mode).prop_map(move |c| (t, c)))
        .boxed();
    (1usize..=8)
        .prop_flat_map(move |n| (vec(node.clone(), n), vec((0..n, 0..n), 0..=2 * n)))
        .prop_map(|(nodes, pairs)| {
            let mut shape = Shape {
                label: format!("small DAG of {} nodes", nodes.len()),
                nodes: nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (t, c))| NodeSpec::new(i, t, c))
                    .collect(),
                wants: Vec::new(),
            };
            let mut edges: Vec<(usize, usize)> = pairs
                .into_iter()
                .filter(|(a, b)| a != b)
                .map(|(a, b)| (a.min(b), a.max(b)))
                .collect();
            edges.sort_unstable();
            edges.dedup();
            for (a, b) in edges {
                shape.edge(a, b);
            }
            shape
        })
        .boxed()
}

/// Thousands of nodes: one root with many children, many parents of one node, a long chain,
/// or a chain whose every node also leads back to the first (many cycles, no root).
fn huge_shape() -> BoxedStrategy<Shape> {
    let plain = || NodeConfig {
        value: Some(json!({"retryPolicy": {"maxAttempts": 2}})),
        wants: Vec::new(),
        any: false,
    };
    (0u8..4, 1_000usize..=4_000)
        .prop_map(move |(kind, k)| {
            let mut shape = Shape {
                label: String::new(),
                nodes: (0..k).map(|i| NodeSpec::new(i, "t", plain())).collect(),
                wants: Vec::new(),
            };
            match kind {
                0 => {
                    shape.label = format!("fan-out: 1 root, {} children", k - 1);
                    for c in 1..k {
                        shape.edge(0, c);
                    }
                }
                1 => {
                    shape.label = format!("fan-in: {} roots, 1 child", k - 1);
                    for p in 0..k - 1 {
                        shape.edge(p, k - 1);
                    }
                }
                2 => {
                    shape.label = format!("chain of {k}");
                    for i in 1..k {
                        shape.edge(i - 1, i);
                    }
                }
                _ => {
                    shape.label = format!("chain of {k}, each node back to the first");
                    for i in 1..k {
                        shape.edge(i - 1, i);
                        shape.edge(i, 0);
                    }
                    // Every cycle goes through the first node.
                    shape.wants = vec![Want::Cycle(vec![0]), Want::NoRoot];
                }
            }
            shape
        })
        .boxed()
}

// ================================================================ mutations

#[derive(Debug, Clone)]
enum IdChoice {
    Odd(&'static str),
    /// An id of this many bytes.
    Huge(usize),
}

/// One change to the graph; a case has at most one, so that what it must be refused for is
/// exactly known.
#[derive(Debug, Clone)]
enum Structural {
    SelfLoop(Index),
    /// From a node back to one of its ancestors, `Index` steps up.
    BackEdge(Index, Index),
    Duplicate(Index),
    BlankId(Index, &'static str),
    UnknownRef(Index, bool, &'static str),
    /// Thousands of unknown references from one node.
    ManyUnknownRefs(Index, usize),
    /// Drop one side of an edge.
    OneSided(Index, bool),
    Repeated(Index),
    EntryRoot(Index),
    EntryNotRoot(Index),
    EntryUnknown(&'static str),
    NoNodes,
}

fn structural() -> BoxedStrategy<Structural> {
    let graph = prop_oneof![
        any::<Index>().prop_map(Structural::SelfLoop),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Structural::BackEdge(a, b)),
        any::<Index>().prop_map(Structural::Duplicate),
        (any::<Index>(), select(BLANK_IDS.to_vec())).prop_map(|(i, b)| Structural::BlankId(i, b)),
        (any::<Index>(), any::<bool>(), select(GHOSTS.to_vec()))
            .prop_map(|(i, inputs, g)| Structural::UnknownRef(i, inputs, g)),
        (any::<Index>(), any::<bool>()).prop_map(|(e, side)| Structural::OneSided(e, side)),
        any::<Index>().prop_map(Structural::Repeated),
    ];
    let entry = prop_oneof![
        any::<Index>().prop_map(Structural::EntryRoot),
        any::<Index>().prop_map(Structural::EntryNotRoot),
        select(GHOSTS.to_vec()).prop_map(Structural::EntryUnknown),
    ];
    prop_oneof![
        14 => graph,
        6 => entry,
        1 => (any::<Index>(), 1_000usize..=5_000)
            .prop_map(|(i, k)| Structural::ManyUnknownRefs(i, k)),
        1 => Just(Structural::NoNodes),
    ]
    .boxed()
}

/// Replacing a typed field with a value of the wrong JSON type, or removing a required one.
#[derive(Debug, Clone)]
struct SerdeMut {
    at: Index,
    wrong: Index,
    remove: bool,
}

/// Damage done to the JSON text itself.
#[derive(Debug, Clone)]
enum TextMut {
    Truncate(Index),
    Bom,
    Trailing(&'static str),
    LoneSurrogate,
    RawControl,
    DuplicateId,
    BigNumber(&'static str),
    /// Nesting beyond the recursion limit, in the first node's config.
    Deep {
        depth: usize,
        arrays: bool,
    },
}

fn text_mut() -> BoxedStrategy<TextMut> {
    prop_oneof![
        any::<Index>().prop_map(TextMut::Truncate),
        Just(TextMut::Bom),
        select(vec!["x", "}", "{}", ",", "\u{0}"]).prop_map(TextMut::Trailing),
        Just(TextMut::LoneSurrogate),
        Just(TextMut::RawControl),
        Just(TextMut::DuplicateId),
        select(vec!["1e400", "-1e400", "1e99999"]).prop_map(TextMut::BigNumber),
        (200usize..=100_000, any::<bool>())
            .prop_map(|(depth, arrays)| TextMut::Deep { depth, arrays }),
    ]
    .boxed()
}

/// A trigger and the fields it must be refused for (`any`: a fuzzed cron, no exact
/// expectation).
#[derive(Debug, Clone)]
struct TriggerPart {
    value: Value,
    wants: Vec<&'static str>,
    any: bool,
}

fn trigger(mode: Mode) -> BoxedStrategy<TriggerPart> {
    let field = |p: &Pick, name: &'static str| (!p.ok).then_some(name);
    let webhook = (
        choose(path_picks(), mode),
        option::of(choose(method_picks(), mode)),
    )
        .prop_map(move |(path, method)| {
            let mut config = json!({ "path": path.value });
            let mut wants: Vec<_> = field(&path, "config.path").into_iter().collect();
            if let Some(m) = method {
                wants.extend(field(&m, "config.method"));
                config["method"] = m.value;
            }
            TriggerPart {
                value: json!({"type": "webhook", "config": config}),
                wants,
                any: false,
            }
        });
    let fuzzed_cron = prop_oneof![
        "[0-9*/,LW#?A-Z -]{0,40}",
        "([0-9]{1,3}[-/,]?){1,12}( [0-9*/,-]{1,8}){4,5}",
        Just(format!("{} * * * *", "1,".repeat(20_000) + "1")),
        Just(format!("{} * * * *", "0-59/1,".repeat(5_000) + "0")),
    ]
    .prop_map(|c| (json!(c), None));
    // `(cron, Some(refused))` from the tables, `(cron, None)` when fuzzed.
    let cron = match mode {
        Mode::Valid => choose(cron_picks(), mode)
            .prop_map(|p| (p.value, Some(false)))
            .boxed(),
        Mode::Hostile => prop_oneof![
            7 => choose(cron_picks(), mode).prop_map(|p| (p.value, Some(!p.ok))),
            1 => fuzzed_cron,
        ]
        .boxed(),
    };
    let schedule = (cron, option::of(choose(timezone_picks(), mode))).prop_map(
        move |((cron, refused), tz)| {
            let mut config = json!({ "cron": cron });
            let mut wants = Vec::new();
            if refused == Some(true) {
                wants.push("config.cron");
            }
            let any = refused.is_none();
            if let Some(t) = tz {
                wants.extend(field(&t, "config.timezone"));
                config["timezone"] = t.value;
            }
            TriggerPart {
                value: json!({"type": "schedule", "config": config}),
                wants,
                any,
            }
        },
    );
    prop_oneof![webhook, schedule].boxed()
}

/// Everything that makes one case from a shape.
#[derive(Debug, Clone)]
struct Spec {
    shape: Shape,
    workflow_id: (String, bool),
    name: String,
    renames: Vec<(Index, IdChoice)>,
    retypes: Vec<(Index, &'static str)>,
    structural: Option<Structural>,
    triggers: Vec<TriggerPart>,
    serde: Option<SerdeMut>,
    text: Option<TextMut>,
}

fn workflow_id(mode: Mode) -> BoxedStrategy<(String, bool)> {
    let good = prop_oneof![
        60 => select(vec!["wf", "\u{fc}n\u{ef}-\u{1F600}", "\u{200B}", "a -> b", "\u{0}"])
            .prop_map(|s| (s.to_owned(), false)),
        1 => Just(("w".repeat(MIB), false)),
    ];
    match mode {
        Mode::Valid => good.boxed(),
        Mode::Hostile => prop_oneof![
            6 => good,
            1 => select(BLANK_IDS.to_vec()).prop_map(|s| (s.to_owned(), true)),
        ]
        .boxed(),
    }
}

fn name() -> BoxedStrategy<String> {
    prop_oneof![
        60 => select(vec!["", "Name", "\u{fc}n\u{ef}", "\u{202E}", "\u{0}", "a\"b"]).prop_map(str::to_owned),
        1 => Just("N".repeat(MIB)),
    ]
    .boxed()
}

fn id_choice() -> BoxedStrategy<IdChoice> {
    prop_oneof![
        40 => select(ODD_IDS.to_vec()).prop_map(IdChoice::Odd),
        1 => prop_oneof![Just(MIB), 1_000usize..100_000].prop_map(IdChoice::Huge),
    ]
    .boxed()
}

fn spec(shape: BoxedStrategy<Shape>, mode: Mode) -> BoxedStrategy<Spec> {
    let hostile = mode == Mode::Hostile;
    (
        shape,
        workflow_id(mode),
        name(),
        vec((any::<Index>(), id_choice()), 0..=2),
        if hostile {
            vec((any::<Index>(), select(UNKNOWN_TYPES.to_vec())), 0..=1).boxed()
        } else {
            Just(Vec::new()).boxed()
        },
        if hostile {
            option::weighted(0.7, structural()).boxed()
        } else {
            Just(None).boxed()
        },
        vec(trigger(mode), 0..=2),
        if hostile {
            option::weighted(
                0.15,
                (any::<Index>(), any::<Index>(), prop::bool::weighted(0.3))
                    .prop_map(|(at, wrong, remove)| SerdeMut { at, wrong, remove }),
            )
            .boxed()
        } else {
            Just(None).boxed()
        },
        if hostile {
            option::weighted(0.1, text_mut()).boxed()
        } else {
            Just(None).boxed()
        },
    )
        .prop_map(
            |(shape, workflow_id, name, renames, retypes, structural, triggers, serde, text)| {
                Spec {
                    shape,
                    workflow_id,
                    name,
                    renames,
                    retypes,
                    structural,
                    triggers,
                    serde,
                    text,
                }
            },
        )
        .boxed()
}

/// The whole generator.
fn case_strategy() -> BoxedStrategy<Case> {
    prop_oneof![
        25 => spec(small_shape(Mode::Valid), Mode::Valid).prop_map(build),
        45 => spec(small_shape(Mode::Hostile), Mode::Hostile).prop_map(build),
        1 => spec(huge_shape(), Mode::Valid).prop_map(build),
        2 => spec(huge_shape(), Mode::Hostile).prop_map(build),
        14 => skeleton_garbage(),
        7 => hostile_json().prop_map(|doc| Case {
            steps: vec!["arbitrary JSON document".to_owned()],
            text: doc.to_string(),
            expect: Expect::Any,
        }),
        4 => text_garbage(),
    ]
    .boxed()
}

// ================================================================ building a case

fn build(spec: Spec) -> Case {
    let Spec {
        mut shape,
        workflow_id,
        name,
        renames,
        retypes,
        structural,
        triggers,
        serde,
        text,
    } = spec;
    let mut steps = vec![shape.label.clone()];
    // The problems of a cyclic base shape are only known while its graph is untouched.
    let base_wants = std::mem::take(&mut shape.wants);
    let cyclic = !base_wants.is_empty();
    let mut wants = if structural.is_some() {
        Vec::new()
    } else {
        base_wants
    };
    let mut any = false;

    // Renames keep ids unique and non-blank.
    for (at, choice) in renames {
        let i = at.index(shape.nodes.len());
        let mut id = match choice {
            IdChoice::Odd(s) => s.to_owned(),
            IdChoice::Huge(len) => "x".repeat(len),
        };
        if shape.nodes.iter().any(|n| n.id == id) {
            id.push_str(&format!("#{i}"));
        }
        steps.push(format!("rename node #{i} to {:?}", short(&id, 20)));
        shape.nodes[i].id = id;
    }
    for (at, t) in retypes {
        let i = at.index(shape.nodes.len());
        if REGISTERED.contains(&shape.nodes[i].node_type.as_str()) {
            steps.push(format!("node #{i}: type {t:?}"));
            shape.nodes[i].node_type = t.to_owned();
        }
    }
    let mut entry: Option<Ref> = None;
    if let Some(s) = structural {
        steps.push(apply_structural(
            &mut shape, s, cyclic, &mut wants, &mut entry,
        ));
    }

    for (i, node) in shape.nodes.iter().enumerate() {
        if !KNOWN.contains(&node.node_type.as_str()) {
            wants.push(Want::UnknownNodeType(i));
        }
        any |= node.config.any;
        for w in &node.config.wants {
            wants.push(if w.missing {
                Want::MissingConfig {
                    node: i,
                    field: w.field.clone(),
                }
            } else {
                Want::InvalidConfig {
                    node: i,
                    field: w.field.clone(),
                }
            });
        }
    }
    if workflow_id.1 {
        wants.push(Want::EmptyWorkflowId);
        steps.push(format!("workflow id {:?}", workflow_id.0));
    }
    for (index, t) in triggers.iter().enumerate() {
        any |= t.any;
        wants.extend(
            t.wants
                .iter()
                .map(|&field| Want::InvalidTrigger { index, field }),
        );
    }

    // Render.
    let ids: Vec<String> = shape.nodes.iter().map(|n| n.id.clone()).collect();
    let render = |r: &Ref| match r {
        Ref::Node(j) => Value::String(ids[*j].clone()),
        Ref::Raw(s) => Value::String(s.clone()),
    };
    let nodes: Vec<Value> = shape
        .nodes
        .iter()
        .map(|n| {
            let mut o = Map::new();
            o.insert("id".to_owned(), json!(n.id));
            o.insert("type".to_owned(), json!(n.node_type));
            if let Some(c) = &n.config.value {
                o.insert("config".to_owned(), c.clone());
            }
            o.insert(
                "inputs".to_owned(),
                Value::Array(n.inputs.iter().map(render).collect()),
            );
            o.insert(
                "outputs".to_owned(),
                Value::Array(n.outputs.iter().map(render).collect()),
            );
            Value::Object(o)
        })
        .collect();
    let mut doc = json!({
        "id": workflow_id.0,
        "name": name,
        "nodes": nodes,
    });
    if let Some(e) = &entry {
        doc["entryNodeId"] = render(e);
    }
    if !triggers.is_empty() {
        doc["triggers"] = Value::Array(triggers.into_iter().map(|t| t.value).collect());
    }

    let mut parse_error = false;
    if let Some(m) = serde {
        steps.push(apply_serde(&mut doc, &m));
        parse_error = true;
    }
    let mut deep = None;
    if let Some(TextMut::Deep { depth, arrays }) = &text {
        // A marker in the first node's config (or at the top), replaced in the text.
        let marker = json!("@@deep@@");
        match doc.pointer_mut("/nodes/0/config") {
            Some(Value::Object(c)) => {
                c.insert("deep".to_owned(), marker);
            }
            _ => doc["deep"] = marker,
        }
        deep = Some(if *arrays {
            format!("{}0{}", "[".repeat(*depth), "]".repeat(*depth))
        } else {
            format!("{}0{}", "{\"a\":".repeat(*depth), "}".repeat(*depth))
        });
    }
    let mut text_out = doc.to_string();
    if let Some(m) = text {
        steps.push(format!("text: {m:?}"));
        text_out = apply_text(text_out, &m, deep.as_deref());
        parse_error = true;
    }

    let expect = if parse_error {
        Expect::ParseError
    } else if any {
        Expect::Any
    } else if wants.is_empty() {
        Expect::Compiles
    } else {
        Expect::Rejected(wants)
    };
    Case {
        steps,
        text: text_out,
        expect,
    }
}

fn node_refs(shape: &Shape, i: usize) -> Vec<usize> {
    shape.nodes[i]
        .inputs
        .iter()
        .filter_map(|r| match r {
            Ref::Node(p) => Some(*p),
            Ref::Raw(_) => None,
        })
        .collect()
}

/// Applies one structural mutation; returns its description.
fn apply_structural(
    shape: &mut Shape,
    s: Structural,
    cyclic: bool,
    wants: &mut Vec<Want>,
    entry: &mut Option<Ref>,
) -> String {
    let n = shape.nodes.len();
    // Edges as written on both sides: `(from, to)`.
    let edges: Vec<(usize, usize)> = (0..n)
        .flat_map(|a| {
            shape.nodes[a]
                .outputs
                .iter()
                .filter_map(move |r| match r {
                    Ref::Node(b) => Some((a, *b)),
                    Ref::Raw(_) => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    match s {
        Structural::SelfLoop(at) => {
            let i = at.index(n);
            shape.edge(i, i);
            // A cyclic base may have more cycles than are reported.
            wants.push(Want::Cycle(if cyclic { Vec::new() } else { vec![i] }));
            format!("self-loop on #{i}")
        }
        Structural::BackEdge(at, up) => {
            let with_parents: Vec<usize> = (0..n)
                .filter(|&i| !node_refs(shape, i).is_empty())
                .collect();
            let Some(&b) = with_parents.get(at.index(with_parents.len().max(1))) else {
                return apply_structural(shape, Structural::SelfLoop(at), cyclic, wants, entry);
            };
            // Up the first parents, a few steps.
            let mut a = node_refs(shape, b)[0];
            for _ in 0..up.index(50) {
                match node_refs(shape, a).first() {
                    Some(&p) => a = p,
                    None => break,
                }
            }
            shape.edge(b, a);
            // In an acyclic graph every cycle now goes through the new edge.
            wants.push(Want::Cycle(if cyclic { Vec::new() } else { vec![a, b] }));
            format!("back edge #{b} -> #{a}")
        }
        Structural::Duplicate(at) => {
            let i = at.index(n);
            let id = shape.nodes[i].id.clone();
            shape.nodes.push(NodeSpec {
                id,
                node_type: "t".to_owned(),
                config: NodeConfig {
                    value: None,
                    wants: Vec::new(),
                    any: false,
                },
                inputs: Vec::new(),
                outputs: Vec::new(),
            });
            wants.push(Want::DuplicateNodeId(i));
            format!("duplicate the id of #{i}")
        }
        Structural::BlankId(at, blank) => {
            let i = at.index(n);
            shape.nodes[i].id = blank.to_owned();
            wants.push(Want::EmptyNodeId(i));
            format!("node #{i}: id {blank:?}")
        }
        Structural::UnknownRef(at, inputs, ghost) => {
            let i = at.index(n);
            let list = if inputs {
                &mut shape.nodes[i].inputs
            } else {
                &mut shape.nodes[i].outputs
            };
            list.push(Ref::Raw(ghost.to_owned()));
            wants.push(Want::UnknownReference {
                node: i,
                reference: ghost.to_owned(),
            });
            format!(
                "node #{i}: {} lists unknown {ghost:?}",
                if inputs { "inputs" } else { "outputs" }
            )
        }
        Structural::ManyUnknownRefs(at, k) => {
            let i = at.index(n);
            shape.nodes[i]
                .outputs
                .extend((0..k).map(|j| Ref::Raw(format!("ghost-{j}"))));
            wants.push(Want::UnknownReference {
                node: i,
                reference: "ghost-0".to_owned(),
            });
            format!("node #{i}: {k} unknown outputs")
        }
        Structural::OneSided(at, drop_input) => {
            let Some(&(a, b)) = edges.get(at.index(edges.len().max(1))) else {
                return apply_structural(
                    shape,
                    Structural::UnknownRef(at, false, "ghost"),
                    cyclic,
                    wants,
                    entry,
                );
            };
            if drop_input {
                shape.nodes[b].inputs.retain(|r| *r != Ref::Node(a));
                wants.push(Want::EdgeMismatch { node: a, other: b });
            } else {
                shape.nodes[a].outputs.retain(|r| *r != Ref::Node(b));
                wants.push(Want::EdgeMismatch { node: b, other: a });
            }
            format!("edge #{a} -> #{b} written on one side only")
        }
        Structural::Repeated(at) => {
            let Some(&(a, b)) = edges.get(at.index(edges.len().max(1))) else {
                return apply_structural(
                    shape,
                    Structural::UnknownRef(at, true, "ghost"),
                    cyclic,
                    wants,
                    entry,
                );
            };
            shape.nodes[a].outputs.push(Ref::Node(b));
            wants.push(Want::RepeatedReference {
                node: a,
                reference: b,
            });
            format!("node #{a} lists #{b} twice")
        }
        Structural::EntryRoot(at) => {
            let roots: Vec<usize> = (0..n)
                .filter(|&i| shape.nodes[i].inputs.is_empty())
                .collect();
            if roots.is_empty() {
                return apply_structural(
                    shape,
                    Structural::EntryUnknown("ghost"),
                    cyclic,
                    wants,
                    entry,
                );
            }
            let i = roots[at.index(roots.len())];
            *entry = Some(Ref::Node(i));
            format!("entry: root #{i}")
        }
        Structural::EntryNotRoot(at) => {
            let inner: Vec<usize> = (0..n)
                .filter(|&i| !shape.nodes[i].inputs.is_empty())
                .collect();
            if inner.is_empty() {
                return apply_structural(
                    shape,
                    Structural::EntryUnknown("ghost"),
                    cyclic,
                    wants,
                    entry,
                );
            }
            let i = inner[at.index(inner.len())];
            *entry = Some(Ref::Node(i));
            wants.push(Want::EntryNotRoot(i));
            format!("entry: #{i}, which has inputs")
        }
        Structural::EntryUnknown(ghost) => {
            *entry = Some(Ref::Raw(ghost.to_owned()));
            wants.push(Want::UnknownEntry);
            format!("entry: unknown {ghost:?}")
        }
        Structural::NoNodes => {
            shape.nodes.clear();
            wants.retain(|w| matches!(w, Want::EmptyWorkflowId));
            wants.push(Want::NoNodes);
            "no nodes".to_owned()
        }
    }
}

/// JSON kinds a typed field of the definition accepts.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Str,
    StrOrNull,
    List,
    ListOrNull,
    Tag,
    Object,
}

fn wrong_values(slot: Slot) -> Vec<Value> {
    let mut v = vec![
        json!(true),
        json!(5),
        json!(-0.0),
        json!(1e300),
        json!(u64::MAX),
    ];
    match slot {
        Slot::Str => v.extend([Value::Null, json!([]), json!({}), json!(["x"])]),
        Slot::StrOrNull => v.extend([json!([]), json!({})]),
        Slot::List => v.extend([
            Value::Null,
            json!("n0"),
            json!({}),
            json!([5]),
            json!([null]),
            json!([["n0"]]),
        ]),
        Slot::ListOrNull => v.extend([json!("x"), json!({}), json!([5]), json!([{}])]),
        Slot::Tag => v.extend([
            Value::Null,
            json!("cron"),
            json!(""),
            json!("Webhook"),
            json!({}),
        ]),
        Slot::Object => v.extend([Value::Null, json!("x")]),
    }
    v
}

/// Puts a value of the wrong type in a typed field, or removes a required one.
fn apply_serde(doc: &mut Value, m: &SerdeMut) -> String {
    // (pointer, accepted kinds, required)
    let mut slots: Vec<(String, Slot, bool)> = vec![
        ("/id".to_owned(), Slot::Str, true),
        ("/name".to_owned(), Slot::Str, false),
        ("/nodes".to_owned(), Slot::List, true),
    ];
    if doc.get("entryNodeId").is_some() {
        slots.push(("/entryNodeId".to_owned(), Slot::StrOrNull, false));
    }
    let nodes = doc["nodes"].as_array().map_or(0, Vec::len);
    for i in 0..nodes.min(8) {
        slots.push((format!("/nodes/{i}/id"), Slot::Str, true));
        slots.push((format!("/nodes/{i}/type"), Slot::Str, true));
        slots.push((format!("/nodes/{i}/inputs"), Slot::List, false));
        slots.push((format!("/nodes/{i}/outputs"), Slot::List, false));
    }
    if let Some(triggers) = doc.get("triggers").and_then(Value::as_array) {
        slots.push(("/triggers".to_owned(), Slot::ListOrNull, false));
        for (i, t) in triggers.iter().enumerate() {
            slots.push((format!("/triggers/{i}/type"), Slot::Tag, true));
            slots.push((format!("/triggers/{i}/config"), Slot::Object, true));
            for (key, slot, required) in [
                ("path", Slot::Str, true),
                ("cron", Slot::Str, true),
                ("method", Slot::StrOrNull, false),
                ("timezone", Slot::StrOrNull, false),
            ] {
                if t["config"].get(key).is_some() {
                    slots.push((format!("/triggers/{i}/config/{key}"), slot, required));
                }
            }
        }
    }
    let required: Vec<&(String, Slot, bool)> = slots.iter().filter(|s| s.2).collect();
    if m.remove {
        let (pointer, ..) = required[m.at.index(required.len())];
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        if let Some(Value::Object(o)) = doc.pointer_mut(parent) {
            o.remove(key);
        }
        return format!("remove required {pointer}");
    }
    let (pointer, slot, _) = &slots[m.at.index(slots.len())];
    let wrong = wrong_values(*slot);
    let value = wrong[m.wrong.index(wrong.len())].clone();
    let description = format!("{pointer} = {value}");
    if let Some(target) = doc.pointer_mut(pointer) {
        *target = value;
    }
    description
}

/// Adds `member` as the first member of the top-level object.
fn prepend_member(text: &str, member: &str) -> String {
    let rest = text.strip_prefix('{').unwrap_or(text);
    if rest.starts_with('}') {
        format!("{{{member}{rest}")
    } else {
        format!("{{{member},{rest}")
    }
}

fn apply_text(text: String, m: &TextMut, deep: Option<&str>) -> String {
    match m {
        TextMut::Truncate(at) => {
            let mut end = at.index(text.len().max(1));
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        }
        TextMut::Bom => format!("\u{FEFF}{text}"),
        TextMut::Trailing(t) => format!("{text}{t}"),
        TextMut::LoneSurrogate => prepend_member(&text, r#""x":"\ud800""#),
        TextMut::RawControl => prepend_member(&text, "\"x\":\"a\u{0}b\""),
        TextMut::DuplicateId => prepend_member(&text, r#""id":"first""#),
        TextMut::BigNumber(n) => prepend_member(&text, &format!("\"x\":{n}")),
        TextMut::Deep { .. } => text.replacen("\"@@deep@@\"", deep.unwrap_or("0"), 1),
    }
}

// ================================================================ garbage

/// Definition-shaped documents with arbitrary values: ids from a small pool (so that they
/// collide and reference each other), arbitrary configs and triggers.
fn skeleton_garbage() -> BoxedStrategy<Case> {
    let pool = || select(vec!["a", "b", "c", "a ", "", " ", "\u{200B}", "\u{0}"]);
    let id = prop_oneof![6 => pool().prop_map(|s| json!(s)), 1 => hostile_leaf()];
    let node = (
        id,
        select(vec!["t", "http", "delay", "sub-workflow", "nope", ""]),
        option::weighted(0.8, prop_oneof![3 => garbage_config(), 1 => hostile_json()]),
        vec(pool(), 0..4),
        vec(pool(), 0..4),
    )
        .prop_map(|(id, t, config, inputs, outputs)| {
            let mut n = json!({"id": id, "type": t, "inputs": inputs, "outputs": outputs});
            if let Some(c) = config {
                n["config"] = c;
            }
            n
        });
    let trigger = (
        select(vec!["webhook", "schedule", "cron"]),
        option::of(prop_oneof![
            "\\PC{0,20}".prop_map(Value::String),
            hostile_leaf()
        ]),
        option::of(prop_oneof![
            "[0-9*/,LW#?A-Z -]{0,40}".prop_map(Value::String),
            hostile_leaf()
        ]),
        option::of(prop_oneof![
            select(vec!["UTC", "Europe/Paris", "", "Nowhere"]).prop_map(|s| json!(s)),
            hostile_leaf()
        ]),
        option::of(hostile_leaf()),
    )
        .prop_map(|(t, path, cron, timezone, method)| {
            let mut config = Map::new();
            for (k, v) in [
                ("path", path),
                ("cron", cron),
                ("timezone", timezone),
                ("method", method),
            ] {
                if let Some(v) = v {
                    config.insert(k.to_owned(), v);
                }
            }
            json!({"type": t, "config": config})
        });
    (
        prop_oneof![5 => Just(json!("wf")), 1 => hostile_leaf()],
        vec(node, 0..8),
        option::of(pool()),
        option::of(vec(trigger, 0..3)),
    )
        .prop_map(|(id, nodes, entry, triggers)| {
            let mut doc = json!({"id": id, "nodes": nodes});
            if let Some(e) = entry {
                doc["entryNodeId"] = json!(e);
            }
            if let Some(t) = triggers {
                doc["triggers"] = Value::Array(t);
            }
            Case {
                steps: vec!["definition-shaped garbage".to_owned()],
                text: doc.to_string(),
                expect: Expect::Any,
            }
        })
        .boxed()
}

/// Text that is rarely JSON: arbitrary characters, and soup of JSON tokens.
fn text_garbage() -> BoxedStrategy<Case> {
    let tokens = vec(
        select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"id\"",
            "\"nodes\"",
            "\"type\"",
            "\"config\"",
            "\"inputs\"",
            "\"x\"",
            "1e300",
            "-0",
            "18446744073709551616",
            "null",
            "true",
            "\"\\ud800\"",
            "\"\\u0000\"",
            " ",
        ]),
        0..60,
    )
    .prop_map(|t| t.concat());
    prop_oneof!["\\PC{0,200}", ".{0,200}", tokens]
        .prop_map(|text| Case {
            steps: vec!["arbitrary text".to_owned()],
            text,
            expect: Expect::Any,
        })
        .boxed()
}
