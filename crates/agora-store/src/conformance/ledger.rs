//! The ledger, escrow holds and quotas: balanced postings, conditional debits and draws
//! under concurrency.

use std::sync::Arc;

use agora_core::{
    AccountId, HoldId, LedgerTxId,
    account::AccountKind,
    ledger::{self, Plan},
    money::Currency,
};

use super::{account, now};
use crate::{Conflict, Hold, NewLedgerTx, Posted, QuotaBucket, Reference, Store, StoreError, Tx};

fn pts() -> Currency {
    Currency::parse("PTS").expect("currency")
}

async fn post(tx: &mut dyn Tx, plan: Plan, hold: Option<&HoldId>) -> Posted {
    tx.post_ledger(&NewLedgerTx {
        id: LedgerTxId::generate(),
        plan,
        actor_id: None,
        hold_id: hold.cloned(),
        reference: None,
        reason: None,
        created_at: now(),
    })
    .await
    .expect("post")
}

async fn fund(store: &dyn Store, owner: &AccountId, amount: i64) {
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        post(tx.as_mut(), ledger::top_up(owner, &pts(), amount).expect("plan"), None).await,
        Posted::Done
    );
    tx.commit().await.expect("commit");
}

async fn healthy(store: &dyn Store) {
    let audit = store.read().ledger_audit().await.expect("audit");
    assert!(audit.is_healthy(), "ledger audit: {audit:?}");
}

/// 200 concurrent debits of 7 against 1000: exactly floor(1000 / 7) apply, and no balance
/// goes below zero (the conditional update, not a read then a write).
pub async fn debits_never_take_a_balance_below_zero(store: Arc<dyn Store>) {
    let payer = account(store.as_ref(), AccountKind::Human, "Racer").await;
    fund(store.as_ref(), &payer, 1000).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (store, payer) = (store.clone(), payer.clone());
        set.spawn(async move {
            let mut tx = store.begin().await.expect("begin");
            let posted = post(tx.as_mut(), ledger::hold(&payer, &pts(), 7).expect("plan"), None).await;
            let ok = posted == Posted::Done;
            assert!(ok || posted == Posted::Overdrawn, "{posted:?}");
            if ok {
                tx.commit().await.expect("commit");
            }
            ok
        });
    }
    let mut won = 0;
    while let Some(r) = set.join_next().await {
        won += usize::from(r.expect("task"));
    }
    assert_eq!(won, 142, "exactly floor(1000 / 7) debits fit");
    let b = store.read().balance(&payer, &pts()).await.expect("balance");
    assert_eq!((b.available, b.held), (6, 994));
    // The refused debit wrote nothing once its transaction was dropped.
    let lines = store.read().statement(&payer, 0, 1000).await.expect("statement");
    assert_eq!(lines.total, 1 + 2 * 142);
}

/// Balances stay within `-i64::MAX ..= i64::MAX`: a credit or a funding debit that would
/// leave the range is refused before any arithmetic overflows (on SQLite an overflowing
/// integer turns into a float), and the audit still reads the ledger.
pub async fn balances_never_leave_the_i64_range(store: Arc<dyn Store>) {
    let rich = account(store.as_ref(), AccountKind::Human, "Rich").await;
    fund(store.as_ref(), &rich, i64::MAX).await;
    let mut tx = store.begin().await.expect("begin");
    let one_more = post(tx.as_mut(), ledger::top_up(&rich, &pts(), 1).expect("plan"), None).await;
    assert_eq!(one_more, Posted::OutOfRange, "the wallet would pass i64::MAX");
    drop(tx);
    // The funding account is at -i64::MAX now: another account's top-up would take it past.
    let other = account(store.as_ref(), AccountKind::Human, "Other").await;
    let mut tx = store.begin().await.expect("begin");
    let funding = post(tx.as_mut(), ledger::top_up(&other, &pts(), 1).expect("plan"), None).await;
    assert_eq!(funding, Posted::OutOfRange, "the funding account would pass -i64::MAX");
    drop(tx);
    let b = store.read().balance(&rich, &pts()).await.expect("balance");
    assert_eq!(b.available, i64::MAX);
    assert_eq!(store.read().balance(&other, &pts()).await.expect("balance").available, 0);
    let audit = store.read().ledger_audit().await.expect("the audit reads a full ledger");
    assert!(audit.is_healthy(), "{audit:?}");
    assert!(
        audit
            .totals
            .iter()
            .any(|(c, inside, entered)| c == &pts() && *inside == i64::MAX && *entered == i64::MAX)
    );
}

