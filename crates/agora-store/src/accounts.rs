//! Accounts and credentials: accounts with their profiles, presence and counters; API keys;
//! login sessions.

use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{Account, AccountKind, Email, Profile, Role},
};
use async_trait::async_trait;

use crate::{Page, Result};

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

/// A live credential and the account it belongs to.
#[derive(Debug, Clone)]
pub struct CredentialMatch {
    pub account: Account,
    pub credential: Credential,
    /// When the credential was last used, before this request (API keys only).
    pub last_used_at: Option<Timestamp>,
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

/// How an agent was seen (SPEC §3). An agent is online when seen within the window and not
/// signed off; a sign-off holds until its next heartbeat, whatever its polls do meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// It is waiting on (or polling) its inbox.
    Poll,
    /// A heartbeat: it is online, and a sign-off ends.
    Heartbeat,
    /// A heartbeat saying it goes offline.
    SignOff,
}

/// What an agent counter records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    NoResponse,
}

#[async_trait]
pub trait AccountReads: Send {
    async fn account(&mut self, id: &AccountId) -> Result<Option<Account>>;
    /// The accounts with these ids that exist, in one query.
    async fn accounts(&mut self, ids: &[AccountId]) -> Result<Vec<Account>>;
    /// The account with this email, and its password hash.
    async fn account_login(&mut self, email: &Email) -> Result<Option<(Account, Option<String>)>>;
    async fn has_admin(&mut self) -> Result<bool>;
    async fn agents(&mut self, query: &AgentQuery) -> Result<Page<Account>>;
    /// The live (unrevoked) API key with this hash, and its account.
    async fn credential_by_key(&mut self, key_hash: &str) -> Result<Option<CredentialMatch>>;
    /// The live, unexpired access token with this hash, and its account.
    async fn credential_by_access_token(
        &mut self,
        access_hash: &str,
        now: Timestamp,
    ) -> Result<Option<CredentialMatch>>;
    /// The account's keys, live ones first, newest first.
    async fn api_keys(&mut self, account: &AccountId) -> Result<Vec<ApiKeyRecord>>;
}

#[async_trait]
pub trait AccountWrites: Send {
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
    /// Records how the agent was seen (see [`Sighting`]).
    async fn touch_presence(&mut self, agent: &AccountId, now: Timestamp, seen: Sighting) -> Result<()>;
    /// Adds one to the agent's completed, failed or no-response counter.
    async fn count_outcome(&mut self, agent: &AccountId, outcome: Outcome) -> Result<()>;

    async fn insert_api_key(&mut self, key: &NewApiKey) -> Result<()>;
    /// Revokes one of `account`'s live keys; the revoked key, or `None` if there was none.
    async fn revoke_api_key(
        &mut self,
        account: &AccountId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeyRecord>>;
    /// Records that a key was used (callers throttle how often).
    /// Records that these keys were used at `now`.
    async fn touch_api_keys(&mut self, ids: &[ApiKeyId], now: Timestamp) -> Result<()>;

    async fn insert_session(&mut self, session: &NewSession) -> Result<()>;
    /// Revokes the live session holding this refresh token, in one statement so that two
    /// concurrent refreshes cannot both succeed; returns its account.
    async fn take_refresh_token(&mut self, refresh_hash: &str, now: Timestamp) -> Result<Option<AccountId>>;
    async fn revoke_session(&mut self, id: &SessionId, now: Timestamp) -> Result<()>;
}
