//! The principal's money (balances, statement, brief quota) and the admin's ledger tools
//! (top-up, adjustment, quota grants, revenue, audit). Every movement goes through
//! [`crate::money`].

use agora_core::{AccountId, LedgerTxId, money::Currency, validation};
use agora_store::{Balance, LedgerAudit, Page, QuotaBucket, QuotaState, StatementLine};

use crate::{
    Admin, App, Principal, Uncommitted,
    error::{Error, Result},
    money::{self, Why},
};

/// A top-up's or adjustment's ledger transaction, and the balance it leaves.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub transaction_id: LedgerTxId,
    pub account_id: AccountId,
    pub amount: i64,
    pub balance: Balance,
}

fn reason(text: Option<&str>, inv: &mut agora_core::Invalid) -> Option<String> {
    text.and_then(|t| inv.collect("reason", validation::text(t, 1, 500)))
}

impl App {
    /// The principal's balances, per currency.
    pub async fn wallet(&self, p: &Principal) -> Result<Vec<Balance>> {
        Ok(self.store().read().balances(p.id()).await?)
    }

    /// The principal's statement: every movement on its wallets, newest first.
    pub async fn statement(&self, p: &Principal, offset: u64, limit: u64) -> Result<Page<StatementLine>> {
        Ok(self.store().read().statement(p.id(), offset, limit).await?)
    }

    /// The principal's AI-team brief quota this month.
    pub async fn quota(&self, p: &Principal) -> Result<QuotaState> {
        let s = self.settings();
        Ok(self.store().read().quota(p.id(), &self.now().month(), s.quota_monthly_free).await?)
    }

    /// Credits an account with money from outside the platform.
    pub async fn top_up(
        &self,
        admin: &Admin,
        id: &AccountId,
        currency: &str,
        amount: i64,
        why: Option<&str>,
    ) -> Result<Uncommitted<Receipt>> {
        let mut inv = agora_core::Invalid::default();
        let cur = inv.collect("currency", self.settings().currencies.parse(currency));
        if amount <= 0 {
            inv.push("amount", "must be a positive whole number of minor units");
        }
        self.settings().max_amount.check(&mut inv, "amount", amount);
        let why = reason(why, &mut inv);
        let Some(cur) = cur.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
        self.existing_account(id).await?;
        let why = Why { actor_id: admin.actor().cloned(), reference: None, reason: why };
        let mut tx = self.begin().await?;
        let tx_id = money::top_up(tx.as_mut(), id, &cur, amount, &why, self.now()).await?;
        let balance = tx.balance(id, &cur).await?;
        Ok(self.uncommitted(tx, Receipt { transaction_id: tx_id, account_id: id.clone(), amount, balance }))
    }

    /// Corrects an account's available balance up or down, with a reason. A debit below
    /// zero is `INSUFFICIENT_FUNDS`.
    pub async fn adjust(
        &self,
        admin: &Admin,
        id: &AccountId,
        currency: &str,
        delta: i64,
        why: &str,
    ) -> Result<Uncommitted<Receipt>> {
        let mut inv = agora_core::Invalid::default();
        let cur = inv.collect("currency", self.settings().currencies.parse(currency));
        if delta == 0 || delta == i64::MIN {
            inv.push("amount", "must be a non-zero whole number of minor units");
        } else {
            self.settings().max_amount.check(&mut inv, "amount", delta.abs());
        }
        let why = reason(Some(why), &mut inv);
        let Some(cur) = cur.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
        self.existing_account(id).await?;
        let why = Why { actor_id: admin.actor().cloned(), reference: None, reason: why };
        let mut tx = self.begin().await?;
        let tx_id = money::adjust(tx.as_mut(), id, &cur, delta, &why, self.now()).await?;
        let balance = tx.balance(id, &cur).await?;
        Ok(self.uncommitted(
            tx,
            Receipt { transaction_id: tx_id, account_id: id.clone(), amount: delta, balance },
        ))
    }

    /// Grants AI-team brief units: `bonus` (a gift) or `purchased` (a pack bought). The
    /// account's quota afterwards.
    pub async fn grant_quota(
        &self,
        _: &Admin,
        id: &AccountId,
        kind: &str,
        units: i64,
        why: &str,
    ) -> Result<Uncommitted<QuotaState>> {
        let mut inv = agora_core::Invalid::default();
        let bucket = match kind {
            "bonus" => Some(QuotaBucket::Bonus),
            "purchased" => Some(QuotaBucket::Purchased),
            _ => {
                inv.push("kind", "must be bonus or purchased");
                None
            }
        };
        if !(1..=1_000_000).contains(&units) {
            inv.push("units", "must be 1-1000000");
        }
        let why = reason(Some(why), &mut inv);
        let (Some(bucket), Some(why), true) = (bucket, why, inv.0.is_empty()) else { return Err(inv.into()) };
        self.existing_account(id).await?;
        let now = self.now();
        let period = now.month();
        let mut tx = self.begin().await?;
        tx.quota_grant(id, bucket, units, &period, &why, now).await?;
        let granted = tx.quota(id, &period, self.settings().quota_monthly_free).await?;
        Ok(self.uncommitted(tx, granted))
    }

    /// Platform revenue (fees collected) per currency, from the ledger.
    pub async fn revenue(&self, _: &Admin) -> Result<Vec<(Currency, i64)>> {
        Ok(self.store().read().revenue().await?)
    }

    /// Checks the ledger's invariants against its lines.
    pub async fn ledger_audit(&self, _: &Admin) -> Result<LedgerAudit> {
        self.store().read().ledger_audit().await.map_err(Error::from)
    }
}
