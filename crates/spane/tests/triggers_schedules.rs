//! Schedules through the engine, with a controlled clock (no waiting), on both backends:
//! upsert, list, get, remove, definition triggers, time zones and DST, catch-up, one-shots,
//! and one fire per tick when two instances share a Redis.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use spane::core::{ScheduleTrigger, Trigger};
use spane::prelude::*;
use spane::triggers::chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use spane::triggers::{CatchUp, ManualClock, ScheduleSpec, TriggerConfig};

fn at(mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, mo, d, h, mi, s).unwrap()
}

/// An engine on `backend` whose triggers read `clock`; no workers (the runner is driven by
/// `run_due_schedules`). On Redis, `prefix` lets two engines share their schedules.
async fn clocked(backend: Backend, clock: &Arc<ManualClock>, prefix: &str) -> WorkflowEngine {
    let builder = WorkflowEngine::builder()
        .registry(pass_registry(&Calls::default()))
        .triggers(TriggerConfig::default().clock(clock.clone()));
    match backend {
        Backend::Embedded => builder.build(),
        Backend::Redis => builder
            .redis(spane::queue::RedisConfig::new(redis_url()).prefix(prefix))
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is needed for this test: {e}", redis_url()))
            .build(),
    }
}

fn scheduled(id: &str, cron: &str, timezone: Option<&str>, extra: Value) -> WorkflowDefinition {
    let extra = match extra {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    let mut trigger = ScheduleTrigger {
        cron: cron.to_owned(),
        timezone: timezone.map(str::to_owned),
        extra,
    };
    trigger.extra.retain(|_, v| !v.is_null());
    graph(id, &["a"], &[]).trigger(Trigger::Schedule(trigger))
}

/// The ticks fired in one pass, as (schedule id, tick).
async fn pass(engine: &WorkflowEngine) -> Vec<(String, DateTime<Utc>)> {
    let report = engine.run_due_schedules().await.expect("pass runs");
    report.fired.into_iter().map(|(s, t, _)| (s, t)).collect()
}

async fn upsert_list_get_remove(backend: Backend) {
    let clock = Arc::new(ManualClock::new(at(1, 15, 12, 0, 0)));
    let engine = clocked(backend, &clock, &unique_prefix()).await;
    engine
        .register_workflow(graph("report", &["a"], &[]))
        .await
        .unwrap();

    let spec = ScheduleSpec::cron("report", "0 9 * * *")
        .timezone("America/New_York")
        .data(json!({"kind": "daily"}));
    let first = engine.upsert_schedule(spec.clone()).await.unwrap();
    clock.advance(ChronoDuration::minutes(5));
    let again = engine.upsert_schedule(spec.clone()).await.unwrap();
    assert_eq!(first, again, "the same spec again changes nothing");
    let all = engine.list_schedules(None).await.unwrap();
    assert_eq!(all, vec![first.clone()], "one schedule, not two");
    assert_eq!(first.id(), "schedule:report:0 9 * * *");
    // 09:00 in New York in January is 14:00 UTC.
    assert_eq!(first.next_fire, Some(at(1, 15, 14, 0, 0)));
    assert_eq!((first.last_fire, first.last_execution_id), (None, None));
    assert_eq!(
        engine.get_schedule(first.id()).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(engine.list_schedules(Some("other")).await.unwrap(), vec![]);

    // It fires at its tick and keeps the last fire and execution.
    clock.set(at(1, 15, 14, 0, 1));
    let fired = engine.run_due_schedules().await.unwrap();
    assert_eq!(fired.fired.len(), 1);
    let (_, tick, execution) = fired.fired[0].clone();
    assert_eq!(tick, at(1, 15, 14, 0, 0));
    let stored = engine.get_schedule(first.id()).await.unwrap().unwrap();
    assert_eq!(stored.last_fire, Some(tick));
    assert_eq!(stored.last_execution_id, Some(execution));
    assert_eq!(stored.next_fire, Some(at(1, 16, 14, 0, 0)));
    assert_eq!(stored.fires, 1);
    // The execution carries the tick in its initial data, next to the schedule's data.
    let record = engine.get_execution(execution).await.unwrap().unwrap();
    assert_eq!(record.workflow_id, "report");
    assert_eq!(record.initial_data["kind"], "daily");
    assert_eq!(record.initial_data["_trigger"]["type"], "schedule");
    assert_eq!(record.initial_data["_trigger"]["scheduleId"], first.id());
    assert_eq!(
        record.initial_data["_trigger"]["tick"],
        "2026-01-15T14:00:00.000Z"
    );
    assert_eq!(
        record.initial_data["_trigger"]["tickMs"],
        tick.timestamp_millis()
    );

    // Removed: no further fires.
    assert!(engine.remove_schedule(first.id()).await.unwrap());
    assert!(!engine.remove_schedule(first.id()).await.unwrap());
    clock.set(at(1, 20, 0, 0, 0));
    assert_eq!(pass(&engine).await, vec![]);
    assert_eq!(engine.list_schedules(None).await.unwrap(), vec![]);

    // Remove all of a workflow.
    engine
        .upsert_schedule(ScheduleSpec::cron("report", "0 * * * *"))
        .await
        .unwrap();
    engine
        .upsert_schedule(ScheduleSpec::cron("report", "30 * * * *"))
        .await
        .unwrap();
    assert_eq!(engine.remove_workflow_schedules("report").await.unwrap(), 2);
    assert_eq!(engine.list_schedules(Some("report")).await.unwrap(), vec![]);
}

async fn bad_schedules_are_refused(backend: Backend) {
    let clock = Arc::new(ManualClock::new(at(1, 15, 12, 0, 0)));
    let engine = clocked(backend, &clock, &unique_prefix()).await;
    engine
        .register_workflow(graph("w", &["a"], &[]))
        .await
        .unwrap();
    fn err<T: std::fmt::Debug>(r: Result<T, spane::Error>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }
    let e = err(engine
        .upsert_schedule(ScheduleSpec::cron("nope", "* * * * *"))
        .await);
    assert!(e.contains("\"nope\" is not registered"), "{e}");
    let e = err(engine
        .upsert_schedule(ScheduleSpec::cron("w", "61 * * * *"))
        .await);
    assert!(e.contains("invalid cron pattern \"61 * * * *\""), "{e}");
    let e = err(engine
        .upsert_schedule(ScheduleSpec::cron("w", "* * * * *").timezone("Mars/Base"))
        .await);
    assert!(e.contains("unknown timezone \"Mars/Base\""), "{e}");
    let e = err(engine
        .upsert_schedule(ScheduleSpec::cron("w", "* * * * *").data(json!([1])))
        .await);
    assert!(e.contains("data = [1]"), "{e}");
    let e = err(engine
        .upsert_schedule(ScheduleSpec::cron("w", "0 0 30 2 *"))
        .await);
    assert!(e.contains("never fires"), "{e}");
    let e = err(engine
        .schedule_workflow("nope", json!({}), at(1, 16, 0, 0, 0))
        .await);
    assert!(e.contains("\"nope\" is not registered"), "{e}");
    // A definition with a bad catch-up setting is refused before it is saved.
    let bad = scheduled("bad", "* * * * *", None, json!({"catchUp": "sometimes"}));
    let e = err(engine.register_workflow(bad).await);
    assert!(e.contains("config.catchUp"), "{e}");
    assert!(engine.get_workflow("bad").await.unwrap().is_none());
    assert_eq!(engine.list_schedules(None).await.unwrap(), vec![]);
}

async fn definition_triggers_follow_the_definition(backend: Backend) {
    let clock = Arc::new(ManualClock::new(at(3, 2, 8, 0, 0)));
    let engine = clocked(backend, &clock, &unique_prefix()).await;
    engine
        .register_workflow(scheduled(
            "nightly",
            "0 2 * * *",
            Some("Europe/Paris"),
            json!({"data": {"n": 1}}),
        ))
        .await
        .unwrap();
    // Registering the same definition again (as every instance does) keeps one schedule.
    engine
        .register_workflow(scheduled(
            "nightly",
            "0 2 * * *",
            Some("Europe/Paris"),
            json!({"data": {"n": 1}}),
        ))
        .await
        .unwrap();
    // A schedule made through the API is not the definition's: it stays.
    engine
        .upsert_schedule(ScheduleSpec::cron("nightly", "0 12 1 1 *"))
        .await
        .unwrap();
    let listed = engine.list_schedules(Some("nightly")).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        vec!["schedule:nightly:0 12 1 1 *", "schedule:nightly:0 2 * * *"]
    );

    // The cron changes: the stale schedule goes, the new one is there.
    engine
        .register_workflow(scheduled(
            "nightly",
            "0 3 * * *",
            Some("Europe/Paris"),
            Value::Null,
        ))
        .await
        .unwrap();
    let listed = engine.list_schedules(Some("nightly")).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        vec!["schedule:nightly:0 12 1 1 *", "schedule:nightly:0 3 * * *"]
    );
    // 02:00 Paris (01:00 UTC) passes without a fire of the old cron; 03:00 Paris fires.
    clock.set(at(3, 3, 1, 30, 0));
    assert_eq!(pass(&engine).await, vec![]);
    clock.set(at(3, 3, 2, 0, 0));
    assert_eq!(
        pass(&engine).await,
        vec![("schedule:nightly:0 3 * * *".to_owned(), at(3, 3, 2, 0, 0))]
    );
    // A definition without schedule triggers removes its schedules, not the API's.
    engine
        .register_workflow(graph("nightly", &["a"], &[]))
        .await
        .unwrap();
    let listed = engine.list_schedules(Some("nightly")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), "schedule:nightly:0 12 1 1 *");
}

