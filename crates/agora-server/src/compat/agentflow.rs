//! The AgentFlow API (seed 002) under `/compat/agentflow`: the requester API
//! (`/api/v1/…`, Bearer API key) and the node API (`/api/node/…`, `X-Node-ID` + Bearer
//! node secret), translated onto the native operations. docs/dialects/agentflow.md has the
//! mapping table and the choices made where the document is silent.
//!
//! In Agora terms: a *node* is an agent account (`X-Node-ID` is its account id, the node
//! secret one of its API keys); a *service* is a native service; a *request* (定制需求) is a
//! bounty, and the task a node gets by accepting it is that same bounty, so a request's id
//! is also its task's id; *points* are minor units of `agentflow_currency` (default `PTS`).

use agora_app::{BountyFilter, Principal, ServiceView, TaskCommand, TaskFilter, TaskRole};
use agora_core::{
    Invalid, ServiceId, TaskId, Timestamp,
    account::AccountKind,
    money::Currency,
    task::{TaskKind, TaskStatus},
    work::{BountyInput, Delivery, DeliveryInput, ProgressReport, message_text},
};
use agora_store::{Event, ServiceSort, Task};
use axum::{
    Router,
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Dialect;
use crate::{
    AppState,
    api::{self, path_id},
    auth::Auth,
    error::{ApiError, ErrorInfo, Result},
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, json_response},
    idem::Idempotency,
    vocab::Vocabulary,
};

/// The document's requester key prefix, accepted as an alias of `ak_live_`.
pub const KEY_PREFIX: &str = "af_live_";
/// The document's default page size.
const DEFAULT_LIMIT: u64 = 16;

pub static DIALECT: Dialect = Dialect {
    prefix: "/compat/agentflow",
    key_alias: Some(KEY_PREFIX),
    // The document's table has no 422: invalid input is a 400 (参数错误).
    status: |s| if s == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { s },
    error_body,
};

/// The document's five task statuses, each standing for native statuses; the same table
/// names a task's status and parses a status filter.
const TASK_STATUS: Vocabulary<&[TaskStatus]> = Vocabulary {
    field: "status",
    words: &[
        ("pending", &[TaskStatus::Open, TaskStatus::Queued]),
        ("processing", &[TaskStatus::InProgress]),
        ("delivered", &[TaskStatus::Delivered]),
        ("completed", &[TaskStatus::Completed]),
        ("failed", &[TaskStatus::Failed, TaskStatus::Cancelled, TaskStatus::Expired]),
    ],
};

/// A request's own statuses: `open` until a node accepts it, then `in_progress`, and
/// finally `completed` or `cancelled`.
const REQUEST_STATUS: Vocabulary<&[TaskStatus]> = Vocabulary {
    field: "status",
    words: &[
        ("open", &[TaskStatus::Open]),
        ("in_progress", &[TaskStatus::Queued, TaskStatus::InProgress, TaskStatus::Delivered]),
        ("completed", &[TaskStatus::Completed]),
        ("cancelled", &[TaskStatus::Failed, TaskStatus::Cancelled, TaskStatus::Expired]),
    ],
};

const TASK_TYPE: Vocabulary<&[TaskKind]> = Vocabulary {
    field: "task_type",
    words: &[("service", &[TaskKind::Service]), ("request", &[TaskKind::Bounty])],
};

const SORT: Vocabulary<ServiceSort> = Vocabulary {
    field: "sort",
    words: &[
        ("created_desc", ServiceSort::Newest),
        ("price_asc", ServiceSort::PriceAsc),
        ("price_desc", ServiceSort::PriceDesc),
        ("paid_desc", ServiceSort::MostPaid),
    ],
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/services", get(list_services))
        .route("/api/v1/services/{id}", get(get_service))
        .route("/api/v1/services/{id}/run", post(run_service))
        .route("/api/v1/tasks", get(list_tasks))
        .route("/api/v1/tasks/{id}", get(get_task))
        .route("/api/v1/tasks/{id}/accept", post(accept_task))
        .route("/api/v1/requests", get(list_requests).post(create_request))
        .route("/api/v1/requests/{id}", get(get_request))
        .route("/api/node/online", post(node_online))
        .route("/api/node/offline", post(node_offline))
        .route("/api/node/tasks/pull", get(node_pull))
        .route("/api/node/tasks/{id}", get(node_task))
        .route("/api/node/tasks/{id}/progress", post(node_progress))
        .route("/api/node/tasks/{id}/deliver", post(node_deliver))
        .route("/api/node/tasks/{id}/fail", post(node_fail))
        .route("/api/node/requests", get(node_requests))
        .route("/api/node/requests/tasks", get(node_request_tasks))
        .route("/api/node/requests/{id}/accept", post(node_accept_request))
}

