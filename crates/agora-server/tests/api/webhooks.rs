//! Webhooks (SPEC §7): signed deliveries to a real local receiver, retries, 410, the
//! failure streak, redelivery, the SSRF guard, subscriptions and ownership.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use agora_client::{
    Client,
    types::{TopUpRequest, WebhookPatch, WebhookRequest, WebhookWithSecret},
};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Backend, TestApp, assert_error, eventually, test_config};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Debug, Default)]
struct Inner {
    got: Vec<Received>,
    /// Statuses to answer, in order; then 200.
    script: VecDeque<u16>,
}

/// A real HTTP receiver on 127.0.0.1 that records every request and answers with a
/// scripted status.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new().route("/hook", post(receive)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{addr}/hook"), inner }
    }

    /// Answers the next requests with these statuses (then 200 again).
    pub fn answer(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().script.extend(statuses);
    }

    pub fn got(&self) -> Vec<Received> {
        self.inner.lock().unwrap().got.clone()
    }

    /// Waits until at least `n` requests came, and returns them all.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        eventually(secs, &format!("{n} webhook requests"), || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn receive(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut inner = inner.lock().unwrap();
    inner.got.push(Received { headers, body: String::from_utf8_lossy(&body).into_owned() });
    StatusCode::from_u16(inner.script.pop_front().unwrap_or(200)).unwrap()
}

/// Verifies a delivery the way the Standard Webhooks specification says, written here
/// independently of the server's signer: the HMAC-SHA256, keyed with the base64 bytes after
/// `whsec_`, of `{webhook-id}.{webhook-timestamp}.{body}`, must equal one of the `v1,`
/// signatures; the timestamp must be within five minutes.
pub fn verify(secret: &str, r: &Received, body: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - ts).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.header("webhook-id"), ts, body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.header("webhook-signature").split(' ').any(|s| s == expected)
}

/// Test configuration with private (loopback, http) targets allowed.
pub fn private_config() -> agora_server::Config {
    agora_server::Config { allow_private_webhooks: true, worker_interval_ms: 50, ..test_config() }
}

async fn top_up(admin: &Client, account: &str, amount: i64) {
    let req = TopUpRequest { amount, currency: "PTS".into(), reason: None };
    admin.top_up(account, &req).await.unwrap();
}

async fn register(client: &Client, url: &str, types: &[&str]) -> WebhookWithSecret {
    client
        .create_webhook(&WebhookRequest {
            url: url.to_owned(),
            event_types: Some(types.iter().map(|s| (*s).to_owned()).collect()),
            description: Some("test receiver".into()),
            active: None,
        })
        .await
        .unwrap()
}

