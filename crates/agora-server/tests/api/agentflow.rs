//! The AgentFlow dialect (seed 002) under `/compat/agentflow`, driven the way a client
//! written from that document drives it: its paths, headers, field names, JSON-RPC
//! envelopes, statuses and `{"error": "…"}` bodies. Only the setup the document leaves to
//! its web UI (accounts, nodes, services, funds, API keys) goes through the native API.

use agora_client::{Client, types::ServiceRequest};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, test_config};

both_backends!(
    services_are_searched_sorted_and_paged,
    a_service_run_goes_from_frozen_points_to_settlement,
    a_failed_run_refunds_the_points,
    run_errors_are_the_documented_statuses,
    a_request_is_posted_accepted_delivered_and_settled,
    request_errors_are_the_documented_statuses,
    nodes_prove_who_they_are,
    node_online_sets_which_services_run,
    points_are_the_configured_currency,
    rate_limits_answer_429_in_the_document_shape,
);

const PREFIX: &str = "/compat/agentflow";

/// A client that knows only the document: a base URL and its credentials.
#[derive(Clone)]
struct Af {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
    node_id: Option<String>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// The document's error body: a message under `error`.
    #[track_caller]
    fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "error body must be {{\"error\": \"…\"}}: {}",
            self.body
        );
        assert!(self.body.get("success").is_none_or(|s| s == false), "{}", self.body);
    }

    #[track_caller]
    fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body
    }
}

impl Af {
    fn new(app: &TestApp) -> Self {
        Self { http: reqwest::Client::new(), base: app.url(PREFIX), bearer: None, node_id: None }
    }

    fn requester(app: &TestApp, key: &str) -> Self {
        Self { bearer: Some(key.to_owned()), ..Self::new(app) }
    }

    fn node(app: &TestApp, node_id: &str, secret: &str) -> Self {
        Self { bearer: Some(secret.to_owned()), node_id: Some(node_id.to_owned()), ..Self::new(app) }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        if let Some(n) = &self.node_id {
            req = req.header("X-Node-ID", n);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
        Answer { status, body }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), &[]).await
    }
}

/// A provider (a person) with a node (an agent it registered), and the node's secret.
struct Provider {
    owner: Client,
    owner_id: String,
    node_id: String,
    node_name: String,
    secret: String,
}

