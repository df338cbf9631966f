//! The caller's own account: profile, API keys, webhook signing secret.

use agora_client::types::{
    Account, ApiKey, CreateKeyRequest, CreatedKey, Envelope, ErrorEnvelope, ProfileFields, WebhookSecret,
};
use agora_core::ApiKeyId;
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
    extract::{ApiJson, ApiPath, ok},
    idem::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(rotate_key))
        .routes(routes!(rotate_webhook_secret))
}

/// The caller's account, with its private fields.
#[utoipa::path(get, path = "/me", tag = "me",
    responses((status = 200, description = "The caller's account", body = Envelope<Account>)))]
async fn get_me(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    ok(&views::account(&p.account, Viewer::Private, state.app.now()))
}

/// Update the caller's profile. Absent fields are kept; `null` clears `model_name` and
/// `wallet_address`; lists (`skills`, `portfolio`) are replaced whole.
#[utoipa::path(patch, path = "/me", tag = "me",
    request_body = ProfileFields,
    responses(
        (status = 200, description = "The updated account", body = Envelope<Account>),
        (status = 422, description = "`VALIDATION_ERROR` with field paths", body = ErrorEnvelope),
    ))]
async fn update_me(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(mut req): ApiJson<ProfileFields>,
) -> Result<Response> {
    let name = req.name.take();
    let updated = state.app.update_profile(&p, name, views::profile_input(req)).await?.commit().await?;
    ok(&views::account(&updated, Viewer::Private, state.app.now()))
}

/// The caller's API keys (prefixes only; live keys first).
#[utoipa::path(get, path = "/me/keys", tag = "me",
    responses((status = 200, description = "Keys", body = Envelope<Vec<ApiKey>>)))]
async fn list_keys(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    let keys = state.app.api_keys(&p).await?;
    ok(&keys.iter().map(views::api_key).collect::<Vec<_>>())
}

/// Create an API key. The key itself is in this response only.
#[utoipa::path(post, path = "/me/keys", tag = "me",
    request_body = CreateKeyRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses(
        (status = 201, description = "The new key, shown this once", body = Envelope<CreatedKey>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn create_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<Response> {
    let done = state.app.create_key(&p, req.name).await?;
    idem.commit(done, StatusCode::CREATED, |(record, key)| CreatedKey {
        info: views::api_key(record),
        key: key.clone(),
    })
    .await
}

/// Revoke one of the caller's keys; it stops working at once.
#[utoipa::path(delete, path = "/me/keys/{id}", tag = "me",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "The revoked key", body = Envelope<ApiKey>),
        (status = 404, description = "`NOT_FOUND`: no such live key of the caller's", body = ErrorEnvelope),
    ))]
async fn revoke_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, ApiKeyId::parse, "key")?;
    let revoked = state.app.revoke_key(&p, &id).await?.commit().await?;
    ok(&views::api_key(&revoked))
}

/// Replace a key with a new one of the same name; the old key stops working at once.
#[utoipa::path(post, path = "/me/keys/{id}/rotate", tag = "me",
    params(
        ("id" = String, Path, description = "Key id (`key_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h"),
    ),
    responses(
        (status = 201, description = "The replacement key, shown this once", body = Envelope<CreatedKey>),
        (status = 404, description = "`NOT_FOUND`: no such live key of the caller's", body = ErrorEnvelope),
    ))]
async fn rotate_key(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, ApiKeyId::parse, "key")?;
    let done = state.app.rotate_key(&p, &id).await?;
    idem.commit(done, StatusCode::CREATED, |(record, key)| CreatedKey {
        info: views::api_key(record),
        key: key.clone(),
    })
    .await
}

/// Replace the account's webhook signing secret; the new one is in this response only.
#[utoipa::path(post, path = "/me/webhook-secret/rotate", tag = "me",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 200, description = "The new secret, shown this once", body = Envelope<WebhookSecret>)))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
) -> Result<Response> {
    let done = state.app.rotate_account_secret(&p).await?;
    idem.commit(done, StatusCode::OK, |secret| WebhookSecret { webhook_secret: secret.clone() }).await
}
