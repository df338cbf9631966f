//! The live event stream (SPEC §7): `GET /events/stream`, Server-Sent Events of what the
//! caller may see, each with `id:` = its position in the event log. `Last-Event-ID` (the
//! header browsers send on reconnect, or the `last_event_id` query parameter) resumes after
//! that position with nothing lost and nothing repeated; without it the stream starts at
//! the end of the log.

use std::{convert::Infallible, time::Duration};

use agora_client::types::{self as t, ErrorEnvelope};
use agora_store::Event;
use axum::{
    extract::State,
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{self, KeepAlive, Sse},
    },
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Auth,
    error::{ApiError, Result},
    extract::ApiQuery,
};

/// How often an idle stream sends a comment, so proxies keep the connection open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    /// Resume after this position (for clients that cannot set `Last-Event-ID`).
    last_event_id: Option<String>,
}

fn frame(e: Event) -> sse::Event {
    let data = t::StreamEvent {
        seq: e.seq,
        id: e.id.to_string(),
        event_type: e.event_type.as_str().to_owned(),
        created_at: e.created_at.to_rfc3339(),
        data: e.payload,
    };
    let frame = sse::Event::default().id(e.seq.to_string()).event(e.event_type.as_str());
    match frame.json_data(&data) {
        Ok(f) => f,
        // Serialising a JSON value cannot fail; a comment keeps the stream well-formed.
        Err(_) => sse::Event::default().comment("unserialisable event"),
    }
}

/// Stream the caller's events as they commit: task changes, messages, payments, webhook
/// notices. Each SSE `id` is a log position; reconnect with `Last-Event-ID` to resume.
#[utoipa::path(get, path = "/events/stream", tag = "live",
    params(StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position")),
    responses(
        (status = 200, description = "`text/event-stream`; each event's data is a StreamEvent", content_type = "text/event-stream", body = t::StreamEvent),
        (status = 422, description = "`VALIDATION_ERROR`: a Last-Event-ID that is not a position", body = ErrorEnvelope),
    ))]
async fn stream(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response> {
    let resume =
        headers.get("last-event-id").map(|v| v.to_str().unwrap_or("x").to_owned()).or(q.last_event_id);
    let resume = match resume {
        Some(raw) => Some(raw.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid("Last-Event-ID", "must be a position from an earlier event's id")
        })?),
        None => None,
    };
    let rx = state.app.event_stream(&p, resume).await?;
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(frame(e)), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}
