//! Money on a real database: the ledger operations with their events, holds racing for a
//! balance, settlements racing for a hold, and a model-based property test of random
//! operation sequences. Every check runs on both backends.

use std::{collections::BTreeMap, sync::Arc};

use agora_app::{
    Error, Refusal,
    money::{self, Why},
    testing::{Backend, TestDb},
};
use agora_core::{
    AccountId, HoldId, Timestamp,
    account::AccountKind,
    ledger::TxKind,
    money::{Currency, fee_split},
};
use agora_store::{NewAccount, Reference, Store};
use proptest::{prelude::*, test_runner::TestRunner};

fn cur(code: &str) -> Currency {
    Currency::parse(code).expect("currency")
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn task_ref(id: &str) -> Why {
    Why { reference: Some(Reference::new("task", id)), ..Why::default() }
}

async fn person(store: &dyn Store, name: &str) -> AccountId {
    let a = NewAccount {
        id: AccountId::generate(),
        kind: AccountKind::Human,
        role: agora_core::account::Role::User,
        name: name.to_owned(),
        email: None,
        password_hash: None,
        owner_id: None,
        profile: agora_core::account::Profile::default(),
        webhook_secret: "whsec_dGVzdA==".to_owned(),
        created_at: now(),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_account(&a).await.expect("insert account");
    tx.commit().await.expect("commit");
    a.id
}

async fn top_up(store: &dyn Store, owner: &AccountId, c: &Currency, amount: i64) {
    let mut tx = store.begin().await.expect("begin");
    money::top_up(tx.as_mut(), owner, c, amount, &Why::default(), now()).await.expect("top up");
    tx.commit().await.expect("commit");
}

async fn available(store: &dyn Store, owner: &AccountId, c: &Currency) -> (i64, i64) {
    let b = store.read().balances(owner).await.expect("balances");
    b.iter().find(|b| &b.currency == c).map_or((0, 0), |b| (b.available, b.held))
}

async fn assert_healthy(store: &dyn Store) {
    let audit = store.read().ledger_audit().await.expect("audit");
    assert!(audit.is_healthy(), "ledger audit: {audit:?}");
}

async fn move_money_as_planned(store: &dyn Store) {
    let usd = cur("USD");
    let (payer, worker) = (person(store, "Payer").await, person(store, "Worker").await);
    let revenue_before = revenue(store, &usd).await;
    top_up(store, &payer, &usd, 10_000).await;

    // Hold 5400, release it with a 12 % fee: 648 to the platform, 4752 to the worker.
    let mut tx = store.begin().await.expect("begin");
    let hold = money::hold(tx.as_mut(), &payer, &usd, 5400, &task_ref("tsk_a"), now()).await.expect("hold");
    tx.commit().await.expect("commit");
    assert_eq!(available(store, &payer, &usd).await, (4600, 5400));
    let mut tx = store.begin().await.expect("begin");
    let s = money::release(tx.as_mut(), &hold.id, &worker, None, 1200, &task_ref("tsk_a"), now())
        .await
        .expect("release");
    tx.commit().await.expect("commit");
    assert_eq!((s.amount, s.split.fee, s.split.net), (5400, 648, 4752));
    assert_eq!(available(store, &worker, &usd).await, (4752, 0));
    assert_eq!(available(store, &payer, &usd).await, (4600, 0));
    assert_eq!(revenue(store, &usd).await - revenue_before, 648);

    // A settled hold cannot be settled again, by any path.
    let mut tx = store.begin().await.expect("begin");
    let again = money::refund(tx.as_mut(), &hold.id, None, TxKind::Refund, &Why::default(), now()).await;
    assert!(matches!(again, Err(Error::Refused(Refusal::AlreadySettled { remaining: 0 }))), "{again:?}");
    drop(tx);

    // Staged: 1000 held, 300 released, 100 penalty back to the payer, the rest refunded.
    let mut tx = store.begin().await.expect("begin");
    let hold = money::hold(tx.as_mut(), &payer, &usd, 1000, &task_ref("tsk_b"), now()).await.expect("hold");
    let stage = money::release(tx.as_mut(), &hold.id, &worker, Some(300), 1000, &Why::default(), now())
        .await
        .expect("stage");
    assert_eq!((stage.split.fee, stage.split.net, stage.hold.remaining), (30, 270, 700));
    let (h, p) = money::refund(tx.as_mut(), &hold.id, Some(100), TxKind::Penalty, &Why::default(), now())
        .await
        .expect("penalty");
    assert_eq!((p, h.remaining), (100, 600));
    let (h, r) = money::refund(tx.as_mut(), &hold.id, None, TxKind::Refund, &Why::default(), now())
        .await
        .expect("refund");
    assert_eq!((r, h.remaining), (600, 0));
    tx.commit().await.expect("commit");
    assert_eq!(available(store, &payer, &usd).await, (4600 - 1000 + 100 + 600, 0));
    assert_eq!(available(store, &worker, &usd).await, (4752 + 270, 0));

    // Short of money: 402-worthy refusal, and nothing of the failed transaction remains.
    let mut tx = store.begin().await.expect("begin");
    let short = money::hold(tx.as_mut(), &payer, &usd, 1_000_000, &task_ref("tsk_c"), now()).await;
    assert!(matches!(short, Err(Error::Refused(Refusal::InsufficientFunds))), "{short:?}");
    drop(tx);
    let mut tx = store.begin().await.expect("begin");
    let overdraw = money::adjust(tx.as_mut(), &payer, &usd, -1_000_000, &Why::default(), now()).await;
    assert!(matches!(overdraw, Err(Error::Refused(Refusal::InsufficientFunds))), "{overdraw:?}");
    drop(tx);
    let mut tx = store.begin().await.expect("begin");
    money::adjust(
        tx.as_mut(),
        &payer,
        &usd,
        -300,
        &Why { reason: Some("correction".into()), ..Why::default() },
        now(),
    )
    .await
    .expect("adjust");
    tx.commit().await.expect("commit");
    assert_eq!(available(store, &payer, &usd).await, (4000, 0));

    // The statement: newest first, every wallet movement with its why.
    let st = store.read().statement(&payer, 0, 100).await.expect("statement");
    assert_eq!(st.items.first().map(|l| (l.kind, l.amount)), Some((TxKind::Adjust, -300)));
    assert_eq!(st.items.first().and_then(|l| l.reason.clone()).as_deref(), Some("correction"));
    assert_eq!(st.items.last().map(|l| (l.kind, l.amount)), Some((TxKind::TopUp, 10_000)));
    let held_line = st.items.iter().find(|l| l.kind == TxKind::Hold && l.amount == 5400).expect("hold line");
    assert_eq!(held_line.reference, Some(Reference::new("task", "tsk_a")));
    let page = store.read().statement(&payer, 2, 3).await.expect("page");
    assert_eq!(page.total, st.total);
    assert_eq!(page.items, st.items[2..5]);
    assert_healthy(store).await;
}

async fn revenue(store: &dyn Store, c: &Currency) -> i64 {
    store.read().revenue().await.expect("revenue").into_iter().find(|(k, _)| k == c).map_or(0, |(_, v)| v)
}

/// The race of the ledger issue: 200 concurrent holds of 7 against 1000.
async fn holds_never_overdraw(store: Arc<dyn Store>) {
    let pts = cur("PTS");
    let payer = person(store.as_ref(), "Racer").await;
    top_up(store.as_ref(), &payer, &pts, 1000).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (store, payer, pts) = (store.clone(), payer.clone(), pts.clone());
        set.spawn(async move {
            let mut tx = store.begin().await.expect("begin");
            match money::hold(tx.as_mut(), &payer, &pts, 7, &task_ref(&format!("race-{i}")), now()).await {
                Ok(_) => {
                    tx.commit().await.expect("commit");
                    true
                }
                Err(Error::Refused(Refusal::InsufficientFunds)) => false,
                Err(e) => panic!("unexpected: {e:?}"),
            }
        });
    }
    let mut won = 0;
    while let Some(r) = set.join_next().await {
        won += usize::from(r.expect("task"));
    }
    assert_eq!(won, 142, "exactly floor(1000 / 7) holds fit");
    assert_eq!(available(store.as_ref(), &payer, &pts).await, (6, 994));
    assert_healthy(store.as_ref()).await;
}

/// Two settlements racing for one hold (accept against expiry): exactly one pays.
async fn settlements_pay_once(store: Arc<dyn Store>) {
    let pts = cur("PTS");
    let (payer, worker) = (person(store.as_ref(), "P").await, person(store.as_ref(), "W").await);
    top_up(store.as_ref(), &payer, &pts, 100).await;
    let mut tx = store.begin().await.expect("begin");
    let hold = money::hold(tx.as_mut(), &payer, &pts, 100, &task_ref("tsk_r"), now()).await.expect("hold");
    tx.commit().await.expect("commit");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (store, hold, worker) = (store.clone(), hold.id.clone(), worker.clone());
        set.spawn(async move {
            let mut tx = store.begin().await.expect("begin");
            let r = if i % 2 == 0 {
                money::release(tx.as_mut(), &hold, &worker, None, 1000, &Why::default(), now())
                    .await
                    .map(|_| ())
            } else {
                money::refund(tx.as_mut(), &hold, None, TxKind::Refund, &Why::default(), now())
                    .await
                    .map(|_| ())
            };
            match r {
                Ok(()) => {
                    tx.commit().await.expect("commit");
                    1
                }
                Err(Error::Refused(Refusal::AlreadySettled { .. })) => 0,
                Err(e) => panic!("unexpected: {e:?}"),
            }
        });
    }
    let mut paid = 0;
    while let Some(r) = set.join_next().await {
        paid += r.expect("task");
    }
    assert_eq!(paid, 1);
    let (p, w) =
        (available(store.as_ref(), &payer, &pts).await, available(store.as_ref(), &worker, &pts).await);
    assert!(p == (100, 0) && w == (0, 0) || p == (0, 0) && w == (90, 0), "payer {p:?} worker {w:?}");
    assert_healthy(store.as_ref()).await;
}

