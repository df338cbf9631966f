//! The SQL that SQLite and PostgreSQL share, written once.
//!
//! This file is not a module of `agora-store`: each backend crate includes it with
//! `#[path = "../../agora-store/sql/shared.rs"] mod shared;` after defining, in its root,
//! `Db` (its sqlx driver), `BackendStore` (its store type, with a `pool` field), `BACKEND`,
//! `FOR_UPDATE` (the row-lock suffix; empty on SQLite, whose write transactions already
//! hold the database lock) and `begin` (how it opens a write transaction).
//!
//! Why a shared source file instead of generic code: sqlx code generic over its `Database`
//! trait needs an `Encode + Decode + Type` bound for every column type on every function,
//! which buries the SQL. Compiled once per backend, the same text gets concrete types, and
//! each backend stays free to replace any query with its own (claims with SKIP LOCKED,
//! LISTEN/NOTIFY) in its own crate. Every statement here is portable: `$n` parameters,
//! `RETURNING`, `ON CONFLICT … DO UPDATE … WHERE`, integer millisecond times, JSON as text.

use std::collections::HashMap;

use agora_core::{
    AccountId, ApiKeyId, ChatId, DeliveryId, EventId, HoldId, LedgerTxId, MessageId, NotificationId,
    QuotaMovementId, ServiceId, SessionId, TaskId, Timestamp, WebhookId,
    account::{Account, AccountKind, Counters, Email, Pricing, Profile, Role},
    ledger::{Bucket, LedgerAccount, Posting, TxKind},
    money::Currency,
    task::{TaskKind, TaskStatus},
    work::ServiceTerms,
};
use agora_store::{
    AgentQuery, AgentSort, ApiKeyRecord, Balance, Chat, Conflict, Credential, DeliveryAttempt, DeliveryJob,
    DeliveryStatus, Due, Event, Hold, IdempotencyRecord, LedgerAudit, NewAccount, NewApiKey, NewEvent,
    NewLedgerTx, NewSession, Notification, Outcome, Page, Principal, QuotaBucket, QuotaState, Reference,
    Refusal, Result, Service, ServiceQuery, ServiceSort, StatementLine, Store, StoreError, Task, TaskMessage,
    TaskQuery, Tx, Wakeup, WebhookDelivery, WebhookEndpoint,
};
use async_trait::async_trait;
use sqlx::Row;
use tokio::sync::broadcast;

use super::{BACKEND, BackendStore, Db, FOR_UPDATE, SKIP_LOCKED, Waker, begin};

type DbRow = <Db as sqlx::Database>::Row;
type Conn = <Db as sqlx::Database>::Connection;

/// The account columns, always selected from `accounts a`.
macro_rules! account_cols {
    () => {
        "a.id, a.kind, a.role, a.name, a.email, a.owner_id, a.description, a.skills, a.model_name, \
         a.pricing, a.max_concurrent_tasks, a.wallet_address, a.portfolio, a.completed_count, \
         a.failed_count, a.no_response_count, a.banned_at, a.last_seen_at, a.offline_at, a.created_at, a.updated_at"
    };
}

macro_rules! api_key_cols {
    () => {
        "id, account_id, name, display_prefix, created_at, last_used_at, revoked_at"
    };
}

macro_rules! event_cols {
    () => {
        "seq, task_seq, id, type, actor_id, task_id, payload, created_at"
    };
}

macro_rules! task_cols {
    () => {
        "id, kind, status, requester_id, assignee_id, title, description, input, output, details, progress, \
         price, currency, hold_id, chat_id, service_id, lease_expires_at, deadline_at, delivered_at, \
         auto_accept_at, created_at, updated_at, webhook_url"
    };
}

macro_rules! chat_cols {
    () => {
        "id, requester_id, agent_id, messages, open_task_id, turns, created_at, updated_at"
    };
}

macro_rules! service_cols {
    () => {
        "s.id, s.agent_id, s.name, s.version, s.short_description, s.description, s.price, s.currency, \
         s.input_schema, s.output_schema, s.published, s.paid_count, s.favorite_count, s.total_revenue, \
         s.created_at, s.updated_at"
    };
}

macro_rules! endpoint_cols {
    () => {
        "id, account_id, url, description, event_types, secret, active, disabled_reason, failing_since, \
         created_at, updated_at"
    };
}

macro_rules! delivery_cols {
    () => {
        "id, endpoint_id, account_id, url, event_seq, event_type, task_id, status, attempts, round_attempts, \
         next_attempt_at, last_status_code, last_error, last_attempt_at, delivered_at, created_at, event_id"
    };
}

macro_rules! notification_cols {
    () => {
        "id, account_id, event_seq, type, title, message, link, read_at, created_at"
    };
}

/// Online: seen within the window (`$n` is its start) and not signed off since.
macro_rules! online_since {
    ($n:literal) => {
        concat!("(a.last_seen_at >= ", $n, " AND (a.offline_at IS NULL OR a.offline_at < a.last_seen_at))")
    };
}

macro_rules! hold_cols {
    () => {
        "id, payer_id, currency, amount, remaining, ref_kind, ref_id, created_at"
    };
}

fn hold_from_row(r: &DbRow) -> Result<Hold> {
    Ok(Hold {
        id: HoldId::from_trusted(r.try_get("id").map_err(err)?),
        payer_id: AccountId::from_trusted(r.try_get("payer_id").map_err(err)?),
        currency: Currency::from_trusted(r.try_get("currency").map_err(err)?),
        amount: r.try_get("amount").map_err(err)?,
        remaining: r.try_get("remaining").map_err(err)?,
        reference: Reference {
            kind: r.try_get("ref_kind").map_err(err)?,
            id: r.try_get("ref_id").map_err(err)?,
        },
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
    })
}

fn reference_from_row(r: &DbRow) -> Result<Option<Reference>> {
    let kind: Option<String> = r.try_get("ref_kind").map_err(err)?;
    let id: Option<String> = r.try_get("ref_id").map_err(err)?;
    Ok(kind.zip(id).map(|(kind, id)| Reference { kind, id }))
}

fn bucket_name(a: &LedgerAccount) -> &'static str {
    match a {
        LedgerAccount::Wallet { bucket, .. } => bucket.as_str(),
        LedgerAccount::Revenue(_) => "revenue",
        LedgerAccount::Funding(_) => "funding",
    }
}

/// Maps a driver error; a unique violation becomes the conflict the caller names.
pub(crate) fn db_err(conflict: Option<Conflict>) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match (&e, conflict) {
        (sqlx::Error::Database(d), Some(c)) if d.is_unique_violation() => StoreError::Conflict(c),
        (sqlx::Error::RowNotFound, _) => StoreError::NotFound,
        _ => StoreError::Backend(e.to_string()),
    }
}

fn err(e: sqlx::Error) -> StoreError {
    db_err(None)(e)
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} is not valid: {value:?}"))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

fn json_col<T: serde::de::DeserializeOwned>(row: &DbRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col).map_err(err)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Backend(format!("column {col}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

fn account_from_row(r: &DbRow) -> Result<Account> {
    let kind: String = r.try_get("kind").map_err(err)?;
    let role: String = r.try_get("role").map_err(err)?;
    let max_concurrent: i64 = r.try_get("max_concurrent_tasks").map_err(err)?;
    Ok(Account {
        id: AccountId::from_trusted(r.try_get("id").map_err(err)?),
        kind: AccountKind::parse(&kind).ok_or_else(|| corrupt("account kind", &kind))?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        name: r.try_get("name").map_err(err)?,
        email: r.try_get::<Option<String>, _>("email").map_err(err)?.map(Email::from_trusted),
        owner_id: r.try_get::<Option<String>, _>("owner_id").map_err(err)?.map(AccountId::from_trusted),
        profile: Profile {
            description: r.try_get("description").map_err(err)?,
            skills: json_col(r, "skills")?,
            model_name: r.try_get("model_name").map_err(err)?,
            pricing: json_col::<Pricing>(r, "pricing")?,
            max_concurrent_tasks: u32::try_from(max_concurrent)
                .map_err(|_| corrupt("max_concurrent_tasks", &max_concurrent.to_string()))?,
            wallet_address: r.try_get("wallet_address").map_err(err)?,
            portfolio: json_col(r, "portfolio")?,
        },
        counters: Counters {
            completed: r.try_get("completed_count").map_err(err)?,
            failed: r.try_get("failed_count").map_err(err)?,
            no_response: r.try_get("no_response_count").map_err(err)?,
        },
        banned_at: ts(r.try_get("banned_at").map_err(err)?),
        last_seen_at: ts(r.try_get("last_seen_at").map_err(err)?),
        offline_at: ts(r.try_get("offline_at").map_err(err)?),
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(err)?),
    })
}

fn api_key_from_row(r: &DbRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_trusted(r.try_get("id").map_err(err)?),
        account_id: AccountId::from_trusted(r.try_get("account_id").map_err(err)?),
        name: r.try_get("name").map_err(err)?,
        display_prefix: r.try_get("display_prefix").map_err(err)?,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        last_used_at: ts(r.try_get("last_used_at").map_err(err)?),
        revoked_at: ts(r.try_get("revoked_at").map_err(err)?),
    })
}

async fn account_by_id(conn: &mut Conn, id: &AccountId, suffix: &str) -> Result<Option<Account>> {
    // `suffix` is one of this crate's constants, never input.
    let sql = format!("SELECT {} FROM accounts a WHERE a.id = $1{suffix}", account_cols!());
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(conn).await.map_err(err)?;
    row.as_ref().map(account_from_row).transpose()
}

