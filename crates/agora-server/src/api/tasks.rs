//! Tasks of every kind: reading them (requester and assignee only; anyone else gets 404),
//! and the commands both sides issue. Every command goes through `agora_store::work`, which
//! asks the state machine; these handlers translate and authorise.

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    AccountId, Invalid, TaskId, Timestamp,
    task::{TaskKind, TaskStatus},
    work::{self as rules, Delivery, DeliveryInput, ProgressReport},
};
use agora_store::{
    Task, TaskQuery, Tx,
    work::{self, Act, Who},
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, views};
use crate::{
    AppState,
    auth::Caller,
    error::{ApiError, Result},
    extract::{ApiJson, ApiQuery, PageParams, ok, page},
    idempotency::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(progress))
        .routes(routes!(post_message))
        .routes(routes!(deliver))
        .routes(routes!(fail))
        .routes(routes!(accept))
        .routes(routes!(revision))
        .routes(routes!(cancel))
}

/// Whether `who` may see `task`: its requester, its assignee, or anyone for an open bounty.
pub fn visible_to(task: &Task, who: &AccountId) -> bool {
    &task.requester_id == who
        || task.assignee_id.as_ref() == Some(who)
        || (task.kind == TaskKind::Bounty && task.status == TaskStatus::Open)
}

/// The task `raw` names, if the caller may see it; 404 otherwise (ids do not leak).
pub async fn visible(state: &AppState, raw: &str, caller: &Caller) -> Result<Task> {
    let id = path_id(raw, TaskId::parse, "task")?;
    state
        .store
        .task(&id)
        .await?
        .filter(|task| visible_to(task, &caller.account.id))
        .ok_or_else(|| ApiError::not_found("task"))
}

/// Runs `act` by the caller on a task it may see, commits (recording the response under the
/// request's `Idempotency-Key`), and answers with the task and the money moved.
pub async fn command(
    state: &AppState,
    caller: &Caller,
    idem: &Idempotency,
    raw: &str,
    act: Act,
) -> Result<Response> {
    let (tx, done) = act_on(state, caller, raw, act).await?;
    idem.commit(state, tx, StatusCode::OK, &result(&done)).await
}

/// Runs `act` by the caller on a task it may see (404 otherwise), in a transaction the
/// caller commits.
pub async fn act_on(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    act: Act,
) -> Result<(Box<dyn Tx>, work::Done)> {
    let task = visible(state, raw, caller).await?;
    let mut tx = state.store.begin().await?;
    let done = work::act(
        tx.as_mut(),
        &task.id,
        Who::Account(&caller.account.id),
        act,
        &state.config.engine(),
        Timestamp::now(),
    )
    .await?;
    Ok((tx, done))
}

pub fn result(done: &work::Done) -> t::TaskResult {
    t::TaskResult {
        task: views::task(&done.task, None, None),
        settled_amount: done.moved.released,
        fee: done.moved.fee,
        net: done.moved.net,
        refunded: done.moved.refunded,
    }
}

/// Parses a comma-separated status filter.
pub fn statuses(raw: Option<&str>, inv: &mut Invalid) -> Vec<TaskStatus> {
    let mut out = Vec::new();
    for s in raw.into_iter().flat_map(|r| r.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        match TaskStatus::parse(s) {
            Some(st) => out.push(st),
            None => inv.push("status", format!("unknown status {s:?}")),
        }
    }
    out
}

/// The caller's tasks: as requester, as worker (assignee), or both (default), newest first.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(t::TaskListQuery),
    responses(
        (status = 200, description = "A page of tasks", body = Envelope<Vec<t::Task>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<t::TaskListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let me = caller.account.id.clone();
    let (requester, assignee, either) = match q.role.as_deref() {
        None => (Some(me.clone()), Some(me), true),
        Some("requester") => (Some(me), None, false),
        Some("worker") => (None, Some(me), false),
        Some(_) => {
            inv.push("role", "must be requester or worker");
            (None, None, false)
        }
    };
    let statuses = statuses(q.status.as_deref(), &mut inv);
    let kinds = q.kind.as_deref().and_then(|k| {
        let parsed = TaskKind::parse(k);
        if parsed.is_none() {
            inv.push("kind", "must be chat, service, bounty, job, brief or step");
        }
        parsed
    });
    let Some(params) = params.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let found = state
        .store
        .tasks(&TaskQuery {
            requester,
            assignee,
            either,
            statuses,
            kinds: kinds.into_iter().collect(),
            assigned_only: false,
            offset: params.offset(),
            limit: params.limit,
        })
        .await?;
    let items: Vec<_> = found.items.iter().map(|task| views::task(task, None, None)).collect();
    page(&items, params, found.total)
}

/// One task with its messages and its timeline (from the event log). Anyone may read an
/// open bounty's terms; its messages and timeline are for its poster and claimer.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)")),
    responses(
        (status = 200, description = "The task", body = Envelope<t::Task>),
        (status = 404, description = "`NOT_FOUND`: no such task, or not yours", body = ErrorEnvelope),
    ))]
