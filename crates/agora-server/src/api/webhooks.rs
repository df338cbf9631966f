//! Webhook endpoints (SPEC §7): register a URL for event types, get its `whsec_…` secret
//! once, rotate it, ping it, read its delivery log and redeliver. Others' endpoints and
//! deliveries are 404.

use agora_app::webhooks::{DeliveryLog, EndpointChange, NewEndpoint};
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{DeliveryId, Invalid, Timestamp, WebhookId};
use agora_store::{DeliveryStatus, WebhookEndpoint};
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::{
    AppState,
    auth::Auth,
    error::Result,
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
    vocab::Vocabulary,
};

const DELIVERY_STATUS: Vocabulary<DeliveryStatus> = Vocabulary {
    field: "status",
    words: &[
        ("pending", DeliveryStatus::Pending),
        ("delivered", DeliveryStatus::Delivered),
        ("failed", DeliveryStatus::Failed),
    ],
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

fn delivery_view(log: &DeliveryLog) -> t::WebhookDelivery {
    let d = &log.delivery;
    t::WebhookDelivery {
        id: d.id.to_string(),
        webhook_id: d.endpoint_id.as_ref().map(ToString::to_string),
        event_id: d.event_id.to_string(),
        event_type: d.event_type.as_str().to_owned(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        last_attempt_at: d.last_attempt_at.map(Timestamp::to_rfc3339),
        next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| d.next_attempt_at.to_rfc3339()),
        delivered_at: d.delivered_at.map(Timestamp::to_rfc3339),
        created_at: d.created_at.to_rfc3339(),
        attempt_log: log
            .attempts
            .iter()
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

fn with_secret(w: &WebhookEndpoint) -> t::WebhookWithSecret {
    t::WebhookWithSecret {
        webhook: view(w),
        secret: w.secret.clone(),
        previous_secret_valid_until: w
            .previous_secret
            .as_ref()
            .and(w.previous_secret_until)
            .map(Timestamp::to_rfc3339),
    }
}

fn webhook_id(raw: &str) -> Result<WebhookId> {
    path_id(raw, WebhookId::parse, "webhook")
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
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::WebhookRequest>,
) -> Result<Response> {
    let new = NewEndpoint {
        url: req.url,
        event_types: req.event_types,
        description: req.description,
        active: req.active,
    };
    let done = state.app.create_webhook(&p, new).await?;
    idem.commit(done, StatusCode::CREATED, with_secret).await
}

/// The caller's endpoints, oldest first (secrets are never shown again).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, description = "The caller's endpoints", body = Envelope<Vec<t::Webhook>>)))]
async fn list_webhooks(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    ok(&state.app.webhooks(&p).await?.iter().map(view).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = Envelope<t::Webhook>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn get_webhook(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    ok(&view(&state.app.webhook(&p, &webhook_id(&id)?).await?))
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::WebhookPatch>,
) -> Result<Response> {
    let change = EndpointChange {
        url: req.url,
        event_types: req.event_types,
        description: req.description,
        active: req.active,
    };
    let w = state.app.update_webhook(&p, &webhook_id(&id)?, change).await?.commit().await?;
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let w = state.app.delete_webhook(&p, &webhook_id(&id)?).await?.commit().await?;
    ok(&view(&w))
}

/// Send a signed `webhook.ping` to the endpoint now and report what it answered. The ping
/// is one attempt, never retried, and appears in the endpoint's delivery log.
#[utoipa::path(post, path = "/webhooks/{id}/ping", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)")),
    responses(
        (status = 200, description = "What the endpoint answered", body = Envelope<t::PingResult>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn ping_webhook(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let (sent, delivery_id) = state.app.ping_webhook(&p, &webhook_id(&id)?).await?;
    ok(&t::PingResult {
        delivery_id: delivery_id.to_string(),
        delivered: sent.delivered(),
        status_code: sent.status.map(i64::from),
        duration_ms: sent.duration_ms,
        error: sent.error,
    })
}

/// Replace the endpoint's signing secret; the new one is in this response only and signs
/// every attempt from now on, retries of earlier deliveries included. For 24 h the old one
/// signs beside it (one signature each in `webhook-signature`), until
/// `previous_secret_valid_until`, so receivers can switch without missing a delivery.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (`wh_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 200, description = "The endpoint and its new secret, shown this once", body = Envelope<t::WebhookWithSecret>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let done = state.app.rotate_webhook_secret(&p, &webhook_id(&id)?).await?;
    idem.commit(done, StatusCode::OK, with_secret).await
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
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<t::DeliveryListQuery>,
) -> Result<Response> {
    let id = webhook_id(&id)?;
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let status = inv.collect("", DELIVERY_STATUS.parse_opt(q.status.as_deref()));
    let (Some(params), Some(status), true) = (params, status, inv.0.is_empty()) else {
        return Err(inv.into());
    };
    let found = state.app.webhook_deliveries(&p, &id, status, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(delivery_view).collect();
    page(&items, params, found.total)
}

/// Send a delivery again now, with a fresh round of retries (same `webhook-id`, same body).
#[utoipa::path(post, path = "/webhooks/deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery id (`dlv_…`)")),
    responses(
        (status = 202, description = "The delivery, pending again", body = Envelope<t::WebhookDelivery>),
        (status = 400, description = "`PING_NOT_REDELIVERED`: a ping is sent once; ping again instead", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`WEBHOOK_DISABLED`: enable the endpoint first; `DELIVERY_IN_FLIGHT`: an attempt is being made", body = ErrorEnvelope),
    ))]
async fn redeliver(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, DeliveryId::parse, "delivery")?;
    let log = state.app.redeliver(&p, &id).await?.commit().await?;
    Ok(crate::extract::json_response(
        StatusCode::ACCEPTED,
        crate::extract::envelope_json(&delivery_view(&log), None)?,
    ))
}
