//! The AgentFlow API (seed 002) under `/compat/agentflow`: the requester API
//! (`/api/v1/…`, Bearer API key) and the node API (`/api/node/…`, `X-Node-ID` + Bearer
//! node secret), translated onto the native operations. docs/dialects/agentflow.md has the
//! mapping table and the choices made where the document is silent.
//!
//! In Agora terms: a *node* is an agent account (`X-Node-ID` is its account id, the node
//! secret one of its API keys); a *service* is a native service; a *request* (定制需求) is a
//! bounty, and the task a node gets by accepting it is that same bounty, so a request's id
//! is also its task's id; *points* are minor units of `agentflow_currency` (default `PTS`).

use agora_client::types as t;
use agora_core::{
    AccountId, FieldError, Invalid, Timestamp,
    account::{Account, AccountKind, ONLINE_WINDOW_SECS},
    task::{TaskKind, TaskStatus},
    work::{Delivery, DeliveryInput, ProgressReport, message_text},
};
use agora_store::{Event, Service, ServiceQuery, ServiceSort, Task, TaskQuery, work::Act};
use axum::{
    Router,
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AppState,
    api::{agent, bounties, services, tasks},
    auth::Caller,
    error::{ApiError, ErrorInfo, Result},
    extract::{ApiJson, ApiQuery, PageParams, json_response},
    idempotency::Idempotency,
};

/// The document's requester key prefix, accepted as an alias of `ak_live_`.
pub const KEY_PREFIX: &str = "af_live_";
/// The document's default page size.
const DEFAULT_LIMIT: u64 = 16;

pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
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
        .fallback(|| async { ApiError::not_found("endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                crate::error::code::METHOD_NOT_ALLOWED,
                "method not allowed here",
            )
        });
    super::with_conventions(routes, state, Some(KEY_PREFIX), errors)
}

/// The document's error body, `{"error": "…"}`, plus the native `code` for programs. Its
/// table has no 422: invalid input is a 400 (参数错误).
async fn errors(resp: Response) -> Response {
    super::rerender_errors(
        resp,
        |s| if s == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { s },
        error_body,
    )
}

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
struct Node(Caller);

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let claimed = parts.headers.get("x-node-id").and_then(|v| v.to_str().ok()).map(str::trim);
        match claimed {
            None | Some("") => Err(ApiError::unauthorized("node calls need X-Node-ID and the node secret")),
            Some(id) if id == caller.account.id.as_str() && caller.account.kind == AccountKind::Agent => {
                Ok(Node(caller))
            }
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
    let mine = node_services(&state, &node.account.id).await?;
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
                services::edit_service(&state, &node, service.id.as_str(), |s| {
                    s.published = on;
                    Ok(())
                })
                .await?;
            }
        }
    }
    agent::touch(&state, node.account.clone(), false).await?;
    let online = node_services(&state, &node.account.id).await?.iter().filter(|s| s.published).count();
    success(json!({ "node_id": node.account.id, "online_services": online }))
}

/// Presence off: the node's services show offline and cannot be run (503) until it is
/// next online.
async fn node_offline(State(state): State<AppState>, Node(node): Node) -> Result<Response> {
    agent::touch(&state, node.account.clone(), true).await?;
    success(json!({ "node_id": node.account.id, "online_services": 0 }))
}

async fn node_services(state: &AppState, node: &AccountId) -> Result<Vec<Service>> {
    let mut all = Vec::new();
    loop {
        let found = state
            .store
            .services(&ServiceQuery {
                text: None,
                online_since: None,
                agent: Some(node.clone()),
                currency: None,
                sort: ServiceSort::Newest,
                offset: all.len() as u64,
                limit: PageParams::MAX_LIMIT,
            })
            .await?;
        let done = found.items.len() < PageParams::MAX_LIMIT as usize;
        all.extend(found.items);
        if done {
            return Ok(all);
        }
    }
}