/// An owner's balances, one per currency (only `currency`, when given), by currency.
async fn balances_of(
    conn: &mut Conn,
    owner: &AccountId,
    currency: Option<&Currency>,
) -> Result<Vec<Balance>> {
    let rows = sqlx::query(
        "SELECT currency, bucket, balance FROM ledger_accounts WHERE owner_id = $1 \
         AND ($2 IS NULL OR currency = $2) ORDER BY currency, bucket",
    )
    .bind(owner.as_str())
    .bind(currency.map(Currency::as_str))
    .fetch_all(conn)
    .await
    .map_err(err)?;
    let mut out: Vec<Balance> = Vec::new();
    for r in &rows {
        let currency = Currency::from_trusted(r.try_get("currency").map_err(err)?);
        let bucket: String = r.try_get("bucket").map_err(err)?;
        let balance: i64 = r.try_get("balance").map_err(err)?;
        if out.last().is_none_or(|b| b.currency != currency) {
            out.push(Balance { currency: currency.clone(), available: 0, held: 0 });
        }
        if let Some(b) = out.last_mut() {
            match bucket.as_str() {
                "available" => b.available = balance,
                "held" => b.held = balance,
                other => return Err(corrupt("wallet bucket", other)),
            }
        }
    }
    Ok(out)
}

/// An account's quota in `period`; a stored row of an earlier period has no free units used.
async fn quota_of(
    conn: &mut Conn,
    account: &AccountId,
    period: &str,
    monthly_free: i64,
) -> Result<QuotaState> {
    let row = sqlx::query("SELECT period, free_used, bonus, purchased FROM quotas WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(conn)
        .await
        .map_err(err)?;
    let mut q = QuotaState { period: period.to_owned(), monthly_free, free_used: 0, bonus: 0, purchased: 0 };
    if let Some(r) = row {
        let stored: String = r.try_get("period").map_err(err)?;
        if stored == period {
            q.free_used = r.try_get("free_used").map_err(err)?;
        }
        q.bonus = r.try_get("bonus").map_err(err)?;
        q.purchased = r.try_get("purchased").map_err(err)?;
    }
    Ok(q)
}

/// `%text%` for LIKE, with the pattern characters of `text` escaped (by `\`).
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `$1, $2, …, $n`: one bound parameter per value of an `IN (…)` list, so a page of rows
/// is looked up in one query instead of one each.
fn marks(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `($1, …, $cols), ($cols+1, …), …`: the VALUES of a multi-row insert.
fn row_marks(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            format!("({})", (1..=cols).map(|c| format!("${}", r * cols + c)).collect::<Vec<_>>().join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row insert: well under either backend's limit on bound parameters.
const INSERT_CHUNK: usize = 200;

fn limit_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Events after `after` with their audiences (one row per event and member).
async fn events_with_audience(
    conn: &mut Conn,
    after: i64,
    limit: u64,
) -> Result<Vec<(Event, Vec<AccountId>)>> {
    let rows = sqlx::query(
        "SELECT e.seq, e.task_seq, e.id, e.type, e.actor_id, e.task_id, e.payload, e.created_at, \
                a.account_id AS audience \
         FROM (SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) p \
         JOIN events e ON e.seq = p.seq LEFT JOIN event_audience a ON a.seq = e.seq \
         ORDER BY e.seq, a.account_id",
    )
    .bind(after)
    .bind(limit_of(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    let mut out: Vec<(Event, Vec<AccountId>)> = Vec::new();
    for r in &rows {
        let seq: i64 = r.try_get("seq").map_err(err)?;
        if out.last().is_none_or(|(e, _)| e.seq != seq) {
            out.push((event_from_row(r)?, Vec::new()));
        }
        if let (Some(member), Some((_, audience))) =
            (r.try_get::<Option<String>, _>("audience").map_err(err)?, out.last_mut())
        {
            audience.push(AccountId::from_trusted(member));
        }
    }
    Ok(out)
}

fn endpoint_from_row(r: &DbRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: WebhookId::from_trusted(r.try_get("id").map_err(err)?),
        account_id: AccountId::from_trusted(r.try_get("account_id").map_err(err)?),
        url: r.try_get("url").map_err(err)?,
        description: r.try_get("description").map_err(err)?,
        event_types: json_col(r, "event_types")?,
        secret: r.try_get("secret").map_err(err)?,
        active: r.try_get("active").map_err(err)?,
        disabled_reason: r.try_get("disabled_reason").map_err(err)?,
        failing_since: ts(r.try_get("failing_since").map_err(err)?),
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(err)?),
    })
}

fn delivery_from_row(r: &DbRow) -> Result<WebhookDelivery> {
    let status: String = r.try_get("status").map_err(err)?;
    Ok(WebhookDelivery {
        id: DeliveryId::from_trusted(r.try_get("id").map_err(err)?),
        endpoint_id: r.try_get::<Option<String>, _>("endpoint_id").map_err(err)?.map(WebhookId::from_trusted),
        account_id: AccountId::from_trusted(r.try_get("account_id").map_err(err)?),
        url: r.try_get("url").map_err(err)?,
        event_seq: r.try_get("event_seq").map_err(err)?,
        event_type: r.try_get("event_type").map_err(err)?,
        task_id: r.try_get("task_id").map_err(err)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?,
        attempts: r.try_get("attempts").map_err(err)?,
        round_attempts: r.try_get("round_attempts").map_err(err)?,
        next_attempt_at: Timestamp::from_millis(r.try_get("next_attempt_at").map_err(err)?),
        last_status_code: r.try_get("last_status_code").map_err(err)?,
        last_error: r.try_get("last_error").map_err(err)?,
        last_attempt_at: ts(r.try_get("last_attempt_at").map_err(err)?),
        delivered_at: ts(r.try_get("delivered_at").map_err(err)?),
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        event_id: EventId::from_trusted(r.try_get("event_id").map_err(err)?),
    })
}

fn notification_from_row(r: &DbRow) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId::from_trusted(r.try_get("id").map_err(err)?),
        account_id: AccountId::from_trusted(r.try_get("account_id").map_err(err)?),
        event_seq: r.try_get("event_seq").map_err(err)?,
        kind: r.try_get("type").map_err(err)?,
        title: r.try_get("title").map_err(err)?,
        message: r.try_get("message").map_err(err)?,
        link: r.try_get("link").map_err(err)?,
        read_at: ts(r.try_get("read_at").map_err(err)?),
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
    })
}

