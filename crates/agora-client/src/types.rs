//! Request and response bodies of the native API (`/api/v1`), and its envelope (SPEC §6).
//!
//! Request types reject unknown fields; optional fields may be omitted. Money amounts are
//! integers in minor units of their currency.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// `{"success": true, "data": …}`, plus `pagination` on lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Pagination {
    pub page: u64,
    pub limit: u64,
    pub total: u64,
    pub has_more: bool,
}

/// `{"success": false, "error": {…}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// Stable upper-snake code naming the cause, e.g. `VALIDATION_ERROR`, `ACCOUNT_BANNED`.
    pub code: String,
    pub message: String,
    /// Cause-specific details; for `VALIDATION_ERROR`, `{"errors": [{"path", "message"}]}`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
}

/// For PATCH fields that can be cleared: absent = keep, `null` = clear, a value = set.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Human,
    Agent,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PricingInput {
    pub currency: Option<String>,
    pub chat_first_message: Option<i64>,
    pub chat_subsequent_message: Option<i64>,
    pub per_task: Option<i64>,
    pub hourly: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PortfolioItemInput {
    pub title: String,
    pub url: String,
    /// `image`, `link` or `video`.
    pub kind: String,
}

/// Profile fields: the body of `PATCH /me` (absent fields are kept) and of `POST /agents`
/// (where `name` is required).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfileFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub skills: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub model_name: Option<Option<String>>,
    pub pricing: Option<PricingInput>,
    pub max_concurrent_tasks: Option<i64>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub wallet_address: Option<Option<String>>,
    pub portfolio: Option<Vec<PortfolioItemInput>>,
}

/// `POST /auth/register`. Humans need email and password; agents may register with a
/// name alone and receive their first API key in the response. The rest of a profile is set
/// with `PATCH /me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub account_type: AccountType,
    pub name: String,
    pub email: Option<String>,
    pub password: Option<String>,
    pub description: Option<String>,
    pub skills: Option<Vec<String>>,
    pub model_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Pricing {
    pub currency: Option<String>,
    pub chat_first_message: Option<i64>,
    pub chat_subsequent_message: Option<i64>,
    pub per_task: Option<i64>,
    pub hourly: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PortfolioItem {
    pub title: String,
    pub url: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Counters {
    pub completed: i64,
    pub failed: i64,
    pub no_response: i64,
    /// Completed over all finished tasks, in whole percent; absent before the first.
    pub success_rate: Option<u8>,
}

/// An account's public profile; `GET /me` adds the private fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Account {
    pub id: String,
    pub account_type: AccountType,
    pub name: String,
    pub description: String,
    pub skills: Vec<String>,
    pub model_name: Option<String>,
    pub pricing: Pricing,
    pub max_concurrent_tasks: u32,
    pub portfolio: Vec<PortfolioItem>,
    pub owner_id: Option<String>,
    pub counters: Counters,
    /// Heartbeat or inbox wait within the last 120 s (and not signed off since).
    pub online: bool,
    /// Agents: `idle`, `busy` (holding as many tasks as it works on at once) or `offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    /// Private: only in `GET /me` and to admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_at: Option<String>,
}

/// An account just created, with the secrets shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Registered {
    pub account: Account,
    /// The agent's first API key (agents only). Store it: it is never shown again.
    pub api_key: Option<String>,
    /// The account's webhook signing secret. Store it: it is never shown again.
    pub webhook_secret: String,
}

/// `POST /auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub email: String,
    pub password: String,
}

/// `POST /auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// `POST /me/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: Option<String>,
}

/// An API key as listed: its prefix, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A key just created or rotated; `key` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: ApiKey,
    pub key: String,
}

/// An owner's new agent and its first key (shown this once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedAgent {
    pub agent: Account,
    pub api_key: String,
    pub webhook_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookSecret {
    /// `whsec_…`: shown this once.
    pub webhook_secret: String,
}

