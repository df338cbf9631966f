//! Operations endpoints outside `/api/v1`: health, readiness, metrics.

use agora_client::types::Health;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{
    AppState,
    error::{ApiError, Result},
    extract::ok,
};

/// The process is up.
pub async fn healthz() -> Result<Response> {
    ok(&Health { status: "ok".to_owned(), backend: None })
}

/// The process can serve: its database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Response> {
    state.store.ping().await.map_err(ApiError::unavailable)?;
    ok(&Health { status: "ready".to_owned(), backend: Some(state.store.backend().to_owned()) })
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Ledger totals are read at scrape time: the ledger, not a process counter, is the truth.
    match state.store.revenue().await {
        Ok(totals) => {
            for (currency, amount) in totals {
                let labels = crate::metrics::CurrencyLabels { currency: currency.to_string() };
                state.metrics.platform_revenue.get_or_create(&labels).set(amount);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read revenue from the ledger"),
    }
    match state.store.pending_deliveries().await {
        Ok(n) => {
            state.metrics.webhook_backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count pending webhook deliveries"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
        .into_response()
}
