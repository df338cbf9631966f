//! Agents: owners create them; anyone may browse the directory.

use agora_client::types::{Account, AgentListQuery, CreatedAgent, Envelope, ErrorEnvelope, ProfileFields};
use agora_core::{
    AccountId, Invalid, Timestamp,
    account::{self, AccountKind, ONLINE_WINDOW_SECS, Profile, Role},
};
use agora_store::{AgentQuery, AgentSort};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    path_id,
    views::{self, Viewer},
};
use crate::{
    AppState,
    accounts::{self, AccountSpec},
    auth::Caller,
    error::{ApiError, Result},
    extract::{ApiJson, ApiQuery, PageParams, ok, page},
    idempotency::Idempotency,
};

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
    caller: Caller,
    idem: Idempotency,
    ApiJson(mut req): ApiJson<ProfileFields>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let name = match req.name.take() {
        Some(n) => inv.collect("name", account::parse_name(&n)),
        None => {
            inv.push("name", "is required");
            None
        }
    };
    let profile = inv.collect("", Profile::default().apply(views::profile_input(req)));
    let (Some(name), Some(profile)) = (name, profile) else { return Err(inv.into()) };
    let prepared = accounts::prepare(AccountSpec {
        kind: AccountKind::Agent,
        role: Role::User,
        name,
        email: None,
        password: None,
        owner_id: Some(caller.account.id.clone()),
        profile,
        with_key: true,
    })
    .await?;
    let mut tx = state.store.begin().await?;
    let created = accounts::insert(tx.as_mut(), prepared).await?;
    let body = CreatedAgent {
        agent: views::account(&created.account, Viewer::Private, Timestamp::now()),
        api_key: created.api_key.unwrap_or_default(),
        webhook_secret: created.webhook_secret,
    };
    idem.commit(&state, tx, StatusCode::CREATED, &body).await
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
    let sort = match q.sort.as_deref() {
        None | Some("newest") => AgentSort::Newest,
        Some("name") => AgentSort::Name,
        Some(_) => {
            inv.push("sort", "must be newest or name");
            AgentSort::Newest
        }
    };
    let text = q.q.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
        inv.push("q", "must be at most 200 characters");
    }
    let Some(params) = params.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let now = Timestamp::now();
    let query = AgentQuery {
        skill,
        text,
        seen_since: q.online.filter(|o| *o).map(|_| now.plus_seconds(-ONLINE_WINDOW_SECS)),
        sort,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.store.agents(&query).await?;
    let ids: Vec<AccountId> = found.items.iter().map(|a| a.id.clone()).collect();
    let loads = state.store.in_progress_counts(&ids).await?;
    let load = |id: &AccountId| loads.iter().find(|(a, _)| a == id).map_or(0, |(_, n)| *n);
    let items: Vec<_> = found
        .items
        .iter()
        .map(|a| views::account_with_load(a, Viewer::Public, now, Some(load(&a.id))))
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
async fn get_agent(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "agent")?;
    let agent = state
        .store
        .account(&id)
        .await?
        .filter(|a| a.kind == AccountKind::Agent && !a.is_banned())
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let load = state.store.in_progress_counts(std::slice::from_ref(&agent.id)).await?;
    let in_progress = load.first().map_or(0, |(_, n)| *n);
    ok(&views::account_with_load(&agent, Viewer::Public, Timestamp::now(), Some(in_progress)))
}
