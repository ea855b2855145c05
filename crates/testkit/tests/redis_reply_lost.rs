//! A reply lost on the wire after Redis applied a script: reproductions of how the Redis queue
//! reports such a step to its caller.
//!
//! The connection to Redis goes through a small TCP proxy that can drop the connection instead
//! of forwarding one chosen reply, as a network failure or a Redis restart does after the
//! script ran. The fred client then sends the command again on a new connection (its
//! `max_command_attempts` re-sends commands that were in flight when a connection closed), and
//! the second run of the script sees the effects of the first.
//!
//! Both tests assert what the caller should see: the scripts recognise a replay (start by a
//! request nonce, commit by the node's last applied token) and answer what the first run
//! answered.

// The tests report what happened on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use spane::prelude::*;
use spane::queue::backend::{CommitOutcome, NodeCommit, WorkerId};
use spane::queue::{ExecutionQueue, QueueError, RedisConfig, RedisQueue};

/// A TCP proxy to Redis that, once armed with a byte pattern, closes the client's connection
/// instead of forwarding the first server reply that contains the pattern.
#[derive(Clone)]
struct ReplyDropper {
    port: u16,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    dropped: Arc<AtomicUsize>,
}

impl ReplyDropper {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` (`host:port`).
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Self {
            port,
            armed: Arc::new(Mutex::new(None)),
            dropped: Arc::new(AtomicUsize::new(0)),
        };
        let shared = proxy.clone();
        // The accept thread ends with the test process.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                shared.pipe(client, server);
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next server reply containing `pattern` is not delivered: the connection closes.
    fn arm(&self, pattern: &[u8]) {
        *self.armed.lock().unwrap() = Some(pattern.to_vec());
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    fn pipe(&self, client: TcpStream, server: TcpStream) {
        let (mut c_read, mut s_write) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c_read, &mut s_write);
            let _ = s_write.shutdown(Shutdown::Both);
        });
        let (mut s_read, mut c_write) = (server, client);
        let shared = self.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match s_read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let mut armed = shared.armed.lock().unwrap();
                let hit = armed
                    .as_ref()
                    .is_some_and(|p| chunk.windows(p.len()).any(|w| w == p.as_slice()));
                if hit {
                    *armed = None;
                    shared.dropped.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                drop(armed);
                if c_write.write_all(chunk).is_err() {
                    break;
                }
            }
            let _ = c_write.shutdown(Shutdown::Both);
            let _ = s_read.shutdown(Shutdown::Both);
        });
    }
}

/// `host:port` of a `redis://host:port[/db]` URL.
fn host_port(url: &str) -> String {
    let rest = url.trim_start_matches("redis://");
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A queue on Redis through `proxy`, and an engine over it that starts executions of `one`, a
/// workflow of one node `n0` (this process runs no workers).
async fn through(proxy: &ReplyDropper, prefix: &str) -> (WorkflowEngine, RedisQueue) {
    let queue = RedisQueue::connect(RedisConfig::new(proxy.url()).prefix(prefix))
        .await
        .expect("Redis through the proxy");
    let mut registry = NodeRegistry::new();
    registry.register(
        "test",
        executor_fn(|_ctx| async { Ok(NodeOutput::new(json!(null))) }),
    );
    let engine = WorkflowEngine::builder()
        .registry(registry)
        .queue(Arc::new(queue.clone()))
        .build();
    engine
        .register_workflow(
            WorkflowDefinition::new("one", "one").node(NodeDefinition::new("n0", "test")),
        )
        .await
        .expect("valid workflow");
    (engine, queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn enqueue_whose_reply_is_lost_is_not_reported_as_a_duplicate() {
    let url = redis_url();
    let prefix = unique_prefix("lost-start");
    let _keys = Keyspace::new(&url, &prefix);
    let proxy = ReplyDropper::start(host_port(&url));
    let (engine, queue) = through(&proxy, &prefix).await;

    // start.lua answers the bulk string "ok"; that reply is lost.
    proxy.arm(b"$2\r\nok\r\n");
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        engine.enqueue_workflow("one", json!({ "x": 1 })),
    )
    .await
    .expect("enqueue_workflow answers");
    let id = match &result {
        Ok(id) => *id,
        Err(spane::Error::Queue(QueueError::DuplicateExecution(id))) => *id,
        Err(e) => panic!("enqueue_workflow failed: {e}"),
    };
    let record = queue.execution(id).await.expect("readable");
    eprintln!(
        "replies dropped: {}; enqueue_workflow returned {result:?}; execution exists: {}",
        proxy.dropped(),
        record.is_some()
    );
    assert_eq!(
        proxy.dropped(),
        1,
        "the reply was not dropped: the test proved nothing"
    );
    assert!(record.is_some(), "the execution was created");
    // The execution exists and runs: the caller must not be told it failed as a duplicate (a
    // caller that then enqueues again runs the workflow twice).
    assert!(
        result.is_ok(),
        "enqueue_workflow created {id} and then reported it as a duplicate: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn commit_whose_reply_is_lost_is_not_reported_as_stale() {
    let url = redis_url();
    let prefix = unique_prefix("lost-commit");
    let _keys = Keyspace::new(&url, &prefix);
    let proxy = ReplyDropper::start(host_port(&url));
    let (engine, queue) = through(&proxy, &prefix).await;
    let id = engine
        .enqueue_workflow("one", json!({ "x": 1 }))
        .await
        .expect("started");
    let worker = WorkerId::new();
    let job = poll_until("the root to be claimable", Duration::from_secs(10), || {
        let (queue, worker) = (queue.clone(), worker.clone());
        async move {
            let jobs = queue
                .claim(&worker, 1, Duration::from_millis(100))
                .await
                .ok()?;
            jobs.into_iter().next()
        }
    })
    .await;

    // commit.lua answers { 'applied', 'completed' }; that reply is lost.
    proxy.arm(b"applied");
    let commit = NodeCommit::Completed {
        data: json!({ "done": true }),
        next_nodes: None,
    };
    let outcome = tokio::time::timeout(Duration::from_secs(20), queue.commit(&job, commit))
        .await
        .expect("commit answers");
    let record = queue
        .execution(id)
        .await
        .expect("readable")
        .expect("exists");
    eprintln!(
        "replies dropped: {}; commit returned {outcome:?}; execution is {:?}, n0 output {:?}",
        proxy.dropped(),
        record.status,
        record.output("n0")
    );
    assert_eq!(
        proxy.dropped(),
        1,
        "the reply was not dropped: the test proved nothing"
    );
    assert_eq!(
        record.status,
        ExecutionStatus::Completed,
        "the commit was applied"
    );
    // The commit was applied and finished the execution: reporting it as stale makes the
    // worker skip the history write of the finished execution.
    assert!(
        matches!(
            outcome,
            Ok(CommitOutcome::Applied {
                finished: Some(ExecutionStatus::Completed)
            })
        ),
        "the applied commit was reported as {outcome:?}"
    );
}
