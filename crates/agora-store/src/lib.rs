//! The storage interface every backend implements, and the conformance suite that proves a
//! backend implements it faithfully (run by each backend crate against a real database).
//!
//! Reads go through [`Store`]; every change goes through a [`Tx`], so that a change, the
//! events it causes and its idempotency record commit together or not at all.
//!
//! The SQL both backends share is written once, in `sql/shared.rs` beside this crate, and
//! compiled into each backend crate against its own sqlx driver (see that file for why).

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod money;
pub mod webhooks;
pub mod work;

use agora_core::{
    AccountId, ApiKeyId, ChatId, DeliveryId, EventId, HoldId, LedgerTxId, MessageId, NotificationId,
    ServiceId, SessionId, TaskId, Timestamp, WebhookId,
    account::{Account, AccountKind, Email, Profile, Role},
    ledger::{Bucket, Plan, TxKind},
    money::Currency,
    task::{TaskError, TaskKind, TaskStatus},
    work::{Delivery, ProgressReport},
};
use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; the value names which one.
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    /// A business rule refused the write (not enough money, a hold already settled…);
    /// the transaction must be dropped.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// The database failed; the message is for logs, never for clients.
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

/// Why storage refused a write that was well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A debit would take this ledger account (its key) below zero.
    InsufficientFunds { account: String },
    /// The hold has less left than the settlement asked for (it was settled already).
    HoldExhausted { remaining: i64 },
    /// No free, bonus or purchased quota units are left.
    QuotaExhausted,
    /// The amount cannot be planned (zero, negative or out of range).
    InvalidAmount(String),
    /// The task's state machine refused the command.
    Task(TaskError),
    /// A bounty's claim can be released only once its delivery time has run out.
    ClaimNotOverdue,
    /// A claim that has delivered work cannot be taken back; the poster reviews it.
    ClaimDelivered,
    /// The webhook endpoint is disabled (redeliveries need it enabled first).
    EndpointDisabled,
    /// A delivery attempt is in flight; redelivering now would send it twice at once.
    DeliveryInFlight,
    /// Input that only the task can judge (a delivery against the task's output schema).
    Invalid(agora_core::Invalid),
}

/// What a ledger transaction is about: a task, a bid, a payment… (`kind`, `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: String,
    pub id: String,
}

impl Reference {
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        Self { kind: kind.to_owned(), id: id.into() }
    }
}

/// A planned ledger transaction with who, why and when.
#[derive(Debug, Clone)]
pub struct NewLedgerTx {
    pub id: LedgerTxId,
    pub plan: Plan,
    pub actor_id: Option<AccountId>,
    pub hold_id: Option<HoldId>,
    pub reference: Option<Reference>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

/// An escrow hold and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub payer_id: AccountId,
    pub currency: Currency,
    pub amount: i64,
    pub remaining: i64,
    pub reference: Reference,
    pub created_at: Timestamp,
}

/// One owner's balances in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub currency: Currency,
    pub available: i64,
    pub held: i64,
}

/// One line of an owner's statement: a movement on one of its wallets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub tx_id: LedgerTxId,
    pub kind: TxKind,
    pub currency: Currency,
    pub bucket: Bucket,
    pub amount: i64,
    pub actor_id: Option<AccountId>,
    pub hold_id: Option<HoldId>,
    pub reference: Option<Reference>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

/// What the ledger's integrity check found; every list is empty on a healthy ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    /// Transactions whose lines do not sum to zero.
    pub unbalanced_transactions: Vec<String>,
    /// Accounts whose cached balance differs from the sum of their lines.
    pub drifted_accounts: Vec<String>,
    /// Accounts below zero that may not be.
    pub negative_accounts: Vec<String>,
    /// `(payer, currency)` pairs whose held wallet differs from the remaining of their holds.
    pub held_mismatches: Vec<String>,
    /// Per currency: the total of all wallets and revenue, and minus the funding account
    /// (what entered). They are equal on a healthy ledger.
    pub totals: Vec<(Currency, i64, i64)>,
}

