//! The rules batch 1 left open, as settled by the application layer: a revision's deadline,
//! a banned worker's delivered work, a sign-off that an old poll does not undo, `paid_count`
//! counting paid runs only, and an owner with its agents as one party.

use agora_client::{
    Client,
    types::{DeliverRequest, ProfileFields, Registered, Service, ServiceRequest},
};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, test_config};

both_backends!(
    a_revision_past_its_deadline_may_be_cancelled_and_refunded,
    the_revision_deadline_is_a_setting,
    a_banned_workers_delivery_waits_for_the_requester,
    a_sign_off_holds_while_an_old_poll_waits,
    paid_count_counts_paid_runs_only,
    an_owner_and_its_agents_are_one_party,
);

const HOUR: u64 = 3600;

fn service(price: i64) -> ServiceRequest {
    ServiceRequest {
        name: Some("Summaries".into()),
        short_description: Some("Summarises a text".into()),
        price: Some(price),
        ..Default::default()
    }
}

fn done() -> DeliverRequest {
    DeliverRequest { text: Some("done".into()), ..Default::default() }
}

/// An online agent with a published service at `price`.
async fn agent_with_service(app: &TestApp, price: i64) -> (Registered, Client, Service) {
    let (agent, client) = app.online_agent("Summariser", None, None).await;
    let svc = client.create_service(&service(price)).await.unwrap();
    (agent, client, svc)
}

/// `requester` runs the service; `agent` takes it from its inbox and delivers.
async fn delivered_run(requester: &Client, agent: &Client, service_id: &str) -> String {
    let id = requester.run_service(service_id, &json!({})).await.unwrap().task_id;
    assert_eq!(agent.inbox(5).await.unwrap().map(|t| t.id).as_deref(), Some(id.as_str()));
    assert_eq!(agent.deliver(&id, &done()).await.unwrap().task.status, "delivered");
    id
}

async fn cancel_raw(client: &Client, id: &str) -> agora_client::Reply {
    client.send(Method::POST, &format!("/api/v1/tasks/{id}/cancel"), Some(&json!({})), &[]).await.unwrap()
}

async fn a_revision_past_its_deadline_may_be_cancelled_and_refunded(b: Backend) {
    let app = TestApp::new(b).await;
    let (agent, agent_c, svc) = agent_with_service(&app, 100).await;
    let (ann, ann_c) = app.funded_human("Ann", 100).await;
    let id = delivered_run(&ann_c, &agent_c, &svc.id).await;
    let revising = ann_c.request_revision(&id, Some("shorter, please")).await.unwrap().task;
    assert_eq!(revising.status, "in_progress");
    let due = revising.revision_due_at.clone().expect("a revision has a deadline");
    assert_eq!(ann_c.task(&id).await.unwrap().revision_due_at.as_deref(), Some(due.as_str()));

    // Before the deadline the agent is still working on it: no cancelling.
    let early = cancel_raw(&ann_c, &id).await;
    assert_error(&early, 400, "REVISION_NOT_OVERDUE");
    assert_eq!(early.json["error"]["details"]["revision_due_at"], due.as_str());
    assert_eq!(app.pts(&ann_c).await, (0, 100), "still held");

    app.advance(std::time::Duration::from_secs(72 * HOUR + 1));
    let ann_c = app.sign_in_again(&ann).await;
    let cancelled = ann_c.cancel(&id).await.unwrap();
    assert_eq!(cancelled.task.status, "cancelled");
    assert_eq!((cancelled.refunded, cancelled.settled_amount), (100, 0));
    assert_eq!(app.pts(&ann_c).await, (100, 0), "refunded");
    assert_eq!(app.pts(&agent_c).await, (0, 0), "nothing paid");
    let profile = app.client.agent(&agent.account.id).await.unwrap();
    assert_eq!((profile.counters.failed, profile.counters.completed), (1, 0), "it counts as a failure");
    // A late delivery finds the task finished.
    let late = agent_c
        .send(Method::POST, &format!("/api/v1/tasks/{id}/deliver"), Some(&json!({"text": "late"})), &[])
        .await
        .unwrap();
    assert_error(&late, 400, "TASK_FINISHED");
}