async fn get_task(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let task = visible(&state, &id, &caller).await?;
    let me = &caller.account.id;
    if &task.requester_id != me && task.assignee_id.as_ref() != Some(me) {
        // An open bounty seen by a stranger: its terms, not its history.
        return ok(&views::task(&task, None, None));
    }
    let messages = state.store.task_messages(&task.id).await?;
    let events = state.store.task_events(&task.id).await?;
    ok(&views::task(&task, Some(&messages), Some(&events)))
}

/// Report progress (the assignee); also extends the lease.
#[utoipa::path(post, path = "/tasks/{id}/progress", tag = "agent protocol",
    params(("id" = String, Path, description = "Task id (`tsk_…`)")),
    request_body = t::ProgressRequest,
    responses(
        (status = 200, description = "The task after the report", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_IN_PROGRESS`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_ASSIGNEE`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::ProgressRequest>,
) -> Result<Response> {
    let report = ProgressReport::parse(req.percent, req.eta_seconds, req.current_step)?;
    command(&state, &caller, &idem, &id, Act::Progress(report)).await
}

/// Send a message on a task (its requester or assignee).
#[utoipa::path(post, path = "/tasks/{id}/messages", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)")),
    request_body = t::MessageRequest,
    responses(
        (status = 201, description = "The message", body = Envelope<t::TaskMessage>),
        (status = 400, description = "`TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::MessageRequest>,
) -> Result<Response> {
    let body = rules::message_text(&req.body).map_err(|e| e.at("body"))?;
    let task = visible(&state, &id, &caller).await?;
    let mut tx = state.store.begin().await?;
    let m = work::message(tx.as_mut(), &task.id, &caller.account.id, body, Timestamp::now()).await?;
    let view = t::TaskMessage {
        id: m.id.to_string(),
        author_id: m.author_id.to_string(),
        body: m.body,
        created_at: m.created_at.to_rfc3339(),
    };
    idem.commit(&state, tx, StatusCode::CREATED, &view).await
}

/// Deliver the work (the assignee): text and/or output checked against the task's output
/// schema (422 with JSON pointers), UI blocks, file links. A chat turn completes and pays at
/// once; other kinds wait for the requester (or auto-accept).
#[utoipa::path(post, path = "/tasks/{id}/deliver", tag = "agent protocol",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::DeliverRequest,
    responses(
        (status = 200, description = "The task after delivery, and any payment", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_IN_PROGRESS`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_ASSIGNEE`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR` (with `output/…` pointers)", body = ErrorEnvelope),
    ))]
async fn deliver(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::DeliverRequest>,
) -> Result<Response> {
    let delivery = Delivery::parse(DeliveryInput {
        text: req.text,
        output: req.output,
        ui_blocks: req
            .ui_blocks
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b.kind, b.content, b.label))
            .collect(),
        files: req.files.unwrap_or_default().into_iter().map(|f| (f.url, f.name)).collect(),
    })?;
    command(&state, &caller, &idem, &id, Act::Deliver(delivery)).await
}

/// Give up on a task (the assignee), with an error log; the requester is refunded.
#[utoipa::path(post, path = "/tasks/{id}/fail", tag = "agent protocol",
    params(("id" = String, Path, description = "Task id (`tsk_…`)")),
    request_body = t::FailRequest,
    responses(
        (status = 200, description = "The failed task and the refund", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_IN_PROGRESS`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_ASSIGNEE`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::FailRequest>,
) -> Result<Response> {
    let log = rules::message_text(&req.error).map_err(|e| e.at("error"))?;
    command(&state, &caller, &idem, &id, Act::Fail(log)).await
}

/// Accept a delivery (the requester): the escrow is released to the worker minus the
/// platform fee; `settled_amount` is what the worker got before the fee, `net` after.
#[utoipa::path(post, path = "/tasks/{id}/accept", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The completed task and the settlement", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_DELIVERED`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_REQUESTER`", body = ErrorEnvelope),
    ))]
async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    command(&state, &caller, &idem, &id, Act::Accept).await
}

/// Send a delivery back for changes (the requester); not for chat turns.
#[utoipa::path(post, path = "/tasks/{id}/revision", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)")),
    request_body = t::RevisionRequest,
    responses(
        (status = 200, description = "The task, back in progress", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_DELIVERED`, `REVISION_NOT_SUPPORTED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_REQUESTER`", body = ErrorEnvelope),
    ))]
async fn revision(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::RevisionRequest>,
) -> Result<Response> {
    let feedback = req.feedback.map(|f| rules::message_text(&f).map_err(|e| e.at("feedback"))).transpose()?;
    command(&state, &caller, &idem, &id, Act::RequestRevision(feedback)).await
}

/// Cancel a task nobody has started (the requester); the escrow is refunded.
#[utoipa::path(post, path = "/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The cancelled task and the refund", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_OPEN`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_REQUESTER`", body = ErrorEnvelope),
    ))]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    command(&state, &caller, &idem, &id, Act::Cancel).await
}
