//! What an outside probe found (issue 20), each as the reproduction that failed before:
//! money that overflowed, and the other findings below.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Backend, TestApp, assert_error, test_config};

both_backends!(
    amounts_past_the_maximum_are_refused,
    balances_cannot_overflow_and_the_audit_still_reads,
    a_ban_reaches_the_owners_agents,
    half_sent_headers_do_not_hold_a_connection,
    a_body_that_never_arrives_is_408,
    an_answer_before_the_body_says_connection_close,
    connections_past_the_cap_wait_their_turn,
    every_response_carries_the_security_headers,
    an_unreadable_path_id_is_answered_in_the_envelope,
    refused_methods_and_paths_are_rate_limited,
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

/// Reads what the server sends until it closes the connection (or `secs` pass: `None`).
async fn read_to_close(stream: &mut TcpStream, secs: u64) -> Option<String> {
    let mut got = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(secs), stream.read_to_end(&mut got)).await;
    done.ok().map(|_| String::from_utf8_lossy(&got).into_owned())
}

/// Reads one response head and body (by its content-length) without waiting for a close.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// Slowloris: headers that never finish are cut off after the header read timeout.
async fn half_sent_headers_do_not_hold_a_connection(b: Backend) {
    let config = agora_server::Config { header_read_timeout_seconds: 1, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let got = read_to_close(&mut stream, 10).await.expect("the server closed the connection");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    assert!(!got.contains("200 OK"), "{got}");
    // Whole requests are served as ever.
    assert_eq!(app.send(None, Method::GET, "/healthz", None).await.status, 200);
}

/// A body announced and never sent is 408 in the envelope after the body read timeout.
async fn a_body_that_never_arrives_is_408(b: Backend) {
    let config = agora_server::Config { body_read_timeout_seconds: 1, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n{\"account_type\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let got = read_response(&mut stream).await;
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"REQUEST_TIMEOUT\""), "{got}");
    assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");
    // The same for a keyed POST, whose body the idempotency layer reads first.
    let (reg, _) = app.agent("Slow", &[]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/me/keys HTTP/1.1\r\nHost: x\r\nauthorization: Bearer {}\r\nidempotency-key: slow-1\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":",
        reg.api_key.unwrap()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let got = read_response(&mut stream).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
}

/// A 401 given before the body was read says `Connection: close`, so a client does not
/// send its next request down a connection the server is about to drop; a request whose
/// body was read keeps its connection.
async fn an_answer_before_the_body_says_connection_close(b: Backend) {
    let app = TestApp::new(b).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"name":"a key that will never be made"}"#;
    let request = format!(
        "POST /api/v1/me/keys HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let got = read_response(&mut stream).await;
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");

    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"account_type":"agent","name":"Kept"}"#;
    let request = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let got = read_response(&mut stream).await;
    assert!(got.starts_with("HTTP/1.1 201"), "{got}");
    assert!(!got.to_ascii_lowercase().contains("connection: close"), "{got}");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"), "the connection was kept");

    // A keep-alive client mixing the two never sees a dropped connection.
    let (_, agent) = app.agent("Mixed", &[]).await;
    let anonymous = app.client.clone();
    for i in 0..200 {
        let r = anonymous.send(Method::POST, "/api/v1/me/keys", Some(&json!({"name": "x"})), &[]).await;
        assert_eq!(r.expect("no connection error").status, 401, "request {i}");
        assert_eq!(agent.send(Method::GET, "/api/v1/me", None, &[]).await.unwrap().status, 200);
    }
}

/// At the cap, a further connection waits until one closes, then is served.
async fn connections_past_the_cap_wait_their_turn(b: Backend) {
    let config = agora_server::Config { max_connections: 2, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "the third connection was served while two were open");
    drop(held.pop());
    assert!(read_response(&mut third).await.starts_with("HTTP/1.1 200"), "served once one closed");
}

async fn every_response_carries_the_security_headers(b: Backend) {
    let app = TestApp::new(b).await;
    let check = |r: &agora_client::Reply, docs: bool| {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        let csp = r.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        if docs {
            assert!(csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe"), "{csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{csp}");
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
    };
    for path in
        ["/healthz", "/api/v1/me", "/nowhere", "/api/openapi.json", "/compat/agentflow/api/v1/services"]
    {
        check(&app.send(None, Method::GET, path, None).await, false);
    }
    // Secrets in answers are never cached.
    let reg = json!({"account_type": "agent", "name": "Secretive"});
    check(&app.send(None, Method::POST, "/api/v1/auth/register", Some(reg)).await, false);
    let (ann, _) = app.human("Ann").await;
    let login = json!({"email": ann.account.email, "password": "correct horse battery"});
    let r = app.send(None, Method::POST, "/api/v1/auth/token", Some(login)).await;
    assert_eq!(r.status, 200);
    check(&r, false);
    // The docs: a policy their own files satisfy — no inline script in the page.
    let r = app.send(None, Method::GET, "/api/docs/", None).await;
    assert_eq!(r.status, 200);
    check(&r, true);
    let scripts: Vec<&str> = r.text.split("<script").skip(1).collect();
    assert!(!scripts.is_empty() && scripts.iter().all(|s| s.trim_start().starts_with("src=")), "{}", r.text);
    assert!(!r.text.contains(" style=\""), "no inline style attributes in the page itself");
}

/// `/api/v1/tasks/%ff%fe` is not UTF-8 once decoded: answered in the envelope, not as text.
async fn an_unreadable_path_id_is_answered_in_the_envelope(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann) = app.human("Ann").await;
    for path in ["/api/v1/tasks/%ff%fe", "/api/v1/services/%ff", "/api/v1/webhooks/%ff/ping"] {
        let method = if path.ends_with("ping") { Method::POST } else { Method::GET };
        let r = ann.send(method, path, None, &[]).await.unwrap();
        assert_error(&r, 422, "VALIDATION_ERROR");
    }
    // A dialect answers it in its own envelope (AgentFlow: 400, `{"error", "code"}`).
    let r = ann.send(Method::GET, "/compat/agentflow/api/v1/tasks/%ff%fe", None, &[]).await.unwrap();
    assert_eq!((r.status, r.json["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{}", r.text);
}

/// Requests the router refuses (an invented method, an unknown path) count against the
/// caller's rate limit like any other: they cannot be sent without limit.
async fn refused_methods_and_paths_are_rate_limited(b: Backend) {
    let config = agora_server::Config { rate_limit_per_minute: 5, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let method = Method::from_bytes(b"XABC").unwrap();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let path = if i % 2 == 0 { "/api/v1/me".to_owned() } else { format!("/api/v1/nowhere/{i}") };
        statuses.push(app.client.send(method.clone(), &path, None, &[]).await.unwrap().status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}