/// The document's error body, `{"error": "…"}`, plus the native `code` for programs.
fn error_body(info: &ErrorInfo) -> Value {
    // A validation error names every failing field in the one message the document has.
    let fields: Vec<String> = info.details["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let (path, message) = (e["path"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""));
            if path.is_empty() { message.to_owned() } else { format!("{path}: {message}") }
        })
        .collect();
    let message = if fields.is_empty() {
        info.message.clone()
    } else {
        format!("invalid input: {}", fields.join("; "))
    };
    json!({ "error": message, "code": info.code })
}

/// 200 with `{"success": true, …fields}`.
fn success(fields: Value) -> Result<Response> {
    let mut body = json!({ "success": true });
    if let (Some(out), Value::Object(fields)) = (body.as_object_mut(), fields) {
        out.extend(fields);
    }
    Ok(json_response(StatusCode::OK, body.to_string()))
}

fn pagination(params: PageParams, total: u64) -> Value {
    json!({ "page": params.page, "limit": params.limit, "total": total })
}

fn page_params(page: Option<u64>, limit: Option<u64>) -> Result<PageParams> {
    Ok(PageParams::parse(page, Some(limit.unwrap_or(DEFAULT_LIMIT)))?)
}

// ---------------------------------------------------------------------------------------
// Nodes

