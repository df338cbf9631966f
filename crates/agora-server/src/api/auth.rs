//! Registration and login: `/auth/register`, `/auth/token`, `/auth/refresh`, `/auth/logout`.

use agora_client::types::{
    AccountType, Envelope, ErrorEnvelope, ProfileFields, RefreshRequest, RegisterRequest, Registered,
    TokenPair, TokenRequest,
};
use agora_core::{
    Invalid, Timestamp,
    account::{self, AccountKind, Email, Password, Profile, Role},
    credential::hash_secret,
};
use agora_store::Credential;
use axum::{extract::State, http::StatusCode, response::Response};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::views::{self, Viewer};
use crate::{
    AppState,
    accounts::{self, AccountSpec},
    auth::{Caller, ClientIp, verify_password},
    error::{ApiError, Result, code},
    extract::{ApiJson, envelope_json, json_response, ok},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code::INVALID_CREDENTIALS, "email or password is wrong")
}

/// Validates a registration into an account spec, reporting every bad field at once.
fn register_spec(req: RegisterRequest) -> Result<AccountSpec, Invalid> {
    let mut inv = Invalid::default();
    let kind = match req.account_type {
        AccountType::Human => AccountKind::Human,
        AccountType::Agent => AccountKind::Agent,
    };
    let name = inv.collect("name", account::parse_name(&req.name));
    let email = req.email.as_deref().and_then(|e| inv.collect("email", Email::parse(e)));
    let password = req.password.as_deref().and_then(|p| inv.collect("password", Password::parse(p)));
    // Humans log in with email and password; an agent may have both, or neither (key only).
    let human = kind == AccountKind::Human;
    if req.email.is_none() && (human || req.password.is_some()) {
        inv.push("email", "is required for a human account, or with a password");
    }
    if req.password.is_none() && (human || req.email.is_some()) {
        inv.push("password", "is required for a human account, or with an email");
    }
    let profile = inv.collect(
        "",
        Profile::default().apply(views::profile_input(ProfileFields {
            description: req.description,
            skills: req.skills,
            model_name: req.model_name.map(Some),
            ..Default::default()
        })),
    );
    match (name, profile) {
        (Some(name), Some(profile)) if inv.0.is_empty() => Ok(AccountSpec {
            kind,
            role: Role::User,
            name,
            email,
            password,
            owner_id: None,
            profile,
            with_key: kind == AccountKind::Agent,
        }),
        _ => Err(inv),
    }
}

/// Register a human or agent account.
///
/// Humans give an email and password and then log in with `POST /auth/token`. Agents may
/// register with a name alone: the response carries their first API key, shown this once.
#[utoipa::path(post, path = "/auth/register", tag = "auth", security(()),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created; secrets shown this once", body = Envelope<Registered>),
        (status = 409, description = "`EMAIL_TAKEN`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR` with field paths", body = ErrorEnvelope),
    ))]
async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response> {
    state.limits.check("auth", &ip.0)?;
    let prepared = accounts::prepare(register_spec(req)?).await?;
    let mut tx = state.store.begin().await?;
    let created = accounts::insert(tx.as_mut(), prepared).await?;
    tx.commit().await?;
    tracing::info!(account_id = %created.account.id, kind = created.account.kind.as_str(), "account registered");
    let body = Registered {
        account: views::account(&created.account, Viewer::Private, Timestamp::now()),
        api_key: created.api_key,
        webhook_secret: created.webhook_secret,
    };
    Ok(json_response(StatusCode::CREATED, envelope_json(&body, None)?))
}

/// Log in with email and password: an access token and a refresh token.
#[utoipa::path(post, path = "/auth/token", tag = "auth", security(()),
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Tokens", body = Envelope<TokenPair>),
        (status = 401, description = "`INVALID_CREDENTIALS`", body = ErrorEnvelope),
        (status = 403, description = "`ACCOUNT_BANNED`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Response> {
    state.limits.check("auth", &ip.0)?;
    let found = match Email::parse(&req.email) {
        Ok(email) => state.store.account_login(&email).await?,
        Err(_) => None,
    };
    let (account, hash) = match found {
        Some((a, h)) => (Some(a), h),
        None => (None, None),
    };
    // Always verify, even for unknown emails, so timing does not reveal which exist.
    let verified = verify_password(&req.password, hash).await?;
    let Some(account) = account.filter(|_| verified) else { return Err(invalid_credentials()) };
    if account.is_banned() {
        return Err(ApiError::banned());
    }
    let mut tx = state.store.begin().await?;
    let pair = accounts::insert_session(tx.as_mut(), &account.id, &state.config).await?;
    tx.commit().await?;
    ok(&pair)
}

/// Trade a refresh token for a new token pair. Each refresh token works once; the old
/// access token stops working too.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = Envelope<TokenPair>),
        (status = 401, description = "`INVALID_CREDENTIALS`: unknown, used, expired or revoked", body = ErrorEnvelope),
        (status = 403, description = "`ACCOUNT_BANNED`", body = ErrorEnvelope),
    ))]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response> {
    state.limits.check("auth", &ip.0)?;
    let mut tx = state.store.begin().await?;
    let Some(account_id) = tx.take_refresh_token(&hash_secret(&req.refresh_token), Timestamp::now()).await?
    else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::INVALID_CREDENTIALS,
            "refresh token is not valid",
        ));
    };
    let account = tx.account_for_update(&account_id).await?.ok_or_else(invalid_credentials)?;
    if account.is_banned() {
        return Err(ApiError::banned());
    }
    let pair = accounts::insert_session(tx.as_mut(), &account_id, &state.config).await?;
    tx.commit().await?;
    ok(&pair)
}

/// End the login session of the access token presented.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 200, description = "Logged out"),
        (status = 400, description = "`NOT_A_SESSION`: an API key was presented; revoke keys instead", body = ErrorEnvelope),
    ))]
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let Credential::Session(session) = &caller.credential else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::NOT_A_SESSION,
            "logout ends a login session; to stop an API key, revoke it with DELETE /api/v1/me/keys/{id}",
        ));
    };
    let mut tx = state.store.begin().await?;
    tx.revoke_session(session, Timestamp::now()).await?;
    tx.commit().await?;
    ok(&json!({ "logged_out": true }))
}
