//! The API conventions of SPEC §6, shared by every endpoint: envelope, validation paths,
//! body limit, pagination, idempotency, rate limits, request ids.

use agora_client::types::{CreatedAgent, ProfileFields};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, error_paths, test_config};

both_backends!(
    validation_errors_name_every_failing_path,
    malformed_and_unknown_bodies_are_422,
    bodies_over_the_limit_are_413,
    lists_paginate_with_has_more,
    idempotent_posts_replay_the_first_response,
    a_reused_idempotency_key_with_another_body_is_409,
    concurrent_requests_with_one_key_make_one_effect,
    rate_limits_answer_429_with_retry_after,
    unknown_routes_and_methods_answer_in_the_envelope,
);

async fn validation_errors_name_every_failing_path(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, _) = app.agent("Validated", &[]).await;
    let r = app
        .send(
            reg.api_key.as_deref(),
            Method::PATCH,
            "/api/v1/me",
            Some(json!({
                "skills": ["fine", "NOT fine"],
                "pricing": {"per_task": -5, "currency": "usd"},
                "max_concurrent_tasks": 0,
                "portfolio": [{"title": "t", "url": "javascript:alert(1)", "kind": "gif"}]
            })),
        )
        .await;
    let mut paths = error_paths(&r);
    paths.sort();
    assert_eq!(
        paths,
        [
            "max_concurrent_tasks",
            "portfolio[0].kind",
            "portfolio[0].url",
            "pricing.currency",
            "pricing.per_task",
            "skills[1]"
        ]
    );
    // Nothing was applied.
    let me = app.client.with_token(reg.api_key.unwrap()).me().await.unwrap();
    assert!(me.skills.is_empty() && me.max_concurrent_tasks == 1);
}

async fn malformed_and_unknown_bodies_are_422(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Strict", &[]).await;
    let key = reg.api_key.as_deref();
    let r = app
        .send(key, Method::PATCH, "/api/v1/me", Some(json!({"pricing": {"per_task": 1, "bogus": true}})))
        .await;
    assert_eq!(error_paths(&r), ["pricing.bogus"]);
    let r = app.send(key, Method::PATCH, "/api/v1/me", Some(json!({"skills": "rust"}))).await;
    assert_eq!(error_paths(&r), ["skills"]);
    let r =
        agent.send(Method::PATCH, "/api/v1/me", None, &[("content-type", "application/json")]).await.unwrap();
    assert_eq!(r.status, 200, "an empty body changes nothing: {}", r.text);
    let raw = reqwest::Client::new()
        .patch(app.url("/api/v1/me"))
        .bearer_auth(key.unwrap())
        .header("content-type", "application/json")
        .body("{\"description\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 422);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    assert!(body["error"]["message"].as_str().unwrap().contains("malformed JSON"));
}

async fn bodies_over_the_limit_are_413(b: Backend) {
    let app = TestApp::with_config(b, agora_server::Config { body_limit_bytes: 2048, ..test_config() }).await;
    let (reg, _) = app.agent("Big", &[]).await;
    let big = json!({"description": "x".repeat(4096)});
    let r = app.send(reg.api_key.as_deref(), Method::PATCH, "/api/v1/me", Some(big.clone())).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    // Also when the idempotency layer reads the body first.
    let r = app
        .client
        .with_token(reg.api_key.as_deref().unwrap())
        .send(Method::POST, "/api/v1/agents", Some(&big), &[("idempotency-key", "big-1")])
        .await
        .unwrap();
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let r = app.send(None, Method::POST, "/api/v1/auth/register", Some(big)).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
}

async fn lists_paginate_with_has_more(b: Backend) {
    let app = TestApp::new(b).await;
    for i in 0..5 {
        app.agent(&format!("Pager {i}"), &["paging"]).await;
    }
    let r = app.send(None, Method::GET, "/api/v1/agents?skill=paging&limit=2", None).await;
    assert_eq!(r.json["pagination"], json!({"page": 1, "limit": 2, "total": 5, "has_more": true}));
    assert_eq!(r.json["data"].as_array().unwrap().len(), 2);
    let r = app.send(None, Method::GET, "/api/v1/agents?skill=paging&limit=2&page=3", None).await;
    assert_eq!(r.json["pagination"], json!({"page": 3, "limit": 2, "total": 5, "has_more": false}));
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    let r = app.send(None, Method::GET, "/api/v1/agents?limit=101", None).await;
    assert_eq!(error_paths(&r), ["limit"]);
    let r = app.send(None, Method::GET, "/api/v1/agents?page=0", None).await;
    assert_eq!(error_paths(&r), ["page"]);
}

async fn count_agents(app: &TestApp, q: &str) -> u64 {
    let r = app.send(None, Method::GET, &format!("/api/v1/agents?q={q}"), None).await;
    r.json["pagination"]["total"].as_u64().unwrap()
}

async fn idempotent_posts_replay_the_first_response(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, owner) = app.human("Owner").await;
    let body =
        serde_json::to_value(ProfileFields { name: Some("Idem Bot".into()), ..Default::default() }).unwrap();
    let first = owner
        .send(Method::POST, "/api/v1/agents", Some(&body), &[("idempotency-key", "create-1")])
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    let second = owner
        .send(Method::POST, "/api/v1/agents", Some(&body), &[("idempotency-key", "create-1")])
        .await
        .unwrap();
    assert_eq!(second.status, 201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.json, second.json, "the replay is the first response, byte for byte");
    let created: CreatedAgent = second.data().unwrap();
    assert_eq!(count_agents(&app, "idem%20bot").await, 1, "{}", created.agent.id);

    // Without a key, each POST is its own.
    owner.send(Method::POST, "/api/v1/agents", Some(&body), &[]).await.unwrap();
    assert_eq!(count_agents(&app, "idem%20bot").await, 2);

    // Keys are per account: another account's identical key is its own.
    let (_, other) = app.human("Other").await;
    let theirs = other
        .send(Method::POST, "/api/v1/agents", Some(&body), &[("idempotency-key", "create-1")])
        .await
        .unwrap();
    assert_eq!(theirs.status, 201);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_eq!(count_agents(&app, "idem%20bot").await, 3);
}