/// A node: an agent account that proved itself with `X-Node-ID` (its account id) and
/// `Authorization: Bearer <node secret>` (one of its API keys). Anything else is a 401.
struct Node(Principal);

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Auth(p) = Auth::from_request_parts(parts, state).await?;
        let claimed = parts.headers.get("x-node-id").and_then(|v| v.to_str().ok()).map(str::trim);
        match claimed {
            None | Some("") => Err(ApiError::unauthorized("node calls need X-Node-ID and the node secret")),
            Some(id) if id == p.id().as_str() && p.account.kind == AccountKind::Agent => Ok(Node(p)),
            Some(_) => Err(ApiError::unauthorized("X-Node-ID does not match the node secret")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnlineRequest {
    active_services: Option<Vec<String>>,
}

/// Presence on, and the node's services as listed: those named are published (runnable),
/// the node's others unpublished. Without a list, publication is left as it is.
async fn node_online(
    State(state): State<AppState>,
    Node(node): Node,
    ApiJson(req): ApiJson<OnlineRequest>,
) -> Result<Response> {
    let mine = state.app.agent_services(&node, node.id()).await?;
    if let Some(active) = &req.active_services {
        for (i, id) in active.iter().enumerate() {
            if !mine.iter().any(|s| s.id.as_str() == id) {
                return Err(ApiError::invalid(
                    &format!("active_services[{i}]"),
                    "is not a service of this node",
                ));
            }
        }
        for service in &mine {
            let on = active.iter().any(|id| id == service.id.as_str());
            if service.published != on {
                state.app.publish(&node, &service.id, on).await?.commit().await?;
            }
        }
    }
    state.app.heartbeat(&node, false).await?.commit().await?;
    let online = state.app.agent_services(&node, node.id()).await?.iter().filter(|s| s.published).count();
    success(json!({ "node_id": node.id(), "online_services": online }))
}

/// Presence off: the node's services show offline and cannot be run (503) until it is
/// next online.
async fn node_offline(State(state): State<AppState>, Node(node): Node) -> Result<Response> {
    state.app.heartbeat(&node, true).await?.commit().await?;
    success(json!({ "node_id": node.id(), "online_services": 0 }))
}

/// The next task in the node's inbox, claimed with a lease, as the JSON-RPC request the
/// document shows; 404 when there is none (no waiting: poll again).
async fn node_pull(State(state): State<AppState>, Node(node): Node) -> Result<Response> {
    match state.app.claim_next(&node).await? {
        Some(task) => Ok(json_response(StatusCode::OK, rpc(&task).to_string())),
        None => Err(ApiError::not_found("task")),
    }
}

async fn node_task(
    State(state): State<AppState>,
    Node(node): Node,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    task_detail(&state, &node, &id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressRequest {
    progress_percent: i64,
    progress_eta: Option<i64>,
    current_step: Option<String>,
}

async fn node_progress(
    State(state): State<AppState>,
    Node(node): Node,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ProgressRequest>,
) -> Result<Response> {
    let report = ProgressReport::parse(req.progress_percent, req.progress_eta, req.current_step)
        .map_err(|inv| rename(inv, &[("percent", "progress_percent"), ("eta_seconds", "progress_eta")]))?;
    let done = state.app.task_command(&node, &task_id(&id)?, TaskCommand::Progress(report)).await?;
    let t = &done.value().task;
    let body =
        json!({ "success": true, "task_id": t.id, "status": status(t.status), "progress": progress(t) });
    idem.commit_body(done, StatusCode::OK, body.to_string()).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UiContent {
    #[serde(rename = "type")]
    kind: String,
    content: String,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverRequest {
    machine_data: Option<Value>,
    ui_content: Option<Vec<UiContent>>,
}

/// `machine_data` is the structured output (checked against the output schema), and
/// `ui_content` the UI blocks.
async fn node_deliver(
    State(state): State<AppState>,
    Node(node): Node,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<DeliverRequest>,
) -> Result<Response> {
    let delivery = Delivery::parse(DeliveryInput {
        text: None,
        output: req.machine_data,
        ui_blocks: req
            .ui_content
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b.kind, b.content, b.label))
            .collect(),
        files: Vec::new(),
    })
    .map_err(|inv| rename(inv, &[("output", "machine_data"), ("ui_blocks", "ui_content")]))?;
    let done = state
        .app
        .task_command(&node, &task_id(&id)?, TaskCommand::Deliver(delivery))
        .await
        .map_err(|e| rename_error(e, &[("output", "machine_data")]))?;
    let t = &done.value().task;
    let body = json!({ "success": true, "task_id": t.id, "status": status(t.status), "message": "交付成功" });
    idem.commit_body(done, StatusCode::OK, body.to_string()).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailRequest {
    error_log: String,
}

async fn node_fail(
    State(state): State<AppState>,
    Node(node): Node,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<FailRequest>,
) -> Result<Response> {
    let log = message_text(&req.error_log).map_err(|e| e.at("error_log"))?;
    let done = state.app.task_command(&node, &task_id(&id)?, TaskCommand::Fail(log)).await?;
    let d = done.value();
    let body = json!({ "success": true, "task_id": d.task.id, "status": status(d.task.status),
        "refunded_points": d.moved.refunded });
    idem.commit_body(done, StatusCode::OK, body.to_string()).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<u64>,
}

/// Open requests anyone may accept, newest first.
async fn node_requests(
    State(state): State<AppState>,
    Node(node): Node,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Response> {
    let params = page_params(None, q.limit)?;
    let found = state.app.bounties(&node, BountyFilter::Open, params.offset(), params.limit).await?;
    let items: Vec<Value> = found.items.iter().map(request).collect();
    success(json!({ "requests": items, "pagination": pagination(params, found.total) }))
}

/// The first node to accept an open request gets it (409 for the rest, 403 for its poster).
async fn node_accept_request(
    State(state): State<AppState>,
    Node(node): Node,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "bounty")?;
    let done = state.app.claim_bounty(&node, &id).await?;
    let t = &done.value().task;
    let body = json!({ "success": true, "task_id": t.id, "message": "认领成功",
        "deadline_at": t.deadline_at.map(Timestamp::to_rfc3339) });
    idem.commit_body(done, StatusCode::OK, body.to_string()).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    status: Option<String>,
    page: Option<u64>,
    limit: Option<u64>,
}

/// The requests this node accepted, as tasks.
async fn node_request_tasks(
    State(state): State<AppState>,
    Node(node): Node,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response> {
    let params = page_params(q.page, q.limit)?;
    let statuses = TASK_STATUS.parse_list(q.status.as_deref())?;
    let found =
        state.app.bounties(&node, BountyFilter::Claimed(statuses), params.offset(), params.limit).await?;
    let items: Vec<Value> = found.items.iter().map(|t| task(t, None)).collect();
    success(json!({ "tasks": items, "pagination": pagination(params, found.total) }))
}

// ---------------------------------------------------------------------------------------
// Requester: services

/// Services priced in points: keyword, `status` online (default) or all, `sort`
/// created_desc (default), price_asc, price_desc or paid_desc.
async fn list_services(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<agora_client::types::ServiceListQuery>,
) -> Result<Response> {
    // The native search's words, with the document's sort words and page size.
    let (params, search) = api::services::search_query(q, &SORT, DEFAULT_LIMIT, Some(points(&state)))?;
    let found = state.app.search_services(&search).await?;
    let now = state.app.now();
    let items: Vec<Value> = found.items.iter().map(|v| service(v, now, false)).collect();
    success(json!({ "services": items, "pagination": pagination(params, found.total) }))
}

async fn get_service(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response> {
    let id = path_id(&id, ServiceId::parse, "service")?;
    // A published service priced in points; anything else is 404 here.
    let found = Some(state.app.service(None, &id).await?)
        .filter(|v| v.service.currency == points(&state))
        .ok_or_else(|| ApiError::not_found("service"))?;
    success(json!({ "service": service(&found, state.app.now(), true) }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    input_data: Value,
}

/// Runs a service: the price is frozen (402 if it cannot be), and the answer is the
/// JSON-RPC request the node will pull. 403 for one's own service, 503 if it is offline.
async fn run_service(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RunRequest>,
) -> Result<Response> {
    let id = path_id(&id, ServiceId::parse, "service")?;
    let done = state.app.run_service(&p, &id, req.input_data, Some(&points(&state))).await?;
    let body = rpc(done.value()).to_string();
    idem.commit_body(done, StatusCode::OK, body).await
}

// ---------------------------------------------------------------------------------------
// Requester: tasks

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskListQuery {
    status: Option<String>,
    task_type: Option<String>,
    page: Option<u64>,
    limit: Option<u64>,
}

/// The caller's service runs and accepted requests, newest first.
async fn list_tasks(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> Result<Response> {
    let params = page_params(q.page, q.limit)?;
    let kinds = match q.task_type.as_deref() {
        None => vec![TaskKind::Service, TaskKind::Bounty],
        raw => TASK_TYPE.parse_list(raw)?,
    };
    let filter = TaskFilter {
        role: Some(TaskRole::Requester),
        statuses: TASK_STATUS.parse_list(q.status.as_deref())?,
        kinds,
        // A request becomes a task when a node accepts it.
        assigned_only: true,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.app.tasks(&p, &filter).await?;
    let items: Vec<Value> = found.items.iter().map(|t| task(t, None)).collect();
    success(json!({ "tasks": items, "pagination": pagination(params, found.total) }))
}

async fn get_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    task_detail(&state, &p, &id).await
}

/// One task with its timeline, for its requester and its node (404 for anyone else).
async fn task_detail(state: &AppState, p: &Principal, raw: &str) -> Result<Response> {
    let d = state.app.task(p, &task_id(raw)?).await?;
    // A stranger's view of an open bounty has no timeline; and a request becomes a task only
    // when a node accepts it.
    let unaccepted = d.task.kind == TaskKind::Bounty && d.task.assignee_id.is_none();
    let Some(timeline) = d.timeline.filter(|_| !unaccepted) else { return Err(ApiError::not_found("task")) };
    success(json!({ "task": task(&d.task, Some(&timeline)) }))
}

/// Accepts a delivery: the frozen points go to the node minus the platform fee;
/// `settled_amount` is what the node received.
async fn accept_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let done = state.app.task_command(&p, &task_id(&id)?, TaskCommand::Accept).await?;
    let d = done.value();
    let body = json!({ "success": true, "message": "验收成功", "settled_amount": d.moved.net,
        "platform_fee": d.moved.fee, "task_id": d.task.id, "status": status(d.task.status) });
    idem.commit_body(done, StatusCode::OK, body.to_string()).await
}

// ---------------------------------------------------------------------------------------
// Requester: requests (bounties)

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    title: String,
    short_description: String,
    description: Option<String>,
    reward_amount: i64,
    penalty_amount: Option<i64>,
    max_delivery_hours: i64,
    input_schema: Option<Value>,
    output_schema: Option<Value>,
    input_data: Option<Value>,
}

/// Posts a request; its reward is locked at once (402 if it cannot be).
async fn create_request(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(req): ApiJson<RequestBody>,
) -> Result<Response> {
    let input = BountyInput {
        title: req.title,
        short_description: req.short_description,
        description: req.description,
        reward: req.reward_amount,
        penalty: req.penalty_amount,
        max_delivery_hours: req.max_delivery_hours,
        input_schema: req.input_schema,
        output_schema: req.output_schema,
        input_data: req.input_data,
    };
    let done = state.app.post_bounty(&p, input, Some(&state.config.agentflow_currency)).await?;
    let t = done.value();
    let body = json!({ "success": true, "cyber_meta": { "request_id": t.id }, "locked_points": t.price.unwrap_or(0) });
    idem.commit_body(done, StatusCode::OK, body.to_string()).await
}

/// Requests: `open` ones (the default) from everyone; in any other status, the caller's
/// own (posted or accepted).
async fn list_requests(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response> {
    let params = page_params(q.page, q.limit)?;
    let filter = match q.status.as_deref() {
        None | Some("open") => BountyFilter::Open,
        Some("all") => BountyFilter::Mine(Vec::new()),
        raw => BountyFilter::Mine(REQUEST_STATUS.parse_list(raw)?),
    };
    let found = state.app.bounties(&p, filter, params.offset(), params.limit).await?;
    let items: Vec<Value> = found.items.iter().map(request).collect();
    success(json!({ "requests": items, "pagination": pagination(params, found.total) }))
}

/// One request: open ones for everyone, others for their poster and the node that accepted.
async fn get_request(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "request")?;
    let found = state.app.bounty(&p, &id).await.map_err(|_| ApiError::not_found("request"))?;
    success(json!({ "request": request(&found) }))
}

// ---------------------------------------------------------------------------------------
// Translation

fn points(state: &AppState) -> Currency {
    // Validated at start against the currency table.
    Currency::from_trusted(state.config.agentflow_currency.clone())
}

fn task_id(raw: &str) -> Result<TaskId> {
    path_id(raw, TaskId::parse, "task")
}

/// A task's status in the document's words.
fn status(s: TaskStatus) -> &'static str {
    TASK_STATUS.word_for(&s)
}

/// A request's status in the document's words.
fn request_status(s: TaskStatus) -> &'static str {
    REQUEST_STATUS.word_for(&s)
}

fn task_type(kind: TaskKind) -> &'static str {
    match TASK_TYPE.word_for(&kind) {
        "" => kind.as_str(),
        word => word,
    }
}

/// A task as the node receives it: a JSON-RPC 2.0 request whose `id` is the task id and
/// whose `cyber_meta.idempotency_key` is the same on every pull of the same task.
fn rpc(task: &Task) -> Value {
    let suffix = task.id.as_str().trim_start_matches("tsk_");
    json!({
        "jsonrpc": "2.0",
        "id": task.id,
        "cyber_meta": {
            "task_id": task.id,
            "service_id": task.service_id,
            "idempotency_key": format!("idem_{suffix}"),
            "auth": { "requester_id": task.requester_id, "budget_frozen": task.price.unwrap_or(0) },
        },
        "method": "execute_task",
        "params": task.input,
    })
}

fn progress(task: &Task) -> Value {
    task.progress.as_ref().map_or(Value::Null, |p| {
        json!({ "progress_percent": p.percent, "progress_eta": p.eta_seconds, "current_step": p.current_step })
    })
}

fn task(task: &Task, events: Option<&[Event]>) -> Value {
    let output = task.output.as_ref();
    let mut v = json!({
        "id": task.id,
        "task_type": task_type(task.kind),
        "status": status(task.status),
        "title": task.title,
        "service_id": task.service_id,
        "request_id": (task.kind == TaskKind::Bounty).then_some(&task.id),
        "requester_id": task.requester_id,
        "node_id": task.assignee_id,
        "budget_frozen": task.price.unwrap_or(0),
        "currency": task.currency,
        "progress": progress(task),
        "input_data": task.input.clone().unwrap_or(Value::Null),
        "machine_data": output.and_then(|o| o.output.clone()),
        "ui_content": output.map(|o| o.ui_blocks.iter().map(ui_block).collect::<Vec<_>>()),
        "error_log": task.error,
        "deadline_at": task.deadline_at.map(Timestamp::to_rfc3339),
        "delivered_at": task.delivered_at.map(Timestamp::to_rfc3339),
        "created_at": task.created_at.to_rfc3339(),
        "updated_at": task.updated_at.to_rfc3339(),
    });
    if let Some(events) = events {
        v["timeline"] = events
            .iter()
            .map(|e| {
                json!({ "event": e.event_type.as_str(), "actor_id": e.actor_id, "at": e.created_at.to_rfc3339(),
                "data": e.payload })
            })
            .collect();
    }
    v
}

/// A UI block as the document writes one: `label` only when there is one.
fn ui_block(b: &agora_core::work::UiBlock) -> Value {
    let mut v = json!({ "type": b.kind.as_str(), "content": b.content });
    if let Some(label) = &b.label {
        v["label"] = json!(label);
    }
    v
}

fn request(task: &Task) -> Value {
    let d = task.terms.to_details(None);
    json!({
        "id": task.id,
        "title": task.title,
        "short_description": d["short_description"],
        "description": task.description,
        "reward_amount": task.price.unwrap_or(0),
        "penalty_amount": d["penalty"],
        "max_delivery_hours": d["max_delivery_hours"],
        "input_schema": d["input_schema"],
        "output_schema": d["output_schema"],
        "input_data": task.input.clone().unwrap_or(Value::Null),
        "status": request_status(task.status),
        "requester_id": task.requester_id,
        "node_id": task.assignee_id,
        "task_id": task.assignee_id.as_ref().map(|_| &task.id),
        "deadline_at": task.deadline_at.map(Timestamp::to_rfc3339),
        "created_at": task.created_at.to_rfc3339(),
    })
}

fn service(v: &ServiceView, now: Timestamp, full: bool) -> Value {
    let s = &v.service;
    let node = v.agent.as_ref();
    let mut out = json!({
        "id": s.id,
        "name": s.terms.name,
        "version": s.terms.version,
        "short_description": s.terms.short_description,
        "price": s.terms.price,
        "status": if node.is_some_and(|n| n.is_online(now)) { "online" } else { "offline" },
        "input_schema": s.terms.input_schema,
        "output_schema": s.terms.output_schema,
        "node": node.map(|n| json!({ "id": n.id, "name": n.name })),
        "provider": v.provider.as_ref().map(|p| json!({ "id": p.id, "username": p.name })),
        "paid_count": s.paid_count,
        "favorite_count": s.favorite_count,
        "created_at": s.created_at.to_rfc3339(),
    });
    if full {
        out["description"] = json!(s.terms.description);
        out["total_revenue"] = json!(s.total_revenue);
        out["updated_at"] = json!(s.updated_at.to_rfc3339());
    }
    out
}

/// Native field names in validation errors, replaced by the document's.
fn rename(mut inv: Invalid, names: &[(&str, &str)]) -> ApiError {
    for e in &mut inv.0 {
        for (native, ours) in names {
            if let Some(rest) = e.path.strip_prefix(native) {
                e.path = format!("{ours}{rest}");
            }
        }
    }
    inv.into()
}

/// [`rename`] for a validation error that the engine raised (an output schema's).
fn rename_error(e: agora_app::Error, names: &[(&str, &str)]) -> ApiError {
    match e {
        agora_app::Error::Invalid(inv) => rename(inv, names),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_native_status_has_a_document_status_that_filters_back_to_it() {
        for s in TaskStatus::ALL {
            let shown = status(s);
            assert!(TASK_STATUS.parse_list(Some(shown)).unwrap().contains(&s), "{s:?} shows as {shown}");
            let request = request_status(s);
            assert!(
                REQUEST_STATUS.parse_list(Some(request)).unwrap().contains(&s),
                "{s:?} shows as {request}"
            );
        }
        assert!(TASK_STATUS.parse_list(Some("bogus")).is_err());
    }

    #[test]
    fn validation_errors_name_every_field() {
        let info = ErrorInfo {
            code: "VALIDATION_ERROR",
            message: "invalid input".into(),
            details: json!({ "errors": [{ "path": "title", "message": "too long" }, { "path": "", "message": "x" }] }),
        };
        assert_eq!(error_body(&info)["error"], "invalid input: title: too long; x");
        assert_eq!(error_body(&info)["code"], "VALIDATION_ERROR");
    }

    #[test]
    fn a_task_id_is_its_rpc_id() {
        let t = Task::new(
            agora_core::work::TaskTerms::Chat,
            &agora_core::AccountId::generate(),
            "x".into(),
            Timestamp::now(),
        );
        let v = rpc(&t);
        assert_eq!(v["id"], json!(t.id));
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], "execute_task");
        assert!(v["cyber_meta"]["idempotency_key"].as_str().unwrap().starts_with("idem_"));
        assert_eq!(v["cyber_meta"]["task_id"], json!(t.id));
    }
}
