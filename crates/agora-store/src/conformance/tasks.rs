//! Tasks: inbox claims under concurrency, due sweeps, typed terms, committed-only wake-ups.

use std::{collections::HashSet, sync::Arc};

use agora_core::{
    AccountId,
    account::AccountKind,
    task::TaskStatus,
    work::{BountyTerms, ServiceRun, TaskTerms},
};

use super::{account, now};
use crate::{Due, Store, Task, Wakeup};

fn queued(requester: &AccountId, agent: &AccountId, title: &str) -> Task {
    let mut task = Task::new(TaskTerms::Chat, requester, title.to_owned(), now());
    task.status = TaskStatus::Queued;
    task.assignee_id = Some(agent.clone());
    task
}

async fn insert_tasks(store: &dyn Store, tasks: &[Task]) {
    let mut tx = store.begin().await.expect("begin");
    for t in tasks {
        tx.insert_task(t).await.expect("insert");
    }
    tx.commit().await.expect("commit");
}

/// 16 concurrent claimers drain one agent's inbox of 200 tasks: every task is taken by
/// exactly one of them (SKIP LOCKED on PostgreSQL; the write lock on SQLite).
pub async fn concurrent_claims_take_each_task_once(store: Arc<dyn Store>) {
    let requester = account(store.as_ref(), AccountKind::Human, "Claims requester").await;
    let agent = account(store.as_ref(), AccountKind::Agent, "Claims agent").await;
    let tasks: Vec<Task> = (0..200).map(|i| queued(&requester, &agent, &format!("t{i}"))).collect();
    insert_tasks(store.as_ref(), &tasks).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (store, agent) = (store.clone(), agent.clone());
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut tx = store.begin().await.expect("begin");
                let Some(mut t) = tx.next_queued(&agent).await.expect("claim") else { return mine };
                t.status = TaskStatus::InProgress;
                tx.update_task(&t).await.expect("update");
                tx.commit().await.expect("commit");
                mine.push(t.id);
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(r) = set.join_next().await {
        claimed.extend(r.expect("claimer"));
    }
    assert_eq!(claimed.len(), 200, "no task claimed twice, none left behind");
    let created: HashSet<_> = tasks.into_iter().map(|t| t.id).collect();
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), created);
    assert_eq!(store.read().in_progress_count(&agent).await.expect("count"), 200);
}

/// Leases that ran out are found in due order, each by one sweeper; a sweep can move past
/// a task it failed on; a task not due yet is left.
pub async fn due_tasks_are_taken_once(store: Arc<dyn Store>) {
    let requester = account(store.as_ref(), AccountKind::Human, "Due requester").await;
    let agent = account(store.as_ref(), AccountKind::Agent, "Due agent").await;
    let t0 = now();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let mut t = queued(&requester, &agent, &format!("due {i}"));
        t.status = TaskStatus::InProgress;
        t.lease_expires_at = Some(t0.plus_millis(i * 10));
        tasks.push(t);
    }
    let mut later = queued(&requester, &agent, "not due");
    later.status = TaskStatus::InProgress;
    later.lease_expires_at = Some(t0.plus_seconds(3600));
    tasks.push(later);
    insert_tasks(store.as_ref(), &tasks).await;
    let at = t0.plus_seconds(1);
    let mut tx = store.begin().await.expect("begin");
    let first = tx.due_task(Due::LeaseExpired, at, None).await.expect("due").expect("one");
    assert_eq!(first.id, tasks[0].id, "oldest due first");
    let after = (Due::LeaseExpired.at(&first).expect("due at"), first.id.clone());
    let second = tx.due_task(Due::LeaseExpired, at, Some(&after)).await.expect("due").expect("two");
    assert_eq!(second.id, tasks[1].id, "past the one it was given");
    drop(tx);
    // Two sweepers at once, each handling what it takes: every due task once.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let store = store.clone();
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut tx = store.begin().await.expect("begin");
                let Some(mut t) = tx.due_task(Due::LeaseExpired, at, None).await.expect("due") else {
                    return mine;
                };
                t.status = TaskStatus::Failed;
                t.lease_expires_at = None;
                tx.update_task(&t).await.expect("update");
                tx.commit().await.expect("commit");
                mine.push(t.id);
            }
        });
    }
    let mut handled = Vec::new();
    while let Some(r) = set.join_next().await {
        handled.extend(r.expect("sweeper"));
    }
    handled.sort();
    let mut want: Vec<_> = tasks[..3].iter().map(|t| t.id.clone()).collect();
    want.sort();
    assert_eq!(handled, want);
}

