//! Who is calling: bearer credentials, the ban check, rate limits, and password hashing.
//!
//! One middleware, [`gate`], runs before every API handler: it resolves an API key or
//! access token to its account (401 if it names none), refuses banned accounts (403
//! `ACCOUNT_BANNED`), and charges the call to the caller's key, or to its IP when anonymous.
//! Handlers then ask for a [`Caller`] or an [`Admin`].

use std::{net::SocketAddr, sync::OnceLock};

use agora_core::{
    Timestamp,
    account::{Account, Password},
    credential::{SecretKind, hash_secret},
};
use agora_store::{Credential, Principal};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
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

/// The authenticated account of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    pub credential: Credential,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::unauthorized("authentication required: send Authorization: Bearer <key or token>")
        })
    }
}

/// The caller if the request carried credentials: public endpoints that show a signed-in
/// caller a little more.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Caller>().cloned()))
    }
}

/// A caller with the admin role.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.account.is_admin() {
            Ok(Admin(caller))
        } else {
            Err(ApiError::forbidden("admin role required"))
        }
    }
}

/// The client's IP, as seen on the socket.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(&parts.extensions)))
    }
}

/// The client's IP, as seen on the socket.
pub fn client_ip(req_extensions: &axum::http::Extensions) -> String {
    req_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves a presented secret to its live principal.
async fn resolve(state: &AppState, secret: &str) -> Result<Option<Principal>> {
    let hash = hash_secret(secret);
    let principal = match SecretKind::of(secret) {
        Some(SecretKind::ApiKey) => state.store.principal_by_key(&hash).await?,
        Some(SecretKind::AccessToken) => {
            state.store.principal_by_access_token(&hash, Timestamp::now()).await?
        }
        Some(SecretKind::RefreshToken) | None => None,
    };
    Ok(principal)
}

/// How stale `last_used_at` may get before a use writes it again: a write per request
/// would make every authenticated call a database write.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// Authentication, ban check and rate limiting for every API request (see module docs).
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let Some(secret) = bearer(req.headers()).map(str::to_owned) else {
        if let Err(e) = state.limits.check_default(&format!("ip:{ip}")) {
            return e.into_response();
        }
        return next.run(req).await;
    };
    // Boxed: the lookup's state is not kept in the request's future while it waits on `next`.
    let principal = match Box::pin(resolve(&state, &secret)).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            // Failed attempts count against the IP, so guessing keys is throttled too.
            if let Err(e) = state.limits.check_default(&format!("ip:{ip}")) {
                return e.into_response();
            }
            return ApiError::unauthorized("invalid, expired or revoked credentials").into_response();
        }
        Err(e) => return e.into_response(),
    };
    tracing::Span::current().record("account_id", principal.account.id.as_str());
    if principal.account.is_banned() {
        return ApiError::banned().into_response();
    }
    if let Err(e) = state.limits.check_default(&format!("cred:{}", principal.credential.id())) {
        return e.into_response();
    }
    if let Credential::ApiKey(key_id) = &principal.credential {
        let now = Timestamp::now();
        let stale = principal
            .last_used_at
            .is_none_or(|t| now.millis() - t.millis() >= LAST_USED_RESOLUTION_SECS * 1000);
        if stale {
            let (store, key_id) = (state.store.clone(), key_id.clone());
            // Off the request path: the caller should not wait for bookkeeping.
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&key_id, now).await {
                    tracing::warn!(error = %e, "could not record key use");
                }
            });
        }
    }
    req.extensions_mut().insert(Caller { account: principal.account, credential: principal.credential });
    next.run(req).await
}

fn argon2() -> Argon2<'static> {
    // argon2id v19 with the crate's defaults (19 MiB, 2 passes, 1 lane): OWASP's baseline.
    Argon2::default()
}

/// Hashes a password with argon2id, off the async runtime.
pub async fn hash_password(password: &Password) -> Result<String> {
    let pw = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        argon2().hash_password(pw.as_bytes()).map(|h| h.to_string()).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks a password against a stored hash, off the async runtime. With no stored hash it
/// still does the work of one check, so response times do not tell which emails exist.
pub async fn verify_password(password: &str, stored: Option<String>) -> Result<bool> {
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let stored_ok = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let Ok(parsed) = PasswordHash::new(&phc) else { return false };
        argon2().verify_password(pw.as_bytes(), &parsed).is_ok() && stored_ok
    })
    .await
    .map_err(ApiError::internal)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        argon2().hash_password(b"agora timing equaliser").map(|h| h.to_string()).unwrap_or_default()
    })
}

/// 32 bytes from rand's thread-local CSPRNG (ChaCha, seeded and reseeded by the OS).
pub fn random_bytes() -> [u8; 32] {
    rand::random()
}
