//! The event log (SPEC §1 principle 3) and the cursors of its projections.

use agora_core::{AccountId, EventId, Timestamp, event::EventType};
use async_trait::async_trait;

use crate::Result;

/// An event to append to the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub event_type: EventType,
    pub actor_id: Option<AccountId>,
    pub task_id: Option<String>,
    /// The accounts that may see it (webhooks, notifications, live stream).
    pub audience: Vec<AccountId>,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// An event as stored: its position in the log (`seq`, gap-free, in commit order) and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    /// Its place in its task's timeline (1, 2, 3…), for events about a task.
    pub task_seq: Option<i64>,
    pub id: EventId,
    pub event_type: EventType,
    pub actor_id: Option<AccountId>,
    pub task_id: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait EventReads: Send {
    /// Up to `limit` events after position `after`, in log order.
    async fn events_after(&mut self, after: i64, limit: u64) -> Result<Vec<Event>>;
    /// Up to `limit` events after position `after`, in log order, each with its audience.
    async fn events_with_audience_after(
        &mut self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>>;
    /// Up to `limit` events `account` may see after position `after`, in log order.
    async fn account_events_after(
        &mut self,
        account: &AccountId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<Event>>;
    /// The position of the newest event (0 for an empty log).
    async fn last_event_seq(&mut self) -> Result<i64>;
    /// A task's events in log order: its timeline.
    async fn task_events(&mut self, task: &str) -> Result<Vec<Event>>;
}

#[async_trait]
pub trait EventWrites: Send {
    /// Appends an event to the log. Events are written when the transaction commits, after
    /// every other write, and numbered then: positions follow commit order and are gap-free.
    async fn append_event(&mut self, event: &NewEvent) -> Result<()>;
    /// The position of a projection of the event log, locked until this transaction ends;
    /// `None` when another transaction holds it (PostgreSQL: `SKIP LOCKED`), so one replica
    /// projects at a time and the others move on.
    async fn lock_cursor(&mut self, name: &str) -> Result<Option<i64>>;
    async fn set_cursor(&mut self, name: &str, position: i64) -> Result<()>;
}
