//! Dialects (SPEC §10): each seed platform's API, verbatim, under its own prefix.
//!
//! A dialect only translates. Its handlers parse the platform's requests into the
//! application's inputs, call the same use cases the native handlers call, and shape the
//! answers as the platform's document shows them; every rule stays in `agora_app`. The
//! request path is the native one (authentication, idempotency, rate limits, request ids,
//! metrics). What differs per dialect is a [`Dialect`] descriptor:
//!
//! - its prefix;
//! - a key alias: a platform whose keys look different (AgentFlow's `af_live_…`) may
//!   present an Agora key under its own prefix;
//! - its error envelope: every error response (from the gate, an extractor, a use case, an
//!   unknown route, a panic) carries an [`ErrorInfo`] in its extensions, and the dialect
//!   re-renders it in its own body and status, without parsing ours;
//! - its vocabularies (status and sort words), as [`crate::vocab::Vocabulary`] tables in
//!   its module.

pub mod agentflow;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state, map_response},
    response::Response,
};
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{AppState, auth, error::ErrorInfo, idem};

/// What makes a dialect (see the module docs).
#[derive(Debug)]
pub struct Dialect {
    /// Where it is served, e.g. `/compat/agentflow`.
    pub prefix: &'static str,
    /// The platform's API key prefix, accepted as an alias of `ak_live_`.
    pub key_alias: Option<&'static str>,
    /// The platform's status for an error Agora answers with `status`.
    pub status: fn(StatusCode) -> StatusCode,
    /// The platform's error body for an error.
    pub error_body: fn(&ErrorInfo) -> Value,
}

impl Dialect {
    /// The dialect's routes on the native request path, with its key alias, its errors
    /// (unknown routes and methods, and panics, included) in its own envelope.
    pub fn mount(&'static self, routes: Router<AppState>, state: &AppState) -> Router<AppState> {
        let routes = routes
            .fallback(crate::not_found)
            .method_not_allowed_fallback(crate::method_not_allowed)
            .layer(from_fn_with_state(state.clone(), idem::middleware))
            .layer(from_fn_with_state(state.clone(), auth::gate))
            .layer(from_fn_with_state(self.key_alias, key_alias))
            // Inside the re-rendering: a panic's 500 is answered in the dialect's envelope.
            .layer(CatchPanicLayer::custom(crate::panic_response))
            .layer(map_response(move |resp: Response| async move { self.rerender(resp) }));
        Router::new().nest(self.prefix, routes)
    }

    /// Replaces the body of an error response with the dialect's, keeping its headers
    /// (`Retry-After`, `WWW-Authenticate`).
    fn rerender(&self, resp: Response) -> Response {
        let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else { return resp };
        let (mut parts, _) = resp.into_parts();
        parts.status = (self.status)(parts.status);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Response::from_parts(parts, axum::body::Body::from((self.error_body)(&info).to_string()))
    }
}

/// Every dialect, each under its prefix.
pub fn router(state: &AppState) -> Router<AppState> {
    agentflow::DIALECT.mount(agentflow::routes(), state)
}

/// Lets a client present an Agora API key (`ak_live_…`) under its platform's prefix.
async fn key_alias(State(alias): State<Option<&'static str>>, mut req: Request, next: Next) -> Response {
    if let Some(prefix) = alias {
        let rewritten = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, token)| token.trim().strip_prefix(prefix))
            .and_then(|rest| HeaderValue::from_str(&format!("Bearer ak_live_{rest}")).ok());
        if let Some(value) = rewritten {
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use agora_app::testing::{Backend, TestDb};
    use axum::{body::Body, routing::get};
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;

    /// A dialect whose envelope is easy to tell from the native one.
    static TEST_DIALECT: Dialect = Dialect {
        prefix: "/compat/test",
        key_alias: None,
        status: |s| if s == StatusCode::NOT_FOUND { StatusCode::GONE } else { s },
        error_body: |info| json!({"ok": false, "err": info.code}),
    };

    async fn answer(path: &str) -> (StatusCode, Value) {
        let db = TestDb::create(Backend::Sqlite).await;
        let app = agora_app::App::new(db.store(), crate::Config::default().app_settings());
        let state = AppState::new(app, crate::Config::default());
        async fn boom() -> &'static str {
            panic!("a bug in a handler")
        }
        let routes = Router::new().route("/boom", get(boom));
        let router = TEST_DIALECT.mount(routes, &state).with_state(state);
        let resp = router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_panic_on_a_dialect_route_answers_in_the_dialects_envelope() {
        assert_eq!(
            answer("/compat/test/boom").await,
            (StatusCode::INTERNAL_SERVER_ERROR, json!({"ok": false, "err": "INTERNAL_ERROR"}))
        );
    }

    #[tokio::test]
    async fn unknown_dialect_routes_answer_in_its_envelope_and_status() {
        assert_eq!(
            answer("/compat/test/nowhere").await,
            (StatusCode::GONE, json!({"ok": false, "err": "NOT_FOUND"}))
        );
    }
}