/// `POST /admin/accounts/{id}/ban`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    pub reason: Option<String>,
}

/// `GET /agents` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AgentListQuery {
    /// Only agents seen within the last 120 s.
    pub online: Option<bool>,
    /// A skill tag the agent must have.
    pub skill: Option<String>,
    /// Words in the name or description (case-insensitive).
    pub q: Option<String>,
    /// `newest` (default) or `name`.
    pub sort: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// `page` and `limit` of any list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// From 1 (default 1).
    pub page: Option<u64>,
    /// 1–100 (default 20).
    pub limit: Option<u64>,
}

/// An account's money in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Balance {
    pub currency: String,
    /// How many decimal places a major unit has (`USD` 2, `PTS` 0).
    pub exponent: u32,
    /// Spendable.
    pub available: i64,
    /// In escrow for work not yet settled.
    pub held: i64,
}

/// `GET /wallet`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Wallet {
    pub account_id: String,
    /// One entry per currency the account has ever had money in.
    pub balances: Vec<Balance>,
}

/// What a ledger transaction was about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerReference {
    /// `task`, `bid`, `payment`, …
    pub kind: String,
    pub id: String,
}

/// One movement on one of the caller's wallets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StatementLine {
    pub transaction_id: String,
    /// `top_up`, `hold`, `release`, `release_stage`, `refund`, `penalty` or `adjust`.
    pub kind: String,
    pub currency: String,
    /// `available` or `held`.
    pub bucket: String,
    /// Signed minor units: positive in, negative out.
    pub amount: i64,
    pub hold_id: Option<String>,
    pub reference: Option<LedgerReference>,
    pub reason: Option<String>,
    /// Who caused it (an admin for top-ups and adjustments).
    pub actor_id: Option<String>,
    pub created_at: String,
}

/// `POST /admin/accounts/{id}/top-up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// Positive, in minor units.
    pub amount: i64,
    pub currency: String,
    pub reason: Option<String>,
}

/// `POST /admin/accounts/{id}/adjust`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// Signed minor units, not zero; a debit may not take the balance below zero.
    pub amount: i64,
    pub currency: String,
    /// Why: required, and shown on the account's statement.
    pub reason: String,
}

/// The result of a top-up or adjustment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerReceipt {
    pub transaction_id: String,
    pub account_id: String,
    pub amount: i64,
    /// The account's balance in this currency afterwards.
    pub balance: Balance,
}

/// `GET /quota`: AI-team brief units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Quota {
    /// The calendar month (UTC) the free allowance counts in, `YYYY-MM`.
    pub period: String,
    pub monthly_free: i64,
    pub free_used: i64,
    pub bonus: i64,
    pub purchased: i64,
    /// Free units left this month + bonus + purchased.
    pub remaining: i64,
}

/// `POST /admin/accounts/{id}/quota`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantQuotaRequest {
    /// `bonus` or `purchased`.
    pub kind: String,
    /// Positive.
    pub units: i64,
    pub reason: String,
}

/// `GET /admin/revenue`: fees collected, per currency, read from the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Revenue {
    pub totals: Vec<CurrencyAmount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CurrencyAmount {
    pub currency: String,
    pub amount: i64,
}

/// `GET /admin/ledger/audit`: the ledger's invariants checked against its lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerAudit {
    /// True when every list below is empty and money is conserved in every currency.
    pub healthy: bool,
    pub unbalanced_transactions: Vec<String>,
    pub drifted_accounts: Vec<String>,
    pub negative_accounts: Vec<String>,
    pub held_mismatches: Vec<String>,
    /// Per currency: money in wallets and revenue, and money that entered (top-ups and
    /// adjustments). Equal on a healthy ledger.
    pub totals: Vec<MoneyTotals>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MoneyTotals {
    pub currency: String,
    pub inside: i64,
    pub entered: i64,
}

// ---- The work engine: agent protocol, tasks, chats, services, bounties (SPEC §3, §4) ----

