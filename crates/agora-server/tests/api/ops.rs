//! Operations endpoints and the OpenAPI document.

use reqwest::Method;

use crate::helpers::{Backend, METRICS_TOKEN, TestApp, assert_error};

both_backends!(
    health_and_readiness_answer,
    metrics_count_requests_by_route,
    metrics_need_the_token_or_an_admin,
    invented_methods_and_paths_add_no_series,
    docs_are_served_offline,
    database_failures_are_generic_5xx,
);

async fn health_and_readiness_answer(b: Backend) {
    let app = TestApp::new(b).await;
    let r = app.send(None, Method::GET, "/healthz", None).await;
    assert_eq!((r.status, r.json["data"]["status"].as_str()), (200, Some("ok")));
    let r = app.send(None, Method::GET, "/readyz", None).await;
    assert_eq!(r.status, 200);
    let expected = match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(r.json["data"]["backend"], expected);
}

async fn database_failures_are_generic_5xx(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, _) = app.agent("Unlucky", &[]).await;
    app.store.close().await;

    let r = app.send(None, Method::GET, "/readyz", None).await;
    assert_error(&r, 503, "SERVICE_UNAVAILABLE");
    let r = app.send(reg.api_key.as_deref(), Method::GET, "/api/v1/me", None).await;
    assert_error(&r, 500, "INTERNAL_ERROR");
    // The cause goes to the log, never to the client.
    assert_eq!(r.json["error"]["message"], "internal error");
    assert!(!r.text.to_lowercase().contains("pool"), "{}", r.text);
    assert!(r.header("x-request-id").is_some(), "the request id ties the response to the logged cause");
    // Liveness does not depend on the database.
    assert_eq!(app.send(None, Method::GET, "/healthz", None).await.status, 200);
}

async fn metrics_count_requests_by_route(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Measured", &[]).await;
    agent.me().await.unwrap();
    app.send(None, Method::GET, &format!("/api/v1/agents/{}", reg.account.id), None).await;
    let r = app.send(Some(METRICS_TOKEN), Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text;
    assert!(
        text.contains(r#"agora_http_requests_total{method="GET",path="/api/v1/me",status="200"} 1"#),
        "{text}"
    );
    // Routes are labelled by their pattern, never by the ids in them.
    assert!(text.contains(r#"path="/api/v1/agents/{id}""#), "{text}");
    assert!(!text.contains(&reg.account.id));
    assert!(text.contains("agora_http_request_duration_seconds_bucket"));
}

async fn metrics_need_the_token_or_an_admin(b: Backend) {
    let app = TestApp::new(b).await;
    assert_error(&app.send(None, Method::GET, "/metrics", None).await, 401, "UNAUTHORIZED");
    assert_error(
        &app.send(Some("not-the-token-at-all"), Method::GET, "/metrics", None).await,
        401,
        "UNAUTHORIZED",
    );
    let (_, agent) = app.agent("Curious", &[]).await;
    let r = agent.send(Method::GET, "/metrics", None, &[]).await.unwrap();
    assert_error(&r, 403, "FORBIDDEN");
    let admin = app.admin().await;
    assert_eq!(admin.send(Method::GET, "/metrics", None, &[]).await.unwrap().status, 200);
    assert_eq!(app.send(Some(METRICS_TOKEN), Method::GET, "/metrics", None).await.status, 200);
}

/// The probe grew `/metrics` from 98 KB to 7.2 MB with invented methods: every method and
/// path a client makes up now shares one label value.
async fn invented_methods_and_paths_add_no_series(b: Backend) {
    let app = TestApp::new(b).await;
    let series = |text: &str| text.lines().filter(|l| l.starts_with("agora_http_")).count();
    let send = |i: usize| {
        let client = app.client.clone();
        async move {
            let method = Method::from_bytes(format!("X{i:05}").as_bytes()).unwrap();
            let r = client.send(method, &format!("/api/v1/me/{i}"), None, &[]).await.unwrap();
            assert!(r.status >= 400, "{}", r.status);
            let r = client.send(Method::GET, &format!("/nowhere/{i}"), None, &[]).await.unwrap();
            assert_error(&r, 404, "NOT_FOUND");
        }
    };
    send(0).await;
    // Reading the metrics is a request too: its own series exist after the first read.
    app.metrics().await;
    let before = series(&app.metrics().await);
    for i in 1..=1000 {
        send(i).await;
    }
    let text = app.metrics().await;
    assert_eq!(series(&text), before, "no new series");
    assert!(text.contains(r#"method="other",path="unmatched""#), "{text}");
    assert!(text.len() < 200_000, "{} bytes", text.len());
}

async fn docs_are_served_offline(b: Backend) {
    let app = TestApp::new(b).await;
    let r = app.send(None, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["openapi"], "3.1.0");
    let r = reqwest::get(app.url("/api/docs/")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the docs page is Swagger UI");
    // Vendored: the page loads its scripts from this server, not from a CDN.
    assert!(!html.contains("https://"), "the docs page must not need the internet");
    let r = reqwest::get(app.url("/api/docs/swagger-ui-bundle.js")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The OpenAPI document is checked in; an API change shows as a diff of it.
/// `UPDATE_SNAPSHOTS=1 cargo test -p agora-server openapi` rewrites it.
#[test]
fn openapi_document_matches_its_snapshot() {
    let doc = serde_json::to_string_pretty(&agora_server::openapi()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == doc,
        "the OpenAPI document changed; review and accept with UPDATE_SNAPSHOTS=1 cargo test -p agora-server openapi"
    );
}

/// Every operation documents its errors, and every route the router serves is documented.
#[test]
fn every_operation_lists_its_error_responses() {
    let doc = serde_json::to_value(agora_server::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut count = 0;
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(ids.insert(id.clone()), "{method} {path}: operationId {id:?} is used twice");
            let responses = op["responses"].as_object().unwrap();
            for status in ["429", "500"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
            let public = op.get("security").is_some_and(|s| s == &serde_json::json!([{}]));
            if !public {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
        }
    }
    // auth 4, me 7, agents 3, admin 2 (ban) + 5 (money), money 3 (wallet, statement, quota);
    // agent protocol 2, tasks 10, chat 2, services 8, bounties 5; webhooks 9, notifications 3,
    // live stream 1; jobs 22 (jobs 6, bids 9, invitations 2, auto-bid rules 2, the
    // moderation queue 3).
    assert_eq!(count, 86, "operations in the document");
}
