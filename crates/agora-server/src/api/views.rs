//! Domain values as the API shows them.

use agora_client::types as t;
use agora_core::{
    Timestamp,
    account::{Account, PortfolioKind},
};
use agora_store::ApiKeyRecord;

/// Who is looking at an account: its owner and admins see the private fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Public,
    Private,
}

pub fn account(a: &Account, viewer: Viewer, now: Timestamp) -> t::Account {
    let private = viewer == Viewer::Private;
    let p = &a.profile;
    t::Account {
        id: a.id.to_string(),
        account_type: match a.kind {
            agora_core::account::AccountKind::Human => t::AccountType::Human,
            agora_core::account::AccountKind::Agent => t::AccountType::Agent,
        },
        name: a.name.clone(),
        description: p.description.clone(),
        skills: p.skills.clone(),
        model_name: p.model_name.clone(),
        pricing: t::Pricing {
            currency: p.pricing.currency.clone(),
            chat_first_message: p.pricing.chat_first_message,
            chat_subsequent_message: p.pricing.chat_subsequent_message,
            per_task: p.pricing.per_task,
            hourly: p.pricing.hourly,
        },
        max_concurrent_tasks: p.max_concurrent_tasks,
        portfolio: p
            .portfolio
            .iter()
            .map(|i| t::PortfolioItem {
                title: i.title.clone(),
                url: i.url.clone(),
                kind: match i.kind {
                    PortfolioKind::Image => "image",
                    PortfolioKind::Link => "link",
                    PortfolioKind::Video => "video",
                }
                .to_owned(),
            })
            .collect(),
        owner_id: a.owner_id.as_ref().map(ToString::to_string),
        counters: t::Counters {
            completed: a.counters.completed,
            failed: a.counters.failed,
            no_response: a.counters.no_response,
            success_rate: a.counters.success_rate(),
        },
        online: a.is_online(now),
        last_seen_at: a.last_seen_at.map(Timestamp::to_rfc3339),
        created_at: a.created_at.to_rfc3339(),
        email: a.email.as_ref().filter(|_| private).map(|e| e.as_str().to_owned()),
        role: private.then(|| a.role.as_str().to_owned()),
        wallet_address: p.wallet_address.clone().filter(|_| private),
        banned_at: a.banned_at.filter(|_| private).map(Timestamp::to_rfc3339),
    }
}

pub fn api_key(k: &ApiKeyRecord) -> t::ApiKey {
    t::ApiKey {
        id: k.id.to_string(),
        name: k.name.clone(),
        prefix: k.display_prefix.clone(),
        created_at: k.created_at.to_rfc3339(),
        last_used_at: k.last_used_at.map(Timestamp::to_rfc3339),
        revoked_at: k.revoked_at.map(Timestamp::to_rfc3339),
    }
}

/// The API's profile fields as the domain's profile input.
pub fn profile_input(f: t::ProfileFields) -> agora_core::account::ProfileInput {
    use agora_core::account::{PortfolioInput, Pricing, ProfileInput};
    ProfileInput {
        description: f.description,
        skills: f.skills,
        model_name: f.model_name,
        pricing: f.pricing.map(|p| Pricing {
            currency: p.currency,
            chat_first_message: p.chat_first_message,
            chat_subsequent_message: p.chat_subsequent_message,
            per_task: p.per_task,
            hourly: p.hourly,
        }),
        max_concurrent_tasks: f.max_concurrent_tasks,
        wallet_address: f.wallet_address,
        portfolio: f.portfolio.map(|v| {
            v.into_iter().map(|i| PortfolioInput { title: i.title, url: i.url, kind: i.kind }).collect()
        }),
    }
}

pub fn balance(b: &agora_store::Balance, currencies: &agora_core::money::Currencies) -> t::Balance {
    t::Balance {
        currency: b.currency.to_string(),
        exponent: currencies.exponent(&b.currency).unwrap_or(0),
        available: b.available,
        held: b.held,
    }
}

pub fn statement_line(l: &agora_store::StatementLine) -> t::StatementLine {
    t::StatementLine {
        transaction_id: l.tx_id.to_string(),
        kind: l.kind.as_str().to_owned(),
        currency: l.currency.to_string(),
        bucket: l.bucket.as_str().to_owned(),
        amount: l.amount,
        hold_id: l.hold_id.as_ref().map(ToString::to_string),
        reference: l
            .reference
            .as_ref()
            .map(|r| t::LedgerReference { kind: r.kind.clone(), id: r.id.clone() }),
        reason: l.reason.clone(),
        actor_id: l.actor_id.as_ref().map(ToString::to_string),
        created_at: l.created_at.to_rfc3339(),
    }
}

pub fn quota(q: &agora_store::QuotaState) -> t::Quota {
    t::Quota {
        period: q.period.clone(),
        monthly_free: q.monthly_free,
        free_used: q.free_used,
        bonus: q.bonus,
        purchased: q.purchased,
        remaining: q.remaining(),
    }
}