/// The next task in the node's inbox, claimed with a lease, as the JSON-RPC request the
/// document shows; 404 when there is none (no waiting: poll again).
async fn node_pull(State(state): State<AppState>, Node(node): Node) -> Result<Response> {
    agent::touch(&state, node.account.clone(), false).await?;
    match agent::claim_once(&state, &node.account).await? {
        Some(task) => Ok(json_response(StatusCode::OK, rpc(&task).to_string())),
        None => Err(ApiError::not_found("task")),
    }
}

async fn node_task(
    State(state): State<AppState>,
    Node(node): Node,
    Path(id): Path<String>,
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ProgressRequest>,
) -> Result<Response> {
    let report = ProgressReport::parse(req.progress_percent, req.progress_eta, req.current_step)
        .map_err(|inv| rename(inv, &[("percent", "progress_percent"), ("eta_seconds", "progress_eta")]))?;
    let (tx, done) = tasks::act_on(&state, &node, &id, Act::Progress(report)).await?;
    let body = json!({ "success": true, "task_id": done.task.id, "status": status(done.task.status),
        "progress": progress(&done.task) });
    idem.commit_body(&state, tx, StatusCode::OK, body.to_string()).await
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
    Path(id): Path<String>,
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
    let (tx, done) = tasks::act_on(&state, &node, &id, Act::Deliver(delivery))
        .await
        .map_err(|e| rename_error(e, &[("output", "machine_data")]))?;
    let body = json!({ "success": true, "task_id": done.task.id, "status": status(done.task.status),
        "message": "交付成功" });
    idem.commit_body(&state, tx, StatusCode::OK, body.to_string()).await
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FailRequest>,
) -> Result<Response> {
    let log = message_text(&req.error_log).map_err(|e| e.at("error_log"))?;
    let (tx, done) = tasks::act_on(&state, &node, &id, Act::Fail(log)).await?;
    let body = json!({ "success": true, "task_id": done.task.id, "status": status(done.task.status),
        "refunded_points": done.moved.refunded });
    idem.commit_body(&state, tx, StatusCode::OK, body.to_string()).await
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
    let found = state.store.tasks(&bounties::list_query(&node, vec![TaskStatus::Open], params)).await?;
    let items: Vec<Value> = found.items.iter().map(request).collect();
    success(json!({ "requests": items, "pagination": pagination(params, found.total) }))
}

/// The first node to accept an open request gets it (409 for the rest, 403 for its poster).
async fn node_accept_request(
    State(state): State<AppState>,
    Node(node): Node,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    let (tx, done) = bounties::claim(&state, &node, &id).await?;
    let body = json!({ "success": true, "task_id": done.task.id, "message": "认领成功",
        "deadline_at": done.task.deadline_at.map(Timestamp::to_rfc3339) });
    idem.commit_body(&state, tx, StatusCode::OK, body.to_string()).await
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
    let query = TaskQuery {
        requester: None,
        assignee: Some(node.account.id.clone()),
        either: false,
        statuses: task_statuses(q.status.as_deref())?,
        kinds: vec![TaskKind::Bounty],
        assigned_only: true,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.store.tasks(&query).await?;
    let items: Vec<Value> = found.items.iter().map(|t| task(t, None)).collect();
    success(json!({ "tasks": items, "pagination": pagination(params, found.total) }))
}

// ---------------------------------------------------------------------------------------
// Requester: services

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceListQuery {
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    page: Option<u64>,
    limit: Option<u64>,
}

/// Services priced in points: keyword, `status` online (default) or all, `sort`
/// created_desc (default), price_asc, price_desc or paid_desc.
async fn list_services(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ServiceListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, Some(q.limit.unwrap_or(DEFAULT_LIMIT))));
    let now = Timestamp::now();
    let online_since = match q.status.as_deref() {
        None | Some("online") => Some(now.plus_seconds(-ONLINE_WINDOW_SECS)),
        Some("all") => None,
        Some(_) => {
            inv.push("status", "must be online or all");
            None
        }
    };
    let sort = match q.sort.as_deref() {
        None | Some("created_desc") => ServiceSort::Newest,
        Some("price_asc") => ServiceSort::PriceAsc,
        Some("price_desc") => ServiceSort::PriceDesc,
        Some("paid_desc") => ServiceSort::MostPaid,
        Some(_) => {
            inv.push("sort", "must be created_desc, price_asc, price_desc or paid_desc");
            ServiceSort::Newest
        }
    };
    let text = q.q.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
        inv.push("q", "must be at most 200 characters");
    }
    let Some(params) = params.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let found = state
        .store
        .services(&ServiceQuery {
            text,
            online_since,
            agent: None,
            currency: Some(points(&state)),
            sort,
            offset: params.offset(),
            limit: params.limit,
        })
        .await?;
    let people = people(&state, &found.items).await?;
    let items: Vec<Value> = found.items.iter().map(|s| service(s, &people, now, false)).collect();
    success(json!({ "services": items, "pagination": pagination(params, found.total) }))
}

