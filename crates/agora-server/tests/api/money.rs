//! Wallets, statements, admin top-ups and adjustments, quota, revenue and the ledger audit
//! over HTTP. The ledger's own rules (races, settlement, the property test) are in the
//! storage conformance suite; here: the API, its errors and its authorisation.

use agora_client::types::{AdjustRequest, GrantQuotaRequest, TopUpRequest};
use agora_server::Config;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, error_paths, test_config};

both_backends!(
    a_top_up_credits_the_wallet_and_the_statement,
    top_ups_honour_idempotency_keys,
    only_admins_move_money,
    adjustments_need_a_reason_and_never_overdraw,
    bad_amounts_and_currencies_are_422_with_paths,
    quota_reports_the_monthly_allowance_and_grants,
    revenue_and_audit_read_the_ledger,
);

fn top_up_req(amount: i64, currency: &str) -> TopUpRequest {
    TopUpRequest { amount, currency: currency.into(), reason: Some("welcome credit".into()) }
}

async fn a_top_up_credits_the_wallet_and_the_statement(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (ann, ann_client) = app.human("Ann").await;
    let id = ann.account.id.as_str();
    assert!(ann_client.wallet().await.unwrap().balances.is_empty(), "a new account has no money");

    let receipt = admin.top_up(id, &top_up_req(1250, "USD")).await.unwrap();
    assert!(receipt.transaction_id.starts_with("ltx_"));
    assert_eq!((receipt.balance.available, receipt.balance.held, receipt.balance.exponent), (1250, 0, 2));
    admin.top_up(id, &top_up_req(40, "PTS")).await.unwrap();

    let wallet = ann_client.wallet().await.unwrap();
    let got: Vec<_> = wallet.balances.iter().map(|b| (b.currency.as_str(), b.available, b.held)).collect();
    assert_eq!(got, [("PTS", 40, 0), ("USD", 1250, 0)]);

    let reply = ann_client.send(Method::GET, "/api/v1/wallet/transactions?limit=1", None, &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["pagination"]["total"], 2);
    assert_eq!(reply.json["pagination"]["has_more"], true);
    let newest = &reply.json["data"][0];
    assert_eq!(newest["kind"], "top_up");
    assert_eq!(newest["currency"], "PTS", "newest first");
    assert_eq!(newest["amount"], 40);
    assert_eq!(newest["reason"], "welcome credit");
    assert!(newest["actor_id"].as_str().unwrap().starts_with("acct_"), "who moved it is recorded");
}

async fn top_ups_honour_idempotency_keys(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (ann, ann_client) = app.human("Ann").await;
    let path = format!("/api/v1/admin/accounts/{}/top-up", ann.account.id);
    let body = json!({"amount": 500, "currency": "PTS"});
    let first = admin.send(Method::POST, &path, Some(&body), &[("idempotency-key", "pay-1")]).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
    let again = admin.send(Method::POST, &path, Some(&body), &[("idempotency-key", "pay-1")]).await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json, "the first response, replayed");
    let other = json!({"amount": 900, "currency": "PTS"});
    let reused =
        admin.send(Method::POST, &path, Some(&other), &[("idempotency-key", "pay-1")]).await.unwrap();
    assert_error(&reused, 409, "IDEMPOTENCY_KEY_REUSED");
    let wallet = ann_client.wallet().await.unwrap();
    assert_eq!(wallet.balances[0].available, 500, "credited once");
}

