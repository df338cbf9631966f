//! `Idempotency-Key` (SPEC §6): the same key and body within 24 h replays the first
//! response; the same key with another body is 409 `IDEMPOTENCY_KEY_REUSED`.
//!
//! The middleware answers replays and conflicts before any handler runs. Otherwise it hands
//! the handler an [`Idempotency`] slot, and the handler commits its transaction through
//! [`Idempotency::commit`], which stores the response in that same transaction: the effect
//! and its record exist together or not at all. Two concurrent requests with one key both
//! run, but only one can insert the record; the other rolls back its effect and replays the
//! winner's response. Keys are per account; anonymous requests have no key space, so the
//! header is ignored on them.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use agora_core::{AccountId, Timestamp, credential::sha256_hex};
use agora_store::{Conflict, IdempotencyRecord, StoreError, Tx};
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
    auth::Caller,
    error::{ApiError, Result, code},
    extract::{envelope_json, json_response},
};

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const WINDOW_SECS: i64 = 24 * 3600;
const MAX_KEY_LEN: usize = 255;

#[derive(Debug, Clone)]
struct Slot {
    account: AccountId,
    key: String,
    request_hash: String,
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
    /// Stores the response (when the request has a key) in `tx`, commits, and returns it.
    pub async fn commit<T: Serialize>(
        &self,
        state: &AppState,
        tx: Box<dyn Tx>,
        status: StatusCode,
        data: &T,
    ) -> Result<Response> {
        self.commit_body(state, tx, status, envelope_json(data, None)?).await
    }

    /// [`Idempotency::commit`] for a body already in its final form: a dialect's own shape.
    pub async fn commit_body(
        &self,
        state: &AppState,
        mut tx: Box<dyn Tx>,
        status: StatusCode,
        body: String,
    ) -> Result<Response> {
        if let Some(slot) = &self.0 {
            slot.recorded.store(true, Ordering::Relaxed);
            let now = Timestamp::now();
            let record = IdempotencyRecord {
                account_id: slot.account.clone(),
                key: slot.key.clone(),
                request_hash: slot.request_hash.clone(),
                status: status.as_u16(),
                body: body.clone(),
                created_at: now,
            };
            match tx.insert_idempotency_record(&record, now.plus_seconds(-WINDOW_SECS)).await {
                Ok(()) => {}
                Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                    // A concurrent request with this key committed first: undo ours, answer as it did.
                    drop(tx);
                    return replay_or_conflict(state, slot).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(json_response(status, body))
    }
}

async fn replay_or_conflict(state: &AppState, slot: &Slot) -> Result<Response> {
    let not_before = Timestamp::now().plus_seconds(-WINDOW_SECS);
    match state.store.idempotency_record(&slot.account, &slot.key, not_before).await? {
        Some(rec) if rec.request_hash == slot.request_hash => Ok(replay(&rec)),
        Some(_) => Err(reused()),
        None => Err(ApiError::internal("idempotency record vanished after a conflict")),
    }
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        code::IDEMPOTENCY_KEY_REUSED,
        "this Idempotency-Key was already used with a different request",
    )
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
    let Some(key) = req.headers().get(HEADER) else { return Ok(Prepared::Pass(req)) };
    let Some(caller) = req.extensions().get::<Caller>() else { return Ok(Prepared::Pass(req)) };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::invalid("Idempotency-Key", format!("must be 1-{MAX_KEY_LEN} visible ASCII characters"))
        })?
        .to_owned();
    let account = caller.account.id.clone();

    let (mut parts, body) = req.into_parts();
    let limit = state.config.body_limit_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::payload_too_large(limit))?;
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path(), |p| p.as_str());
    let slot = Slot {
        account,
        key,
        request_hash: request_hash(&parts.method, path, &bytes),
        recorded: Arc::default(),
    };

    let not_before = Timestamp::now().plus_seconds(-WINDOW_SECS);
    match state.store.idempotency_record(&slot.account, &slot.key, not_before).await? {
        Some(rec) if rec.request_hash == slot.request_hash => return Ok(Prepared::Answer(replay(&rec))),
        Some(_) => return Err(reused()),
        None => {}
    }
    let recorded = slot.recorded.clone();
    parts.extensions.insert(slot);
    Ok(Prepared::Run(Request::from_parts(parts, Body::from(bytes)), recorded))
}
