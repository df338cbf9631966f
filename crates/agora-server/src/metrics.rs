//! The HTTP layer's metrics (request counts and latency by matched route), registered into
//! the application's registry; [`crate::edge`] records them and logs the hidden cause of
//! every 5xx once.

use std::time::Instant;

use agora_app::metrics::latency_histogram;
use axum::{extract::MatchedPath, http::Method, response::Response};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};

use crate::error::ErrorCause;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    path: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    path: String,
}

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    pub fn new(app: &agora_app::App) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let m = app.metrics();
        m.register("http_requests", "HTTP requests by matched path and status", requests.clone());
        m.register("http_request_duration_seconds", "HTTP request latency by matched path", latency.clone());
        Self { requests, latency }
    }

    /// Records a request's count and latency by matched route (never the raw path: ids
    /// would explode the label set; every unmatched path is `unmatched`, every invented
    /// method `other`), and logs the cause of any 5xx. Called by [`crate::edge`] when the
    /// answer is ready, inside the request's span.
    pub(crate) fn record(
        &self,
        method: &'static str,
        path: Option<&MatchedPath>,
        start: Instant,
        resp: &Response,
    ) {
        let status = resp.status().as_u16();
        if let Some(ErrorCause(cause)) = resp.extensions().get::<ErrorCause>() {
            tracing::error!(status, cause = %cause, "request failed");
        }
        let path = path.map_or("unmatched", MatchedPath::as_str).to_owned();
        let method = method.to_owned();
        self.latency
            .get_or_create(&RouteLabels { method: method.clone(), path: path.clone() })
            .observe(start.elapsed().as_secs_f64());
        self.requests.get_or_create(&RequestLabels { method, path, status }).inc();
    }
}

/// The method as a label: the standard methods by name, anything a client invents as
/// `other`, so that no request can add a series.
pub(crate) fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN.iter().find(|m| *m == method).map_or("other", Method::as_str)
}
