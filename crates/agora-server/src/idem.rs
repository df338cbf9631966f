//! `Idempotency-Key` over HTTP (SPEC §6); the rule itself is the application's
//! (`agora_app::idempotency`). Here: the key is read from the header and the request
//! identified by a hash of its method, path and body; a replay or a reuse is answered
//! before any handler runs; otherwise the handler commits its command through
//! [`Idempotency::commit`], which stores the rendered response with the effect. Anonymous
//! requests have no key space, so the header is ignored on them.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use agora_app::{Committed, IdempotencyKey, Principal, Prior, Refusal, Uncommitted};
use agora_core::credential::sha256_hex;
use agora_store::IdempotencyRecord;
use axum::{
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    AppState,
    error::{ApiError, Result},
    extract::{envelope_json, json_response},
};

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

#[derive(Debug, Clone)]
struct Slot {
    key: IdempotencyKey,
    recorded: Arc<AtomicBool>,
}

/// The idempotency key of this request, if it has one; see [`Idempotency::commit`].
#[derive(Debug, Clone)]
pub struct Idempotency(Option<Slot>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Slot>().cloned()))
    }
}

impl Idempotency {
    /// Commits a command, answering `status` with `render(value)` in the success envelope,
    /// stored under the request's key when it has one.
    pub async fn commit<T, V: Serialize>(
        &self,
        done: Uncommitted<T>,
        status: StatusCode,
        render: impl FnOnce(&T) -> V,
    ) -> Result<Response> {
        let body = envelope_json(&render(done.value()), None)?;
        self.commit_body(done, status, body).await
    }

    /// [`Idempotency::commit`] for a body already in its final form: a dialect's own shape.
    pub async fn commit_body<T>(
        &self,
        done: Uncommitted<T>,
        status: StatusCode,
        body: String,
    ) -> Result<Response> {
        let key = self.0.as_ref().map(|slot| {
            slot.recorded.store(true, Ordering::Relaxed);
            &slot.key
        });
        match done.commit_recorded(key, status.as_u16(), body.clone()).await? {
            Committed::Done(_) => Ok(json_response(status, body)),
            Committed::Replay(rec) => Ok(replay(&rec)),
        }
    }
}

fn replay(rec: &IdempotencyRecord) -> Response {
    let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
    let mut resp = json_response(status, rec.body.clone());
    resp.headers_mut().insert(HeaderName::from_static(REPLAYED_HEADER), HeaderValue::from_static("true"));
    resp
}

fn request_hash(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    sha256_hex(&[method.as_str().as_bytes(), b" ", path_and_query.as_bytes(), b"\n", body])
}

/// See the module docs. Runs after authentication.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Boxed, so that the future of every request, GETs and waiting long-polls included,
    // does not carry the body-reading state of a keyed POST while it waits on `next`.
    match Box::pin(prepare(&state, req)).await {
        Ok(Prepared::Run(req, recorded)) => {
            let resp = next.run(req).await;
            if resp.status().is_success() && !recorded.load(Ordering::Relaxed) {
                tracing::warn!("a keyed POST succeeded without recording its idempotency key");
            }
            resp
        }
        Ok(Prepared::Pass(req)) => next.run(req).await,
        Ok(Prepared::Answer(resp)) => resp,
        Err(e) => e.into_response(),
    }
}

enum Prepared {
    Run(Request, Arc<AtomicBool>),
    Pass(Request),
    Answer(Response),
}

async fn prepare(state: &AppState, req: Request) -> Result<Prepared> {
    if req.method() != Method::POST {
        return Ok(Prepared::Pass(req));
    }
    let Some(raw) = req.headers().get(HEADER) else { return Ok(Prepared::Pass(req)) };
    let Some(principal) = req.extensions().get::<Principal>() else { return Ok(Prepared::Pass(req)) };
    let account = principal.id().clone();
    let key = agora_app::idempotency::parse_key(raw.to_str().unwrap_or("\u{0}"))?;

    let (mut parts, body) = req.into_parts();
    let limit = state.config.body_limit_bytes;
    let watch = parts.extensions.get::<Arc<crate::conn::BodyWatch>>().cloned();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        if watch.is_some_and(|w| w.timed_out()) {
            ApiError::request_timeout(state.config.body_read_timeout_seconds)
        } else {
            ApiError::payload_too_large(limit)
        }
    })?;
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path(), |p| p.as_str());
    let key = IdempotencyKey::new(account, key, request_hash(&parts.method, path, &bytes));
    match state.app.prior_response(&key).await? {
        Prior::Replay(rec) => return Ok(Prepared::Answer(replay(&rec))),
        Prior::Reused => return Err(agora_app::Error::from(Refusal::IdempotencyKeyReused).into()),
        Prior::Fresh => {}
    }
    let recorded = Arc::new(AtomicBool::default());
    parts.extensions.insert(Slot { key, recorded: recorded.clone() });
    Ok(Prepared::Run(Request::from_parts(parts, Body::from(bytes)), recorded))
}
