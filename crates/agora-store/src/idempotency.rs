//! Idempotency records: the first response to an `Idempotency-Key`, stored with the effect.

use agora_core::{AccountId, Timestamp};
use async_trait::async_trait;

use crate::Result;

/// A stored first response to an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub account_id: AccountId,
    pub key: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait IdempotencyReads: Send {
    /// The live record (created at or after `not_before`) for this key, if any.
    async fn idempotency_record(
        &mut self,
        account: &AccountId,
        key: &str,
        not_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>>;
}

#[async_trait]
pub trait IdempotencyWrites: Send {
    /// Stores the first response to an idempotency key. `Conflict::IdempotencyKey` when a
    /// live record already exists (a concurrent request with the same key won); an expired
    /// one is replaced.
    async fn insert_idempotency_record(
        &mut self,
        record: &IdempotencyRecord,
        expired_before: Timestamp,
    ) -> Result<()>;
}