async fn provider(app: &TestApp, name: &str) -> Provider {
    let (reg, owner) = app.human(&format!("{name} owner")).await;
    let node_name = format!("{name} node");
    let created = owner
        .create_agent(&agora_client::types::ProfileFields {
            name: Some(node_name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    Provider {
        owner,
        owner_id: reg.account.id,
        node_id: created.agent.id,
        node_name,
        secret: created.api_key,
    }
}

impl Provider {
    fn node(&self, app: &TestApp) -> Af {
        Af::node(app, &self.node_id, &self.secret)
    }

    async fn service(&self, name: &str, price: i64) -> String {
        self.service_with(name, price, json!({}), json!({})).await
    }

    async fn service_with(
        &self,
        name: &str,
        price: i64,
        input_schema: Value,
        output_schema: Value,
    ) -> String {
        let req = ServiceRequest {
            agent_id: Some(self.node_id.clone()),
            name: Some(name.into()),
            version: Some("v1.0.0".into()),
            short_description: Some(format!("{name}: short")),
            description: Some(format!("# {name}\nLong description.")),
            price: Some(price),
            input_schema: Some(input_schema),
            output_schema: Some(output_schema),
            ..Default::default()
        };
        self.owner.create_service(&req).await.unwrap().id
    }
}

/// A person with `points` PTS and an API key, presented with the document's `af_live_`
/// prefix (an Agora `ak_live_` key under the alias).
async fn requester(app: &TestApp, name: &str, points: i64) -> (Af, Client, String) {
    let (reg, client) = app.funded_human(name, points).await;
    let key = client.create_key(Some("agentflow")).await.unwrap().key;
    let aliased = key.replacen("ak_live_", "af_live_", 1);
    (Af::requester(app, &aliased), client, reg.account.id)
}

fn names(body: &Value, list: &str) -> Vec<String> {
    body[list].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap_or("").to_owned()).collect()
}

/// Creation times have millisecond resolution; newest-first needs them apart: move the
/// application's clock.
fn tick(app: &TestApp) {
    app.advance(std::time::Duration::from_millis(5));
}

async fn services_are_searched_sorted_and_paged(b: Backend) {
    let app = TestApp::new(b).await;
    let gpu = provider(&app, "GPU").await;
    gpu.service("图像生成", 100).await;
    tick(&app);
    gpu.service("Translate", 30).await;
    tick(&app);
    gpu.service("Summarise", 60).await;
    let idle = provider(&app, "Idle").await;
    idle.service("Sleeping", 10).await;
    gpu.node(&app).post("/api/node/online", json!({})).await.ok();
    let anyone = Af::new(&app);

    // Default: online services only, newest first, 16 a page.
    let body = anyone.get("/api/v1/services").await.ok();
    assert_eq!(body["success"], true);
    assert_eq!(names(&body, "services"), ["Summarise", "Translate", "图像生成"]);
    assert_eq!(body["pagination"], json!({"page": 1, "limit": 16, "total": 3}));
    let explicit = anyone.get("/api/v1/services?status=online&sort=created_desc").await.ok();
    assert_eq!(explicit["services"], body["services"], "created_desc is the default order");
    let first = &body["services"][2];
    assert_eq!(first["version"], "v1.0.0");
    assert_eq!(first["short_description"], "图像生成: short");
    assert_eq!(first["price"], 100);
    assert_eq!(first["status"], "online");
    assert_eq!(first["input_schema"], json!({}));
    assert_eq!(first["node"], json!({"id": gpu.node_id, "name": gpu.node_name}));
    assert_eq!(first["provider"]["id"], gpu.owner_id.as_str());
    assert_eq!(first["paid_count"], 0);
    assert_eq!(first["favorite_count"], 0);
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));

    let body = anyone.get("/api/v1/services?status=all&sort=price_asc").await.ok();
    assert_eq!(names(&body, "services"), ["Sleeping", "Translate", "Summarise", "图像生成"]);
    assert_eq!(body["services"][0]["status"], "offline");
    let body = anyone.get("/api/v1/services?sort=price_desc").await.ok();
    assert_eq!(names(&body, "services"), ["图像生成", "Summarise", "Translate"]);
    let body = anyone.get("/api/v1/services?q=TRANS").await.ok();
    assert_eq!(names(&body, "services"), ["Translate"]);
    let body = anyone.get("/api/v1/services?sort=price_asc&page=2&limit=1").await.ok();
    assert_eq!(names(&body, "services"), ["Summarise"]);
    assert_eq!(body["pagination"], json!({"page": 2, "limit": 1, "total": 3}));

    // One paid run puts a service first by paid_desc.
    let (req, _, _) = requester(&app, "Buyer", 100).await;
    let translate = body_id(&anyone.get("/api/v1/services?q=translate").await.ok(), "services");
    let run = req.post(&format!("/api/v1/services/{translate}/run"), json!({"input_data": {}})).await.ok();
    settle(&app, &gpu, &req, &run).await;
    let body = anyone.get("/api/v1/services?sort=paid_desc").await.ok();
    assert_eq!(names(&body, "services")[0], "Translate");
    assert_eq!(body["services"][0]["paid_count"], 1);

    // Details add the description and the revenue.
    let body = anyone.get(&format!("/api/v1/services/{translate}")).await.ok();
    assert_eq!(body["service"]["description"], "# Translate\nLong description.");
    assert_eq!(body["service"]["total_revenue"], 30);

    for bad in ["status=busy", "sort=newest", "page=0", "limit=101", "bogus=1"] {
        anyone.get(&format!("/api/v1/services?{bad}")).await.assert_error(400);
    }
    anyone.get("/api/v1/services/svc_01jzzzzzzzzzzzzzzzzzzzzzzz").await.assert_error(404);
    anyone.get("/api/v1/services/not-an-id").await.assert_error(404);
}

fn body_id(body: &Value, list: &str) -> String {
    body[list][0]["id"].as_str().unwrap().to_owned()
}

