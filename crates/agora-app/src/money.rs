//! The money operations of SPEC §5, written once over the transaction so that every use
//! case moves money the same way.
//!
//! Each operation plans its lines with `agora_core::ledger` (balanced by construction),
//! writes them with `post_ledger` (which refuses overdrafts atomically) and appends the
//! event it causes, all in the caller's transaction: commit it, or drop it to undo all.
//!
//! Settlements (release, staged release, refund, penalty) draw from a hold first with a
//! conditional update, so two settlement paths racing for one hold — accept against
//! auto-accept, expiry against delivery — can only take its money once.

use agora_core::{
    AccountId, EventId, HoldId, LedgerTxId, Timestamp,
    event::EventType,
    ledger::{self, Plan, TxKind},
    money::{Currency, FeeSplit, MoneyError},
};
use agora_store::{Hold, NewEvent, NewLedgerTx, Posted, Reference, Tx};
use serde_json::json;

use crate::error::{Error, Refusal, Result};

fn planned<T>(r: Result<T, MoneyError>) -> Result<T> {
    r.map_err(|e| Error::invalid("amount", e.to_string()))
}

/// Who moves money and why: recorded on the ledger transaction and its event.
#[derive(Debug, Clone, Default)]
pub struct Why {
    pub actor_id: Option<AccountId>,
    pub reference: Option<Reference>,
    pub reason: Option<String>,
}

async fn post(
    tx: &mut dyn Tx,
    plan: Plan,
    hold_id: Option<&HoldId>,
    why: &Why,
    now: Timestamp,
) -> Result<LedgerTxId> {
    let id = LedgerTxId::generate();
    let posted = tx
        .post_ledger(&NewLedgerTx {
            id: id.clone(),
            plan,
            actor_id: why.actor_id.clone(),
            hold_id: hold_id.cloned(),
            reference: why.reference.clone(),
            reason: why.reason.clone(),
            created_at: now,
        })
        .await?;
    match posted {
        Posted::Done => Ok(id),
        Posted::Overdrawn => Err(Refusal::InsufficientFunds.into()),
        Posted::OutOfRange => Err(Refusal::BalanceOutOfRange.into()),
    }
}

async fn event(
    tx: &mut dyn Tx,
    event_type: EventType,
    why: &Why,
    audience: Vec<AccountId>,
    payload: serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    let task_id = why.reference.as_ref().filter(|r| r.kind == "task").map(|r| r.id.clone());
    tx.append_event(&NewEvent {
        id: EventId::generate(),
        event_type,
        actor_id: why.actor_id.clone(),
        task_id,
        audience,
        payload,
        created_at: now,
    })
    .await?;
    Ok(())
}

fn reference_json(r: Option<&Reference>) -> serde_json::Value {
    r.map_or(serde_json::Value::Null, |r| json!({ "kind": r.kind, "id": r.id }))
}

/// Credits `owner` with money from outside (an admin top-up, a confirmed payment).
pub async fn top_up(
    tx: &mut dyn Tx,
    owner: &AccountId,
    currency: &Currency,
    amount: i64,
    why: &Why,
    now: Timestamp,
) -> Result<LedgerTxId> {
    let id = post(tx, planned(ledger::top_up(owner, currency, amount))?, None, why, now).await?;
    let payload = json!({ "account_id": owner, "amount": amount, "currency": currency, "ledger_tx_id": id,
        "reference": reference_json(why.reference.as_ref()), "reason": why.reason });
    event(tx, EventType::PaymentToppedUp, why, vec![owner.clone()], payload, now).await?;
    Ok(id)
}

/// An admin correction of `owner`'s available balance by `delta` (never below zero).
pub async fn adjust(
    tx: &mut dyn Tx,
    owner: &AccountId,
    currency: &Currency,
    delta: i64,
    why: &Why,
    now: Timestamp,
) -> Result<LedgerTxId> {
    let id = post(tx, planned(ledger::adjust(owner, currency, delta))?, None, why, now).await?;
    let payload = json!({ "account_id": owner, "delta": delta, "currency": currency, "ledger_tx_id": id,
        "reason": why.reason });
    event(tx, EventType::PaymentAdjusted, why, vec![owner.clone()], payload, now).await?;
    Ok(id)
}

