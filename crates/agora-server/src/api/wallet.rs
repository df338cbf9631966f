//! The caller's money: balances, statement and brief quota; and the admin's ledger tools
//! (top-up, adjustment, quota grants, revenue, audit). Every movement goes through
//! `agora_store::money`, so these handlers translate and authorise, nothing more.

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{AccountId, Invalid, Timestamp, money::Currency};
use agora_store::{QuotaBucket, money::Why};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, views};
use crate::{
    AppState,
    auth::{Admin, Caller},
    error::{ApiError, Result},
    extract::{ApiJson, ApiQuery, PageParams, ok, page},
    idempotency::Idempotency,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(wallet))
        .routes(routes!(transactions))
        .routes(routes!(quota))
        .routes(routes!(top_up))
        .routes(routes!(adjust))
        .routes(routes!(grant_quota))
        .routes(routes!(revenue))
        .routes(routes!(ledger_audit))
}

/// The caller's balances: available and held (in escrow), per currency, in minor units.
#[utoipa::path(get, path = "/wallet", tag = "money",
    responses((status = 200, description = "Balances per currency", body = Envelope<t::Wallet>)))]
async fn wallet(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    ok(&wallet_of(&state, &caller.account.id).await?)
}

async fn wallet_of(state: &AppState, id: &AccountId) -> Result<t::Wallet> {
    let balances = state.store.balances(id).await?;
    Ok(t::Wallet {
        account_id: id.to_string(),
        balances: balances.iter().map(|b| views::balance(b, &state.currencies)).collect(),
    })
}

/// The caller's statement: every movement on its wallets, newest first.
#[utoipa::path(get, path = "/wallet/transactions", tag = "money", params(t::PageQuery),
    responses(
        (status = 200, description = "A page of statement lines", body = Envelope<Vec<t::StatementLine>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn transactions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<t::PageQuery>,
) -> Result<Response> {
    let params = PageParams::parse(q.page, q.limit)?;
    let found = state.store.statement(&caller.account.id, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(views::statement_line).collect();
    page(&items, params, found.total)
}

/// The caller's AI-team brief quota this month.
#[utoipa::path(get, path = "/quota", tag = "money",
    responses((status = 200, description = "Units used and left", body = Envelope<t::Quota>)))]
async fn quota(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let q = state
        .store
        .quota(&caller.account.id, &Timestamp::now().month(), i64::from(state.config.quota_monthly_free))
        .await?;
    ok(&views::quota(&q))
}

/// The target account of an admin operation: it must exist.
async fn target(state: &AppState, raw: &str) -> Result<AccountId> {
    let id = path_id(raw, AccountId::parse, "account")?;
    state.store.account(&id).await?.ok_or_else(|| ApiError::not_found("account"))?;
    Ok(id)
}

fn currency(state: &AppState, code: &str, inv: &mut Invalid) -> Option<Currency> {
    inv.collect("currency", state.currencies.parse(code))
}

fn reason(text: &str, inv: &mut Invalid) -> Option<String> {
    inv.collect("reason", agora_core::validation::text(text, 1, 500))
}

