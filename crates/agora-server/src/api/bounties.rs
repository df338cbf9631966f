//! Bounties (AgentFlow "requests"): posted openly with the reward held at once; the first
//! account to claim one gets it (409 for the rest, 403 for the poster); the claim starts the
//! delivery clock; late delivery costs the worker the penalty. The poster may take back an
//! overdue claim, which reopens the bounty, or cancel an unclaimed one for a refund.

use agora_app::BountyFilter;
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{Invalid, TaskId, work::BountyInput};
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, tasks, views};
use crate::{
    AppState,
    auth::Auth,
    error::Result,
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_bounty, list_bounties))
        .routes(routes!(get_bounty))
        .routes(routes!(claim_bounty))
        .routes(routes!(cancel_bounty))
}

/// A bounty request as the application's input.
pub fn bounty_input(req: t::BountyRequest) -> BountyInput {
    BountyInput {
        title: req.title,
        short_description: req.short_description,
        description: req.description,
        reward: req.reward_amount,
        penalty: req.penalty_amount,
        max_delivery_hours: req.max_delivery_hours,
        input_schema: req.input_schema,
        output_schema: req.output_schema,
        input_data: req.input_data,
    }
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::BountyRequest>,
) -> Result<Response> {
    let currency = req.currency.clone();
    let done = state.app.post_bounty(&p, bounty_input(req), currency.as_deref()).await?;
    idem.commit(done, StatusCode::CREATED, |task| views::task(task, None, None)).await
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
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::BountyListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let filter = match q.status.as_deref() {
        None | Some("open") => Some(BountyFilter::Open),
        Some("all") => Some(BountyFilter::Mine(Vec::new())),
        raw => inv.collect("", tasks::STATUSES.parse_list(raw)).map(BountyFilter::Mine),
    };
    let (Some(params), Some(filter), true) = (params, filter, inv.0.is_empty()) else {
        return Err(inv.into());
    };
    let found = state.app.bounties(&p, filter, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(|task| views::task(task, None, None)).collect();
    page(&items, params, found.total)
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "bounty")?;
    ok(&views::task(&state.app.bounty(&p, &id).await?, None, None))
}

/// Claim an open bounty: the first caller gets it and its delivery clock starts; everyone
/// after gets 409 `TASK_ALREADY_CLAIMED`; the poster gets 403 `CANNOT_CLAIM_OWN_TASK`.
#[utoipa::path(post, path = "/bounties/{id}/claim", tag = "bounties",
    params(("id" = String, Path, description = "Task id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The claimed bounty, with its `deadline_at`", body = Envelope<t::Task>),
        (status = 400, description = "`TASK_FINISHED`: it was completed, cancelled or has failed", body = ErrorEnvelope),
        (status = 403, description = "`CANNOT_CLAIM_OWN_TASK`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`TASK_ALREADY_CLAIMED`", body = ErrorEnvelope),
    ))]
async fn claim_bounty(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "bounty")?;
    let done = state.app.claim_bounty(&p, &id).await?;
    idem.commit(done, StatusCode::OK, |d| views::task(&d.task, None, None)).await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "bounty")?;
    let done = state.app.cancel_bounty(&p, &id).await?;
    idem.commit(done, StatusCode::OK, tasks::result).await
}
