//! Group commit: the commits that a client's workers finish while a commit call is in flight go
//! to Redis together, in one call of `commit.lua`, which also claims the next jobs the
//! committers asked for.
//!
//! Nothing waits for a batch to fill. The first commit after an idle moment is sent at once (one
//! scheduler yield first, so that tasks already finished can join it); the ones that arrive
//! while it is in flight form the next call. Under load a call carries many commits and the
//! fixed cost of a call (a round trip, the script's start, `TIME`, the ready-list push, the event
//! append, the lease removal) is paid once for all of them; when idle, a commit costs what it
//! did alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fred::prelude::*;
use fred::types::scripts::Script;
use tokio::sync::{mpsc, oneshot};

use super::unavailable;
use crate::error::QueueError;

/// Most commits in one call: bounds the size of one script run (Redis serves nobody else while
/// a script runs).
const MAX_BATCH: usize = 256;

/// The arguments of one commit (see `commit.lua`), in order.
/// The last one is how many next jobs the committer wants.
pub(super) type CommitArgs = [String; 14];

/// What `commit.lua` answered for one commit: `applied` or `stale`, the finished status, and
/// the next jobs claimed for this committer (claim reply entries, see `claim.lua`).
pub(super) type CommitReply = (String, String, Vec<Value>);

struct Pending {
    args: CommitArgs,
    want: usize,
    reply: oneshot::Sender<Result<CommitReply, QueueError>>,
}

/// Sends commits in batches from one background task.
pub(super) struct CommitBatcher {
    tx: mpsc::UnboundedSender<Pending>,
}

/// What the background task needs to call the script.
pub(super) struct BatchTarget {
    pub(super) client: Client,
    pub(super) script: Script,
    pub(super) keys: Vec<String>,
    /// The arguments before the nonce and the commits: shard prefix, retention, events cap,
    /// lease.
    pub(super) head: Vec<String>,
    pub(super) round_trips: Arc<AtomicU64>,
    /// `release.lua` and its keys (ready, leases), for jobs claimed for a committer that no
    /// longer waits.
    pub(super) release: Script,
    pub(super) release_keys: Vec<String>,
}

impl CommitBatcher {
    /// Starts the background task on the current tokio runtime. It ends when the batcher is
    /// dropped.
    pub(super) fn start(target: BatchTarget) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(target, rx));
        Self { tx }
    }

    /// Commits through the next batch and waits for this commit's answer.
    pub(super) async fn commit(
        &self,
        args: CommitArgs,
        want: usize,
    ) -> Result<CommitReply, QueueError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || QueueError::Unavailable {
            reason: "the commit batcher has stopped (its tokio runtime shut down)".to_owned(),
            source: None,
        };
        self.tx
            .send(Pending { args, want, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(target: BatchTarget, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        // Let tasks that finished their executors at the same time join this call.
        tokio::task::yield_now().await;
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut args = Vec::with_capacity(target.head.len() + 1 + batch.len() * 14);
        args.extend(target.head.iter().cloned());
        // Identifies this call, so that a replay returns the jobs it claimed.
        args.push(ulid::Ulid::new().to_string());
        let mut replies = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            args.extend(p.args);
            replies.push((p.want, p.reply));
        }
        target.round_trips.fetch_add(1, Ordering::Relaxed);
        let answer: Result<Value, _> = target
            .script
            .evalsha_with_reload(&target.client, target.keys.clone(), args)
            .await;
        match answer {
            Ok(value) => {
                let mut parts = value.into_array().into_iter();
                let mut tags = parts
                    .next()
                    .map(Value::into_array)
                    .unwrap_or_default()
                    .into_iter();
                let mut jobs = parts
                    .next()
                    .map(Value::into_array)
                    .unwrap_or_default()
                    .into_iter();
                let mut handed = parts
                    .next()
                    .map(Value::into_array)
                    .unwrap_or_default()
                    .into_iter();
                for (want, reply) in replies {
                    let mut own = handed.next().map(Value::into_array).unwrap_or_default();
                    let more = want.saturating_sub(own.len());
                    own.extend(jobs.by_ref().take(more));
                    let tag = tags.next().and_then(|v| v.as_string());
                    let finished = tags.next().and_then(|v| v.as_string());
                    let answer = match tag {
                        Some(tag) => Ok((tag, finished.unwrap_or_default(), own)),
                        None => Err(QueueError::Backend {
                            reason: "unexpected data in Redis: short commit reply".to_owned(),
                            source: None,
                        }),
                    };
                    // A committer that gave up waiting cannot run the jobs claimed for it: give
                    // them back at once rather than let their leases expire.
                    if let Err(Ok((_, _, jobs))) = reply.send(answer) {
                        give_back(&target, jobs).await;
                    }
                }
            }
            Err(e) => {
                let e = unavailable(e);
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Releases claim reply entries (`E`, `i`, token first) nobody will run.
async fn give_back(target: &BatchTarget, jobs: Vec<Value>) {
    for job in jobs {
        let f = job.into_array();
        let field = |n: usize| f.get(n).and_then(Value::as_string).unwrap_or_default();
        let args = vec![target.head[0].clone(), field(0), field(1), field(2)];
        target.round_trips.fetch_add(1, Ordering::Relaxed);
        let released: Result<i64, _> = target
            .release
            .evalsha_with_reload(&target.client, target.release_keys.clone(), args)
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "giving back a job nobody waits for failed; its lease will expire");
        }
    }
}
