//! The storage interface every backend implements, and the conformance suite that proves a
//! backend implements it faithfully (run by each backend crate against a real database).
//!
//! Reads go through [`Store`]; every change goes through a [`Tx`], so that a change, the
//! events it causes and its idempotency record commit together or not at all.
//!
//! The SQL both backends share is written once, in `sql/shared.rs` beside this crate, and
//! compiled into each backend crate against its own sqlx driver (see that file for why).

pub mod conformance;

use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{Account, AccountKind, Email, Profile, Role},
};
use async_trait::async_trait;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; the value names which one.
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    /// The database failed; the message is for logs, never for clients.
    #[error("database error: {0}")]
    Backend(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Email,
    IdempotencyKey,
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
}
