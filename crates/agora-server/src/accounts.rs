//! Creating accounts, keys and sessions: shared by the HTTP API, the CLI and the first-start
//! bootstrap, so that there is one way an account comes to exist.

use agora_client::types::TokenPair;
use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{Account, AccountKind, Counters, Email, Password, Profile, Role},
    credential::{self, SecretKind},
};
use agora_store::{NewAccount, NewApiKey, NewSession, Store, Tx};

use crate::{
    auth::{hash_password, random_bytes},
    config::Config,
    error::{ApiError, Result},
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

/// A new account and the secrets shown this once.
#[derive(Debug)]
pub struct CreatedAccount {
    pub account: Account,
    pub api_key: Option<String>,
    pub webhook_secret: String,
}

/// The parts of account creation that must not run inside a transaction (password hashing
/// takes tens of milliseconds; SQLite's write lock would be held meanwhile).
#[derive(Debug)]
pub struct PreparedAccount {
    new: NewAccount,
    with_key: bool,
}

pub async fn prepare(spec: AccountSpec) -> Result<PreparedAccount> {
    let password_hash = match &spec.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    Ok(PreparedAccount {
        new: NewAccount {
            id: AccountId::generate(),
            kind: spec.kind,
            role: spec.role,
            name: spec.name,
            email: spec.email,
            password_hash,
            owner_id: spec.owner_id,
            profile: spec.profile,
            webhook_secret: credential::webhook_secret(random_bytes()),
            created_at: Timestamp::now(),
        },
        with_key: spec.with_key,
    })
}

/// Inserts a prepared account (and its first key) in `tx`.
pub async fn insert(tx: &mut dyn Tx, prepared: PreparedAccount) -> Result<CreatedAccount> {
    let new = prepared.new;
    tx.insert_account(&new).await?;
    let api_key = if prepared.with_key { Some(insert_key(tx, &new.id, "default").await?) } else { None };
    let account = Account {
        id: new.id,
        kind: new.kind,
        role: new.role,
        name: new.name,
        email: new.email,
        owner_id: new.owner_id,
        profile: new.profile,
        counters: Counters::default(),
        banned_at: None,
        last_seen_at: None,
        offline_at: None,
        created_at: new.created_at,
        updated_at: new.created_at,
    };
    Ok(CreatedAccount { account, api_key, webhook_secret: new.webhook_secret })
}

/// Creates a key for `account`; returns its plaintext (shown once).
pub async fn insert_key(tx: &mut dyn Tx, account: &AccountId, name: &str) -> Result<String> {
    Ok(insert_key_record(tx, account, name).await?.1)
}

/// Creates a key; returns its record and plaintext.
pub async fn insert_key_record(
    tx: &mut dyn Tx,
    account: &AccountId,
    name: &str,
) -> Result<(agora_store::ApiKeyRecord, String)> {
    let minted = credential::mint(SecretKind::ApiKey, random_bytes());
    let key = NewApiKey {
        id: ApiKeyId::generate(),
        account_id: account.clone(),
        name: name.to_owned(),
        display_prefix: minted.display_prefix.clone(),
        key_hash: minted.hash,
        created_at: Timestamp::now(),
    };
    tx.insert_api_key(&key).await?;
    let record = agora_store::ApiKeyRecord {
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
pub async fn insert_session(tx: &mut dyn Tx, account: &AccountId, config: &Config) -> Result<TokenPair> {
    let now = Timestamp::now();
    let access = credential::mint(SecretKind::AccessToken, random_bytes());
    let refresh = credential::mint(SecretKind::RefreshToken, random_bytes());
    let ttl = i64::try_from(config.access_token_ttl_seconds).map_err(ApiError::internal)?;
    let refresh_ttl = i64::try_from(config.refresh_token_ttl_seconds).map_err(ApiError::internal)?;
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
    Ok(TokenPair {
        access_token: access.plaintext,
        refresh_token: refresh.plaintext,
        token_type: "Bearer".to_owned(),
        expires_in: config.access_token_ttl_seconds,
    })
}

/// Creates an admin account (CLI `admin create-admin`, and the first-start bootstrap).
pub async fn create_admin(store: &dyn Store, email: Email, password: Password) -> Result<CreatedAccount> {
    let prepared = prepare(AccountSpec {
        kind: AccountKind::Human,
        role: Role::Admin,
        name: "Administrator".to_owned(),
        email: Some(email),
        password: Some(password),
        owner_id: None,
        profile: Profile::default(),
        with_key: false,
    })
    .await?;
    let mut tx = store.begin().await?;
    let created = insert(tx.as_mut(), prepared).await?;
    tx.commit().await?;
    Ok(created)
}

/// The credential printed at the first start on an empty database.
#[derive(Debug)]
pub struct Bootstrap {
    pub email: String,
    pub password: String,
}

/// On a database with no admin yet, creates one with a random password (printed once).
pub async fn bootstrap_admin(store: &dyn Store) -> Result<Option<Bootstrap>> {
    if store.has_admin().await? {
        return Ok(None);
    }
    let email = "admin@agora.local".to_owned();
    let password = credential::one_time_password(random_bytes());
    let (Ok(e), Ok(p)) = (Email::parse(&email), Password::parse(&password)) else {
        return Err(ApiError::internal("bootstrap credential failed its own validation"));
    };
    create_admin(store, e, p).await?;
    Ok(Some(Bootstrap { email, password }))
}