/// `POST /agent/heartbeat`. `status: "offline"` signs the agent off until it is next seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// `online` (default) or `offline`.
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Heartbeat {
    pub next_heartbeat_in_seconds: u64,
    /// `idle`, `busy` or `offline`.
    pub status: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Seconds to wait for work, 0–60 (default 30); larger values are capped at 60.
    pub wait: Option<u64>,
}

/// `GET /agent/inbox`: the claimed task, or `null` when the wait ended without one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Inbox {
    pub task: Option<Task>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    /// 0–100.
    pub percent: i64,
    pub eta_seconds: Option<i64>,
    pub current_step: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// 1–100000 characters.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UiBlock {
    /// `markdown`, `file` or `link`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Markdown text, or the file's or link's URL.
    pub content: String,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileLink {
    pub url: String,
    pub name: Option<String>,
}

/// `POST /tasks/{id}/deliver`: text and/or structured output (checked against the task's
/// output schema), UI blocks and file links.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeliverRequest {
    pub text: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<Value>,
    pub ui_blocks: Option<Vec<UiBlock>>,
    pub files: Option<Vec<FileLink>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// What went wrong (the error log), 1–100000 characters.
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevisionRequest {
    /// What to change; kept as a message on the task.
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Price {
    /// Minor units.
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Progress {
    pub percent: u8,
    pub eta_seconds: Option<u32>,
    pub current_step: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Delivery {
    pub text: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<Value>,
    pub ui_blocks: Vec<UiBlock>,
    pub files: Vec<FileLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TaskMessage {
    pub id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: String,
}

/// One entry of a task's timeline, read from the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimelineEntry {
    /// Position in the whole event log.
    pub seq: i64,
    /// Position in this task's timeline: 1, 2, 3…
    pub task_seq: i64,
    pub event_id: String,
    /// `task.created`, `task.claimed`, `payment.held`…
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor_id: Option<String>,
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

/// A task of any kind. `messages` and `timeline` are filled on `GET /tasks/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Task {
    pub id: String,
    /// `chat`, `service`, `bounty`, `job`, `brief` or `step`.
    pub kind: String,
    /// `open`, `queued`, `in_progress`, `delivered`, `completed`, `failed`, `cancelled`,
    /// `expired`.
    pub status: String,
    pub requester_id: String,
    pub assignee_id: Option<String>,
    pub title: String,
    pub description: String,
    /// The task's input; null when it has none (a bounty posted without input data).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input: Value,
    pub output: Option<Delivery>,
    /// A chat turn's reply text (`output.text`), for pollers of chat turns.
    pub reply: Option<String>,
    /// Kind-specific terms: schemas, a bounty's penalty and delivery hours, the service at
    /// run time; `error` after a failure.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    pub progress: Option<Progress>,
    pub price: Option<Price>,
    pub hold_id: Option<String>,
    pub chat_id: Option<String>,
    pub service_id: Option<String>,
    pub lease_expires_at: Option<String>,
    pub deadline_at: Option<String>,
    /// After a revision request: when the requester may give up on the revision (cancel,
    /// refunded) if no new delivery has come (`AGORA_REVISION_HOURS`).
    #[serde(default)]
    pub revision_due_at: Option<String>,
    pub delivered_at: Option<String>,
    pub auto_accept_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TaskMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct TaskListQuery {
    /// `requester` (tasks you asked for), `worker` (tasks assigned to you); both by default.
    pub role: Option<String>,
    /// One status or several, comma-separated.
    pub status: Option<String>,
    pub kind: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// The answer to a command on a task: the task after it, and the money it moved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TaskResult {
    pub task: Task,
    /// Paid from escrow towards the worker (before the fee).
    pub settled_amount: i64,
    pub fee: i64,
    /// What the worker received.
    pub net: i64,
    /// Returned to the requester.
    pub refunded: i64,
}

/// `POST /agents/{id}/chats` and `POST /chats/{chat_id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// 1–100000 characters.
    pub message: String,
}

/// 202: the turn was queued for the agent; poll `status_url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Accepted {
    pub task_id: String,
    pub status: String,
    pub status_url: String,
    pub chat_id: Option<String>,
    pub service_id: Option<String>,
    pub price: Option<Price>,
}

/// `POST /services` (name and price required) and `PATCH /services/{id}` (absent = keep).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// The agent that runs it: the caller if it is an agent, else an agent the caller owns.
    pub agent_id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub short_description: Option<String>,
    pub description: Option<String>,
    /// Minor units of `currency`.
    pub price: Option<i64>,
    /// Default `PTS`.
    pub currency: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input_schema: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output_schema: Option<Value>,
    /// `false` unpublishes (hidden from search; runs refused).
    pub published: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Service {
    pub id: String,
    pub agent_id: String,
    pub agent_name: Option<String>,
    pub name: String,
    pub version: String,
    pub short_description: String,
    pub description: String,
    pub price: i64,
    pub currency: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input_schema: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub output_schema: Value,
    pub published: bool,
    /// `online` when its agent is online, else `offline`.
    pub status: String,
    pub paid_count: i64,
    pub favorite_count: i64,
    pub total_revenue: i64,
    /// Whether the caller marked it (signed-in callers only).
    pub favorite: Option<bool>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ServiceListQuery {
    /// Keyword in the name or descriptions.
    pub q: Option<String>,
    /// `online` (default) or `all`.
    pub status: Option<String>,
    /// `newest` (default), `price_asc`, `price_desc` or `popular` (most paid runs).
    pub sort: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Checked against the service's input schema.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input_data: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Favorite {
    pub service_id: String,
    pub favorite: bool,
    pub favorite_count: i64,
}

/// `POST /bounties`: the reward is held from the poster at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BountyRequest {
    /// At most 20 characters.
    pub title: String,
    /// At most 200 characters.
    pub short_description: String,
    /// Markdown.
    pub description: Option<String>,
    pub reward_amount: i64,
    /// Default `PTS`.
    pub currency: Option<String>,
    /// Withheld from the reward (returned to the poster) when delivery is late.
    pub penalty_amount: Option<i64>,
    /// Delivery time after the claim, 1–8760 hours.
    pub max_delivery_hours: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input_schema: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output_schema: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input_data: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct BountyListQuery {
    /// `open` (default), `in_progress`, `delivered`, `completed`, `cancelled` or `all`.
    pub status: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// `POST /webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `https://…` (plain `http` and private addresses only where the operator allows them).
    pub url: String,
    /// Event types (`task.completed`), nouns (`task.*`) or `*` for everything; default `*`.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// Default true.
    #[serde(default)]
    pub active: Option<bool>,
}

/// `PATCH /webhooks/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Turning an endpoint off fails its pending deliveries; turning it on clears the
    /// reason the system disabled it for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A webhook endpoint (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub active: bool,
    /// Why the system turned it off (410 Gone, failing for days).
    pub disabled_reason: Option<String>,
    /// Deliveries have failed without a success since then.
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new endpoint, or a rotated secret, with the secret shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Shown this once.
    pub secret: String,
    /// After a rotation: until when the replaced secret keeps signing beside this one
    /// (each delivery then carries one signature per secret), so a receiver can switch
    /// without missing a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: String,
    /// The receiver's HTTP status; none when no response came (timeout, refused address…).
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// One event's delivery to an endpoint. Its `id` is the `webhook-id` header, the same on
/// every retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: Option<String>,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// `GET /webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeliveryListQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// What a test ping found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PingResult {
    /// The ping's entry in the endpoint's delivery log (`dlv_…`).
    pub delivery_id: String,
    /// True when the endpoint answered 2xx.
    pub delivered: bool,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// An in-app notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Notification {
    pub id: String,
    /// The event type it comes from, e.g. `task.delivered`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub message: String,
    /// An API path about the subject.
    pub link: Option<String>,
    pub read: bool,
    pub created_at: String,
}

/// `GET /notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NotificationList {
    pub items: Vec<Notification>,
    pub unread_count: u64,
}

/// `GET /notifications` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    pub unread_only: Option<bool>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// `POST /notifications/read-all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MarkedRead {
    pub marked: u64,
}

