//! Secure connections: the queue, the event bus and the trigger store over `rediss://` to a
//! `redis-server` of the test's own that speaks only TLS (certificates made by the test), ACL
//! users from the URL, and refusals that say why (wrong password, untrusted certificate,
//! nothing listening, a plain URL to a TLS port).
//!
//! Run with `cargo nextest run -p spane-testkit --test redis_tls`; needs `redis-server`
//! built with TLS (Debian's is), or `SPANE_REDIS_SERVER` naming one. The tests live here, not
//! in spane-redis, so that spane-redis has no dev-dependency on the crates that depend on it
//! (a cycle `cargo package` cannot order).

#[path = "tls_support/mod.rs"]
mod support;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fred::prelude::{Client, ClientLike};
use futures::StreamExt;
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;
use spane_core::{
    AnyNodeType, EngineEvent, EventSink, ExecutionId, ExecutionStatus, NodeDefinition,
    WorkflowDefinition, WorkflowEvent, WorkflowEventStatus,
};
use spane_events::{EventBus, EventError, EventFilter, RedisBus};
use spane_queue::backend::{NodeCommit, StartExecution, WorkerId};
use spane_queue::{ExecutionQueue, QueueError, RedisConfig, RedisQueue};
use spane_redis::{ConnectError, RedisEndpoint, connect};
use spane_triggers::{Delivery, IdempotencyStore, RedisTriggerStore, TriggerError};
use support::{Ca, TlsRedis, free_port};

/// How long a test waits for something it expects to happen.
const PATIENCE: Duration = Duration::from_secs(15);

