//! The driver: runs one plan on both backends and on the model in lockstep, one call at a time,
//! and compares every answer, every job handed out and every event as it goes, then the final
//! records and dead letters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::Client;
use serde_json::{Value, json};
use spane_core::{
    CompiledWorkflow, EngineEvent, ExecutionId, ExecutionRecord, ExecutionStatus, NodeIndex,
};
use spane_queue::backend::{CommitOutcome, NodeCommit, StartExecution};

use crate::backend::{Side, node_index};
use crate::oracle::{
    AfterExpiry, ControlAnswer, JobView, MAX_STALLED, Model, NodeView, RecordView,
};
use crate::plan::{Action, Outcome, Plan, commit_of, describe, node_id, stale_data};

/// The lease of both backends: short, so that stalls are quick to provoke; the driver renews
/// the jobs it holds every quarter of it.
pub(crate) const LEASE: Duration = Duration::from_millis(300);
/// A bound on the steps of one case (plans always end well before).
const MAX_STEPS: usize = 5_000;

/// What the cases exercised, summed over a run (printed at the end, to show the coverage).
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) cases: u64,
    pub(crate) nodes: u64,
    pub(crate) steps: u64,
    pub(crate) claimed: u64,
    pub(crate) joins_claimed: u64,
    pub(crate) commits: BTreeMap<&'static str, u64>,
    /// Commits made while the execution was paused, failed or cancelled, by kind.
    pub(crate) commits_not_running: BTreeMap<String, u64>,
    /// Jobs a claim held because the execution did not run.
    pub(crate) held_at_claim: u64,
    /// Lease expiries, by what became of the job.
    pub(crate) expiries: BTreeMap<&'static str, u64>,
    pub(crate) controls: BTreeMap<String, u64>,
    pub(crate) dead_letter_retries: BTreeMap<bool, u64>,
    pub(crate) ends: BTreeMap<String, u64>,
}