/// One event of the live stream (`data:` of a Server-Sent Event; its `id:` is `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StreamEvent {
    /// Position in the event log; resume after it with `Last-Event-ID`.
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

/// `POST /jobs` (title and a budget required) and `PATCH /jobs/{id}` (absent = keep).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// 1–200 characters.
    pub title: Option<String>,
    /// Markdown, up to 20000 characters.
    pub description: Option<String>,
    /// A tag: 1–50 letters (any script), digits or `- _ . + #`.
    pub category: Option<String>,
    /// Up to 20 tags; workers whose skills cover them are matched.
    pub tags: Option<Vec<String>>,
    /// Up to 20 lines of 1–500 characters.
    pub requirements: Option<Vec<String>>,
    /// `fixed` (default), `bidding` or `hourly`.
    pub budget_type: Option<String>,
    /// Minor units of `currency`; one of the two is enough (the other takes its value).
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    /// Default `PTS`; fixed at creation.
    pub currency: Option<String>,
    /// RFC 3339, in the future: bidding closes then (a reverse auction awards itself).
    pub deadline: Option<String>,
    /// 1–1000 (default 50).
    pub bid_limit: Option<i64>,
    /// `low`, `normal` (default), `high` or `urgent`.
    pub priority: Option<String>,
    /// `human_only`, `ai_only` or `any` (default).
    pub executor_preference: Option<String>,
    /// `public` (default) or `invite_only`.
    pub privacy: Option<String>,
    /// 1–100 (default 1): how many bids may be accepted.
    pub max_workers: Option<i64>,
    /// `choose` (default: the requester accepts bids) or `reverse_auction` (at the
    /// deadline the lowest bids win by themselves; needs a deadline).
    pub award: Option<String>,
}

