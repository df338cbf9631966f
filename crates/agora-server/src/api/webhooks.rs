//! Webhook endpoints (SPEC §7): register a URL for event types, get its `whsec_…` secret
//! once, rotate it, ping it, read its delivery log and redeliver. Others' endpoints and
//! deliveries are 404.

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    DeliveryId, EventId, Invalid, Timestamp, WebhookId, credential, validation,
    webhook::{MAX_ENDPOINTS, parse_event_types},
};
use agora_store::{DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint, webhooks as hooks};
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
    auth::{Caller, random_bytes},
    error::{ApiError, Result, code},
    extract::{ApiJson, ApiQuery, PageParams, ok, page},
    idempotency::Idempotency,
    webhooks::check_url,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(ping_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

fn view(w: &WebhookEndpoint) -> t::Webhook {
    t::Webhook {
        id: w.id.to_string(),
        url: w.url.clone(),
        description: w.description.clone(),
        event_types: w.event_types.clone(),
        active: w.active,
        disabled_reason: w.disabled_reason.clone(),
        failing_since: w.failing_since.map(Timestamp::to_rfc3339),
        created_at: w.created_at.to_rfc3339(),
        updated_at: w.updated_at.to_rfc3339(),
    }
}

fn delivery_view(d: &WebhookDelivery, attempts: &[DeliveryAttempt]) -> t::WebhookDelivery {
    t::WebhookDelivery {
        id: d.id.to_string(),
        webhook_id: d.endpoint_id.as_ref().map(ToString::to_string),
        event_id: d.event_id.to_string(),
        event_type: d.event_type.clone(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        last_attempt_at: d.last_attempt_at.map(Timestamp::to_rfc3339),
        next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| d.next_attempt_at.to_rfc3339()),
        delivered_at: d.delivered_at.map(Timestamp::to_rfc3339),
        created_at: d.created_at.to_rfc3339(),
        attempt_log: attempts
            .iter()
            .filter(|a| a.delivery_id == d.id)
            .map(|a| t::DeliveryAttempt {
                attempt: a.attempt,
                at: a.at.to_rfc3339(),
                status_code: a.status_code,
                duration_ms: a.duration_ms,
                error: a.error.clone(),
            })
            .collect(),
    }
}

/// A URL the SSRF guard accepts, or 422 `WEBHOOK_URL_NOT_ALLOWED` with the reason.
async fn allowed_url(state: &AppState, raw: &str) -> Result<String> {
    validation::http_url(raw).map_err(|e| ApiError::from(e.at("url")))?;
    check_url(raw, state.config.allow_private_webhooks).await.map(|u| u.to_string()).map_err(|reason| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::WEBHOOK_URL_NOT_ALLOWED,
            format!("webhook URL not allowed: {reason}"),
        )
        .with_details(json!({ "reason": reason }))
    })
}

fn description(raw: Option<&str>) -> Result<String, Invalid> {
    match raw.map(str::trim) {
        None | Some("") => Ok(String::new()),
        Some(d) => validation::text(d, 1, 500).map_err(|e| e.at("description")),
    }
}

/// The caller's endpoint `raw` names (404 for anyone else's).
async fn owned(state: &AppState, caller: &Caller, raw: &str) -> Result<WebhookEndpoint> {
    let id = path_id(raw, WebhookId::parse, "webhook")?;
    state
        .store
        .webhook_endpoint(&id)
        .await?
        .filter(|w| w.account_id == caller.account.id)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Register an endpoint for event types (`*` for all, `task.*` for a noun). Its signing
/// secret is in this response only.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks",
    request_body = t::WebhookRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 201, description = "The endpoint and its secret, shown this once", body = Envelope<t::WebhookWithSecret>),
        (status = 422, description = "`VALIDATION_ERROR`, or `WEBHOOK_URL_NOT_ALLOWED` with the reason", body = ErrorEnvelope),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::WebhookRequest>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let event_types =
        inv.collect("", parse_event_types(&req.event_types.clone().unwrap_or_else(|| vec!["*".to_owned()])));
    let description = inv.collect("", description(req.description.as_deref()));
    let (Some(event_types), Some(description)) = (event_types, description) else { return Err(inv.into()) };
    let url = allowed_url(&state, &req.url).await?;
    if state.store.webhook_endpoints(&caller.account.id).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::invalid(
            "",
            format!("an account may register at most {MAX_ENDPOINTS} endpoints"),
        ));
    }
    let now = Timestamp::now();
    let endpoint = WebhookEndpoint {
        id: WebhookId::generate(),
        account_id: caller.account.id.clone(),
        url,
        description,
        event_types,
        secret: credential::webhook_secret(random_bytes()),
        active: req.active.unwrap_or(true),
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    tx.insert_webhook_endpoint(&endpoint).await?;
    let body = t::WebhookWithSecret { webhook: view(&endpoint), secret: endpoint.secret.clone() };
    idem.commit(&state, tx, StatusCode::CREATED, &body).await
}

