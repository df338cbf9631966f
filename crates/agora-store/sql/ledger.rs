//! The ledger, escrow holds and brief quotas.

use agora_core::{
    AccountId, HoldId, LedgerTxId, QuotaMovementId, Timestamp,
    ledger::{Bucket, LedgerAccount, Posting, TxKind},
    money::Currency,
};
use agora_store::{
    Balance, Conflict, Hold, LedgerAudit, LedgerReads, LedgerWrites, NewLedgerTx, Page, Posted, QuotaBucket,
    QuotaState, Reference, Result, StatementLine, StoreError,
};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{corrupt, count, err, get, limit_of, row_marks, time},
};
use crate::FOR_UPDATE;
use crate::db;

macro_rules! hold_cols {
    () => {
        "id, payer_id, currency, amount, remaining, ref_kind, ref_id, created_at"
    };
}

fn hold_from_row(r: &DbRow) -> Result<Hold> {
    Ok(Hold {
        id: HoldId::from_trusted(get(r, "id")?),
        payer_id: AccountId::from_trusted(get(r, "payer_id")?),
        currency: Currency::from_trusted(get(r, "currency")?),
        amount: get(r, "amount")?,
        remaining: get(r, "remaining")?,
        reference: Reference { kind: get(r, "ref_kind")?, id: get(r, "ref_id")? },
        created_at: time(r, "created_at")?,
    })
}

fn reference_from_row(r: &DbRow) -> Result<Option<Reference>> {
    let kind: Option<String> = get(r, "ref_kind")?;
    let id: Option<String> = get(r, "ref_id")?;
    Ok(kind.zip(id).map(|(kind, id)| Reference { kind, id }))
}

fn bucket_name(a: &LedgerAccount) -> &'static str {
    match a {
        LedgerAccount::Wallet { bucket, .. } => bucket.as_str(),
        LedgerAccount::Revenue(_) => "revenue",
        LedgerAccount::Funding(_) => "funding",
    }
}

fn statement_line(r: &DbRow) -> Result<StatementLine> {
    let kind: String = get(r, "kind")?;
    let bucket: String = get(r, "bucket")?;
    Ok(StatementLine {
        tx_id: LedgerTxId::from_trusted(get(r, "id")?),
        kind: TxKind::parse(&kind).ok_or_else(|| corrupt("ledger kind", &kind))?,
        currency: Currency::from_trusted(get(r, "currency")?),
        bucket: match bucket.as_str() {
            "available" => Bucket::Available,
            "held" => Bucket::Held,
            other => return Err(corrupt("wallet bucket", other)),
        },
        amount: get(r, "amount")?,
        actor_id: get::<Option<String>>(r, "actor_id")?.map(AccountId::from_trusted),
        hold_id: get::<Option<String>>(r, "hold_id")?.map(HoldId::from_trusted),
        reference: reference_from_row(r)?,
        reason: get(r, "reason")?,
        created_at: time(r, "created_at")?,
    })
}