impl LedgerAudit {
    pub fn is_healthy(&self) -> bool {
        self.unbalanced_transactions.is_empty()
            && self.drifted_accounts.is_empty()
            && self.negative_accounts.is_empty()
            && self.held_mismatches.is_empty()
            && self.totals.iter().all(|(_, inside, entered)| inside == entered)
    }
}

/// Where a quota unit came from (and goes back to on refund).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaBucket {
    Free,
    Bonus,
    Purchased,
}

impl QuotaBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Bonus => "bonus",
            Self::Purchased => "purchased",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "free" => Self::Free,
            "bonus" => Self::Bonus,
            "purchased" => Self::Purchased,
            _ => return None,
        })
    }
}

/// An account's quota in one period (a calendar month, `YYYY-MM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    pub period: String,
    pub monthly_free: i64,
    pub free_used: i64,
    pub bonus: i64,
    pub purchased: i64,
}

impl QuotaState {
    pub fn remaining(&self) -> i64 {
        (self.monthly_free - self.free_used).max(0) + self.bonus + self.purchased
    }
}

/// An event to append to the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    /// `noun.verb`, e.g. `payment.held`.
    pub event_type: String,
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
    pub event_type: String,
    pub actor_id: Option<AccountId>,
    pub task_id: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// A webhook endpoint an account registered (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub url: String,
    pub description: String,
    /// Event types, `noun.*` or `*` (see `agora_core::webhook::subscribed`).
    pub event_types: Vec<String>,
    /// The `whsec_…` signing secret.
    pub secret: String,
    pub active: bool,
    /// Why the system turned it off (410 Gone, failing for too long).
    pub disabled_reason: Option<String>,
    /// Deliveries have failed without a success since this time.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One event's delivery to one endpoint, or to a task's one-off URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: DeliveryId,
    /// `None` for a task's one-off URL.
    pub endpoint_id: Option<WebhookId>,
    pub account_id: AccountId,
    /// The one-off URL (endpoints' deliveries go to the endpoint's current URL).
    pub url: Option<String>,
    pub event_seq: i64,
    pub event_id: EventId,
    pub event_type: String,
    pub task_id: Option<String>,
    pub status: DeliveryStatus,
    /// Attempts made in all.
    pub attempts: i64,
    /// Attempts since the delivery was last (re)started; picks the next retry delay.
    pub round_attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// One attempt at a delivery, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: DeliveryId,
    /// 1, 2, 3… over the delivery's life.
    pub attempt: i64,
    pub at: Timestamp,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// A delivery taken by a worker, with everything sending it needs.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery: WebhookDelivery,
    /// Where to send it now (the endpoint's current URL, or the task's one-off URL).
    pub url: String,
    /// The secret to sign with (the endpoint's, or the task requester's account secret).
    pub secret: String,
    pub event: Event,
    /// Proves the worker still holds the claim when it records the outcome.
    pub claim_token: String,
}

/// An in-app notification: one event as one recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: NotificationId,
    pub account_id: AccountId,
    pub event_seq: i64,
    /// The event type it comes from.
    pub kind: String,
    pub title: String,
    pub message: String,
    /// An API path about the subject (a task, the wallet, a webhook).
    pub link: Option<String>,
    pub read_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A task of any kind (SPEC §4) as stored. Its status changes only through
