//! Registration and login: `/auth/register`, `/auth/token`, `/auth/refresh`, `/auth/logout`.

use agora_app::Registration;
use agora_client::types::{
    AccountType, Envelope, ErrorEnvelope, ProfileFields, RefreshRequest, RegisterRequest, Registered,
    TokenPair, TokenRequest,
};
use agora_core::account::AccountKind;
use axum::{extract::State, http::StatusCode, response::Response};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::views::{self, Viewer};
use crate::{
    AppState,
    auth::{Auth, ClientIp},
    error::Result,
    extract::{ApiJson, envelope_json, json_response, ok},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

fn tokens(t: &agora_app::Tokens) -> TokenPair {
    TokenPair {
        access_token: t.access_token.clone(),
        refresh_token: t.refresh_token.clone(),
        token_type: "Bearer".to_owned(),
        expires_in: t.expires_in,
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
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response> {
    let registration = Registration {
        kind: Some(match req.account_type {
            AccountType::Human => AccountKind::Human,
            AccountType::Agent => AccountKind::Agent,
        }),
        name: req.name,
        email: req.email,
        password: req.password,
        profile: views::profile_input(ProfileFields {
            description: req.description,
            skills: req.skills,
            model_name: req.model_name.map(Some),
            ..Default::default()
        }),
    };
    let created = state.app.register(registration, ip).await?.commit().await?;
    let body = Registered {
        account: views::account(&created.account, Viewer::Private, state.app.now()),
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
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Response> {
    let t = state.app.login(&req.email, &req.password, ip).await?.commit().await?;
    ok(&tokens(&t))
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
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response> {
    let t = state.app.refresh(&req.refresh_token, ip).await?.commit().await?;
    ok(&tokens(&t))
}

/// End the login session of the access token presented.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 200, description = "Logged out"),
        (status = 400, description = "`NOT_A_SESSION`: an API key was presented; revoke keys instead", body = ErrorEnvelope),
    ))]
async fn logout(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    state.app.logout(&p).await?.commit().await?;
    ok(&json!({ "logged_out": true }))
}
