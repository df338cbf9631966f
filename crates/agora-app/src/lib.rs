//! Agora's application layer: every use case, in one place, for every frontend.
//!
//! A frontend (the native JSON API, a dialect, MCP, the web UI, the CLI, the workers)
//! parses its wire format into the typed inputs here, calls one method of [`App`], and
//! shapes the result. Each use case takes the acting [`Principal`], decides who may do it
//! ([`access`]), changes what it changes, appends its events and moves its money in one
//! transaction, and answers with a typed value or an [`Error`].
//!
//! A command does not commit by itself: it returns its effect as an [`Uncommitted`], which
//! the caller commits, with the idempotency record of its request when it has one
//! ([`Uncommitted::commit_recorded`]) — so the response a frontend renders is stored in the
//! same transaction as the effect. Reads return values.

pub mod access;
pub mod accounts;
pub mod bounties;
pub mod chats;
pub mod chores;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod idempotency;
pub mod inbox;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod money;
pub mod notifications;
pub mod projection;
pub mod services;
pub mod settings;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wallet;
pub mod webhooks;
pub mod workers;

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use agora_core::Timestamp;
use agora_store::{IdempotencyRecord, Store, Tx};
use tokio::sync::{Notify, watch};

pub use access::{Admin, Principal};
pub use accounts::{AccountSpec, Created, Registration, Tokens};
pub use bounties::BountyFilter;
pub use chats::ChatTurn;
pub use error::{Error, Refusal, Result};
pub use idempotency::{IdempotencyKey, Prior};
pub use jobs::{AutoBidInput, Hired, InvitationView, JobSearch, Match, Posted, RankedBid};
pub use services::{Availability, ServiceSearch, ServiceView};
pub use settings::Settings;
pub use tasks::{TaskCommand, TaskDetail, TaskFilter, TaskRole};

/// The application: storage, settings, and the in-process machinery every use case shares
/// (inbox waiting rooms, the live feed, rate limits, metrics, the webhook sender).
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    settings: Settings,
    clock: Clock,
    limits: limits::RateLimits,
    metrics: metrics::Metrics,
    inbox: Arc<inbox::Dispatcher>,
    live: live::Feed,
    /// Signs and posts webhook deliveries; `None` if its HTTP client could not start.
    sender: Option<Arc<delivery::Sender>>,
    /// Tells this replica's webhook sender that deliveries are due now.
    webhook_kick: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    /// Where key uses go to be written (see `App::touch_key`); started on first use.
    key_uses: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(agora_core::ApiKeyId, Timestamp)>>,
    /// Claim transactions running at once (see `App::claim_next`).
    claims: tokio::sync::Semaphore,
}

/// The application's clock. Tests move it forward to make time pass for deadlines, leases
/// and timers without waiting; everything the application compares uses it.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        Timestamp::now().plus_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl App {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        let metrics = metrics::Metrics::default();
        let inbox = Arc::new(inbox::Dispatcher::new(metrics.inbox_waiters.clone()));
        let sender = delivery::Sender::new(settings.allow_private_webhooks)
            .inspect_err(
                |e| tracing::error!(error = %e, "webhook client cannot start; webhooks will not be sent"),
            )
            .ok()
            .map(Arc::new);
        Self(Arc::new(Inner {
            store,
            limits: limits::RateLimits::new(&settings),
            settings,
            clock: Clock::default(),
            metrics,
            inbox,
            live: live::Feed::default(),
            sender,
            webhook_kick: Arc::default(),
            shutdown: watch::channel(false).0,
            key_uses: std::sync::OnceLock::new(),
            claims: tokio::sync::Semaphore::new(inbox::CLAIMS_AT_ONCE),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub fn limits(&self) -> &limits::RateLimits {
        &self.0.limits
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// Which storage backend serves this application.
    pub fn backend(&self) -> &'static str {
        self.0.store.backend()
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ready(&self) -> Result<()> {
        self.0.store.ping().await.map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Starts the graceful shutdown: waiting inbox polls answer "no task", live streams end,
    /// background workers stop.
    pub fn shut_down(&self) {
        self.0.shutdown.send_replace(true);
    }

    pub fn is_shut_down(&self) -> bool {
        *self.0.shutdown.borrow()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    /// Closes the storage pool (after shutdown).
    pub async fn close(&self) {
        self.0.store.close().await;
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    pub(crate) async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(self.0.store.begin().await?)
    }

    /// Wraps a transaction and the value a command computed in it, for its caller to commit.
    pub(crate) fn uncommitted<T>(&self, tx: Box<dyn Tx>, value: T) -> Uncommitted<T> {
        Uncommitted { app: self.clone(), tx, value, after: Vec::new() }
    }
}

/// Work done after a commit, never before and never if the commit fails.
#[derive(Debug, Clone)]
pub(crate) enum After {
    /// Webhook deliveries became due: tell this replica's sender.
    KickWebhooks,
    /// A task was claimed from an inbox: count it, with its time since creation.
    Claimed { created_at: Timestamp },
}

/// A command's effect, not yet committed: commit it (with the request's idempotency record,
/// if it has one), or drop it to undo everything it did.
#[must_use = "a command's effect happens only once it is committed"]
pub struct Uncommitted<T> {
    app: App,
    tx: Box<dyn Tx>,
    value: T,
    after: Vec<After>,
}

impl<T> std::fmt::Debug for Uncommitted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uncommitted")
    }
}

/// The outcome of committing a command with an idempotency key.
#[derive(Debug)]
pub enum Committed<T> {
    /// The command's effect committed; its value.
    Done(T),
    /// A concurrent request with the same key and body committed first: its response, to
    /// answer with instead (this command's effect was undone).
    Replay(IdempotencyRecord),
}

impl<T> Uncommitted<T> {
    pub fn value(&self) -> &T {
        &self.value
    }

    pub(crate) fn then(mut self, after: After) -> Self {
        self.after.push(after);
        self
    }

    /// Commits the effect.
    pub async fn commit(self) -> Result<T> {
        let Self { app, tx, value, after } = self;
        tx.commit().await?;
        app.after_commit(after);
        Ok(value)
    }

    /// Commits the effect together with the response rendered for it, stored under the
    /// request's idempotency key (when it has one). Of two concurrent requests with one
    /// key, the second to commit finds the first's record: its own effect is undone and it
    /// answers with the first's response, or with `IDEMPOTENCY_KEY_REUSED` when the bodies
    /// differ.
    pub async fn commit_recorded(
        self,
        key: Option<&IdempotencyKey>,
        status: u16,
        body: String,
    ) -> Result<Committed<T>> {
        let Self { app, mut tx, value, after } = self;
        if let Some(key) = key
            && !idempotency::record(tx.as_mut(), key, status, body, app.now()).await?
        {
            drop(tx);
            return match app.prior_response(key).await? {
                Prior::Replay(rec) => Ok(Committed::Replay(rec)),
                Prior::Reused => Err(Refusal::IdempotencyKeyReused.into()),
                Prior::Fresh => Err(Error::internal("idempotency record vanished after a conflict")),
            };
        }
        tx.commit().await?;
        app.after_commit(after);
        Ok(Committed::Done(value))
    }
}

impl App {
    fn after_commit(&self, after: Vec<After>) {
        for a in after {
            match a {
                After::KickWebhooks => self.0.webhook_kick.notify_one(),
                After::Claimed { created_at } => {
                    self.0.metrics.tasks_claimed.inc();
                    let waited_ms = self.now().millis().saturating_sub(created_at.millis());
                    self.0.metrics.dispatch_latency.observe(waited_ms as f64 / 1000.0);
                }
            }
        }
    }
}