impl<S: Source> Sql<S> {
    /// An owner's balances, one per currency (only `currency`, when given), by currency.
    async fn balances_of(&mut self, owner: &AccountId, currency: Option<&Currency>) -> Result<Vec<Balance>> {
        let rows = db::query(
            "SELECT currency, bucket, balance FROM ledger_accounts WHERE owner_id = $1 \
             AND ($2 IS NULL OR currency = $2) ORDER BY currency, bucket",
        )
        .bind(owner.as_str())
        .bind(currency.map(Currency::as_str))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        let mut out: Vec<Balance> = Vec::new();
        for r in &rows {
            let currency = Currency::from_trusted(get(r, "currency")?);
            let bucket: String = get(r, "bucket")?;
            let balance: i64 = get(r, "balance")?;
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

    async fn keys(&mut self, sql: &'static str, col: &str) -> Result<Vec<String>> {
        let rows = db::query(sql).fetch_all(self.0.exec()).await.map_err(err)?;
        rows.iter().map(|r| get::<String>(r, col)).collect()
    }
}

#[async_trait]
impl<S: Source> LedgerReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn balances(&mut self, owner: &AccountId) -> Result<Vec<Balance>> {
        self.balances_of(owner, None).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn balance(&mut self, owner: &AccountId, currency: &Currency) -> Result<Balance> {
        let found = self.balances_of(owner, Some(currency)).await?;
        Ok(found.into_iter().next().unwrap_or(Balance { currency: currency.clone(), available: 0, held: 0 }))
    }

    #[instrument(level = "debug", skip_all)]
    async fn statement(&mut self, owner: &AccountId, offset: u64, limit: u64) -> Result<Page<StatementLine>> {
        let rows = db::query(
            "SELECT t.id, t.kind, t.currency, a.bucket, l.amount, t.actor_id, t.hold_id, t.ref_kind, t.ref_id, \
             t.reason, t.created_at \
             FROM ledger_lines l JOIN ledger_accounts a ON a.key = l.account_key \
             JOIN ledger_transactions t ON t.id = l.tx_id \
             WHERE a.owner_id = $1 ORDER BY t.created_at DESC, t.id DESC, a.bucket ASC LIMIT $2 OFFSET $3",
        )
        .bind(owner.as_str())
        .bind(limit_of(limit))
        .bind(limit_of(offset))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        let total: i64 = get(
            &db::query(
                "SELECT COUNT(*) AS n FROM ledger_lines l JOIN ledger_accounts a ON a.key = l.account_key \
                 WHERE a.owner_id = $1",
            )
            .bind(owner.as_str())
            .fetch_one(self.0.exec())
            .await
            .map_err(err)?,
            "n",
        )?;
        Ok(Page { items: rows.iter().map(statement_line).collect::<Result<_>>()?, total: count(total) })
    }

    #[instrument(level = "debug", skip_all)]
    async fn revenue(&mut self) -> Result<Vec<(Currency, i64)>> {
        let rows = db::query(
            "SELECT currency, balance FROM ledger_accounts WHERE bucket = 'revenue' ORDER BY currency",
        )
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        rows.iter().map(|r| Ok((Currency::from_trusted(get(r, "currency")?), get(r, "balance")?))).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn ledger_audit(&mut self) -> Result<LedgerAudit> {
        let unbalanced = self
            .keys(
                "SELECT tx_id FROM ledger_lines GROUP BY tx_id HAVING SUM(amount) <> 0 ORDER BY tx_id",
                "tx_id",
            )
            .await?;
        let drifted = self
            .keys(
                "SELECT a.key FROM ledger_accounts a LEFT JOIN \
                 (SELECT account_key, SUM(amount) AS s FROM ledger_lines GROUP BY account_key) l \
                 ON l.account_key = a.key WHERE a.balance <> COALESCE(l.s, 0) ORDER BY a.key",
                "key",
            )
            .await?;
        let negative = self
            .keys(
                "SELECT key FROM ledger_accounts WHERE bucket <> 'funding' AND balance < 0 ORDER BY key",
                "key",
            )
            .await?;
        // Held wallets against the holds they stand for, both ways round.
        let held = self
            .keys(
                "SELECT a.key FROM ledger_accounts a LEFT JOIN \
                 (SELECT payer_id, currency, SUM(remaining) AS r FROM holds GROUP BY payer_id, currency) h \
                 ON h.payer_id = a.owner_id AND h.currency = a.currency \
                 WHERE a.bucket = 'held' AND a.balance <> COALESCE(h.r, 0) \
                 UNION ALL \
                 SELECT h.payer_id AS key FROM holds h WHERE h.remaining > 0 AND NOT EXISTS \
                 (SELECT 1 FROM ledger_accounts a WHERE a.owner_id = h.payer_id AND a.currency = h.currency \
                  AND a.bucket = 'held')",
                "key",
            )
            .await?;
        let sums = db::query(
            "SELECT currency, \
             CAST(COALESCE(SUM(CASE WHEN bucket <> 'funding' THEN balance ELSE 0 END), 0) AS BIGINT) AS inside, \
             CAST(COALESCE(SUM(CASE WHEN bucket = 'funding' THEN -balance ELSE 0 END), 0) AS BIGINT) AS entered \
             FROM ledger_accounts GROUP BY currency ORDER BY currency",
        )
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        Ok(LedgerAudit {
            unbalanced_transactions: unbalanced,
            drifted_accounts: drifted,
            negative_accounts: negative,
            held_mismatches: held,
            totals: sums
                .iter()
                .map(|r| {
                    Ok((Currency::from_trusted(get(r, "currency")?), get(r, "inside")?, get(r, "entered")?))
                })
                .collect::<Result<_>>()?,
        })
    }

    #[instrument(level = "debug", skip_all)]
    async fn hold(&mut self, id: &HoldId) -> Result<Option<Hold>> {
        let sql = concat!("SELECT ", hold_cols!(), " FROM holds WHERE id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(hold_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn quota(&mut self, account: &AccountId, period: &str, monthly_free: i64) -> Result<QuotaState> {
        let row = db::query("SELECT period, free_used, bonus, purchased FROM quotas WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_optional(self.0.exec())
            .await
            .map_err(err)?;
        let mut q =
            QuotaState { period: period.to_owned(), monthly_free, free_used: 0, bonus: 0, purchased: 0 };
        if let Some(r) = row {
            let stored: String = get(&r, "period")?;
            if stored == period {
                q.free_used = get(&r, "free_used")?;
            }
            q.bonus = get(&r, "bonus")?;
            q.purchased = get(&r, "purchased")?;
        }
        Ok(q)
    }
}

impl Sql<InTx> {
    /// Makes sure the account has a quota row for `period`; a row of an earlier period
    /// starts the new one with no free units used (bonus and purchased units carry over).
    async fn quota_row(&mut self, account: &AccountId, period: &str) -> Result<()> {
        db::query(
            "INSERT INTO quotas (account_id, period, free_used, bonus, purchased) VALUES ($1, $2, 0, 0, 0) \
             ON CONFLICT (account_id) DO UPDATE SET period = excluded.period, free_used = 0 \
             WHERE quotas.period <> excluded.period",
        )
        .bind(account.as_str())
        .bind(period)
        .execute(self.conn())
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
        let done = db::query(
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
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl LedgerWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn post_ledger(&mut self, t: &NewLedgerTx) -> Result<Posted> {
        let plan = &t.plan;
        db::query(
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
        .execute(self.conn())
        .await
        .map_err(err)?;
        // One lock order for every transaction (by account key), so that two transactions
        // touching the same accounts on PostgreSQL wait for each other instead of deadlocking.
        let mut lines: Vec<(String, &Posting)> =
            plan.postings().iter().map(|p| (p.account.key(), p)).collect();
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, p) in &lines {
            if p.amount < 0 && !p.account.may_go_negative() {
                // The debit and its check are one statement: no read-then-write window.
                let done = db::query(
                    "UPDATE ledger_accounts SET balance = balance + $2 WHERE key = $1 AND balance + $2 >= 0",
                )
                .bind(key.as_str())
                .bind(p.amount)
                .execute(self.conn())
                .await
                .map_err(err)?;
                if done.rows_affected() != 1 {
                    return Ok(Posted::Overdrawn);
                }
            } else {
                // A credit, or a funding account's debit: the range check is in the same
                // statement, written so that it cannot overflow itself (i64::MAX is bound,
                // since SQLite reads the literal -9223372036854775808 as a float).
                let done = db::query(
                    "INSERT INTO ledger_accounts (key, owner_id, currency, bucket, balance) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (key) DO UPDATE SET balance = ledger_accounts.balance + excluded.balance \
                     WHERE (excluded.balance >= 0 AND ledger_accounts.balance <= $6 - excluded.balance) \
                     OR (excluded.balance < 0 AND ledger_accounts.balance >= (0 - $6) - excluded.balance)",
                )
                .bind(key.as_str())
                .bind(p.account.owner().map(AccountId::as_str))
                .bind(p.account.currency().as_str())
                .bind(bucket_name(&p.account))
                .bind(p.amount)
                .bind(i64::MAX)
                .execute(self.conn())
                .await
                .map_err(err)?;
                if done.rows_affected() != 1 || p.amount == i64::MIN {
                    return Ok(Posted::OutOfRange);
                }
            }
        }
        // The lines, in one statement (a plan has a handful of postings, well under CHUNK).
        if lines.is_empty() {
            return Ok(Posted::Done);
        }
        let sql = format!(
            "INSERT INTO ledger_lines (tx_id, account_key, amount) VALUES {}",
            row_marks(lines.len(), 3)
        );
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (key, p) in &lines {
            q = q.bind(t.id.as_str()).bind(key.as_str()).bind(p.amount);
        }
        q.execute(self.conn()).await.map_err(err)?;
        Ok(Posted::Done)
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_hold(&mut self, h: &Hold) -> Result<()> {
        db::query(
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
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn hold_remaining_for_update(&mut self, id: &HoldId) -> Result<Option<i64>> {
        let sql = format!("SELECT remaining FROM holds WHERE id = $1{FOR_UPDATE}");
        let row = db::query(db::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(err)?;
        row.map(|r| get(&r, "remaining")).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn draw_hold(&mut self, id: &HoldId, amount: i64, now: Timestamp) -> Result<Option<Hold>> {
        let sql = concat!(
            "UPDATE holds SET remaining = remaining - $2, updated_at = $3 WHERE id = $1 AND remaining >= $2 \
             RETURNING ",
            hold_cols!()
        );
        let row = db::query(sql)
            .bind(id.as_str())
            .bind(amount)
            .bind(now.millis())
            .fetch_optional(self.conn())
            .await
            .map_err(err)?;
        row.as_ref().map(hold_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn quota_consume(
        &mut self,
        account: &AccountId,
        period: &str,
        monthly_free: i64,
        reference: &str,
        now: Timestamp,
    ) -> Result<Option<QuotaBucket>> {
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
            let done = db::query(sql)
                .bind(account.as_str())
                .bind(monthly_free)
                .execute(self.conn())
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
                return Ok(Some(bucket));
            }
        }
        Ok(None)
    }

    #[instrument(level = "debug", skip_all)]
    async fn quota_refund(&mut self, account: &AccountId, reference: &str, now: Timestamp) -> Result<bool> {
        let consumed = db::query(
            "SELECT bucket, period FROM quota_movements WHERE account_id = $1 AND kind = 'consume' AND ref = $2",
        )
        .bind(account.as_str())
        .bind(reference)
        .fetch_optional(self.conn())
        .await
        .map_err(err)?;
        let Some(row) = consumed else { return Ok(false) };
        let bucket_name: String = get(&row, "bucket")?;
        let bucket = QuotaBucket::parse(&bucket_name).ok_or_else(|| corrupt("quota bucket", &bucket_name))?;
        let period: String = get(&row, "period")?;
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
        db::query(sql).bind(account.as_str()).bind(&period).execute(self.conn()).await.map_err(err)?;
        Ok(true)
    }

    #[instrument(level = "debug", skip_all)]
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
            QuotaBucket::Free => return Err(StoreError::Backend("free units are not granted".into())),
        };
        self.quota_row(account, period).await?;
        db::query(sql).bind(account.as_str()).bind(units).execute(self.conn()).await.map_err(err)?;
        self.quota_movement(account, "grant", bucket, units, period, None, Some(reason), now).await?;
        Ok(())
    }
}