async fn the_revision_deadline_is_a_setting(b: Backend) {
    let config = agora_server::Config { revision_hours: 2.0, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let (_, agent_c, svc) = agent_with_service(&app, 10).await;
    let (ann, ann_c) = app.funded_human("Ann", 10).await;
    let id = delivered_run(&ann_c, &agent_c, &svc.id).await;
    ann_c.request_revision(&id, None).await.unwrap();
    app.advance(std::time::Duration::from_secs(2 * HOUR - 60));
    let ann_c = app.sign_in_again(&ann).await;
    assert_error(&cancel_raw(&ann_c, &id).await, 400, "REVISION_NOT_OVERDUE");
    app.advance(std::time::Duration::from_secs(61));
    assert_eq!(ann_c.cancel(&id).await.unwrap().refunded, 10);
}

async fn a_banned_workers_delivery_waits_for_the_requester(b: Backend) {
    let app = TestApp::new(b).await;
    let (agent, agent_c, svc) = agent_with_service(&app, 100).await;
    let (ann, ann_c) = app.funded_human("Ann", 200).await;
    let first = delivered_run(&ann_c, &agent_c, &svc.id).await;
    let second = delivered_run(&ann_c, &agent_c, &svc.id).await;
    // While its worker is in good standing, delivered work is accepted or sent back, not
    // rejected.
    assert_error(
        &ann_c.send(Method::POST, &format!("/api/v1/tasks/{first}/reject"), None, &[]).await.unwrap(),
        400,
        "ASSIGNEE_ACTIVE",
    );

    let admin = app.admin().await;
    admin.ban(&agent.account.id, Some("spam")).await.unwrap();
    // Its timers come due, but nothing is accepted on the requester's behalf.
    app.advance(std::time::Duration::from_secs(72 * HOUR + 1));
    app.run_background().await;
    let ann_c = app.sign_in_again(&ann).await;
    for id in [&first, &second] {
        let task = ann_c.task(id).await.unwrap();
        assert_eq!(task.status, "delivered", "still waiting for the requester");
    }
    assert_eq!(app.pts(&ann_c).await, (0, 200));

    // The requester decides: one rejected (refunded), one accepted (paid).
    let rejected = ann_c.reject(&first).await.unwrap();
    assert_eq!(
        (rejected.task.status.as_str(), rejected.refunded, rejected.settled_amount),
        ("failed", 100, 0)
    );
    let accepted = ann_c.accept(&second).await.unwrap();
    assert_eq!((accepted.task.status.as_str(), accepted.settled_amount), ("completed", 100));
    assert_eq!(app.pts(&ann_c).await, (100, 0));
    // Rejecting is only for delivered work.
    let again = ann_c.send(Method::POST, &format!("/api/v1/tasks/{first}/reject"), None, &[]).await.unwrap();
    assert_error(&again, 400, "TASK_FINISHED");
}

async fn a_sign_off_holds_while_an_old_poll_waits(b: Backend) {
    let app = TestApp::new(b).await;
    let (bot, bot_c) = app.online_agent("Scribe", Some(5), Some(5)).await;
    let (_, ann_c) = app.funded_human("Ann", 100).await;
    let poll = tokio::spawn({
        let bot_c = bot_c.clone();
        async move { bot_c.inbox(30).await.unwrap() }
    });
    app.inbox_waiters(1).await;

    assert_eq!(bot_c.heartbeat(true).await.unwrap().status, "offline");
    // The poll that was waiting before the sign-off does not make the agent available.
    let profile = app.client.agent(&bot.account.id).await.unwrap();
    assert_eq!((profile.online, profile.status.as_deref()), (false, Some("offline")));
    let path = format!("/api/v1/agents/{}/chats", bot.account.id);
    let refused = ann_c.send(Method::POST, &path, Some(&json!({"message": "hi"})), &[]).await.unwrap();
    assert_error(&refused, 503, "AGENT_OFFLINE");

    // The next heartbeat brings it back, and the old poll, still waiting, gets the chat.
    assert_eq!(bot_c.heartbeat(false).await.unwrap().status, "idle");
    let turn = ann_c.start_chat(&bot.account.id, "hi").await.unwrap();
    assert_eq!(poll.await.unwrap().map(|t| t.id), Some(turn.task_id));
}

async fn paid_count_counts_paid_runs_only(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent_c, free) = agent_with_service(&app, 0).await;
    let paid =
        agent_c.create_service(&ServiceRequest { name: Some("Paid".into()), ..service(10) }).await.unwrap();
    let (_, ann_c) = app.funded_human("Ann", 10).await;
    let id = delivered_run(&ann_c, &agent_c, &free.id).await;
    assert_eq!(ann_c.accept(&id).await.unwrap().task.status, "completed");
    let id = delivered_run(&ann_c, &agent_c, &paid.id).await;
    assert_eq!(ann_c.accept(&id).await.unwrap().settled_amount, 10);

    let free = app.client.service(&free.id).await.unwrap();
    assert_eq!((free.paid_count, free.total_revenue), (0, 0), "a free run is not a paid one");
    let paid = app.client.service(&paid.id).await.unwrap();
    assert_eq!((paid.paid_count, paid.total_revenue), (1, 10));
}

