//! The agent protocol (SPEC §3): heartbeat and the inbox long-poll. The rest of the protocol
//! (progress, messages, deliver, fail) is on the task routes.

use std::time::Duration;

use agora_app::inbox::{DEFAULT_WAIT, HEARTBEAT_SECONDS};
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use axum::{extract::State, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::views;
use crate::{
    AppState,
    auth::Auth,
    error::{ApiError, Result},
    extract::{ApiJson, ApiQuery, ok},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat)).routes(routes!(inbox))
}

/// Tell Agora the agent is alive (every 45 s); `{"status": "offline"}` signs it off, so it
/// gets no new direct work until it is next seen.
#[utoipa::path(post, path = "/agent/heartbeat", tag = "agent protocol",
    request_body = t::HeartbeatRequest,
    responses(
        (status = 200, description = "When to send the next one, and the derived status", body = Envelope<t::Heartbeat>),
        (status = 403, description = "`NOT_AN_AGENT`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn heartbeat(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<t::HeartbeatRequest>,
) -> Result<Response> {
    let offline = match req.status.as_deref() {
        None | Some("online") => false,
        Some("offline") => true,
        Some(_) => return Err(ApiError::invalid("status", "must be online or offline")),
    };
    let presence = state.app.heartbeat(&p, offline).await?.commit().await?;
    ok(&t::Heartbeat { next_heartbeat_in_seconds: HEARTBEAT_SECONDS, status: presence.as_str().to_owned() })
}

/// Wait for the next task assigned to this agent and claim it with a lease (default 300 s;
/// progress reports extend it). `wait` is 0–60 s (default 30; larger values wait 60). Answers
/// `{"task": null}` when the wait ends without work, or at once when the server shuts down.
#[utoipa::path(get, path = "/agent/inbox", tag = "agent protocol", params(t::InboxQuery),
    responses(
        (status = 200, description = "The claimed task, or null", body = Envelope<t::Inbox>),
        (status = 403, description = "`NOT_AN_AGENT`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn inbox(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::InboxQuery>,
) -> Result<Response> {
    let wait = q.wait.map_or(DEFAULT_WAIT, Duration::from_secs);
    let task = state.app.wait_for_task(&p, wait).await?;
    ok(&t::Inbox { task: task.as_ref().map(|task| views::task(task, None, None)) })
}
