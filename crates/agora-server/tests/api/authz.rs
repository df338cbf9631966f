//! The authorization matrix, generated from the OpenAPI document: every operation the
//! document lists is called as anonymous, as an unrelated account, as an admin and as its
//! rightful actor, and each answer must be the expected class — allowed (anything but 401,
//! 403 and 404: a 400 or 409 about the object's state still means access was granted),
//! 401, 403 or 404. An operation in the document without an entry here fails the test, so
//! a new endpoint cannot skip the matrix.

use std::{collections::BTreeSet, time::Duration};

use agora_client::{Client, types::ProfileFields};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, test_config};

both_backends!(every_documented_operation_answers_each_principal_as_expected);

/// The class of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exp {
    /// Access granted: any status but 401, 403 and 404 (and never a 5xx).
    Allow,
    /// 401: who are you?
    Unauth,
    /// 403: you may not.
    Forbidden,
    /// 404: not yours, so not there.
    Hidden,
}
use Exp::{Allow, Forbidden, Hidden, Unauth};

/// Who does an operation when it is done as intended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    /// Ann, a person who buys: the requester of the task, the chat, the bounty; the owner of
    /// the webhook, the key, the notification.
    Requester,
    /// Bot, the agent doing the task and offering the service.
    Agent,
    /// Olga, the person who registered Bot.
    Owner,
    Admin,
}

/// One row: an operation, its actor and body, and what the three others get.
struct Row {
    method: &'static str,
    path: &'static str,
    actor: Actor,
    body: Option<Value>,
    anonymous: Exp,
    stranger: Exp,
    admin: Exp,
    /// 0, or it changes what later rows use (1: a delete), or ends every caller's session
    /// (2: logout): rows run in this order.
    late: u8,
}

fn row(
    method: &'static str,
    path: &'static str,
    actor: Actor,
    anonymous: Exp,
    stranger: Exp,
    admin: Exp,
) -> Row {
    Row { method, path, actor, body: None, anonymous, stranger, admin, late: 0 }
}

impl Row {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn late(mut self) -> Self {
        self.late = 1;
        self
    }

    fn last(mut self) -> Self {
        self.late = 2;
        self
    }
}

