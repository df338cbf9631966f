//! The caller's money: balances, statement and brief quota; and the admin's ledger tools
//! (top-up, adjustment, quota grants, revenue, audit). Every movement goes through
//! `agora_store::money`, so these handlers translate and authorise, nothing more.

use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::AccountId;
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, views};
use crate::{
    AppState,
    auth::{AdminAuth, Auth},
    error::Result,
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
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
async fn wallet(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    let balances = state.app.wallet(&p).await?;
    let currencies = &state.app.settings().currencies;
    ok(&t::Wallet {
        account_id: p.id().to_string(),
        balances: balances.iter().map(|b| views::balance(b, currencies)).collect(),
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
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::PageQuery>,
) -> Result<Response> {
    let params = PageParams::parse(q.page, q.limit)?;
    let found = state.app.statement(&p, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(views::statement_line).collect();
    page(&items, params, found.total)
}

/// The caller's AI-team brief quota this month.
#[utoipa::path(get, path = "/quota", tag = "money",
    responses((status = 200, description = "Units used and left", body = Envelope<t::Quota>)))]
async fn quota(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    ok(&views::quota(&state.app.quota(&p).await?))
}

fn receipt(state: &AppState, r: &agora_app::wallet::Receipt) -> t::LedgerReceipt {
    t::LedgerReceipt {
        transaction_id: r.transaction_id.to_string(),
        account_id: r.account_id.to_string(),
        amount: r.amount,
        balance: views::balance(&r.balance, &state.app.settings().currencies),
    }
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
    AdminAuth(admin): AdminAuth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::TopUpRequest>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    let done = state.app.top_up(&admin, &id, &req.currency, req.amount, req.reason.as_deref()).await?;
    idem.commit(done, StatusCode::OK, |r| receipt(&state, r)).await
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
    AdminAuth(admin): AdminAuth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::AdjustRequest>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    let done = state.app.adjust(&admin, &id, &req.currency, req.amount, &req.reason).await?;
    idem.commit(done, StatusCode::OK, |r| receipt(&state, r)).await
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
    AdminAuth(admin): AdminAuth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::GrantQuotaRequest>,
) -> Result<Response> {
    let id = path_id(&id, AccountId::parse, "account")?;
    let done = state.app.grant_quota(&admin, &id, &req.kind, req.units, &req.reason).await?;
    idem.commit(done, StatusCode::OK, views::quota).await
}

/// Platform revenue (fees collected) per currency, read from the ledger (admin).
#[utoipa::path(get, path = "/admin/revenue", tag = "admin",
    responses(
        (status = 200, description = "Totals per currency", body = Envelope<t::Revenue>),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = ErrorEnvelope),
    ))]
async fn revenue(State(state): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Response> {
    let totals = state.app.revenue(&admin).await?;
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
async fn ledger_audit(State(state): State<AppState>, AdminAuth(admin): AdminAuth) -> Result<Response> {
    let a = state.app.ledger_audit(&admin).await?;
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
