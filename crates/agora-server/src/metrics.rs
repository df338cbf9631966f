//! Prometheus metrics (`/metrics`) and the request middleware that records them and logs
//! the hidden cause of every 5xx once.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{AppState, error::ErrorCause};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    path: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CurrencyLabels {
    pub currency: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    path: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 15))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Long-polls waiting on an inbox right now.
    pub inbox_waiters: Gauge,
    /// Tasks handed out by inboxes.
    pub tasks_claimed: Counter,
    /// From a task's creation to an agent holding it.
    pub dispatch_latency: Histogram,
    /// Fees collected, per currency (minor units), read from the ledger at each scrape.
    pub platform_revenue: Family<CurrencyLabels, Gauge>,
    /// Webhook attempts by outcome: delivered, retrying, failed.
    pub webhook_attempts: Family<OutcomeLabels, Counter>,
    /// Deliveries waiting to be made, read from the database at each scrape.
    pub webhook_backlog: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("agora");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("http_requests", "HTTP requests by matched path and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by matched path",
            latency.clone(),
        );
        let inbox_waiters = Gauge::default();
        registry.register("inbox_waiters", "Agents waiting on their inbox", inbox_waiters.clone());
        let tasks_claimed = Counter::default();
        registry.register("tasks_claimed", "Tasks claimed through inboxes", tasks_claimed.clone());
        let dispatch_latency = latency_histogram();
        registry.register(
            "dispatch_latency_seconds",
            "From a task's creation to an agent claiming it from its inbox",
            dispatch_latency.clone(),
        );
        let platform_revenue = Family::<CurrencyLabels, Gauge>::default();
        registry.register(
            "platform_revenue_minor_units",
            "Platform fees collected, per currency, from the ledger",
            platform_revenue.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_attempts.clone(),
        );
        let webhook_backlog = Gauge::default();
        registry.register(
            "webhook_backlog",
            "Webhook deliveries waiting to be made",
            webhook_backlog.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            inbox_waiters,
            tasks_claimed,
            dispatch_latency,
            platform_revenue,
            webhook_attempts,
            webhook_backlog,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

/// Records count and latency by matched route (never the raw path: ids would explode the
/// label set), and logs the cause of any 5xx, inside the request's span.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    if let Some(ErrorCause(cause)) = resp.extensions().get::<ErrorCause>() {
        tracing::error!(status, cause = %cause, "request failed");
    }
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels { method: method.clone(), path: path.clone() })
        .observe(start.elapsed().as_secs_f64());
    m.requests.get_or_create(&RequestLabels { method, path, status }).inc();
    resp
}