/// The matrix. Public reads are allowed to everyone; a person's own collections (`/me`,
/// `/wallet`, `/tasks`) are allowed to every account, each seeing its own; someone else's
/// object is 404 to strangers and admins alike (admins act through `/admin`, not by
/// reading everyone's tasks); admin routes are 403 to everyone else.
fn matrix() -> Vec<Row> {
    use Actor::*;
    vec![
        // Admin.
        row("POST", "/api/v1/admin/accounts/{id}/adjust", Admin, Unauth, Forbidden, Allow)
            .body(json!({"amount": 1, "currency": "PTS", "reason": "matrix"})),
        row("POST", "/api/v1/admin/accounts/{id}/ban", Admin, Unauth, Forbidden, Allow)
            .body(json!({"reason": "matrix"}))
            .late(),
        row("POST", "/api/v1/admin/accounts/{id}/quota", Admin, Unauth, Forbidden, Allow)
            .body(json!({"kind": "bonus", "units": 1, "reason": "matrix"})),
        row("POST", "/api/v1/admin/accounts/{id}/top-up", Admin, Unauth, Forbidden, Allow)
            .body(json!({"amount": 1, "currency": "PTS"})),
        row("POST", "/api/v1/admin/accounts/{id}/unban", Admin, Unauth, Forbidden, Allow).body(json!({})),
        row("GET", "/api/v1/admin/bids/pending-review", Admin, Unauth, Forbidden, Allow),
        row("POST", "/api/v1/admin/bids/{id}/approve", Admin, Unauth, Forbidden, Allow).body(json!({})),
        row("POST", "/api/v1/admin/bids/{id}/reject", Admin, Unauth, Forbidden, Allow).body(json!({})),
        row("GET", "/api/v1/admin/ledger/audit", Admin, Unauth, Forbidden, Allow),
        row("GET", "/api/v1/admin/revenue", Admin, Unauth, Forbidden, Allow),
        // The agent protocol: agents only (a person has no inbox).
        row("POST", "/api/v1/agent/heartbeat", Agent, Unauth, Forbidden, Forbidden).body(json!({})),
        row("GET", "/api/v1/agent/inbox?wait=0", Agent, Unauth, Forbidden, Forbidden),
        // Agents: the directory is public; anyone signed in may register an agent of theirs
        // and chat with one.
        row("GET", "/api/v1/agents", Requester, Allow, Allow, Allow),
        row("POST", "/api/v1/agents", Owner, Unauth, Allow, Allow).body(json!({"name": "Another"})),
        row("GET", "/api/v1/agents/{id}", Requester, Allow, Allow, Allow),
        row("POST", "/api/v1/agents/{id}/chats", Requester, Unauth, Allow, Allow)
            .body(json!({"message": "hi"})),
        // Authentication: the body's credential decides, not the caller.
        row("POST", "/api/v1/auth/logout", Requester, Unauth, Allow, Allow).body(json!({})).last(),
        row("POST", "/api/v1/auth/refresh", Requester, Unauth, Unauth, Unauth)
            .body(json!({"refresh_token": "rt_not_a_real_refresh_token"})),
        row("POST", "/api/v1/auth/register", Requester, Allow, Allow, Allow)
            .body(json!({"account_type": "agent", "name": "Newcomer"})),
        row("POST", "/api/v1/auth/token", Requester, Allow, Allow, Allow),
        // Bounties: an open one is every account's to see and claim; only its poster cancels it.
        row("GET", "/api/v1/bounties", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/bounties", Requester, Unauth, Allow, Allow).body(json!({
            "title": "Matrix", "short_description": "a bounty", "reward_amount": 1, "max_delivery_hours": 1
        })),
        row("GET", "/api/v1/bounties/{id}", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/bounties/{id}/cancel", Requester, Unauth, Hidden, Hidden).body(json!({})).late(),
        row("POST", "/api/v1/bounties/{id}/claim", Agent, Unauth, Allow, Allow).body(json!({})),
        // Bids: a bid is its job's requester's to accept, reject and counter, and its
        // bidder's to withdraw and to answer a counter with; everyone else's is 404.
        row("GET", "/api/v1/bids", Agent, Unauth, Allow, Allow),
        row("POST", "/api/v1/bids/{id}/counter", Requester, Unauth, Hidden, Hidden)
            .body(json!({"amount": 3})),
        row("POST", "/api/v1/bids/{id}/counter/accept", Agent, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/bids/{id}/counter/decline", Agent, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/bids/{id}/reject", Requester, Unauth, Hidden, Hidden).body(json!({})).late(),
        row("POST", "/api/v1/bids/{id}/withdraw", Agent, Unauth, Hidden, Hidden).body(json!({})).late(),
        row("POST", "/api/v1/bids/{id}/accept", Requester, Unauth, Hidden, Hidden).body(json!({})).late(),
        // Chats: the requester's.
        row("POST", "/api/v1/chats/{chat_id}/messages", Requester, Unauth, Hidden, Hidden)
            .body(json!({"message": "and another thing"})),
        // The live stream: one's own events.
        row("GET", "/api/v1/events/stream", Requester, Unauth, Allow, Allow),
        // Invitations: one's own.
        row("GET", "/api/v1/invitations", Agent, Unauth, Allow, Allow),
        // Jobs: a public job is every account's to see and bid on; its requester's to change,
        // invite to, cancel and close.
        row("GET", "/api/v1/jobs", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/jobs", Requester, Unauth, Allow, Allow)
            .body(json!({"title": "Matrix", "budget_max": 5})),
        row("GET", "/api/v1/jobs/{id}", Requester, Unauth, Allow, Allow),
        row("PATCH", "/api/v1/jobs/{id}", Requester, Unauth, Hidden, Hidden)
            .body(json!({"title": "Matrix 2"})),
        row("GET", "/api/v1/jobs/{id}/bids", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/jobs/{id}/bids", Agent, Unauth, Allow, Allow).body(json!({"amount": 4})),
        row("POST", "/api/v1/jobs/{id}/invitations", Requester, Unauth, Hidden, Hidden),
        row("POST", "/api/v1/jobs/{id}/cancel", Requester, Unauth, Hidden, Hidden).body(json!({})).late(),
        row("POST", "/api/v1/jobs/{id}/close", Requester, Unauth, Hidden, Hidden).body(json!({})).late(),
        // Oneself.
        row("GET", "/api/v1/me", Requester, Unauth, Allow, Allow),
        // Auto-bid rules are an agent's.
        row("GET", "/api/v1/me/auto-bid-rules", Agent, Unauth, Allow, Allow),
        row("PUT", "/api/v1/me/auto-bid-rules", Agent, Unauth, Forbidden, Forbidden)
            .body(json!({"enabled": true, "min_price": 1, "max_price": 5})),
        row("PATCH", "/api/v1/me", Requester, Unauth, Allow, Allow).body(json!({"description": "matrix"})),
        row("GET", "/api/v1/me/keys", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/me/keys", Requester, Unauth, Allow, Allow).body(json!({"name": "matrix"})),
        row("DELETE", "/api/v1/me/keys/{id}", Requester, Unauth, Hidden, Hidden).late(),
        row("POST", "/api/v1/me/keys/{id}/rotate", Requester, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/me/webhook-secret/rotate", Requester, Unauth, Allow, Allow).body(json!({})),
        row("GET", "/api/v1/notifications", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/notifications/read-all", Requester, Unauth, Allow, Allow).body(json!({})),
        row("POST", "/api/v1/notifications/{id}/read", Requester, Unauth, Hidden, Hidden).body(json!({})),
        row("GET", "/api/v1/quota", Requester, Unauth, Allow, Allow),
        row("GET", "/api/v1/wallet", Requester, Unauth, Allow, Allow),
        row("GET", "/api/v1/wallet/transactions", Requester, Unauth, Allow, Allow),
        // Services: public to read; their agent and its owner manage them; anyone else
        // signed in may favour and run them.
        row("GET", "/api/v1/services", Requester, Allow, Allow, Allow),
        row("POST", "/api/v1/services", Agent, Unauth, Allow, Allow)
            .body(json!({"name": "Second", "price": 1})),
        row("GET", "/api/v1/services/{id}", Requester, Allow, Allow, Allow),
        row("PATCH", "/api/v1/services/{id}", Owner, Unauth, Hidden, Hidden).body(json!({"price": 2})),
        row("DELETE", "/api/v1/services/{id}", Owner, Unauth, Hidden, Hidden).late(),
        row("POST", "/api/v1/services/{id}/favorite", Requester, Unauth, Allow, Allow).body(json!({})),
        row("DELETE", "/api/v1/services/{id}/favorite", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/services/{id}/run", Requester, Unauth, Allow, Allow)
            .body(json!({"input_data": {}})),
        // Tasks: their requester and their assignee, no one else.
        row("GET", "/api/v1/tasks", Requester, Unauth, Allow, Allow),
        row("GET", "/api/v1/tasks/{id}", Requester, Unauth, Hidden, Hidden),
        row("POST", "/api/v1/tasks/{id}/accept", Requester, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/tasks/{id}/cancel", Requester, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/tasks/{id}/deliver", Agent, Unauth, Hidden, Hidden)
            .body(json!({"text": "done"})),
        row("POST", "/api/v1/tasks/{id}/fail", Agent, Unauth, Hidden, Hidden).body(json!({"error": "no"})),
        row("POST", "/api/v1/tasks/{id}/messages", Requester, Unauth, Hidden, Hidden)
            .body(json!({"body": "hi"})),
        row("POST", "/api/v1/tasks/{id}/progress", Agent, Unauth, Hidden, Hidden)
            .body(json!({"percent": 10})),
        row("POST", "/api/v1/tasks/{id}/reject", Requester, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/tasks/{id}/revision", Requester, Unauth, Hidden, Hidden)
            .body(json!({"feedback": "x"})),
        // Webhooks: their owner's.
        row("GET", "/api/v1/webhooks", Requester, Unauth, Allow, Allow),
        row("POST", "/api/v1/webhooks", Requester, Unauth, Allow, Allow)
            .body(json!({"url": "http://127.0.0.1:9/other", "event_types": ["*"]})),
        row("POST", "/api/v1/webhooks/deliveries/{id}/redeliver", Requester, Unauth, Hidden, Hidden)
            .body(json!({})),
        row("GET", "/api/v1/webhooks/{id}", Requester, Unauth, Hidden, Hidden),
        row("DELETE", "/api/v1/webhooks/{id}", Requester, Unauth, Hidden, Hidden).late(),
        row("PATCH", "/api/v1/webhooks/{id}", Requester, Unauth, Hidden, Hidden)
            .body(json!({"description": "x"})),
        row("GET", "/api/v1/webhooks/{id}/deliveries", Requester, Unauth, Hidden, Hidden),
        row("POST", "/api/v1/webhooks/{id}/ping", Requester, Unauth, Hidden, Hidden).body(json!({})),
        row("POST", "/api/v1/webhooks/{id}/rotate-secret", Requester, Unauth, Hidden, Hidden).body(json!({})),
    ]
}

/// Everything the rows act on, made through the API.
struct World {
    requester: Client,
    requester_email: String,
    /// A refresh token of the requester's, for the one call that may use it.
    refresh_token: String,
    agent: Client,
    owner: Client,
    stranger: Client,
    admin: Client,
    /// The account admin routes act on.
    victim: String,
    agent_id: String,
    service: String,
    task: String,
    chat: String,
    bounty: String,
    /// A public job of the requester's, with a bid of the agent's on it.
    job: String,
    bid: String,
    /// Two bids of the agent's held for review: one to approve, one to refuse.
    held: [String; 2],
    /// Two keys of the requester's: one to rotate, one to revoke.
    key_to_rotate: String,
    key_to_revoke: String,
    notification: String,
    webhook: String,
    delivery: String,
}

async fn world(app: &TestApp) -> World {
    let (ann, requester) = app.funded_human("Ann", 1000).await;
    let (_, owner) = app.human("Olga").await;
    let (_, stranger) = app.human("Sam").await;
    let (victim, _) = app.human("Victor").await;
    let admin = app.admin().await;
    let made = owner
        .create_agent(&ProfileFields {
            name: Some("Bot".into()),
            pricing: Some(agora_client::types::PricingInput {
                currency: Some("PTS".into()),
                chat_first_message: Some(1),
                chat_subsequent_message: Some(1),
                per_task: None,
                hourly: None,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let agent = app.client.with_token(made.api_key.clone());
    agent.heartbeat(false).await.unwrap();
    let service = agent
        .create_service(&agora_client::types::ServiceRequest {
            name: Some("Matrix".into()),
            price: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let turn = requester.start_chat(&made.agent.id, "hello").await.unwrap();
    assert_eq!(agent.inbox(5).await.unwrap().map(|t| t.id).as_deref(), Some(turn.task_id.as_str()));
    let bounty = requester
        .post_bounty(&agora_client::types::BountyRequest {
            title: "Open".into(),
            short_description: "for anyone".into(),
            reward_amount: 5,
            max_delivery_hours: 24,
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    // The agent's first two bids wait for review (`bid_review_first_bids` is 2 here).
    let mut jobs = Vec::new();
    let mut bids = Vec::new();
    for title in ["Held A", "Held B", "Matrix job"] {
        let posted: agora_client::types::JobCreated =
            requester.post("/api/v1/jobs", &json!({"title": title, "budget_max": 10})).await.unwrap();
        let bid: agora_client::types::Bid =
            agent.post(&format!("/api/v1/jobs/{}/bids", posted.job.id), &json!({"amount": 5})).await.unwrap();
        jobs.push(posted.job.id);
        bids.push(bid.id);
    }
    let key_to_rotate = requester.create_key(Some("to rotate")).await.unwrap().info.id;
    let key_to_revoke = requester.create_key(Some("to revoke")).await.unwrap().info.id;
    let hook = requester
        .create_webhook(&agora_client::types::WebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: Some(vec!["*".into()]),
            description: None,
            active: None,
        })
        .await
        .unwrap()
        .webhook
        .id;
    let delivery = requester.ping_webhook(&hook).await.unwrap().delivery_id;
    let notification = requester.notifications(false).await.unwrap().items[0].id.clone();
    let email = ann.account.email.clone().unwrap();
    let refresh_token = app.client.token(&email, "correct horse battery").await.unwrap().refresh_token;
    World {
        requester,
        requester_email: email,
        refresh_token,
        agent,
        owner,
        stranger,
        admin,
        victim: victim.account.id,
        agent_id: made.agent.id,
        service,
        task: turn.task_id,
        chat: turn.chat_id.unwrap(),
        bounty,
        job: jobs[2].clone(),
        bid: bids[2].clone(),
        held: [bids[0].clone(), bids[1].clone()],
        key_to_rotate,
        key_to_revoke,
        notification,
        webhook: hook,
        delivery,
    }
}

impl World {
    /// The row's path with its placeholder filled in with the object the row is about.
    fn path(&self, row: &Row) -> String {
        let id = match row.path.split('/').nth(3).unwrap_or("") {
            "admin" if row.path.ends_with("/approve") => &self.held[0],
            "admin" if row.path.starts_with("/api/v1/admin/bids/") => &self.held[1],
            "admin" => &self.victim,
            "bids" => &self.bid,
            "jobs" => &self.job,
            "agents" => &self.agent_id,
            "bounties" => &self.bounty,
            "me" if row.path.ends_with("/rotate") => &self.key_to_rotate,
            "me" => &self.key_to_revoke,
            "notifications" => &self.notification,
            "services" => &self.service,
            "tasks" => &self.task,
            "webhooks" if row.path.contains("/deliveries/") => &self.delivery,
            "webhooks" => &self.webhook,
            _ => "",
        };
        row.path.replace("{id}", id).replace("{chat_id}", &self.chat)
    }

    fn actor(&self, actor: Actor) -> &Client {
        match actor {
            Actor::Requester => &self.requester,
            Actor::Agent => &self.agent,
            Actor::Owner => &self.owner,
            Actor::Admin => &self.admin,
        }
    }
}

fn class(status: u16) -> Option<Exp> {
    match status {
        401 => Some(Unauth),
        403 => Some(Forbidden),
        404 => Some(Hidden),
        500.. => None,
        _ => Some(Allow),
    }
}

async fn call(client: &Client, row: &Row, path: &str, body: Option<&Value>) -> u16 {
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    if path.starts_with("/api/v1/events/stream") {
        // A live stream never ends: its status is all there is to see.
        let mut req = reqwest::Client::new().get(format!("{}{path}", client.base()));
        if let Some(token) = client.bearer() {
            req = req.bearer_auth(token);
        }
        let resp = tokio::time::timeout(Duration::from_secs(10), req.send()).await.unwrap().unwrap();
        return resp.status().as_u16();
    }
    client.send(method, path, body, &[]).await.unwrap().status
}

async fn every_documented_operation_answers_each_principal_as_expected(b: Backend) {
    let config =
        agora_server::Config { allow_private_webhooks: true, bid_review_first_bids: 2, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let doc = serde_json::to_value(agora_server::openapi()).unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone()))
        })
        .filter(|(m, _)| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()))
        .collect();
    let mut rows = matrix();
    let listed: BTreeSet<(String, String)> =
        rows.iter().map(|r| (r.method.to_owned(), r.path.split('?').next().unwrap().to_owned())).collect();
    let missing: Vec<_> = documented.difference(&listed).collect();
    assert!(missing.is_empty(), "documented operations without a row in the matrix: {missing:?}");
    let stale: Vec<_> = listed.difference(&documented).collect();
    assert!(stale.is_empty(), "rows for operations the document does not list: {stale:?}");

    let w = world(&app).await;
    rows.sort_by_key(|r| r.late);
    let mut wrong = Vec::new();
    for r in &rows {
        let path = w.path(r);
        let body = if r.path == "/api/v1/auth/token" {
            Some(json!({"email": w.requester_email, "password": "correct horse battery"}))
        } else if r.path.ends_with("/invitations") {
            Some(json!({"provider_id": w.agent_id}))
        } else {
            r.body.clone()
        };
        // The refused first, then the one it is meant for, so nothing refused can have
        // been changed by the allowed call.
        for (who, client, expected) in [
            ("anonymous", &app.client, r.anonymous),
            ("stranger", &w.stranger, r.stranger),
            ("admin", &w.admin, r.admin),
            ("actor", w.actor(r.actor), Allow),
        ] {
            if who == "admin" && r.actor == Actor::Admin {
                continue;
            }
            // Refreshing needs a real refresh token; only its holder has one.
            let body = if r.path == "/api/v1/auth/refresh" && who == "actor" {
                Some(json!({"refresh_token": w.refresh_token}))
            } else {
                body.clone()
            };
            let status = call(client, r, &path, body.as_ref()).await;
            if class(status) != Some(expected) {
                wrong.push(format!("{} {} as {who}: {status}, expected {expected:?}", r.method, r.path));
            }
        }
    }
    assert!(wrong.is_empty(), "{} deviations:\n{}", wrong.len(), wrong.join("\n"));
}
