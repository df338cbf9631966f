//! In-app notifications (SPEC §7): the event log as each recipient reads it — what others
//! did that concerns them (their own actions and progress reports make none).

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::NotificationId;
use agora_store::Notification;
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::{
    AppState,
    auth::Auth,
    error::Result,
    extract::{ApiPath, ApiQuery, PageParams, envelope_json, json_response, ok},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

fn view(n: &Notification) -> t::Notification {
    t::Notification {
        id: n.id.to_string(),
        kind: n.kind.as_str().to_owned(),
        title: n.title.clone(),
        message: n.message.clone(),
        link: n.link.clone(),
        read: n.read_at.is_some(),
        created_at: n.created_at.to_rfc3339(),
    }
}

/// The caller's notifications, newest first, with how many are unread.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(t::NotificationQuery),
    responses(
        (status = 200, description = "A page of notifications and the unread count", body = Envelope<t::NotificationList>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_notifications(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::NotificationQuery>,
) -> Result<Response> {
    let params = PageParams::parse(q.page, q.limit)?;
    let unread_only = q.unread_only.unwrap_or(false);
    let (found, unread_count) =
        state.app.notifications(&p, unread_only, params.offset(), params.limit).await?;
    let list = t::NotificationList { items: found.items.iter().map(view).collect(), unread_count };
    Ok(json_response(StatusCode::OK, envelope_json(&list, Some(params.pagination(found.total)))?))
}

/// Mark one notification read (reading it again changes nothing).
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "Notification id (`ntf_…`)")),
    responses(
        (status = 200, description = "Marked", body = Envelope<t::MarkedRead>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn mark_read(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, NotificationId::parse, "notification")?;
    let marked = state.app.mark_read(&p, Some(&id)).await?.commit().await?;
    ok(&t::MarkedRead { marked })
}

/// Mark every unread notification read.
#[utoipa::path(post, path = "/notifications/read-all", tag = "notifications",
    responses((status = 200, description = "How many were unread", body = Envelope<t::MarkedRead>)))]
async fn mark_all_read(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    let marked = state.app.mark_read(&p, None).await?.commit().await?;
    ok(&t::MarkedRead { marked })
}