/// Twenty draws race for one hold's whole remainder: one gets it, the rest find nothing.
pub async fn a_hold_is_drawn_once(store: Arc<dyn Store>) {
    let payer = account(store.as_ref(), AccountKind::Human, "Drawn").await;
    let hold = Hold {
        id: HoldId::generate(),
        payer_id: payer.clone(),
        currency: pts(),
        amount: 100,
        remaining: 100,
        reference: Reference::new("task", "tsk_drawn"),
        created_at: now(),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_hold(&hold).await.expect("hold");
    tx.commit().await.expect("commit");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, id) = (store.clone(), hold.id.clone());
        set.spawn(async move {
            let mut tx = store.begin().await.expect("begin");
            match tx.draw_hold(&id, 100, now()).await.expect("draw") {
                Some(h) => {
                    assert_eq!(h.remaining, 0);
                    tx.commit().await.expect("commit");
                    1
                }
                None => 0,
            }
        });
    }
    let mut drawn = 0;
    while let Some(r) = set.join_next().await {
        drawn += r.expect("task");
    }
    assert_eq!(drawn, 1);
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(tx.hold_remaining_for_update(&hold.id).await.expect("read"), Some(0));
    assert_eq!(tx.draw_hold(&hold.id, 1, now()).await.expect("draw"), None);
    assert_eq!(tx.hold_remaining_for_update(&HoldId::generate()).await.expect("read"), None);
    drop(tx);
    healthy(store.as_ref()).await;
}

pub async fn quotas_consume_free_then_bonus_then_purchased(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = account(store, AccountKind::Human, "Briefer").await;
    let (jan, feb) = ("2026-01", "2026-02");
    let consume = |period: &'static str, r: String| {
        let a = a.clone();
        async move {
            let mut tx = store.begin().await.expect("begin");
            let got = tx.quota_consume(&a, period, 2, &r, now()).await;
            if matches!(got, Ok(Some(_))) {
                tx.commit().await.expect("commit");
            }
            got
        }
    };
    assert_eq!(store.read().quota(&a, jan, 2).await.expect("quota").remaining(), 2);
    assert_eq!(consume(jan, "b1".into()).await.expect("1"), Some(QuotaBucket::Free));
    assert_eq!(consume(jan, "b2".into()).await.expect("2"), Some(QuotaBucket::Free));
    assert_eq!(consume(jan, "b3".into()).await.expect("3"), None, "none left");

    let mut tx = store.begin().await.expect("begin");
    tx.quota_grant(&a, QuotaBucket::Bonus, 1, jan, "welcome", now()).await.expect("bonus");
    tx.quota_grant(&a, QuotaBucket::Purchased, 5, jan, "pack", now()).await.expect("pack");
    assert!(tx.quota_grant(&a, QuotaBucket::Free, 5, jan, "no", now()).await.is_err());
    tx.commit().await.expect("commit");
    assert_eq!(store.read().quota(&a, jan, 2).await.expect("quota").remaining(), 6);
    // A reference is consumed once (and the refused attempt takes nothing).
    assert!(matches!(consume(jan, "b1".into()).await, Err(StoreError::Conflict(Conflict::Duplicate))));
    assert_eq!(store.read().quota(&a, jan, 2).await.expect("quota").remaining(), 6);
    assert_eq!(consume(jan, "b4".into()).await.expect("4"), Some(QuotaBucket::Bonus));
    assert_eq!(consume(jan, "b5".into()).await.expect("5"), Some(QuotaBucket::Purchased));

    // Refunds go back to their bucket, once.
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.quota_refund(&a, "b4", now()).await.expect("refund"));
    assert!(!tx.quota_refund(&a, "b4", now()).await.expect("second refund"));
    assert!(!tx.quota_refund(&a, "never", now()).await.expect("unknown"));
    assert!(tx.quota_refund(&a, "b1", now()).await.expect("free refund"));
    tx.commit().await.expect("commit");
    let q = store.read().quota(&a, jan, 2).await.expect("quota");
    assert_eq!((q.free_used, q.bonus, q.purchased), (1, 1, 4));

    // A new month: free units again; bonus and purchased carry over.
    let q = store.read().quota(&a, feb, 2).await.expect("quota");
    assert_eq!((q.free_used, q.remaining()), (0, 7));
    assert_eq!(consume(feb, "b6".into()).await.expect("6"), Some(QuotaBucket::Free));
}
