//! The ledger's rules: which accounts exist and what each money operation posts.
//!
//! Money moves only as balanced double-entry transactions (SPEC §5). This module plans them:
//! each operation returns the postings it makes, and every plan sums to zero by
//! construction (a test checks all of them over random amounts). Storage writes a plan
//! atomically and refuses it if it would take a wallet below zero; it never invents lines.
//!
//! Accounts: per owner and currency an `available` and a `held` wallet; per currency
//! `platform:revenue:<cur>` (fees) and `external:funding:<cur>` (the other side of every
//! top-up, so it is the negative of all money that entered). Wallets and revenue can never
//! be negative; funding always is (or zero).

use crate::{
    AccountId,
    money::{Currency, FeeSplit, MoneyError, fee_split},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Available,
    Held,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Held => "held",
        }
    }
}

/// One account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LedgerAccount {
    Wallet { owner: AccountId, currency: Currency, bucket: Bucket },
    Revenue(Currency),
    Funding(Currency),
}

impl LedgerAccount {
    pub fn available(owner: &AccountId, currency: &Currency) -> Self {
        Self::Wallet { owner: owner.clone(), currency: currency.clone(), bucket: Bucket::Available }
    }

    pub fn held(owner: &AccountId, currency: &Currency) -> Self {
        Self::Wallet { owner: owner.clone(), currency: currency.clone(), bucket: Bucket::Held }
    }

    /// The account's stable name, its key in storage: `acct_…:USD:available`,
    /// `platform:revenue:USD`, `external:funding:USD`.
    pub fn key(&self) -> String {
        match self {
            Self::Wallet { owner, currency, bucket } => format!("{owner}:{currency}:{}", bucket.as_str()),
            Self::Revenue(c) => format!("platform:revenue:{c}"),
            Self::Funding(c) => format!("external:funding:{c}"),
        }
    }

    pub fn currency(&self) -> &Currency {
        match self {
            Self::Wallet { currency, .. } | Self::Revenue(currency) | Self::Funding(currency) => currency,
        }
    }

    pub fn owner(&self) -> Option<&AccountId> {
        match self {
            Self::Wallet { owner, .. } => Some(owner),
            _ => None,
        }
    }

    pub fn bucket(&self) -> Option<Bucket> {
        match self {
            Self::Wallet { bucket, .. } => Some(*bucket),
            _ => None,
        }
    }

    /// Only the funding account stands for money outside the platform, so only it may go
    /// below zero; storage refuses any other debit that would.
    pub fn may_go_negative(&self) -> bool {
        matches!(self, Self::Funding(_))
    }
}

/// Why money moved. Stored with every transaction; the statement shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxKind {
    TopUp,
    Hold,
    Release,
    ReleaseStage,
    Refund,
    Penalty,
    Adjust,
}

impl TxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::Hold => "hold",
            Self::Release => "release",
            Self::ReleaseStage => "release_stage",
            Self::Refund => "refund",
            Self::Penalty => "penalty",
            Self::Adjust => "adjust",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "top_up" => Self::TopUp,
            "hold" => Self::Hold,
            "release" => Self::Release,
            "release_stage" => Self::ReleaseStage,
            "refund" => Self::Refund,
            "penalty" => Self::Penalty,
            "adjust" => Self::Adjust,
            _ => return None,
        })
    }
}

/// One line of a transaction: a signed amount on one account (positive = credit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: LedgerAccount,
    pub amount: i64,
}

/// A balanced transaction, ready to be written. Only this module's constructors build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    kind: TxKind,
    currency: Currency,
    postings: Vec<Posting>,
}

