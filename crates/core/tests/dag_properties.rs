//! Properties over random DAGs: they compile; a back edge is reported as a cycle; the state
//! machine resolves every node exactly once whatever the completion order and routing; a
//! one-sided edge is reported as an edge mismatch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use spane_core::{
    AnyNodeType, CompiledWorkflow, ExecutionState, ExecutionStatus, NodeDefinition, NodeIndex,
    NodeState, ValidationError, WorkflowDefinition, node_input,
};

/// A random DAG over nodes `0..n` (named `n{i}`); edges only go from a lower to a higher index.
#[derive(Debug, Clone)]
struct Graph {
    n: usize,
    /// `(from, to)` with `from < to`, without duplicates.
    edges: Vec<(usize, usize)>,
    /// The order in which the nodes are written in the definition (a permutation of `0..n`).
    order: Vec<usize>,
}

fn name(i: usize) -> String {
    format!("n{i}")
}

impl Graph {
    fn definition(&self) -> WorkflowDefinition {
        let mut nodes: BTreeMap<usize, NodeDefinition> = (0..self.n)
            .map(|i| (i, NodeDefinition::new(name(i), "t")))
            .collect();
        for &(a, b) in &self.edges {
            nodes.get_mut(&a).unwrap().outputs.push(name(b));
            nodes.get_mut(&b).unwrap().inputs.push(name(a));
        }
        let mut w = WorkflowDefinition::new("random", "Random DAG");
        for &i in &self.order {
            w = w.node(nodes[&i].clone());
        }
        w
    }

    fn parents(&self, i: usize) -> BTreeSet<usize> {
        self.edges
            .iter()
            .filter(|&&(_, b)| b == i)
            .map(|&(a, _)| a)
            .collect()
    }

    fn children(&self, i: usize) -> BTreeSet<usize> {
        self.edges
            .iter()
            .filter(|&&(a, _)| a == i)
            .map(|&(_, b)| b)
            .collect()
    }

    /// Every `(u, v)` with `u != v` and `v` reachable from `u`.
    fn reachable_pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for u in 0..self.n {
            let mut seen = vec![false; self.n];
            let mut stack: Vec<usize> = self.children(u).into_iter().collect();
            while let Some(v) = stack.pop() {
                if !seen[v] {
                    seen[v] = true;
                    pairs.push((u, v));
                    stack.extend(self.children(v));
                }
            }
        }
        pairs
    }
}

fn graph(nodes: std::ops::Range<usize>) -> impl Strategy<Value = Graph> {
    (nodes, 0.02f64..0.5)
        .prop_flat_map(|(n, density)| {
            let pairs = n * (n - 1) / 2;
            (
                Just(n),
                proptest::collection::vec(proptest::bool::weighted(density), pairs),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            )
        })
        .prop_map(|(n, bits, order)| {
            let mut edges = Vec::new();
            let mut k = 0;
            for a in 0..n {
                for b in a + 1..n {
                    if bits[k] {
                        edges.push((a, b));
                    }
                    k += 1;
                }
            }
            Graph { n, edges, order }
        })
}

fn graph_with_an_edge() -> impl Strategy<Value = Graph> {
    graph(2..40).prop_filter("needs an edge", |g| !g.edges.is_empty())
}

fn compile(g: &Graph) -> CompiledWorkflow {
    g.definition()
        .compile(&AnyNodeType)
        .unwrap_or_else(|e| panic!("random DAG must compile: {e}"))
}

