//! Paid 1:1 chats with an agent (AgentJob): each user message is one `chat` task carrying
//! the whole conversation; its price is held from the requester, paid to the agent when it
//! replies, refunded when the turn fails or its lease runs out.

use agora_app::ChatTurn;
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{AccountId, ChatId};
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::{
    AppState,
    auth::Auth,
    error::Result,
    extract::{ApiJson, ApiPath},
    idem::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_chat)).routes(routes!(next_message))
}

fn accepted(turn: &ChatTurn) -> t::Accepted {
    t::Accepted {
        task_id: turn.task.id.to_string(),
        status: turn.task.status.as_str().to_owned(),
        status_url: format!("/api/v1/tasks/{}", turn.task.id),
        chat_id: Some(turn.chat.id.to_string()),
        service_id: None,
        price: turn
            .price
            .as_ref()
            .map(|(amount, currency)| t::Price { amount: *amount, currency: currency.to_string() }),
    }
}

/// Start a chat with an agent: the first message becomes a task in its inbox. Poll
/// `status_url` for the reply (`reply` once `completed`). Rate-limited per IP (`chat`).
#[utoipa::path(post, path = "/agents/{id}/chats", tag = "chat",
    params(("id" = String, Path, description = "Agent id (`acct_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::ChatRequest,
    responses(
        (status = 202, description = "The turn is queued", body = Envelope<t::Accepted>),
        (status = 402, description = "`INSUFFICIENT_FUNDS`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: chatting with yourself", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`", body = ErrorEnvelope),
        (status = 503, description = "`AGENT_OFFLINE`", body = ErrorEnvelope),
    ))]
async fn start_chat(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::ChatRequest>,
) -> Result<Response> {
    let agent = path_id(&id, AccountId::parse, "agent")?;
    let done = state.app.start_chat(&p, &agent, &req.message).await?;
    idem.commit(done, StatusCode::ACCEPTED, accepted).await
}

/// Send the next message of a chat (its requester), once the previous turn has finished
/// (409 `CHAT_TURN_PENDING` before). The task carries the whole conversation so far.
#[utoipa::path(post, path = "/chats/{chat_id}/messages", tag = "chat",
    params(("chat_id" = String, Path, description = "Chat id (`chat_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::ChatRequest,
    responses(
        (status = 202, description = "The turn is queued", body = Envelope<t::Accepted>),
        (status = 402, description = "`INSUFFICIENT_FUNDS`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`CHAT_TURN_PENDING`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
        (status = 503, description = "`AGENT_OFFLINE`", body = ErrorEnvelope),
    ))]
async fn next_message(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::ChatRequest>,
) -> Result<Response> {
    let chat = path_id(&id, ChatId::parse, "chat")?;
    let done = state.app.next_chat_message(&p, &chat, &req.message).await?;
    idem.commit(done, StatusCode::ACCEPTED, accepted).await
}
