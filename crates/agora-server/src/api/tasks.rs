//! Tasks of every kind: reading them (requester and assignee only; anyone else gets 404),
//! and the commands both sides issue. Every command goes through `agora_store::work`, which
//! asks the state machine; these handlers translate and authorise.

use agora_app::{TaskCommand, TaskFilter, TaskRole, engine::Done};
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    Invalid, TaskId,
    task::{TaskKind, TaskStatus},
    work::{self as rules, Delivery, DeliveryInput, ProgressReport},
};
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, views};
use crate::{
    AppState,
    auth::Auth,
    error::Result,
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
    vocab::Vocabulary,
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
        .routes(routes!(reject))
}

/// The native status words: each status by its own name.
pub const STATUSES: Vocabulary<&[TaskStatus]> = Vocabulary {
    field: "status",
    words: &[
        ("open", &[TaskStatus::Open]),
        ("queued", &[TaskStatus::Queued]),
        ("in_progress", &[TaskStatus::InProgress]),
        ("delivered", &[TaskStatus::Delivered]),
        ("completed", &[TaskStatus::Completed]),
        ("failed", &[TaskStatus::Failed]),
        ("cancelled", &[TaskStatus::Cancelled]),
        ("expired", &[TaskStatus::Expired]),
    ],
};

const KINDS: Vocabulary<TaskKind> = Vocabulary {
    field: "kind",
    words: &[
        ("chat", TaskKind::Chat),
        ("service", TaskKind::Service),
        ("bounty", TaskKind::Bounty),
        ("job", TaskKind::Job),
        ("brief", TaskKind::Brief),
        ("step", TaskKind::Step),
    ],
};

const ROLES: Vocabulary<TaskRole> =
    Vocabulary { field: "role", words: &[("requester", TaskRole::Requester), ("worker", TaskRole::Worker)] };

/// Runs a command on the task `raw` names (404 when the caller may not see it), commits it
/// (recording the response under the request's `Idempotency-Key`), and answers with the
/// task and the money moved.
async fn command(
    state: &AppState,
    p: &agora_app::Principal,
    idem: &Idempotency,
    raw: &str,
    c: TaskCommand,
) -> Result<Response> {
    let id = path_id(raw, TaskId::parse, "task")?;
    let done = state.app.task_command(p, &id, c).await?;
    idem.commit(done, StatusCode::OK, result).await
}

pub fn result(done: &Done) -> t::TaskResult {
    t::TaskResult {
        task: views::task(&done.task, None, None),
        settled_amount: done.moved.released,
        fee: done.moved.fee,
        net: done.moved.net,
        refunded: done.moved.refunded,
    }
}

/// The caller's tasks: as requester, as worker (assignee), or both (default), newest first.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(t::TaskListQuery),
    responses(
        (status = 200, description = "A page of tasks", body = Envelope<Vec<t::Task>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_tasks(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::TaskListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let role = inv.collect("", ROLES.parse_opt(q.role.as_deref()));
    let statuses = inv.collect("", STATUSES.parse_list(q.status.as_deref()));
    let kind = inv.collect("", KINDS.parse_opt(q.kind.as_deref()));
    let (Some(params), Some(role), Some(statuses), Some(kind), true) =
        (params, role, statuses, kind, inv.0.is_empty())
    else {
        return Err(inv.into());
    };
    let filter = TaskFilter {
        role,
        statuses,
        kinds: kind.into_iter().collect(),
        assigned_only: false,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.app.tasks(&p, &filter).await?;
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
async fn get_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "task")?;
    let d = state.app.task(&p, &id).await?;
    ok(&views::task(&d.task, d.messages.as_deref(), d.timeline.as_deref()))
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::ProgressRequest>,
) -> Result<Response> {
    let report = ProgressReport::parse(req.percent, req.eta_seconds, req.current_step)?;
    command(&state, &p, &idem, &id, TaskCommand::Progress(report)).await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::MessageRequest>,
) -> Result<Response> {
    let body = rules::message_text(&req.body).map_err(|e| e.at("body"))?;
    let id = path_id(&id, TaskId::parse, "task")?;
    let done = state.app.post_message(&p, &id, &body).await?;
    idem.commit(done, StatusCode::CREATED, |m| t::TaskMessage {
        id: m.id.to_string(),
        author_id: m.author_id.to_string(),
        body: m.body.clone(),
        created_at: m.created_at.to_rfc3339(),
    })
    .await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
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
    command(&state, &p, &idem, &id, TaskCommand::Deliver(delivery)).await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::FailRequest>,
) -> Result<Response> {
    let log = rules::message_text(&req.error).map_err(|e| e.at("error"))?;
    command(&state, &p, &idem, &id, TaskCommand::Fail(log)).await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    command(&state, &p, &idem, &id, TaskCommand::Accept).await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::RevisionRequest>,
) -> Result<Response> {
    let feedback = req.feedback.map(|f| rules::message_text(&f).map_err(|e| e.at("feedback"))).transpose()?;
    command(&state, &p, &idem, &id, TaskCommand::Revision(feedback)).await
}

/// Cancel a task nobody has started (the requester), or give up on a revision whose
/// deadline (`revision_due_at`, `AGORA_REVISION_HOURS` after the request) has passed; the
/// escrow is refunded, and a worker that let its revision run out has a failure counted.
#[utoipa::path(post, path = "/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The cancelled task and the refund", body = Envelope<t::TaskResult>),
        (status = 400, description = "`TASK_NOT_OPEN`, `REVISION_NOT_OVERDUE`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_REQUESTER`", body = ErrorEnvelope),
    ))]
async fn cancel(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    command(&state, &p, &idem, &id, TaskCommand::Cancel).await
}

/// Refuse delivered work whose worker has been banned (the requester): the task fails and
/// the escrow is refunded. Work of a banned worker is never accepted automatically.
#[utoipa::path(post, path = "/tasks/{id}/reject", tag = "tasks",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The failed task and the refund", body = Envelope<t::TaskResult>),
        (status = 400, description = "`ASSIGNEE_ACTIVE`: its worker is not banned; `TASK_NOT_DELIVERED`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`, `NOT_REQUESTER`", body = ErrorEnvelope),
    ))]
async fn reject(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    command(&state, &p, &idem, &id, TaskCommand::Reject).await
}