/// splitmix64: a small deterministic generator for routing choices.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Random DAGs compile, with the graph they were written as.
    #[test]
    fn random_dags_compile(g in graph(1..40)) {
        let dag = compile(&g);
        prop_assert_eq!(dag.nodes().len(), g.n);
        let gen_of = |i: NodeIndex| -> usize { dag.node(i).id[1..].parse().unwrap() };
        for i in 0..g.n {
            let c = dag.index_of(&name(i)).expect("every node is indexed");
            let parents: BTreeSet<usize> = dag.node(c).parents.iter().map(|&p| gen_of(p)).collect();
            let children: BTreeSet<usize> = dag.node(c).children.iter().map(|&p| gen_of(p)).collect();
            prop_assert_eq!(parents, g.parents(i));
            prop_assert_eq!(children, g.children(i));
        }
        let roots: BTreeSet<usize> = dag.roots().iter().map(|&r| gen_of(r)).collect();
        let expected: BTreeSet<usize> = (0..g.n).filter(|&i| g.parents(i).is_empty()).collect();
        prop_assert!(!roots.is_empty());
        prop_assert_eq!(roots, expected);
    }

    /// (b) One back edge along an existing path is reported as a cycle through that edge.
    #[test]
    fn a_back_edge_is_a_cycle(g in graph_with_an_edge(), pick in any::<Index>()) {
        let pairs = g.reachable_pairs();
        let (u, v) = *pick.get(&pairs);
        let mut w = g.definition();
        let pos = |w: &WorkflowDefinition, i: usize| w.nodes.iter().position(|n| n.id == name(i)).unwrap();
        let (pu, pv) = (pos(&w, u), pos(&w, v));
        w.nodes[pv].outputs.push(name(u));
        w.nodes[pu].inputs.push(name(v));

        let errs = w.compile(&AnyNodeType).expect_err("a cycle must be rejected");
        let mut edges: BTreeSet<(String, String)> =
            g.edges.iter().map(|&(a, b)| (name(a), name(b))).collect();
        edges.insert((name(v), name(u)));
        let mut cycles = 0;
        for e in errs.iter() {
            match e {
                ValidationError::Cycle { path } => {
                    cycles += 1;
                    prop_assert!(path.len() >= 3, "u != v, so at least two nodes: {:?}", path);
                    prop_assert_eq!(path.first(), path.last());
                    for step in path.windows(2) {
                        prop_assert!(
                            edges.contains(&(step[0].clone(), step[1].clone())),
                            "{} -> {} is not an edge (path {:?})", step[0], step[1], path
                        );
                    }
                    // The original graph is acyclic: every cycle uses the back edge.
                    prop_assert!(
                        path.windows(2).any(|s| s[0] == name(v) && s[1] == name(u)),
                        "cycle {:?} misses the back edge {} -> {}", path, v, u
                    );
                    // Each node appears once, apart from the repeated first one.
                    let inner: BTreeSet<&String> = path[1..].iter().collect();
                    prop_assert_eq!(inner.len(), path.len() - 1);
                }
                // u may have been the only root.
                ValidationError::NoRoot => {}
                other => prop_assert!(false, "unexpected error {other}"),
            }
        }
        prop_assert!(cycles >= 1, "{}", errs);
    }

    /// (c) Whatever the completion order and routing, every node resolves exactly once, the
    /// execution completes exactly once, and a node is skipped iff no parent fed it.
    #[test]
    fn the_state_machine_resolves_every_node_once(
        g in graph(1..40),
        choices in proptest::collection::vec((any::<Index>(), any::<u64>()), 40),
    ) {
        let dag = compile(&g);
        let n = dag.nodes().len();
        let initial = json!({"initial": true});
        let (mut state, start) = ExecutionState::start(&dag);

        let mut pool: Vec<NodeIndex> = Vec::new();
        let mut ready_count = vec![0usize; n];
        let mut skip_count = vec![0usize; n];
        let mut finishes: Vec<ExecutionStatus> = Vec::new();
        // Model: the parents whose edge into each node is live.
        let mut fed_by: Vec<BTreeSet<NodeIndex>> = vec![BTreeSet::new(); n];
        let mut outputs: HashMap<NodeIndex, Value> = HashMap::new();
        let mut resolved = vec![false; n];

        let mut transitions = vec![start];
        let mut step = 0usize;
        loop {
            for t in transitions.drain(..) {
                for &s in &t.skipped {
                    skip_count[s] += 1;
                    prop_assert_eq!(skip_count[s], 1, "{} skipped twice", dag.node(s).id);
                    prop_assert_eq!(ready_count[s], 0);
                    prop_assert_eq!(state.node(s), &NodeState::Skipped);
                    prop_assert!(!dag.node(s).parents.is_empty(), "a root is never skipped");
                    prop_assert!(fed_by[s].is_empty(), "{} skipped although fed", dag.node(s).id);
                    resolved[s] = true;
                    // Skips are listed before readiness they enable; its children's edges from it are dead: nothing to add to the model.
                }
                for &r in &t.ready {
                    ready_count[r] += 1;
                    prop_assert_eq!(ready_count[r], 1, "{} ready twice", dag.node(r).id);
                    prop_assert_eq!(state.node(r), &NodeState::Ready);
                    for &p in &dag.node(r).parents {
                        prop_assert!(resolved[p], "{} ready before parent {}", dag.node(r).id, dag.node(p).id);
                    }
                    prop_assert!(dag.node(r).parents.is_empty() || !fed_by[r].is_empty());
                    let live: BTreeSet<NodeIndex> = state.live_parents(&dag, r).collect();
                    prop_assert_eq!(&live, &fed_by[r]);
                    // Data passing follows the live parents.
                    let input = node_input(&dag, r, &initial, live.iter().map(|p| (*p, &outputs[p])));
                    match dag.node(r).parents.len() {
                        0 => prop_assert_eq!(&input, &initial),
                        1 => prop_assert_eq!(&input, &outputs[&dag.node(r).parents[0]]),
                        _ => {
                            let keys: BTreeSet<String> = input.as_object().unwrap().keys().cloned().collect();
                            let want: BTreeSet<String> = live.iter().map(|&p| dag.node(p).id.clone()).collect();
                            prop_assert_eq!(keys, want);
                        }
                    }
                    pool.push(r);
                }
                if let Some(f) = t.finished {
                    finishes.push(f);
                }
            }
            // A node that was skipped resolves after its own parents; now check the parents
            // of every skipped node are resolved (the transition lists them in any order).
            for s in (0..n).filter(|&s| skip_count[s] == 1) {
                for &p in &dag.node(s).parents {
                    prop_assert!(resolved[p], "{} skipped before parent {}", dag.node(s).id, dag.node(p).id);
                }
            }
            prop_assert_eq!(finishes.is_empty(), !state.all_resolved());

            if pool.is_empty() {
                break;
            }
            let (pick, seed) = &choices[step % choices.len()];
            step += 1;
            let node = pool.swap_remove(pick.index(pool.len()));
            let children = &dag.node(node).children;
            let routes: Option<Vec<NodeIndex>> = if seed & 3 == 0 {
                None
            } else {
                Some(
                    children
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| mix(seed.wrapping_add(*k as u64)) & 1 == 0)
                        .map(|(_, &c)| c)
                        .collect(),
                )
            };
            let next: Option<Vec<String>> =
                routes.as_ref().map(|r| r.iter().map(|&c| dag.node(c).id.clone()).collect());
            prop_assert_eq!(finishes.len(), 0, "nothing runs after the end");
            let t = state.complete(&dag, node, next.as_deref()).expect("a ready node completes");
            outputs.insert(node, json!(dag.node(node).id.clone()));
            resolved[node] = true;
            for &c in children {
                if routes.as_ref().is_none_or(|r| r.contains(&c)) {
                    fed_by[c].insert(node);
                }
            }
            transitions.push(t);
        }

        prop_assert_eq!(finishes, vec![ExecutionStatus::Completed]);
        prop_assert_eq!(state.status(), ExecutionStatus::Completed);
        prop_assert!(state.all_resolved());
        for i in 0..n {
            prop_assert_eq!(ready_count[i] + skip_count[i], 1, "{} resolved once", dag.node(i).id);
            let is_root = dag.node(i).parents.is_empty();
            match state.node(i) {
                NodeState::Completed { .. } => {
                    prop_assert_eq!(ready_count[i], 1);
                    prop_assert!(is_root || !fed_by[i].is_empty());
                }
                NodeState::Skipped => {
                    prop_assert!(!is_root && fed_by[i].is_empty());
                }
                other => prop_assert!(false, "{} ended {:?}", dag.node(i).id, other),
            }
        }
    }

    /// (d) Deleting one side of an edge is reported as an edge mismatch naming its two ends.
    #[test]
    fn a_one_sided_edge_is_a_mismatch(
        g in graph_with_an_edge(),
        pick in any::<Index>(),
        from_outputs in any::<bool>(),
    ) {
        let (p, c) = *pick.get(&g.edges);
        let mut w = g.definition();
        let (pn, cn) = (name(p), name(c));
        if from_outputs {
            let parent = w.nodes.iter_mut().find(|n| n.id == pn).unwrap();
            parent.outputs.retain(|o| *o != cn);
        } else {
            let child = w.nodes.iter_mut().find(|n| n.id == cn).unwrap();
            child.inputs.retain(|i| *i != pn);
        }
        let errs = w.compile(&AnyNodeType).expect_err("a one-sided edge must be rejected");
        prop_assert_eq!(errs.errors.len(), 1, "{}", errs);
        let e = &errs.errors[0];
        // The node whose list still holds the edge is named; the other end is its counterpart.
        let (holder, other_end) = if from_outputs { (&cn, &pn) } else { (&pn, &cn) };
        let ok = match e {
            ValidationError::EdgeMismatch { node, field, other, counterpart } => {
                node == holder
                    && other == other_end
                    && *field == if from_outputs { "inputs" } else { "outputs" }
                    && *counterpart == if from_outputs { "outputs" } else { "inputs" }
            }
            _ => false,
        };
        prop_assert!(ok, "unexpected error {}", e);
        prop_assert!([pn.as_str(), cn.as_str()].contains(&e.node().unwrap()));
        let text = errs.to_string();
        prop_assert!(text.contains(&format!("\"{pn}\"")) && text.contains(&format!("\"{cn}\"")), "{}", text);
    }
}
