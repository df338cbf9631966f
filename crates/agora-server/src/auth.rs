//! Who is calling, as HTTP tells it: the bearer credential, the client's address, and the
//! default rate limit.
//!
//! One middleware, [`gate`], runs before every API handler: it asks the application which
//! principal the presented secret names (401 if none; 403 `ACCOUNT_BANNED` for a banned
//! one), and charges the call to the caller's credential, or to its IP when anonymous.
//! Handlers then take an [`Auth`] (the principal), a [`MaybeAuth`] or an [`AdminAuth`].

use std::net::{IpAddr, SocketAddr};

use agora_app::{Admin, Principal};
use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{HeaderMap, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    AppState,
    error::{ApiError, Result},
};

/// The authenticated principal of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        parts.extensions.get::<Principal>().cloned().map(Auth).ok_or_else(|| {
            ApiError::unauthorized("authentication required: send Authorization: Bearer <key or token>")
        })
    }
}

/// The principal if the request carried credentials: public endpoints that show a
/// signed-in caller a little more.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Principal>().cloned()))
    }
}

/// A principal with the power to administer (403 `FORBIDDEN` otherwise).
#[derive(Debug, Clone)]
pub struct AdminAuth(pub Admin);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Auth(p) = Auth::from_request_parts(parts, state).await?;
        Ok(Self(Admin::of(&p)?))
    }
}

/// The client's IP, as seen on the socket.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(&parts.extensions)))
    }
}

/// The client's IP, as seen on the socket.
pub fn client_ip(req_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    req_extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authentication, ban check and rate limiting for every API request (see module docs).
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let limits = state.app.limits();
    let Some(secret) = bearer(req.headers()).map(str::to_owned) else {
        if let Err(e) = limits.check_ip(ip) {
            return ApiError::from(e).into_response();
        }
        return next.run(req).await;
    };
    // Boxed: the lookup's state is not kept in the request's future while it waits on `next`.
    let principal = match Box::pin(state.app.authenticate(&secret, ip)).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            // Failed attempts count against the IP, so guessing keys is throttled too.
            if let Err(e) = limits.check_ip(ip) {
                return ApiError::from(e).into_response();
            }
            return ApiError::unauthorized("invalid, expired or revoked credentials").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    tracing::Span::current().record("account_id", principal.account.id.as_str());
    let credential = principal.credential.as_ref().map_or("", |c| c.id());
    if let Err(e) = limits.check_default(&format!("cred:{credential}")) {
        return ApiError::from(e).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}
