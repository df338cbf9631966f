//! Webhook deliveries under concurrency, and the projection cursor.

use std::{collections::HashSet, sync::Arc};

use agora_core::{DeliveryId, EventId, Timestamp, WebhookId, account::AccountKind, event::EventType};

use super::{account, now};
use crate::{DeliveryStatus, NewEvent, Store, WebhookDelivery, WebhookEndpoint};

/// 200 pending deliveries, two claimers racing: each is taken once, with its event, its
/// endpoint's URL and secret; a delivery of an inactive endpoint comes without a target.
pub async fn deliveries_are_claimed_once(store: Arc<dyn Store>) {
    let owner = account(store.as_ref(), AccountKind::Human, "Hooked").await;
    let endpoint = WebhookEndpoint {
        id: WebhookId::generate(),
        account_id: owner.clone(),
        url: "https://hooks.example.com/x".into(),
        description: String::new(),
        event_types: vec!["*".into()],
        secret: "whsec_dGVzdA==".into(),
        previous_secret: Some("whsec_b2xk".into()),
        previous_secret_until: Some(now().plus_seconds(60)),
        active: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now(),
        updated_at: now(),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_webhook_endpoint(&endpoint).await.expect("endpoint");
    tx.append_event(&NewEvent {
        id: EventId::generate(),
        event_type: EventType::PaymentAdjusted,
        actor_id: None,
        task_id: None,
        audience: vec![owner.clone()],
        payload: serde_json::json!({}),
        created_at: now(),
    })
    .await
    .expect("event");
    tx.commit().await.expect("commit");
    let end = store.read().last_event_seq().await.expect("end");
    let events = store.read().events_after(end - 1, 1).await.expect("event");
    let event = events.into_iter().next().expect("the event");
    let total = 200;
    let deliveries: Vec<WebhookDelivery> = (0..total)
        .map(|_| WebhookDelivery {
            id: DeliveryId::generate(),
            endpoint_id: Some(endpoint.id.clone()),
            account_id: owner.clone(),
            url: None,
            event_seq: Some(event.seq),
            event_id: event.id.clone(),
            event_type: event.event_type,
            task_id: None,
            status: DeliveryStatus::Pending,
            attempts: 0,
            round_attempts: 0,
            next_attempt_at: now(),
            last_status_code: None,
            last_error: None,
            last_attempt_at: None,
            delivered_at: None,
            created_at: now(),
        })
        .collect();
    let mut tx = store.begin().await.expect("begin");
    tx.insert_deliveries(&deliveries).await.expect("deliveries");
    tx.commit().await.expect("commit");
    let lease = Timestamp::from_millis(now().millis() + 30_000);
    let mut claimers = tokio::task::JoinSet::new();
    for c in 0..2 {
        let (store, event_id) = (store.clone(), event.id.clone());
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
                for j in &jobs {
                    assert_eq!(j.url, "https://hooks.example.com/x");
                    assert_eq!(j.secret, "whsec_dGVzdA==");
                    assert_eq!(j.previous_secret.as_ref().map(|p| p.0.as_str()), Some("whsec_b2xk"));
                    assert_eq!(j.event.id, event_id);
                }
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
    assert_eq!((all.len(), unique.len()), (total, total), "each delivery claimed once");
}

/// The projection cursor is held by one transaction at a time; the others skip it.
pub async fn projection_cursor_is_held_by_one(store: Arc<dyn Store>) {
    let mut first = store.begin().await.expect("begin");
    let at = first.lock_cursor("fanout").await.expect("lock").expect("the cursor");
    first.set_cursor("fanout", at + 5).await.expect("move");
    if store.backend() == "postgres" {
        // SQLite's write lock already keeps a second transaction out until the first ends.
        let mut second = store.begin().await.expect("begin");
        assert_eq!(second.lock_cursor("fanout").await.expect("lock"), None, "held by the first");
        drop(second);
    }
    first.commit().await.expect("commit");
    let mut third = store.begin().await.expect("begin");
    assert_eq!(third.lock_cursor("fanout").await.expect("lock"), Some(at + 5));
}
