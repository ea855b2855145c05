//! Resuming a `LocalBus` subscription after an event id: nothing missed, nothing repeated.

use std::time::Duration;

use futures::StreamExt;
use spane_core::{EngineEvent, EventSink, ExecutionId, WorkflowEvent, WorkflowEventStatus};
use spane_events::{EventError, EventFilter, LocalBus, ResumableBus, SequencedStream};

fn event(execution: ExecutionId, timestamp: i64) -> EngineEvent {
    EngineEvent::Workflow(
        WorkflowEvent::new(execution, "wf", WorkflowEventStatus::Started).at(timestamp),
    )
}

async fn take(stream: &mut SequencedStream, n: usize) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("stream open")
            .expect("no error");
        let EngineEvent::Workflow(w) = &next.event else {
            panic!("workflow event expected")
        };
        out.push((next.id.to_string(), w.timestamp));
    }
    out
}

#[tokio::test]
async fn resumes_after_an_id_with_the_later_events_of_its_execution_then_live_ones() {
    let bus = LocalBus::with_journal(64, 100);
    let (a, b) = (ExecutionId::new(), ExecutionId::new());
    let mut first = bus
        .subscribe_after(EventFilter::Execution(a), None)
        .await
        .unwrap();
    bus.emit(vec![event(a, 1), event(b, 100), event(a, 2)]);
    let seen = take(&mut first, 2).await;
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2]);
    // The client goes away after the first event; more happens meanwhile.
    drop(first);
    bus.emit(vec![event(a, 3), event(b, 101)]);
    let after = seen[0].0.parse().unwrap();
    let mut resumed = bus
        .subscribe_after(EventFilter::Execution(a), Some(after))
        .await
        .unwrap();
    bus.emit(vec![event(a, 4)]);
    let got = take(&mut resumed, 3).await;
    assert_eq!(got.iter().map(|s| s.1).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(got[0].0, seen[1].0, "an event keeps its id when replayed");
    let ids: Vec<spane_events::EventId> = got.iter().map(|g| g.0.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
}

#[tokio::test]
async fn refuses_to_resume_when_events_may_be_missing() {
    let bus = LocalBus::with_journal(64, 2);
    let a = ExecutionId::new();
    let mut live = bus.subscribe_after(EventFilter::All, None).await.unwrap();
    bus.emit(vec![event(a, 1)]);
    let first = take(&mut live, 1).await[0].0.parse().unwrap();
    bus.emit(vec![event(a, 2), event(a, 3), event(a, 4)]);
    // Only the last two are journaled: event 2 is gone.
    match bus.subscribe_after(EventFilter::All, Some(first)).await {
        Err(EventError::CannotResume { after, reason }) => {
            assert_eq!(after, first);
            assert!(reason.contains("journal"), "{reason}");
        }
        other => panic!("expected CannotResume, got {:?}", other.map(|_| ())),
    }
    // An id of another bus instance (say, before a restart) is recognised as such.
    let other = LocalBus::with_journal(64, 100);
    let err = other
        .subscribe_after(EventFilter::All, Some(first))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("another instance"), "{err}");
}

#[tokio::test]
async fn plain_subscribers_still_see_every_event() {
    use spane_events::EventBus;
    let bus = LocalBus::new(16);
    let a = ExecutionId::new();
    let mut events = bus.subscribe(EventFilter::Execution(a)).await.unwrap();
    bus.emit(vec![event(ExecutionId::new(), 0), event(a, 7)]);
    let got = events.next().await.unwrap().unwrap();
    assert_eq!(got, event(a, 7));
}
