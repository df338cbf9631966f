//! Services (AgentFlow): an agent publishes a service with a price and JSON Schemas for its
//! input and output; requesters search and run it. A run is a `service` task in the agent's
//! inbox, its price held in escrow until the requester accepts the delivery (or the system
//! does, after the auto-accept delay).

use agora_app::{Availability, ServiceSearch, ServiceView, services::NewService};
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{AccountId, Invalid, ServiceId, money::Currency, work::ServiceInput};
use agora_store::ServiceSort;
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, views};
use crate::{
    AppState,
    auth::{Auth, MaybeAuth},
    error::{ApiError, Result},
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
    vocab::Vocabulary,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service, list_services))
        .routes(routes!(get_service, update_service, delete_service))
        .routes(routes!(favorite, unfavorite))
        .routes(routes!(run_service))
}

/// The search's availability words.
const AVAILABILITY: Vocabulary<Availability> =
    Vocabulary { field: "status", words: &[("online", Availability::Online), ("all", Availability::All)] };

const SORT: Vocabulary<ServiceSort> = Vocabulary {
    field: "sort",
    words: &[
        ("newest", ServiceSort::Newest),
        ("price_asc", ServiceSort::PriceAsc),
        ("price_desc", ServiceSort::PriceDesc),
        ("popular", ServiceSort::MostPaid),
    ],
};

/// A service search's words as the application's search: `q`, `status` (online or all),
/// `sort` in the frontend's vocabulary and the page (`default_limit` when not given), every
/// problem reported at once. The native API and the dialects that search the same way
/// share it, each with its own sort words and page size.
pub fn search_query(
    q: t::ServiceListQuery,
    sort: &Vocabulary<ServiceSort>,
    default_limit: u64,
    currency: Option<Currency>,
) -> Result<(PageParams, ServiceSearch)> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, Some(q.limit.unwrap_or(default_limit))));
    let availability = inv.collect("", AVAILABILITY.parse(q.status.as_deref(), Availability::Online));
    let sort = inv.collect("", sort.parse(q.sort.as_deref(), ServiceSort::Newest));
    let text = inv.collect("", ServiceSearch::text(q.q));
    let (Some(params), Some(availability), Some(sort), Some(text), true) =
        (params, availability, sort, text, inv.0.is_empty())
    else {
        return Err(inv.into());
    };
    let search =
        ServiceSearch { text, availability, currency, sort, offset: params.offset(), limit: params.limit };
    Ok((params, search))
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

fn view(state: &AppState, v: &ServiceView) -> t::Service {
    views::service(&v.service, v.agent.as_ref(), v.favorite, state.app.now())
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::ServiceRequest>,
) -> Result<Response> {
    let agent_id = req.agent_id.as_deref().map(|raw| path_id(raw, AccountId::parse, "agent")).transpose()?;
    let new =
        NewService { agent_id, terms: service_input(&req), currency: req.currency, published: req.published };
    let done = state.app.publish_service(&p, new).await?;
    idem.commit(done, StatusCode::CREATED, |v| view(&state, v)).await
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
    let (params, search) = search_query(q, &SORT, PageParams::DEFAULT_LIMIT, None)?;
    let found = state.app.search_services(&search).await?;
    let items: Vec<_> = found.items.iter().map(|v| view(&state, v)).collect();
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
    MaybeAuth(p): MaybeAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, ServiceId::parse, "service")?;
    ok(&view(&state, &state.app.service(p.as_ref(), &id).await?))
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::ServiceRequest>,
) -> Result<Response> {
    if req.agent_id.is_some() {
        return Err(ApiError::invalid("agent_id", "a service cannot move to another agent"));
    }
    let id = path_id(&id, ServiceId::parse, "service")?;
    let done =
        state.app.update_service(&p, &id, service_input(&req), req.currency.clone(), req.published).await?;
    let mut v = done.commit().await?;
    v.favorite = None;
    ok(&view(&state, &v))
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, ServiceId::parse, "service")?;
    let v = state.app.publish(&p, &id, false).await?.commit().await?;
    ok(&view(&state, &v))
}

async fn set_favorite(state: &AppState, p: &agora_app::Principal, raw: &str, on: bool) -> Result<Response> {
    let id = path_id(raw, ServiceId::parse, "service")?;
    let (id, count) = state.app.set_favorite(p, &id, on).await?.commit().await?;
    ok(&t::Favorite { service_id: id.to_string(), favorite: on, favorite_count: count })
}

/// Mark a service as a favourite (idempotent).
#[utoipa::path(post, path = "/services/{id}/favorite", tag = "services",
    params(("id" = String, Path, description = "Service id (`svc_…`)")),
    responses(
        (status = 200, description = "Marked", body = Envelope<t::Favorite>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn favorite(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    set_favorite(&state, &p, &id, true).await
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    set_favorite(&state, &p, &id, false).await
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::RunRequest>,
) -> Result<Response> {
    let id = path_id(&id, ServiceId::parse, "service")?;
    let done = state.app.run_service(&p, &id, req.input_data, None).await?;
    idem.commit(done, StatusCode::ACCEPTED, |task| t::Accepted {
        task_id: task.id.to_string(),
        status: task.status.as_str().to_owned(),
        status_url: format!("/api/v1/tasks/{}", task.id),
        chat_id: None,
        service_id: task.service_id.as_ref().map(ToString::to_string),
        price: task
            .price
            .zip(task.currency.as_ref())
            .map(|(amount, c)| t::Price { amount, currency: c.to_string() }),
    })
    .await
}
