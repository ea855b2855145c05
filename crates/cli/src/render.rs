//! Text output: one line per node, colour by urgency, times relative to now.

use std::fmt::Write;

use spane::core::explain::{Explanation, Reason};
use spane::queue::DeadLetter;
use spane::{ExecutionRecord, ExecutionStatus, Rerun};

/// ANSI colours, or none.
pub(crate) struct Style {
    on: bool,
}

impl Style {
    pub(crate) fn new(on: bool) -> Self {
        Self { on }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    fn cyan(&self, t: &str) -> String {
        self.paint("36", t)
    }
    fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
}

/// `12.3 s ago` / `in 4.0 s`.
fn rel(at: i64, now: i64) -> String {
    let d = (at - now) as f64 / 1000.0;
    if d >= 0.0 {
        format!("in {d:.1} s")
    } else {
        format!("{:.1} s ago", -d)
    }
}

fn status(s: &Style, st: ExecutionStatus) -> String {
    let t = st.to_string();
    match st {
        ExecutionStatus::Completed => s.green(&t),
        ExecutionStatus::Failed | ExecutionStatus::Cancelled => s.red(&t),
        ExecutionStatus::Paused => s.yellow(&t),
        _ => s.cyan(&t),
    }
}

/// The explanation, with a child's explanation indented under its node.
pub(crate) fn explanation(s: &Style, e: &Explanation, now: i64) -> String {
    let mut out = String::new();
    write_explanation(s, e, now, 0, &mut out);
    out
}

fn write_explanation(s: &Style, e: &Explanation, now: i64, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    let _ = writeln!(
        out,
        "{pad}{} {} {} {}",
        s.bold(&e.execution_id.to_string()),
        s.dim(&format!("{} v{}", e.workflow_id, e.workflow_version)),
        status(s, e.status),
        e.rerun_of
            .map(|r| s.dim(&format!("(re-run of {r})")))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "{pad}  {} {}", s.bold("=>"), s.bold(&e.summary));
    for n in &e.nodes {
        let (line, colour) = reason_line(s, &n.reason, now);
        let name = format!("{:<16}", n.node_id);
        let kind = match colour {
            Tone::Bad => s.red(n.reason.kind()),
            Tone::Wait => s.yellow(n.reason.kind()),
            Tone::Fine => s.cyan(n.reason.kind()),
        };
        let _ = writeln!(out, "{pad}  {} {kind:<18} {line}", s.bold(&name));
        if let Reason::WaitingForChild {
            explanation: Some(child),
            ..
        } = &n.reason
        {
            write_explanation(s, child, now, depth + 1, out);
        }
    }
}

enum Tone {
    Bad,
    Wait,
    Fine,
}

fn reason_line(s: &Style, r: &Reason, now: i64) -> (String, Tone) {
    match r {
        Reason::WaitingForParents { parents } => {
            let list: Vec<String> = parents
                .iter()
                .map(|p| match p.status {
                    Some(st) => format!("{} ({st})", p.node_id),
                    None => format!("{} (not started)", p.node_id),
                })
                .collect();
            (format!("waits for {}", list.join(", ")), Tone::Fine)
        }
        Reason::Queued {
            ready_since,
            ahead,
            queue_depth,
            needs_executor,
            live_workers,
            workers_with_executor,
            ..
        } => {
            let mut line = format!(
                "ready {}, {} ahead of it, queue depth {queue_depth}",
                ready_since.map_or("since start".to_owned(), |t| rel(t, now)),
                ahead.map_or("?".to_owned(), |a| a.to_string()),
            );
            let tone = match (needs_executor, live_workers, workers_with_executor) {
                (_, Some(0), _) => {
                    line.push_str(&s.red(", no worker is alive"));
                    Tone::Bad
                }
                (true, _, Some(0)) => {
                    line.push_str(&s.red(", no live worker has an executor for its type"));
                    Tone::Bad
                }
                (_, _, Some(n)) => {
                    let _ = write!(line, ", {n} workers can run it");
                    Tone::Wait
                }
                _ => Tone::Wait,
            };
            (line, tone)
        }
        Reason::Running {
            attempt,
            worker,
            since,
            lease_until,
            worker_alive,
        } => {
            let who = worker.as_deref().unwrap_or("an unreported worker");
            let alive = match worker_alive {
                Some(true) => s.green("alive"),
                Some(false) => s.red("NOT alive"),
                None => "liveness unknown".to_owned(),
            };
            (
                format!(
                    "attempt {attempt} on {who} ({alive}) since {}, lease until {}",
                    since.map_or("?".to_owned(), |t| rel(t, now)),
                    rel(*lease_until, now)
                ),
                if *worker_alive == Some(false) {
                    Tone::Bad
                } else {
                    Tone::Fine
                },
            )
        }
        Reason::LeaseExpired {
            worker,
            lease_until,
            ..
        } => (
            format!(
                "lease of {} expired {}; reclaimed at the next sweep",
                worker.as_deref().unwrap_or("its worker"),
                rel(*lease_until, now)
            ),
            Tone::Bad,
        ),
        Reason::Paused => (
            "held by the pause; resume the execution".to_owned(),
            Tone::Wait,
        ),
        Reason::Held { execution_status } => (
            format!("held: the execution is {execution_status}"),
            Tone::Wait,
        ),
        Reason::Delay { until } => (format!("delay ends {}", rel(*until, now)), Tone::Fine),
        Reason::RateLimited { until } => {
            (format!("rate-limit slot {}", rel(*until, now)), Tone::Wait)
        }
        Reason::CircuitOpen {
            breaker,
            reopens_at,
            ..
        } => (
            format!(
                "circuit breaker {breaker} open, probes {}",
                rel(*reopens_at, now)
            ),
            Tone::Bad,
        ),
        Reason::RetryBackoff {
            attempt,
            error,
            until,
        } => (
            format!(
                "attempt {attempt} failed ({}), retry {}",
                error.as_deref().unwrap_or("no error"),
                until.map_or("soon".to_owned(), |t| rel(t, now))
            ),
            Tone::Wait,
        ),
        Reason::WaitingForChild { child, .. } => {
            (format!("waits for child execution {child}"), Tone::Fine)
        }
        Reason::DeadLettered { item } => (
            format!(
                "in the dead-letter queue after {} attempts: {}",
                item.attempts, item.error
            ),
            Tone::Bad,
        ),
        Reason::Failed { error } => (
            format!("failed: {}", error.as_deref().unwrap_or("no error")),
            Tone::Bad,
        ),
        _ => ("(a reason this tool does not know)".to_owned(), Tone::Wait),
    }
}

pub(crate) fn rerun(s: &Style, r: &Rerun) -> String {
    format!(
        "{} {} (re-run of {}, v{})\n  kept:   {}\n  re-run: {}\n",
        s.green("started"),
        s.bold(&r.execution_id.to_string()),
        r.rerun_of,
        r.workflow_version,
        r.kept.join(", "),
        r.rerun.join(", ")
    )
}

pub(crate) fn executions(s: &Style, items: &[ExecutionRecord]) -> String {
    let mut out = String::new();
    for e in items {
        let _ = writeln!(
            out,
            "{}  {:<10}  {}  {}",
            s.bold(&e.execution_id.to_string()),
            status(s, e.status),
            s.dim(&format!("{} v{}", e.workflow_id, e.workflow_version)),
            e.error.as_deref().map(|m| s.red(m)).unwrap_or_default()
        );
    }
    if items.is_empty() {
        out.push_str("no executions\n");
    }
    out
}

pub(crate) fn dead_letters(s: &Style, items: &[DeadLetter]) -> String {
    let mut out = String::new();
    for d in items {
        let _ = writeln!(
            out,
            "{}  {:<16}  {}  {}",
            s.bold(&d.execution_id.to_string()),
            d.node_id,
            s.dim(&format!("{} attempts", d.attempts)),
            s.red(&d.error)
        );
    }
    if items.is_empty() {
        out.push_str("the dead-letter queue is empty\n");
    }
    out
}