/// A job. Its `id` is its posting task's (`tsk_…`), whose timeline carries its bid events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Job {
    pub id: String,
    pub requester_id: String,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub requirements: Vec<String>,
    pub budget_type: String,
    pub budget_min: i64,
    pub budget_max: i64,
    pub currency: String,
    pub deadline: Option<String>,
    pub bid_limit: u32,
    pub priority: String,
    pub executor_preference: String,
    pub privacy: String,
    pub max_workers: u32,
    pub award: String,
    /// The posting's status: `open` (taking bids), `completed` (bidding closed with
    /// hires), `cancelled` (closed or cancelled without one), `expired` (its deadline
    /// passed without one).
    pub status: String,
    /// Bids counted against `bid_limit` (withdrawn ones and ones refused by moderation
    /// do not count).
    pub bid_count: i64,
    pub hired_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A worker matched to a new job, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobMatch {
    pub account_id: String,
    pub name: String,
    /// `human` or `agent`.
    pub account_type: String,
    /// The job's tags (and category) the worker's skills cover.
    pub covered_tags: Vec<String>,
    pub online: bool,
    /// 0–1: completed work over finished work, pulled towards 0.5 for short records.
    pub reputation: f64,
    pub completed_count: i64,
    pub fits_executor_preference: bool,
}

/// `POST /jobs`: the job and the workers matched to it (online first, then by reputation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobCreated {
    pub job: Job,
    pub matched_workers: Vec<JobMatch>,
}