/// Pulls, delivers and accepts the run `run` answered; returns the accept answer.
async fn settle(app: &TestApp, provider: &Provider, req: &Af, run: &Value) -> Value {
    let node = provider.node(app);
    let task_id = run["cyber_meta"]["task_id"].as_str().unwrap();
    let pulled = node.get("/api/node/tasks/pull").await.ok();
    assert_eq!(pulled["cyber_meta"]["task_id"], task_id);
    node.post(&format!("/api/node/tasks/{task_id}/deliver"), json!({"machine_data": {"ok": true}}))
        .await
        .ok();
    req.post(&format!("/api/v1/tasks/{task_id}/accept"), json!({})).await.ok()
}

async fn a_service_run_goes_from_frozen_points_to_settlement(b: Backend) {
    let app = TestApp::new(b).await;
    let gpu = provider(&app, "GPU").await;
    let schema =
        json!({"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}}});
    let out = json!({"type": "object", "required": ["result_url"], "properties": {"result_url": {"type": "string"}}});
    let svc = gpu.service_with("图像生成", 100, schema, out).await;
    let node = gpu.node(&app);
    node.post("/api/node/online", json!({"active_services": [svc]})).await.ok();
    let (req, req_client, req_id) = requester(&app, "Buyer", 250).await;

    // Run: the answer is the JSON-RPC request, with the points frozen.
    let run = req
        .call(
            Method::POST,
            &format!("/api/v1/services/{svc}/run"),
            Some(json!({"input_data": {"prompt": "赛博朋克城市"}})),
            &[("Idempotency-Key", "run-1")],
        )
        .await
        .ok();
    assert_eq!(run["jsonrpc"], "2.0");
    assert_eq!(run["method"], "execute_task");
    assert_eq!(run["params"], json!({"prompt": "赛博朋克城市"}));
    let meta = &run["cyber_meta"];
    let task_id = meta["task_id"].as_str().unwrap().to_owned();
    assert_eq!(meta["service_id"], svc.as_str());
    assert!(meta["idempotency_key"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(meta["auth"], json!({"requester_id": req_id, "budget_frozen": 100}));
    assert!(run["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(app.pts(&req_client).await, (150, 100));
    // The same Idempotency-Key replays the same run; nothing more is frozen.
    let again = req
        .call(
            Method::POST,
            &format!("/api/v1/services/{svc}/run"),
            Some(json!({"input_data": {"prompt": "赛博朋克城市"}})),
            &[("Idempotency-Key", "run-1")],
        )
        .await
        .ok();
    assert_eq!(again, run);
    assert_eq!(app.pts(&req_client).await, (150, 100));

    let listed = req.get("/api/v1/tasks?status=pending").await.ok();
    assert_eq!(listed["tasks"][0]["id"], task_id.as_str());
    assert_eq!(listed["tasks"][0]["task_type"], "service");

    // Pull: the same envelope, now leased to the node; nothing more to pull.
    let pulled = node.get("/api/node/tasks/pull").await.ok();
    assert_eq!(pulled, run, "the node receives what the requester was shown");
    node.get("/api/node/tasks/pull").await.assert_error(404);

    let progress = json!({"progress_percent": 50, "progress_eta": 60, "current_step": "处理中..."});
    node.post(&format!("/api/node/tasks/{task_id}/progress"), progress).await.ok();
    let detail = req.get(&format!("/api/v1/tasks/{task_id}")).await.ok();
    assert_eq!(detail["task"]["status"], "processing");
    assert_eq!(
        detail["task"]["progress"],
        json!({"progress_percent": 50, "progress_eta": 60, "current_step": "处理中..."})
    );
    let node_view = node.get(&format!("/api/node/tasks/{task_id}")).await.ok();
    assert_eq!(node_view["task"]["input_data"], json!({"prompt": "赛博朋克城市"}));
    let processing = req.get("/api/v1/tasks?status=processing").await.ok();
    assert_eq!(processing["tasks"][0]["id"], task_id.as_str());
    assert_eq!(processing["pagination"]["total"], 1);
    let pending = req.get("/api/v1/tasks?status=pending").await.ok();
    assert_eq!(pending["pagination"]["total"], 0, "a processing task is no longer pending");

    // Deliver: machine_data is checked against the output schema.
    let path = format!("/api/node/tasks/{task_id}/deliver");
    node.post(&path, json!({"machine_data": {"width": 3}})).await.assert_error(400);
    let ui = json!([
        {"type": "markdown", "content": "## 完成"},
        {"type": "file", "content": "https://files.example.com/result.json", "label": "result.json"}
    ]);
    node.post(
        &path,
        json!({"machine_data": {"result_url": "https://files.example.com/r.png"}, "ui_content": ui}),
    )
    .await
    .ok();

    let listed = req.get("/api/v1/tasks?status=delivered&task_type=service").await.ok();
    assert_eq!(listed["pagination"]["total"], 1);
    assert!(req.get("/api/v1/tasks?task_type=request").await.ok()["tasks"].as_array().unwrap().is_empty());
    let detail = req.get(&format!("/api/v1/tasks/{task_id}")).await.ok();
    let t = &detail["task"];
    assert_eq!(t["status"], "delivered");
    assert_eq!(t["input_data"], json!({"prompt": "赛博朋克城市"}));
    assert_eq!(t["machine_data"], json!({"result_url": "https://files.example.com/r.png"}));
    assert_eq!(t["ui_content"], ui);
    let timeline: Vec<&str> =
        t["timeline"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    for event in ["task.created", "task.claimed", "task.progress", "task.delivered"] {
        assert!(timeline.contains(&event), "{event} in {timeline:?}");
    }

    // Accept: the node is paid the price minus the 10 % platform fee.
    let accepted = req.post(&format!("/api/v1/tasks/{task_id}/accept"), json!({})).await.ok();
    assert_eq!(accepted["success"], true);
    assert_eq!(accepted["message"], "验收成功");
    assert_eq!(accepted["settled_amount"], 90);
    assert_eq!(app.pts(&req_client).await, (150, 0));
    let node_client = app.client.with_token(gpu.secret.clone());
    assert_eq!(app.pts(&node_client).await, (90, 0));
    let detail = req.get(&format!("/api/v1/tasks/{task_id}")).await.ok();
    assert_eq!(detail["task"]["status"], "completed");
    req.post(&format!("/api/v1/tasks/{task_id}/accept"), json!({})).await.assert_error(400);
    assert_eq!(req.get("/api/v1/tasks?status=completed").await.ok()["pagination"]["total"], 1);
}

async fn a_failed_run_refunds_the_points(b: Backend) {
    let app = TestApp::new(b).await;
    let gpu = provider(&app, "GPU").await;
    let svc = gpu.service("Render", 100).await;
    let node = gpu.node(&app);
    node.post("/api/node/online", json!({"active_services": [svc]})).await.ok();
    let (req, req_client, _) = requester(&app, "Buyer", 100).await;
    let run =
        req.post(&format!("/api/v1/services/{svc}/run"), json!({"input_data": {"scene": 1}})).await.ok();
    let task_id = run["cyber_meta"]["task_id"].as_str().unwrap().to_owned();
    assert_eq!(app.pts(&req_client).await, (0, 100));
    node.get("/api/node/tasks/pull").await.ok();
    node.post(&format!("/api/node/tasks/{task_id}/fail"), json!({})).await.assert_error(400);
    let failed = node
        .post(&format!("/api/node/tasks/{task_id}/fail"), json!({"error_log": "Error: GPU out of memory"}))
        .await
        .ok();
    assert_eq!(failed["success"], true);
    assert_eq!(failed["refunded_points"], 100);
    assert_eq!(app.pts(&req_client).await, (100, 0));
    let detail = req.get(&format!("/api/v1/tasks/{task_id}")).await.ok();
    assert_eq!(detail["task"]["status"], "failed");
    assert_eq!(detail["task"]["error_log"], "Error: GPU out of memory");
    assert_eq!(req.get("/api/v1/tasks?status=failed").await.ok()["pagination"]["total"], 1);
    node.post(&format!("/api/node/tasks/{task_id}/deliver"), json!({"machine_data": {}}))
        .await
        .assert_error(400);
}

async fn run_errors_are_the_documented_statuses(b: Backend) {
    let app = TestApp::new(b).await;
    let gpu = provider(&app, "GPU").await;
    let schema = json!({"type": "object", "required": ["prompt"]});
    let svc = gpu.service_with("Render", 100, schema, json!({})).await;
    let node = gpu.node(&app);
    node.post("/api/node/online", json!({})).await.ok();
    let run = format!("/api/v1/services/{svc}/run");
    let (rich, _, _) = requester(&app, "Rich", 1000).await;
    let (poor, poor_client, _) = requester(&app, "Poor", 99).await;

    // 400: parameters.
    rich.post(&run, json!({})).await.assert_error(400);
    rich.post(&run, json!({"input_data": {"n": 1}})).await.assert_error(400);
    rich.post(&run, json!({"input_data": {"prompt": "x"}, "extra": 1})).await.assert_error(400);
    // 402: not enough points; nothing is frozen.
    poor.post(&run, json!({"input_data": {"prompt": "x"}})).await.assert_error(402);
    assert_eq!(app.pts(&poor_client).await, (99, 0));
    // 403: one's own service (its provider, or its node).
    let owner_key = gpu.owner.create_key(None).await.unwrap().key;
    Af::requester(&app, &owner_key)
        .post(&run, json!({"input_data": {"prompt": "x"}}))
        .await
        .assert_error(403);
    Af::requester(&app, &gpu.secret)
        .post(&run, json!({"input_data": {"prompt": "x"}}))
        .await
        .assert_error(403);
    // 404: no such service.
    rich.post("/api/v1/services/svc_01jzzzzzzzzzzzzzzzzzzzzzzz/run", json!({"input_data": {}}))
        .await
        .assert_error(404);
    // 401: no key, or a wrong one.
    Af::new(&app).post(&run, json!({"input_data": {"prompt": "x"}})).await.assert_error(401);
    Af::requester(&app, "af_live_wrong")
        .post(&run, json!({"input_data": {"prompt": "x"}}))
        .await
        .assert_error(401);
    Af::new(&app).get("/api/v1/tasks").await.assert_error(401);
    // 503: the node went offline.
    node.post("/api/node/offline", json!({})).await.ok();
    rich.post(&run, json!({"input_data": {"prompt": "x"}})).await.assert_error(503);
    // Unknown paths and others' tasks are 404 in the document's shape too.
    rich.get("/api/v1/nowhere").await.assert_error(404);
    rich.call(Method::DELETE, "/api/v1/tasks", None, &[]).await.assert_error(405);
    node.post("/api/node/online", json!({})).await.ok();
    let task = rich.post(&run, json!({"input_data": {"prompt": "x"}})).await.ok();
    let task_id = task["cyber_meta"]["task_id"].as_str().unwrap().to_owned();
    poor.get(&format!("/api/v1/tasks/{task_id}")).await.assert_error(404);
    poor.post(&format!("/api/v1/tasks/{task_id}/accept"), json!({})).await.assert_error(404);
    // Accepting before delivery is refused.
    rich.post(&format!("/api/v1/tasks/{task_id}/accept"), json!({})).await.assert_error(400);
    for bad in ["status=running", "task_type=chat", "limit=0"] {
        rich.get(&format!("/api/v1/tasks?{bad}")).await.assert_error(400);
    }
}

async fn a_request_is_posted_accepted_delivered_and_settled(b: Backend) {
    let app = TestApp::new(b).await;
    let (req, req_client, req_id) = requester(&app, "Poster", 800).await;
    let body = json!({
        "title": "Logo design", "short_description": "A logo for a tea shop",
        "description": "## Brief\nGreen.", "reward_amount": 500, "penalty_amount": 100,
        "max_delivery_hours": 24,
        "input_schema": {"type": "object"}, "output_schema": {"type": "object", "required": ["svg"]},
        "input_data": {"shop": "Leaf"}
    });
    let posted = req.post("/api/v1/requests", body).await.ok();
    assert_eq!(posted["success"], true);
    assert_eq!(posted["locked_points"], 500);
    let request_id = posted["cyber_meta"]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(app.pts(&req_client).await, (300, 500));

    // Open requests: the requester's list (default open) and the nodes' feed.
    let listed = req.get("/api/v1/requests").await.ok();
    assert_eq!(listed["pagination"], json!({"page": 1, "limit": 16, "total": 1}));
    let r = &listed["requests"][0];
    assert_eq!(r["id"], request_id.as_str());
    assert_eq!(r["status"], "open");
    assert_eq!(r["reward_amount"], 500);
    assert_eq!(r["penalty_amount"], 100);
    assert_eq!(r["max_delivery_hours"], 24);
    assert_eq!(r["short_description"], "A logo for a tea shop");
    assert_eq!(r["input_data"], json!({"shop": "Leaf"}));
    let detail = req.get(&format!("/api/v1/requests/{request_id}")).await.ok();
    assert_eq!(detail["request"]["description"], "## Brief\nGreen.");
    assert_eq!(detail["request"]["requester_id"], req_id.as_str());

    let a = provider(&app, "Alpha").await;
    let b_ = provider(&app, "Beta").await;
    let feed = a.node(&app).get("/api/node/requests?limit=5").await.ok();
    assert_eq!(feed["requests"][0]["id"], request_id.as_str());

    // The first node to accept gets it; the second gets 409.
    let accepted =
        a.node(&app).post(&format!("/api/node/requests/{request_id}/accept"), json!({})).await.ok();
    assert_eq!(accepted["success"], true);
    assert_eq!(accepted["message"], "认领成功");
    let task_id = accepted["task_id"].as_str().unwrap().to_owned();
    b_.node(&app).post(&format!("/api/node/requests/{request_id}/accept"), json!({})).await.assert_error(409);
    assert!(a.node(&app).get("/api/node/requests").await.ok()["requests"].as_array().unwrap().is_empty());

    let mine = a.node(&app).get("/api/node/requests/tasks").await.ok();
    assert_eq!(mine["tasks"][0]["id"], task_id.as_str());
    assert_eq!(mine["tasks"][0]["status"], "processing");
    assert_eq!(
        a.node(&app).get("/api/node/requests/tasks?status=completed").await.ok()["pagination"]["total"],
        0
    );
    assert_eq!(b_.node(&app).get("/api/node/requests/tasks").await.ok()["pagination"]["total"], 0);
    let listed = req.get("/api/v1/tasks?task_type=request").await.ok();
    assert_eq!(listed["tasks"][0]["id"], task_id.as_str());
    assert_eq!(listed["tasks"][0]["task_type"], "request");
    assert_eq!(listed["tasks"][0]["request_id"], request_id.as_str());

    // Deliver (checked against the request's output schema) and accept.
    let node = a.node(&app);
    node.post(&format!("/api/node/tasks/{task_id}/deliver"), json!({"machine_data": {}}))
        .await
        .assert_error(400);
    node.post(&format!("/api/node/tasks/{task_id}/deliver"), json!({"machine_data": {"svg": "<svg/>"}}))
        .await
        .ok();
    assert_eq!(req.get("/api/v1/tasks?status=delivered").await.ok()["pagination"]["total"], 1);
    let settled = req.post(&format!("/api/v1/tasks/{task_id}/accept"), json!({})).await.ok();
    assert_eq!(settled["settled_amount"], 450);
    assert_eq!(app.pts(&req_client).await, (300, 0));
    let completed = req.get("/api/v1/requests?status=completed").await.ok();
    assert_eq!(completed["requests"][0]["status"], "completed");
    assert_eq!(completed["requests"][0]["node_id"], a.node_id.as_str());
    assert_eq!(
        a.node(&app).get("/api/node/requests/tasks?status=completed").await.ok()["pagination"]["total"],
        1
    );
}

async fn request_errors_are_the_documented_statuses(b: Backend) {
    let app = TestApp::new(b).await;
    let (req, req_client, _) = requester(&app, "Poster", 100).await;
    let good =
        json!({"title": "Short", "short_description": "s", "reward_amount": 100, "max_delivery_hours": 1});
    let mut long_title = good.clone();
    long_title["title"] = json!("这是一个超过二十个字的标题这是一个超过二十个字的标题");
    req.post("/api/v1/requests", long_title).await.assert_error(400);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("max_delivery_hours");
    req.post("/api/v1/requests", missing).await.assert_error(400);
    let mut rich = good.clone();
    rich["reward_amount"] = json!(101);
    req.post("/api/v1/requests", rich).await.assert_error(402);
    assert_eq!(app.pts(&req_client).await, (100, 0));
    req.get("/api/v1/requests?status=whatever").await.assert_error(400);
    req.get("/api/v1/requests/tsk_01jzzzzzzzzzzzzzzzzzzzzzzz").await.assert_error(404);

    // A node cannot accept its own request (403), nor one that does not exist (404).
    let own = provider(&app, "Self").await;
    let admin = app.admin().await;
    let top_up = agora_client::types::TopUpRequest { amount: 100, currency: "PTS".into(), reason: None };
    admin.top_up(&own.node_id, &top_up).await.unwrap();
    let as_requester = Af::requester(&app, &own.secret);
    let posted = as_requester.post("/api/v1/requests", good).await.ok();
    let id = posted["cyber_meta"]["request_id"].as_str().unwrap();
    own.node(&app).post(&format!("/api/node/requests/{id}/accept"), json!({})).await.assert_error(403);
    own.node(&app)
        .post("/api/node/requests/tsk_01jzzzzzzzzzzzzzzzzzzzzzzz/accept", json!({}))
        .await
        .assert_error(404);
    // A task nobody accepted is not anybody's task yet.
    own.node(&app).get(&format!("/api/node/tasks/{id}")).await.assert_error(404);
    assert_eq!(as_requester.get("/api/v1/tasks").await.ok()["pagination"]["total"], 0);
}

async fn nodes_prove_who_they_are(b: Backend) {
    let app = TestApp::new(b).await;
    let a = provider(&app, "Alpha").await;
    let b_ = provider(&app, "Beta").await;
    let (_, _, _) = requester(&app, "Someone", 0).await;
    // No X-Node-ID, another node's id, a person's key, or no key: 401.
    Af::requester(&app, &a.secret).post("/api/node/online", json!({})).await.assert_error(401);
    Af::node(&app, &b_.node_id, &a.secret).post("/api/node/online", json!({})).await.assert_error(401);
    let owner_key = a.owner.create_key(None).await.unwrap().key;
    Af::node(&app, &a.owner_id, &owner_key).get("/api/node/tasks/pull").await.assert_error(401);
    let mut anonymous = Af::new(&app);
    anonymous.node_id = Some(a.node_id.clone());
    anonymous.get("/api/node/tasks/pull").await.assert_error(401);
    Af::node(&app, &a.node_id, "wrong").get("/api/node/tasks/pull").await.assert_error(401);

    // Another node's task is 404, and so is progress on it.
    let svc = a.service("Render", 0).await;
    a.node(&app).post("/api/node/online", json!({"active_services": [svc]})).await.ok();
    let (req, _, _) = requester(&app, "Buyer", 0).await;
    let run = req.post(&format!("/api/v1/services/{svc}/run"), json!({"input_data": {}})).await.ok();
    assert_eq!(run["cyber_meta"]["auth"]["budget_frozen"], 0);
    let task_id = run["cyber_meta"]["task_id"].as_str().unwrap().to_owned();
    b_.node(&app).get("/api/node/tasks/pull").await.assert_error(404);
    b_.node(&app).get(&format!("/api/node/tasks/{task_id}")).await.assert_error(404);
    b_.node(&app)
        .post(&format!("/api/node/tasks/{task_id}/progress"), json!({"progress_percent": 10}))
        .await
        .assert_error(404);
    a.node(&app).get("/api/node/tasks/pull").await.ok();
    for bad in
        [json!({}), json!({"progress_percent": 101}), json!({"progress_percent": 5, "progress_eta": -1})]
    {
        a.node(&app).post(&format!("/api/node/tasks/{task_id}/progress"), bad).await.assert_error(400);
    }
    let bad_ui = json!({"ui_content": [{"type": "video", "content": "x"}]});
    let answer = a.node(&app).post(&format!("/api/node/tasks/{task_id}/deliver"), bad_ui).await;
    answer.assert_error(400);
    assert!(answer.body["error"].as_str().unwrap().contains("ui_content[0].type"), "{}", answer.body);
}

async fn node_online_sets_which_services_run(b: Backend) {
    let app = TestApp::new(b).await;
    let gpu = provider(&app, "GPU").await;
    let one = gpu.service("One", 10).await;
    let two = gpu.service("Two", 10).await;
    let three = gpu.service("Three", 10).await;
    let node = gpu.node(&app);
    let online = node.post("/api/node/online", json!({"active_services": [one, two]})).await.ok();
    assert_eq!(online, json!({"success": true, "node_id": gpu.node_id, "online_services": 2}));
    let anyone = Af::new(&app);
    let body = anyone.get("/api/v1/services").await.ok();
    let mut shown = names(&body, "services");
    shown.sort();
    assert_eq!(shown, ["One", "Two"]);
    anyone.get(&format!("/api/v1/services/{three}")).await.assert_error(404);

    let other = provider(&app, "Other").await;
    let foreign = other.service("Foreign", 10).await;
    node.post("/api/node/online", json!({"active_services": [foreign]})).await.assert_error(400);
    let online = node.post("/api/node/online", json!({"active_services": [three]})).await.ok();
    assert_eq!(online["online_services"], 1);
    assert_eq!(names(&anyone.get("/api/v1/services").await.ok(), "services"), ["Three"]);

    node.post("/api/node/offline", json!({})).await.ok();
    assert!(anyone.get("/api/v1/services").await.ok()["services"].as_array().unwrap().is_empty());
    let body = anyone.get("/api/v1/services?status=all").await.ok();
    assert_eq!(body["services"][0]["status"], "offline");
    // A sign-off holds until the node is online again: pulling does not end it.
    node.get("/api/node/tasks/pull").await.assert_error(404);
    assert!(anyone.get("/api/v1/services").await.ok()["services"].as_array().unwrap().is_empty());
    node.post("/api/node/online", json!({})).await.ok();
    assert_eq!(names(&anyone.get("/api/v1/services").await.ok(), "services"), ["Three"]);
}

async fn points_are_the_configured_currency(b: Backend) {
    let config = agora_server::Config { agentflow_currency: "USD".into(), ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let gpu = provider(&app, "GPU").await;
    gpu.service("In points", 100).await;
    let dollars = ServiceRequest {
        agent_id: Some(gpu.node_id.clone()),
        name: Some("In cents".into()),
        short_description: Some("priced in USD".into()),
        price: Some(250),
        currency: Some("USD".into()),
        ..Default::default()
    };
    let usd = gpu.owner.create_service(&dollars).await.unwrap().id;
    gpu.node(&app).post("/api/node/online", json!({})).await.ok();
    let anyone = Af::new(&app);
    // Only services priced in the dialect's currency are shown, in its minor units.
    let body = anyone.get("/api/v1/services").await.ok();
    assert_eq!(names(&body, "services"), ["In cents"]);
    assert_eq!(body["services"][0]["price"], 250);
    let (req, client, _) = requester(&app, "Buyer", 0).await;
    let admin = app.admin().await;
    let top_up = agora_client::types::TopUpRequest { amount: 1000, currency: "USD".into(), reason: None };
    admin.top_up(&client.me().await.unwrap().id, &top_up).await.unwrap();
    let run = req.post(&format!("/api/v1/services/{usd}/run"), json!({"input_data": {}})).await.ok();
    assert_eq!(run["cyber_meta"]["auth"]["budget_frozen"], 250);
    // Requests lock the same currency.
    let posted = req
        .post(
            "/api/v1/requests",
            json!({"title": "t", "short_description": "s", "reward_amount": 300, "max_delivery_hours": 1}),
        )
        .await
        .ok();
    assert_eq!(posted["locked_points"], 300);
    let usd_balance =
        client.wallet().await.unwrap().balances.into_iter().find(|b| b.currency == "USD").unwrap();
    assert_eq!((usd_balance.available, usd_balance.held), (450, 550));
}

async fn rate_limits_answer_429_in_the_document_shape(b: Backend) {
    let config = agora_server::Config { rate_limit_per_minute: 3, ..test_config() };
    let app = TestApp::with_config(b, config).await;
    let anyone = Af::new(&app);
    for _ in 0..3 {
        anyone.get("/api/v1/services").await.ok();
    }
    let resp = reqwest::get(app.url(&format!("{PREFIX}/api/v1/services"))).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}
