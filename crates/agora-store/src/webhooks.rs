//! Webhook endpoints, their deliveries and attempts, and in-app notifications: the event
//! log's projections for people and programs (SPEC §7).

use agora_core::{AccountId, DeliveryId, EventId, NotificationId, Timestamp, WebhookId, event::EventType};
use async_trait::async_trait;

use crate::{Event, Page, Result};

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
    /// The secret it replaced, still signing alongside it until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<Timestamp>,
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
    /// The event delivered; `None` for a ping, which is no entry of the event log.
    pub event_seq: Option<i64>,
    pub event_id: EventId,
    pub event_type: EventType,
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

/// A delivery taken by a sender, with everything sending it needs.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery: WebhookDelivery,
    /// Where to send it now (the endpoint's current URL, or the task's one-off URL).
    pub url: String,
    /// The secret to sign with: the endpoint's, or the task requester's account secret.
    pub secret: String,
    /// The endpoint's rotated-out secret and until when it signs too.
    pub previous_secret: Option<(String, Timestamp)>,
    pub event: Event,
    /// Proves the sender still holds the claim when it records the outcome.
    pub claim_token: String,
}

/// An in-app notification: one event as one recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: NotificationId,
    pub account_id: AccountId,
    pub event_seq: i64,
    /// The event type it comes from.
    pub kind: EventType,
    pub title: String,
    pub message: String,
    /// An API path about the subject (a task, the wallet, a webhook).
    pub link: Option<String>,
    pub read_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait WebhookReads: Send {
    /// The account's webhook endpoints, oldest first.
    async fn webhook_endpoints(&mut self, account: &AccountId) -> Result<Vec<WebhookEndpoint>>;
    async fn webhook_endpoint(&mut self, id: &WebhookId) -> Result<Option<WebhookEndpoint>>;
    /// The active endpoints of these accounts.
    async fn active_endpoints(&mut self, accounts: &[AccountId]) -> Result<Vec<WebhookEndpoint>>;
    /// `(task, requester, url)` for those of these tasks that have a one-off webhook URL.
    async fn task_webhook_urls(&mut self, tasks: &[String]) -> Result<Vec<(String, AccountId, String)>>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries(
        &mut self,
        endpoint: &WebhookId,
        status: Option<DeliveryStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WebhookDelivery>>;
    async fn delivery(&mut self, id: &DeliveryId) -> Result<Option<WebhookDelivery>>;
    /// The attempts of these deliveries, in attempt order.
    async fn delivery_attempts(&mut self, ids: &[DeliveryId]) -> Result<Vec<DeliveryAttempt>>;
    /// How many deliveries wait to be made (the webhook backlog).
    async fn pending_deliveries(&mut self) -> Result<u64>;
    /// The account's notifications, newest first, and how many are unread.
    async fn notifications(
        &mut self,
        account: &AccountId,
        unread_only: bool,
        offset: u64,
        limit: u64,
    ) -> Result<(Page<Notification>, u64)>;
}

#[async_trait]
pub trait WebhookWrites: Send {
    async fn insert_webhook_endpoint(&mut self, endpoint: &WebhookEndpoint) -> Result<()>;
    async fn webhook_endpoint_for_update(&mut self, id: &WebhookId) -> Result<Option<WebhookEndpoint>>;
    /// Writes back every mutable field of an endpoint.
    async fn update_webhook_endpoint(&mut self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// Deletes an endpoint with its delivery log.
    async fn delete_webhook_endpoint(&mut self, id: &WebhookId) -> Result<()>;
    async fn insert_deliveries(&mut self, deliveries: &[WebhookDelivery]) -> Result<()>;
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
    /// `token` (a sender whose claim ran out and was taken over records nothing); `false`
    /// otherwise.
    async fn finish_attempt(
        &mut self,
        delivery: &WebhookDelivery,
        token: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool>;
    /// Logs an attempt made outside a claim (a ping, sent by its request).
    async fn insert_attempt(&mut self, attempt: &DeliveryAttempt) -> Result<()>;
    /// Starts a delivery again: pending, due at `now`, a fresh round of retries; `false`
    /// (and nothing changed) while a sender holds a live claim on it.
    async fn restart_delivery(&mut self, id: &DeliveryId, now: Timestamp) -> Result<bool>;

    async fn insert_notifications(&mut self, notifications: &[Notification]) -> Result<()>;
    /// Marks one notification (or, with `None`, all) of `account` read; how many changed.
    async fn mark_notifications_read(
        &mut self,
        account: &AccountId,
        id: Option<&NotificationId>,
        now: Timestamp,
    ) -> Result<u64>;
}