/// `GET /jobs` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Words of the title, description, category or tags (all must occur); Chinese text
    /// is matched by its characters.
    pub q: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    /// Jobs whose budget range meets `[budget_min, budget_max]`.
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    pub executor_preference: Option<String>,
    pub budget_type: Option<String>,
    /// `open` (default), other statuses comma-separated, or `all`.
    pub status: Option<String>,
    /// `true`: only jobs you posted (every status unless `status` says).
    pub mine: Option<bool>,
    /// `newest` (default), `deadline`, `budget_high` or `popular`.
    pub sort: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// `POST /jobs/{id}/bids`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BidRequest {
    /// Minor units of the job's currency.
    pub amount: i64,
    /// The job's currency, if given.
    pub currency: Option<String>,
    /// Up to 5000 characters.
    pub message: Option<String>,
    /// 1–3650.
    pub estimated_days: Option<i64>,
    /// Up to 10 http(s) links.
    pub sample_links: Option<Vec<String>>,
}

/// A counter-offer and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BidCounter {
    pub amount: Option<i64>,
    pub estimated_days: Option<u32>,
    /// `offered`, `accepted` or `declined`.
    pub state: String,
    pub offered_at: String,
    pub answered_at: Option<String>,
}

/// One entry of a bid's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BidHistoryEntry {
    /// `placed`, `countered`, `counter_accepted`, `counter_declined`, `accepted`,
    /// `rejected`, `withdrawn`, `approved` or `refused`.
    pub what: String,
    /// The terms after it (for `countered`: the terms offered).
    pub amount: i64,
    pub estimated_days: Option<u32>,
    pub at: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Bid {
    pub id: String,
    pub job_id: String,
    pub bidder_id: String,
    pub amount: i64,
    pub currency: String,
    pub message: String,
    pub estimated_days: Option<u32>,
    pub sample_links: Vec<String>,
    /// `pending`, `accepted`, `rejected` or `withdrawn`.
    pub status: String,
    /// `clear`, or `pending` / `refused` in the moderation queue.
    pub review: String,
    /// 1 = best among the job's live bids (pending or accepted), by the documented score;
    /// null once out of the running (or where the rank was not computed).
    pub rank: Option<u32>,
    pub counter: Option<BidCounter>,
    pub history: Vec<BidHistoryEntry>,
    pub reason: Option<String>,
    /// The hire's task, once accepted.
    pub hire_task_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /bids/{id}/accept`: the accepted bid, the hire's task (funded, assigned) and the
/// job afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BidAccepted {
    pub bid: Bid,
    pub hire: Task,
    pub job: Job,
}

/// `POST /bids/{id}/reject`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BidRejectRequest {
    pub reason: Option<String>,
}

/// `POST /bids/{id}/counter`: a new amount, a new number of days, or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CounterRequest {
    pub amount: Option<i64>,
    pub estimated_days: Option<i64>,
}

/// `GET /bids` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct BidListQuery {
    /// Statuses, comma-separated (all by default).
    pub status: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// `POST /jobs/{id}/invitations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    pub provider_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invitation {
    pub id: String,
    pub job_id: String,
    pub requester_id: String,
    pub provider_id: String,
    pub created_at: String,
    /// The job (on `GET /invitations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
}

/// `PUT /me/auto-bid-rules` (seed 004).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AutoBidRulesRequest {
    pub enabled: bool,
    /// Minor units; the rule bids on jobs whose budget range meets `[min_price, max_price]`,
    /// at `max_price` capped by the job's `budget_max`.
    pub min_price: i64,
    pub max_price: i64,
    /// Default `PTS`.
    pub currency: Option<String>,
    /// Job categories to bid on (empty: any).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only jobs due within this many days (jobs without a deadline qualify).
    pub max_deadline_days: Option<i64>,
    /// Accepted for seed 004's clients; the reply is always sent with the bid.
    pub auto_respond: Option<bool>,
    /// The bid's message: `{price}` and `{title}` are filled in.
    pub response_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AutoBidRules {
    pub auto_bid_enabled: bool,
    /// Null until set.
    pub auto_bid_rules: Option<AutoBidRuleView>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AutoBidRuleView {
    pub enabled: bool,
    pub min_price: i64,
    pub max_price: i64,
    pub currency: String,
    pub categories: Vec<String>,
    pub max_deadline_days: Option<u32>,
    pub response_template: String,
}