async fn events_with_the_change(store: &dyn Store) {
    let pts = cur("PTS");
    let payer = person(store, "Evented").await;
    let before =
        store.read().events_after(0, u64::MAX >> 1).await.expect("events").last().map_or(0, |e| e.seq);
    top_up(store, &payer, &pts, 50).await;
    let mut tx = store.begin().await.expect("begin");
    money::hold(tx.as_mut(), &payer, &pts, 20, &task_ref("tsk_e"), now()).await.expect("hold");
    drop(tx); // rolled back: its event must not exist either
    let mut tx = store.begin().await.expect("begin");
    money::hold(tx.as_mut(), &payer, &pts, 30, &task_ref("tsk_e"), now()).await.expect("hold");
    tx.commit().await.expect("commit");
    let events = store.read().events_after(before, 100).await.expect("events");
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["payment.topped_up", "payment.held"]);
    assert_eq!(events[1].payload["amount"], 30);
    assert_eq!(events[1].task_id.as_deref(), Some("tsk_e"));
}

// ---- The property test -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    TopUp { who: usize, cur: usize, amount: i64 },
    Hold { who: usize, cur: usize, amount: i64 },
    Release { hold: usize, worker: usize, bps: u32 },
    ReleaseStage { hold: usize, worker: usize, amount: i64, bps: u32 },
    Refund { hold: usize },
    Penalty { hold: usize, amount: i64 },
    Adjust { who: usize, cur: usize, delta: i64 },
}

