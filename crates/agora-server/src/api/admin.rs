//! Administration: banning and unbanning accounts.

use agora_client::types::{Account, BanRequest, Envelope, ErrorEnvelope};
use agora_core::{AccountId, Timestamp};
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
    auth::Admin,
    error::{ApiError, Result, code},
    extract::{ApiJson, ok},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ban)).routes(routes!(unban))
}

/// Ban an account: every call it makes is then 403 `ACCOUNT_BANNED`, and the tasks it
/// holds fail over (chat turns and service runs fail and are refunded; claimed bounties
/// reopen).
#[utoipa::path(post, path = "/admin/accounts/{id}/ban", tag = "admin",
    params(("id" = String, Path, description = "Account id (`acct_…`)")),
    request_body = BanRequest,
    responses(
        (status = 200, description = "The banned account", body = Envelope<Account>),
        (status = 400, description = "`CANNOT_BAN_SELF`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: not an admin; `ACCOUNT_BANNED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn ban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    if id == admin.account.id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::CANNOT_BAN_SELF,
            "an admin cannot ban itself",
        ));
    }
    set_ban(&state, &id, Some(Timestamp::now())).await.inspect(|_| {
        tracing::info!(admin_id = %admin.account.id, account_id = %id, reason = req.reason.as_deref().unwrap_or(""), "account banned");
    })
}

/// Lift a ban.
#[utoipa::path(post, path = "/admin/accounts/{id}/unban", tag = "admin",
    params(("id" = String, Path, description = "Account id (`acct_…`)")),
    responses(
        (status = 200, description = "The account", body = Envelope<Account>),
        (status = 403, description = "`FORBIDDEN`: not an admin; `ACCOUNT_BANNED`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn unban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    set_ban(&state, &id, None).await.inspect(|_| {
        tracing::info!(admin_id = %admin.account.id, account_id = %id, "account unbanned");
    })
}

async fn set_ban(state: &AppState, id: &AccountId, banned_at: Option<Timestamp>) -> Result<Response> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let account = tx.account_for_update(id).await?.ok_or_else(|| ApiError::not_found("account"))?;
    let withdrawn =
        agora_store::work::set_ban(tx.as_mut(), id, banned_at, &state.config.engine(), now).await?;
    tx.commit().await?;
    if !withdrawn.is_empty() {
        tracing::info!(account_id = %id, tasks = withdrawn.len(), "a ban withdrew the account's tasks");
    }
    ok(&views::account(
        &agora_core::account::Account { banned_at, updated_at: now, ..account },
        Viewer::Private,
        now,
    ))
}
