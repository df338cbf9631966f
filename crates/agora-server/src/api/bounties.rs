//! Bounties (AgentFlow "requests"): posted openly with the reward held at once; the first
//! account to claim one gets it (409 for the rest, 403 for the poster); the claim starts the
//! delivery clock; late delivery costs the worker the penalty. The poster may take back an
//! overdue claim, which reopens the bounty, or cancel an unclaimed one for a refund.

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    Invalid, Timestamp,
    task::{TaskKind, TaskStatus},
    work::{Bounty, BountyInput},
};
use agora_store::{
    Task, TaskQuery, Tx,
    work::{self, Act},
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{tasks, views};
use crate::{
    AppState,
    auth::Caller,
    error::{ApiError, Result},
    extract::{ApiJson, ApiQuery, PageParams, ok, page},
    idempotency::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_bounty, list_bounties))
        .routes(routes!(get_bounty))
        .routes(routes!(claim_bounty))
        .routes(routes!(cancel_bounty))
}

/// Post a bounty; the reward is held from the poster at once (402 if it cannot be).
#[utoipa::path(post, path = "/bounties", tag = "bounties",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::BountyRequest,
    responses(
        (status = 201, description = "The bounty (a task of kind `bounty`)", body = Envelope<t::Task>),
        (status = 402, description = "`INSUFFICIENT_FUNDS`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn post_bounty(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::BountyRequest>,
) -> Result<Response> {
    let (tx, task) = post(&state, &caller, req).await?;
    idem.commit(&state, tx, StatusCode::CREATED, &views::task(&task, None, None)).await
}

/// Posts a bounty for the caller with its reward held, in a transaction the caller commits.
pub async fn post(state: &AppState, caller: &Caller, req: t::BountyRequest) -> Result<(Box<dyn Tx>, Task)> {
    let mut inv = Invalid::default();
    let currency = inv.collect("currency", state.currencies.parse(req.currency.as_deref().unwrap_or("PTS")));
    let bounty = inv.collect(
        "",
        Bounty::parse(BountyInput {
            title: req.title,
            short_description: req.short_description,
            description: req.description,
            reward: req.reward_amount,
            penalty: req.penalty_amount,
            max_delivery_hours: req.max_delivery_hours,
            input_schema: req.input_schema,
            output_schema: req.output_schema,
            input_data: req.input_data,
        }),
    );
    let (Some(currency), Some(bounty)) = (currency, bounty) else { return Err(inv.into()) };
    let now = Timestamp::now();
    let mut task = Task::new(TaskKind::Bounty, &caller.account.id, bounty.title, now);
    task.description = bounty.description;
    task.input = bounty.input;
    task.details = serde_json::to_value(&bounty.terms).map_err(ApiError::internal)?;
    task.price = Some(bounty.reward);
    task.currency = Some(currency);
    let mut tx = state.store.begin().await?;
    let task = work::create(tx.as_mut(), task, now).await?;
    Ok((tx, task))
}

/// Bounties: `open` ones (the default) from everyone; in any other status, only those the
/// caller posted or claimed.
#[utoipa::path(get, path = "/bounties", tag = "bounties", params(t::BountyListQuery),
    responses(
        (status = 200, description = "A page of bounties", body = Envelope<Vec<t::Task>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_bounties(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<t::BountyListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let statuses = match q.status.as_deref() {
        None => vec![TaskStatus::Open],
        Some("all") => Vec::new(),
        raw => tasks::statuses(raw, &mut inv),
    };
    let Some(params) = params.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let found = state.store.tasks(&list_query(&caller, statuses, params)).await?;
    let items: Vec<_> = found.items.iter().map(|task| views::task(task, None, None)).collect();
    page(&items, params, found.total)
}

/// Which bounties a listing shows: open ones from everyone; in any other status (or all
/// statuses, when `statuses` is empty), only those the caller posted or claimed.
pub fn list_query(caller: &Caller, statuses: Vec<TaskStatus>, params: PageParams) -> TaskQuery {
    let public = statuses == [TaskStatus::Open];
    let me = caller.account.id.clone();
    TaskQuery {
        requester: (!public).then(|| me.clone()),
        assignee: (!public).then_some(me),
        either: !public,
        statuses,
        kinds: vec![TaskKind::Bounty],
        assigned_only: false,
        offset: params.offset(),
        limit: params.limit,
    }
}

async fn bounty(state: &AppState, raw: &str, caller: &Caller) -> Result<agora_store::Task> {
    Some(tasks::visible(state, raw, caller).await?)
        .filter(|task| task.kind == TaskKind::Bounty)
        .ok_or_else(|| ApiError::not_found("bounty"))
}

/// One bounty: open ones for everyone, others for their poster and claimer.
#[utoipa::path(get, path = "/bounties/{id}", tag = "bounties",
    params(("id" = String, Path, description = "Task id (`tsk_…`)")),
    responses(
        (status = 200, description = "The bounty", body = Envelope<t::Task>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn get_bounty(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let task = bounty(&state, &id, &caller).await?;
    ok(&views::task(&task, None, None))
}

/// Claim an open bounty: the first caller gets it and its delivery clock starts; everyone
/// after gets 409 `TASK_ALREADY_CLAIMED`; the poster gets 403 `CANNOT_CLAIM_OWN_TASK`.
#[utoipa::path(post, path = "/bounties/{id}/claim", tag = "bounties",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The claimed bounty, with its `deadline_at`", body = Envelope<t::Task>),
        (status = 403, description = "`CANNOT_CLAIM_OWN_TASK`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`TASK_ALREADY_CLAIMED`", body = ErrorEnvelope),
    ))]
async fn claim_bounty(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    let (tx, done) = claim(&state, &caller, &id).await?;
    idem.commit(&state, tx, StatusCode::OK, &views::task(&done.task, None, None)).await
}

/// Claims the bounty `raw` names for the caller, in a transaction the caller commits.
pub async fn claim(state: &AppState, caller: &Caller, raw: &str) -> Result<(Box<dyn Tx>, work::Done)> {
    // A claimed bounty is no longer visible to outsiders, yet the losers of a race must get
    // 409, not 404: one that is being worked on is answered by the state machine; a finished
    // one is 404 to anyone but its parties, so probing ids learns nothing.
    let id = super::path_id(raw, agora_core::TaskId::parse, "bounty")?;
    let task = state
        .store
        .task(&id)
        .await?
        .filter(|task| task.kind == TaskKind::Bounty)
        .filter(|task| {
            tasks::visible_to(task, &caller.account.id)
                || matches!(task.status, TaskStatus::InProgress | TaskStatus::Delivered)
        })
        .ok_or_else(|| ApiError::not_found("bounty"))?;
    let mut tx = state.store.begin().await?;
    let done = work::act(
        tx.as_mut(),
        &task.id,
        work::Who::Account(&caller.account.id),
        Act::Claim,
        &state.config.engine(),
        Timestamp::now(),
    )
    .await?;
    Ok((tx, done))
}

/// The poster cancels an unclaimed bounty (refunded), or takes back an overdue claim (the
/// bounty reopens; 400 `CLAIM_NOT_OVERDUE` before its deadline).
#[utoipa::path(post, path = "/bounties/{id}/cancel", tag = "bounties",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The bounty afterwards, and any refund", body = Envelope<t::TaskResult>),
        (status = 400, description = "`CLAIM_NOT_OVERDUE`, `TASK_NOT_OPEN`, `TASK_FINISHED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn cancel_bounty(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    let task = bounty(&state, &id, &caller).await?;
    if task.requester_id != caller.account.id {
        return Err(ApiError::not_found("bounty"));
    }
    let act = if task.status == TaskStatus::InProgress { Act::ReleaseClaim } else { Act::Cancel };
    tasks::command(&state, &caller, &idem, &id, act).await
}