/// A published service priced in points; anything else is 404 here.
async fn points_service(state: &AppState, raw: &str) -> Result<Service> {
    let id = crate::api::path_id(raw, agora_core::ServiceId::parse, "service")?;
    state
        .store
        .service(&id)
        .await?
        .filter(|s| s.published && s.currency == points(state))
        .ok_or_else(|| ApiError::not_found("service"))
}

async fn get_service(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let found = points_service(&state, &id).await?;
    let people = people(&state, std::slice::from_ref(&found)).await?;
    success(json!({ "service": service(&found, &people, Timestamp::now(), true) }))
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
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RunRequest>,
) -> Result<Response> {
    points_service(&state, &id).await?;
    let (tx, _, task) = services::start_run(&state, &caller, &id, req.input_data).await?;
    idem.commit_body(&state, tx, StatusCode::OK, rpc(&task).to_string()).await
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
    caller: Caller,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> Result<Response> {
    let params = page_params(q.page, q.limit)?;
    let kinds = match q.task_type.as_deref() {
        None => vec![TaskKind::Service, TaskKind::Bounty],
        Some("service") => vec![TaskKind::Service],
        Some("request") => vec![TaskKind::Bounty],
        Some(_) => return Err(ApiError::invalid("task_type", "must be service or request")),
    };
    let query = TaskQuery {
        requester: Some(caller.account.id.clone()),
        assignee: None,
        either: false,
        statuses: task_statuses(q.status.as_deref())?,
        kinds,
        // A request becomes a task when a node accepts it.
        assigned_only: true,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.store.tasks(&query).await?;
    let items: Vec<Value> = found.items.iter().map(|t| task(t, None)).collect();
    success(json!({ "tasks": items, "pagination": pagination(params, found.total) }))
}

async fn get_task(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    task_detail(&state, &caller, &id).await
}

/// One task with its timeline, for its requester and its node (404 for anyone else).
async fn task_detail(state: &AppState, caller: &Caller, raw: &str) -> Result<Response> {
    let found = tasks::visible(state, raw, caller).await?;
    let me = &caller.account.id;
    let party = &found.requester_id == me || found.assignee_id.as_ref() == Some(me);
    // A request becomes a task when a node accepts it; until then it is only a request.
    let unaccepted = found.kind == TaskKind::Bounty && found.assignee_id.is_none();
    if !party || unaccepted {
        return Err(ApiError::not_found("task"));
    }
    let events = state.store.task_events(&found.id).await?;
    success(json!({ "task": task(&found, Some(&events)) }))
}

/// Accepts a delivery: the frozen points go to the node minus the platform fee;
/// `settled_amount` is what the node received.
async fn accept_task(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    let (tx, done) = tasks::act_on(&state, &caller, &id, Act::Accept).await?;
    let body = json!({ "success": true, "message": "验收成功", "settled_amount": done.moved.net,
        "platform_fee": done.moved.fee, "task_id": done.task.id, "status": status(done.task.status) });
    idem.commit_body(&state, tx, StatusCode::OK, body.to_string()).await
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
    caller: Caller,
    idem: Idempotency,
    ApiJson(req): ApiJson<RequestBody>,
) -> Result<Response> {
    let (tx, task) = bounties::post(
        &state,
        &caller,
        t::BountyRequest {
            title: req.title,
            short_description: req.short_description,
            description: req.description,
            reward_amount: req.reward_amount,
            currency: Some(state.config.agentflow_currency.clone()),
            penalty_amount: req.penalty_amount,
            max_delivery_hours: req.max_delivery_hours,
            input_schema: req.input_schema,
            output_schema: req.output_schema,
            input_data: req.input_data,
        },
    )
    .await?;
    let body = json!({ "success": true, "cyber_meta": { "request_id": task.id },
        "locked_points": task.price.unwrap_or(0) });
    idem.commit_body(&state, tx, StatusCode::OK, body.to_string()).await
}

/// Requests: `open` ones (the default) from everyone; in any other status, the caller's
/// own (posted or accepted).
async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response> {
    let params = page_params(q.page, q.limit)?;
    let statuses = match q.status.as_deref() {
        None | Some("open") => vec![TaskStatus::Open],
        Some("in_progress") => vec![TaskStatus::InProgress, TaskStatus::Delivered],
        Some("completed") => vec![TaskStatus::Completed],
        Some("cancelled") => vec![TaskStatus::Cancelled, TaskStatus::Failed, TaskStatus::Expired],
        Some("all") => Vec::new(),
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be open, in_progress, completed, cancelled or all",
            ));
        }
    };
    let found = state.store.tasks(&bounties::list_query(&caller, statuses, params)).await?;
    let items: Vec<Value> = found.items.iter().map(request).collect();
    success(json!({ "requests": items, "pagination": pagination(params, found.total) }))
}