/// `agora_core::task::apply`, applied by [`work`].
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub requester_id: AccountId,
    pub assignee_id: Option<AccountId>,
    pub title: String,
    pub description: String,
    pub input: Value,
    pub output: Option<Delivery>,
    /// Kind-specific terms: schemas, bounty penalty and hours, the service at run time, the
    /// failure log.
    pub details: Value,
    pub progress: Option<ProgressReport>,
    pub price: Option<i64>,
    pub currency: Option<Currency>,
    pub hold_id: Option<HoldId>,
    pub chat_id: Option<ChatId>,
    pub service_id: Option<ServiceId>,
    /// A one-off webhook URL for this task's events, signed with the requester's secret.
    pub webhook_url: Option<String>,
    /// An `in_progress` task of a leased kind goes back to the system at this time.
    pub lease_expires_at: Option<Timestamp>,
    /// A claimed bounty's delivery deadline.
    pub deadline_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    /// A `delivered` task is accepted by the system at this time.
    pub auto_accept_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task {
    /// A new task of `kind` for `requester`, with nothing but a title; callers fill in
    /// the rest, and `work::create` decides its status.
    pub fn new(kind: TaskKind, requester: &AccountId, title: String, now: Timestamp) -> Self {
        Self {
            id: TaskId::generate(),
            kind,
            status: agora_core::task::create_status(kind),
            requester_id: requester.clone(),
            assignee_id: None,
            title,
            description: String::new(),
            input: Value::Object(Default::default()),
            output: None,
            details: Value::Object(Default::default()),
            progress: None,
            price: None,
            currency: None,
            hold_id: None,
            chat_id: None,
            service_id: None,
            webhook_url: None,
            lease_expires_at: None,
            deadline_at: None,
            delivered_at: None,
            auto_accept_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Filters of a task list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Tasks this account requested.
    pub requester: Option<AccountId>,
    /// Tasks assigned to this account.
    pub assignee: Option<AccountId>,
    /// Either of the two (when both are set, a task matching one is enough).
    pub either: bool,
    /// Any of these statuses (all when empty).
    pub statuses: Vec<TaskStatus>,
    /// Any of these kinds (all when empty).
    pub kinds: Vec<TaskKind>,
    /// Only tasks someone is (or was last) assigned to.
    pub assigned_only: bool,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMessage {
    pub id: MessageId,
    pub task_id: TaskId,
    pub author_id: AccountId,
    pub body: String,
    pub created_at: Timestamp,
}

/// One message of a chat conversation, as an LLM would read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub id: ChatId,
    pub requester_id: AccountId,
    pub agent_id: AccountId,
    pub messages: Vec<ChatMessage>,
    /// The turn waiting for the agent's reply; a chat has at most one at a time.
    pub open_task_id: Option<TaskId>,
    pub turns: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: ServiceId,
    /// The agent that runs it.
    pub agent_id: AccountId,
    pub terms: agora_core::work::ServiceTerms,
    pub currency: Currency,
    pub published: bool,
    pub paid_count: i64,
    pub favorite_count: i64,
    pub total_revenue: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceSort {
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    MostPaid,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceQuery {
    /// Case-insensitive substring of the name or descriptions.
    pub text: Option<String>,
    /// Only services whose agent was seen at or after this time (and is not signed off).
    pub online_since: Option<Timestamp>,
    /// Only this agent's services, published or not.
    pub agent: Option<AccountId>,
    /// Only services priced in this currency.
    pub currency: Option<Currency>,
    pub sort: ServiceSort,
    pub offset: u64,
    pub limit: u64,
}

/// Background work that falls due by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// An `in_progress` task whose lease ran out.
    LeaseExpired,
    /// A `delivered` task whose auto-accept time came.
    AutoAccept,
}

impl Due {
    /// When `task` falls due this way.
    pub fn at(self, task: &Task) -> Option<Timestamp> {
        match self {
            Self::LeaseExpired => task.lease_expires_at,
            Self::AutoAccept => task.auto_accept_at,
        }
    }
}

/// What an agent counter records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    NoResponse,
}

/// A reason for a waiting inbox to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// Work was queued for this agent (committed).
    Agent(AccountId),
    /// Wake-ups may have been lost (a listener reconnected): everyone looks again.
    All,
    /// Events were committed: readers of the log (webhook fan-out, live streams) look again.
    Events,
}

/// Where committed wake-ups are published to this process. On SQLite a transaction sends
/// its wake-ups here after it commits; on PostgreSQL it sends `NOTIFY` inside the
/// transaction (delivered at commit, to every replica) and a listener forwards them here.
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

/// Everything an account is created with.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: AccountId,
    pub kind: AccountKind,
    pub role: Role,
    pub name: String,
    pub email: Option<Email>,
    /// argon2id PHC string; `None` for accounts that only use API keys.
    pub password_hash: Option<String>,
    pub owner_id: Option<AccountId>,
    pub profile: Profile,
    pub webhook_secret: String,
    pub created_at: Timestamp,
}

