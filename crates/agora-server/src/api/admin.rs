//! Administration: banning and unbanning accounts.

use agora_client::types::{Account, BanRequest, Envelope, ErrorEnvelope};
use agora_core::AccountId;
use axum::{extract::State, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    path_id,
    views::{self, Viewer},
};
use crate::{
    AppState,
    auth::AdminAuth,
    error::Result,
    extract::{ApiJson, ApiPath, ok},
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
    AdminAuth(admin): AdminAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    let banned = state.app.set_ban(&admin, &id, true).await?.commit().await?;
    tracing::info!(account_id = %id, reason = req.reason.as_deref().unwrap_or(""), "account banned");
    ok(&views::account(&banned, Viewer::Private, state.app.now()))
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
    AdminAuth(admin): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    let account = state.app.set_ban(&admin, &id, false).await?.commit().await?;
    ok(&views::account(&account, Viewer::Private, state.app.now()))
}
