//! Accounts, credentials and bans: registering and logging in, authenticating a presented
//! secret, profiles, API keys, webhook signing secrets, the agent directory, admins and
//! bans. One way for an account to come to exist, whichever frontend asks.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
};

use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{Account, AccountKind, Counters, Email, Password, Profile, ProfileInput, Role},
    credential::{self, SecretKind, hash_secret},
    validation,
};
use agora_store::{
    AgentQuery, ApiKeyRecord, Credential, CredentialMatch, NewAccount, NewApiKey, NewSession, Page, Store, Tx,
};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::mpsc;

use crate::{
    Admin, App, Principal, Uncommitted, engine,
    error::{Error, Refusal, Result},
};

/// What a new account is made of, already validated.
#[derive(Debug)]
pub struct AccountSpec {
    pub kind: AccountKind,
    pub role: Role,
    pub name: String,
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub owner_id: Option<AccountId>,
    pub profile: Profile,
    /// Give the account its first API key.
    pub with_key: bool,
}

/// A registration as it arrives: checked by [`App::register`].
#[derive(Debug, Default)]
pub struct Registration {
    pub kind: Option<AccountKind>,
    pub name: String,
    pub email: Option<String>,
    pub password: Option<String>,
    pub profile: ProfileInput,
}

/// A new account and the secrets shown this once.
#[derive(Debug)]
pub struct Created {
    pub account: Account,
    pub api_key: Option<String>,
    pub webhook_secret: String,
}

/// A login session's tokens, shown once.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// How stale `last_used_at` may get before a use writes it again: a write per request
/// would make every authenticated call a database write.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

fn argon2() -> Argon2<'static> {
    // argon2id v19 with the crate's defaults (19 MiB, 2 passes, 1 lane): OWASP's baseline.
    Argon2::default()
}

/// Hashes a password with argon2id, off the async runtime.
async fn hash_password(password: &Password) -> Result<String> {
    let pw = password.expose().to_owned();
    tokio::task::spawn_blocking(move || argon2().hash_password(pw.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

/// Checks a password against a stored hash, off the async runtime. With no stored hash it
/// still does the work of one check, so response times do not tell which emails exist.
async fn verify_password(password: &str, stored: Option<String>) -> Result<bool> {
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let stored_ok = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let Ok(parsed) = PasswordHash::new(&phc) else { return false };
        argon2().verify_password(pw.as_bytes(), &parsed).is_ok() && stored_ok
    })
    .await
    .map_err(Error::internal)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        argon2().hash_password(b"agora timing equaliser").map(|h| h.to_string()).unwrap_or_default()
    })
}

/// 32 bytes from rand's thread-local CSPRNG (ChaCha, seeded and reseeded by the OS).
pub(crate) fn random_bytes() -> [u8; 32] {
    rand::random()
}

/// An account as just inserted.
fn fresh_account(new: NewAccount) -> Account {
    Account {
        id: new.id,
        kind: new.kind,
        role: new.role,
        name: new.name,
        email: new.email,
        owner_id: new.owner_id,
        profile: new.profile,
        counters: Counters::default(),
        banned_at: None,
        owner_banned_at: None,
        last_seen_at: None,
        offline_at: None,
        created_at: new.created_at,
        updated_at: new.created_at,
    }
}