impl Stats {
    /// Adds the statistics of one passed case.
    pub(crate) fn merge(&mut self, other: &Stats) {
        self.cases += other.cases;
        self.nodes += other.nodes;
        self.steps += other.steps;
        self.claimed += other.claimed;
        self.joins_claimed += other.joins_claimed;
        self.held_at_claim += other.held_at_claim;
        for (k, v) in &other.commits {
            *self.commits.entry(k).or_default() += v;
        }
        for (k, v) in &other.commits_not_running {
            *self.commits_not_running.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.expiries {
            *self.expiries.entry(k).or_default() += v;
        }
        for (k, v) in &other.controls {
            *self.controls.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.dead_letter_retries {
            *self.dead_letter_retries.entry(*k).or_default() += v;
        }
        for (k, v) in &other.ends {
            *self.ends.entry(k.clone()).or_default() += v;
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cases, {} nodes, {} steps; {} jobs handed out ({} to joins), {} held by a \
             claim; commits {:?}, of which while not running {:?}; lease expiries {:?}; \
             controls {:?}; dead-letter retries (revived?) {:?}; executions ended {:?}",
            self.cases,
            self.nodes,
            self.steps,
            self.claimed,
            self.joins_claimed,
            self.held_at_claim,
            self.commits,
            self.commits_not_running,
            self.expiries,
            self.controls,
            self.dead_letter_retries,
            self.ends
        )
    }
}

/// Runs `plan`; `Err` describes the first disagreement, with the steps that led to it.
pub(crate) async fn run_case(plan: &Plan, client: &Client) -> Result<Stats, String> {
    let dag = plan.compile()?;
    let execution = ExecutionId::new();
    let initial = json!({ "order": 7 });
    let (model, start_events) = Model::start(dag.clone(), execution, initial.clone());
    let red = Side::redis(client, execution, LEASE, MAX_STALLED).await?;
    let mut run = Run {
        plan,
        claims: vec![0; dag.nodes().len()],
        awaiting: vec![None; dag.nodes().len()],
        dag,
        model,
        mem: Side::memory(execution, LEASE),
        red,
        trace: Vec::new(),
        step: 0,
        stats: Stats {
            cases: 1,
            nodes: plan.nodes.len() as u64,
            ..Stats::default()
        },
    };
    let result = run.go(execution, initial, start_events).await;
    run.red.cleanup().await;
    run.stats.steps = run.step as u64;
    result.map(|()| run.stats.clone()).map_err(|e| {
        format!(
            "{e}\n\nsteps (the model's view):\n{}",
            run.trace
                .iter()
                .map(|(step, s)| format!("  {step:>3}. {s}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

struct Run<'a> {
    plan: &'a Plan,
    dag: Arc<CompiledWorkflow>,
    model: Model,
    mem: Side,
    red: Side,
    /// Claims of each node so far: the plan's outcomes are indexed by them (a sub-workflow
    /// node's await takes one outcome, its child's end the next).
    claims: Vec<usize>,
    /// The child each sub-workflow node waits for.
    awaiting: Vec<Option<ExecutionId>>,
    /// What each step did, by step number.
    trace: Vec<(usize, String)>,
    step: usize,
    stats: Stats,
}

/// The three answers, or a report naming who disagrees.
fn compare<T: PartialEq>(
    what: &str,
    step: usize,
    model: &T,
    memory: &T,
    redis: &T,
    show: impl Fn(&T) -> String,
) -> Result<(), String> {
    if memory == model && redis == model {
        return Ok(());
    }
    let verdict = |v: &T| {
        if v == model {
            "agrees with the model"
        } else {
            "DIFFERS from the model"
        }
    };
    let backends = if memory == redis {
        "the backends agree with each other"
    } else {
        "the backends disagree with each other"
    };
    Err(format!(
        "step {step}: {what}: {backends}\n  model:  {}\n  memory: {}  <- {}\n  redis:  {}  <- {}",
        show(model),
        show(memory),
        verdict(memory),
        show(redis),
        verdict(redis),
    ))
}

fn show_debug<T: Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// One event, compactly (timestamps are removed before comparing).
fn show_event(e: &EngineEvent) -> String {
    match e {
        EngineEvent::Node(n) => {
            let mut s = format!("{} {:?}", n.node_id, n.status).to_lowercase();
            if let Some(a) = n.attempt {
                s.push_str(&format!(" attempt={a}"));
            }
            if let Some(d) = n.next_delay_ms {
                s.push_str(&format!(" next_delay_ms={d}"));
            }
            if let Some(err) = &n.error {
                s.push_str(&format!(" error={err:?}"));
            }
            if n.continued {
                s.push_str(" continued");
            }
            if let Some(data) = &n.data {
                s.push_str(&format!(" data={data}"));
            }
            s
        }
        EngineEvent::Workflow(w) => {
            let mut s = format!("workflow {:?}", w.status).to_lowercase();
            if let Some(err) = &w.error {
                s.push_str(&format!(" error={err:?}"));
            }
            s
        }
        other => format!("{other:?}"),
    }
}

fn show_events(events: &[EngineEvent]) -> String {
    if events.is_empty() {
        return "(none)".to_owned();
    }
    let list: Vec<String> = events.iter().map(show_event).collect();
    format!("[{}]", list.join(", "))
}

fn show_job(j: &JobView) -> String {
    format!(
        "{} attempt={}{} previous={:?} input={}",
        j.node,
        j.attempt,
        if j.delay_elapsed {
            " delay_elapsed"
        } else {
            ""
        },
        j.previous,
        j.input
    )
}

fn show_jobs(jobs: &[JobView]) -> String {
    if jobs.is_empty() {
        return "(none)".to_owned();
    }
    let list: Vec<String> = jobs.iter().map(show_job).collect();
    format!("[{}]", list.join("; "))
}

fn show_after(a: &AfterExpiry) -> String {
    match a {
        AfterExpiry::Reclaimed(j) => format!("handed out again: {}", show_job(j)),
        AfterExpiry::Shown(s) => format!("not handed out, shown as {s:?}"),
    }
}

fn show_record(r: &RecordView) -> String {
    let nodes: Vec<String> = r
        .nodes
        .iter()
        .map(|(id, n)| {
            format!(
                "{id}={}/{}/{}{}",
                n.status,
                n.attempts,
                n.claims,
                if n.continued { "/continued" } else { "" }
            )
        })
        .collect();
    format!(
        "{}{} nodes(status/attempts/claims): {}",
        r.status,
        r.error
            .as_ref()
            .map(|e| format!(" error={e:?}"))
            .unwrap_or_default(),
        nodes.join(" ")
    )
}

fn record_view(r: &ExecutionRecord) -> RecordView {
    RecordView {
        status: r.status,
        error: r.error.clone(),
        nodes: r
            .node_results
            .iter()
            .map(|(id, n)| {
                (
                    id.clone(),
                    NodeView {
                        status: n.status,
                        attempts: n.attempts,
                        claims: n.claims,
                        continued: n.continued,
                    },
                )
            })
            .collect(),
    }
}

/// Events of one claim call come in the order of the queue's ready list, which the semantics
/// leave open (and delayed jobs come due at times of their own): compared in node order.
fn sort_events(events: &mut [EngineEvent]) {
    events.sort_by_key(|e| match e {
        EngineEvent::Node(n) => node_index(&n.node_id),
        _ => usize::MAX,
    });
}

impl Run<'_> {
    fn note(&mut self, what: String) {
        self.trace.push((self.step, what));
    }

    fn id(&self, node: NodeIndex) -> String {
        node_id(node)
    }

    async fn go(
        &mut self,
        execution: ExecutionId,
        initial: Value,
        start_events: Vec<EngineEvent>,
    ) -> Result<(), String> {
        let start = StartExecution::new(execution, self.dag.clone(), 1, initial);
        self.note("start".to_owned());
        self.mem.start(start.clone()).await?;
        self.red.start(start).await?;
        self.check_events("start", start_events, false).await?;

        let mut actions = self.plan.actions.clone().into_iter();
        let mut resumed = false;
        while self.step < MAX_STEPS {
            self.step += 1;
            self.mem.renew_due().await?;
            self.red.renew_due().await?;
            let action = match actions.next() {
                Some(a) => a,
                None if self.model.has_queued() => Action::Claim,
                None if !self.model.in_flight().is_empty() => Action::Commit(0),
                None if self.model.status() == ExecutionStatus::Paused && !resumed => {
                    resumed = true;
                    Action::Resume
                }
                None => return self.finish().await,
            };
            match action {
                Action::Claim => self.claim_all().await?,
                Action::Commit(pick) => {
                    let running = self.model.in_flight();
                    if running.is_empty() {
                        self.claim_all().await?;
                    } else {
                        let node = running[usize::from(pick) % running.len()];
                        self.finish_job(node).await?;
                    }
                }
                Action::Pause => self.control("pause").await?,
                Action::Resume => self.control("resume").await?,
                Action::Cancel => self.control("cancel").await?,
                Action::RetryDeadLetter(pick) => {
                    let dead = self.model.dead_letter_nodes();
                    let node = if dead.is_empty() {
                        usize::from(pick) % self.dag.nodes().len()
                    } else {
                        dead[usize::from(pick) % dead.len()]
                    };
                    self.retry_dead_letter(node).await?;
                }
            }
        }
        Err(format!("the case did not end within {MAX_STEPS} steps"))
    }

    /// Compares the events the backends emitted since the last check with the model's.
    async fn check_events(
        &mut self,
        what: &str,
        mut expected: Vec<EngineEvent>,
        any_order: bool,
    ) -> Result<(), String> {
        let mut memory = self.mem.events().await?;
        let mut redis = self.red.events().await?;
        if any_order {
            sort_events(&mut expected);
            sort_events(&mut memory);
            sort_events(&mut redis);
        }
        compare(
            &format!("events of {what}"),
            self.step,
            &expected,
            &memory,
            &redis,
            |v: &Vec<EngineEvent>| show_events(v),
        )
    }

    /// Both backends hold the jobs the model has running.
    fn check_held(&self) -> Result<(), String> {
        let model = self.model.in_flight();
        compare(
            "claimed jobs held by the driver",
            self.step,
            &model,
            &self.mem.held(),
            &self.red.held(),
            show_debug,
        )
    }

    /// Claims everything ready on both backends.
    async fn claim_all(&mut self) -> Result<(), String> {
        let queued = self.model.queued();
        let phase = self.model.claim_all();
        self.stats.held_at_claim += (queued - phase.claimed.len()) as u64;
        for job in &phase.claimed {
            let node = node_index(&job.node);
            self.claims[node] += 1;
            self.stats.claimed += 1;
            if self.dag.node(node).parents.len() > 1 {
                self.stats.joins_claimed += 1;
            }
        }
        let handed: Vec<&str> = phase.claimed.iter().map(|j| j.node.as_str()).collect();
        self.note(format!(
            "claim everything ready: {handed:?} handed out{}",
            if phase.delayed_holds.is_empty() {
                String::new()
            } else {
                format!(", {:?} held once due", phase.delayed_holds)
            }
        ));
        let expected: BTreeSet<String> = phase.claimed.iter().map(|j| j.node.clone()).collect();
        let (mem, red) = (&mut self.mem, &mut self.red);
        let (m, r) = tokio::join!(
            mem.claim_all(&expected, &phase.delayed_holds),
            red.claim_all(&expected, &phase.delayed_holds)
        );
        compare(
            "jobs handed out by a claim of everything ready",
            self.step,
            &phase.claimed,
            &m?,
            &r?,
            |v: &Vec<JobView>| show_jobs(v),
        )?;
        self.check_events("the claim", phase.events, true).await?;
        self.check_held()
    }

    /// Applies the planned outcome of the running job of `node`.
    async fn finish_job(&mut self, node: NodeIndex) -> Result<(), String> {
        if self.awaiting[node].is_some() {
            return self.child_end(node).await;
        }
        let claim = self.claims[node];
        let outcome = self.plan.outcome(node, claim);
        if outcome == Outcome::AwaitChild {
            return self.await_child(node).await;
        }
        let Some(commit) = commit_of(&self.dag, node, claim, outcome) else {
            return self.stall(node).await;
        };
        self.note(format!(
            "commit {} (claim {claim}, attempt {}): {}",
            self.id(node),
            self.model.attempt(node),
            describe(&commit)
        ));
        let kind = match &commit {
            NodeCommit::Completed {
                next_nodes: None, ..
            } => "completed",
            NodeCommit::Completed { .. } => "routed",
            NodeCommit::Failed {
                continue_on_fail: true,
                ..
            } => "failed-continued",
            NodeCommit::Failed { .. } => "failed",
            NodeCommit::Retry { .. } => "retry",
            NodeCommit::Delay { .. } => "delay",
            _ => "other",
        };
        *self.stats.commits.entry(kind).or_default() += 1;
        let status = self.model.status();
        if status != ExecutionStatus::Running {
            *self
                .stats
                .commits_not_running
                .entry(format!("{kind} ({status})"))
                .or_default() += 1;
        }
        let (expected, events) = self.model.commit(node, &commit);
        let m = self.mem.commit(node, commit.clone()).await?;
        let r = self.red.commit(node, commit).await?;
        compare("commit outcome", self.step, &expected, &m, &r, show_debug)?;
        self.check_events("the commit", events, false).await
    }

    /// The running job of `node` is a sub-workflow node: bind a child (a second bind gives the
    /// same child back) and commit `AwaitChild`.
    async fn await_child(&mut self, node: NodeIndex) -> Result<(), String> {
        let proposed = ExecutionId::new();
        let child = self.model.bind_child(node, proposed);
        let expected = Some(child);
        self.note(format!(
            "bind a child to {} (attempt {}) and await it",
            self.id(node),
            self.model.attempt(node)
        ));
        let m = self.mem.bind(node, proposed).await?;
        let r = self.red.bind(node, proposed).await?;
        compare("the bound child", self.step, &expected, &m, &r, show_debug)?;
        let other = ExecutionId::new();
        let m = self.mem.bind(node, other).await?;
        let r = self.red.bind(node, other).await?;
        compare("a second bind", self.step, &expected, &m, &r, show_debug)?;
        *self.stats.commits.entry("await-child").or_default() += 1;
        let (expected, events) = self.model.await_child(node);
        let m = self.mem.commit_await(node, child).await?;
        let r = self.red.commit_await(node, child).await?;
        compare(
            "commit AwaitChild",
            self.step,
            &expected,
            &m,
            &r,
            show_debug,
        )?;
        self.check_events("the await", events, false).await?;
        self.awaiting[node] = Some(child);
        // The next outcome is what the child's end commits.
        self.claims[node] += 1;
        self.check_held()
    }

    /// The child of `node` ended: its planned outcome is committed for the node through
    /// `awaiting_parent`, as a worker's resumption does.
    async fn child_end(&mut self, node: NodeIndex) -> Result<(), String> {
        let claim = self.claims[node];
        let outcome = match self.plan.outcome(node, claim) {
            Outcome::Stall | Outcome::AwaitChild => Outcome::Complete { routes: None },
            other => other,
        };
        let commit = commit_of(&self.dag, node, claim, outcome)
            .ok_or_else(|| format!("no commit for the child's end of {}", self.id(node)))?;
        self.note(format!(
            "the child of {} ended: commit {} for it (attempt {})",
            self.id(node),
            describe(&commit),
            self.model.attempt(node)
        ));
        *self.stats.commits.entry("child-end").or_default() += 1;
        self.awaiting[node] = None;
        let (expected, events) = self.model.commit(node, &commit);
        let m = self.mem.commit_child_end(node, commit.clone()).await?;
        let r = self.red.commit_child_end(node, commit).await?;
        compare(
            "commit of the child's end",
            self.step,
            &expected,
            &m,
            &r,
            show_debug,
        )?;
        self.check_events("the child's end", events, false).await
    }

    /// Lets the lease of the running job of `node` expire (after claiming everything ready, so
    /// that the waiting claims find nothing else), then checks that its old claim is stale.
    async fn stall(&mut self, node: NodeIndex) -> Result<(), String> {
        self.claim_all().await?;
        self.note(format!(
            "let the lease of {} expire (claim {}, attempt {})",
            self.id(node),
            self.claims[node],
            self.model.attempt(node)
        ));
        let (expected, events) = self.model.lease_expired(node);
        let what = match &expected {
            AfterExpiry::Reclaimed(_) => "handed out again",
            AfterExpiry::Shown(Some(spane_core::NodeStatus::Failed)) => "failed as stalled",
            AfterExpiry::Shown(_) => "held",
        };
        *self.stats.expiries.entry(what).or_default() += 1;
        if let AfterExpiry::Reclaimed(_) = expected {
            self.claims[node] += 1;
        }
        let (mem, red) = (&mut self.mem, &mut self.red);
        let (m, r) = tokio::join!(mem.let_expire(node), red.let_expire(node));
        let ((m, m_old), (r, r_old)) = (m?, r?);
        compare(
            "what became of the job whose lease expired",
            self.step,
            &expected,
            &m,
            &r,
            show_after,
        )?;
        self.check_events("the lease expiry", events, false).await?;
        self.check_held()?;

        let stale = NodeCommit::Completed {
            data: stale_data(),
            next_nodes: None,
        };
        self.note(format!(
            "commit the expired claim of {} (must be stale)",
            self.id(node)
        ));
        let m = self.mem.commit_old(&m_old, stale.clone()).await?;
        let r = self.red.commit_old(&r_old, stale).await?;
        compare(
            "commit of an expired claim",
            self.step,
            &CommitOutcome::Stale,
            &m,
            &r,
            show_debug,
        )?;
        self.check_events("the stale commit", Vec::new(), false)
            .await
    }

    /// `pause`, `resume` or `cancel` on both backends.
    async fn control(&mut self, action: &str) -> Result<(), String> {
        let (expected, events): (ControlAnswer, _) = match action {
            "pause" => self.model.pause(),
            "resume" => self.model.resume(),
            _ => self.model.cancel(),
        };
        self.note(format!("{action} -> {expected:?}"));
        *self
            .stats
            .controls
            .entry(format!(
                "{action}:{}",
                if expected.is_ok() { "ok" } else { "refused" }
            ))
            .or_default() += 1;
        let m = self.mem.control(action).await?;
        let r = self.red.control(action).await?;
        compare(
            &format!("answer to {action} (Err: refused in that status)"),
            self.step,
            &expected,
            &m,
            &r,
            show_debug,
        )?;
        self.check_events(action, events, false).await
    }

    /// `retry_dead_letter` of `node` on both backends.
    async fn retry_dead_letter(&mut self, node: NodeIndex) -> Result<(), String> {
        let (expected, events) = self.model.retry_dead_letter(node);
        let id = self.id(node);
        self.note(format!("retry the dead letter of {id} -> {expected}"));
        *self.stats.dead_letter_retries.entry(expected).or_default() += 1;
        let m = self.mem.retry_dead_letter(&id).await?;
        let r = self.red.retry_dead_letter(&id).await?;
        compare(
            &format!("answer to retry_dead_letter({id})"),
            self.step,
            &expected,
            &m,
            &r,
            show_debug,
        )?;
        self.check_events("the dead-letter retry", events, false)
            .await
    }

    /// Nothing is left to hand out; the records and the dead letters agree.
    async fn finish(&mut self) -> Result<(), String> {
        self.note("end: nothing left to run".to_owned());
        let (mem, red) = (&mut self.mem, &mut self.red);
        let none = BTreeSet::new();
        let (m, r) = tokio::join!(mem.claim_all(&none, &[]), red.claim_all(&none, &[]));
        compare(
            "jobs handed out at the end",
            self.step,
            &Vec::new(),
            &m?,
            &r?,
            |v: &Vec<JobView>| show_jobs(v),
        )?;
        self.check_events("the last claim", Vec::new(), true)
            .await?;
        let expected = self.model.record();
        *self
            .stats
            .ends
            .entry(expected.status.to_string())
            .or_default() += 1;
        let m = record_view(&self.mem.record().await?);
        let r = record_view(&self.red.record().await?);
        compare(
            "final record (status, error, and per node status/attempts/continued)",
            self.step,
            &expected,
            &m,
            &r,
            show_record,
        )?;
        let expected = self.model.dead_letters();
        let m = self.mem.dead_letters().await?;
        let r = self.red.dead_letters().await?;
        compare(
            "dead letters (node, reason)",
            self.step,
            &expected,
            &m,
            &r,
            show_debug,
        )
    }
}
