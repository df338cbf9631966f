//! The work engine, the projection of the log and background work, driven through the
//! application with its clock moved forward instead of waiting.

use std::{collections::HashSet, sync::Arc, time::Duration};

use agora_app::{
    App, Principal, Settings, TaskCommand,
    testing::{Backend, TestDb},
};
use agora_core::{
    AccountId, EventId, Timestamp, WebhookId,
    account::{AccountKind, Profile, Role},
    event::EventType,
    task::TaskStatus,
    work::{Delivery, DeliveryInput, ServiceInput},
};
use agora_store::{NewAccount, NewEvent, Store, WebhookEndpoint};

async fn account(store: &dyn Store, kind: AccountKind, name: &str) -> Principal {
    let a = NewAccount {
        id: AccountId::generate(),
        kind,
        role: Role::User,
        name: name.to_owned(),
        email: None,
        password_hash: None,
        owner_id: None,
        profile: Profile::default(),
        webhook_secret: "whsec_dGVzdA==".to_owned(),
        created_at: Timestamp::now(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_account(&a).await.unwrap();
    tx.commit().await.unwrap();
    let account = store.read().account(&a.id).await.unwrap().unwrap();
    Principal { account, credential: None, ip: None }
}

fn text(s: &str) -> Delivery {
    Delivery::parse(DeliveryInput { text: Some(s.into()), ..Default::default() }).unwrap()
}

/// A lease that ran out is taken by the system once: the task fails, the agent's
/// no-response count rises, a second sweep finds nothing, and the timeline is numbered.
async fn expired_leases_are_handled_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = App::new(db.store(), Settings::default());
    let ann = account(db.store().as_ref(), AccountKind::Human, "Ann").await;
    let bot = account(db.store().as_ref(), AccountKind::Agent, "Bot").await;
    app.heartbeat(&bot, false).await.unwrap().commit().await.unwrap();
    let turn = app.start_chat(&ann, bot.id(), "hello").await.unwrap().commit().await.unwrap();
    let claimed = app.claim_next(&bot).await.unwrap().expect("a task");
    assert_eq!(claimed.id, turn.task.id);
    assert_eq!(app.run_due().await.unwrap(), 0, "not due yet");
    app.clock().advance(Duration::from_millis(app.settings().lease_ms as u64 + 1000));
    assert_eq!(app.run_due().await.unwrap(), 1);
    assert_eq!(app.run_due().await.unwrap(), 0, "handled once");
    let detail = app.task(&ann, &turn.task.id).await.unwrap();
    assert_eq!(detail.task.status, TaskStatus::Failed);
    let numbered: Vec<_> =
        detail.timeline.unwrap().iter().map(|e| (e.task_seq, e.event_type.as_str())).collect();
    assert_eq!(
        numbered,
        [
            (Some(1), "task.created"),
            (Some(2), "task.assigned"),
            (Some(3), "task.claimed"),
            (Some(4), "task.failed")
        ]
    );
    let agent = db.store().read().account(bot.id()).await.unwrap().unwrap();
    assert_eq!(agent.counters.no_response, 1);
}

/// Delivered work is accepted by a durable chore once its review time has passed: not
/// before, and once; a requester's own accept cancels the timer.
async fn auto_accept_runs_as_a_chore(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = App::new(db.store(), Settings::default());
    let store = db.store();
    let ann = account(store.as_ref(), AccountKind::Human, "Ann").await;
    let bot = account(store.as_ref(), AccountKind::Agent, "Bot").await;
    app.heartbeat(&bot, false).await.unwrap().commit().await.unwrap();
    let service = app
        .publish_service(
            &bot,
            agora_app::services::NewService {
                terms: ServiceInput { name: Some("Echo".into()), price: Some(0), ..Default::default() },
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = app.run_service(&ann, &service.service.id, serde_json::json!({}), None).await.unwrap();
        let run = run.commit().await.unwrap();
        app.claim_next(&bot).await.unwrap().expect("claimed");
        app.task_command(&bot, &run.id, TaskCommand::Deliver(text("done")))
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        runs.push(run.id);
    }
    assert_eq!(store.read().chore_counts().await.unwrap().queued, 2, "one timer per delivery");
    // The requester accepts the second itself: its timer goes.
    app.task_command(&ann, &runs[1], TaskCommand::Accept).await.unwrap().commit().await.unwrap();
    assert_eq!(store.read().chore_counts().await.unwrap().queued, 1);
    assert_eq!(app.run_chores().await.unwrap().done, 0, "not due yet");
    app.clock().advance(Duration::from_millis(app.settings().auto_accept_ms as u64 + 1000));
    assert_eq!(app.run_chores().await.unwrap().done, 1);
    assert_eq!(app.run_chores().await.unwrap().done, 0, "once");
    let done = app.task(&ann, &runs[0]).await.unwrap().task;
    assert_eq!(done.status, TaskStatus::Completed);
    let accepted = app.task(&ann, &runs[0]).await.unwrap().timeline.unwrap();
    let last = accepted.iter().rev().find(|e| e.event_type == EventType::TaskCompleted).unwrap();
    assert_eq!(last.payload["auto"], true);
    // A free service's runs are not paid runs.
    assert_eq!(app.service(None, &service.service.id).await.unwrap().service.paid_count, 0);
}

/// Writers append events while two fan-outs (two replicas) race: every event becomes
/// exactly one delivery and one notification.
async fn fan_out_projects_each_event_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let store = db.store();
    let apps = [
        App::new(store.clone(), Settings::default()),
        App::new(db.replica().await.unwrap_or_else(|| store.clone()), Settings::default()),
    ];
    let owner = account(store.as_ref(), AccountKind::Human, "Hooked").await;
    let endpoint = WebhookEndpoint {
        id: WebhookId::generate(),
        account_id: owner.id().clone(),
        url: "https://hooks.example.com/x".into(),
        description: String::new(),
        event_types: vec!["*".into()],
        secret: "whsec_dGVzdA==".into(),
        previous_secret: None,
        previous_secret_until: None,
        active: true,
        disabled_reason: None,
        failing_since: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_webhook_endpoint(&endpoint).await.unwrap();
    tx.commit().await.unwrap();
    let (writers, per_writer) = (8, 25);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (store, owner) = (store.clone(), owner.id().clone());
        set.spawn(async move {
            for i in 0..per_writer {
                let mut tx = store.begin().await.unwrap();
                tx.append_event(&NewEvent {
                    id: EventId::generate(),
                    event_type: EventType::PaymentAdjusted,
                    actor_id: None,
                    task_id: None,
                    audience: vec![owner.clone()],
                    payload: serde_json::json!({ "n": w * 1000 + i, "delta": 1, "currency": "PTS" }),
                    created_at: Timestamp::now(),
                })
                .await
                .unwrap();
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
            }
        });
    }
    let mut projectors = tokio::task::JoinSet::new();
    for app in apps.clone() {
        projectors.spawn(async move {
            for _ in 0..200 {
                app.fan_out().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    while let Some(r) = projectors.join_next().await {
        r.unwrap();
    }
    apps[0].fan_out().await.unwrap();
    let total = (writers * per_writer) as u64;
    let deliveries = store.read().deliveries(&endpoint.id, None, 0, 1000).await.unwrap();
    assert_eq!(deliveries.total, total, "one delivery per event");
    let seqs: HashSet<i64> = deliveries.items.iter().filter_map(|d| d.event_seq).collect();
    assert_eq!(seqs.len() as u64, total, "no event delivered twice");
    let (notes, unread) = store.read().notifications(owner.id(), false, 0, 1000).await.unwrap();
    assert_eq!((notes.total, unread), (total, total), "one notification per event");
    let _: Arc<dyn Store> = store;
}

agora_app::both_backends!(
    expired_leases_are_handled_once,
    auto_accept_runs_as_a_chore,
    fan_out_projects_each_event_once
);
