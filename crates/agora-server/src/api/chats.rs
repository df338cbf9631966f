//! Paid 1:1 chats with an agent (AgentJob): each user message is one `chat` task carrying
//! the whole conversation; its price is held from the requester, paid to the agent when it
//! replies, refunded when the turn fails or its lease runs out.

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    AccountId, ChatId, Timestamp,
    account::{Account, AccountKind},
    task::TaskKind,
    work::{chat_price, is_first_turn, message_text},
};
use agora_store::{Chat, ChatMessage, Task, work};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::{
    AppState,
    auth::{Caller, ClientIp},
    error::{ApiError, Result, code},
    extract::ApiJson,
    idempotency::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_chat)).routes(routes!(next_message))
}

/// The agent to chat with: an existing, unbanned agent account, online (503 otherwise).
pub async fn online_agent(
    state: &AppState,
    id: &AccountId,
    now: Timestamp,
    offline_code: &'static str,
) -> Result<Account> {
    let agent = state
        .store
        .account(id)
        .await?
        .filter(|a| a.kind == AccountKind::Agent && !a.is_banned())
        .ok_or_else(|| ApiError::not_found("agent"))?;
    if !agent.is_online(now) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            offline_code,
            "the agent is offline and takes no new work; try again when it is online",
        ));
    }
    Ok(agent)
}

/// A task assigned to `agent` at once; it will pick it up from its inbox.
pub fn direct_task(kind: TaskKind, requester: &AccountId, agent: &AccountId, title: String) -> Task {
    let mut task = Task::new(kind, requester, title, Timestamp::now());
    task.assignee_id = Some(agent.clone());
    task
}

/// The message of a chat request, after the per-IP chat limit.
fn turn_message(state: &AppState, ip: &str, req: &t::ChatRequest) -> Result<String> {
    state.limits.check("chat", &format!("ip:{ip}"))?;
    Ok(message_text(&req.message).map_err(|e| e.at("message"))?)
}

/// Queues one turn of `chat` (already holding the new user message) for its agent.
async fn queue_turn(
    state: &AppState,
    tx: &mut dyn agora_store::Tx,
    chat: &mut Chat,
    agent: &Account,
    now: Timestamp,
) -> Result<(Task, Option<t::Price>)> {
    let first = is_first_turn(chat.messages.iter().map(|m| m.role.as_str()));
    let mut task =
        direct_task(TaskKind::Chat, &chat.requester_id, &agent.id, format!("Chat with {}", agent.name));
    task.description = chat.messages.last().map(|m| m.content.clone()).unwrap_or_default();
    task.chat_id = Some(chat.id.clone());
    task.input = json!({ "chat_id": chat.id, "messages": chat.messages, "is_first_chat": first });
    let mut price = None;
    if let Some((currency, amount)) = chat_price(&agent.profile.pricing, first) {
        let currency = state.currencies.parse(&currency).map_err(|_| {
            ApiError::invalid("agent.pricing.currency", "the agent prices in an unknown currency")
        })?;
        price = Some(t::Price { amount, currency: currency.to_string() });
        task.price = Some(amount);
        task.currency = Some(currency);
    }
    let task = work::create(tx, task, now).await?;
    chat.turns += 1;
    chat.open_task_id = Some(task.id.clone());
    chat.updated_at = now;
    Ok((task, price))
}

fn accepted(task: &Task, chat: &Chat, price: Option<t::Price>) -> t::Accepted {
    t::Accepted {
        task_id: task.id.to_string(),
        status: task.status.as_str().to_owned(),
        status_url: format!("/api/v1/tasks/{}", task.id),
        chat_id: Some(chat.id.to_string()),
        service_id: None,
        price,
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
    caller: Caller,
    ClientIp(ip): ClientIp,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::ChatRequest>,
) -> Result<Response> {
    let message = turn_message(&state, &ip, &req)?;
    let agent_id = path_id(&id, AccountId::parse, "agent")?;
    let now = Timestamp::now();
    let agent = online_agent(&state, &agent_id, now, code::AGENT_OFFLINE).await?;
    if agent.is_managed_by(&caller.account.id) {
        return Err(ApiError::forbidden("you cannot chat with your own agent"));
    }
    let mut chat = Chat {
        id: ChatId::generate(),
        requester_id: caller.account.id.clone(),
        agent_id: agent.id.clone(),
        messages: vec![ChatMessage { role: "user".into(), content: message }],
        open_task_id: None,
        turns: 0,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    tx.insert_chat(&chat).await?;
    let (task, price) = queue_turn(&state, tx.as_mut(), &mut chat, &agent, now).await?;
    tx.update_chat(&chat).await?;
    idem.commit(&state, tx, StatusCode::ACCEPTED, &accepted(&task, &chat, price)).await
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
    caller: Caller,
    ClientIp(ip): ClientIp,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::ChatRequest>,
) -> Result<Response> {
    let message = turn_message(&state, &ip, &req)?;
    let chat_id = path_id(&id, ChatId::parse, "chat")?;
    let chat = state
        .store
        .chat(&chat_id)
        .await?
        .filter(|c| c.requester_id == caller.account.id)
        .ok_or_else(|| ApiError::not_found("chat"))?;
    let now = Timestamp::now();
    let agent = online_agent(&state, &chat.agent_id, now, code::AGENT_OFFLINE).await?;
    let mut tx = state.store.begin().await?;
    let mut chat = tx.chat_for_update(&chat_id).await?.ok_or_else(|| ApiError::not_found("chat"))?;
    if let Some(open) = &chat.open_task_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CHAT_TURN_PENDING,
            "the previous message is still waiting for the agent's reply",
        )
        .with_details(json!({ "task_id": open })));
    }
    chat.messages.push(ChatMessage { role: "user".into(), content: message });
    let (task, price) = queue_turn(&state, tx.as_mut(), &mut chat, &agent, now).await?;
    tx.update_chat(&chat).await?;
    idem.commit(&state, tx, StatusCode::ACCEPTED, &accepted(&task, &chat, price)).await
}
