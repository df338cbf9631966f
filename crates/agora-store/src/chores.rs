//! Chores: durable background work (timers, pipeline steps, confirmations), claimed by any
//! replica and retried with backoff. The word "job" belongs to the marketplace.

use agora_core::{ChoreId, Timestamp};
use async_trait::async_trait;
use serde_json::Value;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoreStatus {
    /// Waiting for `run_at`.
    Queued,
    /// Taken by a runner until its lease runs out.
    Running,
    /// Out of attempts; kept for the operator.
    Failed,
}

impl ChoreStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A chore to schedule.
#[derive(Debug, Clone)]
pub struct NewChore {
    /// Which handler runs it.
    pub kind: String,
    /// At most one chore lives per key: scheduling a key again replaces its time, payload
    /// and attempts (a timer moved), even if a runner holds it (its finish then fails).
    pub key: Option<String>,
    pub payload: Value,
    pub run_at: Timestamp,
    pub max_attempts: i64,
}

/// A chore as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Chore {
    pub id: ChoreId,
    pub kind: String,
    pub key: Option<String>,
    pub payload: Value,
    pub run_at: Timestamp,
    pub status: ChoreStatus,
    /// Attempts started, this one included once it runs.
    pub attempts: i64,
    pub max_attempts: i64,
    pub last_error: Option<String>,
    /// The runner that holds it proves itself with this when it finishes.
    pub claim_token: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How many chores are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChoreCounts {
    pub queued: u64,
    pub running: u64,
    pub failed: u64,
}

#[async_trait]
pub trait ChoreReads: Send {
    async fn chore_counts(&mut self) -> Result<ChoreCounts>;
    /// The chore with this key, if one lives.
    async fn chore_by_key(&mut self, key: &str) -> Result<Option<Chore>>;
    /// When the next queued chore falls due (the earliest `run_at`), if any.
    async fn next_chore_at(&mut self) -> Result<Option<Timestamp>>;
}

#[async_trait]
pub trait ChoreWrites: Send {
    /// Schedules a chore (see [`NewChore::key`]); the chore as stored.
    async fn schedule_chore(&mut self, chore: &NewChore, now: Timestamp) -> Result<Chore>;
    /// Deletes the chore with this key, unless a runner holds it; whether one was deleted.
    async fn cancel_chore(&mut self, key: &str) -> Result<bool>;
    /// Takes up to `limit` chores that are due at `now`, or whose runner's lease ran out,
    /// skipping ones another replica is taking; marks them running until `lease_until`,
    /// held by `token`, and counts the attempt.
    async fn claim_chores(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        token: &str,
        limit: u64,
    ) -> Result<Vec<Chore>>;
    /// Removes a finished chore, if `token` still holds it; `false` otherwise (it was taken
    /// over, or rescheduled meanwhile).
    async fn finish_chore(&mut self, id: &ChoreId, token: &str) -> Result<bool>;
    /// Puts a chore whose attempt failed back in the queue for `run_at`, or marks it
    /// failed when `run_at` is `None`, if `token` still holds it.
    async fn retry_chore(
        &mut self,
        id: &ChoreId,
        token: &str,
        run_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<bool>;
}