/// The caller's endpoints, oldest first (secrets are never shown again).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, description = "The caller's endpoints", body = Envelope<Vec<t::Webhook>>)))]
async fn list_webhooks(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let all = state.store.webhook_endpoints(&caller.account.id).await?;
    ok(&all.iter().map(view).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = Envelope<t::Webhook>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    ok(&view(&owned(&state, &caller, &id).await?))
}

/// Change the URL, event types, description or `active`. Turning an endpoint off fails its
/// pending deliveries; turning it on clears the reason the system turned it off for.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks",
    request_body = t::WebhookPatch,
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = Envelope<t::Webhook>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR` or `WEBHOOK_URL_NOT_ALLOWED`", body = ErrorEnvelope),
    ))]
async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::WebhookPatch>,
) -> Result<Response> {
    let current = owned(&state, &caller, &id).await?;
    let mut inv = Invalid::default();
    let event_types = req.event_types.as_ref().and_then(|t| inv.collect("", parse_event_types(t)));
    let description = req.description.as_deref().and_then(|d| inv.collect("", description(Some(d))));
    if !inv.0.is_empty() {
        return Err(inv.into());
    }
    let url = match &req.url {
        Some(raw) => Some(allowed_url(&state, raw).await?),
        None => None,
    };
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let mut w =
        tx.webhook_endpoint_for_update(&current.id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    w.url = url.unwrap_or(w.url);
    w.event_types = event_types.unwrap_or(w.event_types);
    w.description = description.unwrap_or(w.description);
    match req.active {
        Some(true) if !w.active => {
            w.active = true;
            w.disabled_reason = None;
            w.failing_since = None;
        }
        Some(false) if w.active => {
            w.active = false;
            tx.fail_pending_deliveries(&w.id, "endpoint turned off by its owner", now).await?;
        }
        _ => {}
    }
    w.updated_at = now;
    tx.update_webhook_endpoint(&w).await?;
    tx.commit().await?;
    ok(&view(&w))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "The deleted endpoint", body = Envelope<t::Webhook>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let w = owned(&state, &caller, &id).await?;
    let mut tx = state.store.begin().await?;
    tx.delete_webhook_endpoint(&w.id).await?;
    tx.commit().await?;
    ok(&view(&w))
}

/// Send a signed `webhook.ping` to the endpoint now and report what it answered. Not
/// logged as a delivery and not retried.
#[utoipa::path(post, path = "/webhooks/{id}/ping", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "What the endpoint answered", body = Envelope<t::PingResult>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn ping_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let w = owned(&state, &caller, &id).await?;
    let sender =
        state.webhook_sender.clone().ok_or_else(|| ApiError::unavailable("webhook client is not running"))?;
    let body = json!({
        "id": EventId::generate(),
        "type": "webhook.ping",
        "created_at": Timestamp::now().to_rfc3339(),
        "data": { "webhook_id": w.id },
    });
    let sent = sender
        .post(&w.url, &w.secret, DeliveryId::generate().as_str(), "webhook.ping", body.to_string())
        .await;
    ok(&t::PingResult {
        delivered: sent.delivered(),
        status_code: sent.status.map(i64::from),
        duration_ms: sent.duration_ms,
        error: sent.error,
    })
}

/// Replace the endpoint's signing secret; the new one is in this response only and signs
/// every attempt from now on, retries of earlier deliveries included.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The endpoint and its new secret, shown this once", body = Envelope<t::WebhookWithSecret>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    let current = owned(&state, &caller, &id).await?;
    let mut tx = state.store.begin().await?;
    let mut w =
        tx.webhook_endpoint_for_update(&current.id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    w.secret = credential::webhook_secret(random_bytes());
    w.updated_at = Timestamp::now();
    tx.update_webhook_endpoint(&w).await?;
    let body = t::WebhookWithSecret { webhook: view(&w), secret: w.secret.clone() };
    idem.commit(&state, tx, StatusCode::OK, &body).await
}

/// The endpoint's deliveries, newest first, each with its attempts (time, status code,
/// duration, error).
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)"), t::DeliveryListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = Envelope<Vec<t::WebhookDelivery>>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<t::DeliveryListQuery>,
) -> Result<Response> {
    let w = owned(&state, &caller, &id).await?;
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => {
            let parsed = DeliveryStatus::parse(s);
            if parsed.is_none() {
                inv.push("status", "must be pending, delivered or failed");
            }
            parsed
        }
    };
    let Some(params) = params.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let found = state.store.deliveries(&w.id, status, params.offset(), params.limit).await?;
    let ids: Vec<DeliveryId> = found.items.iter().map(|d| d.id.clone()).collect();
    let attempts = state.store.delivery_attempts(&ids).await?;
    let items: Vec<_> = found.items.iter().map(|d| delivery_view(d, &attempts)).collect();
    page(&items, params, found.total)
}

/// Send a delivery again now, with a fresh round of retries (same `webhook-id`, same body).
#[utoipa::path(post, path = "/webhooks/deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses(
        (status = 202, description = "The delivery, pending again", body = Envelope<t::WebhookDelivery>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`WEBHOOK_DISABLED`: enable the endpoint first; `DELIVERY_IN_FLIGHT`: an attempt is being made", body = ErrorEnvelope),
    ))]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = path_id(&id, DeliveryId::parse, "delivery")?;
    let delivery = state
        .store
        .delivery(&id)
        .await?
        .filter(|d| d.account_id == caller.account.id)
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    hooks::redeliver(tx.as_mut(), &caller.account.id, &delivery, now).await?;
    tx.commit().await?;
    state.webhook_kick.notify_one();
    let current = state.store.delivery(&id).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
    let attempts = state.store.delivery_attempts(std::slice::from_ref(&id)).await?;
    Ok(crate::extract::json_response(
        StatusCode::ACCEPTED,
        crate::extract::envelope_json(&delivery_view(&current, &attempts), None)?,
    ))
}
