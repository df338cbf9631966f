//! The error envelope of SPEC §6, produced in one place.
//!
//! Every failure a handler can meet becomes an [`ApiError`] with a stable upper-snake code.
//! A 5xx answers with a generic message; its real cause travels in the response's extensions
//! to the logging middleware, which logs it once with the request id.

use agora_client::types::{ErrorBody, ErrorEnvelope};
use agora_core::Invalid;
use agora_store::{Conflict, Refusal, StoreError};
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Stable error codes. Clients match on these, so they never change meaning.
pub mod code {
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    pub const ACCOUNT_BANNED: &str = "ACCOUNT_BANNED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    pub const EMAIL_TAKEN: &str = "EMAIL_TAKEN";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    pub const NOT_A_SESSION: &str = "NOT_A_SESSION";
    pub const CANNOT_BAN_SELF: &str = "CANNOT_BAN_SELF";
    pub const INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";
    pub const QUOTA_EXHAUSTED: &str = "QUOTA_EXHAUSTED";
    pub const ALREADY_SETTLED: &str = "ALREADY_SETTLED";
    pub const DUPLICATE: &str = "DUPLICATE";
    pub const AGENT_OFFLINE: &str = "AGENT_OFFLINE";
    pub const SERVICE_OFFLINE: &str = "SERVICE_OFFLINE";
    pub const OWN_SERVICE: &str = "OWN_SERVICE";
    pub const CHAT_TURN_PENDING: &str = "CHAT_TURN_PENDING";
    pub const CLAIM_NOT_OVERDUE: &str = "CLAIM_NOT_OVERDUE";
    pub const CLAIM_HAS_DELIVERY: &str = "CLAIM_HAS_DELIVERY";
    pub const NOT_AN_AGENT: &str = "NOT_AN_AGENT";
    pub const WEBHOOK_URL_NOT_ALLOWED: &str = "WEBHOOK_URL_NOT_ALLOWED";
    pub const WEBHOOK_DISABLED: &str = "WEBHOOK_DISABLED";
    pub const DELIVERY_IN_FLIGHT: &str = "DELIVERY_IN_FLIGHT";
}

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

    pub fn banned() -> Self {
        Self::new(StatusCode::FORBIDDEN, code::ACCOUNT_BANNED, "this account is banned")
    }

    /// A single invalid field (`path` may be empty for the whole body).
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Invalid::field(path, message).into()
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Conflict::Email) => Self::new(
                StatusCode::CONFLICT,
                code::EMAIL_TAKEN,
                "an account with this email already exists",
            ),
            // Reached only if a handler forgot to route its commit through `Idempotency`.
            StoreError::Conflict(Conflict::IdempotencyKey) => Self::new(
                StatusCode::CONFLICT,
                code::IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was already used",
            ),
            StoreError::Conflict(Conflict::Duplicate) => Self::new(
                StatusCode::CONFLICT,
                code::DUPLICATE,
                "this was already done for the same reference",
            ),
            StoreError::Refused(Refusal::InsufficientFunds { .. }) => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                code::INSUFFICIENT_FUNDS,
                "the available balance does not cover this amount",
            ),
            StoreError::Refused(Refusal::QuotaExhausted) => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                code::QUOTA_EXHAUSTED,
                "no brief units are left this month; they renew on the 1st, or can be bought",
            ),
            StoreError::Refused(Refusal::HoldExhausted { remaining }) => Self::new(
                StatusCode::CONFLICT,
                code::ALREADY_SETTLED,
                "the escrow for this work was already settled",
            )
            .with_details(json!({ "remaining": remaining })),
            StoreError::Refused(Refusal::InvalidAmount(why)) => Self::invalid("amount", why),
            StoreError::Refused(Refusal::Task(e)) => Self::new(
                StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.code,
                e.message,
            ),
            StoreError::Refused(Refusal::ClaimNotOverdue) => Self::new(
                StatusCode::BAD_REQUEST,
                code::CLAIM_NOT_OVERDUE,
                "the claim can be taken back only after its delivery time has run out",
            ),
            StoreError::Refused(Refusal::ClaimDelivered) => Self::new(
                StatusCode::BAD_REQUEST,
                code::CLAIM_HAS_DELIVERY,
                "work was delivered on this claim; accept it or ask for a revision",
            ),
            StoreError::Refused(Refusal::EndpointDisabled) => Self::new(
                StatusCode::CONFLICT,
                code::WEBHOOK_DISABLED,
                "the webhook endpoint is disabled; enable it (PATCH active: true) before redelivering",
            ),
            StoreError::Refused(Refusal::DeliveryInFlight) => Self::new(
                StatusCode::CONFLICT,
                code::DELIVERY_IN_FLIGHT,
                "an attempt at this delivery is in flight; redeliver once it has finished",
            ),
            StoreError::Refused(Refusal::Invalid(inv)) => inv.into(),
            StoreError::NotFound => Self::not_found("resource"),
            StoreError::Backend(cause) => Self::internal(cause),
        }
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
