//! The double-entry ledger, escrow holds and brief quotas.

use agora_core::{
    AccountId, HoldId, LedgerTxId, Timestamp,
    ledger::{Bucket, Plan, TxKind},
    money::Currency,
};
use async_trait::async_trait;

use crate::{Page, Result};

/// What a ledger transaction is about: a task, a bid, a payment… (`kind`, `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: String,
    pub id: String,
}

impl Reference {
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        Self { kind: kind.to_owned(), id: id.into() }
    }
}

/// A planned ledger transaction with who, why and when.
#[derive(Debug, Clone)]
pub struct NewLedgerTx {
    pub id: LedgerTxId,
    pub plan: Plan,
    pub actor_id: Option<AccountId>,
    pub hold_id: Option<HoldId>,
    pub reference: Option<Reference>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

/// An escrow hold and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub payer_id: AccountId,
    pub currency: Currency,
    pub amount: i64,
    pub remaining: i64,
    pub reference: Reference,
    pub created_at: Timestamp,
}

/// One owner's balances in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub currency: Currency,
    pub available: i64,
    pub held: i64,
}

/// One line of an owner's statement: a movement on one of its wallets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub tx_id: LedgerTxId,
    pub kind: TxKind,
    pub currency: Currency,
    pub bucket: Bucket,
    pub amount: i64,
    pub actor_id: Option<AccountId>,
    pub hold_id: Option<HoldId>,
    pub reference: Option<Reference>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

/// What the ledger's integrity check found; every list is empty on a healthy ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    /// Transactions whose lines do not sum to zero.
    pub unbalanced_transactions: Vec<String>,
    /// Accounts whose cached balance differs from the sum of their lines.
    pub drifted_accounts: Vec<String>,
    /// Accounts below zero that may not be.
    pub negative_accounts: Vec<String>,
    /// `(payer, currency)` pairs whose held wallet differs from the remaining of their holds.
    pub held_mismatches: Vec<String>,
    /// Per currency: the total of all wallets and revenue, and minus the funding account
    /// (what entered). They are equal on a healthy ledger.
    pub totals: Vec<(Currency, i64, i64)>,
}

impl LedgerAudit {
    pub fn is_healthy(&self) -> bool {
        self.unbalanced_transactions.is_empty()
            && self.drifted_accounts.is_empty()
            && self.negative_accounts.is_empty()
            && self.held_mismatches.is_empty()
            && self.totals.iter().all(|(_, inside, entered)| inside == entered)
    }
}

/// Where a quota unit came from (and goes back to on refund).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaBucket {
    Free,
    Bonus,
    Purchased,
}

impl QuotaBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Bonus => "bonus",
            Self::Purchased => "purchased",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "free" => Self::Free,
            "bonus" => Self::Bonus,
            "purchased" => Self::Purchased,
            _ => return None,
        })
    }
}

/// An account's quota in one period (a calendar month, `YYYY-MM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    pub period: String,
    pub monthly_free: i64,
    pub free_used: i64,
    pub bonus: i64,
    pub purchased: i64,
}

impl QuotaState {
    pub fn remaining(&self) -> i64 {
        (self.monthly_free - self.free_used).max(0) + self.bonus + self.purchased
    }
}

#[async_trait]
pub trait LedgerReads: Send {
    /// The owner's balances, one per currency it has ever held, by currency.
    async fn balances(&mut self, owner: &AccountId) -> Result<Vec<Balance>>;
    /// The owner's balance in one currency (zeros if none).
    async fn balance(&mut self, owner: &AccountId, currency: &Currency) -> Result<Balance>;
    /// The owner's wallet movements, newest first.
    async fn statement(&mut self, owner: &AccountId, offset: u64, limit: u64) -> Result<Page<StatementLine>>;
    /// Platform revenue (fees collected) per currency, from the ledger.
    async fn revenue(&mut self) -> Result<Vec<(Currency, i64)>>;
    /// Checks the ledger's invariants against its lines (see [`LedgerAudit`]).
    async fn ledger_audit(&mut self) -> Result<LedgerAudit>;
    async fn hold(&mut self, id: &HoldId) -> Result<Option<Hold>>;
    /// The account's quota in `period` (a new period starts with no free units used).
    async fn quota(&mut self, account: &AccountId, period: &str, monthly_free: i64) -> Result<QuotaState>;
}

/// What [`LedgerWrites::post_ledger`] did. Anything but `Done` leaves the transaction half
/// written: it must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Done,
    /// A debit would take a wallet or revenue account below zero.
    Overdrawn,
    /// A balance would leave the range `-i64::MAX ..= i64::MAX` (so `-balance` is never an
    /// overflow either).
    OutOfRange,
}

#[async_trait]
pub trait LedgerWrites: Send {
    /// Writes a balanced ledger transaction and updates the cached balances. Every change
    /// of a balance is one conditional statement, never a read first: a debit that would
    /// take a wallet or revenue account below zero is `Overdrawn`, and one that would leave
    /// the `i64` range `OutOfRange`; nothing is stored by an arithmetic overflow.
    async fn post_ledger(&mut self, tx: &NewLedgerTx) -> Result<Posted>;
    async fn insert_hold(&mut self, hold: &Hold) -> Result<()>;
    /// What is left of a hold, locking it against concurrent settlements until this
    /// transaction ends; `None` when there is no such hold.
    async fn hold_remaining_for_update(&mut self, id: &HoldId) -> Result<Option<i64>>;
    /// Takes `amount` from what is left of a hold, atomically; the hold after the draw, or
    /// `None` when less is left (it was settled already) or there is no such hold.
    async fn draw_hold(&mut self, id: &HoldId, amount: i64, now: Timestamp) -> Result<Option<Hold>>;
    /// Takes one unit of quota for `reference`: free units of `period` first, then bonus,
    /// then purchased; `None` when none is left. `Conflict::Duplicate` if `reference` was
    /// consumed before.
    async fn quota_consume(
        &mut self,
        account: &AccountId,
        period: &str,
        monthly_free: i64,
        reference: &str,
        now: Timestamp,
    ) -> Result<Option<QuotaBucket>>;
    /// Gives back the unit consumed for `reference`, once; `false` if there was none to give
    /// back (never consumed, or already refunded).
    async fn quota_refund(&mut self, account: &AccountId, reference: &str, now: Timestamp) -> Result<bool>;
    /// Adds bonus or purchased units (`Free` is not grantable).
    async fn quota_grant(
        &mut self,
        account: &AccountId,
        bucket: QuotaBucket,
        units: i64,
        period: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<()>;
}