fn ip_key(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

impl App {
    /// Creates an account in `tx` (hashing its password first, outside any lock); the secrets
    /// it is shown once.
    async fn insert_account(&self, tx: &mut dyn Tx, spec: AccountSpec) -> Result<Created> {
        let password_hash = match &spec.password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let new = NewAccount {
            id: AccountId::generate(),
            kind: spec.kind,
            role: spec.role,
            name: spec.name,
            email: spec.email,
            password_hash,
            owner_id: spec.owner_id,
            profile: spec.profile,
            webhook_secret: credential::webhook_secret(random_bytes()),
            created_at: self.now(),
        };
        tx.insert_account(&new).await?;
        let api_key =
            if spec.with_key { Some(self.insert_key(tx, &new.id, "default").await?.1) } else { None };
        let webhook_secret = new.webhook_secret.clone();
        Ok(Created { account: fresh_account(new), api_key, webhook_secret })
    }

    /// Creates a key for `account`; its record and its plaintext (shown once).
    async fn insert_key(
        &self,
        tx: &mut dyn Tx,
        account: &AccountId,
        name: &str,
    ) -> Result<(ApiKeyRecord, String)> {
        let minted = credential::mint(SecretKind::ApiKey, random_bytes());
        let key = NewApiKey {
            id: ApiKeyId::generate(),
            account_id: account.clone(),
            name: name.to_owned(),
            display_prefix: minted.display_prefix.clone(),
            key_hash: minted.hash,
            created_at: self.now(),
        };
        tx.insert_api_key(&key).await?;
        let record = ApiKeyRecord {
            id: key.id,
            account_id: key.account_id,
            name: key.name,
            display_prefix: key.display_prefix,
            created_at: key.created_at,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((record, minted.plaintext))
    }

    /// Opens a login session for `account`: a fresh access and refresh token.
    async fn insert_session(&self, tx: &mut dyn Tx, account: &AccountId) -> Result<Tokens> {
        let now = self.now();
        let s = self.settings();
        let access = credential::mint(SecretKind::AccessToken, random_bytes());
        let refresh = credential::mint(SecretKind::RefreshToken, random_bytes());
        let ttl = i64::try_from(s.access_token_ttl_seconds).map_err(Error::internal)?;
        let refresh_ttl = i64::try_from(s.refresh_token_ttl_seconds).map_err(Error::internal)?;
        tx.insert_session(&NewSession {
            id: SessionId::generate(),
            account_id: account.clone(),
            access_hash: access.hash,
            refresh_hash: refresh.hash,
            access_expires_at: now.plus_seconds(ttl),
            refresh_expires_at: now.plus_seconds(refresh_ttl),
            created_at: now,
        })
        .await?;
        Ok(Tokens {
            access_token: access.plaintext,
            refresh_token: refresh.plaintext,
            expires_in: s.access_token_ttl_seconds,
        })
    }

    /// Registers a human (email and password) or an agent (a name is enough; it gets its
    /// first API key). Rate-limited per IP (`auth`).
    pub async fn register(&self, r: Registration, ip: Option<IpAddr>) -> Result<Uncommitted<Created>> {
        self.limits().check("auth", &ip_key(ip))?;
        let mut inv = agora_core::Invalid::default();
        let kind = r.kind.unwrap_or(AccountKind::Human);
        let name = inv.collect("name", agora_core::account::parse_name(&r.name));
        let email = r.email.as_deref().and_then(|e| inv.collect("email", Email::parse(e)));
        let password = r.password.as_deref().and_then(|p| inv.collect("password", Password::parse(p)));
        // Humans log in with email and password; an agent may have both, or neither (key only).
        let human = kind == AccountKind::Human;
        if r.email.is_none() && (human || r.password.is_some()) {
            inv.push("email", "is required for a human account, or with a password");
        }
        if r.password.is_none() && (human || r.email.is_some()) {
            inv.push("password", "is required for a human account, or with an email");
        }
        let profile = inv.collect("", Profile::default().apply(r.profile, self.settings().max_amount));
        let (Some(name), Some(profile), true) = (name, profile, inv.0.is_empty()) else {
            return Err(inv.into());
        };
        let spec = AccountSpec {
            kind,
            role: Role::User,
            name,
            email,
            password,
            owner_id: None,
            profile,
            with_key: kind == AccountKind::Agent,
        };
        let mut tx = self.begin().await?;
        let created = self.insert_account(tx.as_mut(), spec).await?;
        tracing::info!(account_id = %created.account.id, kind = created.account.kind.as_str(), "account registered");
        Ok(self.uncommitted(tx, created))
    }

    /// Logs in with email and password: a new session's tokens. Rate-limited per IP.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Uncommitted<Tokens>> {
        self.limits().check("auth", &ip_key(ip))?;
        let found = match Email::parse(email) {
            Ok(email) => self.store().read().account_login(&email).await?,
            Err(_) => None,
        };
        let (account, hash) = match found {
            Some((a, h)) => (Some(a), h),
            None => (None, None),
        };
        // Always verify, even for unknown emails, so timing does not reveal which exist.
        let verified = verify_password(password, hash).await?;
        let Some(account) = account.filter(|_| verified) else {
            return Err(Refusal::InvalidCredentials.into());
        };
        if account.is_banned() {
            return Err(Refusal::AccountBanned.into());
        }
        let mut tx = self.begin().await?;
        let tokens = self.insert_session(tx.as_mut(), &account.id).await?;
        Ok(self.uncommitted(tx, tokens))
    }

    /// Trades a refresh token for new tokens; each refresh token works once, and the old
    /// access token stops working too.
    pub async fn refresh(&self, refresh_token: &str, ip: Option<IpAddr>) -> Result<Uncommitted<Tokens>> {
        self.limits().check("auth", &ip_key(ip))?;
        let mut tx = self.begin().await?;
        let Some(account_id) = tx.take_refresh_token(&hash_secret(refresh_token), self.now()).await? else {
            return Err(Refusal::InvalidCredentials.into());
        };
        let account = tx.account_for_update(&account_id).await?.ok_or(Refusal::InvalidCredentials)?;
        if account.is_banned() {
            return Err(Refusal::AccountBanned.into());
        }
        let tokens = self.insert_session(tx.as_mut(), &account_id).await?;
        Ok(self.uncommitted(tx, tokens))
    }

    /// Ends the login session of the access token the principal presented.
    pub async fn logout(&self, p: &Principal) -> Result<Uncommitted<()>> {
        let Some(Credential::Session(session)) = &p.credential else {
            return Err(Refusal::NotASession.into());
        };
        let mut tx = self.begin().await?;
        tx.revoke_session(session, self.now()).await?;
        Ok(self.uncommitted(tx, ()))
    }

    /// The principal a presented secret (API key or access token) names, if it names a live
    /// one. A banned account's credentials are refused with `ACCOUNT_BANNED`.
    pub async fn authenticate(&self, secret: &str, ip: Option<IpAddr>) -> Result<Option<Principal>> {
        let hash = hash_secret(secret);
        let mut read = self.store().read();
        let found: Option<CredentialMatch> = match SecretKind::of(secret) {
            Some(SecretKind::ApiKey) => read.credential_by_key(&hash).await?,
            Some(SecretKind::AccessToken) => read.credential_by_access_token(&hash, self.now()).await?,
            Some(SecretKind::RefreshToken) | None => None,
        };
        let Some(found) = found else { return Ok(None) };
        if found.account.is_banned() {
            return Err(Refusal::AccountBanned.into());
        }
        if let Credential::ApiKey(key_id) = &found.credential {
            self.touch_key(key_id, found.last_used_at);
        }
        Ok(Some(Principal { account: found.account, credential: Some(found.credential), ip }))
    }

    /// Records a key's use at most once a minute, off the request path: the caller should
    /// not wait for bookkeeping. Uses go to one writer task per application, which writes
    /// whatever has gathered in one transaction, so that a burst of first requests (every
    /// agent reconnecting after a restart) makes a few writes, not one transaction each.
    fn touch_key(&self, key_id: &ApiKeyId, last_used_at: Option<Timestamp>) {
        let now = self.now();
        let stale =
            last_used_at.is_none_or(|t| now.millis() - t.millis() >= LAST_USED_RESOLUTION_SECS * 1000);
        if !stale {
            return;
        }
        let uses = self.0.key_uses.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            // The task holds the store, not the application: it ends when the application
            // (and with it the sender) is dropped.
            tokio::spawn(write_key_uses(self.0.store.clone(), rx));
            tx
        });
        let _ = uses.send((key_id.clone(), now));
    }

    /// Changes the principal's name and profile; absent fields are kept.
    pub async fn update_profile(
        &self,
        p: &Principal,
        name: Option<String>,
        input: ProfileInput,
    ) -> Result<Uncommitted<Account>> {
        let mut tx = self.begin().await?;
        // Read under lock so that two concurrent edits of different fields both survive.
        let current = tx.account_for_update(p.id()).await?.ok_or(Error::NotFound("account"))?;
        let mut inv = agora_core::Invalid::default();
        let name = match name {
            Some(n) => inv.collect("name", agora_core::account::parse_name(&n)),
            None => Some(current.name.clone()),
        };
        let profile = inv.collect("", current.profile.apply(input, self.settings().max_amount));
        let (Some(name), Some(profile)) = (name, profile) else { return Err(inv.into()) };
        let now = self.now();
        tx.update_profile(&current.id, &name, &profile, now).await?;
        let updated = Account { name, profile, updated_at: now, ..current };
        Ok(self.uncommitted(tx, updated))
    }

    /// The principal's API keys (prefixes only; live keys first).
    pub async fn api_keys(&self, p: &Principal) -> Result<Vec<ApiKeyRecord>> {
        Ok(self.store().read().api_keys(p.id()).await?)
    }

    /// A new API key for the principal; its plaintext is shown this once.
    pub async fn create_key(
        &self,
        p: &Principal,
        name: Option<String>,
    ) -> Result<Uncommitted<(ApiKeyRecord, String)>> {
        let name = match name {
            None => "default".to_owned(),
            Some(n) => validation::text(&n, 1, 100).map_err(|e| e.at("name"))?,
        };
        let mut tx = self.begin().await?;
        let key = self.insert_key(tx.as_mut(), p.id(), &name).await?;
        Ok(self.uncommitted(tx, key))
    }

    /// Revokes one of the principal's live keys; it stops working at once.
    pub async fn revoke_key(&self, p: &Principal, id: &ApiKeyId) -> Result<Uncommitted<ApiKeyRecord>> {
        let mut tx = self.begin().await?;
        let revoked = tx.revoke_api_key(p.id(), id, self.now()).await?.ok_or(Error::NotFound("key"))?;
        tracing::info!(key_id = %id, "api key revoked");
        Ok(self.uncommitted(tx, revoked))
    }

    /// Replaces a key with a new one of the same name; the old one stops working at once.
    pub async fn rotate_key(
        &self,
        p: &Principal,
        id: &ApiKeyId,
    ) -> Result<Uncommitted<(ApiKeyRecord, String)>> {
        let mut tx = self.begin().await?;
        let old = tx.revoke_api_key(p.id(), id, self.now()).await?.ok_or(Error::NotFound("key"))?;
        let key = self.insert_key(tx.as_mut(), p.id(), &old.name).await?;
        tracing::info!(old_key_id = %id, new_key_id = %key.0.id, "api key rotated");
        Ok(self.uncommitted(tx, key))
    }

    /// Replaces the account's webhook signing secret; the new one is shown this once.
    pub async fn rotate_account_secret(&self, p: &Principal) -> Result<Uncommitted<String>> {
        let secret = credential::webhook_secret(random_bytes());
        let mut tx = self.begin().await?;
        tx.set_webhook_secret(p.id(), &secret, self.now()).await?;
        Ok(self.uncommitted(tx, secret))
    }

    /// Creates an agent owned by the principal; its first API key is shown this once.
    pub async fn create_agent(
        &self,
        p: &Principal,
        name: Option<String>,
        input: ProfileInput,
    ) -> Result<Uncommitted<Created>> {
        let mut inv = agora_core::Invalid::default();
        let name = match name {
            Some(n) => inv.collect("name", agora_core::account::parse_name(&n)),
            None => {
                inv.push("name", "is required");
                None
            }
        };
        let profile = inv.collect("", Profile::default().apply(input, self.settings().max_amount));
        let (Some(name), Some(profile)) = (name, profile) else { return Err(inv.into()) };
        let spec = AccountSpec {
            kind: AccountKind::Agent,
            role: Role::User,
            name,
            email: None,
            password: None,
            owner_id: Some(p.id().clone()),
            profile,
            with_key: true,
        };
        let mut tx = self.begin().await?;
        let created = self.insert_account(tx.as_mut(), spec).await?;
        Ok(self.uncommitted(tx, created))
    }

    /// The public agent directory, each agent with how many tasks it holds in progress.
    pub async fn agent_directory(&self, query: &AgentQuery) -> Result<Page<(Account, i64)>> {
        let mut read = self.store().read();
        let found = read.agents(query).await?;
        let ids: Vec<AccountId> = found.items.iter().map(|a| a.id.clone()).collect();
        let loads = read.in_progress_counts(&ids).await?;
        let load = |id: &AccountId| loads.iter().find(|(a, _)| a == id).map_or(0, |(_, n)| *n);
        let items = found.items.into_iter().map(|a| {
            let n = load(&a.id);
            (a, n)
        });
        Ok(Page { items: items.collect(), total: found.total })
    }

    /// One agent's public profile and load; banned agents are not found.
    pub async fn agent(&self, id: &AccountId) -> Result<(Account, i64)> {
        let mut read = self.store().read();
        let agent = read
            .account(id)
            .await?
            .filter(|a| a.kind == AccountKind::Agent && !a.is_banned())
            .ok_or(Error::NotFound("agent"))?;
        let load = read.in_progress_counts(std::slice::from_ref(&agent.id)).await?;
        Ok((agent, load.first().map_or(0, |(_, n)| *n)))
    }

    /// Bans (`true`) or unbans an account. A ban withdraws the work the account holds
    /// (SPEC §2): direct work fails and is refunded, claimed open work reopens.
    pub async fn set_ban(&self, admin: &Admin, id: &AccountId, banned: bool) -> Result<Uncommitted<Account>> {
        if admin.actor() == Some(id) {
            return Err(Refusal::CannotBanSelf.into());
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        let account = tx.account_for_update(id).await?.ok_or(Error::NotFound("account"))?;
        let banned_at = banned.then_some(now);
        let withdrawn = engine::set_ban(tx.as_mut(), id, banned_at, self.settings(), now).await?;
        if !withdrawn.is_empty() {
            tracing::info!(account_id = %id, tasks = withdrawn.len(), "a ban withdrew the account's tasks");
        }
        tracing::info!(admin_id = ?admin.actor(), account_id = %id, banned, "account ban changed");
        Ok(self.uncommitted(tx, Account { banned_at, updated_at: now, ..account }))
    }

    /// Creates an admin account (the CLI's `admin create-admin`, and the first start).
    pub async fn create_admin(
        &self,
        _: &Admin,
        email: Email,
        password: Password,
    ) -> Result<Uncommitted<Created>> {
        let spec = AccountSpec {
            kind: AccountKind::Human,
            role: Role::Admin,
            name: "Administrator".to_owned(),
            email: Some(email),
            password: Some(password),
            owner_id: None,
            profile: Profile::default(),
            with_key: false,
        };
        let mut tx = self.begin().await?;
        let created = self.insert_account(tx.as_mut(), spec).await?;
        Ok(self.uncommitted(tx, created))
    }

    /// On a database with no admin yet, creates one with a random password: its email and
    /// password, to be shown once.
    pub async fn bootstrap_admin(&self) -> Result<Option<(String, String)>> {
        if self.store().read().has_admin().await? {
            return Ok(None);
        }
        let email = "admin@agora.local".to_owned();
        let password = credential::one_time_password(random_bytes());
        let (Ok(e), Ok(p)) = (Email::parse(&email), Password::parse(&password)) else {
            return Err(Error::internal("bootstrap credential failed its own validation"));
        };
        self.create_admin(&Admin::operator(), e, p).await?.commit().await?;
        Ok(Some((email, password)))
    }

    /// An account by id (`acct_…`) or email, for the operator's tools.
    pub async fn find_account(&self, _: &Admin, who: &str) -> Result<Account> {
        let mut read = self.store().read();
        let found = match AccountId::parse(who) {
            Some(id) => read.account(&id).await?,
            None => match Email::parse(who) {
                Ok(email) => read.account_login(&email).await?.map(|(a, _)| a),
                Err(_) => {
                    return Err(Error::invalid("account", "is neither an account id (acct_…) nor an email"));
                }
            },
        };
        found.ok_or(Error::NotFound("account"))
    }

    /// An account that must exist, for an admin operation on it.
    pub(crate) async fn existing_account(&self, id: &AccountId) -> Result<Account> {
        self.store().read().account(id).await?.ok_or(Error::NotFound("account"))
    }
}

/// Writes key uses as they come, each batch (what gathered while the previous one was
/// written, up to 1,000) in one transaction at the latest time among them.
async fn write_key_uses(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<(ApiKeyId, Timestamp)>) {
    while let Some(first) = rx.recv().await {
        let mut latest = first.1;
        let mut ids = vec![first.0];
        while ids.len() < 1000 {
            let Ok((id, at)) = rx.try_recv() else { break };
            latest = latest.max(at);
            ids.push(id);
        }
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        let written = async {
            let mut tx = store.begin().await?;
            tx.touch_api_keys(&ids, latest).await?;
            tx.commit().await
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "could not record key use");
        }
    }
}
