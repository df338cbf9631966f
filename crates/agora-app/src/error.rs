//! The application's one error type: every use case fails with an [`Error`] whose kind,
//! stable code, message and details a frontend renders in its own envelope. Domain
//! refusals are [`Refusal`]s; storage failures are internal and never shown.

use agora_core::{Invalid, error::ErrorKind, task::TaskError};
use agora_store::{Conflict, StoreError};
use serde_json::{Value, json};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable error codes. Clients match on these, so they never change meaning.
pub mod code {
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    pub const ACCOUNT_BANNED: &str = "ACCOUNT_BANNED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    pub const EMAIL_TAKEN: &str = "EMAIL_TAKEN";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    pub const NOT_A_SESSION: &str = "NOT_A_SESSION";
    pub const CANNOT_BAN_SELF: &str = "CANNOT_BAN_SELF";
    pub const INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";
    pub const BALANCE_OUT_OF_RANGE: &str = "BALANCE_OUT_OF_RANGE";
    pub const QUOTA_EXHAUSTED: &str = "QUOTA_EXHAUSTED";
    pub const ALREADY_SETTLED: &str = "ALREADY_SETTLED";
    pub const DUPLICATE: &str = "DUPLICATE";
    pub const AGENT_OFFLINE: &str = "AGENT_OFFLINE";
    pub const SERVICE_OFFLINE: &str = "SERVICE_OFFLINE";
    pub const OWN_SERVICE: &str = "OWN_SERVICE";
    pub const CHAT_TURN_PENDING: &str = "CHAT_TURN_PENDING";
    pub const CLAIM_NOT_OVERDUE: &str = "CLAIM_NOT_OVERDUE";
    pub const CLAIM_HAS_DELIVERY: &str = "CLAIM_HAS_DELIVERY";
    pub const REVISION_NOT_OVERDUE: &str = "REVISION_NOT_OVERDUE";
    pub const ASSIGNEE_ACTIVE: &str = "ASSIGNEE_ACTIVE";
    pub const NOT_AN_AGENT: &str = "NOT_AN_AGENT";
    pub const WEBHOOK_URL_NOT_ALLOWED: &str = "WEBHOOK_URL_NOT_ALLOWED";
    pub const WEBHOOK_DISABLED: &str = "WEBHOOK_DISABLED";
    pub const DELIVERY_IN_FLIGHT: &str = "DELIVERY_IN_FLIGHT";
    pub const PING_NOT_REDELIVERED: &str = "PING_NOT_REDELIVERED";
    pub const DUPLICATE_BID: &str = "DUPLICATE_BID";
    pub const BID_LIMIT_REACHED: &str = "BID_LIMIT_REACHED";
    pub const JOB_NOT_OPEN: &str = "JOB_NOT_OPEN";
    pub const CANNOT_BID_OWN_JOB: &str = "CANNOT_BID_OWN_JOB";
    pub const EXECUTOR_PREFERENCE_MISMATCH: &str = "EXECUTOR_PREFERENCE_MISMATCH";
    pub const BID_NOT_PENDING: &str = "BID_NOT_PENDING";
    pub const COUNTER_ALREADY_MADE: &str = "COUNTER_ALREADY_MADE";
    pub const NO_COUNTER_OFFER: &str = "NO_COUNTER_OFFER";
    pub const JOB_HAS_HIRES: &str = "JOB_HAS_HIRES";
    pub const JOB_LIMIT_BELOW_CURRENT: &str = "JOB_LIMIT_BELOW_CURRENT";
    pub const AWARDED_AT_DEADLINE: &str = "AWARDED_AT_DEADLINE";
}