/// Holds `amount` of `payer`'s available money in escrow for `why.reference` (required).
/// `INSUFFICIENT_FUNDS` when the payer's available balance is short.
pub async fn hold(
    tx: &mut dyn Tx,
    payer: &AccountId,
    currency: &Currency,
    amount: i64,
    why: &Why,
    now: Timestamp,
) -> Result<Hold> {
    let reference = why.reference.clone().ok_or_else(|| Error::internal("a hold needs a reference"))?;
    let plan = planned(ledger::hold(payer, currency, amount))?;
    let hold = Hold {
        id: HoldId::generate(),
        payer_id: payer.clone(),
        currency: currency.clone(),
        amount,
        remaining: amount,
        reference,
        created_at: now,
    };
    tx.insert_hold(&hold).await?;
    let ledger_tx = post(tx, plan, Some(&hold.id), why, now).await?;
    let payload = json!({ "hold_id": hold.id, "payer_id": payer, "amount": amount, "currency": currency,
        "ledger_tx_id": ledger_tx, "reference": reference_json(Some(&hold.reference)) });
    event(tx, EventType::PaymentHeld, why, vec![payer.clone()], payload, now).await?;
    Ok(hold)
}

/// What a release paid: the amount drawn from the hold, the fee and the worker's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub hold: Hold,
    pub amount: i64,
    pub split: FeeSplit,
    pub ledger_tx_id: LedgerTxId,
}

/// Pays from a hold to `worker`, minus `fee_bps`: the whole remainder (`amount: None`, a
/// `Release`) or one stage of it (`Some(n)`, a `ReleaseStage`).
pub async fn release(
    tx: &mut dyn Tx,
    hold_id: &HoldId,
    worker: &AccountId,
    amount: Option<i64>,
    fee_bps: u32,
    why: &Why,
    now: Timestamp,
) -> Result<Settlement> {
    let (hold, amount) = draw(tx, hold_id, amount, now).await?;
    let kind =
        if hold.remaining == 0 && hold.amount == amount { TxKind::Release } else { TxKind::ReleaseStage };
    let (plan, split) =
        planned(ledger::release(kind, &hold.payer_id, worker, &hold.currency, amount, fee_bps))?;
    let id = post(tx, plan, Some(hold_id), why, now).await?;
    let payload = json!({ "hold_id": hold_id, "payer_id": hold.payer_id, "worker_id": worker,
        "amount": amount, "fee": split.fee, "net": split.net, "currency": hold.currency,
        "remaining": hold.remaining, "ledger_tx_id": id, "reference": reference_json(Some(&hold.reference)) });
    event(tx, EventType::PaymentReleased, why, vec![hold.payer_id.clone(), worker.clone()], payload, now)
        .await?;
    Ok(Settlement { hold, amount, split, ledger_tx_id: id })
}

/// Returns money from a hold to its payer: the whole remainder (`None`) or part of it.
/// `kind` is `Refund` or `Penalty` (a late worker's withheld part).
pub async fn refund(
    tx: &mut dyn Tx,
    hold_id: &HoldId,
    amount: Option<i64>,
    kind: TxKind,
    why: &Why,
    now: Timestamp,
) -> Result<(Hold, i64)> {
    let (hold, amount) = draw(tx, hold_id, amount, now).await?;
    let plan = planned(ledger::refund(kind, &hold.payer_id, &hold.currency, amount))?;
    let id = post(tx, plan, Some(hold_id), why, now).await?;
    let payload = json!({ "hold_id": hold_id, "payer_id": hold.payer_id, "amount": amount,
        "currency": hold.currency, "kind": kind.as_str(), "remaining": hold.remaining, "ledger_tx_id": id,
        "reference": reference_json(Some(&hold.reference)) });
    event(tx, EventType::PaymentRefunded, why, vec![hold.payer_id.clone()], payload, now).await?;
    Ok((hold, amount))
}

/// What is left of a hold, locked against concurrent settlements; an error when there is
/// no such hold (a task's hold always exists).
pub async fn remaining(tx: &mut dyn Tx, hold_id: &HoldId) -> Result<i64> {
    tx.hold_remaining_for_update(hold_id).await?.ok_or_else(|| Error::internal(format!("no hold {hold_id}")))
}

/// Draws `amount` (or everything left) from a hold; the hold as it is after the draw.
async fn draw(tx: &mut dyn Tx, hold_id: &HoldId, amount: Option<i64>, now: Timestamp) -> Result<(Hold, i64)> {
    let amount = match amount {
        Some(a) => a,
        // "Everything left": read it under the same conditional draw, so a concurrent
        // settlement that empties the hold first makes this one fail, not pay zero.
        None => remaining(tx, hold_id).await?,
    };
    if amount <= 0 {
        return Err(Refusal::AlreadySettled { remaining: 0 }.into());
    }
    match tx.draw_hold(hold_id, amount, now).await? {
        Some(hold) => Ok((hold, amount)),
        None => Err(Refusal::AlreadySettled { remaining: remaining(tx, hold_id).await? }.into()),
    }
}
