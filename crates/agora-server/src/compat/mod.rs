//! Dialects (SPEC §10): each seed platform's API, verbatim, under its own prefix.
//!
//! A dialect only translates. Its handlers parse the platform's requests, call the same
//! operations the native handlers call (`crate::api::…`), and shape the answers as the
//! platform's document shows them; every rule (state machine, escrow, schemas, presence,
//! authorization) stays where the native API has it. The shared request path is shared
//! too: the same authentication gate, idempotency records, rate limits, request ids and
//! metrics. What differs per dialect is wired here:
//!
//! - its error body: native handlers fail with [`ApiError`](crate::error::ApiError), whose
//!   response carries an [`ErrorInfo`]; [`rerender_errors`] turns that into the dialect's
//!   shape, so errors raised anywhere (the gate, an extractor, the engine) read the same;
//! - key aliases: a platform whose keys look different (AgentFlow's `af_live_…`) may
//!   present an Agora key under its own prefix.

pub mod agentflow;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state, map_response},
    response::Response,
};

use crate::{AppState, auth, error::ErrorInfo, idempotency};

/// Every dialect, each under its prefix.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new().nest("/compat/agentflow", agentflow::router(state))
}

/// The native request path (authentication, then idempotency) around a dialect's routes,
/// with `alias` rewriting presented keys first and `render` reshaping every error.
fn with_conventions<F, Fut>(
    routes: Router<AppState>,
    state: &AppState,
    alias: Option<&'static str>,
    render: F,
) -> Router<AppState>
where
    F: Fn(Response) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    routes
        .layer(from_fn_with_state(state.clone(), idempotency::middleware))
        .layer(from_fn_with_state(state.clone(), auth::gate))
        .layer(from_fn_with_state(alias, key_alias))
        .layer(map_response(render))
}

/// Lets a client present an Agora API key (`ak_live_…`) under its platform's prefix.
async fn key_alias(State(alias): State<Option<&'static str>>, mut req: Request, next: Next) -> Response {
    if let Some(prefix) = alias {
        let rewritten = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, token)| token.trim().strip_prefix(prefix))
            .and_then(|rest| HeaderValue::from_str(&format!("Bearer ak_live_{rest}")).ok());
        if let Some(value) = rewritten {
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
    }
    next.run(req).await
}

/// Replaces the body of an error response with `body(status, info)`, keeping its status
/// (as mapped by `status`) and headers such as `Retry-After`.
pub fn rerender_errors(
    resp: Response,
    status: fn(StatusCode) -> StatusCode,
    body: fn(&ErrorInfo) -> serde_json::Value,
) -> Response {
    let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else { return resp };
    let (mut parts, _) = resp.into_parts();
    parts.status = status(parts.status);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(body(&info).to_string()))
}
