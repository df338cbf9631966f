//! The agent protocol (SPEC §3): heartbeat and the inbox long-poll. The rest of the protocol
//! (progress, messages, deliver, fail) is on the task routes.

use std::time::Duration;

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    Timestamp,
    account::{Account, AccountKind, Presence},
};
use agora_store::{Task, work};
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::views;
use crate::{
    AppState,
    auth::Caller,
    dispatch,
    error::{ApiError, Result, code},
    extract::{ApiJson, ApiQuery, ok},
};

/// How often agents should send a heartbeat.
pub const HEARTBEAT_SECONDS: u64 = 45;
/// The longest an inbox poll waits, and how long it waits when not told.
pub const MAX_WAIT: u64 = 60;
pub const DEFAULT_WAIT: u64 = 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat)).routes(routes!(inbox))
}

fn agent_only(caller: &Caller) -> Result<()> {
    if caller.account.kind == AccountKind::Agent {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, code::NOT_AN_AGENT, "only agent accounts have an inbox"))
    }
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
    caller: Caller,
    ApiJson(req): ApiJson<t::HeartbeatRequest>,
) -> Result<Response> {
    agent_only(&caller)?;
    let offline = match req.status.as_deref() {
        None | Some("online") => false,
        Some("offline") => true,
        Some(_) => return Err(ApiError::invalid("status", "must be online or offline")),
    };
    ok(&t::Heartbeat {
        next_heartbeat_in_seconds: HEARTBEAT_SECONDS,
        status: touch(&state, caller.account, offline).await?.as_str().to_owned(),
    })
}

/// Records that `agent` is alive now, or signs it off, and returns its derived status.
pub async fn touch(state: &AppState, mut agent: Account, offline: bool) -> Result<Presence> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    tx.touch_presence(&agent.id, now, offline).await?;
    let in_progress = tx.in_progress_count(&agent.id).await?;
    tx.commit().await?;
    agent.last_seen_at = Some(now);
    if offline {
        agent.offline_at = Some(now);
    }
    Ok(agent.presence(now, in_progress))
}

/// Claims the next task waiting in `agent`'s inbox, if there is one, with a lease.
pub async fn claim_once(state: &AppState, agent: &Account) -> Result<Option<Task>> {
    // The claim's transaction is the only time a poll holds a database connection.
    let mut tx = state.store.begin().await?;
    let claimed = work::claim_next(
        tx.as_mut(),
        &agent.id,
        agent.profile.max_concurrent_tasks,
        &state.config.engine(),
        Timestamp::now(),
    )
    .await?;
    tx.commit().await?;
    if let Some(task) = &claimed {
        state.metrics.tasks_claimed.inc();
        let waited_ms = Timestamp::now().millis().saturating_sub(task.created_at.millis());
        state.metrics.dispatch_latency.observe(waited_ms as f64 / 1000.0);
    }
    Ok(claimed)
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
    caller: Caller,
    ApiQuery(q): ApiQuery<t::InboxQuery>,
) -> Result<Response> {
    agent_only(&caller)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT));
    let deadline = tokio::time::Instant::now() + wait;
    let agent = &caller.account;
    let waiting = state.dispatcher.wait_for(&agent.id);
    let mut shutdown = state.dispatcher.shutdown_signal();
    loop {
        // Listen before looking, so that work committed between the look and the wait
        // still wakes this poll.
        let woken = waiting.notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if state.dispatcher.is_shut_down() {
            break;
        }
        // Boxed: a waiting poll's future then holds a pointer, not the claim's whole state
        // machine, for as long as it waits (memory per waiting agent; `agora bench idle`).
        if let Some(task) = Box::pin(claim_once(&state, agent)).await? {
            return ok(&t::Inbox { task: Some(views::task(&task, None, None)) });
        }
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep_until(deadline) => break,
            () = dispatch::stopped(&mut shutdown) => break,
        }
    }
    ok(&t::Inbox { task: None })
}