impl Plan {
    pub fn kind(&self) -> TxKind {
        self.kind
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Builds a plan from (account, amount) moves, dropping zero lines; fails unless the
    /// lines are in `currency` and sum to zero.
    fn balanced(
        kind: TxKind,
        currency: &Currency,
        moves: Vec<(LedgerAccount, i64)>,
    ) -> Result<Self, MoneyError> {
        let mut sum = 0i64;
        let mut postings = Vec::with_capacity(moves.len());
        for (account, amount) in moves {
            if account.currency() != currency {
                return Err(MoneyError::CurrencyMismatch(currency.clone(), account.currency().clone()));
            }
            sum = sum.checked_add(amount).ok_or(MoneyError::Overflow)?;
            if amount != 0 {
                postings.push(Posting { account, amount });
            }
        }
        if sum != 0 {
            // Unreachable through the constructors below; kept as the last line of defence.
            return Err(MoneyError::Overflow);
        }
        Ok(Self { kind, currency: currency.clone(), postings })
    }
}

fn positive(amount: i64) -> Result<i64, MoneyError> {
    if amount > 0 { Ok(amount) } else { Err(MoneyError::Negative) }
}

fn neg(amount: i64) -> i64 {
    // Amounts are checked positive first, and -i64::MAX is representable.
    -amount
}

/// Money enters from outside (an admin, a confirmed payment): funding → owner's available.
pub fn top_up(owner: &AccountId, currency: &Currency, amount: i64) -> Result<Plan, MoneyError> {
    let amount = positive(amount)?;
    Plan::balanced(
        TxKind::TopUp,
        currency,
        vec![
            (LedgerAccount::Funding(currency.clone()), neg(amount)),
            (LedgerAccount::available(owner, currency), amount),
        ],
    )
}

/// Escrow: payer's available → payer's held.
pub fn hold(payer: &AccountId, currency: &Currency, amount: i64) -> Result<Plan, MoneyError> {
    let amount = positive(amount)?;
    Plan::balanced(
        TxKind::Hold,
        currency,
        vec![
            (LedgerAccount::available(payer, currency), neg(amount)),
            (LedgerAccount::held(payer, currency), amount),
        ],
    )
}

/// Pays `amount` of a payer's hold to a worker, minus the platform fee. `kind` is
/// `Release` (the whole remaining hold) or `ReleaseStage` (one stage of it).
pub fn release(
    kind: TxKind,
    payer: &AccountId,
    worker: &AccountId,
    currency: &Currency,
    amount: i64,
    fee_bps: u32,
) -> Result<(Plan, FeeSplit), MoneyError> {
    let amount = positive(amount)?;
    let split = fee_split(amount, fee_bps)?;
    let plan = Plan::balanced(
        kind,
        currency,
        vec![
            (LedgerAccount::held(payer, currency), neg(amount)),
            (LedgerAccount::available(worker, currency), split.net),
            (LedgerAccount::Revenue(currency.clone()), split.fee),
        ],
    )?;
    Ok((plan, split))
}

/// Returns `amount` of a hold to the payer: `Refund` (work failed or was cancelled) or
/// `Penalty` (the part of a reward withheld from a late worker).
pub fn refund(kind: TxKind, payer: &AccountId, currency: &Currency, amount: i64) -> Result<Plan, MoneyError> {
    let amount = positive(amount)?;
    Plan::balanced(
        kind,
        currency,
        vec![
            (LedgerAccount::held(payer, currency), neg(amount)),
            (LedgerAccount::available(payer, currency), amount),
        ],
    )
}

/// An admin correction of an available balance, up or down (never below zero: storage
/// refuses that). The other side is funding: an adjustment is money entering or leaving.
pub fn adjust(owner: &AccountId, currency: &Currency, delta: i64) -> Result<Plan, MoneyError> {
    if delta == 0 || delta == i64::MIN {
        return Err(MoneyError::Overflow);
    }
    Plan::balanced(
        TxKind::Adjust,
        currency,
        vec![
            (LedgerAccount::Funding(currency.clone()), -delta),
            (LedgerAccount::available(owner, currency), delta),
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn cur() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn sum(p: &Plan) -> i64 {
        p.postings().iter().map(|l| l.amount).sum()
    }

    #[test]
    fn a_release_pays_the_worker_net_and_the_platform_the_fee() {
        let (payer, worker) = (AccountId::generate(), AccountId::generate());
        let (plan, split) = release(TxKind::Release, &payer, &worker, &cur(), 100, 1000).unwrap();
        assert_eq!(split, FeeSplit { fee: 10, net: 90 });
        assert_eq!(
            plan.postings(),
            [
                Posting { account: LedgerAccount::held(&payer, &cur()), amount: -100 },
                Posting { account: LedgerAccount::available(&worker, &cur()), amount: 90 },
                Posting { account: LedgerAccount::Revenue(cur()), amount: 10 },
            ]
        );
        // A zero fee leaves no revenue line.
        let (plan, _) = release(TxKind::Release, &payer, &worker, &cur(), 5, 1000).unwrap();
        assert_eq!(plan.postings().len(), 2);
    }

    #[test]
    fn amounts_must_be_positive() {
        let a = AccountId::generate();
        assert!(hold(&a, &cur(), 0).is_err());
        assert!(top_up(&a, &cur(), -5).is_err());
        assert!(refund(TxKind::Refund, &a, &cur(), 0).is_err());
        assert!(adjust(&a, &cur(), 0).is_err());
        assert!(adjust(&a, &cur(), -3).is_ok());
    }

    #[test]
    fn account_keys_are_stable() {
        let a = AccountId::from_trusted("acct_x".into());
        assert_eq!(LedgerAccount::available(&a, &cur()).key(), "acct_x:USD:available");
        assert_eq!(LedgerAccount::held(&a, &cur()).key(), "acct_x:USD:held");
        assert_eq!(LedgerAccount::Revenue(cur()).key(), "platform:revenue:USD");
        assert_eq!(LedgerAccount::Funding(cur()).key(), "external:funding:USD");
    }

    proptest! {
        #[test]
        fn every_plan_sums_to_zero(amount in 1i64..=i64::MAX, bps in 0u32..=10_000, delta in i64::MIN + 1..=i64::MAX) {
            let (a, b) = (AccountId::generate(), AccountId::generate());
            let c = cur();
            let plans = [
                top_up(&a, &c, amount).unwrap(),
                hold(&a, &c, amount).unwrap(),
                release(TxKind::Release, &a, &b, &c, amount, bps).unwrap().0,
                release(TxKind::ReleaseStage, &a, &b, &c, amount, bps).unwrap().0,
                refund(TxKind::Refund, &a, &c, amount).unwrap(),
                refund(TxKind::Penalty, &a, &c, amount).unwrap(),
            ];
            for p in &plans {
                prop_assert_eq!(sum(p), 0);
                prop_assert!(p.postings().iter().all(|l| l.amount != 0));
            }
            if delta != 0 {
                prop_assert_eq!(sum(&adjust(&a, &c, delta).unwrap()), 0);
            }
        }
    }
}