/// A task's typed terms and its failure log come back as written, for each kind.
pub async fn task_terms_and_failure_logs_round_trip(store: Arc<dyn Store>) {
    let requester = account(store.as_ref(), AccountKind::Human, "Terms").await;
    let bounty = TaskTerms::Bounty(BountyTerms {
        short_description: "short".into(),
        penalty: 7,
        max_delivery_hours: 48,
        input_schema: serde_json::json!({"type": "object"}),
        output_schema: serde_json::json!({}),
    });
    let run = TaskTerms::Service(ServiceRun {
        service_name: "Svc".into(),
        service_version: "v2".into(),
        input_schema: serde_json::json!({}),
        output_schema: serde_json::json!({"required": ["x"]}),
    });
    let mut written = Vec::new();
    for terms in [TaskTerms::Chat, bounty, run] {
        let mut t = Task::new(terms, &requester, "terms".into(), now());
        t.input = Some(serde_json::json!({"k": 1}));
        written.push(t);
    }
    written[1].input = None;
    insert_tasks(store.as_ref(), &written).await;
    let mut tx = store.begin().await.expect("begin");
    let mut failed = tx.task_for_update(&written[2].id).await.expect("read").expect("task");
    failed.status = TaskStatus::Failed;
    failed.error = Some("the model timed out".into());
    tx.update_task(&failed).await.expect("update");
    tx.commit().await.expect("commit");
    for (i, w) in written.iter().enumerate() {
        let got = store.read().task(&w.id).await.expect("read").expect("task");
        assert_eq!((got.kind, &got.terms, &got.input), (w.kind, &w.terms, &w.input), "task {i}");
    }
    let got = store.read().task(&written[2].id).await.expect("read").expect("task");
    assert_eq!((got.status, got.error.as_deref()), (TaskStatus::Failed, Some("the model timed out")));
}

/// Wake-ups are published only for committed work.
pub async fn wakeups_follow_commits(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let mut wakeups = store.wakeups();
    if store.backend() == "postgres" {
        // Wake-ups cross replicas by LISTEN/NOTIFY; the listener announces that it listens
        // with a "look again" (`All`). A commit before that is found by the safety net, not
        // woken: wait for it, so this check is about commits, not connection timing.
        let listening = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !matches!(wakeups.recv().await, Ok(Wakeup::All)) {}
        })
        .await;
        assert!(listening.is_ok(), "the listener started");
    }
    let requester = account(store, AccountKind::Human, "Wake requester").await;
    let agent = account(store, AccountKind::Agent, "Wake agent").await;
    let other = account(store, AccountKind::Agent, "Never woken").await;
    let mut tx = store.begin().await.expect("begin");
    tx.insert_task(&queued(&requester, &other, "rolled back")).await.expect("insert");
    tx.wake(&other);
    drop(tx);
    let mut tx = store.begin().await.expect("begin");
    tx.insert_task(&queued(&requester, &agent, "committed")).await.expect("insert");
    tx.wake(&agent);
    tx.commit().await.expect("commit");
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match wakeups.recv().await.expect("wake-ups stay open") {
                Wakeup::Agent(a) if a == agent => return true,
                Wakeup::Agent(a) if a == other => return false,
                // A listener's (re)connection or other tests' agents.
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(got, Ok(true), "the committed task woke its agent, the rolled-back one nobody");
    assert_eq!(store.read().with_queued_work(&[agent.clone(), other]).await.expect("queued"), [agent]);
}
