//! Agora's domain: the rules that hold whatever the transport or the database.
//!
//! Everything here is plain Rust with no I/O and no async. Inputs become domain types at
//! the edge (`Email::parse`, `Profile::validate`), so code past the edge never re-checks.

pub mod account;
pub mod credential;
pub mod error;
pub mod event;
pub mod id;
pub mod job;
pub mod ledger;
pub mod money;
pub mod schema;
pub mod task;
pub mod time;
pub mod validation;
pub mod webhook;
pub mod work;

pub use id::{
    AccountId, ApiKeyId, BidId, ChatId, ChoreId, DeliveryId, EventId, HoldId, InvitationId, LedgerTxId,
    MessageId, NotificationId, QuotaMovementId, ServiceId, SessionId, TaskId, WebhookId,
};
pub use time::Timestamp;
pub use validation::{FieldError, Invalid};
