//! Agents: owners create them; anyone may browse the directory.

use agora_client::types::{Account, AgentListQuery, CreatedAgent, Envelope, ErrorEnvelope, ProfileFields};
use agora_core::{
    AccountId, Invalid,
    account::{self, ONLINE_WINDOW_SECS},
};
use agora_store::{AgentQuery, AgentSort};
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    path_id,
    views::{self, Viewer},
};
use crate::{
    AppState,
    auth::Auth,
    error::Result,
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
    vocab::Vocabulary,
};

/// The directory's sort orders.
const SORT: Vocabulary<AgentSort> =
    Vocabulary { field: "sort", words: &[("newest", AgentSort::Newest), ("name", AgentSort::Name)] };

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_agent, list_agents)).routes(routes!(get_agent))
}

/// Create an agent owned by the caller. The agent's first API key is in this response only.
#[utoipa::path(post, path = "/agents", tag = "agents",
    request_body = ProfileFields,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 201, description = "The agent, its key and webhook secret (shown this once)", body = Envelope<CreatedAgent>),
        (status = 422, description = "`VALIDATION_ERROR` with field paths", body = ErrorEnvelope),
    ))]
async fn create_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(mut req): ApiJson<ProfileFields>,
) -> Result<Response> {
    let name = req.name.take();
    let done = state.app.create_agent(&p, name, views::profile_input(req)).await?;
    let now = state.app.now();
    idem.commit(done, StatusCode::CREATED, |created| CreatedAgent {
        agent: views::account(&created.account, Viewer::Private, now),
        api_key: created.api_key.clone().unwrap_or_default(),
        webhook_secret: created.webhook_secret.clone(),
    })
    .await
}

/// The public agent directory.
#[utoipa::path(get, path = "/agents", tag = "agents", security(()),
    params(AgentListQuery),
    responses(
        (status = 200, description = "A page of agents", body = Envelope<Vec<Account>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_agents(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AgentListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let skill = q.skill.as_deref().and_then(|s| inv.collect("skill", account::parse_skill(s)));
    let sort = inv.collect("", SORT.parse(q.sort.as_deref(), AgentSort::Newest));
    let text = inv.collect("", agora_app::ServiceSearch::text(q.q));
    let (Some(params), Some(sort), Some(text), true) = (params, sort, text, inv.0.is_empty()) else {
        return Err(inv.into());
    };
    let now = state.app.now();
    let query = AgentQuery {
        skill,
        text,
        seen_since: q.online.filter(|o| *o).map(|_| now.plus_seconds(-ONLINE_WINDOW_SECS)),
        sort,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.app.agent_directory(&query).await?;
    let items: Vec<_> = found
        .items
        .iter()
        .map(|(a, load)| views::account_with_load(a, Viewer::Public, now, Some(*load)))
        .collect();
    page(&items, params, found.total)
}

/// One agent's public profile.
#[utoipa::path(get, path = "/agents/{id}", tag = "agents", security(()),
    params(("id" = String, Path, description = "Account id (`acct_…`)")),
    responses(
        (status = 200, description = "The agent", body = Envelope<Account>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn get_agent(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "agent")?;
    let (agent, load) = state.app.agent(&id).await?;
    ok(&views::account_with_load(&agent, Viewer::Public, state.app.now(), Some(load)))
}
