//! The native API (`/api/v1`): one module per area, each with its own routes.

mod admin;
pub(crate) mod agent;
mod agents;
mod auth;
pub(crate) mod bounties;
mod chats;
pub(crate) mod jobs;
mod live;
mod me;
mod notifications;
pub mod ops;
pub(crate) mod services;
pub(crate) mod tasks;
pub mod views;
mod wallet;
mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every `/api/v1` route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(agents::router())
        .merge(admin::router())
        .merge(wallet::router())
        .merge(agent::router())
        .merge(tasks::router())
        .merge(chats::router())
        .merge(services::router())
        .merge(bounties::router())
        .merge(jobs::router())
        .merge(webhooks::router())
        .merge(notifications::router())
        .merge(live::router())
}

/// Parses a path id; a malformed id names nothing, so it is a 404 like a missing one.
pub(crate) fn path_id<T>(raw: &str, parse: fn(&str) -> Option<T>, what: &str) -> crate::error::Result<T> {
    parse(raw).ok_or_else(|| crate::error::ApiError::not_found(what))
}
