//! Agora's HTTP frontends: the native API, the dialects, their conventions (envelope,
//! authentication, idempotency, rate limits, pagination), operations endpoints and the
//! OpenAPI document. Every handler translates: it parses its request into the application's
//! inputs, calls one use case of `agora_app::App`, and shapes the answer.

pub mod api;
pub mod auth;
pub mod compat;
pub mod config;
pub mod conn;
mod edge;
pub mod error;
pub mod extract;
pub mod headers;
pub mod idem;
pub mod metrics;
pub mod openapi;
pub mod vocab;

use std::{future::Future, ops::Deref, sync::Arc};

use agora_app::App;
use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, Request},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use auth::ClientIp;
pub use config::Config;
use error::ApiError;

/// What every handler can reach: the application, the HTTP configuration and metrics.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub app: App,
    pub config: Config,
    pub http: metrics::HttpMetrics,
}

impl AppState {
    pub fn new(app: App, config: Config) -> Self {
        let http = metrics::HttpMetrics::new(&app);
        Self(Arc::new(Shared { app, config, http }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = api_routes().split_for_parts();
    openapi::finish(api)
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).nest("/api/v1", api::router())
}

#[derive(Debug, Clone, Copy)]
struct MakeUlidRequestId;

impl MakeRequestId for MakeUlidRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&format!("req_{}", ulid::Ulid::generate().to_string().to_lowercase()))
            .ok()
            .map(RequestId::new)
    }
}

fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    // The path only: query strings can carry things that do not belong in logs.
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id,
        account_id = tracing::field::Empty)
}

pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

/// An unknown path: 404 in the envelope. It counts against the caller's per-IP rate limit
/// like any request, so refused requests cannot be sent without limit either.
pub(crate) async fn not_found(State(state): State<AppState>, ClientIp(ip): ClientIp) -> ApiError {
    refused(&state, ip, ApiError::not_found("endpoint"))
}

/// A known path with a method it does not take: 405, counted like [`not_found`].
pub(crate) async fn method_not_allowed(State(state): State<AppState>, ClientIp(ip): ClientIp) -> ApiError {
    let error = ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        error::code::METHOD_NOT_ALLOWED,
        "method not allowed here",
    );
    refused(&state, ip, error)
}

fn refused(state: &AppState, ip: Option<std::net::IpAddr>, error: ApiError) -> ApiError {
    match state.app.limits().check_ip(ip) {
        Ok(()) => error,
        Err(limited) => ApiError::from(limited),
    }
}

/// The whole application: the API behind authentication and idempotency, the operations
/// endpoints beside it, and the layers every request passes (request id, tracing, metrics,
/// panic recovery, body limit).
pub fn router(state: AppState) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let api = api
        .layer(from_fn_with_state(state.clone(), idem::middleware))
        .layer(from_fn_with_state(state.clone(), auth::gate));
    Router::new()
        .merge(api)
        .merge(compat::router(&state))
        .route("/healthz", get(api::ops::healthz))
        .route("/readyz", get(api::ops::readyz))
        .route("/metrics", get(api::ops::metrics))
        .merge(SwaggerUi::new(headers::DOCS_PREFIX).url("/api/openapi.json", openapi::finish(doc)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(edge::EdgeLayer {
            metrics: state.http.clone(),
            body_timeout: std::time::Duration::from_secs(state.config.body_read_timeout_seconds),
        })
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeUlidRequestId))
        .with_state(state)
}

/// Serves until `shutdown` resolves; then answers waiting inbox polls with "no task", lets
/// in-flight requests finish, and stops the background workers. Leases are left to expire.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = state.app.clone();
    // The live feed starts at the log's end as of now, before any stream can connect.
    let log_end = app.log_end().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the event log's end; the live feed starts from the beginning");
        0
    });
    let workers = app.spawn_workers(log_end);
    let limits = conn::ConnLimits {
        header_read_timeout: std::time::Duration::from_secs(state.config.header_read_timeout_seconds),
        max_connections: state.config.max_connections,
    };
    let stopping = app.clone();
    let result = conn::serve(listener, router(state), limits, shutdown, move || stopping.shut_down()).await;
    // Stops the workers if the server ended for another reason.
    app.shut_down();
    for w in workers {
        let _ = w.await;
    }
    result
}