async fn time_zone_and_dst(backend: Backend) {
    // London, 2026-03-29: 01:00 GMT jumps to 02:00 BST. 01:30 does not exist that day.
    let clock = Arc::new(ManualClock::new(at(3, 28, 12, 0, 0)));
    let engine = clocked(backend, &clock, &unique_prefix()).await;
    engine
        .register_workflow(scheduled(
            "fixed",
            "30 1 * * *",
            Some("Europe/London"),
            Value::Null,
        ))
        .await
        .unwrap();
    engine
        .register_workflow(scheduled(
            "fall",
            "*/30 * * * *",
            Some("Europe/London"),
            Value::Null,
        ))
        .await
        .unwrap();
    let next = |id: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .get_schedule(id)
                .await
                .unwrap()
                .unwrap()
                .next_fire
                .unwrap()
        }
    };
    assert_eq!(
        next("schedule:fixed:30 1 * * *").await,
        at(3, 29, 1, 0, 0),
        "in the gap: its end, 02:00 BST"
    );
    clock.set(at(3, 29, 1, 0, 0));
    let fired = pass(&engine).await;
    assert!(fired.contains(&("schedule:fixed:30 1 * * *".to_owned(), at(3, 29, 1, 0, 0))));
    assert_eq!(
        next("schedule:fixed:30 1 * * *").await,
        at(3, 30, 0, 30, 0),
        "01:30 BST the day after"
    );

    // Fall back, 2026-10-25: 02:00 BST goes back to 01:00 GMT. The every-30-minutes schedule
    // fires in the first pass of the repeated hour only, and nothing fires twice.
    engine
        .remove_schedule("schedule:fall:*/30 * * * *")
        .await
        .unwrap();
    clock.set(at(10, 24, 23, 50, 0));
    engine
        .upsert_schedule(ScheduleSpec::cron("fall", "*/30 * * * *").timezone("Europe/London"))
        .await
        .unwrap();
    let mut ticks = Vec::new();
    for minute in (0..=150).step_by(10) {
        clock.set(at(10, 24, 23, 50, 0) + ChronoDuration::minutes(minute));
        for (id, t) in pass(&engine).await {
            if id.starts_with("schedule:fall") {
                ticks.push(t);
            }
        }
    }
    assert_eq!(
        ticks,
        vec![
            at(10, 25, 0, 0, 0),
            at(10, 25, 0, 30, 0),
            at(10, 25, 2, 0, 0)
        ],
        "01:00 and 01:30 BST, then 02:00 GMT"
    );
}