/// Why a use case refused a well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    InvalidCredentials,
    AccountBanned,
    /// The actor may not do this (the message says what).
    Forbidden(&'static str),
    AdminOnly,
    NotAnAgent,
    EmailTaken,
    IdempotencyKeyReused,
    CannotBanSelf,
    NotASession,
    InsufficientFunds,
    /// A balance would grow past what an `i64` of minor units holds.
    BalanceOutOfRange,
    QuotaExhausted,
    /// The escrow was settled already; what is left of it.
    AlreadySettled {
        remaining: i64,
    },
    /// The same reference was used twice where it must be unique.
    Duplicate,
    AgentOffline,
    ServiceOffline,
    /// Running a service of one's own party (oneself, one's owner, one's agents).
    OwnService,
    /// Claiming a bounty of one's own party.
    OwnTask,
    ChatTurnPending {
        task_id: String,
    },
    ClaimNotOverdue,
    ClaimHasDelivery,
    /// A revision's deadline has not passed yet.
    RevisionNotOverdue {
        revision_due_at: String,
    },
    /// Delivered work can be rejected only once its worker is banned.
    AssigneeActive,
    WebhookUrlNotAllowed {
        reason: String,
    },
    WebhookDisabled,
    DeliveryInFlight,
    /// A ping is sent once; another is a new ping.
    PingNotRedelivered,
    /// One bid per bidder per job.
    DuplicateBid,
    BidLimitReached {
        job_id: String,
        limit: u32,
        current: i64,
    },
    /// The job takes no bids or hires: closed, cancelled, filled, or past its deadline.
    JobNotOpen,
    /// Bidding on (or being invited to) a job of one's own party.
    OwnJob,
    /// The job wants humans only or agents only, and the bidder is the other kind.
    ExecutorPreferenceMismatch {
        executor_preference: &'static str,
    },
    /// The bid was already accepted, rejected or withdrawn.
    BidNotPending,
    /// A bid is countered at most once.
    CounterAlreadyMade,
    /// There is no counter-offer waiting for an answer.
    NoCounterOffer,
    /// A job with hires is closed, not cancelled: the hires are funded work.
    JobHasHires {
        hired: i64,
    },
    /// A reverse auction hires its lowest bids at its deadline, never by hand.
    AwardedAtDeadline,
    /// A patch would lower `bid_limit` or `max_workers` below what the job already has.
    JobLimitBelowCurrent {
        field: &'static str,
        current: i64,
    },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        use code::*;
        match self {
            Self::InvalidCredentials => INVALID_CREDENTIALS,
            Self::AccountBanned => ACCOUNT_BANNED,
            Self::Forbidden(_) | Self::AdminOnly => FORBIDDEN,
            Self::NotAnAgent => NOT_AN_AGENT,
            Self::EmailTaken => EMAIL_TAKEN,
            Self::IdempotencyKeyReused => IDEMPOTENCY_KEY_REUSED,
            Self::CannotBanSelf => CANNOT_BAN_SELF,
            Self::NotASession => NOT_A_SESSION,
            Self::InsufficientFunds => INSUFFICIENT_FUNDS,
            Self::BalanceOutOfRange => BALANCE_OUT_OF_RANGE,
            Self::QuotaExhausted => QUOTA_EXHAUSTED,
            Self::AlreadySettled { .. } => ALREADY_SETTLED,
            Self::Duplicate => DUPLICATE,
            Self::AgentOffline => AGENT_OFFLINE,
            Self::ServiceOffline => SERVICE_OFFLINE,
            Self::OwnService => OWN_SERVICE,
            Self::OwnTask => agora_core::task::codes::CANNOT_CLAIM_OWN_TASK,
            Self::ChatTurnPending { .. } => CHAT_TURN_PENDING,
            Self::ClaimNotOverdue => CLAIM_NOT_OVERDUE,
            Self::ClaimHasDelivery => CLAIM_HAS_DELIVERY,
            Self::RevisionNotOverdue { .. } => REVISION_NOT_OVERDUE,
            Self::AssigneeActive => ASSIGNEE_ACTIVE,
            Self::WebhookUrlNotAllowed { .. } => WEBHOOK_URL_NOT_ALLOWED,
            Self::WebhookDisabled => WEBHOOK_DISABLED,
            Self::DeliveryInFlight => DELIVERY_IN_FLIGHT,
            Self::PingNotRedelivered => PING_NOT_REDELIVERED,
            Self::DuplicateBid => DUPLICATE_BID,
            Self::BidLimitReached { .. } => BID_LIMIT_REACHED,
            Self::JobNotOpen => JOB_NOT_OPEN,
            Self::OwnJob => CANNOT_BID_OWN_JOB,
            Self::ExecutorPreferenceMismatch { .. } => EXECUTOR_PREFERENCE_MISMATCH,
            Self::BidNotPending => BID_NOT_PENDING,
            Self::CounterAlreadyMade => COUNTER_ALREADY_MADE,
            Self::NoCounterOffer => NO_COUNTER_OFFER,
            Self::JobHasHires { .. } => JOB_HAS_HIRES,
            Self::JobLimitBelowCurrent { .. } => JOB_LIMIT_BELOW_CURRENT,
            Self::AwardedAtDeadline => AWARDED_AT_DEADLINE,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidCredentials => ErrorKind::Unauthenticated,
            Self::AccountBanned
            | Self::Forbidden(_)
            | Self::AdminOnly
            | Self::NotAnAgent
            | Self::OwnService
            | Self::OwnTask
            | Self::OwnJob
            | Self::ExecutorPreferenceMismatch { .. } => ErrorKind::Forbidden,
            Self::EmailTaken
            | Self::IdempotencyKeyReused
            | Self::AlreadySettled { .. }
            | Self::Duplicate
            | Self::ChatTurnPending { .. }
            | Self::WebhookDisabled
            | Self::DeliveryInFlight
            | Self::DuplicateBid
            | Self::CounterAlreadyMade
            | Self::BalanceOutOfRange => ErrorKind::Conflict,
            Self::CannotBanSelf
            | Self::NotASession
            | Self::ClaimNotOverdue
            | Self::ClaimHasDelivery
            | Self::RevisionNotOverdue { .. }
            | Self::AssigneeActive
            | Self::PingNotRedelivered
            | Self::BidLimitReached { .. }
            | Self::JobNotOpen
            | Self::BidNotPending
            | Self::NoCounterOffer
            | Self::JobHasHires { .. }
            | Self::JobLimitBelowCurrent { .. }
            | Self::AwardedAtDeadline => ErrorKind::BadRequest,
            Self::InsufficientFunds | Self::QuotaExhausted => ErrorKind::PaymentRequired,
            Self::AgentOffline | Self::ServiceOffline => ErrorKind::Unavailable,
            Self::WebhookUrlNotAllowed { .. } => ErrorKind::Invalid,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::InvalidCredentials => "email or password is wrong".into(),
            Self::AccountBanned => "this account is banned".into(),
            Self::Forbidden(why) => (*why).into(),
            Self::AdminOnly => "admin role required".into(),
            Self::NotAnAgent => "only agent accounts have an inbox".into(),
            Self::EmailTaken => "an account with this email already exists".into(),
            Self::IdempotencyKeyReused => "this Idempotency-Key was already used with a different request".into(),
            Self::CannotBanSelf => "an admin cannot ban itself".into(),
            Self::NotASession => {
                "logout ends a login session; to stop an API key, revoke it with DELETE /api/v1/me/keys/{id}".into()
            }
            Self::InsufficientFunds => "the available balance does not cover this amount".into(),
            Self::BalanceOutOfRange => {
                "a balance would grow past the largest amount the ledger holds; nothing was changed".into()
            }
            Self::QuotaExhausted => {
                "no brief units are left this month; they renew on the 1st, or can be bought".into()
            }
            Self::AlreadySettled { .. } => "the escrow for this work was already settled".into(),
            Self::Duplicate => "this was already done for the same reference".into(),
            Self::AgentOffline | Self::ServiceOffline => {
                "the agent is offline and takes no new work; try again when it is online".into()
            }
            Self::OwnService => "you cannot run your own service, or one of your own party's".into(),
            Self::OwnTask => "the poster of a bounty, its owner and its agents cannot claim it".into(),
            Self::ChatTurnPending { .. } => "the previous message is still waiting for the agent's reply".into(),
            Self::ClaimNotOverdue => "the claim can be taken back only after its delivery time has run out".into(),
            Self::ClaimHasDelivery => "work was delivered on this claim; accept it or ask for a revision".into(),
            Self::RevisionNotOverdue { .. } => {
                "the revision is still within its deadline; it can be cancelled once the deadline has passed".into()
            }
            Self::AssigneeActive => {
                "delivered work can be rejected only when its worker has been banned; ask for a revision instead"
                    .into()
            }
            Self::WebhookUrlNotAllowed { reason } => format!("webhook URL not allowed: {reason}"),
            Self::WebhookDisabled => {
                "the webhook endpoint is disabled; enable it (PATCH active: true) before redelivering".into()
            }
            Self::DeliveryInFlight => "an attempt at this delivery is in flight; redeliver once it has finished".into(),
            Self::PingNotRedelivered => "a ping is sent once; send another with POST /webhooks/{id}/ping".into(),
            Self::DuplicateBid => "you already have a bid on this job; withdraw it or wait for an answer".into(),
            Self::BidLimitReached { limit, .. } => format!("this job takes at most {limit} bids and has them"),
            Self::JobNotOpen => "the job is not open for bids".into(),
            Self::OwnJob => {
                "a job's requester, its owner and its agents cannot bid on it or be invited to it".into()
            }
            Self::ExecutorPreferenceMismatch { executor_preference } => {
                format!("this job's executor preference is {executor_preference}")
            }
            Self::BidNotPending => "the bid was already accepted, rejected or withdrawn".into(),
            Self::CounterAlreadyMade => "a bid can be countered once, and this one was".into(),
            Self::NoCounterOffer => "there is no counter-offer waiting for an answer on this bid".into(),
            Self::JobHasHires { .. } => "the job has hires (funded work); close it instead of cancelling".into(),
            Self::JobLimitBelowCurrent { field, current } => {
                format!("{field} cannot go below what the job already has ({current})")
            }
            Self::AwardedAtDeadline => "a reverse auction hires its lowest bids by itself at its deadline".into(),
        }
    }

    pub fn details(&self) -> Value {
        match self {
            Self::AlreadySettled { remaining } => json!({ "remaining": remaining }),
            Self::ChatTurnPending { task_id } => json!({ "task_id": task_id }),
            Self::RevisionNotOverdue { revision_due_at } => json!({ "revision_due_at": revision_due_at }),
            Self::WebhookUrlNotAllowed { reason } => json!({ "reason": reason }),
            Self::BidLimitReached { job_id, limit, current } => {
                json!({ "job_id": job_id, "bid_limit": limit, "current_bids": current })
            }
            Self::ExecutorPreferenceMismatch { executor_preference } => {
                json!({ "executor_preference": executor_preference })
            }
            Self::JobHasHires { hired } => json!({ "hired_count": hired }),
            Self::JobLimitBelowCurrent { field, current } => json!({ "field": field, "current": current }),
            _ => Value::Null,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such object, or not one the actor may see.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid input: {0}")]
    Invalid(Invalid),
    /// No credentials, or ones that name nobody.
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{}", .0.message())]
    Refused(Refusal),
    /// The task's state machine refused the command.
    #[error("{}", .0.message)]
    Task(TaskError),
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Something this needs is not running; the cause is for logs.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Something failed that the client cannot fix; the cause is for logs.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::Refused(r) => r.kind(),
            Self::Task(e) => e.kind,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => code::NOT_FOUND,
            Self::Invalid(_) => code::VALIDATION_ERROR,
            Self::Unauthenticated(_) => code::UNAUTHORIZED,
            Self::Refused(r) => r.code(),
            Self::Task(e) => e.code,
            Self::RateLimited { .. } => code::RATE_LIMITED,
            Self::Unavailable(_) => code::SERVICE_UNAVAILABLE,
            Self::Internal(_) => code::INTERNAL_ERROR,
        }
    }

    /// What a client is told; never the cause of a 5xx.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid(inv) if inv.0.len() == 1 => format!("invalid input: {inv}"),
            Self::Invalid(_) => "invalid input".into(),
            Self::RateLimited { .. } => "too many requests; slow down".into(),
            Self::Unavailable(_) => "service unavailable".into(),
            Self::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    pub fn details(&self) -> Value {
        match self {
            Self::Invalid(inv) => json!({ "errors": inv.0 }),
            Self::Refused(r) => r.details(),
            Self::RateLimited { retry_after_secs } => json!({ "retry_after_seconds": retry_after_secs }),
            _ => Value::Null,
        }
    }

    /// The hidden cause of a 5xx, for logs.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Self::Unavailable(c) | Self::Internal(c) => Some(c),
            _ => None,
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// A single invalid field (`path` may be empty for the whole input).
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::Invalid(Invalid::field(path, message))
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

impl From<Invalid> for Error {
    fn from(inv: Invalid) -> Self {
        Self::Invalid(inv)
    }
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Self {
        Self::Task(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Conflict::Email) => Self::Refused(Refusal::EmailTaken),
            StoreError::Conflict(Conflict::IdempotencyKey) => Self::Refused(Refusal::IdempotencyKeyReused),
            StoreError::Conflict(Conflict::Duplicate) => Self::Refused(Refusal::Duplicate),
            StoreError::Backend(cause) => Self::Internal(cause),
        }
    }
}
