//! Operations endpoints outside `/api/v1`: health, readiness, metrics.

use agora_client::types::Health;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{AppState, error::Result, extract::ok};

/// The process is up.
pub async fn healthz() -> Result<Response> {
    ok(&Health { status: "ok".to_owned(), backend: None })
}

/// The process can serve: its database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Response> {
    state.app.ready().await?;
    ok(&Health { status: "ready".to_owned(), backend: Some(state.app.backend().to_owned()) })
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.app.render_metrics().await)
        .into_response()
}
