//! What an outside probe found (issue 20), each as the reproduction that failed before:
//! money that overflowed, and the other findings below.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, test_config};

both_backends!(
    amounts_past_the_maximum_are_refused,
    balances_cannot_overflow_and_the_audit_still_reads,
    a_ban_reaches_the_owners_agents,
);

fn top_up_path(account: &str) -> String {
    format!("/api/v1/admin/accounts/{account}/top-up")
}

async fn amounts_past_the_maximum_are_refused(b: Backend) {
    let app = TestApp::new(b).await;
    let (ann, ann_c) = app.human("Ann").await;
    let admin = app.admin().await;
    let path = top_up_path(&ann.account.id);
    let huge = admin
        .send(Method::POST, &path, Some(&json!({"amount": i64::MAX, "currency": "PTS"})), &[])
        .await
        .unwrap();
    assert_error(&huge, 422, "VALIDATION_ERROR");
    assert_eq!(huge.json["error"]["details"]["errors"][0]["path"], "amount");
    // The default maximum, 10^15 minor units, is accepted; one more is not.
    let max = 1_000_000_000_000_000_i64;
    let ok =
        admin.send(Method::POST, &path, Some(&json!({"amount": max, "currency": "PTS"})), &[]).await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text);
    let over = admin
        .send(Method::POST, &path, Some(&json!({"amount": max + 1, "currency": "PTS"})), &[])
        .await
        .unwrap();
    assert_error(&over, 422, "VALIDATION_ERROR");
    // Prices and rewards have the same ceiling.
    let bounty = json!({"title": "Big", "short_description": "too big", "reward_amount": max + 1,
        "max_delivery_hours": 1});
    let r = ann_c.send(Method::POST, "/api/v1/bounties", Some(&bounty), &[]).await.unwrap();
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(r.json["error"]["details"]["errors"][0]["path"], "reward_amount");
    let (_, agent) = app.agent("Seller", &[]).await;
    let svc = json!({"name": "Pricey", "price": max + 1});
    let r = agent.send(Method::POST, "/api/v1/services", Some(&svc), &[]).await.unwrap();
    assert_error(&r, 422, "VALIDATION_ERROR");
    let pricing = json!({"pricing": {"currency": "PTS", "chat_first_message": max + 1}});
    let r = agent.send(Method::PATCH, "/api/v1/me", Some(&pricing), &[]).await.unwrap();
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(app.pts(&ann_c).await, (max, 0));
}

/// The probe's reproduction: a top-up of i64::MAX, then one more. With the per-operation
/// maximum raised out of the way, the balance check itself must hold.
async fn balances_cannot_overflow_and_the_audit_still_reads(b: Backend) {
    let config = agora_server::Config { max_amount: i64::MAX, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let (u1, u1_c) = app.human("U1").await;
    let admin = app.admin().await;
    let path = top_up_path(&u1.account.id);
    let first = admin
        .send(Method::POST, &path, Some(&json!({"amount": i64::MAX, "currency": "PTS"})), &[])
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
    let second =
        admin.send(Method::POST, &path, Some(&json!({"amount": 1, "currency": "PTS"})), &[]).await.unwrap();
    assert_error(&second, 409, "BALANCE_OUT_OF_RANGE");
    // Another account's top-up would take the funding account past the range too.
    let (u2, u2_c) = app.human("U2").await;
    let r = admin
        .send(Method::POST, &top_up_path(&u2.account.id), Some(&json!({"amount": 1, "currency": "PTS"})), &[])
        .await
        .unwrap();
    assert_error(&r, 409, "BALANCE_OUT_OF_RANGE");
    // Nothing was written by the refusals, and the audit reads the ledger.
    assert_eq!(app.pts(&u1_c).await, (i64::MAX, 0));
    assert_eq!(app.pts(&u2_c).await, (0, 0));
    let audit = admin.ledger_audit().await.unwrap();
    assert!(audit.healthy, "{audit:?}");
    let adjust = json!({"amount": 1, "currency": "PTS", "reason": "one more"});
    let r = admin
        .send(Method::POST, &format!("/api/v1/admin/accounts/{}/adjust", u1.account.id), Some(&adjust), &[])
        .await
        .unwrap();
    assert_error(&r, 409, "BALANCE_OUT_OF_RANGE");
    assert!(admin.ledger_audit().await.unwrap().healthy);
}

/// An owner's ban reaches the agents it registered: their keys are refused, their work
/// fails over as for any ban, and lifting the ban restores them.
async fn a_ban_reaches_the_owners_agents(b: Backend) {
    let app = TestApp::new(b).await;
    let (owner, owner_c) = app.human("Olga").await;
    let made = owner_c
        .create_agent(&agora_client::types::ProfileFields {
            name: Some("Helper".into()),
            pricing: Some(agora_client::types::PricingInput {
                currency: Some("PTS".into()),
                chat_first_message: Some(10),
                chat_subsequent_message: None,
                per_task: None,
                hourly: None,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let agent_c = app.client.with_token(made.api_key.clone());
    agent_c.heartbeat(false).await.unwrap();
    let (_, ann_c) = app.funded_human("Ann", 10).await;
    let turn = ann_c.start_chat(&made.agent.id, "hello").await.unwrap();
    assert_eq!(agent_c.inbox(5).await.unwrap().map(|t| t.id), Some(turn.task_id.clone()));
    assert_eq!(app.pts(&ann_c).await, (0, 10));

    let admin = app.admin().await;
    admin.ban(&owner.account.id, Some("fraud")).await.unwrap();
    let refused = agent_c.send(Method::GET, "/api/v1/me", None, &[]).await.unwrap();
    assert_error(&refused, 403, "ACCOUNT_BANNED");
    let task = ann_c.task(&turn.task_id).await.unwrap();
    assert_eq!(task.status, "failed", "the agent's work failed over with the ban");
    assert_eq!(app.pts(&ann_c).await, (10, 0), "and its requester was refunded");
    let listed = app.client.send(Method::GET, "/api/v1/agents", None, &[]).await.unwrap();
    assert_eq!(listed.json["pagination"]["total"], 0, "a banned owner's agents leave the directory");
    let chat = format!("/api/v1/agents/{}/chats", made.agent.id);
    let r = ann_c.send(Method::POST, &chat, Some(&json!({"message": "still there?"})), &[]).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.text);

    admin.unban(&owner.account.id).await.unwrap();
    assert_eq!(agent_c.send(Method::GET, "/api/v1/me", None, &[]).await.unwrap().status, 200);
    agent_c.heartbeat(false).await.unwrap();
    ann_c.start_chat(&made.agent.id, "welcome back").await.unwrap();
}