async fn deliveries_are_signed_and_verifiable(backend: Backend) {
    let app = TestApp::with_config(backend, private_config()).await;
    let receiver = Receiver::start().await;
    let (human, client) = app.human("Hook Owner").await;
    let created = register(&client, &receiver.url, &["payment.*"]).await;
    assert!(created.secret.starts_with("whsec_"));
    assert_eq!(created.webhook.event_types, ["payment.*"]);
    // The secret is shown once: listing never shows it.
    let listed = app.send(None, Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(listed.status, 401);
    let listed = client.webhooks().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&created.secret));

    let admin = app.admin().await;
    top_up(&admin, &human.account.id, 250).await;
    let got = receiver.wait_for(1, 10).await;
    let r = &got[0];
    assert!(r.header("webhook-id").starts_with("dlv_"), "{:?}", r.headers);
    assert_eq!(r.header("x-agora-event"), "payment.topped_up");
    assert_eq!(r.header("content-type"), "application/json");
    assert!(verify(&created.secret, r, &r.body), "the signature verifies");
    let tampered = r.body.replace("250", "999");
    assert_ne!(tampered, r.body);
    assert!(!verify(&created.secret, r, &tampered), "a tampered body does not verify");
    let body = r.json();
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(body["type"], "payment.topped_up");
    assert!(body["created_at"].as_str().is_some());
    assert_eq!(body["data"]["amount"], 250);

    let log = eventually(10, "the delivery logged as delivered", || async {
        let log = client.webhook_deliveries(&created.webhook.id, "").await.unwrap();
        (log.first().is_some_and(|d| d.status == "delivered")).then_some(log)
    })
    .await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].id, r.header("webhook-id"));
    assert_eq!(log[0].attempts, 1);
    assert_eq!(log[0].last_status_code, Some(200));
    assert_eq!(log[0].attempt_log.len(), 1);
    assert_eq!(log[0].event_id, body["id"]);

    // A rotated secret signs what follows; for 24 h the old one signs beside it (one
    // signature each), so a receiver still holding it verifies too. The answer says until
    // when.
    let rotated = client.rotate_endpoint_secret(&created.webhook.id).await.unwrap();
    assert_ne!(rotated.secret, created.secret);
    let until = rotated.previous_secret_valid_until.as_deref().expect("the overlap is stated");
    let until = agora_core::Timestamp::parse_rfc3339(until).unwrap();
    let hours = (until.millis() - agora_core::Timestamp::now().millis()) / 3_600_000;
    assert!((23..=24).contains(&hours), "about 24 h: {hours}");
    top_up(&admin, &human.account.id, 5).await;
    let got = receiver.wait_for(2, 10).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 2, "two signatures");
    assert!(verify(&rotated.secret, &got[1], &got[1].body));
    assert!(verify(&created.secret, &got[1], &got[1].body), "the old secret still verifies");

    // The ping is signed too.
    let ping = client.ping_webhook(&created.webhook.id).await.unwrap();
    assert!(ping.delivered && ping.status_code == Some(200), "{ping:?}");
    let got = receiver.wait_for(3, 5).await;
    assert_eq!(got[2].header("x-agora-event"), "webhook.ping");
    assert!(verify(&rotated.secret, &got[2], &got[2].body));
    // And it is in the endpoint's delivery log, with its one attempt; it is not redelivered.
    assert_eq!(got[2].header("webhook-id"), ping.delivery_id);
    let log = client.webhook_deliveries(&created.webhook.id, "").await.unwrap();
    let logged = log.iter().find(|d| d.id == ping.delivery_id).expect("the ping is logged");
    assert_eq!((logged.event_type.as_str(), logged.status.as_str()), ("webhook.ping", "delivered"));
    assert_eq!((logged.attempts, logged.attempt_log.len(), logged.last_status_code), (1, 1, Some(200)));
    let again = client
        .send(Method::POST, &format!("/api/v1/webhooks/deliveries/{}/redeliver", ping.delivery_id), None, &[])
        .await
        .unwrap();
    assert_error(&again, 400, "PING_NOT_REDELIVERED");
    assert_eq!(app.drain_webhooks().await.delivered, 0, "the ping is never sent again");

    // After the overlap only the new secret signs.
    app.advance(std::time::Duration::from_secs(24 * 3600 + 60));
    // (Login tokens expire with the clock too: a fresh admin session.)
    let admin = app.admin().await;
    top_up(&admin, &human.account.id, 6).await;
    let got = receiver.wait_for(4, 10).await;
    assert_eq!(got[3].header("webhook-signature").split(' ').count(), 1);
    assert!(verify(&rotated.secret, &got[3], &got[3].body));
    assert!(!verify(&created.secret, &got[3], &got[3].body), "the old secret no longer verifies");
}