const PEOPLE: usize = 3;
const CURRENCIES: [&str; 2] = ["PTS", "USD"];

fn op() -> impl Strategy<Value = Op> {
    let who = 0..PEOPLE;
    let c = 0..CURRENCIES.len();
    let hold = 0usize..16;
    prop_oneof![
        (who.clone(), c.clone(), 1i64..1000).prop_map(|(who, cur, amount)| Op::TopUp { who, cur, amount }),
        (who.clone(), c.clone(), 1i64..600).prop_map(|(who, cur, amount)| Op::Hold { who, cur, amount }),
        (hold.clone(), who.clone(), 0u32..=2000).prop_map(|(hold, worker, bps)| Op::Release {
            hold,
            worker,
            bps
        }),
        (hold.clone(), who.clone(), 1i64..300, 0u32..=2000)
            .prop_map(|(hold, worker, amount, bps)| Op::ReleaseStage { hold, worker, amount, bps }),
        hold.clone().prop_map(|hold| Op::Refund { hold }),
        (hold, 1i64..200).prop_map(|(hold, amount)| Op::Penalty { hold, amount }),
        (who, c, -400i64..400)
            .prop_filter("non-zero", |(_, _, d)| *d != 0)
            .prop_map(|(who, cur, delta)| Op::Adjust { who, cur, delta }),
    ]
}

/// What the ledger should hold, kept by plain arithmetic beside the store.
#[derive(Debug, Default)]
struct Model {
    wallets: BTreeMap<(usize, usize), (i64, i64)>,
    holds: Vec<(HoldId, usize, usize, i64)>,
    revenue: BTreeMap<usize, i64>,
    entered: BTreeMap<usize, i64>,
}