/// One request: open ones for everyone, others for their poster and the node that accepted.
async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let found = tasks::visible(&state, &id, &caller)
        .await
        .ok()
        .filter(|t| t.kind == TaskKind::Bounty)
        .ok_or_else(|| ApiError::not_found("request"))?;
    success(json!({ "request": request(&found) }))
}

// ---------------------------------------------------------------------------------------
// Translation

fn points(state: &AppState) -> agora_core::money::Currency {
    // Validated at start against the currency table.
    agora_core::money::Currency::from_trusted(state.config.agentflow_currency.clone())
}

/// The document's five task statuses.
fn status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Open | TaskStatus::Queued => "pending",
        TaskStatus::InProgress => "processing",
        TaskStatus::Delivered => "delivered",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Expired => "failed",
    }
}

/// A status filter in the document's names, as native statuses (all when absent).
fn task_statuses(raw: Option<&str>) -> Result<Vec<TaskStatus>> {
    Ok(match raw {
        None | Some("") => Vec::new(),
        Some("pending") => vec![TaskStatus::Open, TaskStatus::Queued],
        Some("processing") => vec![TaskStatus::InProgress],
        Some("delivered") => vec![TaskStatus::Delivered],
        Some("completed") => vec![TaskStatus::Completed],
        Some("failed") => vec![TaskStatus::Failed, TaskStatus::Cancelled, TaskStatus::Expired],
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be pending, processing, delivered, completed or failed",
            ));
        }
    })
}

/// A request's own status: `open` until a node accepts it, then `in_progress`, and
/// finally `completed` or `cancelled`.
fn request_status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Open => "open",
        TaskStatus::Queued | TaskStatus::InProgress | TaskStatus::Delivered => "in_progress",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Expired => "cancelled",
    }
}