async fn a_reused_idempotency_key_with_another_body_is_409(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, owner) = app.human("Owner").await;
    let a = json!({"name": "Bot A"});
    let r = owner.send(Method::POST, "/api/v1/agents", Some(&a), &[("idempotency-key", "k")]).await.unwrap();
    assert_eq!(r.status, 201);
    let r = owner
        .send(Method::POST, "/api/v1/agents", Some(&json!({"name": "Bot B"})), &[("idempotency-key", "k")])
        .await
        .unwrap();
    assert_error(&r, 409, "IDEMPOTENCY_KEY_REUSED");
    // The same key on another endpoint is another request too.
    let r = owner.send(Method::POST, "/api/v1/me/keys", Some(&a), &[("idempotency-key", "k")]).await.unwrap();
    assert_error(&r, 409, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(count_agents(&app, "bot%20b").await, 0);
    let r = owner
        .send(Method::POST, "/api/v1/agents", Some(&a), &[("idempotency-key", &"x".repeat(300))])
        .await
        .unwrap();
    assert_eq!(error_paths(&r), ["Idempotency-Key"]);
}

async fn concurrent_requests_with_one_key_make_one_effect(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, owner) = app.human("Racer").await;
    let body = json!({"name": "Race Bot"});
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (owner, body) = (owner.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            owner
                .send(Method::POST, "/api/v1/agents", Some(&body), &[("idempotency-key", "race")])
                .await
                .unwrap()
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
        ids.insert(r.json["data"]["agent"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every response names the same agent");
    assert_eq!(count_agents(&app, "race%20bot").await, 1, "exactly one agent was created");
}

async fn rate_limits_answer_429_with_retry_after(b: Backend) {
    let mut config = test_config();
    config.rate_limit_per_minute = 5;
    let app = TestApp::with_config(b, config).await;

    // Anonymous calls are limited per IP.
    for _ in 0..5 {
        assert_eq!(app.send(None, Method::GET, "/api/v1/agents", None).await.status, 200);
    }
    let r = app.send(None, Method::GET, "/api/v1/agents", None).await;
    assert_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // A key has its own budget (the agent is made directly: this IP has none left).
    let reg = app.agent_direct("Limited").await;
    for _ in 0..5 {
        assert_eq!(app.send(Some(&reg), Method::GET, "/api/v1/me", None).await.status, 200);
    }
    assert_error(&app.send(Some(&reg), Method::GET, "/api/v1/me", None).await, 429, "RATE_LIMITED");

    // The named `auth` limit guards login per IP.
    let login = json!({"email": "nobody@example.com", "password": "whatever1"});
    let config_limited = TestApp::with_config(b, {
        let mut c = test_config();
        c.rate_limits.insert("auth".into(), "2/minute".parse().unwrap());
        c
    })
    .await;
    for _ in 0..2 {
        let r = config_limited.send(None, Method::POST, "/api/v1/auth/token", Some(login.clone())).await;
        assert_error(&r, 401, "INVALID_CREDENTIALS");
    }
    let r = config_limited.send(None, Method::POST, "/api/v1/auth/token", Some(login)).await;
    assert_error(&r, 429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
}

async fn unknown_routes_and_methods_answer_in_the_envelope(b: Backend) {
    let app = TestApp::new(b).await;
    let r = app.send(None, Method::GET, "/api/v1/no-such-thing", None).await;
    assert_error(&r, 404, "NOT_FOUND");
    let r = app.send(None, Method::DELETE, "/api/v1/agents", None).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    let id = r.header("x-request-id").unwrap();
    assert!(id.starts_with("req_"), "{id}");
    // A caller's own request id is kept.
    let r = app.client.send(Method::GET, "/healthz", None, &[("x-request-id", "trace-me-42")]).await.unwrap();
    assert_eq!(r.header("x-request-id"), Some("trace-me-42"));
}
