//! Our own extractors, so that every malformed request is answered in our envelope (never
//! with axum's plain-text rejections), and the response helpers that wrap data in it.

use agora_client::types::{Envelope, Pagination};
use agora_core::Invalid;
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    AppState,
    error::{ApiError, Result},
};

/// A JSON body. Syntax errors, wrong types, missing and unknown fields all become
/// 422 `VALIDATION_ERROR` with the failing field's path; an empty body reads as `{}`;
/// an over-long one is 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let watch = req.extensions().get::<std::sync::Arc<crate::conn::BodyWatch>>().cloned();
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(state.config.body_limit_bytes)
            } else if watch.is_some_and(|w| w.timed_out()) {
                ApiError::request_timeout(state.config.body_read_timeout_seconds)
            } else {
                ApiError::invalid("", rej.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson).map_err(ApiError::from)
    }
}

/// Deserialises `bytes`, naming the failing field on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Invalid> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return Invalid::field("", format!("malformed JSON: {inner}"));
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        Invalid::field(path, message)
    })?;
    de.end().map_err(|e| Invalid::field("", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Query parameters; bad ones are 422 `VALIDATION_ERROR`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|rej| ApiError::invalid("query", rej.body_text()))
    }
}

/// A path parameter (an id); one that cannot be read (not UTF-8 once percent-decoded) is
/// 422 `VALIDATION_ERROR` in the envelope, not axum's plain-text 400.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|rej| ApiError::invalid("path", rej.body_text()))
    }
}

/// A validated page request: `page` from 1, `limit` 1–100 (default 20).
#[derive(Debug, Clone, Copy)]
pub struct PageParams {
    pub page: u64,
    pub limit: u64,
}

impl PageParams {
    pub const DEFAULT_LIMIT: u64 = 20;
    pub const MAX_LIMIT: u64 = 100;

    pub fn parse(page: Option<u64>, limit: Option<u64>) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if page == 0 || page > 1_000_000 {
            inv.push("page", "must be between 1 and 1000000");
        }
        if limit == 0 || limit > Self::MAX_LIMIT {
            inv.push("limit", format!("must be between 1 and {}", Self::MAX_LIMIT));
        }
        inv.finish(|| Self { page, limit })
    }

    pub fn offset(&self) -> u64 {
        (self.page - 1) * self.limit
    }

    pub fn pagination(&self, total: u64) -> Pagination {
        Pagination { page: self.page, limit: self.limit, total, has_more: self.page * self.limit < total }
    }
}

/// The success envelope as a JSON string (what idempotency records store).
pub fn envelope_json<T: Serialize>(data: &T, pagination: Option<Pagination>) -> Result<String> {
    serde_json::to_string(&Envelope { success: true, data, pagination }).map_err(ApiError::internal)
}

/// A response whose body is already-serialised JSON.
pub fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// 200 with `data` in the envelope.
pub fn ok<T: Serialize>(data: &T) -> Result<Response> {
    Ok(json_response(StatusCode::OK, envelope_json(data, None)?))
}

/// 200 with a page of `items` and its pagination.
pub fn page<T: Serialize>(items: &[T], params: PageParams, total: u64) -> Result<Response> {
    Ok(json_response(StatusCode::OK, envelope_json(&items, Some(params.pagination(total)))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        list: Option<Vec<u32>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn path_of(body: &str) -> String {
        parse_json::<Outer>(body.as_bytes()).unwrap_err().0[0].path.clone()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(path_of(r#"{"name": 5}"#), "name");
        assert_eq!(path_of(r#"{"name": "a", "inner": {"n": "x"}}"#), "inner.n");
        assert_eq!(path_of(r#"{"name": "a", "list": [1, "x"]}"#), "list[1]");
        assert_eq!(path_of(r#"{"name": "a", "bogus": 1}"#), "bogus");
        assert_eq!(path_of(r#"{"name": "a", "inner": {"n": 1, "zz": 2}}"#), "inner.zz");
        assert_eq!(path_of(r#"{}"#), "");
        assert_eq!(path_of(r#"{"name": "#), "");
        assert_eq!(path_of(r#"{"name": "a"} trailing"#), "");
    }

    #[test]
    fn pages_are_bounded() {
        assert!(PageParams::parse(Some(0), None).is_err());
        assert!(PageParams::parse(None, Some(101)).is_err());
        let p = PageParams::parse(Some(3), Some(10)).unwrap();
        assert_eq!(p.offset(), 20);
        assert!(p.pagination(31).has_more);
        assert!(!p.pagination(30).has_more);
    }
}
