//! Real time, real Redis: two engine instances fire a seconds-cron schedule, each tick once.
//! (The only trigger test that waits for the clock: the issue asks for real ticks.)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;
use spane::prelude::*;
use spane::triggers::TriggerEvent;
use spane::triggers::chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::TryRecvError;

async fn instance(prefix: &str) -> WorkflowEngine {
    WorkflowEngine::builder()
        .registry(pass_registry(&Calls::default()))
        .config(
            spane::EngineConfig::default()
                .claim_wait(Duration::from_millis(200))
                .shutdown_timeout(Duration::from_secs(5)),
        )
        .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
        .build()
}

fn fired(
    rx: &mut tokio::sync::broadcast::Receiver<TriggerEvent>,
    into: &mut Vec<(DateTime<Utc>, ExecutionId)>,
) {
    loop {
        match rx.try_recv() {
            Ok(TriggerEvent::ScheduleFired {
                tick, execution_id, ..
            }) => into.push((tick, execution_id)),
            Ok(_) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            Err(TryRecvError::Lagged(n)) => panic!("missed {n} trigger events"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_fire_each_seconds_tick_once() {
    let prefix = unique_prefix();
    let a = instance(&prefix).await;
    let b = instance(&prefix).await;
    let wf = graph("every-second", &["a"], &[]).trigger(
        serde_json::from_value(json!({"type": "schedule", "config": {"cron": "* * * * * *"}}))
            .unwrap(),
    );
    // Both register the definition, as every instance of an application does.
    a.register_workflow(wf.clone()).await.unwrap();
    b.register_workflow(wf).await.unwrap();
    assert_eq!(a.list_schedules(None).await.unwrap().len(), 1);

    let mut started = a.subscribe(EventFilter::All).await.unwrap();
    let (mut rx_a, mut rx_b) = (a.trigger_events(), b.trigger_events());
    a.start_workers(2).unwrap(); // workers and the runner
    b.start_triggers(); // an instance that only schedules

    // Wait (with a deadline) for at least six distinct ticks between them.
    let mut fires = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        fired(&mut rx_a, &mut fires);
        fired(&mut rx_b, &mut fires);
        let distinct: std::collections::BTreeSet<_> = fires.iter().map(|(t, _)| *t).collect();
        if distinct.len() >= 6 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} ticks fired in 40 s",
            distinct.len()
        );
        // Woken by the next event of either instance.
        let next = tokio::select! {
            e = rx_a.recv() => e.ok(),
            e = rx_b.recv() => e.ok(),
            _ = tokio::time::sleep_until(deadline) => None,
        };
        if let Some(TriggerEvent::ScheduleFired {
            tick, execution_id, ..
        }) = next
        {
            fires.push((tick, execution_id));
        }
    }
    // Stop both runners (a pass in progress finishes), then collect every fire.
    a.stop_triggers().await;
    b.stop_triggers().await;
    fired(&mut rx_a, &mut fires);
    fired(&mut rx_b, &mut fires);
    let schedule = a
        .get_schedule("schedule:every-second:* * * * * *")
        .await
        .unwrap()
        .unwrap();

    // Every execution the schedule started, from the event stream both instances share.
    let mut by_tick: BTreeMap<i64, Vec<ExecutionId>> = BTreeMap::new();
    let mut seen = 0;
    let wait = tokio::time::Instant::now() + DEADLINE;
    while seen < schedule.fires {
        let event = tokio::time::timeout_at(wait, started.next())
            .await
            .unwrap_or_else(|_| panic!("saw {seen} of {} started executions", schedule.fires))
            .unwrap()
            .unwrap();
        if let EngineEvent::Workflow(w) = event
            && w.status == WorkflowEventStatus::Started
        {
            let rec = a.get_execution(w.execution_id).await.unwrap().unwrap();
            let tick = rec.initial_data["_trigger"]["tickMs"].as_i64().unwrap();
            by_tick.entry(tick).or_default().push(w.execution_id);
            seen += 1;
        }
    }
    assert!(by_tick.len() >= 5, "at least five ticks: {by_tick:?}");
    for (tick, executions) in &by_tick {
        assert_eq!(executions.len(), 1, "tick {tick} started {executions:?}");
        assert_eq!(tick % 1000, 0, "ticks are whole seconds");
    }
    // What the instances reported agrees: one fire per tick, all of them started.
    let mut reported: Vec<i64> = fires.iter().map(|(t, _)| t.timestamp_millis()).collect();
    reported.sort();
    reported.dedup();
    assert_eq!(
        reported.len(),
        fires.len(),
        "an instance reported a tick twice"
    );
    for tick in &reported {
        assert!(
            by_tick.contains_key(tick),
            "tick {tick} reported but not started"
        );
    }
    assert_eq!(
        schedule.last_fire.map(|t| t.timestamp_millis()),
        by_tick.keys().last().copied()
    );
    // The executions run like any other.
    for executions in by_tick.values() {
        let rec = a.wait_for_execution(executions[0], DEADLINE).await.unwrap();
        assert_eq!(rec.status, ExecutionStatus::Completed);
    }
    a.shutdown().await;
    b.shutdown().await;
}