async fn an_owner_and_its_agents_are_one_party(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, owner) = app.funded_human("Olga", 1000).await;
    let made = |name: &str| ProfileFields { name: Some(name.into()), ..Default::default() };
    let first = owner.create_agent(&made("First")).await.unwrap();
    let second = owner.create_agent(&made("Second")).await.unwrap();
    let (first_c, second_c) =
        (app.client.with_token(first.api_key.clone()), app.client.with_token(second.api_key.clone()));
    let admin = app.admin().await;
    for agent in [&first, &second] {
        let top_up = agora_client::types::TopUpRequest { amount: 100, currency: "PTS".into(), reason: None };
        admin.top_up(&agent.agent.id, &top_up).await.unwrap();
    }

    // The owner's bounty: neither of its agents may claim it; a stranger may.
    let bounty = agora_client::types::BountyRequest {
        title: "Translate a page".into(),
        short_description: "Into English".into(),
        reward_amount: 100,
        max_delivery_hours: 24,
        ..Default::default()
    };
    let posted = owner.post_bounty(&bounty).await.unwrap();
    let claim = format!("/api/v1/bounties/{}/claim", posted.id);
    for agent in [&first_c, &second_c] {
        assert_error(
            &agent.send(Method::POST, &claim, None, &[]).await.unwrap(),
            403,
            "CANNOT_CLAIM_OWN_TASK",
        );
    }
    // One agent's bounty: neither its sibling nor its owner may claim it.
    let by_agent = first_c.post_bounty(&bounty).await.unwrap();
    let claim_agents = format!("/api/v1/bounties/{}/claim", by_agent.id);
    for party in [&second_c, &owner] {
        let r = party.send(Method::POST, &claim_agents, None, &[]).await.unwrap();
        assert_error(&r, 403, "CANNOT_CLAIM_OWN_TASK");
    }

    // One agent's service: its sibling and its owner may not run it.
    first_c.heartbeat(false).await.unwrap();
    let svc = first_c.create_service(&service(10)).await.unwrap();
    let run = format!("/api/v1/services/{}/run", svc.id);
    for party in [&second_c, &owner] {
        let r = party.send(Method::POST, &run, Some(&json!({"input_data": {}})), &[]).await.unwrap();
        assert_error(&r, 403, "OWN_SERVICE");
    }
    // Nor chat with it: a chat is paid work too.
    let chat = format!("/api/v1/agents/{}/chats", first.agent.id);
    let r = second_c.send(Method::POST, &chat, Some(&json!({"message": "hi"})), &[]).await.unwrap();
    assert_error(&r, 403, "FORBIDDEN");

    // Strangers may do all of it.
    let (_, stranger) = app.agent("Stranger", &[]).await;
    assert_eq!(stranger.claim_bounty(&posted.id).await.unwrap().status, "in_progress");
    let (_, ann_c) = app.funded_human("Ann", 10).await;
    ann_c.run_service(&svc.id, &json!({})).await.unwrap();
    assert_eq!(app.pts(&owner).await, (900, 100), "only the bounty's reward is held");
}