fn task_type(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Service => "service",
        TaskKind::Bounty => "request",
        other => other.as_str(),
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
        "input_data": task.input,
        "machine_data": output.and_then(|o| o.output.clone()),
        "ui_content": output.map(|o| o.ui_blocks.iter().map(ui_block).collect::<Vec<_>>()),
        "error_log": task.details.get("error"),
        "deadline_at": task.deadline_at.map(Timestamp::to_rfc3339),
        "delivered_at": task.delivered_at.map(Timestamp::to_rfc3339),
        "created_at": task.created_at.to_rfc3339(),
        "updated_at": task.updated_at.to_rfc3339(),
    });
    if let Some(events) = events {
        v["timeline"] = events
            .iter()
            .map(|e| {
                json!({ "event": e.event_type, "actor_id": e.actor_id, "at": e.created_at.to_rfc3339(),
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
    let d = &task.details;
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
        "input_data": task.input,
        "status": request_status(task.status),
        "requester_id": task.requester_id,
        "node_id": task.assignee_id,
        "task_id": task.assignee_id.as_ref().map(|_| &task.id),
        "deadline_at": task.deadline_at.map(Timestamp::to_rfc3339),
        "created_at": task.created_at.to_rfc3339(),
    })
}

/// The agents (nodes) behind `services`, and the people who registered them (providers).
async fn people(state: &AppState, services: &[Service]) -> Result<Vec<Account>> {
    let mut ids: Vec<AccountId> = services.iter().map(|s| s.agent_id.clone()).collect();
    let agents = state.store.accounts(&ids).await?;
    ids = agents.iter().filter_map(|a| a.owner_id.clone()).collect();
    let mut all = state.store.accounts(&ids).await?;
    all.extend(agents);
    Ok(all)
}

fn service(s: &Service, people: &[Account], now: Timestamp, full: bool) -> Value {
    let find = |id: &AccountId| people.iter().find(|a| &a.id == id);
    let node = find(&s.agent_id);
    // A self-registered agent is its own provider.
    let provider = node.and_then(|n| n.owner_id.as_ref()).and_then(find).or(node);
    let mut v = json!({
        "id": s.id,
        "name": s.terms.name,
        "version": s.terms.version,
        "short_description": s.terms.short_description,
        "price": s.terms.price,
        "status": if node.is_some_and(|n| n.is_online(now)) { "online" } else { "offline" },
        "input_schema": s.terms.input_schema,
        "output_schema": s.terms.output_schema,
        "node": node.map(|n| json!({ "id": n.id, "name": n.name })),
        "provider": provider.map(|p| json!({ "id": p.id, "username": p.name })),
        "paid_count": s.paid_count,
        "favorite_count": s.favorite_count,
        "created_at": s.created_at.to_rfc3339(),
    });
    if full {
        v["description"] = json!(s.terms.description);
        v["total_revenue"] = json!(s.total_revenue);
        v["updated_at"] = json!(s.updated_at.to_rfc3339());
    }
    v
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
fn rename_error(e: ApiError, names: &[(&str, &str)]) -> ApiError {
    let Some(errors) = e.details["errors"].as_array() else { return e };
    let fields = errors
        .iter()
        .map(|f| FieldError {
            path: f["path"].as_str().unwrap_or("").to_owned(),
            message: f["message"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    rename(Invalid(fields), names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_native_status_has_a_document_status_that_filters_back_to_it() {
        use TaskStatus::*;
        for s in [Open, Queued, InProgress, Delivered, Completed, Failed, Cancelled, Expired] {
            let shown = status(s);
            assert!(task_statuses(Some(shown)).unwrap().contains(&s), "{s:?} shows as {shown}");
        }
        assert!(task_statuses(Some("bogus")).is_err());
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
        let t = Task::new(TaskKind::Service, &AccountId::generate(), "x".into(), Timestamp::now());
        let v = rpc(&t);
        assert_eq!(v["id"], json!(t.id));
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], "execute_task");
        assert!(v["cyber_meta"]["idempotency_key"].as_str().unwrap().starts_with("idem_"));
        assert_eq!(v["cyber_meta"]["task_id"], json!(t.id));
    }
}
