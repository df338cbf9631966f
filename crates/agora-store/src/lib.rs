//! The storage interface every backend implements, and the conformance suite that proves a
//! backend implements it faithfully (run by each backend crate against a real database).
//!
//! The interface is split by aggregate (accounts and credentials, ledger, tasks, services,
//! event log, webhooks and notifications, idempotency, background work): each has a read
//! trait and a write trait. Reads are implemented once per backend and serve both a pooled
//! reader ([`Store::read`]) and an open transaction; writes exist only on a transaction
//! ([`Tx`]), the unit of work that implements every trait, so that a change, the events it
//! causes and its idempotency record commit together or not at all.
//!
//! Storage knows no rules. A write that a condition refuses (a debit below zero, a hold
//! already drawn) says so in its return value; what that means is the application's call.
//!
//! The SQL both backends share is written once, per aggregate, in `sql/` beside this crate
//! and compiled into each backend crate against its own sqlx driver (`sql/mod.rs` says what
//! a backend must provide).

#[cfg(feature = "conformance")]
pub mod conformance;

mod accounts;
mod chores;
mod events;
mod idempotency;
mod jobs;
mod ledger;
mod services;
mod tasks;
mod webhooks;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use accounts::*;
pub use chores::*;
pub use events::*;
pub use idempotency::*;
pub use jobs::*;
pub use ledger::*;
pub use services::*;
pub use tasks::*;
pub use webhooks::*;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why storage could not do what it was asked. Rules never appear here: a conditional write
/// that did not apply reports it in its return value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; the value names which one.
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// The database failed, or holds something this version cannot read; the message is
    /// for logs, never for clients.
    #[error("database error: {0}")]
    Backend(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Email,
    IdempotencyKey,
    /// The same reference was used twice where it must be unique (a quota consumption).
    Duplicate,
}

/// One page of a list and the total number of matching rows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Every read, on a pooled connection ([`Store::read`]) or inside a transaction.
pub trait Reads:
    AccountReads
    + LedgerReads
    + EventReads
    + TaskReads
    + ServiceReads
    + JobReads
    + WebhookReads
    + IdempotencyReads
    + ChoreReads
{
}

impl<T> Reads for T where
    T: ?Sized
        + AccountReads
        + LedgerReads
        + EventReads
        + TaskReads
        + ServiceReads
        + JobReads
        + WebhookReads
        + IdempotencyReads
        + ChoreReads
{
}

/// One write transaction: the unit of work. It reads what it has written, and dropped
/// without [`Tx::commit`] it rolls back.
#[async_trait]
pub trait Tx:
    Reads
    + AccountWrites
    + LedgerWrites
    + EventWrites
    + TaskWrites
    + ServiceWrites
    + JobWrites
    + WebhookWrites
    + IdempotencyWrites
    + ChoreWrites
{
    /// Writes the buffered events, commits, and publishes the wake-ups the transaction
    /// asked for (never before the commit, never if it fails).
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A backend: the way into reads and transactions, and its wake-ups.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
    /// Closes the connection pool; every later call fails. Used at shutdown.
    async fn close(&self);
    /// Starts a write transaction (on SQLite it takes the write lock at once).
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    /// Reads outside any transaction, each on a pooled connection.
    fn read(&self) -> Box<dyn Reads>;
    /// Statements sent to the database since this store opened, transaction control
    /// included: `agora bench` reports them per operation.
    fn statements(&self) -> u64;
    /// Committed wake-ups for waiting inboxes and log readers, from this and (on
    /// PostgreSQL) every replica.
    fn wakeups(&self) -> broadcast::Receiver<Wakeup>;
}

/// A reason for a waiting inbox or a reader of the event log to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// Work was queued for this agent (committed).
    Agent(agora_core::AccountId),
    /// Wake-ups may have been lost (a listener reconnected): everyone looks again.
    All,
    /// Events were committed: readers of the log (webhook fan-out, live streams) look again.
    Events,
    /// Background work was queued (committed): its runners look again.
    Chores,
}

/// Where committed wake-ups are published to this process. On SQLite a transaction sends
/// its wake-ups here after it commits; on PostgreSQL it hands them, once committed, to a
/// notifier that sends `NOTIFY` to every replica, whose listener forwards them here.
#[derive(Debug, Clone)]
pub struct WakeHub(broadcast::Sender<Wakeup>);

impl Default for WakeHub {
    fn default() -> Self {
        // Large enough for bursts; a receiver that still lags sees `Lagged` and wakes all.
        Self(broadcast::channel(4096).0)
    }
}

impl WakeHub {
    pub fn publish(&self, w: Wakeup) {
        // No receivers (a CLI process) is fine: nobody is waiting.
        let _ = self.0.send(w);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        self.0.subscribe()
    }
}
