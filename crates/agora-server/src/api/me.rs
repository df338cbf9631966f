//! The caller's own account: profile, API keys, webhook signing secret.

use agora_client::types::{
    Account, ApiKey, CreateKeyRequest, CreatedKey, Envelope, ErrorEnvelope, ProfileFields, WebhookSecret,
};
use agora_core::{ApiKeyId, Invalid, Timestamp, account, credential, validation};
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
    AppState, accounts,
    auth::{Caller, random_bytes},
    error::{ApiError, Result},
    extract::{ApiJson, ok},
    idempotency::Idempotency,
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
async fn get_me(caller: Caller) -> Result<Response> {
    ok(&views::account(&caller.account, Viewer::Private, Timestamp::now()))
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
    caller: Caller,
    ApiJson(mut req): ApiJson<ProfileFields>,
) -> Result<Response> {
    let name = req.name.take();
    let mut tx = state.store.begin().await?;
    // Read under lock so that two concurrent edits of different fields both survive.
    let current =
        tx.account_for_update(&caller.account.id).await?.ok_or_else(|| ApiError::not_found("account"))?;
    let mut inv = Invalid::default();
    let name = match name {
        Some(n) => inv.collect("name", account::parse_name(&n)),
        None => Some(current.name.clone()),
    };
    let profile = inv.collect("", current.profile.apply(views::profile_input(req)));
    let (Some(name), Some(profile)) = (name, profile) else { return Err(inv.into()) };
    let now = Timestamp::now();
    tx.update_profile(&current.id, &name, &profile, now).await?;
    tx.commit().await?;
    let updated = agora_core::account::Account { name, profile, updated_at: now, ..current };
    ok(&views::account(&updated, Viewer::Private, now))
}

/// The caller's API keys (prefixes only; live keys first).
#[utoipa::path(get, path = "/me/keys", tag = "me",
    responses((status = 200, description = "Keys", body = Envelope<Vec<ApiKey>>)))]
async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let keys = state.store.api_keys(&caller.account.id).await?;
    ok(&keys.iter().map(views::api_key).collect::<Vec<_>>())
}

fn key_name(name: Option<String>) -> Result<String> {
    match name {
        None => Ok("default".to_owned()),
        Some(n) => Ok(validation::text(&n, 1, 100).map_err(|e| e.at("name"))?),
    }
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
    caller: Caller,
    idem: Idempotency,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<Response> {
    let name = key_name(req.name)?;
    let mut tx = state.store.begin().await?;
    let (record, key) = accounts::insert_key_record(tx.as_mut(), &caller.account.id, &name).await?;
    idem.commit(&state, tx, StatusCode::CREATED, &CreatedKey { info: views::api_key(&record), key }).await
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
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = path_id(&id, ApiKeyId::parse, "key")?;
    let mut tx = state.store.begin().await?;
    let revoked = tx
        .revoke_api_key(&caller.account.id, &id, Timestamp::now())
        .await?
        .ok_or_else(|| ApiError::not_found("key"))?;
    tx.commit().await?;
    tracing::info!(key_id = %id, "api key revoked");
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
    caller: Caller,
    idem: Idempotency,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = path_id(&id, ApiKeyId::parse, "key")?;
    let mut tx = state.store.begin().await?;
    let old = tx
        .revoke_api_key(&caller.account.id, &id, Timestamp::now())
        .await?
        .ok_or_else(|| ApiError::not_found("key"))?;
    let (record, key) = accounts::insert_key_record(tx.as_mut(), &caller.account.id, &old.name).await?;
    tracing::info!(old_key_id = %id, new_key_id = %record.id, "api key rotated");
    idem.commit(&state, tx, StatusCode::CREATED, &CreatedKey { info: views::api_key(&record), key }).await
}

/// Replace the account's webhook signing secret; the new one is in this response only.
#[utoipa::path(post, path = "/me/webhook-secret/rotate", tag = "me",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 200, description = "The new secret, shown this once", body = Envelope<WebhookSecret>)))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
) -> Result<Response> {
    let secret = credential::webhook_secret(random_bytes());
    let mut tx = state.store.begin().await?;
    tx.set_webhook_secret(&caller.account.id, &secret, Timestamp::now()).await?;
    idem.commit(&state, tx, StatusCode::OK, &WebhookSecret { webhook_secret: secret }).await
}