/// An API key as listed to its owner: never its secret, never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    pub display_prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    pub display_prefix: String,
    pub key_hash: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub account_id: AccountId,
    pub access_hash: String,
    pub refresh_hash: String,
    pub access_expires_at: Timestamp,
    pub refresh_expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// Which credential authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    ApiKey(ApiKeyId),
    Session(SessionId),
}

impl Credential {
    pub fn id(&self) -> &str {
        match self {
            Self::ApiKey(id) => id.as_str(),
            Self::Session(id) => id.as_str(),
        }
    }
}

/// An authenticated caller: the account and the credential it presented.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: Account,
    pub credential: Credential,
    /// When the credential was last used, before this request (API keys only).
    pub last_used_at: Option<Timestamp>,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentSort {
    #[default]
    Newest,
    Name,
}

/// Filters of the public agent directory.
#[derive(Debug, Clone, Default)]
pub struct AgentQuery {
    /// A skill tag the agent must have (already normalised by `parse_skill`).
    pub skill: Option<String>,
    /// Case-insensitive substring of the name or description.
    pub text: Option<String>,
    /// Only agents seen at or after this time.
    pub seen_since: Option<Timestamp>,
    pub sort: AgentSort,
    pub offset: u64,
    pub limit: u64,
}

/// One page of a list and the total number of matching rows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Reads, and the way into a transaction for writes.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
    /// Closes the connection pool; every later call fails. Used at shutdown.
    async fn close(&self);
    /// Starts a write transaction (on SQLite it takes the write lock at once).
    async fn begin(&self) -> Result<Box<dyn Tx>>;

    async fn account(&self, id: &AccountId) -> Result<Option<Account>>;
    /// The accounts with these ids that exist, in one query.
    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>>;
    /// The account with this email, and its password hash.
    async fn account_login(&self, email: &Email) -> Result<Option<(Account, Option<String>)>>;
    async fn has_admin(&self) -> Result<bool>;
    async fn agents(&self, query: &AgentQuery) -> Result<Page<Account>>;

    /// The principal of a live (unrevoked) API key with this hash.
    async fn principal_by_key(&self, key_hash: &str) -> Result<Option<Principal>>;
    /// The principal of a live, unexpired access token with this hash.
    async fn principal_by_access_token(&self, access_hash: &str, now: Timestamp)
    -> Result<Option<Principal>>;
    /// Records that a key was used (callers throttle how often).
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<()>;
    /// The account's keys, live ones first, newest first.
    async fn api_keys(&self, account: &AccountId) -> Result<Vec<ApiKeyRecord>>;

    /// The live record (created at or after `not_before`) for this key, if any.
    async fn idempotency_record(
        &self,
        account: &AccountId,
        key: &str,
        not_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>>;

    /// The owner's balances, one per currency it has ever held, by currency.
    async fn balances(&self, owner: &AccountId) -> Result<Vec<Balance>>;
    /// The owner's wallet movements, newest first.
    async fn statement(&self, owner: &AccountId, offset: u64, limit: u64) -> Result<Page<StatementLine>>;
    /// Platform revenue (fees collected) per currency, from the ledger.
    async fn revenue(&self) -> Result<Vec<(Currency, i64)>>;
    /// Checks the ledger's invariants against its lines (see [`LedgerAudit`]).
    async fn ledger_audit(&self) -> Result<LedgerAudit>;
    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>>;

    /// The account's quota in `period` (a new period starts with no free units used).
    async fn quota(&self, account: &AccountId, period: &str, monthly_free: i64) -> Result<QuotaState>;

    /// Up to `limit` events after position `after`, in log order.
    async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<Event>>;

    /// Up to `limit` events after position `after`, in log order, each with its audience.
    async fn events_with_audience_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>>;
    /// Up to `limit` events `account` may see after position `after`, in log order.
    async fn account_events_after(&self, account: &AccountId, after: i64, limit: u64) -> Result<Vec<Event>>;
    /// The position of the newest event (0 for an empty log).
    async fn last_event_seq(&self) -> Result<i64>;

    /// The account's webhook endpoints, oldest first.
    async fn webhook_endpoints(&self, account: &AccountId) -> Result<Vec<WebhookEndpoint>>;
    async fn webhook_endpoint(&self, id: &WebhookId) -> Result<Option<WebhookEndpoint>>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries(
        &self,
        endpoint: &WebhookId,
        status: Option<DeliveryStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WebhookDelivery>>;
    async fn delivery(&self, id: &DeliveryId) -> Result<Option<WebhookDelivery>>;
    /// The attempts of these deliveries, in attempt order.
    async fn delivery_attempts(&self, ids: &[DeliveryId]) -> Result<Vec<DeliveryAttempt>>;
    /// How many deliveries wait to be made (the webhook backlog).
    async fn pending_deliveries(&self) -> Result<u64>;

    /// The account's notifications, newest first, and how many are unread.
    async fn notifications(
        &self,
        account: &AccountId,
        unread_only: bool,
        offset: u64,
        limit: u64,
    ) -> Result<(Page<Notification>, u64)>;

    /// Committed wake-ups for waiting inboxes, from this and (on PostgreSQL) every replica.
    fn wakeups(&self) -> broadcast::Receiver<Wakeup>;

    async fn task(&self, id: &TaskId) -> Result<Option<Task>>;
    async fn tasks(&self, query: &TaskQuery) -> Result<Page<Task>>;
    /// The task's events in log order: its timeline.
    async fn task_events(&self, id: &TaskId) -> Result<Vec<Event>>;
    async fn task_messages(&self, id: &TaskId) -> Result<Vec<TaskMessage>>;
    /// How many tasks each of these accounts holds `in_progress` (accounts with none are
    /// left out).
    async fn in_progress_counts(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>>;
    /// Which of `agents` have queued work waiting in their inbox (the slow safety net
    /// behind wake-ups).
    async fn with_queued_work(&self, agents: &[AccountId]) -> Result<Vec<AccountId>>;

    async fn chat(&self, id: &ChatId) -> Result<Option<Chat>>;
    async fn service(&self, id: &ServiceId) -> Result<Option<Service>>;
    async fn services(&self, query: &ServiceQuery) -> Result<Page<Service>>;
    async fn is_favorite(&self, service: &ServiceId, account: &AccountId) -> Result<bool>;
}

/// One write transaction. Dropped without [`Tx::commit`], it rolls back.
#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> Result<()>;

    /// `Conflict::Email` when the email is taken.
    async fn insert_account(&mut self, account: &NewAccount) -> Result<()>;
    /// The account, locked against concurrent writers until this transaction ends.
    async fn account_for_update(&mut self, id: &AccountId) -> Result<Option<Account>>;
    async fn update_profile(
        &mut self,
        id: &AccountId,
        name: &str,
        profile: &Profile,
        now: Timestamp,
    ) -> Result<()>;
    /// Sets or clears the ban; `false` when there is no such account.
    async fn set_banned(
        &mut self,
        id: &AccountId,
        banned_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool>;
    async fn set_role(&mut self, id: &AccountId, role: Role, now: Timestamp) -> Result<bool>;
    async fn set_password_hash(&mut self, id: &AccountId, hash: &str, now: Timestamp) -> Result<bool>;
    async fn set_webhook_secret(&mut self, id: &AccountId, secret: &str, now: Timestamp) -> Result<()>;

    async fn insert_api_key(&mut self, key: &NewApiKey) -> Result<()>;
    /// Revokes one of `account`'s live keys; the revoked key, or `None` if there was none.
    async fn revoke_api_key(
        &mut self,
        account: &AccountId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeyRecord>>;

    async fn insert_session(&mut self, session: &NewSession) -> Result<()>;
    /// Revokes the live session holding this refresh token, in one statement so that two
    /// concurrent refreshes cannot both succeed; returns its account.
    async fn take_refresh_token(&mut self, refresh_hash: &str, now: Timestamp) -> Result<Option<AccountId>>;
    async fn revoke_session(&mut self, id: &SessionId, now: Timestamp) -> Result<()>;

    /// Stores the first response to an idempotency key. `Conflict::IdempotencyKey` when a
    /// live record already exists (a concurrent request with the same key won); an expired
    /// one is replaced.
    async fn insert_idempotency_record(
        &mut self,
        record: &IdempotencyRecord,
        expired_before: Timestamp,
    ) -> Result<()>;

    /// Writes a balanced ledger transaction and updates the cached balances. A debit that
    /// would take a wallet or revenue account below zero is refused
    /// (`Refusal::InsufficientFunds`) by a conditional update, never by reading first.
    async fn post_ledger(&mut self, tx: &NewLedgerTx) -> Result<()>;
    async fn insert_hold(&mut self, hold: &Hold) -> Result<()>;
    /// What is left of a hold, locking it against concurrent settlements until this
    /// transaction ends; `NotFound` when there is no such hold.
    async fn hold_remaining_for_update(&mut self, id: &HoldId) -> Result<i64>;
    /// Takes `amount` from what is left of a hold, atomically; `Refusal::HoldExhausted` when
    /// less is left, `NotFound` when there is no such hold. Returns the hold after the draw.
    async fn draw_hold(&mut self, id: &HoldId, amount: i64, now: Timestamp) -> Result<Hold>;

    /// Takes one unit of quota for `reference`: free units of `period` first, then bonus,
    /// then purchased; `Refusal::QuotaExhausted` when none is left.
    async fn quota_consume(
        &mut self,
        account: &AccountId,
        period: &str,
        monthly_free: i64,
        reference: &str,
        now: Timestamp,
    ) -> Result<QuotaBucket>;
    /// Gives back the unit consumed for `reference`, once; `false` if there was none to give
    /// back (never consumed, or already refunded).
    async fn quota_refund(&mut self, account: &AccountId, reference: &str, now: Timestamp) -> Result<bool>;
    /// Adds bonus or purchased units (`Free` is not grantable).
    async fn quota_grant(
        &mut self,
        account: &AccountId,
        bucket: QuotaBucket,
        units: i64,
        period: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<()>;

    /// The owner's balance in one currency as this transaction sees it (zeros if none).
    async fn balance(&mut self, owner: &AccountId, currency: &Currency) -> Result<Balance>;
    /// The account's quota as this transaction sees it (see [`Store::quota`]).
    async fn quota(&mut self, account: &AccountId, period: &str, monthly_free: i64) -> Result<QuotaState>;

    /// Appends an event to the log. Events are written when the transaction commits, after
    /// every other write, and numbered then: the counter row they take is locked until
    /// commit, so positions follow commit order and are gap-free.
    async fn append_event(&mut self, event: &NewEvent) -> Result<()>;

    /// The position of a projection of the event log, locked until this transaction ends;
    /// `None` when another transaction holds it (PostgreSQL: `SKIP LOCKED`), so one replica
    /// projects at a time and the others move on.
    async fn lock_cursor(&mut self, name: &str) -> Result<Option<i64>>;
    async fn set_cursor(&mut self, name: &str, position: i64) -> Result<()>;
    /// As [`Store::events_with_audience_after`], inside this transaction.
    async fn events_with_audience_after(
        &mut self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>>;
    /// The active endpoints of these accounts.
    async fn active_endpoints(&mut self, accounts: &[AccountId]) -> Result<Vec<WebhookEndpoint>>;
    /// `(task, requester, url)` for those of these tasks that have a one-off webhook URL.
    async fn task_webhook_urls(&mut self, tasks: &[String]) -> Result<Vec<(String, AccountId, String)>>;
    async fn insert_deliveries(&mut self, deliveries: &[WebhookDelivery]) -> Result<()>;
    async fn insert_notifications(&mut self, notifications: &[Notification]) -> Result<()>;

    async fn insert_webhook_endpoint(&mut self, endpoint: &WebhookEndpoint) -> Result<()>;
    async fn webhook_endpoint_for_update(&mut self, id: &WebhookId) -> Result<Option<WebhookEndpoint>>;
    /// Writes back every mutable field of an endpoint.
    async fn update_webhook_endpoint(&mut self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// Deletes an endpoint with its delivery log.
    async fn delete_webhook_endpoint(&mut self, id: &WebhookId) -> Result<()>;
    /// Fails an endpoint's pending deliveries (it was disabled).
    async fn fail_pending_deliveries(
        &mut self,
        endpoint: &WebhookId,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64>;

    /// Takes up to `limit` pending deliveries due at `now` (skipping ones another replica
    /// is taking), moves their next attempt to `lease_until` so nobody else takes them
    /// meanwhile, and marks them with `token`. Deliveries of inactive endpoints are left.
    async fn claim_deliveries(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        token: &str,
        limit: u64,
    ) -> Result<Vec<DeliveryJob>>;
    /// Logs an attempt and writes the delivery's new state, if the delivery still carries
    /// `token` (a worker whose claim ran out and was taken over records nothing); `false`
    /// otherwise.
    async fn finish_attempt(
        &mut self,
        delivery: &WebhookDelivery,
        token: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool>;
    /// Starts a delivery again: pending, due at `now`, a fresh round of retries; `false`
    /// (and nothing changed) while a sender holds a live claim on it.
    async fn restart_delivery(&mut self, id: &DeliveryId, now: Timestamp) -> Result<bool>;

    /// Marks one notification (or, with `None`, all) of `account` read; how many changed.
    async fn mark_notifications_read(
        &mut self,
        account: &AccountId,
        id: Option<&NotificationId>,
        now: Timestamp,
    ) -> Result<u64>;

    /// Wakes `agent`'s waiting inbox once this transaction commits (never before, never if
    /// it rolls back).
    fn wake(&mut self, agent: &AccountId);

    /// Records that the agent was seen (heartbeat, inbox wait) or signed itself off.
    async fn touch_presence(&mut self, agent: &AccountId, now: Timestamp, offline: bool) -> Result<()>;
    /// Adds one to the agent's completed, failed or no-response counter.
    async fn count_outcome(&mut self, agent: &AccountId, outcome: Outcome) -> Result<()>;

    async fn insert_task(&mut self, task: &Task) -> Result<()>;
    /// The task, locked against concurrent writers until this transaction ends.
    async fn task_for_update(&mut self, id: &TaskId) -> Result<Option<Task>>;
    /// Writes back every mutable field of a task read with `task_for_update`.
    async fn update_task(&mut self, task: &Task) -> Result<()>;
    /// The oldest `queued` task assigned to `agent`, locked; on PostgreSQL rows another
    /// transaction holds are skipped (`SKIP LOCKED`), so concurrent claims never wait on
    /// or take the same task.
    async fn next_queued(&mut self, agent: &AccountId) -> Result<Option<Task>>;
    async fn in_progress_count(&mut self, agent: &AccountId) -> Result<i64>;
    /// The tasks assigned to `agent` that are queued or in progress, oldest first.
    async fn held_tasks(&mut self, agent: &AccountId) -> Result<Vec<TaskId>>;
    /// One task that has fallen `due` at `now`, locked, skipping ones other replicas hold;
    /// only tasks after `after` (their due time and id) in due order, so that a sweep can
    /// move past a task it failed on.
    async fn due_task(
        &mut self,
        due: Due,
        now: Timestamp,
        after: Option<&(Timestamp, TaskId)>,
    ) -> Result<Option<Task>>;
    async fn insert_task_message(&mut self, message: &TaskMessage) -> Result<()>;

    async fn insert_chat(&mut self, chat: &Chat) -> Result<()>;
    async fn chat_for_update(&mut self, id: &ChatId) -> Result<Option<Chat>>;
    async fn update_chat(&mut self, chat: &Chat) -> Result<()>;

    async fn insert_service(&mut self, service: &Service) -> Result<()>;
    async fn service_for_update(&mut self, id: &ServiceId) -> Result<Option<Service>>;
    /// Writes back terms, publication and `updated_at`.
    async fn update_service(&mut self, service: &Service) -> Result<()>;
    /// Counts one paid run of `amount` (the gross price) for the service.
    async fn service_paid(&mut self, id: &ServiceId, amount: i64) -> Result<()>;
    /// Marks or unmarks a favourite; `true` if that changed anything.
    async fn set_favorite(
        &mut self,
        service: &ServiceId,
        account: &AccountId,
        on: bool,
        now: Timestamp,
    ) -> Result<bool>;
}
