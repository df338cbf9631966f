//! Agora's HTTP server: the native API, its conventions (envelope, auth, idempotency, rate
//! limits, pagination), operations endpoints and the OpenAPI document.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod compat;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod webhooks;
pub mod workers;

use std::{future::Future, net::SocketAddr, ops::Deref, sync::Arc, time::Duration};

use agora_core::money::Currencies;
use agora_store::Store;
use axum::{
    Router,
    extract::DefaultBodyLimit,
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

pub use config::Config;
use error::ApiError;

/// What every handler can reach: storage, configuration, limits and metrics.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Config,
    /// The accepted currencies (built-in and configured), parsed once.
    pub currencies: Currencies,
    pub limits: ratelimit::RateLimits,
    pub metrics: metrics::Metrics,
    /// Where inbox long-polls wait for work.
    pub dispatcher: Arc<dispatch::Dispatcher>,
    /// Committed events, broadcast to this replica's live streams.
    pub live: live::Feed,
    /// Signs and posts webhook deliveries; `None` if its HTTP client could not start.
    pub webhook_sender: Option<Arc<webhooks::Sender>>,
    /// Tells this replica's webhook sender that deliveries are due now.
    pub webhook_kick: Arc<tokio::sync::Notify>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        let limits = ratelimit::RateLimits::new(&config);
        // The binary validates the configuration before it gets here; this only guards
        // embedders that skip `Config::validate`.
        let currencies = config.currency_table().unwrap_or_else(|e| {
            tracing::error!(error = %e, "invalid currency configuration; using the built-in currencies");
            Currencies::default()
        });
        let metrics = metrics::Metrics::default();
        let dispatcher = Arc::new(dispatch::Dispatcher::new(metrics.inbox_waiters.clone()));
        let webhook_sender = webhooks::Sender::new(config.allow_private_webhooks)
            .inspect_err(
                |e| tracing::error!(error = %e, "webhook client cannot start; webhooks will not be sent"),
            )
            .ok()
            .map(Arc::new);
        Self(Arc::new(Shared {
            store,
            config,
            currencies,
            limits,
            metrics,
            dispatcher,
            live: live::Feed::default(),
            webhook_sender,
            webhook_kick: Arc::default(),
        }))
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

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        error::code::METHOD_NOT_ALLOWED,
        "method not allowed here",
    )
}

/// The whole application: the API behind authentication and idempotency, the operations
/// endpoints beside it, and the layers every request passes (request id, tracing, metrics,
/// panic recovery, body limit).
pub fn router(state: AppState) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let api = api
        .layer(from_fn_with_state(state.clone(), idempotency::middleware))
        .layer(from_fn_with_state(state.clone(), auth::gate));
    Router::new()
        .merge(api)
        .merge(compat::router(&state))
        .route("/healthz", get(api::ops::healthz))
        .route("/readyz", get(api::ops::readyz))
        .route("/metrics", get(api::ops::metrics))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi::finish(doc)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn_with_state(state.clone(), metrics::track))
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
    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                state.limits.sweep();
            }
        })
    };
    // The live feed starts at the log's end as of now, before any stream can connect.
    let log_end = state.store.last_event_seq().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the event log's end; the live feed starts from the beginning");
        0
    });
    let workers = workers::spawn(&state, log_end);
    let dispatcher = state.dispatcher.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            dispatcher.shut_down();
        })
        .await;
    sweeper.abort();
    for w in workers {
        let _ = w.await;
    }
    result
}
