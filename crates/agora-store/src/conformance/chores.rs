//! Chores: due ones are claimed once, keyed ones rescheduled in place, and a dead runner's
//! claim is taken again once its lease has run out.

use std::{collections::HashSet, sync::Arc};

use agora_core::Timestamp;

use super::now;
use crate::{ChoreStatus, NewChore, Store};

fn chore(key: Option<&str>, run_at: Timestamp) -> NewChore {
    NewChore {
        kind: "test".into(),
        key: key.map(str::to_owned),
        payload: serde_json::json!({"n": 1}),
        run_at,
        max_attempts: 3,
    }
}

/// Fifty due chores and one for later, three runners racing: each due chore is claimed
/// once, finished once, and the later one waits.
pub async fn chores_run_when_due_and_once(store: Arc<dyn Store>) {
    let t0 = now();
    let mut tx = store.begin().await.expect("begin");
    for _ in 0..50 {
        tx.schedule_chore(&chore(None, t0), t0).await.expect("schedule");
    }
    tx.schedule_chore(&chore(None, t0.plus_seconds(3600)), t0).await.expect("schedule");
    tx.commit().await.expect("commit");
    let mut set = tokio::task::JoinSet::new();
    for r in 0..3 {
        let store = store.clone();
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let token = format!("runner-{r}");
                let mut tx = store.begin().await.expect("begin");
                let got = tx.claim_chores(t0, t0.plus_seconds(300), &token, 4).await.expect("claim");
                tx.commit().await.expect("commit");
                if got.is_empty() {
                    return mine;
                }
                for c in got {
                    assert_eq!((c.status, c.attempts), (ChoreStatus::Running, 1));
                    let mut tx = store.begin().await.expect("begin");
                    assert!(tx.finish_chore(&c.id, &token).await.expect("finish"), "its own claim");
                    tx.commit().await.expect("commit");
                    mine.push(c.id);
                }
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.expect("runner"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (50, 50));
    let counts = store.read().chore_counts().await.expect("counts");
    assert_eq!((counts.queued, counts.running, counts.failed), (1, 0, 0), "the later one waits");
    assert_eq!(store.read().next_chore_at().await.expect("next"), Some(t0.plus_seconds(3600)));
}

/// Scheduling a key again moves its chore instead of adding one; a runner that held the old
/// schedule cannot finish it; a cancelled key is gone.
pub async fn keyed_chores_are_rescheduled_not_doubled(store: Arc<dyn Store>) {
    let t0 = now();
    let mut tx = store.begin().await.expect("begin");
    let first = tx.schedule_chore(&chore(Some("timer:1"), t0), t0).await.expect("schedule");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    let claimed = tx.claim_chores(t0, t0.plus_seconds(300), "old", 10).await.expect("claim");
    tx.commit().await.expect("commit");
    assert_eq!(claimed.len(), 1);
    let mut tx = store.begin().await.expect("begin");
    let moved =
        tx.schedule_chore(&chore(Some("timer:1"), t0.plus_seconds(60)), t0).await.expect("reschedule");
    tx.commit().await.expect("commit");
    assert_eq!(moved.id, first.id, "one chore per key");
    assert_eq!((moved.status, moved.attempts, moved.run_at), (ChoreStatus::Queued, 0, t0.plus_seconds(60)));
    let mut tx = store.begin().await.expect("begin");
    assert!(!tx.finish_chore(&first.id, "old").await.expect("finish"), "the old claim is void");
    tx.commit().await.expect("commit");
    assert_eq!(
        store.read().chore_by_key("timer:1").await.expect("read").map(|c| c.run_at),
        Some(t0.plus_seconds(60))
    );
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.cancel_chore("timer:1").await.expect("cancel"));
    assert!(!tx.cancel_chore("timer:1").await.expect("cancel again"));
    tx.commit().await.expect("commit");
    assert_eq!(store.read().chore_by_key("timer:1").await.expect("read"), None);
}

/// A runner that dies holding a chore leaves it to be claimed again once its lease runs
/// out; a failed attempt is retried, and the last one leaves the chore failed.
pub async fn a_dead_runners_chore_is_taken_again(store: Arc<dyn Store>) {
    let t0 = now();
    let mut tx = store.begin().await.expect("begin");
    let c = tx.schedule_chore(&chore(Some("dead:1"), t0), t0).await.expect("schedule");
    tx.commit().await.expect("commit");
    let claim = |at: Timestamp, token: &'static str| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.expect("begin");
            let got = tx.claim_chores(at, at.plus_seconds(300), token, 10).await.expect("claim");
            tx.commit().await.expect("commit");
            got
        }
    };
    assert_eq!(claim(t0, "dies").await.len(), 1);
    assert!(claim(t0.plus_seconds(299), "early").await.is_empty(), "held while the lease lasts");
    let again = claim(t0.plus_seconds(301), "second").await;
    assert_eq!((again.len(), again[0].attempts), (1, 2), "taken again, attempt counted");
    let mut tx = store.begin().await.expect("begin");
    assert!(!tx.finish_chore(&c.id, "dies").await.expect("finish"), "the dead runner's claim is void");
    assert!(tx.retry_chore(&c.id, "second", Some(t0.plus_seconds(400)), "boom", t0).await.expect("retry"));
    tx.commit().await.expect("commit");
    let third = claim(t0.plus_seconds(401), "third").await;
    assert_eq!(third[0].last_error.as_deref(), Some("boom"));
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.retry_chore(&c.id, "third", None, "gave up", t0).await.expect("fail"));
    tx.commit().await.expect("commit");
    let failed = store.read().chore_by_key("dead:1").await.expect("read").expect("kept");
    assert_eq!((failed.status, failed.attempts), (ChoreStatus::Failed, 3));
    assert!(claim(t0.plus_seconds(10_000), "later").await.is_empty(), "a failed chore stays failed");
    assert_eq!(store.read().chore_counts().await.expect("counts").failed, 1);
}