async fn only_admins_move_money(b: Backend) {
    let app = TestApp::new(b).await;
    let (ann, ann_client) = app.human("Ann").await;
    let path = format!("/api/v1/admin/accounts/{}/top-up", ann.account.id);
    let reply = ann_client
        .send(Method::POST, &path, Some(&json!({"amount": 5, "currency": "PTS"})), &[])
        .await
        .unwrap();
    assert_error(&reply, 403, "FORBIDDEN");
    let anon = app.send(None, Method::POST, &path, Some(json!({"amount": 5, "currency": "PTS"}))).await;
    assert_error(&anon, 401, "UNAUTHORIZED");
    for path in ["/api/v1/admin/revenue", "/api/v1/admin/ledger/audit"] {
        let reply = ann_client.send(Method::GET, path, None, &[]).await.unwrap();
        assert_error(&reply, 403, "FORBIDDEN");
    }
    let admin = app.admin().await;
    let missing = admin
        .send(
            Method::POST,
            "/api/v1/admin/accounts/acct_01jzzzzzzzzzzzzzzzzzzzzzzz/top-up",
            Some(&json!({"amount": 5, "currency": "PTS"})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&missing, 404, "NOT_FOUND");
    assert!(ann_client.wallet().await.unwrap().balances.is_empty());
    let anon_wallet = app.send(None, Method::GET, "/api/v1/wallet", None).await;
    assert_error(&anon_wallet, 401, "UNAUTHORIZED");
}

async fn adjustments_need_a_reason_and_never_overdraw(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (ann, ann_client) = app.human("Ann").await;
    let id = ann.account.id.as_str();
    admin.top_up(id, &top_up_req(100, "PTS")).await.unwrap();
    let down = admin
        .adjust(
            id,
            &AdjustRequest { amount: -30, currency: "PTS".into(), reason: "refund of a duplicate".into() },
        )
        .await
        .unwrap();
    assert_eq!(down.balance.available, 70);
    let path = format!("/api/v1/admin/accounts/{id}/adjust");
    let over = admin
        .send(
            Method::POST,
            &path,
            Some(&json!({"amount": -71, "currency": "PTS", "reason": "too much"})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&over, 402, "INSUFFICIENT_FUNDS");
    let no_reason = admin
        .send(Method::POST, &path, Some(&json!({"amount": 5, "currency": "PTS", "reason": "  "})), &[])
        .await
        .unwrap();
    assert_eq!(error_paths(&no_reason), ["reason"]);
    let missing =
        admin.send(Method::POST, &path, Some(&json!({"amount": 5, "currency": "PTS"})), &[]).await.unwrap();
    assert_error(&missing, 422, "VALIDATION_ERROR");
    assert_eq!(
        ann_client.wallet().await.unwrap().balances[0].available,
        70,
        "refused adjustments changed nothing"
    );
    let lines = ann_client.wallet_transactions(1, 10).await.unwrap();
    assert_eq!(lines[0].kind, "adjust");
    assert_eq!(lines[0].reason.as_deref(), Some("refund of a duplicate"));
}

async fn bad_amounts_and_currencies_are_422_with_paths(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (ann, _) = app.human("Ann").await;
    let path = format!("/api/v1/admin/accounts/{}/top-up", ann.account.id);
    let cases = [
        (json!({"amount": 0, "currency": "PTS"}), vec!["amount"]),
        (json!({"amount": -5, "currency": "XYZ"}), vec!["currency", "amount"]),
        (json!({"amount": 5, "currency": "usd"}), vec!["currency"]),
        (json!({"amount": 1.5, "currency": "USD"}), vec!["amount"]),
        (json!({"amount": 5, "currency": "USD", "extra": 1}), vec!["extra"]),
    ];
    for (body, paths) in cases {
        let reply = admin.send(Method::POST, &path, Some(&body), &[]).await.unwrap();
        assert_eq!(error_paths(&reply), paths, "{body}");
    }
    // Configured currencies are accepted with their exponent.
    let cfg = Config { currencies: [("EUR".to_owned(), 2)].into_iter().collect(), ..test_config() };
    let app = TestApp::with_config(b, cfg).await;
    let admin = app.admin().await;
    let (ann, _) = app.human("Ann").await;
    let receipt = admin.top_up(ann.account.id.as_str(), &top_up_req(99, "EUR")).await.unwrap();
    assert_eq!(receipt.balance.exponent, 2);
}

async fn quota_reports_the_monthly_allowance_and_grants(b: Backend) {
    let cfg = Config { quota_monthly_free: 3, ..test_config() };
    let app = TestApp::with_config(b, cfg).await;
    let admin = app.admin().await;
    let (ann, ann_client) = app.human("Ann").await;
    let q = ann_client.quota().await.unwrap();
    assert_eq!((q.monthly_free, q.free_used, q.remaining), (3, 0, 3));
    assert_eq!(q.period.len(), 7, "YYYY-MM");
    let granted = admin
        .grant_quota(
            ann.account.id.as_str(),
            &GrantQuotaRequest { kind: "bonus".into(), units: 2, reason: "launch".into() },
        )
        .await
        .unwrap();
    assert_eq!((granted.bonus, granted.remaining), (2, 5));
    assert_eq!(ann_client.quota().await.unwrap().remaining, 5);
    let bad = admin
        .send(
            Method::POST,
            &format!("/api/v1/admin/accounts/{}/quota", ann.account.id),
            Some(&json!({"kind": "free", "units": 0, "reason": "x"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(error_paths(&bad), ["kind", "units"]);
}

async fn revenue_and_audit_read_the_ledger(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (ann, _) = app.human("Ann").await;
    admin.top_up(ann.account.id.as_str(), &top_up_req(1000, "USD")).await.unwrap();
    let revenue = admin.revenue().await.unwrap();
    assert!(revenue.totals.iter().all(|t| t.amount == 0), "no fee collected yet: {revenue:?}");
    let audit = admin.ledger_audit().await.unwrap();
    assert!(audit.healthy, "{audit:?}");
    let usd = audit.totals.iter().find(|t| t.currency == "USD").unwrap();
    assert_eq!((usd.inside, usd.entered), (1000, 1000));
}
