//! The webhook fan-out and delivery claims under concurrency.

use std::{collections::HashSet, sync::Arc};

use agora_core::{AccountId, EventId, Timestamp, WebhookId, account::AccountKind};

use super::{new_account, now};
use crate::{NewEvent, Store, WebhookEndpoint, webhooks};

/// Writers append events while two fan-outs (two replicas) race: every event becomes
/// exactly one delivery and one notification, and racing claimers never take one delivery
/// twice.
pub(super) async fn fan_out_projects_each_event_once(store: Arc<dyn Store>) {
    let owner = new_account(AccountKind::Human, "Hooked", None);
    let mut tx = store.begin().await.expect("begin");
    tx.insert_account(&owner).await.expect("account");
    let endpoint = WebhookEndpoint {
        id: WebhookId::generate(),
        account_id: owner.id.clone(),
        url: "https://hooks.example.com/x".into(),
        description: String::new(),
        event_types: vec!["*".into()],
        secret: "whsec_dGVzdA==".into(),
        active: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now(),
        updated_at: now(),
    };
    tx.insert_webhook_endpoint(&endpoint).await.expect("endpoint");
    tx.commit().await.expect("commit");
    // Project whatever earlier checks left in the log, so only this check's events count.
    drain(store.as_ref()).await;

    let (writers, per_writer) = (8, 25);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (store, owner) = (store.clone(), owner.id.clone());
        set.spawn(async move {
            for i in 0..per_writer {
                let mut tx = store.begin().await.expect("begin");
                tx.append_event(&event(&owner, w * 1000 + i)).await.expect("append");
                tokio::task::yield_now().await;
                tx.commit().await.expect("commit");
            }
        });
    }
    let mut projectors = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let store = store.clone();
        projectors.spawn(async move {
            for _ in 0..200 {
                drain(store.as_ref()).await;
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("writer");
    }
    while let Some(r) = projectors.join_next().await {
        r.expect("projector");
    }
    drain(store.as_ref()).await;
    let total = (writers * per_writer) as u64;
    let deliveries = store.deliveries(&endpoint.id, None, 0, 1000).await.expect("deliveries");
    assert_eq!(deliveries.total, total, "one delivery per event");
    let seqs: HashSet<i64> = deliveries.items.iter().map(|d| d.event_seq).collect();
    assert_eq!(seqs.len() as u64, total, "no event delivered twice");
    let (notes, unread) = store.notifications(&owner.id, false, 0, 1000).await.expect("notifications");
    assert_eq!((notes.total, unread), (total, total), "one notification per event");

    // Two claimers racing: each delivery is taken once.
    let lease = Timestamp::from_millis(now().millis() + 30_000);
    let mut claimers = tokio::task::JoinSet::new();
    for c in 0..2 {
        let store = store.clone();
        claimers.spawn(async move {
            let mut taken = Vec::new();
            loop {
                let mut tx = store.begin().await.expect("begin");
                let jobs =
                    tx.claim_deliveries(now(), lease, &format!("claimer-{c}"), 7).await.expect("claim");
                tx.commit().await.expect("commit");
                if jobs.is_empty() {
                    return taken;
                }
                assert!(
                    jobs.iter()
                        .all(|j| j.url == "https://hooks.example.com/x" && j.secret.starts_with("whsec_"))
                );
                taken.extend(jobs.into_iter().map(|j| j.delivery.id));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = claimers.join_next().await {
        all.extend(r.expect("claimer"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len() as u64, unique.len() as u64), (total, total), "each delivery claimed once");
}

fn event(owner: &AccountId, n: usize) -> NewEvent {
    NewEvent {
        id: EventId::generate(),
        event_type: "payment.adjusted".into(),
        actor_id: None,
        task_id: None,
        audience: vec![owner.clone()],
        payload: serde_json::json!({ "n": n, "delta": 1, "currency": "PTS" }),
        created_at: now(),
    }
}

async fn drain(store: &dyn Store) {
    loop {
        let mut tx = store.begin().await.expect("begin");
        match webhooks::fan_out(tx.as_mut(), 50, now()).await.expect("fan-out") {
            Some(done) if done.events > 0 => tx.commit().await.expect("commit"),
            // Nothing new, or another projector holds the cursor.
            _ => return,
        }
    }
}