fn prefix(test: &str) -> String {
    format!(
        "spane-tls-{test}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// Sends `name` with `args` and reads the reply as a string.
async fn command(client: &Client, name: &'static str, args: &[&str]) -> String {
    let reply: fred::prelude::Value = client
        .custom(
            fred::types::CustomCommand::new_static(name, None, false),
            args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    reply.as_string().unwrap_or_default()
}

/// Creates ACL user `user` with `password`, allowed every key and command.
async fn add_user(admin: &Client, user: &str, password: &str) {
    let secret = format!(">{password}");
    let reply = command(
        admin,
        "ACL",
        &["SETUSER", user, "on", &secret, "~*", "&*", "+@all"],
    )
    .await;
    assert_eq!(reply, "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_over_tls_runs_a_job_end_to_end() {
    let server = TlsRedis::start().await;
    let queue = RedisQueue::connect(
        RedisConfig::new(server.url(""))
            .tls_root_pem(server.ca.pem())
            .prefix(prefix("queue")),
    )
    .await
    .unwrap_or_else(|e| panic!("queue over TLS: {e}\n{}", server.log_tail()));

    let workflow = WorkflowDefinition::new("tls", "tls").node(NodeDefinition::new("a", "x"));
    let workflow = Arc::new(workflow.compile(&AnyNodeType).expect("valid workflow"));
    let id = ExecutionId::new();
    queue
        .start_execution(StartExecution::new(id, workflow, 1, json!({ "n": 1 })))
        .await
        .expect("execution started");
    let worker = WorkerId::new();
    let jobs = queue
        .claim(&worker, 1, PATIENCE)
        .await
        .expect("claim over TLS");
    let [job] = jobs.as_slice() else {
        panic!("expected one job, got {jobs:?}");
    };
    queue
        .commit(
            job,
            NodeCommit::Completed {
                data: json!({ "done": true }),
                next_nodes: None,
            },
        )
        .await
        .expect("commit over TLS");
    let record = queue
        .execution(id)
        .await
        .expect("read back")
        .expect("the execution is held");
    assert_eq!(record.status, ExecutionStatus::Completed, "{record:?}");
    assert_eq!(
        queue.results(id).await.expect("results")["a"],
        json!({ "done": true })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_bus_and_the_trigger_store_work_over_tls() {
    let server = TlsRedis::start().await;

    // The bus publishes and tails its stream over two TLS connections.
    let bus = RedisBus::connect(server.endpoint(), format!("{}:events", prefix("bus")))
        .await
        .unwrap_or_else(|e| panic!("bus over TLS: {e}"));
    let mut events = bus.subscribe(EventFilter::All).await.expect("subscribed");
    let id = ExecutionId::new();
    bus.emit(vec![EngineEvent::Workflow(
        WorkflowEvent::new(id, "tls", WorkflowEventStatus::Started).at(0),
    )]);
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("the event arrives through the stream")
        .expect("stream open")
        .expect("no lag");
    assert_eq!(event.execution_id(), id);

    // The trigger store keeps an idempotency key.
    let store = RedisTriggerStore::connect(server.endpoint(), &prefix("triggers"))
        .await
        .unwrap_or_else(|e| panic!("trigger store over TLS: {e}"));
    let now = Utc::now();
    assert_eq!(store.begin("key", now).await.expect("begin"), Delivery::New);
    store
        .finish("key", &[id], Duration::from_secs(60), now)
        .await
        .expect("finish");
    assert_eq!(
        store.begin("key", now).await.expect("begin again"),
        Delivery::Done(vec![id])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_passwords_come_from_the_url() {
    let server = TlsRedis::start().await;
    let admin = server.admin().await;

    // An ACL user with a password.
    add_user(&admin, "app", "s3cret").await;
    let endpoint = RedisEndpoint::new(server.url("app:s3cret@")).tls_root_pem(server.ca.pem());
    let client = connect(&endpoint).await.expect("app connects");
    assert_eq!(command(&client, "ACL", &["WHOAMI"]).await, "app");
    // The queue authenticates the same way.
    RedisQueue::connect(RedisConfig::new(endpoint).prefix(prefix("acl")))
        .await
        .expect("queue as app");

    // A password alone authenticates as the default user.
    command(&admin, "CONFIG", &["SET", "requirepass", "d3fault"]).await;
    let endpoint = RedisEndpoint::new(server.url(":d3fault@")).tls_root_pem(server.ca.pem());
    let client = connect(&endpoint).await.expect("default user connects");
    assert_eq!(command(&client, "ACL", &["WHOAMI"]).await, "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_naming_the_user_not_the_password() {
    let server = TlsRedis::start().await;
    add_user(&server.admin().await, "app", "s3cret").await;
    let endpoint = RedisEndpoint::new(server.url("app:wr0ng-pass@")).tls_root_pem(server.ca.pem());

    let error = connect(&endpoint).await.expect_err("refused");
    let ConnectError::AuthRefused { user, address, .. } = &error else {
        panic!("expected AuthRefused, got {error:?}");
    };
    assert_eq!(user, "app");
    assert_eq!(address, &format!("127.0.0.1:{}", server.port()));
    let message = error.to_string();
    assert!(message.contains("\"app\""), "{message}");
    assert!(!message.contains("wr0ng-pass"), "{message}");
    assert!(!format!("{error:?}").contains("wr0ng-pass"), "{error:?}");

    // Through the queue: its error wraps the same, with the connect error as its source.
    let error = RedisQueue::connect(RedisConfig::new(endpoint.clone()))
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, QueueError::Connect(ConnectError::AuthRefused { user, .. }) if user == "app"),
        "{error:?}"
    );
    let source = error.source().expect("a source");
    assert!(
        source.downcast_ref::<ConnectError>().is_some(),
        "{source:?}"
    );
    assert!(!error.to_string().contains("wr0ng-pass"), "{error}");

    // And through the bus and the trigger store.
    let error = RedisBus::connect(endpoint.clone(), "s")
        .await
        .expect_err("refused");
    assert!(
        matches!(error, EventError::Connect(ConnectError::AuthRefused { .. })),
        "{error:?}"
    );
    let error = RedisTriggerStore::connect(endpoint, "p")
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            TriggerError::Connect(ConnectError::AuthRefused { .. })
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let server = TlsRedis::start().await;
    let address = format!("127.0.0.1:{}", server.port());
    let untrusted = |error: ConnectError| match error {
        ConnectError::CertificateNotTrusted {
            address: at,
            source,
        } => {
            assert_eq!(at, address);
            source.to_string()
        }
        other => panic!("expected CertificateNotTrusted, got {other:?}"),
    };

    // Mozilla's roots only: the test CA is not among them.
    let reason = untrusted(
        connect(&server.url("").into())
            .await
            .expect_err("untrusted"),
    );
    assert!(reason.to_lowercase().contains("issuer"), "{reason}");

    // Another CA's root does not help either, and the queue says the same.
    let other = Ca::new("another CA");
    let error = RedisQueue::connect(RedisConfig::new(server.url("")).tls_root_pem(other.pem()))
        .await
        .expect_err("untrusted");
    let QueueError::Connect(error) = error else {
        panic!("expected QueueError::Connect, got {error:?}");
    };
    let message = error.to_string();
    assert!(message.contains("not trusted"), "{message}");
    untrusted(error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    // Issued by the trusted CA, but for `redis.test` only, not for the URL's 127.0.0.1.
    let server = TlsRedis::start_for(&["redis.test"], &["--tls-auth-clients", "no"]).await;
    let error = connect(&server.endpoint()).await.expect_err("wrong name");
    let ConnectError::CertificateNotTrusted { source, .. } = &error else {
        panic!("expected CertificateNotTrusted, got {error:?}");
    };
    assert!(
        source
            .to_string()
            .to_lowercase()
            .contains("not valid for name"),
        "{source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_the_server_asks() {
    let server = TlsRedis::start_with(&["--tls-auth-clients", "yes"]).await;
    let (cert, key) = server
        .ca
        .issue(&["spane-client"], ExtendedKeyUsagePurpose::ClientAuth);
    let client = connect(&server.endpoint().tls_client_identity(cert, key))
        .await
        .expect("connects with a client certificate");
    let pong: String = client.ping(None).await.expect("PING");
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_url_to_a_tls_port_and_a_closed_port_say_what_is_wrong() {
    let server = TlsRedis::start().await;
    let plain = RedisEndpoint::new(format!("redis://127.0.0.1:{}", server.port()))
        .connect_timeout(Duration::from_secs(2));
    match connect(&plain).await {
        Err(error @ ConnectError::NotRedis { .. }) => {
            assert!(error.to_string().contains("rediss://"), "{error}");
        }
        other => panic!("expected NotRedis, got {other:?}"),
    }

    let nothing = free_port();
    let error = connect(&format!("rediss://127.0.0.1:{nothing}").into())
        .await
        .expect_err("nothing listens");
    let ConnectError::Unreachable { address, .. } = &error else {
        panic!("expected Unreachable, got {error:?}");
    };
    assert_eq!(address, &format!("127.0.0.1:{nothing}"));
}

#[tokio::test]
async fn unusable_tls_settings_are_refused_before_connecting() {
    let endpoint = RedisEndpoint::new("rediss://127.0.0.1:1").tls_root_pem("not a certificate");
    match connect(&endpoint).await {
        Err(ConnectError::InvalidTls { reason, .. }) => {
            assert!(reason.contains("root certificate 1"), "{reason}");
        }
        other => panic!("expected InvalidTls, got {other:?}"),
    }
    let endpoint = RedisEndpoint::new("rediss://127.0.0.1:1").tls_default_roots(false);
    match connect(&endpoint).await {
        Err(ConnectError::InvalidTls { reason, .. }) => {
            assert!(reason.contains("no root certificate"), "{reason}");
        }
        other => panic!("expected InvalidTls, got {other:?}"),
    }
}
