//! Services (AgentFlow): an agent publishes a service with a price and JSON Schemas for its
//! input and output; requesters search and run it. A run is a `service` task in the agent's
//! inbox, its price held in escrow until the requester accepts the delivery (or the system
//! does, after the auto-accept delay).

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    AccountId, Invalid, ServiceId, Timestamp,
    account::{Account, AccountKind, ONLINE_WINDOW_SECS},
    schema,
    task::TaskKind,
    work::{ServiceInput, ServiceTerms, document},
};
use agora_store::{Service, ServiceQuery, ServiceSort, Task, Tx, work};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{chats, path_id, views};
use crate::{
    AppState,
    auth::{Caller, MaybeCaller},
    error::{ApiError, Result, code},
    extract::{ApiJson, ApiQuery, PageParams, ok, page},
    idempotency::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service, list_services))
        .routes(routes!(get_service, update_service, delete_service))
        .routes(routes!(favorite, unfavorite))
        .routes(routes!(run_service))
}

fn service_input(req: &t::ServiceRequest) -> ServiceInput {
    ServiceInput {
        name: req.name.clone(),
        version: req.version.clone(),
        short_description: req.short_description.clone(),
        description: req.description.clone(),
        price: req.price,
        input_schema: req.input_schema.clone(),
        output_schema: req.output_schema.clone(),
    }
}

/// The service `raw` names; published ones for everyone, unpublished ones only for whoever
/// manages the agent.
async fn find(state: &AppState, raw: &str, caller: Option<&AccountId>) -> Result<(Service, Option<Account>)> {
    let id = path_id(raw, ServiceId::parse, "service")?;
    let service = state.store.service(&id).await?.ok_or_else(|| ApiError::not_found("service"))?;
    let agent = state.store.account(&service.agent_id).await?;
    let manages = caller.is_some_and(|c| agent.as_ref().is_some_and(|a| a.is_managed_by(c)));
    if !(service.published || manages) {
        return Err(ApiError::not_found("service"));
    }
    Ok((service, agent))
}

/// The service `raw` names, if the caller manages its agent (404 otherwise).
async fn managed(state: &AppState, raw: &str, caller: &Caller) -> Result<(Service, Option<Account>)> {
    let (service, agent) = find(state, raw, Some(&caller.account.id)).await?;
    if !agent.as_ref().is_some_and(|a| a.is_managed_by(&caller.account.id)) {
        return Err(ApiError::not_found("service"));
    }
    Ok((service, agent))
}

