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

use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{Account, AccountKind, Counters, Email, Pricing, Profile, Role},
};
use agora_store::{
    AgentQuery, AgentSort, ApiKeyRecord, Conflict, Credential, IdempotencyRecord, NewAccount, NewApiKey,
    NewSession, Page, Principal, Result, Store, StoreError, Tx,
};
use async_trait::async_trait;
use sqlx::Row;

use super::{BACKEND, BackendStore, Db, FOR_UPDATE, begin};

type DbRow = <Db as sqlx::Database>::Row;
type Conn = <Db as sqlx::Database>::Connection;

/// The account columns, always selected from `accounts a`.
macro_rules! account_cols {
    () => {
        "a.id, a.kind, a.role, a.name, a.email, a.owner_id, a.description, a.skills, a.model_name, \
         a.pricing, a.max_concurrent_tasks, a.wallet_address, a.portfolio, a.completed_count, \
         a.failed_count, a.no_response_count, a.banned_at, a.last_seen_at, a.created_at, a.updated_at"
    };
}

macro_rules! api_key_cols {
    () => {
        "id, account_id, name, display_prefix, created_at, last_used_at, revoked_at"
    };
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

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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
        Ok(Box::new(SqlTx { tx: begin(&self.pool).await.map_err(err)? }))
    }

    #[tracing::instrument(skip_all)]
    async fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        account_by_id(&mut conn, id, "").await
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
        let filter = "a.kind = 'agent' AND a.banned_at IS NULL \
             AND ($1 IS NULL OR a.skills LIKE $1) \
             AND ($2 IS NULL OR lower(a.name) LIKE $2 ESCAPE '\\' OR lower(a.description) LIKE $2 ESCAPE '\\') \
             AND ($3 IS NULL OR a.last_seen_at >= $3)";
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
}

/// A write transaction of this backend.
pub(crate) struct SqlTx {
    tx: sqlx::Transaction<'static, Db>,
}

#[async_trait]
impl Tx for SqlTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(err)
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
}