/// Runs `cases` random sequences of `ops_per_case` operations on fresh accounts, checking
/// after every step that the store agrees with the model (every wallet, revenue, what
/// succeeds and what is refused), and with a full ledger audit every `audit_every` steps
/// and at the end of each sequence.
async fn property_random_operation_sequences(
    store: Arc<dyn Store>,
    cases: u32,
    ops_per_case: usize,
    audit_every: usize,
) {
    let mut runner =
        TestRunner::new(ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() });
    let strategy = proptest::collection::vec(op(), ops_per_case);
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&strategy, |ops| {
        let store = store.clone();
        // The runner is synchronous; each case runs to completion on the test's runtime.
        tokio::task::block_in_place(|| handle.block_on(run_sequence(store, ops, audit_every)));
        Ok(())
    });
    if let Err(e) = result {
        panic!("ledger property failed: {e}");
    }
}

async fn run_sequence(store: Arc<dyn Store>, ops: Vec<Op>, audit_every: usize) {
    let store = store.as_ref();
    let mut people = Vec::new();
    for i in 0..PEOPLE {
        people.push(person(store, &format!("Prop {i}")).await);
    }
    let currencies: Vec<Currency> = CURRENCIES.iter().map(|c| cur(c)).collect();
    let mut revenue_base = BTreeMap::new();
    for (i, c) in currencies.iter().enumerate() {
        revenue_base.insert(i, revenue(store, c).await);
    }
    let mut m = Model::default();
    for (step, op) in ops.iter().enumerate() {
        apply(store, &people, &currencies, &mut m, op).await;
        // After every step: each wallet as the model says, none negative, held = open holds.
        for (p, who) in people.iter().enumerate() {
            for (c, currency) in currencies.iter().enumerate() {
                let want = m.wallets.get(&(p, c)).copied().unwrap_or((0, 0));
                assert_eq!(
                    available(store, who, currency).await,
                    want,
                    "wallet {p}/{c} after step {step}: {op:?}"
                );
                assert!(want.0 >= 0 && want.1 >= 0);
                let open: i64 = m.holds.iter().filter(|h| h.1 == p && h.2 == c).map(|h| h.3).sum();
                assert_eq!(want.1, open, "held equals the open holds");
            }
        }
        for (c, currency) in currencies.iter().enumerate() {
            let got = revenue(store, currency).await - revenue_base[&c];
            assert_eq!(got, m.revenue.get(&c).copied().unwrap_or(0), "revenue after step {step}");
            // Money is conserved: what is in wallets and revenue is what entered.
            let inside: i64 =
                m.wallets.iter().filter(|((_, k), _)| *k == c).map(|(_, (a, h))| a + h).sum::<i64>()
                    + m.revenue.get(&c).copied().unwrap_or(0);
            assert_eq!(inside, m.entered.get(&c).copied().unwrap_or(0));
        }
        if audit_every > 0 && (step + 1) % audit_every == 0 {
            assert_healthy(store).await;
        }
    }
    assert_healthy(store).await;
}

async fn apply(store: &dyn Store, people: &[AccountId], currencies: &[Currency], m: &mut Model, op: &Op) {
    let mut tx = store.begin().await.expect("begin");
    let t = now();
    let why = Why::default();
    let ok = match *op {
        Op::TopUp { who, cur, amount } => {
            money::top_up(tx.as_mut(), &people[who], &currencies[cur], amount, &why, t)
                .await
                .expect("top up");
            m.wallets.entry((who, cur)).or_default().0 += amount;
            *m.entered.entry(cur).or_default() += amount;
            true
        }
        Op::Hold { who, cur, amount } => {
            let expect_ok = m.wallets.get(&(who, cur)).map_or(0, |w| w.0) >= amount;
            let r =
                money::hold(tx.as_mut(), &people[who], &currencies[cur], amount, &task_ref("tsk_prop"), t)
                    .await;
            match r {
                Ok(h) => {
                    assert!(expect_ok, "hold of {amount} succeeded past the balance");
                    let w = m.wallets.entry((who, cur)).or_default();
                    w.0 -= amount;
                    w.1 += amount;
                    m.holds.push((h.id, who, cur, amount));
                    true
                }
                Err(Error::Refused(Refusal::InsufficientFunds)) => {
                    assert!(!expect_ok, "hold refused although the balance covered it");
                    false
                }
                Err(e) => panic!("hold: {e:?}"),
            }
        }
        Op::Release { hold, worker, bps } => {
            settle(tx.as_mut(), people, m, hold, Some((worker, bps)), None, t).await
        }
        Op::ReleaseStage { hold, worker, amount, bps } => {
            settle(tx.as_mut(), people, m, hold, Some((worker, bps)), Some(amount), t).await
        }
        Op::Refund { hold } => settle(tx.as_mut(), people, m, hold, None, None, t).await,
        Op::Penalty { hold, amount } => settle(tx.as_mut(), people, m, hold, None, Some(amount), t).await,
        Op::Adjust { who, cur, delta } => {
            let expect_ok = m.wallets.get(&(who, cur)).map_or(0, |w| w.0) + delta >= 0;
            match money::adjust(tx.as_mut(), &people[who], &currencies[cur], delta, &why, t).await {
                Ok(_) => {
                    assert!(expect_ok);
                    m.wallets.entry((who, cur)).or_default().0 += delta;
                    *m.entered.entry(cur).or_default() += delta;
                    true
                }
                Err(Error::Refused(Refusal::InsufficientFunds)) => {
                    assert!(!expect_ok);
                    false
                }
                Err(e) => panic!("adjust: {e:?}"),
            }
        }
    };
    if ok {
        tx.commit().await.expect("commit");
    }
}

