//! Accounts and credentials.

use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{Account, AccountKind, Counters, Email, Pricing, Profile, Role},
};
use agora_store::{
    AccountReads, AccountWrites, AgentQuery, AgentSort, ApiKeyRecord, Conflict, Credential, CredentialMatch,
    NewAccount, NewApiKey, NewSession, Outcome, Page, Result, Sighting,
};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{
        CHUNK, corrupt, count, db_err, err, get, json_col, like_pattern, limit_of, marks, opt_time, time,
        to_json,
    },
};
use crate::db;

macro_rules! api_key_cols {
    () => {
        "id, account_id, name, display_prefix, created_at, last_used_at, revoked_at"
    };
}

pub(super) fn account_from_row(r: &DbRow) -> Result<Account> {
    let kind: String = get(r, "kind")?;
    let role: String = get(r, "role")?;
    let max_concurrent: i64 = get(r, "max_concurrent_tasks")?;
    Ok(Account {
        id: AccountId::from_trusted(get(r, "id")?),
        kind: AccountKind::parse(&kind).ok_or_else(|| corrupt("account kind", &kind))?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        name: get(r, "name")?,
        email: get::<Option<String>>(r, "email")?.map(Email::from_trusted),
        owner_id: get::<Option<String>>(r, "owner_id")?.map(AccountId::from_trusted),
        profile: Profile {
            description: get(r, "description")?,
            skills: json_col(r, "skills")?,
            model_name: get(r, "model_name")?,
            pricing: json_col::<Pricing>(r, "pricing")?,
            max_concurrent_tasks: u32::try_from(max_concurrent)
                .map_err(|_| corrupt("max_concurrent_tasks", &max_concurrent.to_string()))?,
            wallet_address: get(r, "wallet_address")?,
            portfolio: json_col(r, "portfolio")?,
        },
        counters: Counters {
            completed: get(r, "completed_count")?,
            failed: get(r, "failed_count")?,
            no_response: get(r, "no_response_count")?,
        },
        banned_at: opt_time(r, "banned_at")?,
        owner_banned_at: opt_time(r, "owner_banned_at")?,
        last_seen_at: opt_time(r, "last_seen_at")?,
        offline_at: opt_time(r, "offline_at")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn api_key_from_row(r: &DbRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_trusted(get(r, "id")?),
        account_id: AccountId::from_trusted(get(r, "account_id")?),
        name: get(r, "name")?,
        display_prefix: get(r, "display_prefix")?,
        created_at: time(r, "created_at")?,
        last_used_at: opt_time(r, "last_used_at")?,
        revoked_at: opt_time(r, "revoked_at")?,
    })
}

#[async_trait]
impl<S: Source> AccountReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn account(&mut self, id: &AccountId) -> Result<Option<Account>> {
        let sql = concat!("SELECT ", account_cols!(), " FROM accounts a WHERE a.id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(account_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn accounts(&mut self, ids: &[AccountId]) -> Result<Vec<Account>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {} FROM accounts a WHERE a.id IN ({})", account_cols!(), marks(ids.len()));
        let mut query = db::query(db::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(self.0.exec()).await.map_err(err)?;
        rows.iter().map(account_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn account_login(&mut self, email: &Email) -> Result<Option<(Account, Option<String>)>> {
        let sql = concat!("SELECT ", account_cols!(), ", a.password_hash FROM accounts a WHERE a.email = $1");
        let row = db::query(sql).bind(email.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((account_from_row(&r)?, get(&r, "password_hash")?))),
        }
    }

    #[instrument(level = "debug", skip_all)]
    async fn has_admin(&mut self) -> Result<bool> {
        let row = db::query("SELECT 1 AS one FROM accounts WHERE role = 'admin' LIMIT 1")
            .fetch_optional(self.0.exec())
            .await
            .map_err(err)?;
        Ok(row.is_some())
    }

    #[instrument(level = "debug", skip_all)]
    async fn agents(&mut self, q: &AgentQuery) -> Result<Page<Account>> {
        // Skills are kept as a JSON list of restricted tags (see `parse_skill`), so `"tag"`
        // matches exactly one whole element of the list without any escaping.
        let filter = concat!(
            "a.kind = 'agent' AND ",
            not_banned!(),
            " AND ($1 IS NULL OR a.skills LIKE $1) \
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
        // Only constants are formatted into the text; every value is a bound parameter.
        let sql = format!(
            "SELECT {} FROM accounts a WHERE {filter} ORDER BY {order} LIMIT $4 OFFSET $5",
            account_cols!()
        );
        let rows = db::query(db::AssertSqlSafe(sql))
            .bind(skill.as_deref())
            .bind(text.as_deref())
            .bind(seen)
            .bind(limit_of(q.limit))
            .bind(limit_of(q.offset))
            .fetch_all(self.0.exec())
            .await
            .map_err(err)?;
        let total: i64 = get(
            &db::query(db::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM accounts a WHERE {filter}")))
                .bind(skill.as_deref())
                .bind(text.as_deref())
                .bind(seen)
                .fetch_one(self.0.exec())
                .await
                .map_err(err)?,
            "n",
        )?;
        Ok(Page { items: rows.iter().map(account_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    #[instrument(level = "debug", skip_all)]
    async fn credential_by_key(&mut self, key_hash: &str) -> Result<Option<CredentialMatch>> {
        let sql = concat!(
            "SELECT ",
            account_cols!(),
            ", k.id AS key_id, k.last_used_at AS key_last_used_at \
             FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        );
        let row = db::query(sql).bind(key_hash).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.map(|r| {
            Ok(CredentialMatch {
                account: account_from_row(&r)?,
                credential: Credential::ApiKey(ApiKeyId::from_trusted(get(&r, "key_id")?)),
                last_used_at: opt_time(&r, "key_last_used_at")?,
            })
        })
        .transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn credential_by_access_token(
        &mut self,
        access_hash: &str,
        now: Timestamp,
    ) -> Result<Option<CredentialMatch>> {
        let sql = concat!(
            "SELECT ",
            account_cols!(),
            ", s.id AS session_id FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.access_hash = $1 AND s.revoked_at IS NULL AND s.access_expires_at > $2"
        );
        let row = db::query(sql)
            .bind(access_hash)
            .bind(now.millis())
            .fetch_optional(self.0.exec())
            .await
            .map_err(err)?;
        row.map(|r| {
            Ok(CredentialMatch {
                account: account_from_row(&r)?,
                credential: Credential::Session(SessionId::from_trusted(get(&r, "session_id")?)),
                last_used_at: None,
            })
        })
        .transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn api_keys(&mut self, account: &AccountId) -> Result<Vec<ApiKeyRecord>> {
        let sql = concat!(
            "SELECT ",
            api_key_cols!(),
            " FROM api_keys WHERE account_id = $1 ORDER BY (revoked_at IS NULL) DESC, created_at DESC, id DESC"
        );
        let rows = db::query(sql).bind(account.as_str()).fetch_all(self.0.exec()).await.map_err(err)?;
        rows.iter().map(api_key_from_row).collect()
    }
}

#[async_trait]
impl AccountWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn insert_account(&mut self, a: &NewAccount) -> Result<()> {
        db::query(
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
        .execute(self.conn())
        .await
        .map_err(db_err(Some(Conflict::Email)))?;
        super::jobs::index_skills(self, &a.id, &a.profile.skills).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn account_for_update(&mut self, id: &AccountId) -> Result<Option<Account>> {
        self.locked_by_id(account_cols!(), "accounts a", id.as_str(), account_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_profile(
        &mut self,
        id: &AccountId,
        name: &str,
        p: &Profile,
        now: Timestamp,
    ) -> Result<()> {
        db::query(
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
        .execute(self.conn())
        .await
        .map_err(err)?;
        super::jobs::index_skills(self, id, &p.skills).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_banned(
        &mut self,
        id: &AccountId,
        banned_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool> {
        let done = db::query("UPDATE accounts SET banned_at = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(banned_at.map(Timestamp::millis))
            .bind(now.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_role(&mut self, id: &AccountId, role: Role, now: Timestamp) -> Result<bool> {
        let done = db::query("UPDATE accounts SET role = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(now.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_password_hash(&mut self, id: &AccountId, hash: &str, now: Timestamp) -> Result<bool> {
        let done = db::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(hash)
            .bind(now.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_webhook_secret(&mut self, id: &AccountId, secret: &str, now: Timestamp) -> Result<()> {
        db::query("UPDATE accounts SET webhook_secret = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(secret)
            .bind(now.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn touch_presence(&mut self, agent: &AccountId, now: Timestamp, seen: Sighting) -> Result<()> {
        let sql = match seen {
            Sighting::Poll => "UPDATE accounts SET last_seen_at = $2 WHERE id = $1",
            Sighting::Heartbeat => "UPDATE accounts SET last_seen_at = $2, offline_at = NULL WHERE id = $1",
            Sighting::SignOff => "UPDATE accounts SET last_seen_at = $2, offline_at = $2 WHERE id = $1",
        };
        db::query(sql).bind(agent.as_str()).bind(now.millis()).execute(self.conn()).await.map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn count_outcome(&mut self, agent: &AccountId, outcome: Outcome) -> Result<()> {
        let sql = match outcome {
            Outcome::Completed => "UPDATE accounts SET completed_count = completed_count + 1 WHERE id = $1",
            Outcome::Failed => "UPDATE accounts SET failed_count = failed_count + 1 WHERE id = $1",
            Outcome::NoResponse => {
                "UPDATE accounts SET no_response_count = no_response_count + 1 WHERE id = $1"
            }
        };
        db::query(sql).bind(agent.as_str()).execute(self.conn()).await.map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_api_key(&mut self, k: &NewApiKey) -> Result<()> {
        db::query(
            "INSERT INTO api_keys (id, account_id, name, display_prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(k.id.as_str())
        .bind(k.account_id.as_str())
        .bind(&k.name)
        .bind(&k.display_prefix)
        .bind(&k.key_hash)
        .bind(k.created_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
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
        let row = db::query(sql)
            .bind(id.as_str())
            .bind(account.as_str())
            .bind(now.millis())
            .fetch_optional(self.conn())
            .await
            .map_err(err)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn touch_api_keys(&mut self, ids: &[ApiKeyId], now: Timestamp) -> Result<()> {
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "UPDATE api_keys SET last_used_at = ${} WHERE id IN ({})",
                chunk.len() + 1,
                marks(chunk.len())
            );
            let mut q = db::query(db::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q = q.bind(now.millis());
            q.execute(self.conn()).await.map_err(err)?;
        }
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_session(&mut self, s: &NewSession) -> Result<()> {
        db::query(
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
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn take_refresh_token(&mut self, refresh_hash: &str, now: Timestamp) -> Result<Option<AccountId>> {
        let row = db::query(
            "UPDATE sessions SET revoked_at = $2 \
             WHERE refresh_hash = $1 AND revoked_at IS NULL AND refresh_expires_at > $2 RETURNING account_id",
        )
        .bind(refresh_hash)
        .bind(now.millis())
        .fetch_optional(self.conn())
        .await
        .map_err(err)?;
        row.map(|r| Ok(AccountId::from_trusted(get(&r, "account_id")?))).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn revoke_session(&mut self, id: &SessionId, now: Timestamp) -> Result<()> {
        db::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.as_str())
            .bind(now.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }
}