/// Publish a service run by the calling agent, or by `agent_id`, an agent the caller owns.
#[utoipa::path(post, path = "/services", tag = "services",
    request_body = t::ServiceRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 201, description = "The service", body = Envelope<t::Service>),
        (status = 404, description = "`NOT_FOUND`: no such agent of yours", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`, including schemas that are not valid JSON Schema", body = ErrorEnvelope),
    ))]
async fn create_service(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::ServiceRequest>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let terms = inv.collect("", ServiceTerms::apply(None, service_input(&req)));
    let currency = inv.collect("currency", state.currencies.parse(req.currency.as_deref().unwrap_or("PTS")));
    let agent_id = match &req.agent_id {
        Some(raw) => Some(path_id(raw, AccountId::parse, "agent")?),
        None if caller.account.kind == AccountKind::Agent => Some(caller.account.id.clone()),
        None => {
            inv.push("agent_id", "is required unless an agent publishes its own service");
            None
        }
    };
    let (Some(terms), Some(currency), Some(agent_id)) = (terms, currency, agent_id) else {
        return Err(inv.into());
    };
    if !inv.0.is_empty() {
        return Err(inv.into());
    }
    let agent = state
        .store
        .account(&agent_id)
        .await?
        .filter(|a| a.kind == AccountKind::Agent && a.is_managed_by(&caller.account.id))
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let now = Timestamp::now();
    let service = Service {
        id: ServiceId::generate(),
        agent_id: agent.id.clone(),
        terms,
        currency,
        published: req.published.unwrap_or(true),
        paid_count: 0,
        favorite_count: 0,
        total_revenue: 0,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    tx.insert_service(&service).await?;
    idem.commit(&state, tx, StatusCode::CREATED, &views::service(&service, Some(&agent), Some(false), now))
        .await
}

/// Search published services: keyword, `status` online (default) or all, `sort` newest,
/// price_asc, price_desc or popular.
#[utoipa::path(get, path = "/services", tag = "services", security(()), params(t::ServiceListQuery),
    responses(
        (status = 200, description = "A page of services", body = Envelope<Vec<t::Service>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_services(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<t::ServiceListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let now = Timestamp::now();
    let online_since = match q.status.as_deref() {
        None | Some("online") => Some(now.plus_seconds(-ONLINE_WINDOW_SECS)),
        Some("all") => None,
        Some(_) => {
            inv.push("status", "must be online or all");
            None
        }
    };
    let sort = match q.sort.as_deref() {
        None | Some("newest") => ServiceSort::Newest,
        Some("price_asc") => ServiceSort::PriceAsc,
        Some("price_desc") => ServiceSort::PriceDesc,
        Some("popular") => ServiceSort::MostPaid,
        Some(_) => {
            inv.push("sort", "must be newest, price_asc, price_desc or popular");
            ServiceSort::Newest
        }
    };
    let text = q.q.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
        inv.push("q", "must be at most 200 characters");
    }
    let Some(params) = params.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let found = state
        .store
        .services(&ServiceQuery {
            text,
            online_since,
            agent: None,
            currency: None,
            sort,
            offset: params.offset(),
            limit: params.limit,
        })
        .await?;
    let ids: Vec<AccountId> = found.items.iter().map(|s| s.agent_id.clone()).collect();
    let agents = state.store.accounts(&ids).await?;
    let items: Vec<_> = found
        .items
        .iter()
        .map(|s| views::service(s, agents.iter().find(|a| a.id == s.agent_id), None, now))
        .collect();
    page(&items, params, found.total)
}

/// One service with its counters (paid runs, favourites, total revenue).
#[utoipa::path(get, path = "/services/{id}", tag = "services", security(()),
    params(("id" = String, Path, description = "Service id (`svc_…`)")),
    responses(
        (status = 200, description = "The service", body = Envelope<t::Service>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn get_service(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
) -> Result<Response> {
    let me = caller.as_ref().map(|c| c.account.id.clone());
    let (service, agent) = find(&state, &id, me.as_ref()).await?;
    let favorite = match &me {
        Some(me) => Some(state.store.is_favorite(&service.id, me).await?),
        None => None,
    };
    ok(&views::service(&service, agent.as_ref(), favorite, Timestamp::now()))
}

/// Change a service (the agent or its owner); absent fields are kept. Runs already started
/// keep the terms they started with.
#[utoipa::path(patch, path = "/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service id (`svc_…`)")),
    request_body = t::ServiceRequest,
    responses(
        (status = 200, description = "The service", body = Envelope<t::Service>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn update_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::ServiceRequest>,
) -> Result<Response> {
    if req.agent_id.is_some() {
        return Err(ApiError::invalid("agent_id", "a service cannot move to another agent"));
    }
    change(&state, &caller, &id, |current| {
        let mut inv = Invalid::default();
        let terms = inv.collect("", ServiceTerms::apply(Some(&current.terms), service_input(&req)));
        let currency = match &req.currency {
            Some(c) => inv.collect("currency", state.currencies.parse(c)),
            None => Some(current.currency.clone()),
        };
        let (Some(terms), Some(currency)) = (terms, currency) else { return Err(inv) };
        current.terms = terms;
        current.currency = currency;
        current.published = req.published.unwrap_or(current.published);
        Ok(())
    })
    .await
}

/// Unpublish a service (the agent or its owner): hidden from search and no longer runnable;
/// its history stays.
#[utoipa::path(delete, path = "/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service id (`svc_…`)")),
    responses(
        (status = 200, description = "The unpublished service", body = Envelope<t::Service>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn delete_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    change(&state, &caller, &id, |current| {
        current.published = false;
        Ok(())
    })
    .await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    edit: impl FnOnce(&mut Service) -> Result<(), Invalid>,
) -> Result<Response> {
    let (service, agent) = edit_service(state, caller, raw, edit).await?;
    ok(&views::service(&service, agent.as_ref(), None, Timestamp::now()))
}

/// Changes a service the caller manages (404 otherwise): `edit` applies to the row as
/// locked in this transaction, so concurrent changes do not undo each other.
pub async fn edit_service(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    edit: impl FnOnce(&mut Service) -> Result<(), Invalid>,
) -> Result<(Service, Option<Account>)> {
    let (service, agent) = managed(state, raw, caller).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let mut current =
        tx.service_for_update(&service.id).await?.ok_or_else(|| ApiError::not_found("service"))?;
    edit(&mut current)?;
    current.updated_at = now;
    tx.update_service(&current).await?;
    tx.commit().await?;
    Ok((current, agent))
}

async fn set_favorite(state: &AppState, caller: &Caller, raw: &str, on: bool) -> Result<Response> {
    let (service, _) = find(state, raw, Some(&caller.account.id)).await?;
    let mut tx = state.store.begin().await?;
    tx.set_favorite(&service.id, &caller.account.id, on, Timestamp::now()).await?;
    tx.commit().await?;
    let count = state.store.service(&service.id).await?.map_or(0, |s| s.favorite_count);
    ok(&t::Favorite { service_id: service.id.to_string(), favorite: on, favorite_count: count })
}

/// Mark a service as a favourite (idempotent).
#[utoipa::path(post, path = "/services/{id}/favorite", tag = "services",
    params(("id" = String, Path, description = "Service id (`svc_…`)")),
    responses(
        (status = 200, description = "Marked", body = Envelope<t::Favorite>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn favorite(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_favorite(&state, &caller, &id, true).await
}

/// Remove a favourite mark (idempotent).
#[utoipa::path(delete, path = "/services/{id}/favorite", tag = "services",
    params(("id" = String, Path, description = "Service id (`svc_…`)")),
    responses(
        (status = 200, description = "Unmarked", body = Envelope<t::Favorite>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn unfavorite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    set_favorite(&state, &caller, &id, false).await
}

/// Run a service: `input_data` is checked against its input schema (422 with the failing
/// JSON pointers), its price is held (402), and the run waits in the agent's inbox.
#[utoipa::path(post, path = "/services/{id}/run", tag = "services",
    params(("id" = String, Path, description = "Service id (`svc_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::RunRequest,
    responses(
        (status = 202, description = "The run is queued; poll `status_url`", body = Envelope<t::Accepted>),
        (status = 402, description = "`INSUFFICIENT_FUNDS`", body = ErrorEnvelope),
        (status = 403, description = "`OWN_SERVICE`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR` with `input_data/…` pointers", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_OFFLINE`", body = ErrorEnvelope),
    ))]
async fn run_service(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::RunRequest>,
) -> Result<Response> {
    let (tx, service, task) = start_run(&state, &caller, &id, req.input_data).await?;
    let body = t::Accepted {
        task_id: task.id.to_string(),
        status: task.status.as_str().to_owned(),
        status_url: format!("/api/v1/tasks/{}", task.id),
        chat_id: None,
        service_id: Some(service.id.to_string()),
        price: task
            .price
            .zip(task.currency.as_ref())
            .map(|(amount, c)| t::Price { amount, currency: c.to_string() }),
    };
    idem.commit(&state, tx, StatusCode::ACCEPTED, &body).await
}

/// Starts a run of the published service `raw` names for the caller, in a transaction the
/// caller commits: 404 if unknown, 403 for one's own service, 422 for input that fails the
/// schema, 503 if its agent is offline, 402 if the price cannot be held.
pub async fn start_run(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    input: serde_json::Value,
) -> Result<(Box<dyn Tx>, Service, Task)> {
    let id = path_id(raw, ServiceId::parse, "service")?;
    let service = state
        .store
        .service(&id)
        .await?
        .filter(|s| s.published)
        .ok_or_else(|| ApiError::not_found("service"))?;
    let owner = state.store.account(&service.agent_id).await?;
    if owner.as_ref().is_some_and(|a| a.is_managed_by(&caller.account.id)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            code::OWN_SERVICE,
            "you cannot run your own service",
        ));
    }
    document(&input).map_err(|e| e.at("input_data"))?;
    schema::check(&service.terms.input_schema, &input, "input_data")?;
    let now = Timestamp::now();
    let agent = chats::online_agent(state, &service.agent_id, now, code::SERVICE_OFFLINE).await?;
    let mut task =
        chats::direct_task(TaskKind::Service, &caller.account.id, &agent.id, service.terms.name.clone());
    task.description = service.terms.short_description.clone();
    task.input = input;
    task.service_id = Some(service.id.clone());
    task.details = json!({
        "service_name": service.terms.name, "service_version": service.terms.version,
        "input_schema": service.terms.input_schema, "output_schema": service.terms.output_schema,
    });
    if service.terms.price > 0 {
        task.price = Some(service.terms.price);
        task.currency = Some(service.currency.clone());
    }
    let mut tx = state.store.begin().await?;
    let task = work::create(tx.as_mut(), task, now).await?;
    Ok((tx, service, task))
}
