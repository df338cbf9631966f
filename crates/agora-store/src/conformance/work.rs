//! The work engine on a real database: claims under concurrency, leases that run out,
//! committed-only wake-ups and per-task event numbers.

use std::{collections::HashSet, sync::Arc};

use agora_core::{
    AccountId, Timestamp,
    account::AccountKind,
    task::{TaskKind, TaskStatus},
};

use super::{insert, new_account};
use crate::{
    Due, Store, Task, Wakeup,
    work::{self, Settings},
};

const SETTINGS: Settings = Settings { lease_ms: 300_000, auto_accept_ms: 3_600_000, fee_bps: 1000 };

async fn account(store: &dyn Store, kind: AccountKind, name: &str) -> AccountId {
    let a = new_account(kind, name, None);
    insert(store, &a).await;
    a.id
}

fn queued(requester: &AccountId, agent: &AccountId, title: &str) -> Task {
    let mut task = Task::new(TaskKind::Service, requester, title.to_owned(), Timestamp::now());
    task.assignee_id = Some(agent.clone());
    task
}

/// 16 concurrent claimers drain one agent's inbox of 200 tasks: every task is claimed
/// exactly once (SKIP LOCKED on PostgreSQL; the write lock on SQLite).
pub(super) async fn concurrent_claims_take_each_task_once(store: Arc<dyn Store>) {
    let requester = account(store.as_ref(), AccountKind::Human, "Claims requester").await;
    let agent = account(store.as_ref(), AccountKind::Agent, "Claims agent").await;
    let mut created = HashSet::new();
    for i in 0..200 {
        let mut tx = store.begin().await.expect("begin");
        let t = work::create(tx.as_mut(), queued(&requester, &agent, &format!("t{i}")), Timestamp::now())
            .await
            .expect("create");
        tx.commit().await.expect("commit");
        created.insert(t.id);
    }
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (store, agent) = (store.clone(), agent.clone());
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut tx = store.begin().await.expect("begin");
                let got = work::claim_next(tx.as_mut(), &agent, 1000, &SETTINGS, Timestamp::now())
                    .await
                    .expect("claim");
                tx.commit().await.expect("commit");
                match got {
                    Some(t) => {
                        assert_eq!(t.status, TaskStatus::InProgress);
                        mine.push(t.id);
                    }
                    None => return mine,
                }
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(r) = set.join_next().await {
        claimed.extend(r.expect("claimer"));
    }
    assert_eq!(claimed.len(), 200, "no task claimed twice, none left behind");
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), created);
}

/// A lease that ran out is taken by the system once: the task fails, the agent's
/// no-response count rises, and a second sweep finds nothing.
pub(super) async fn expired_leases_are_handled_once(store: &dyn Store) {
    let requester = account(store, AccountKind::Human, "Lease requester").await;
    let agent = account(store, AccountKind::Agent, "Lease agent").await;
    let mut tx = store.begin().await.expect("begin");
    let task = work::create(tx.as_mut(), queued(&requester, &agent, "lease"), Timestamp::now())
        .await
        .expect("create");
    tx.commit().await.expect("commit");
    let short = Settings { lease_ms: 1, ..SETTINGS };
    let mut tx = store.begin().await.expect("begin");
    work::claim_next(tx.as_mut(), &agent, 1, &short, Timestamp::now()).await.expect("claim").expect("a task");
    tx.commit().await.expect("commit");
    let later = Timestamp::now().plus_seconds(1);
    let mut tx = store.begin().await.expect("begin");
    let due = tx.due_task(Due::LeaseExpired, later, None).await.expect("sweep").expect("due");
    let done = work::run_due(tx.as_mut(), due, Due::LeaseExpired, &SETTINGS, later).await.expect("expire");
    tx.commit().await.expect("commit");
    assert_eq!((done.task.id.clone(), done.task.status), (task.id.clone(), TaskStatus::Failed));
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.due_task(Due::LeaseExpired, later, None).await.expect("sweep").is_none(), "handled once");
    drop(tx);
    let a = store.account(&agent).await.expect("read").expect("agent");
    assert_eq!(a.counters.no_response, 1);
    let events: Vec<_> = store.task_events(&task.id).await.expect("events");
    let numbered: Vec<_> = events.iter().map(|e| (e.task_seq, e.event_type.as_str())).collect();
    assert_eq!(
        numbered,
        [
            (Some(1), "task.created"),
            (Some(2), "task.assigned"),
            (Some(3), "task.claimed"),
            (Some(4), "task.failed")
        ]
    );
}

/// Wake-ups are published only for committed work.
pub(super) async fn wakeups_follow_commits(store: &dyn Store) {
    let mut wakeups = store.wakeups();
    let requester = account(store, AccountKind::Human, "Wake requester").await;
    let agent = account(store, AccountKind::Agent, "Wake agent").await;
    let mut tx = store.begin().await.expect("begin");
    work::create(tx.as_mut(), queued(&requester, &agent, "rolled back"), Timestamp::now())
        .await
        .expect("create");
    drop(tx);
    let mut tx = store.begin().await.expect("begin");
    work::create(tx.as_mut(), queued(&requester, &agent, "committed"), Timestamp::now())
        .await
        .expect("create");
    tx.commit().await.expect("commit");
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match wakeups.recv().await.expect("wake-ups stay open") {
                Wakeup::Agent(a) if a == agent => return,
                // A listener's (re)connection or other tests' agents.
                _ => {}
            }
        }
    })
    .await;
    assert!(got.is_ok(), "the committed task woke its agent");
    assert!(
        store.with_queued_work(std::slice::from_ref(&agent)).await.expect("queued") == [agent.clone()],
        "the safety net sees the queued task"
    );
}
