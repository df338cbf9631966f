//! The event log: a reader by position never skips an event, per-task numbers are
//! gap-free, and nothing of a rolled-back transaction exists. Positions themselves may have
//! gaps (on PostgreSQL a rolled-back transaction's positions are never used).

use std::sync::Arc;

use agora_core::{EventId, event::EventType};

use super::now;
use crate::{NewEvent, Store};

fn event(task: Option<&str>, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        id: EventId::generate(),
        event_type: EventType::PaymentAdjusted,
        actor_id: None,
        task_id: task.map(str::to_owned),
        audience: vec![],
        payload,
        created_at: now(),
    }
}

/// `writers` concurrent writers, each committing `per_writer` transactions of `per_tx`
/// events (of `task`, if given; payload `{writer, i}`) and one event for each of `fillers`
/// tasks of its own (`tsk_fill_<writer>_000`…, which sort before `tsk_r…`). Each yields between its
/// appends and its commit: the window in which a later transaction could commit first.
fn spawn_writers(
    store: &Arc<dyn Store>,
    writers: usize,
    per_writer: usize,
    per_tx: usize,
    task: Option<&'static str>,
    fillers: usize,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        set.spawn(async move {
            for i in 0..per_writer {
                let mut tx = store.begin().await.expect("begin");
                for _ in 0..per_tx {
                    tx.append_event(&event(task, serde_json::json!({ "writer": w, "i": i })))
                        .await
                        .expect("append");
                }
                for k in 0..fillers {
                    let filler = format!("tsk_fill_{w}_{k:03}");
                    tx.append_event(&event(Some(&filler), serde_json::json!({}))).await.expect("append");
                }
                tokio::task::yield_now().await;
                tx.commit().await.expect("commit");
            }
        });
    }
    set
}

/// Many writers append events concurrently while a reader follows the log by position:
/// the reader must see every event exactly once, in order, with no position skipped —
/// the lost-event trap of sequence numbers assigned before commit.
pub async fn event_log_reader_never_skips(store: Arc<dyn Store>) {
    let start = store.read().last_event_seq().await.expect("end");
    let (writers, per_writer) = (16, 25);
    let mut set = spawn_writers(&store, writers, per_writer, 1, None, 0);
    let total = writers * per_writer;
    let mut cursor = start;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < total {
        assert!(std::time::Instant::now() < deadline, "reader saw only {} of {total}", seen.len());
        for e in store.read().events_after(cursor, 50).await.expect("read") {
            assert!(e.seq > cursor, "positions are read in order");
            cursor = e.seq;
            seen.push((e.payload["writer"].as_i64(), e.payload["i"].as_i64()));
        }
        tokio::task::yield_now().await;
    }
    while let Some(r) = set.join_next().await {
        r.expect("writer");
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), total, "every event seen exactly once");
}

/// Each task's events are numbered 1, 2, 3… in its timeline, across transactions.
pub async fn task_seqs_count_per_task(store: Arc<dyn Store>) {
    for round in 0..3 {
        let mut tx = store.begin().await.expect("begin");
        for task in ["tsk_seq_a", "tsk_seq_b", "tsk_seq_a"] {
            tx.append_event(&event(Some(task), serde_json::json!({ "round": round }))).await.expect("append");
        }
        tx.append_event(&event(None, serde_json::json!({}))).await.expect("append");
        tx.commit().await.expect("commit");
    }
    let a: Vec<_> =
        store.read().task_events("tsk_seq_a").await.expect("a").iter().map(|e| e.task_seq).collect();
    let b: Vec<_> =
        store.read().task_events("tsk_seq_b").await.expect("b").iter().map(|e| e.task_seq).collect();
    assert_eq!(a, (1..=6).map(Some).collect::<Vec<_>>());
    assert_eq!(b, (1..=3).map(Some).collect::<Vec<_>>());
}

/// Writers racing on one task still number its events 1, 2, 3… with no gap and no
/// repeat: each reads the task's last number only once no other writer of the task can
/// commit before it. With 200 tasks of the writer's own before it in each transaction,
/// `tsk_race` is past the tasks whose last numbers come with the positions: it is held
/// against the other writers all the same.
pub async fn concurrent_writers_of_a_task_number_it_gap_free(store: Arc<dyn Store>) {
    let (writers, per_writer) = (8, 10);
    let mut set = spawn_writers(&store, writers, per_writer, 2, Some("tsk_race"), 200);
    while let Some(r) = set.join_next().await {
        r.expect("writer");
    }
    let numbers: Vec<_> =
        store.read().task_events("tsk_race").await.expect("read").iter().map(|e| e.task_seq).collect();
    let total = i64::try_from(writers * per_writer * 2).expect("small");
    assert_eq!(numbers, (1..=total).map(Some).collect::<Vec<_>>());
    let numbers: Vec<_> =
        store.read().task_events("tsk_fill_0_199").await.expect("read").iter().map(|e| e.task_seq).collect();
    let total = i64::try_from(per_writer).expect("small");
    assert_eq!(numbers, (1..=total).map(Some).collect::<Vec<_>>());
}

/// One transaction touching more tasks than one statement numbers (a sweep over many
/// tasks) still numbers each task's events from its last number.
pub async fn a_transaction_over_many_tasks_numbers_each(store: Arc<dyn Store>) {
    let tasks: Vec<String> = (0..450).map(|i| format!("tsk_many_{i:03}")).collect();
    for _ in 0..2 {
        let mut tx = store.begin().await.expect("begin");
        for task in &tasks {
            tx.append_event(&event(Some(task), serde_json::json!({}))).await.expect("append");
        }
        tx.commit().await.expect("commit");
    }
    for task in [&tasks[0], &tasks[199], &tasks[200], &tasks[449]] {
        let numbers: Vec<_> =
            store.read().task_events(task).await.expect("read").iter().map(|e| e.task_seq).collect();
        assert_eq!(numbers, vec![Some(1), Some(2)], "{task}");
    }
}

/// Events of a transaction that rolls back never exist; the next commit comes after them.
pub async fn rolled_back_events_never_exist(store: Arc<dyn Store>) {
    let start = store.read().last_event_seq().await.expect("end");
    let mut tx = store.begin().await.expect("begin");
    tx.append_event(&event(Some("tsk_ghost"), serde_json::json!({}))).await.expect("append");
    drop(tx);
    let mut tx = store.begin().await.expect("begin");
    tx.append_event(&event(Some("tsk_real"), serde_json::json!({}))).await.expect("append");
    tx.commit().await.expect("commit");
    let after = store.read().events_after(start, 10).await.expect("read");
    assert_eq!(after.len(), 1);
    assert!(after[0].seq > start);
    assert_eq!((after[0].task_seq, after[0].task_id.as_deref()), (Some(1), Some("tsk_real")));
    assert!(store.read().task_events("tsk_ghost").await.expect("ghost").is_empty());
}