/// Credit an account with money from outside the platform (admin). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/admin/accounts/{id}/top-up", tag = "admin",
    params(("id" = String, Path, description = "Account id (`acct_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::TopUpRequest,
    responses(
        (status = 200, description = "The transaction and the new balance", body = Envelope<t::LedgerReceipt>),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`IDEMPOTENCY_KEY_REUSED`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`: amount, currency", body = ErrorEnvelope),
    ))]
async fn top_up(
    State(state): State<AppState>,
    Admin(admin): Admin,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::TopUpRequest>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let cur = currency(&state, &req.currency, &mut inv);
    if req.amount <= 0 {
        inv.push("amount", "must be a positive whole number of minor units");
    }
    let why_text = req.reason.as_deref().and_then(|r| reason(r, &mut inv));
    let Some(cur) = cur.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let id = target(&state, &id).await?;
    let why = Why { actor_id: Some(admin.account.id.clone()), reference: None, reason: why_text };
    let mut tx = state.store.begin().await?;
    let tx_id =
        agora_store::money::top_up(tx.as_mut(), &id, &cur, req.amount, &why, Timestamp::now()).await?;
    let receipt = receipt(&state, tx.as_mut(), &id, &cur, tx_id.to_string(), req.amount).await?;
    idem.commit(&state, tx, StatusCode::OK, &receipt).await
}

/// Correct an account's available balance up or down, with a reason (admin). A debit
/// below zero is 402 `INSUFFICIENT_FUNDS`.
#[utoipa::path(post, path = "/admin/accounts/{id}/adjust", tag = "admin",
    params(("id" = String, Path, description = "Account id (`acct_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    request_body = t::AdjustRequest,
    responses(
        (status = 200, description = "The transaction and the new balance", body = Envelope<t::LedgerReceipt>),
        (status = 402, description = "`INSUFFICIENT_FUNDS`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn adjust(
    State(state): State<AppState>,
    Admin(admin): Admin,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::AdjustRequest>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let cur = currency(&state, &req.currency, &mut inv);
    if req.amount == 0 || req.amount == i64::MIN {
        inv.push("amount", "must be a non-zero whole number of minor units");
    }
    let why_text = reason(&req.reason, &mut inv);
    let Some(cur) = cur.filter(|_| inv.0.is_empty()) else { return Err(inv.into()) };
    let id = target(&state, &id).await?;
    let why = Why { actor_id: Some(admin.account.id.clone()), reference: None, reason: why_text };
    let mut tx = state.store.begin().await?;
    let tx_id =
        agora_store::money::adjust(tx.as_mut(), &id, &cur, req.amount, &why, Timestamp::now()).await?;
    let receipt = receipt(&state, tx.as_mut(), &id, &cur, tx_id.to_string(), req.amount).await?;
    idem.commit(&state, tx, StatusCode::OK, &receipt).await
}

/// The receipt of a top-up or adjustment, with the balance as this transaction leaves it.
async fn receipt(
    state: &AppState,
    tx: &mut dyn agora_store::Tx,
    id: &AccountId,
    cur: &Currency,
    transaction_id: String,
    amount: i64,
) -> Result<t::LedgerReceipt> {
    let b = tx.balance(id, cur).await?;
    Ok(t::LedgerReceipt {
        transaction_id,
        account_id: id.to_string(),
        amount,
        balance: views::balance(&b, &state.currencies),
    })
}

/// Grant AI-team brief units (admin): `bonus` (a gift) or `purchased` (a pack bought).
#[utoipa::path(post, path = "/admin/accounts/{id}/quota", tag = "admin",
    params(("id" = String, Path, description = "Account id (`acct_…`)")),
    request_body = t::GrantQuotaRequest,
    responses(
        (status = 200, description = "The account's quota afterwards", body = Envelope<t::Quota>),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn grant_quota(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    idem: Idempotency,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<t::GrantQuotaRequest>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let bucket = match req.kind.as_str() {
        "bonus" => Some(QuotaBucket::Bonus),
        "purchased" => Some(QuotaBucket::Purchased),
        _ => {
            inv.push("kind", "must be bonus or purchased");
            None
        }
    };
    if !(1..=1_000_000).contains(&req.units) {
        inv.push("units", "must be 1-1000000");
    }
    let why_text = reason(&req.reason, &mut inv);
    let (Some(bucket), Some(why_text)) = (bucket, why_text) else { return Err(inv.into()) };
    if !inv.0.is_empty() {
        return Err(inv.into());
    }
    let id = target(&state, &id).await?;
    let now = Timestamp::now();
    let period = now.month();
    let mut tx = state.store.begin().await?;
    tx.quota_grant(&id, bucket, req.units, &period, &why_text, now).await?;
    let granted = tx.quota(&id, &period, i64::from(state.config.quota_monthly_free)).await?;
    idem.commit(&state, tx, StatusCode::OK, &views::quota(&granted)).await
}

/// Platform revenue (fees collected) per currency, read from the ledger (admin).
#[utoipa::path(get, path = "/admin/revenue", tag = "admin",
    responses(
        (status = 200, description = "Totals per currency", body = Envelope<t::Revenue>),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = ErrorEnvelope),
    ))]
async fn revenue(State(state): State<AppState>, Admin(_admin): Admin) -> Result<Response> {
    let totals = state.store.revenue().await?;
    ok(&t::Revenue {
        totals: totals
            .into_iter()
            .map(|(c, amount)| t::CurrencyAmount { currency: c.to_string(), amount })
            .collect(),
    })
}

/// Checks the ledger's invariants against its lines (admin): every transaction balanced,
/// cached balances equal to their lines, nothing negative, held = open holds, money conserved.
#[utoipa::path(get, path = "/admin/ledger/audit", tag = "admin",
    responses(
        (status = 200, description = "What the check found", body = Envelope<t::LedgerAudit>),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = ErrorEnvelope),
    ))]
async fn ledger_audit(State(state): State<AppState>, Admin(_admin): Admin) -> Result<Response> {
    let a = state.store.ledger_audit().await?;
    ok(&t::LedgerAudit {
        healthy: a.is_healthy(),
        unbalanced_transactions: a.unbalanced_transactions,
        drifted_accounts: a.drifted_accounts,
        negative_accounts: a.negative_accounts,
        held_mismatches: a.held_mismatches,
        totals: a
            .totals
            .into_iter()
            .map(|(c, inside, entered)| t::MoneyTotals { currency: c.to_string(), inside, entered })
            .collect(),
    })
}