async fn catch_up_after_downtime(backend: Backend) {
    let clock = Arc::new(ManualClock::new(at(5, 1, 9, 59, 30)));
    let engine = clocked(backend, &clock, &unique_prefix()).await;
    engine
        .register_workflow(graph("w", &["a"], &[]))
        .await
        .unwrap();
    for (cron, policy) in [
        ("* * * * *", CatchUp::Latest),
        ("*/1 * * * *", CatchUp::Skip),
        ("0-59 * * * *", CatchUp::All { limit: 3 }),
    ] {
        engine
            .upsert_schedule(ScheduleSpec::cron("w", cron).catch_up(policy))
            .await
            .unwrap();
    }
    // Down from 09:59:30 to 10:10:20: ticks 10:00 ... 10:10 (11 of them) were due.
    clock.set(at(5, 1, 10, 10, 20));
    let report = engine.run_due_schedules().await.unwrap();
    let fired = |id: &str| -> Vec<DateTime<Utc>> {
        report
            .fired
            .iter()
            .filter(|(s, _, _)| s == id)
            .map(|(_, t, _)| *t)
            .collect()
    };
    assert_eq!(
        fired("schedule:w:* * * * *"),
        vec![at(5, 1, 10, 10, 0)],
        "latest: once, for the latest tick"
    );
    assert_eq!(
        fired("schedule:w:*/1 * * * *"),
        Vec::<DateTime<Utc>>::new(),
        "skip: missed ticks do not fire"
    );
    assert_eq!(
        fired("schedule:w:0-59 * * * *"),
        vec![at(5, 1, 10, 8, 0), at(5, 1, 10, 9, 0), at(5, 1, 10, 10, 0)],
        "all: each, up to the limit, the latest ones, oldest first"
    );
    assert_eq!(report.missed, 10 + 11 + 8);
    let stored = |id: &'static str| {
        let engine = engine.clone();
        async move { engine.get_schedule(id).await.unwrap().unwrap() }
    };
    let skip = stored("schedule:w:*/1 * * * *").await;
    assert_eq!((skip.fires, skip.misses, skip.last_fire), (0, 11, None));
    assert_eq!(skip.next_fire, Some(at(5, 1, 10, 11, 0)));
    let all = stored("schedule:w:0-59 * * * *").await;
    assert_eq!((all.fires, all.misses), (3, 8));
    assert_eq!(all.last_fire, Some(at(5, 1, 10, 10, 0)));
    // The recorded execution is the latest tick's.
    let last = report
        .fired
        .iter()
        .rfind(|(s, _, _)| s == "schedule:w:0-59 * * * *")
        .unwrap()
        .2;
    assert_eq!(all.last_execution_id, Some(last));
    // Back on time, Skip fires again.
    clock.set(at(5, 1, 10, 11, 1));
    assert!(
        fired_ids(&engine)
            .await
            .contains(&"schedule:w:*/1 * * * *".to_owned())
    );
}