async fn only_subscribed_events_of_ones_own_are_delivered(backend: Backend) {
    let app = TestApp::with_config(backend, private_config()).await;
    let (tasks_rx, payments_rx, other_rx) =
        (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    let (human, client) = app.human("Subscriber").await;
    let (_, other) = app.human("Bystander").await;
    register(&client, &tasks_rx.url, &["task.*"]).await;
    register(&client, &payments_rx.url, &["payment.topped_up"]).await;
    register(&other, &other_rx.url, &["*"]).await;
    let admin = app.admin().await;
    top_up(&admin, &human.account.id, 10).await;
    payments_rx.wait_for(1, 10).await;
    // Give the fan-out time to (wrongly) deliver elsewhere: one more event for another
    // account, then its delivery, are proof that the first event was fully projected.
    let bystander = other.me().await.unwrap();
    top_up(&admin, &bystander.id, 1).await;
    other_rx.wait_for(1, 10).await;
    assert_eq!(tasks_rx.got().len(), 0, "a task.* endpoint gets no payment events");
    assert_eq!(other_rx.got().len(), 1, "nobody gets another account's events");
    assert_eq!(payments_rx.got().len(), 1);
}

async fn failures_are_retried_until_a_success(backend: Backend) {
    let config =
        agora_server::Config { webhook_retry_schedule: "100ms,100ms,100ms".into(), ..private_config() };
    let app = TestApp::with_config(backend, config).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 503]);
    let (human, client) = app.human("Retry").await;
    let hook = register(&client, &receiver.url, &["*"]).await;
    let admin = app.admin().await;
    top_up(&admin, &human.account.id, 7).await;
    let got = receiver.wait_for(3, 10).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "every retry carries the same webhook-id: {ids:?}");
    assert!(got.iter().all(|r| r.body == got[0].body), "and the same body");
    let log = eventually(10, "delivered after two failures", || async {
        let log = client.webhook_deliveries(&hook.webhook.id, "status=delivered").await.unwrap();
        (!log.is_empty()).then_some(log)
    })
    .await;
    let codes: Vec<Option<i64>> = log[0].attempt_log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(200)]);
    assert_eq!(log[0].attempts, 3);
    assert!(log[0].attempt_log[0].error.as_deref().is_some_and(|e| e.contains("500")));
    // Delivered: no more attempts come, however long one waits.
    app.advance(std::time::Duration::from_secs(3600));
    assert_eq!(app.drain_webhooks().await.delivered, 0);
    assert_eq!(receiver.got().len(), 3);
    let client = app.sign_in_again(&human).await;
    let hook = &client.webhooks().await.unwrap()[0];
    assert!(hook.active && hook.failing_since.is_none(), "a success ends the failure streak: {hook:?}");
}