#[async_trait]
impl Store for BackendStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(SqlTx {
            tx: begin(&self.pool).await.map_err(err)?,
            events: Vec::new(),
            wakes: Vec::new(),
            waker: super::waker(self),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        account_by_id(&mut conn, id, "").await
    }

    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {} FROM accounts a WHERE a.id IN ({})", account_cols!(), marks(ids.len()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(account_from_row).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn account_login(&self, email: &Email) -> Result<Option<(Account, Option<String>)>> {
        let sql = concat!("SELECT ", account_cols!(), ", a.password_hash FROM accounts a WHERE a.email = $1");
        let row = sqlx::query(sql).bind(email.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((account_from_row(&r)?, r.try_get("password_hash").map_err(err)?))),
        }
    }

    async fn has_admin(&self) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM accounts WHERE role = 'admin' LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        Ok(row.is_some())
    }

    #[tracing::instrument(skip_all)]
    async fn agents(&self, q: &AgentQuery) -> Result<Page<Account>> {
        // Skills are kept as a JSON list of restricted tags (see `parse_skill`), so `"tag"`
        // matches exactly one whole element of the list without any escaping.
        let filter = concat!(
            "a.kind = 'agent' AND a.banned_at IS NULL \
             AND ($1 IS NULL OR a.skills LIKE $1) \
             AND ($2 IS NULL OR lower(a.name) LIKE $2 ESCAPE '\\' OR lower(a.description) LIKE $2 ESCAPE '\\') \
             AND ($3 IS NULL OR ",
            online_since!("$3"),
            ")"
        );
        let order = match q.sort {
            AgentSort::Newest => "a.created_at DESC, a.id DESC",
            AgentSort::Name => "lower(a.name) ASC, a.id ASC",
        };
        let skill = q.skill.as_ref().map(|s| format!("%\"{s}\"%"));
        let text = q.text.as_deref().map(like_pattern);
        let seen = q.seen_since.map(Timestamp::millis);
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);

        // Only constants are formatted into the text; every value is a bound parameter.
        let sql = format!(
            "SELECT {} FROM accounts a WHERE {filter} ORDER BY {order} LIMIT $4 OFFSET $5",
            account_cols!()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(skill.as_deref())
            .bind(text.as_deref())
            .bind(seen)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let total: i64 =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM accounts a WHERE {filter}")))
                .bind(skill.as_deref())
                .bind(text.as_deref())
                .bind(seen)
                .fetch_one(&self.pool)
                .await
                .map_err(err)?
                .try_get("n")
                .map_err(err)?;
        Ok(Page { items: rows.iter().map(account_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    #[tracing::instrument(skip_all)]
    async fn principal_by_key(&self, key_hash: &str) -> Result<Option<Principal>> {
        let sql = concat!(
            "SELECT ",
            account_cols!(),
            ", k.id AS key_id, k.last_used_at AS key_last_used_at \
             FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        );
        let row = sqlx::query(sql).bind(key_hash).fetch_optional(&self.pool).await.map_err(err)?;
        row.map(|r| {
            Ok(Principal {
                account: account_from_row(&r)?,
                credential: Credential::ApiKey(ApiKeyId::from_trusted(r.try_get("key_id").map_err(err)?)),
                last_used_at: ts(r.try_get("key_last_used_at").map_err(err)?),
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn principal_by_access_token(
        &self,
        access_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Principal>> {
        let sql = concat!(
            "SELECT ",
            account_cols!(),
            ", s.id AS session_id FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.access_hash = $1 AND s.revoked_at IS NULL AND s.access_expires_at > $2"
        );
        let row = sqlx::query(sql)
            .bind(access_hash)
            .bind(now.millis())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| {
            Ok(Principal {
                account: account_from_row(&r)?,
                credential: Credential::Session(SessionId::from_trusted(
                    r.try_get("session_id").map_err(err)?,
                )),
                last_used_at: None,
            })
        })
        .transpose()
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now.millis())
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn api_keys(&self, account: &AccountId) -> Result<Vec<ApiKeyRecord>> {
        let sql = concat!(
            "SELECT ",
            api_key_cols!(),
            " FROM api_keys WHERE account_id = $1 ORDER BY (revoked_at IS NULL) DESC, created_at DESC, id DESC"
        );
        let rows = sqlx::query(sql).bind(account.as_str()).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn idempotency_record(
        &self,
        account: &AccountId,
        key: &str,
        not_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body, created_at FROM idempotency_keys \
             WHERE account_id = $1 AND idem_key = $2 AND created_at >= $3",
        )
        .bind(account.as_str())
        .bind(key)
        .bind(not_before.millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|r| {
            let status: i64 = r.try_get("status").map_err(err)?;
            Ok(IdempotencyRecord {
                account_id: account.clone(),
                key: key.to_owned(),
                request_hash: r.try_get("request_hash").map_err(err)?,
                status: u16::try_from(status).map_err(|_| corrupt("status", &status.to_string()))?,
                body: r.try_get("body").map_err(err)?,
                created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
            })
        })
        .transpose()
    }
    #[tracing::instrument(skip_all)]
    async fn balances(&self, owner: &AccountId) -> Result<Vec<Balance>> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        balances_of(&mut conn, owner, None).await
    }

    #[tracing::instrument(skip_all)]
    async fn statement(&self, owner: &AccountId, offset: u64, limit: u64) -> Result<Page<StatementLine>> {
        let rows = sqlx::query(
            "SELECT t.id, t.kind, t.currency, a.bucket, l.amount, t.actor_id, t.hold_id, t.ref_kind, t.ref_id, \
             t.reason, t.created_at \
             FROM ledger_lines l JOIN ledger_accounts a ON a.key = l.account_key \
             JOIN ledger_transactions t ON t.id = l.tx_id \
             WHERE a.owner_id = $1 ORDER BY t.created_at DESC, t.id DESC, a.bucket ASC LIMIT $2 OFFSET $3",
        )
        .bind(owner.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM ledger_lines l JOIN ledger_accounts a ON a.key = l.account_key \
             WHERE a.owner_id = $1",
        )
        .bind(owner.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(err)?
        .try_get("n")
        .map_err(err)?;
        let items = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get("kind").map_err(err)?;
                let bucket: String = r.try_get("bucket").map_err(err)?;
                Ok(StatementLine {
                    tx_id: LedgerTxId::from_trusted(r.try_get("id").map_err(err)?),
                    kind: TxKind::parse(&kind).ok_or_else(|| corrupt("ledger kind", &kind))?,
                    currency: Currency::from_trusted(r.try_get("currency").map_err(err)?),
                    bucket: match bucket.as_str() {
                        "available" => Bucket::Available,
                        "held" => Bucket::Held,
                        other => return Err(corrupt("wallet bucket", other)),
                    },
                    amount: r.try_get("amount").map_err(err)?,
                    actor_id: r
                        .try_get::<Option<String>, _>("actor_id")
                        .map_err(err)?
                        .map(AccountId::from_trusted),
                    hold_id: r
                        .try_get::<Option<String>, _>("hold_id")
                        .map_err(err)?
                        .map(HoldId::from_trusted),
                    reference: reference_from_row(r)?,
                    reason: r.try_get("reason").map_err(err)?,
                    created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Page { items, total: count(total) })
    }

    async fn revenue(&self) -> Result<Vec<(Currency, i64)>> {
        let rows = sqlx::query(
            "SELECT currency, balance FROM ledger_accounts WHERE bucket = 'revenue' ORDER BY currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    Currency::from_trusted(r.try_get("currency").map_err(err)?),
                    r.try_get("balance").map_err(err)?,
                ))
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn ledger_audit(&self) -> Result<LedgerAudit> {
        let keys = |rows: Vec<DbRow>, col: &str| -> Result<Vec<String>> {
            rows.iter().map(|r| r.try_get::<String, _>(col).map_err(err)).collect()
        };
        let unbalanced = sqlx::query(
            "SELECT tx_id FROM ledger_lines GROUP BY tx_id HAVING SUM(amount) <> 0 ORDER BY tx_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let drifted = sqlx::query(
            "SELECT a.key FROM ledger_accounts a LEFT JOIN \
             (SELECT account_key, SUM(amount) AS s FROM ledger_lines GROUP BY account_key) l \
             ON l.account_key = a.key WHERE a.balance <> COALESCE(l.s, 0) ORDER BY a.key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let negative = sqlx::query(
            "SELECT key FROM ledger_accounts WHERE bucket <> 'funding' AND balance < 0 ORDER BY key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        // Held wallets against the holds they stand for, both ways round.
        let held = sqlx::query(
            "SELECT a.key FROM ledger_accounts a LEFT JOIN \
             (SELECT payer_id, currency, SUM(remaining) AS r FROM holds GROUP BY payer_id, currency) h \
             ON h.payer_id = a.owner_id AND h.currency = a.currency \
             WHERE a.bucket = 'held' AND a.balance <> COALESCE(h.r, 0) \
             UNION ALL \
             SELECT h.payer_id AS key FROM holds h WHERE h.remaining > 0 AND NOT EXISTS \
             (SELECT 1 FROM ledger_accounts a WHERE a.owner_id = h.payer_id AND a.currency = h.currency \
              AND a.bucket = 'held')",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let sums = sqlx::query(
            "SELECT currency, \
             CAST(COALESCE(SUM(CASE WHEN bucket <> 'funding' THEN balance ELSE 0 END), 0) AS BIGINT) AS inside, \
             CAST(COALESCE(SUM(CASE WHEN bucket = 'funding' THEN -balance ELSE 0 END), 0) AS BIGINT) AS entered \
             FROM ledger_accounts GROUP BY currency ORDER BY currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        Ok(LedgerAudit {
            unbalanced_transactions: keys(unbalanced, "tx_id")?,
            drifted_accounts: keys(drifted, "key")?,
            negative_accounts: keys(negative, "key")?,
            held_mismatches: keys(held, "key")?,
            totals: sums
                .iter()
                .map(|r| {
                    Ok((
                        Currency::from_trusted(r.try_get("currency").map_err(err)?),
                        r.try_get("inside").map_err(err)?,
                        r.try_get("entered").map_err(err)?,
                    ))
                })
                .collect::<Result<_>>()?,
        })
    }

    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>> {
        let sql = concat!("SELECT ", hold_cols!(), " FROM holds WHERE id = $1");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        row.as_ref().map(hold_from_row).transpose()
    }

    async fn quota(&self, account: &AccountId, period: &str, monthly_free: i64) -> Result<QuotaState> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        quota_of(&mut conn, account, period, monthly_free).await
    }

    async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<Event>> {
        let sql = concat!("SELECT ", event_cols!(), " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sql)
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn events_with_audience_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        events_with_audience(&mut conn, after, limit).await
    }

    async fn account_events_after(&self, account: &AccountId, after: i64, limit: u64) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT e.seq, e.task_seq, e.id, e.type, e.actor_id, e.task_id, e.payload, e.created_at \
             FROM event_audience a JOIN events e ON e.seq = a.seq \
             WHERE a.account_id = $1 AND a.seq > $2 ORDER BY a.seq LIMIT $3",
        )
        .bind(account.as_str())
        .bind(after)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        sqlx::query("SELECT last_seq FROM event_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("last_seq"))
            .map_err(err)
    }

    async fn webhook_endpoints(&self, account: &AccountId) -> Result<Vec<WebhookEndpoint>> {
        let sql = concat!(
            "SELECT ",
            endpoint_cols!(),
            " FROM webhook_endpoints WHERE account_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).bind(account.as_str()).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn webhook_endpoint(&self, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let sql = concat!("SELECT ", endpoint_cols!(), " FROM webhook_endpoints WHERE id = $1");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn deliveries(
        &self,
        endpoint: &WebhookId,
        status: Option<DeliveryStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WebhookDelivery>> {
        let filter = "endpoint_id = $1 AND ($2 IS NULL OR status = $2)";
        let status = status.map(DeliveryStatus::as_str);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM webhook_deliveries WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            delivery_cols!()
        )))
        .bind(endpoint.as_str())
        .bind(status)
        .bind(limit_of(limit))
        .bind(limit_of(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE {filter}"
        )))
        .bind(endpoint.as_str())
        .bind(status)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(err)?;
        Ok(Page { items: rows.iter().map(delivery_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<WebhookDelivery>> {
        let sql = concat!("SELECT ", delivery_cols!(), " FROM webhook_deliveries WHERE id = $1");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn delivery_attempts(&self, ids: &[DeliveryId]) -> Result<Vec<DeliveryAttempt>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT delivery_id, attempt, at, status_code, duration_ms, error FROM webhook_attempts \
             WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
            marks(ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id.as_str());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryAttempt {
                    delivery_id: DeliveryId::from_trusted(r.try_get("delivery_id").map_err(err)?),
                    attempt: r.try_get("attempt").map_err(err)?,
                    at: Timestamp::from_millis(r.try_get("at").map_err(err)?),
                    status_code: r.try_get("status_code").map_err(err)?,
                    duration_ms: r.try_get("duration_ms").map_err(err)?,
                    error: r.try_get("error").map_err(err)?,
                })
            })
            .collect()
    }

    async fn pending_deliveries(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(err)?;
        Ok(count(n))
    }

    async fn notifications(
        &self,
        account: &AccountId,
        unread_only: bool,
        offset: u64,
        limit: u64,
    ) -> Result<(Page<Notification>, u64)> {
        let filter = if unread_only { "account_id = $1 AND read_at IS NULL" } else { "account_id = $1" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM notifications WHERE {filter} ORDER BY event_seq DESC, id DESC LIMIT $2 OFFSET $3",
            notification_cols!()
        )))
        .bind(account.as_str())
        .bind(limit_of(limit))
        .bind(limit_of(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(read_at) AS read FROM notifications WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        let total: i64 = row.try_get("total").map_err(err)?;
        let read: i64 = row.try_get("read").map_err(err)?;
        let unread = count(total - read);
        let listed = if unread_only { unread } else { count(total) };
        Ok((
            Page { items: rows.iter().map(notification_from_row).collect::<Result<_>>()?, total: listed },
            unread,
        ))
    }

    fn wakeups(&self) -> broadcast::Receiver<Wakeup> {
        super::subscribe(self)
    }

    async fn task(&self, id: &TaskId) -> Result<Option<Task>> {
        let sql = concat!("SELECT ", task_cols!(), " FROM tasks WHERE id = $1");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn tasks(&self, q: &TaskQuery) -> Result<Page<Task>> {
        // Only constants are formatted into the text; every value is a bound parameter.
        let who = if q.either {
            "(requester_id = $1 OR assignee_id = $2)"
        } else {
            "($1 IS NULL OR requester_id = $1) AND ($2 IS NULL OR assignee_id = $2)"
        };
        let filter = format!(
            "{who} AND ($3 IS NULL OR ',' || $3 || ',' LIKE '%,' || status || ',%') \
             AND ($4 IS NULL OR ',' || $4 || ',' LIKE '%,' || kind || ',%') \
             AND (NOT $5 OR assignee_id IS NOT NULL)"
        );
        let statuses = (!q.statuses.is_empty())
            .then(|| q.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
        let requester = q.requester.as_ref().map(AccountId::as_str);
        let assignee = q.assignee.as_ref().map(AccountId::as_str);
        let kinds =
            (!q.kinds.is_empty()).then(|| q.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
        let sql = format!(
            "SELECT {} FROM tasks WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7",
            task_cols!()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(requester)
            .bind(assignee)
            .bind(statuses.as_deref())
            .bind(kinds.as_deref())
            .bind(q.assigned_only)
            .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(q.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let total: i64 =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM tasks WHERE {filter}")))
                .bind(requester)
                .bind(assignee)
                .bind(statuses.as_deref())
                .bind(kinds.as_deref())
                .bind(q.assigned_only)
                .fetch_one(&self.pool)
                .await
                .map_err(err)?
                .try_get("n")
                .map_err(err)?;
        Ok(Page { items: rows.iter().map(task_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    async fn task_events(&self, id: &TaskId) -> Result<Vec<Event>> {
        let sql = concat!("SELECT ", event_cols!(), " FROM events WHERE task_id = $1 ORDER BY seq");
        let rows = sqlx::query(sql).bind(id.as_str()).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn task_messages(&self, id: &TaskId) -> Result<Vec<TaskMessage>> {
        let rows = sqlx::query(
            "SELECT id, task_id, author_id, body, created_at FROM task_messages WHERE task_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(TaskMessage {
                    id: MessageId::from_trusted(r.try_get("id").map_err(err)?),
                    task_id: TaskId::from_trusted(r.try_get("task_id").map_err(err)?),
                    author_id: AccountId::from_trusted(r.try_get("author_id").map_err(err)?),
                    body: r.try_get("body").map_err(err)?,
                    created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
                })
            })
            .collect()
    }

    async fn in_progress_counts(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT assignee_id, COUNT(*) AS n FROM tasks WHERE status = 'in_progress' \
             AND assignee_id IN ({}) GROUP BY assignee_id",
            marks(accounts.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in accounts {
            query = query.bind(a.as_str());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    AccountId::from_trusted(r.try_get("assignee_id").map_err(err)?),
                    r.try_get("n").map_err(err)?,
                ))
            })
            .collect()
    }

    async fn with_queued_work(&self, agents: &[AccountId]) -> Result<Vec<AccountId>> {
        let mut found = Vec::new();
        // In chunks, to stay far below either backend's limit on bound parameters.
        for chunk in agents.chunks(500) {
            let sql = format!(
                "SELECT DISTINCT assignee_id FROM tasks WHERE status = 'queued' AND assignee_id IN ({})",
                marks(chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                query = query.bind(a.as_str());
            }
            for r in query.fetch_all(&self.pool).await.map_err(err)? {
                found.push(AccountId::from_trusted(r.try_get("assignee_id").map_err(err)?));
            }
        }
        Ok(found)
    }

    async fn chat(&self, id: &ChatId) -> Result<Option<Chat>> {
        let sql = concat!("SELECT ", chat_cols!(), " FROM chats WHERE id = $1");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        row.as_ref().map(chat_from_row).transpose()
    }

    async fn service(&self, id: &ServiceId) -> Result<Option<Service>> {
        let sql = concat!("SELECT ", service_cols!(), " FROM services s WHERE s.id = $1");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(err)?;
        row.as_ref().map(service_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn services(&self, q: &ServiceQuery) -> Result<Page<Service>> {
        let filter = concat!(
            "a.banned_at IS NULL AND (($1 IS NULL AND s.published) OR s.agent_id = $1) \
             AND ($2 IS NULL OR lower(s.name) LIKE $2 ESCAPE '\\' OR lower(s.short_description) LIKE $2 ESCAPE '\\' \
                  OR lower(s.description) LIKE $2 ESCAPE '\\') \
             AND ($3 IS NULL OR ",
            online_since!("$3"),
            ") AND ($4 IS NULL OR s.currency = $4)"
        );
        let order = match q.sort {
            ServiceSort::Newest => "s.created_at DESC, s.id DESC",
            ServiceSort::PriceAsc => "s.price ASC, s.created_at DESC, s.id DESC",
            ServiceSort::PriceDesc => "s.price DESC, s.created_at DESC, s.id DESC",
            ServiceSort::MostPaid => "s.paid_count DESC, s.created_at DESC, s.id DESC",
        };
        let agent = q.agent.as_ref().map(AccountId::as_str);
        let text = q.text.as_deref().map(like_pattern);
        let online = q.online_since.map(Timestamp::millis);
        let sql = format!(
            "SELECT {} FROM services s JOIN accounts a ON a.id = s.agent_id WHERE {filter} \
             ORDER BY {order} LIMIT $5 OFFSET $6",
            service_cols!()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(agent)
            .bind(text.as_deref())
            .bind(online)
            .bind(q.currency.as_ref().map(Currency::as_str))
            .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(q.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM services s JOIN accounts a ON a.id = s.agent_id WHERE {filter}"
        )))
        .bind(agent)
        .bind(text.as_deref())
        .bind(online)
        .bind(q.currency.as_ref().map(Currency::as_str))
        .fetch_one(&self.pool)
        .await
        .map_err(err)?
        .try_get("n")
        .map_err(err)?;
        Ok(Page { items: rows.iter().map(service_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    async fn is_favorite(&self, service: &ServiceId, account: &AccountId) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM service_favorites WHERE service_id = $1 AND account_id = $2")
                .bind(service.as_str())
                .bind(account.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        Ok(row.is_some())
    }
}

fn event_from_row(r: &DbRow) -> Result<Event> {
    Ok(Event {
        seq: r.try_get("seq").map_err(err)?,
        task_seq: r.try_get("task_seq").map_err(err)?,
        id: EventId::from_trusted(r.try_get("id").map_err(err)?),
        event_type: r.try_get("type").map_err(err)?,
        actor_id: r.try_get::<Option<String>, _>("actor_id").map_err(err)?.map(AccountId::from_trusted),
        task_id: r.try_get("task_id").map_err(err)?,
        payload: json_col(r, "payload")?,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
    })
}

fn opt_json<T: serde::de::DeserializeOwned>(row: &DbRow, col: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(col).map_err(err)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Backend(format!("column {col}: {e}"))))
        .transpose()
}

fn task_from_row(r: &DbRow) -> Result<Task> {
    let kind: String = r.try_get("kind").map_err(err)?;
    let status: String = r.try_get("status").map_err(err)?;
    let id_of = |col: &str| -> Result<Option<String>> { r.try_get::<Option<String>, _>(col).map_err(err) };
    Ok(Task {
        id: TaskId::from_trusted(r.try_get("id").map_err(err)?),
        kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("task kind", &kind))?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status", &status))?,
        requester_id: AccountId::from_trusted(r.try_get("requester_id").map_err(err)?),
        assignee_id: id_of("assignee_id")?.map(AccountId::from_trusted),
        title: r.try_get("title").map_err(err)?,
        description: r.try_get("description").map_err(err)?,
        input: json_col(r, "input")?,
        output: opt_json(r, "output")?,
        details: json_col(r, "details")?,
        progress: opt_json(r, "progress")?,
        price: r.try_get("price").map_err(err)?,
        currency: id_of("currency")?.map(Currency::from_trusted),
        hold_id: id_of("hold_id")?.map(HoldId::from_trusted),
        chat_id: id_of("chat_id")?.map(ChatId::from_trusted),
        service_id: id_of("service_id")?.map(ServiceId::from_trusted),
        webhook_url: id_of("webhook_url")?,
        lease_expires_at: ts(r.try_get("lease_expires_at").map_err(err)?),
        deadline_at: ts(r.try_get("deadline_at").map_err(err)?),
        delivered_at: ts(r.try_get("delivered_at").map_err(err)?),
        auto_accept_at: ts(r.try_get("auto_accept_at").map_err(err)?),
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(err)?),
    })
}

fn chat_from_row(r: &DbRow) -> Result<Chat> {
    Ok(Chat {
        id: ChatId::from_trusted(r.try_get("id").map_err(err)?),
        requester_id: AccountId::from_trusted(r.try_get("requester_id").map_err(err)?),
        agent_id: AccountId::from_trusted(r.try_get("agent_id").map_err(err)?),
        messages: json_col(r, "messages")?,
        open_task_id: r.try_get::<Option<String>, _>("open_task_id").map_err(err)?.map(TaskId::from_trusted),
        turns: r.try_get("turns").map_err(err)?,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(err)?),
    })
}

fn service_from_row(r: &DbRow) -> Result<Service> {
    Ok(Service {
        id: ServiceId::from_trusted(r.try_get("id").map_err(err)?),
        agent_id: AccountId::from_trusted(r.try_get("agent_id").map_err(err)?),
        terms: ServiceTerms {
            name: r.try_get("name").map_err(err)?,
            version: r.try_get("version").map_err(err)?,
            short_description: r.try_get("short_description").map_err(err)?,
            description: r.try_get("description").map_err(err)?,
            price: r.try_get("price").map_err(err)?,
            input_schema: json_col(r, "input_schema")?,
            output_schema: json_col(r, "output_schema")?,
        },
        currency: Currency::from_trusted(r.try_get("currency").map_err(err)?),
        published: r.try_get("published").map_err(err)?,
        paid_count: r.try_get("paid_count").map_err(err)?,
        favorite_count: r.try_get("favorite_count").map_err(err)?,
        total_revenue: r.try_get("total_revenue").map_err(err)?,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(err)?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(err)?),
    })
}

/// The row of `from` (a table, with an alias if `cols` uses one) whose `id` is `id`, locked
/// against concurrent writers until the transaction ends.
async fn locked_row(conn: &mut Conn, cols: &str, from: &str, id: &str) -> Result<Option<DbRow>> {
    // `cols` and `from` are this file's constants, never input.
    let sql = format!("SELECT {cols} FROM {from} WHERE id = $1{FOR_UPDATE}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await.map_err(err)
}

fn opt_to_json<T: serde::Serialize>(v: Option<&T>) -> Result<Option<String>> {
    v.map(to_json).transpose()
}

/// A write transaction of this backend.
pub(crate) struct SqlTx {
    tx: sqlx::Transaction<'static, Db>,
    /// Events appended so far; written at commit (see `flush_events`).
    events: Vec<NewEvent>,
    /// Inboxes to wake once this transaction commits.
    wakes: Vec<AccountId>,
    waker: Waker,
}

#[async_trait]
impl Tx for SqlTx {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let events = !self.events.is_empty();
        self.flush_events().await?;
        super::before_commit(&self.waker, &mut self.tx, &self.wakes, events).await?;
        let Self { tx, wakes, waker, .. } = *self;
        tx.commit().await.map_err(err)?;
        super::after_commit(&waker, wakes, events);
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn insert_account(&mut self, a: &NewAccount) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (id, kind, role, name, email, password_hash, owner_id, description, skills, \
             model_name, pricing, max_concurrent_tasks, wallet_address, portfolio, webhook_secret, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
        )
        .bind(a.id.as_str())
        .bind(a.kind.as_str())
        .bind(a.role.as_str())
        .bind(&a.name)
        .bind(a.email.as_ref().map(Email::as_str))
        .bind(a.password_hash.as_deref())
        .bind(a.owner_id.as_ref().map(AccountId::as_str))
        .bind(&a.profile.description)
        .bind(to_json(&a.profile.skills)?)
        .bind(a.profile.model_name.as_deref())
        .bind(to_json(&a.profile.pricing)?)
        .bind(i64::from(a.profile.max_concurrent_tasks))
        .bind(a.profile.wallet_address.as_deref())
        .bind(to_json(&a.profile.portfolio)?)
        .bind(&a.webhook_secret)
        .bind(a.created_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err(Some(Conflict::Email)))?;
        Ok(())
    }

    async fn account_for_update(&mut self, id: &AccountId) -> Result<Option<Account>> {
        account_by_id(&mut self.tx, id, FOR_UPDATE).await
    }

    async fn update_profile(
        &mut self,
        id: &AccountId,
        name: &str,
        p: &Profile,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET name = $2, description = $3, skills = $4, model_name = $5, pricing = $6, \
             max_concurrent_tasks = $7, wallet_address = $8, portfolio = $9, updated_at = $10 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(&p.description)
        .bind(to_json(&p.skills)?)
        .bind(p.model_name.as_deref())
        .bind(to_json(&p.pricing)?)
        .bind(i64::from(p.max_concurrent_tasks))
        .bind(p.wallet_address.as_deref())
        .bind(to_json(&p.portfolio)?)
        .bind(now.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn set_banned(
        &mut self,
        id: &AccountId,
        banned_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE accounts SET banned_at = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(banned_at.map(Timestamp::millis))
            .bind(now.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_role(&mut self, id: &AccountId, role: Role, now: Timestamp) -> Result<bool> {
        let done = sqlx::query("UPDATE accounts SET role = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(now.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(&mut self, id: &AccountId, hash: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(hash)
            .bind(now.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_webhook_secret(&mut self, id: &AccountId, secret: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE accounts SET webhook_secret = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(secret)
            .bind(now.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn insert_api_key(&mut self, k: &NewApiKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, display_prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(k.id.as_str())
        .bind(k.account_id.as_str())
        .bind(&k.name)
        .bind(&k.display_prefix)
        .bind(&k.key_hash)
        .bind(k.created_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn revoke_api_key(
        &mut self,
        account: &AccountId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeyRecord>> {
        let sql = concat!(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL RETURNING ",
            api_key_cols!()
        );
        let row = sqlx::query(sql)
            .bind(id.as_str())
            .bind(account.as_str())
            .bind(now.millis())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(err)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn insert_session(&mut self, s: &NewSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, account_id, access_hash, refresh_hash, access_expires_at, \
             refresh_expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.id.as_str())
        .bind(s.account_id.as_str())
        .bind(&s.access_hash)
        .bind(&s.refresh_hash)
        .bind(s.access_expires_at.millis())
        .bind(s.refresh_expires_at.millis())
        .bind(s.created_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn take_refresh_token(&mut self, refresh_hash: &str, now: Timestamp) -> Result<Option<AccountId>> {
        let row = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 \
             WHERE refresh_hash = $1 AND revoked_at IS NULL AND refresh_expires_at > $2 RETURNING account_id",
        )
        .bind(refresh_hash)
        .bind(now.millis())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(err)?;
        row.map(|r| Ok(AccountId::from_trusted(r.try_get("account_id").map_err(err)?))).transpose()
    }

    async fn revoke_session(&mut self, id: &SessionId, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.as_str())
            .bind(now.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn insert_idempotency_record(
        &mut self,
        r: &IdempotencyRecord,
        expired_before: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, idem_key) DO UPDATE SET request_hash = excluded.request_hash, \
             status = excluded.status, body = excluded.body, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < $7",
        )
        .bind(r.account_id.as_str())
        .bind(&r.key)
        .bind(&r.request_hash)
        .bind(i64::from(r.status))
        .bind(&r.body)
        .bind(r.created_at.millis())
        .bind(expired_before.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err(Some(Conflict::IdempotencyKey)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::IdempotencyKey));
        }
        Ok(())
    }
    #[tracing::instrument(skip_all)]
    async fn post_ledger(&mut self, t: &NewLedgerTx) -> Result<()> {
        let plan = &t.plan;
        sqlx::query(
            "INSERT INTO ledger_transactions (id, kind, currency, actor_id, hold_id, ref_kind, ref_id, reason, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.id.as_str())
        .bind(plan.kind().as_str())
        .bind(plan.currency().as_str())
        .bind(t.actor_id.as_ref().map(AccountId::as_str))
        .bind(t.hold_id.as_ref().map(HoldId::as_str))
        .bind(t.reference.as_ref().map(|r| r.kind.as_str()))
        .bind(t.reference.as_ref().map(|r| r.id.as_str()))
        .bind(t.reason.as_deref())
        .bind(t.created_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        // One lock order for every transaction (by account key), so that two transactions
        // touching the same accounts on PostgreSQL wait for each other instead of deadlocking.
        let mut lines: Vec<(String, &Posting)> =
            plan.postings().iter().map(|p| (p.account.key(), p)).collect();
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, p) in lines {
            if p.amount < 0 && !p.account.may_go_negative() {
                // The debit and its check are one statement: no read-then-write window.
                let done = sqlx::query(
                    "UPDATE ledger_accounts SET balance = balance + $2 WHERE key = $1 AND balance + $2 >= 0",
                )
                .bind(&key)
                .bind(p.amount)
                .execute(&mut *self.tx)
                .await
                .map_err(err)?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Refused(Refusal::InsufficientFunds { account: key }));
                }
            } else {
                sqlx::query(
                    "INSERT INTO ledger_accounts (key, owner_id, currency, bucket, balance) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (key) DO UPDATE SET balance = ledger_accounts.balance + excluded.balance",
                )
                .bind(&key)
                .bind(p.account.owner().map(AccountId::as_str))
                .bind(p.account.currency().as_str())
                .bind(bucket_name(&p.account))
                .bind(p.amount)
                .execute(&mut *self.tx)
                .await
                .map_err(err)?;
            }
            sqlx::query("INSERT INTO ledger_lines (tx_id, account_key, amount) VALUES ($1, $2, $3)")
                .bind(t.id.as_str())
                .bind(&key)
                .bind(p.amount)
                .execute(&mut *self.tx)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn insert_hold(&mut self, h: &Hold) -> Result<()> {
        sqlx::query(
            "INSERT INTO holds (id, payer_id, currency, amount, remaining, ref_kind, ref_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(h.id.as_str())
        .bind(h.payer_id.as_str())
        .bind(h.currency.as_str())
        .bind(h.amount)
        .bind(h.remaining)
        .bind(&h.reference.kind)
        .bind(&h.reference.id)
        .bind(h.created_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn hold_remaining_for_update(&mut self, id: &HoldId) -> Result<i64> {
        let sql = format!("SELECT remaining FROM holds WHERE id = $1{FOR_UPDATE}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(err)?
            .ok_or(StoreError::NotFound)?;
        row.try_get("remaining").map_err(err)
    }

    async fn draw_hold(&mut self, id: &HoldId, amount: i64, now: Timestamp) -> Result<Hold> {
        let sql = concat!(
            "UPDATE holds SET remaining = remaining - $2, updated_at = $3 WHERE id = $1 AND remaining >= $2 \
             RETURNING ",
            hold_cols!()
        );
        let row = sqlx::query(sql)
            .bind(id.as_str())
            .bind(amount)
            .bind(now.millis())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(err)?;
        match row {
            Some(r) => hold_from_row(&r),
            None => {
                let remaining = self.hold_remaining_for_update(id).await?;
                Err(StoreError::Refused(Refusal::HoldExhausted { remaining }))
            }
        }
    }

    async fn quota_consume(
        &mut self,
        account: &AccountId,
        period: &str,
        monthly_free: i64,
        reference: &str,
        now: Timestamp,
    ) -> Result<QuotaBucket> {
        self.quota_row(account, period).await?;
        let attempts = [
            (
                QuotaBucket::Free,
                "UPDATE quotas SET free_used = free_used + 1 WHERE account_id = $1 AND free_used < $2",
            ),
            (
                QuotaBucket::Bonus,
                "UPDATE quotas SET bonus = bonus - 1 WHERE account_id = $1 AND bonus > 0 AND $2 = $2",
            ),
            (
                QuotaBucket::Purchased,
                "UPDATE quotas SET purchased = purchased - 1 WHERE account_id = $1 AND purchased > 0 AND $2 = $2",
            ),
        ];
        for (bucket, sql) in attempts {
            let done = sqlx::query(sql)
                .bind(account.as_str())
                .bind(monthly_free)
                .execute(&mut *self.tx)
                .await
                .map_err(err)?;
            if done.rows_affected() == 1 {
                if !self
                    .quota_movement(account, "consume", bucket, 1, period, Some(reference), None, now)
                    .await?
                {
                    // The caller drops the transaction, which gives the unit back.
                    return Err(StoreError::Conflict(Conflict::Duplicate));
                }
                return Ok(bucket);
            }
        }
        Err(StoreError::Refused(Refusal::QuotaExhausted))
    }

    async fn quota_refund(&mut self, account: &AccountId, reference: &str, now: Timestamp) -> Result<bool> {
        let consumed = sqlx::query(
            "SELECT bucket, period FROM quota_movements WHERE account_id = $1 AND kind = 'consume' AND ref = $2",
        )
        .bind(account.as_str())
        .bind(reference)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(err)?;
        let Some(row) = consumed else { return Ok(false) };
        let bucket_name: String = row.try_get("bucket").map_err(err)?;
        let bucket = QuotaBucket::parse(&bucket_name).ok_or_else(|| corrupt("quota bucket", &bucket_name))?;
        let period: String = row.try_get("period").map_err(err)?;
        if !self.quota_movement(account, "refund", bucket, 1, &period, Some(reference), None, now).await? {
            return Ok(false);
        }
        // A free unit goes back only within its own month; bonus and purchased units always.
        let sql = match bucket {
            QuotaBucket::Free => {
                "UPDATE quotas SET free_used = free_used - 1 WHERE account_id = $1 AND period = $2 AND free_used > 0"
            }
            QuotaBucket::Bonus => "UPDATE quotas SET bonus = bonus + 1 WHERE account_id = $1 AND $2 = $2",
            QuotaBucket::Purchased => {
                "UPDATE quotas SET purchased = purchased + 1 WHERE account_id = $1 AND $2 = $2"
            }
        };
        sqlx::query(sql).bind(account.as_str()).bind(&period).execute(&mut *self.tx).await.map_err(err)?;
        Ok(true)
    }

    async fn quota_grant(
        &mut self,
        account: &AccountId,
        bucket: QuotaBucket,
        units: i64,
        period: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        let sql = match bucket {
            QuotaBucket::Bonus => "UPDATE quotas SET bonus = bonus + $2 WHERE account_id = $1",
            QuotaBucket::Purchased => "UPDATE quotas SET purchased = purchased + $2 WHERE account_id = $1",
            QuotaBucket::Free => {
                return Err(StoreError::Refused(Refusal::InvalidAmount("free units are not granted".into())));
            }
        };
        if units <= 0 {
            return Err(StoreError::Refused(Refusal::InvalidAmount("units must be positive".into())));
        }
        self.quota_row(account, period).await?;
        sqlx::query(sql).bind(account.as_str()).bind(units).execute(&mut *self.tx).await.map_err(err)?;
        self.quota_movement(account, "grant", bucket, units, period, None, Some(reason), now).await?;
        Ok(())
    }

    async fn balance(&mut self, owner: &AccountId, currency: &Currency) -> Result<Balance> {
        let found = balances_of(&mut self.tx, owner, Some(currency)).await?;
        Ok(found.into_iter().next().unwrap_or(Balance { currency: currency.clone(), available: 0, held: 0 }))
    }

    async fn quota(&mut self, account: &AccountId, period: &str, monthly_free: i64) -> Result<QuotaState> {
        quota_of(&mut self.tx, account, period, monthly_free).await
    }

    async fn append_event(&mut self, event: &NewEvent) -> Result<()> {
        self.events.push(event.clone());
        Ok(())
    }

    async fn lock_cursor(&mut self, name: &str) -> Result<Option<i64>> {
        let sql = format!("SELECT position FROM event_cursors WHERE name = $1{SKIP_LOCKED}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(err)?;
        row.map(|r| r.try_get("position").map_err(err)).transpose()
    }

    async fn set_cursor(&mut self, name: &str, position: i64) -> Result<()> {
        sqlx::query("UPDATE event_cursors SET position = $2 WHERE name = $1")
            .bind(name)
            .bind(position)
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn events_with_audience_after(
        &mut self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>> {
        events_with_audience(&mut self.tx, after, limit).await
    }

    async fn active_endpoints(&mut self, accounts: &[AccountId]) -> Result<Vec<WebhookEndpoint>> {
        let mut out = Vec::new();
        for chunk in accounts.chunks(INSERT_CHUNK) {
            let sql = format!(
                "SELECT {} FROM webhook_endpoints WHERE active AND account_id IN ({})",
                endpoint_cols!(),
                marks(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.as_str());
            }
            for r in q.fetch_all(&mut *self.tx).await.map_err(err)? {
                out.push(endpoint_from_row(&r)?);
            }
        }
        Ok(out)
    }

    async fn task_webhook_urls(&mut self, tasks: &[String]) -> Result<Vec<(String, AccountId, String)>> {
        let mut out = Vec::new();
        for chunk in tasks.chunks(INSERT_CHUNK) {
            let sql = format!(
                "SELECT id, requester_id, webhook_url FROM tasks WHERE webhook_url IS NOT NULL AND id IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for t in chunk {
                q = q.bind(t.as_str());
            }
            for r in q.fetch_all(&mut *self.tx).await.map_err(err)? {
                out.push((
                    r.try_get("id").map_err(err)?,
                    AccountId::from_trusted(r.try_get("requester_id").map_err(err)?),
                    r.try_get("webhook_url").map_err(err)?,
                ));
            }
        }
        Ok(out)
    }

    async fn insert_deliveries(&mut self, deliveries: &[WebhookDelivery]) -> Result<()> {
        for chunk in deliveries.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO webhook_deliveries ({}) VALUES {}",
                delivery_cols!(),
                row_marks(chunk.len(), 17)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q
                    .bind(d.id.as_str())
                    .bind(d.endpoint_id.as_ref().map(WebhookId::as_str))
                    .bind(d.account_id.as_str())
                    .bind(d.url.as_deref())
                    .bind(d.event_seq)
                    .bind(&d.event_type)
                    .bind(d.task_id.as_deref())
                    .bind(d.status.as_str())
                    .bind(d.attempts)
                    .bind(d.round_attempts)
                    .bind(d.next_attempt_at.millis())
                    .bind(d.last_status_code)
                    .bind(d.last_error.as_deref())
                    .bind(d.last_attempt_at.map(Timestamp::millis))
                    .bind(d.delivered_at.map(Timestamp::millis))
                    .bind(d.created_at.millis())
                    .bind(d.event_id.as_str());
            }
            q.execute(&mut *self.tx).await.map_err(err)?;
        }
        Ok(())
    }

    async fn insert_notifications(&mut self, notifications: &[Notification]) -> Result<()> {
        for chunk in notifications.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO notifications ({}) VALUES {}",
                notification_cols!(),
                row_marks(chunk.len(), 9)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for n in chunk {
                q = q
                    .bind(n.id.as_str())
                    .bind(n.account_id.as_str())
                    .bind(n.event_seq)
                    .bind(&n.kind)
                    .bind(&n.title)
                    .bind(&n.message)
                    .bind(n.link.as_deref())
                    .bind(n.read_at.map(Timestamp::millis))
                    .bind(n.created_at.millis());
            }
            q.execute(&mut *self.tx).await.map_err(err)?;
        }
        Ok(())
    }

    async fn insert_webhook_endpoint(&mut self, w: &WebhookEndpoint) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO webhook_endpoints (",
            endpoint_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(w.id.as_str())
        .bind(w.account_id.as_str())
        .bind(&w.url)
        .bind(&w.description)
        .bind(to_json(&w.event_types)?)
        .bind(&w.secret)
        .bind(w.active)
        .bind(w.disabled_reason.as_deref())
        .bind(w.failing_since.map(Timestamp::millis))
        .bind(w.created_at.millis())
        .bind(w.updated_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn webhook_endpoint_for_update(&mut self, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let row = locked_row(&mut self.tx, endpoint_cols!(), "webhook_endpoints", id.as_str()).await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn update_webhook_endpoint(&mut self, w: &WebhookEndpoint) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, secret = $5, active = $6, \
             disabled_reason = $7, failing_since = $8, updated_at = $9 WHERE id = $1",
        )
        .bind(w.id.as_str())
        .bind(&w.url)
        .bind(&w.description)
        .bind(to_json(&w.event_types)?)
        .bind(&w.secret)
        .bind(w.active)
        .bind(w.disabled_reason.as_deref())
        .bind(w.failing_since.map(Timestamp::millis))
        .bind(w.updated_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn delete_webhook_endpoint(&mut self, id: &WebhookId) -> Result<()> {
        // The endpoint first, as every writer of its deliveries locks it first.
        locked_row(&mut self.tx, "id", "webhook_endpoints", id.as_str()).await?;
        for sql in [
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            "DELETE FROM webhook_endpoints WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut *self.tx).await.map_err(err)?;
        }
        Ok(())
    }

    async fn fail_pending_deliveries(
        &mut self,
        endpoint: &WebhookId,
        reason: &str,
        _now: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $2, claim_token = NULL \
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(endpoint.as_str())
        .bind(reason)
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn claim_deliveries(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        token: &str,
        limit: u64,
    ) -> Result<Vec<DeliveryJob>> {
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, claim_token = $2 WHERE id IN ( \
             SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
             ORDER BY next_attempt_at LIMIT $4{SKIP_LOCKED}) RETURNING {}",
            delivery_cols!()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_until.millis())
            .bind(token)
            .bind(now.millis())
            .bind(limit_of(limit))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(err)?;
        let deliveries = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>>>()?;
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        // What each needs: its event, and where and how to send it.
        let seqs: Vec<i64> = deliveries.iter().map(|d| d.event_seq).collect();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM events WHERE seq IN ({})",
            event_cols!(),
            marks(seqs.len())
        )));
        for seq in &seqs {
            q = q.bind(seq);
        }
        let events: HashMap<i64, Event> = q
            .fetch_all(&mut *self.tx)
            .await
            .map_err(err)?
            .iter()
            .map(|r| event_from_row(r).map(|e| (e.seq, e)))
            .collect::<Result<_>>()?;
        let mut targets: HashMap<String, (String, String)> = HashMap::new();
        let endpoint_ids: Vec<&str> =
            deliveries.iter().filter_map(|d| d.endpoint_id.as_ref().map(WebhookId::as_str)).collect();
        if !endpoint_ids.is_empty() {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, url, secret, active FROM webhook_endpoints WHERE id IN ({})",
                marks(endpoint_ids.len())
            )));
            for id in &endpoint_ids {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut *self.tx).await.map_err(err)? {
                // An inactive endpoint's delivery comes back without a target; the worker
                // fails it instead of sending.
                if r.try_get::<bool, _>("active").map_err(err)? {
                    targets.insert(
                        r.try_get("id").map_err(err)?,
                        (r.try_get("url").map_err(err)?, r.try_get("secret").map_err(err)?),
                    );
                }
            }
        }
        let owners: Vec<&str> =
            deliveries.iter().filter(|d| d.endpoint_id.is_none()).map(|d| d.account_id.as_str()).collect();
        let mut account_secrets: HashMap<String, String> = HashMap::new();
        if !owners.is_empty() {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, webhook_secret FROM accounts WHERE id IN ({})",
                marks(owners.len())
            )));
            for id in &owners {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut *self.tx).await.map_err(err)? {
                account_secrets
                    .insert(r.try_get("id").map_err(err)?, r.try_get("webhook_secret").map_err(err)?);
            }
        }
        let mut jobs = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let event =
                events.get(&d.event_seq).cloned().ok_or_else(|| corrupt("delivery event", d.id.as_str()))?;
            let (url, secret) = match &d.endpoint_id {
                Some(e) => targets.get(e.as_str()).cloned().unwrap_or_default(),
                None => (
                    d.url.clone().unwrap_or_default(),
                    account_secrets.get(d.account_id.as_str()).cloned().unwrap_or_default(),
                ),
            };
            jobs.push(DeliveryJob { delivery: d, url, secret, event, claim_token: token.to_owned() });
        }
        Ok(jobs)
    }

    async fn finish_attempt(
        &mut self,
        d: &WebhookDelivery,
        token: &str,
        a: &DeliveryAttempt,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = $4, round_attempts = $5, next_attempt_at = $6, \
             claim_token = NULL, last_status_code = $7, last_error = $8, last_attempt_at = $9, delivered_at = $10 \
             WHERE id = $1 AND claim_token = $2",
        )
        .bind(d.id.as_str())
        .bind(token)
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.round_attempts)
        .bind(d.next_attempt_at.millis())
        .bind(d.last_status_code)
        .bind(d.last_error.as_deref())
        .bind(d.last_attempt_at.map(Timestamp::millis))
        .bind(d.delivered_at.map(Timestamp::millis))
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(a.delivery_id.as_str())
        .bind(a.attempt)
        .bind(a.at.millis())
        .bind(a.status_code)
        .bind(a.duration_ms)
        .bind(a.error.as_deref())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(true)
    }

    async fn restart_delivery(&mut self, id: &DeliveryId, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, round_attempts = 0, \
             claim_token = NULL WHERE id = $1 \
             AND NOT (status = 'pending' AND claim_token IS NOT NULL AND next_attempt_at > $2)",
        )
        .bind(id.as_str())
        .bind(now.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_notifications_read(
        &mut self,
        account: &AccountId,
        id: Option<&NotificationId>,
        now: Timestamp,
    ) -> Result<u64> {
        let done = match id {
            // One: found (and the caller's) or not; reading it twice is not an error.
            Some(id) => sqlx::query(
                "UPDATE notifications SET read_at = COALESCE(read_at, $3) WHERE account_id = $1 AND id = $2",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(now.millis()),
            None => {
                sqlx::query("UPDATE notifications SET read_at = $2 WHERE account_id = $1 AND read_at IS NULL")
                    .bind(account.as_str())
                    .bind(now.millis())
            }
        }
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    fn wake(&mut self, agent: &AccountId) {
        if !self.wakes.contains(agent) {
            self.wakes.push(agent.clone());
        }
    }

    async fn touch_presence(&mut self, agent: &AccountId, now: Timestamp, offline: bool) -> Result<()> {
        let sql = if offline {
            "UPDATE accounts SET last_seen_at = $2, offline_at = $2 WHERE id = $1"
        } else {
            "UPDATE accounts SET last_seen_at = $2 WHERE id = $1"
        };
        sqlx::query(sql).bind(agent.as_str()).bind(now.millis()).execute(&mut *self.tx).await.map_err(err)?;
        Ok(())
    }

    async fn count_outcome(&mut self, agent: &AccountId, outcome: Outcome) -> Result<()> {
        let sql = match outcome {
            Outcome::Completed => "UPDATE accounts SET completed_count = completed_count + 1 WHERE id = $1",
            Outcome::Failed => "UPDATE accounts SET failed_count = failed_count + 1 WHERE id = $1",
            Outcome::NoResponse => {
                "UPDATE accounts SET no_response_count = no_response_count + 1 WHERE id = $1"
            }
        };
        sqlx::query(sql).bind(agent.as_str()).execute(&mut *self.tx).await.map_err(err)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn insert_task(&mut self, t: &Task) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO tasks (",
            task_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
             $20, $21, $22, $23)"
        ))
        .bind(t.id.as_str())
        .bind(t.kind.as_str())
        .bind(t.status.as_str())
        .bind(t.requester_id.as_str())
        .bind(t.assignee_id.as_ref().map(AccountId::as_str))
        .bind(&t.title)
        .bind(&t.description)
        .bind(to_json(&t.input)?)
        .bind(opt_to_json(t.output.as_ref())?)
        .bind(to_json(&t.details)?)
        .bind(opt_to_json(t.progress.as_ref())?)
        .bind(t.price)
        .bind(t.currency.as_ref().map(Currency::as_str))
        .bind(t.hold_id.as_ref().map(HoldId::as_str))
        .bind(t.chat_id.as_ref().map(ChatId::as_str))
        .bind(t.service_id.as_ref().map(ServiceId::as_str))
        .bind(t.lease_expires_at.map(Timestamp::millis))
        .bind(t.deadline_at.map(Timestamp::millis))
        .bind(t.delivered_at.map(Timestamp::millis))
        .bind(t.auto_accept_at.map(Timestamp::millis))
        .bind(t.created_at.millis())
        .bind(t.updated_at.millis())
        .bind(t.webhook_url.as_deref())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn task_for_update(&mut self, id: &TaskId) -> Result<Option<Task>> {
        let row = locked_row(&mut self.tx, task_cols!(), "tasks", id.as_str()).await?;
        row.as_ref().map(task_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn update_task(&mut self, t: &Task) -> Result<()> {
        sqlx::query(
            "UPDATE tasks SET status = $2, assignee_id = $3, output = $4, details = $5, progress = $6, \
             hold_id = $7, lease_expires_at = $8, deadline_at = $9, delivered_at = $10, auto_accept_at = $11, \
             updated_at = $12 WHERE id = $1",
        )
        .bind(t.id.as_str())
        .bind(t.status.as_str())
        .bind(t.assignee_id.as_ref().map(AccountId::as_str))
        .bind(opt_to_json(t.output.as_ref())?)
        .bind(to_json(&t.details)?)
        .bind(opt_to_json(t.progress.as_ref())?)
        .bind(t.hold_id.as_ref().map(HoldId::as_str))
        .bind(t.lease_expires_at.map(Timestamp::millis))
        .bind(t.deadline_at.map(Timestamp::millis))
        .bind(t.delivered_at.map(Timestamp::millis))
        .bind(t.auto_accept_at.map(Timestamp::millis))
        .bind(t.updated_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn next_queued(&mut self, agent: &AccountId) -> Result<Option<Task>> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE assignee_id = $1 AND status = 'queued' \
             ORDER BY created_at, id LIMIT 1{FOR_UPDATE}",
            task_cols!()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(agent.as_str())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn in_progress_count(&mut self, agent: &AccountId) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE assignee_id = $1 AND status = 'in_progress'")
            .bind(agent.as_str())
            .fetch_one(&mut *self.tx)
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)
    }

    async fn held_tasks(&mut self, agent: &AccountId) -> Result<Vec<TaskId>> {
        let rows = sqlx::query(
            "SELECT id FROM tasks WHERE assignee_id = $1 AND status IN ('queued', 'in_progress') \
             ORDER BY created_at, id",
        )
        .bind(agent.as_str())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(err)?;
        rows.iter().map(|r| Ok(TaskId::from_trusted(r.try_get("id").map_err(err)?))).collect()
    }

    async fn due_task(
        &mut self,
        due: Due,
        now: Timestamp,
        after: Option<&(Timestamp, TaskId)>,
    ) -> Result<Option<Task>> {
        let (status, col) = match due {
            Due::LeaseExpired => ("in_progress", "lease_expires_at"),
            Due::AutoAccept => ("delivered", "auto_accept_at"),
        };
        // Constants only; the times and the id are bound.
        let sql = format!(
            "SELECT {} FROM tasks WHERE status = '{status}' AND {col} <= $1 \
             AND ({col} > $2 OR ({col} = $2 AND id > $3)) ORDER BY {col}, id LIMIT 1{SKIP_LOCKED}",
            task_cols!()
        );
        let (after_at, after_id) = after.map_or((i64::MIN, ""), |(t, id)| (t.millis(), id.as_str()));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.millis())
            .bind(after_at)
            .bind(after_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn insert_task_message(&mut self, m: &TaskMessage) -> Result<()> {
        sqlx::query("INSERT INTO task_messages (id, task_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(m.id.as_str())
            .bind(m.task_id.as_str())
            .bind(m.author_id.as_str())
            .bind(&m.body)
            .bind(m.created_at.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn insert_chat(&mut self, c: &Chat) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO chats (",
            chat_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(c.id.as_str())
        .bind(c.requester_id.as_str())
        .bind(c.agent_id.as_str())
        .bind(to_json(&c.messages)?)
        .bind(c.open_task_id.as_ref().map(TaskId::as_str))
        .bind(c.turns)
        .bind(c.created_at.millis())
        .bind(c.updated_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn chat_for_update(&mut self, id: &ChatId) -> Result<Option<Chat>> {
        let row = locked_row(&mut self.tx, chat_cols!(), "chats", id.as_str()).await?;
        row.as_ref().map(chat_from_row).transpose()
    }

    async fn update_chat(&mut self, c: &Chat) -> Result<()> {
        sqlx::query(
            "UPDATE chats SET messages = $2, open_task_id = $3, turns = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(to_json(&c.messages)?)
        .bind(c.open_task_id.as_ref().map(TaskId::as_str))
        .bind(c.turns)
        .bind(c.updated_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn insert_service(&mut self, s: &Service) -> Result<()> {
        sqlx::query(
            "INSERT INTO services (id, agent_id, name, version, short_description, description, price, currency, \
             input_schema, output_schema, published, paid_count, favorite_count, total_revenue, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 0, $12, $12)",
        )
        .bind(s.id.as_str())
        .bind(s.agent_id.as_str())
        .bind(&s.terms.name)
        .bind(&s.terms.version)
        .bind(&s.terms.short_description)
        .bind(&s.terms.description)
        .bind(s.terms.price)
        .bind(s.currency.as_str())
        .bind(to_json(&s.terms.input_schema)?)
        .bind(to_json(&s.terms.output_schema)?)
        .bind(s.published)
        .bind(s.created_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn service_for_update(&mut self, id: &ServiceId) -> Result<Option<Service>> {
        let row = locked_row(&mut self.tx, service_cols!(), "services s", id.as_str()).await?;
        row.as_ref().map(service_from_row).transpose()
    }

    async fn update_service(&mut self, s: &Service) -> Result<()> {
        sqlx::query(
            "UPDATE services SET name = $2, version = $3, short_description = $4, description = $5, price = $6, \
             currency = $7, input_schema = $8, output_schema = $9, published = $10, updated_at = $11 WHERE id = $1",
        )
        .bind(s.id.as_str())
        .bind(&s.terms.name)
        .bind(&s.terms.version)
        .bind(&s.terms.short_description)
        .bind(&s.terms.description)
        .bind(s.terms.price)
        .bind(s.currency.as_str())
        .bind(to_json(&s.terms.input_schema)?)
        .bind(to_json(&s.terms.output_schema)?)
        .bind(s.published)
        .bind(s.updated_at.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn service_paid(&mut self, id: &ServiceId, amount: i64) -> Result<()> {
        sqlx::query(
            "UPDATE services SET paid_count = paid_count + 1, total_revenue = total_revenue + $2 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(amount)
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn set_favorite(
        &mut self,
        service: &ServiceId,
        account: &AccountId,
        on: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let changed = if on {
            sqlx::query(
                "INSERT INTO service_favorites (service_id, account_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (service_id, account_id) DO NOTHING",
            )
            .bind(service.as_str())
            .bind(account.as_str())
            .bind(now.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?
        } else {
            sqlx::query("DELETE FROM service_favorites WHERE service_id = $1 AND account_id = $2")
                .bind(service.as_str())
                .bind(account.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err(err)?
        }
        .rows_affected()
            == 1;
        if changed {
            sqlx::query("UPDATE services SET favorite_count = favorite_count + $2 WHERE id = $1")
                .bind(service.as_str())
                .bind(if on { 1_i64 } else { -1 })
                .execute(&mut *self.tx)
                .await
                .map_err(err)?;
        }
        Ok(changed)
    }
}

impl SqlTx {
    /// Makes sure the account has a quota row for `period`; a row of an earlier period
    /// starts the new one with no free units used (bonus and purchased units carry over).
    async fn quota_row(&mut self, account: &AccountId, period: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO quotas (account_id, period, free_used, bonus, purchased) VALUES ($1, $2, 0, 0, 0) \
             ON CONFLICT (account_id) DO UPDATE SET period = excluded.period, free_used = 0 \
             WHERE quotas.period <> excluded.period",
        )
        .bind(account.as_str())
        .bind(period)
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn quota_movement(
        &mut self,
        account: &AccountId,
        kind: &str,
        bucket: QuotaBucket,
        units: i64,
        period: &str,
        reference: Option<&str>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        // `DO NOTHING` rather than a unique violation: on PostgreSQL an error would abort
        // the whole transaction, and the caller decides what a repeat means.
        let done = sqlx::query(
            "INSERT INTO quota_movements (id, account_id, kind, bucket, units, period, ref, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (account_id, kind, ref) WHERE ref IS NOT NULL DO NOTHING",
        )
        .bind(QuotaMovementId::generate().as_str())
        .bind(account.as_str())
        .bind(kind)
        .bind(bucket.as_str())
        .bind(units)
        .bind(period)
        .bind(reference)
        .bind(reason)
        .bind(now.millis())
        .execute(&mut *self.tx)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes the buffered events, numbered from the counter row. Runs last, just before
    /// commit, so the counter's row lock is the last lock taken and is held only for this.
    async fn flush_events(&mut self) -> Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let n = i64::try_from(self.events.len()).unwrap_or(i64::MAX);
        let last: i64 =
            sqlx::query("UPDATE event_counter SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq")
                .bind(n)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(err)?
                .try_get("last_seq")
                .map_err(err)?;
        let events = std::mem::take(&mut self.events);
        // Per-task numbers continue from the task's last event; the counter lock held since
        // the `UPDATE` above makes reading that last number race-free.
        let mut task_seqs: HashMap<&str, i64> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let seq = last - n + 1 + i64::try_from(i).unwrap_or(0);
            let task_seq = match e.task_id.as_deref() {
                None => None,
                Some(task) => {
                    let next = match task_seqs.get(task) {
                        Some(n) => n + 1,
                        None => {
                            let max: Option<i64> =
                                sqlx::query("SELECT MAX(task_seq) AS n FROM events WHERE task_id = $1")
                                    .bind(task)
                                    .fetch_one(&mut *self.tx)
                                    .await
                                    .map_err(err)?
                                    .try_get("n")
                                    .map_err(err)?;
                            max.unwrap_or(0) + 1
                        }
                    };
                    task_seqs.insert(task, next);
                    Some(next)
                }
            };
            sqlx::query(
                "INSERT INTO events (seq, task_seq, id, type, actor_id, task_id, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(seq)
            .bind(task_seq)
            .bind(e.id.as_str())
            .bind(&e.event_type)
            .bind(e.actor_id.as_ref().map(AccountId::as_str))
            .bind(e.task_id.as_deref())
            .bind(to_json(&e.payload)?)
            .bind(e.created_at.millis())
            .execute(&mut *self.tx)
            .await
            .map_err(err)?;
            let mut audience: Vec<&str> = e.audience.iter().map(AccountId::as_str).collect();
            audience.sort_unstable();
            audience.dedup();
            for account in audience {
                sqlx::query("INSERT INTO event_audience (account_id, seq) VALUES ($1, $2)")
                    .bind(account)
                    .bind(seq)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}