async fn fired_ids(engine: &WorkflowEngine) -> Vec<String> {
    pass(engine).await.into_iter().map(|(s, _)| s).collect()
}

async fn one_shot_fires_once_and_can_be_cancelled(backend: Backend) {
    let clock = Arc::new(ManualClock::new(at(6, 1, 12, 0, 0)));
    let engine = clocked(backend, &clock, &unique_prefix()).await;
    engine
        .register_workflow(graph("w", &["a"], &[]))
        .await
        .unwrap();
    let kept = engine
        .schedule_workflow("w", json!({"order": 7}), at(6, 1, 12, 30, 0))
        .await
        .unwrap();
    let cancelled = engine
        .schedule_workflow(
            "w",
            json!({"order": 8}),
            std::time::SystemTime::from(at(6, 1, 12, 30, 0)),
        )
        .await
        .unwrap();
    assert_ne!(kept, cancelled);
    assert_eq!(engine.list_schedules(Some("w")).await.unwrap().len(), 2);
    assert!(engine.cancel_scheduled_workflow(&cancelled).await.unwrap());

    clock.set(at(6, 1, 12, 29, 59));
    assert_eq!(pass(&engine).await, vec![], "not yet");
    clock.set(at(6, 1, 12, 31, 0));
    let report = engine.run_due_schedules().await.unwrap();
    assert_eq!(report.fired.len(), 1, "the cancelled one does not fire");
    let (id, tick, execution) = report.fired[0].clone();
    assert_eq!((id.as_str(), tick), (kept.as_str(), at(6, 1, 12, 30, 0)));
    let record = engine.get_execution(execution).await.unwrap().unwrap();
    assert_eq!(record.initial_data["order"], 7);
    assert_eq!(record.initial_data["_trigger"]["scheduleId"], kept.as_str());
    // Once only; afterwards it is gone and cannot be cancelled.
    clock.advance(ChronoDuration::days(1));
    assert_eq!(pass(&engine).await, vec![]);
    assert!(!engine.cancel_scheduled_workflow(&kept).await.unwrap());
    assert_eq!(engine.list_schedules(Some("w")).await.unwrap(), vec![]);
}

on_every_backend!(
    upsert_list_get_remove,
    bad_schedules_are_refused,
    definition_triggers_follow_the_definition,
    time_zone_and_dst,
    catch_up_after_downtime,
    one_shot_fires_once_and_can_be_cancelled,
);

/// Two instances on one Redis, the same clock, racing for the same ticks: each tick fires
/// once, whoever claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_instances_fire_each_tick_once() {
    let prefix = unique_prefix();
    let clock = Arc::new(ManualClock::new(at(7, 1, 0, 0, 0)));
    let a = clocked(Backend::Redis, &clock, &prefix).await;
    let b = clocked(Backend::Redis, &clock, &prefix).await;
    a.register_workflow(scheduled("race", "*/5 * * * * *", None, Value::Null))
        .await
        .unwrap();
    b.register_workflow(scheduled("race", "*/5 * * * * *", None, Value::Null))
        .await
        .unwrap();
    assert_eq!(a.list_schedules(None).await.unwrap().len(), 1);
    let mut ticks = Vec::new();
    for _ in 0..20 {
        clock.advance(ChronoDuration::seconds(5));
        let (ra, rb) = tokio::join!(a.run_due_schedules(), b.run_due_schedules());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            ra.fired.len() + rb.fired.len(),
            1,
            "one fire per tick, by either instance"
        );
        ticks.extend(ra.fired.iter().chain(&rb.fired).map(|(_, t, _)| *t));
    }
    let expected: Vec<_> = (1..=20)
        .map(|i| at(7, 1, 0, 0, 0) + ChronoDuration::seconds(5 * i))
        .collect();
    assert_eq!(ticks, expected);
    assert_eq!(
        a.get_schedule("schedule:race:*/5 * * * * *")
            .await
            .unwrap()
            .unwrap()
            .fires,
        20
    );
}
