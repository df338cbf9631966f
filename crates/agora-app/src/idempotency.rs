//! `Idempotency-Key` (SPEC §6): the same key and request within 24 h replays the first
//! response; the same key with another request is `IDEMPOTENCY_KEY_REUSED`.
//!
//! A frontend looks for a prior response before it runs a command ([`App::prior_response`])
//! and, when there is none, commits the command with its rendered response
//! ([`crate::Uncommitted::commit_recorded`]), so the effect and its record exist together or
//! not at all. Keys are per account.

use agora_core::{AccountId, Invalid, Timestamp};
use agora_store::{Conflict, IdempotencyRecord, StoreError, Tx};

use crate::{App, Result};

/// How long a key is remembered.
pub const WINDOW_SECS: i64 = 24 * 3600;
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A request's idempotency key, with what identifies the request (a hash of what the
/// frontend received: method, path and body for HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    account: AccountId,
    key: String,
    request_hash: String,
}

/// A key as sent: 1–255 visible ASCII characters.
pub fn parse_key(raw: &str) -> Result<String, Invalid> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_KEY_LEN
        && raw.bytes().all(|b| b == b'\t' || (32..127).contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Invalid::field("Idempotency-Key", format!("must be 1-{MAX_KEY_LEN} visible ASCII characters")))
    }
}

impl IdempotencyKey {
    /// `key` as [`parse_key`] returned it.
    pub fn new(account: AccountId, key: String, request_hash: String) -> Self {
        Self { account, key, request_hash }
    }
}

/// What an earlier request with the same key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: run the command.
    Fresh,
    /// The same request: answer with its response.
    Replay(IdempotencyRecord),
    /// Another request used the key.
    Reused,
}

impl App {
    /// What an earlier request with this key left (see [`Prior`]).
    pub async fn prior_response(&self, key: &IdempotencyKey) -> Result<Prior> {
        let not_before = self.now().plus_seconds(-WINDOW_SECS);
        Ok(match self.store().read().idempotency_record(&key.account, &key.key, not_before).await? {
            Some(rec) if rec.request_hash == key.request_hash => Prior::Replay(rec),
            Some(_) => Prior::Reused,
            None => Prior::Fresh,
        })
    }
}

/// Stores the response under the key in `tx`; `false` when a live record exists already
/// (a concurrent request with the key committed first).
pub(crate) async fn record(
    tx: &mut dyn Tx,
    key: &IdempotencyKey,
    status: u16,
    body: String,
    now: Timestamp,
) -> Result<bool> {
    let record = IdempotencyRecord {
        account_id: key.account.clone(),
        key: key.key.clone(),
        request_hash: key.request_hash.clone(),
        status,
        body,
        created_at: now,
    };
    match tx.insert_idempotency_record(&record, now.plus_seconds(-WINDOW_SECS)).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(Conflict::IdempotencyKey)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