async fn attempts_run_out_and_a_failing_endpoint_is_disabled(backend: Backend) {
    let config = agora_server::Config {
        webhook_retry_schedule: "150ms".into(),
        // 0.36 s: the second failure comes after it.
        webhook_disable_after_hours: 0.0001,
        ..private_config()
    };
    let app = TestApp::with_config(backend, config).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500; 20]);
    let (human, client) = app.human("Flaky").await;
    let hook = register(&client, &receiver.url, &["payment.*"]).await;
    let admin = app.admin().await;
    top_up(&admin, &human.account.id, 3).await;
    let log = eventually(10, "the delivery failed for good", || async {
        let log = client.webhook_deliveries(&hook.webhook.id, "status=failed").await.unwrap();
        (!log.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log[0].attempts, 2, "one attempt and one retry: {:?}", log[0]);
    assert_eq!(receiver.got().len(), 2);
    // Failing since the first attempt, for longer than allowed: disabled, owner notified.
    app.advance(std::time::Duration::from_secs(1));
    top_up(&admin, &human.account.id, 4).await;
    let hook = eventually(10, "the endpoint disabled", || async {
        let h = client.webhooks().await.unwrap().remove(0);
        (!h.active).then_some(h)
    })
    .await;
    assert!(hook.disabled_reason.as_deref().is_some_and(|r| r.contains("failed")), "{hook:?}");
    let note = eventually(10, "the owner notified", || async {
        let list = client.notifications(true).await.unwrap();
        list.items.into_iter().find(|n| n.kind == "webhook.disabled")
    })
    .await;
    assert!(note.message.contains(&receiver.url), "{note:?}");
}

async fn gone_disables_and_redelivery_needs_it_enabled(backend: Backend) {
    let app = TestApp::with_config(backend, private_config()).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[410]);
    let (human, client) = app.human("Gone").await;
    let hook = register(&client, &receiver.url, &["*"]).await;
    let admin = app.admin().await;
    top_up(&admin, &human.account.id, 9).await;
    let h = eventually(10, "410 disables the endpoint", || async {
        let h = client.webhooks().await.unwrap().remove(0);
        (!h.active).then_some(h)
    })
    .await;
    assert!(h.disabled_reason.as_deref().is_some_and(|r| r.contains("410")), "{h:?}");
    let failed = client.webhook_deliveries(&hook.webhook.id, "status=failed").await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_status_code, Some(410));
    let token = client.bearer().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/deliveries/{}/redeliver", failed[0].id);
    assert_error(&app.send(Some(&token), Method::POST, &path, None).await, 409, "WEBHOOK_DISABLED");

    // Someone else cannot see or redeliver it.
    let (_, stranger) = app.human("Stranger").await;
    let st = stranger.bearer().unwrap().to_owned();
    assert_error(&app.send(Some(&st), Method::POST, &path, None).await, 404, "NOT_FOUND");
    let hook_path = format!("/api/v1/webhooks/{}", hook.webhook.id);
    assert_error(&app.send(Some(&st), Method::GET, &hook_path, None).await, 404, "NOT_FOUND");
    assert_error(
        &app.send(Some(&st), Method::GET, &format!("{hook_path}/deliveries"), None).await,
        404,
        "NOT_FOUND",
    );
    assert_error(&app.send(Some(&st), Method::DELETE, &hook_path, None).await, 404, "NOT_FOUND");

    let enabled = client
        .update_webhook(&hook.webhook.id, &WebhookPatch { active: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert!(enabled.active && enabled.disabled_reason.is_none());
    let again = client.redeliver(&failed[0].id).await.unwrap();
    assert_eq!(again.status, "pending");
    let got = receiver.wait_for(2, 10).await;
    assert_eq!(got[1].header("webhook-id"), failed[0].id, "a redelivery keeps its webhook-id");
    eventually(10, "the redelivery logged", || async {
        let d = client.webhook_deliveries(&hook.webhook.id, "status=delivered").await.unwrap();
        d.first().filter(|d| d.attempts == 2).cloned()
    })
    .await;

    // Deleting removes the endpoint and its log.
    client.delete_webhook(&hook.webhook.id).await.unwrap();
    assert_error(&app.send(Some(&token), Method::GET, &hook_path, None).await, 404, "NOT_FOUND");
}

async fn the_ssrf_guard_refuses_private_targets(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (_, client) = app.human("Attacker").await;
    let token = client.bearer().unwrap().to_owned();
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://100.64.0.1/hook",
        "https://user:pass@example.com/hook",
        "ftp://example.com/hook",
    ] {
        let reply =
            app.send(Some(&token), Method::POST, "/api/v1/webhooks", Some(json!({ "url": url }))).await;
        if url.starts_with("ftp") {
            assert_eq!(reply.status, 422, "{url}: {}", reply.text);
            continue;
        }
        assert_error(&reply, 422, "WEBHOOK_URL_NOT_ALLOWED");
        assert!(reply.json["error"]["details"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{url}");
    }
    // The reason names the kind of address.
    let reply = app
        .send(Some(&token), Method::POST, "/api/v1/webhooks", Some(json!({ "url": "https://localhost/x" })))
        .await;
    assert!(reply.text.contains("loopback"), "{}", reply.text);
    assert!(client.webhooks().await.unwrap().is_empty(), "nothing was stored");

    // At connect time the resolved address is checked again (a name that resolved to a
    // public address at registration and to a private one now).
    let sender = agora_app::delivery::Sender::new(false).unwrap();
    let secret = ["whsec_AAAA".to_owned()];
    let sent = sender.post("https://localhost:9/hook", &secret, "dlv_x", "webhook.ping", "{}".into()).await;
    assert_eq!(sent.status, None);
    assert!(sent.error.as_deref().is_some_and(|e| e.contains("loopback")), "{sent:?}");
    let sent = sender.post("https://10.0.0.1/hook", &secret, "dlv_x", "webhook.ping", "{}".into()).await;
    assert!(sent.error.as_deref().is_some_and(|e| e.contains("private")), "{sent:?}");

    // Bad subscriptions are a validation error.
    let reply = app
        .send(
            Some(&token),
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({ "url": "https://example.com/h", "event_types": ["task.done"] })),
        )
        .await;
    assert_error(&reply, 422, "VALIDATION_ERROR");
}

/// Two replicas on one database: every delivery is made, none by both.
async fn replicas_share_deliveries_without_doubles(backend: Backend) {
    let mut app = TestApp::with_config(backend, private_config()).await;
    let Some(_replica) = app.replica().await else {
        eprintln!("skipped on SQLite: one process owns the database, so there are no replicas");
        return;
    };
    let receiver = Receiver::start().await;
    let (human, client) = app.human("Busy").await;
    register(&client, &receiver.url, &["payment.topped_up"]).await;
    let admin = app.admin().await;
    for i in 1..=60 {
        top_up(&admin, &human.account.id, i).await;
    }
    receiver.wait_for(60, 30).await;
    // Stop both replicas (each lets its in-flight attempts finish): whatever either sent is
    // in now.
    app.stop_all().await;
    let got = receiver.got();
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(got.len(), 60, "no delivery was sent twice");
}

/// A task's one-off `webhook_url` (briefs set one) gets every event of that task, signed
/// with the requester's account secret; nothing else reaches it.
async fn a_tasks_one_off_url_gets_its_events(backend: Backend) {
    use agora_core::{
        AccountId, Timestamp,
        work::{ServiceRun, TaskTerms},
    };
    let app = TestApp::with_config(backend, private_config()).await;
    let receiver = Receiver::start().await;
    let (human, _) = app.funded_human("Briefer", 100).await;
    let (bot, agent) = app.online_agent("One-off Bot", None, None).await;
    let requester = AccountId::parse(&human.account.id).unwrap();
    let run = ServiceRun {
        service_name: "One-off".into(),
        service_version: "v1".into(),
        input_schema: json!({}),
        output_schema: json!({}),
    };
    let mut task =
        agora_store::Task::new(TaskTerms::Service(run), &requester, "one-off".into(), Timestamp::now());
    task.assignee_id = AccountId::parse(&bot.account.id);
    task.webhook_url = Some(receiver.url.clone());
    let task = app.app.create_task_for_test(task).await.unwrap();
    let claimed = agent.inbox(5).await.unwrap().expect("the task");
    assert_eq!(claimed.id, task.id.to_string());
    agent
        .deliver(
            &claimed.id,
            &agora_client::types::DeliverRequest { text: Some("done".into()), ..Default::default() },
        )
        .await
        .unwrap();
    let got = receiver.wait_for(4, 10).await;
    // Attempts run concurrently: deliveries may arrive in any order.
    let mut types: Vec<&str> = got.iter().map(|r| r.header("x-agora-event")).collect();
    types.sort_unstable();
    assert_eq!(types, ["task.assigned", "task.claimed", "task.created", "task.delivered"]);
    for r in &got {
        assert!(verify(&human.webhook_secret, r, &r.body), "signed with the account secret");
        assert_eq!(r.json()["data"]["task_id"], claimed.id);
    }
}

both_backends!(
    a_tasks_one_off_url_gets_its_events,
    deliveries_are_signed_and_verifiable,
    only_subscribed_events_of_ones_own_are_delivered,
    failures_are_retried_until_a_success,
    attempts_run_out_and_a_failing_endpoint_is_disabled,
    gone_disables_and_redelivery_needs_it_enabled,
    the_ssrf_guard_refuses_private_targets,
    replicas_share_deliveries_without_doubles,
);

/// Delivery throughput to a local receiver: `E` events committed at once, each fanned out
/// to one endpoint; prints deliveries per second from the commit to the last receipt. A
/// measurement, not a check (run it in release):
/// `cargo test --release -p agora-server --test api webhook_throughput -- --ignored --nocapture`
async fn webhook_throughput(backend: Backend) {
    use agora_core::{AccountId, EventId, Timestamp};
    const EVENTS: usize = 5_000;
    let app = TestApp::with_config(backend, private_config()).await;
    let receiver = Receiver::start().await;
    let (human, client) = app.human("Firehose").await;
    register(&client, &receiver.url, &["*"]).await;
    let account = AccountId::parse(&human.account.id).unwrap();
    let start = std::time::Instant::now();
    for chunk in 0..(EVENTS / 500) {
        let mut tx = app.store.begin().await.unwrap();
        for i in 0..500 {
            tx.append_event(&agora_store::NewEvent {
                id: EventId::generate(),
                event_type: agora_core::event::EventType::PaymentAdjusted,
                actor_id: None,
                task_id: None,
                audience: vec![account.clone()],
                payload: json!({ "n": chunk * 500 + i, "delta": 1, "currency": "PTS" }),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let committed = start.elapsed();
    receiver.wait_for(EVENTS, 300).await;
    let took = start.elapsed();
    println!(
        "webhook throughput ({backend:?}): {EVENTS} deliveries in {:.2} s = {:.0} deliveries/s (commit took {:.2} s)",
        took.as_secs_f64(),
        EVENTS as f64 / took.as_secs_f64(),
        committed.as_secs_f64()
    );
}

mod bench {
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "a measurement, not a check; run with --ignored --nocapture in release"]
    async fn webhook_throughput_sqlite() {
        super::webhook_throughput(crate::helpers::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "a measurement, not a check; run with --ignored --nocapture in release"]
    async fn webhook_throughput_postgres() {
        if agora_store_postgres::testing::server_url().is_none() {
            return;
        }
        super::webhook_throughput(crate::helpers::Backend::Postgres).await
    }
}
