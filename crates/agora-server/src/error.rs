//! The error envelope of SPEC §6, produced in one place.
//!
//! Every failure a handler can meet becomes an [`ApiError`] with a stable upper-snake code.
//! A 5xx answers with a generic message; its real cause travels in the response's extensions
//! to the logging middleware, which logs it once with the request id.

use agora_client::types::{ErrorBody, ErrorEnvelope};
use agora_core::{Invalid, error::ErrorKind};
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The stable error codes, defined once in the application layer.
pub use agora_app::error::code;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// For 5xx: what really went wrong (logged, never sent).
    cause: Option<String>,
    retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// The hidden cause of a 5xx, handed from the response to the logging middleware.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

/// What an error response says, kept in its extensions so that a dialect (`crate::compat`)
/// can say the same in its own error body without parsing ours.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Value::Null, cause: None, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, format!("{what} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code::FORBIDDEN, message)
    }

    /// A single invalid field (`path` may be empty for the whole body).
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Invalid::field(path, message).into()
    }

    pub fn request_timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            code::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {secs} s"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e =
            Self::new(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED, "too many requests; slow down")
                .with_details(json!({ "retry_after_seconds": retry_after_secs }));
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// An unexpected failure: the client sees a generic 500, the log sees `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL_ERROR, "internal error");
        e.cause = Some(cause.to_string());
        e
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let mut e =
            Self::new(StatusCode::SERVICE_UNAVAILABLE, code::SERVICE_UNAVAILABLE, "service unavailable");
        e.cause = Some(cause.to_string());
        e
    }
}

impl From<Invalid> for ApiError {
    fn from(inv: Invalid) -> Self {
        let message =
            if inv.0.len() == 1 { format!("invalid input: {inv}") } else { "invalid input".to_owned() };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code::VALIDATION_ERROR, message)
            .with_details(json!({ "errors": inv.0 }))
    }
}

/// The one mapping from the kinds of refusal to HTTP statuses.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<agora_app::Error> for ApiError {
    fn from(e: agora_app::Error) -> Self {
        let mut out = Self::new(status_of(e.kind()), e.code(), e.message()).with_details(e.details());
        out.cause = e.cause().map(str::to_owned);
        if let agora_app::Error::RateLimited { retry_after_secs } = e {
            out.retry_after = Some(retry_after_secs);
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = ErrorInfo { code: self.code, message: self.message, details: self.details };
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: info.code.to_owned(),
                message: info.message.clone(),
                details: info.details.clone(),
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(info);
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(cause) = self.cause {
            resp.extensions_mut().insert(ErrorCause(cause));
        }
        resp
    }
}
