//! Operations endpoints outside `/api/v1`: health, readiness, metrics.

use agora_app::Admin;
use agora_client::types::Health;
use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use crate::{
    AppState,
    auth::{ClientIp, bearer},
    error::{ApiError, Result},
    extract::ok,
};

/// The process is up.
pub async fn healthz() -> Result<Response> {
    ok(&Health { status: "ok".to_owned(), backend: None })
}

/// The process can serve: its database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Response> {
    state.app.ready().await?;
    ok(&Health { status: "ready".to_owned(), backend: Some(state.app.backend().to_owned()) })
}

/// Prometheus text exposition, for the configured metrics token (`AGORA_METRICS_TOKEN`,
/// for a scraper) or an admin's credential; 401 for anyone else, 403 for other accounts.
pub async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(secret) = bearer(&headers) else {
        state.app.limits().check_ip(ip).map_err(ApiError::from)?;
        return Err(ApiError::unauthorized("metrics need the metrics token or an admin's credential"));
    };
    if !state.config.metrics_token.as_deref().is_some_and(|token| same_secret(secret, token)) {
        match state.app.authenticate(secret, ip).await? {
            Some(p) => {
                Admin::of(&p)?;
            }
            None => {
                state.app.limits().check_ip(ip).map_err(ApiError::from)?;
                return Err(ApiError::unauthorized("invalid, expired or revoked credentials"));
            }
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.app.render_metrics().await,
    )
        .into_response())
}

/// Compares two secrets by their SHA-256 digests, so the time taken says nothing about how
/// much of the token a guess got right.
fn same_secret(given: &str, expected: &str) -> bool {
    let digest = |s: &str| agora_core::credential::sha256_hex(&[s.as_bytes()]);
    digest(given) == digest(expected)
}