/// A release (to `pay = Some((worker, bps))`) or a refund/penalty (`pay = None`) of
/// `amount` (or everything left) from the model's `index`th hold, if there is one.
async fn settle(
    tx: &mut dyn agora_store::Tx,
    people: &[AccountId],
    m: &mut Model,
    index: usize,
    pay: Option<(usize, u32)>,
    amount: Option<i64>,
    t: Timestamp,
) -> bool {
    let Some((id, payer, c, remaining)) = m.holds.get(index).cloned() else { return false };
    let take = amount.unwrap_or(remaining);
    let expect_ok = take > 0 && take <= remaining;
    let why = Why::default();
    let result = match pay {
        Some((worker, bps)) => money::release(tx, &id, &people[worker], amount, bps, &why, t)
            .await
            .map(|s| (s.amount, Some(s.split))),
        None => {
            let kind = if amount.is_some() { TxKind::Penalty } else { TxKind::Refund };
            money::refund(tx, &id, amount, kind, &why, t).await.map(|(_, a)| (a, None))
        }
    };
    match result {
        Ok((taken, split)) => {
            assert!(expect_ok, "settled {take} of a hold with {remaining} left");
            assert_eq!(taken, take);
            m.holds[index].3 -= take;
            m.wallets.entry((payer, c)).or_default().1 -= take;
            match (pay, split) {
                (Some((worker, bps)), Some(split)) => {
                    assert_eq!(Ok(split), fee_split(take, bps));
                    m.wallets.entry((worker, c)).or_default().0 += split.net;
                    *m.revenue.entry(c).or_default() += split.fee;
                }
                _ => m.wallets.entry((payer, c)).or_default().0 += take,
            }
            true
        }
        Err(Error::Refused(Refusal::AlreadySettled { remaining: r })) => {
            assert!(!expect_ok, "refused a settlement of {take} with {remaining} left");
            assert_eq!(r, remaining);
            false
        }
        Err(e) => panic!("settle: {e:?}"),
    }
}

pub async fn operations_move_money_as_planned(backend: Backend) {
    let db = TestDb::create(backend).await;
    move_money_as_planned(db.store().as_ref()).await;
}

/// The race of the ledger issue: 200 concurrent holds of 7 against 1000.
pub async fn concurrent_holds_never_overdraw(backend: Backend) {
    let db = TestDb::create(backend).await;
    holds_never_overdraw(db.store()).await;
}

/// Two settlements racing for one hold (accept against expiry): exactly one pays.
pub async fn racing_settlements_pay_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    settlements_pay_once(db.store()).await;
}

pub async fn ledger_events_are_written_with_the_change(backend: Backend) {
    let db = TestDb::create(backend).await;
    events_with_the_change(db.store().as_ref()).await;
}

/// The reduced property run: 960 random operations (the long one is ignored, below).
pub async fn ledger_property_reduced(backend: Backend) {
    let db = TestDb::create(backend).await;
    property_random_operation_sequences(db.store(), 24, 40, 1).await;
}

/// The long property run: 10^5 random operations per backend. Every step is checked
/// against the model; the full-ledger audit, whose cost grows with everything written so
/// far, runs at the end of each 100-operation sequence.
pub async fn ledger_property_long(backend: Backend) {
    let db = TestDb::create(backend).await;
    property_random_operation_sequences(db.store(), 1000, 100, 0).await;
}
