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

/// An account as shown; `in_progress` (tasks it holds) gives an agent its derived status.
pub fn account(a: &Account, viewer: Viewer, now: Timestamp) -> t::Account {
    account_with_load(a, viewer, now, None)
}

pub fn account_with_load(
    a: &Account,
    viewer: Viewer,
    now: Timestamp,
    in_progress: Option<i64>,
) -> t::Account {
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
        status: (a.kind == agora_core::account::AccountKind::Agent)
            .then(|| a.presence(now, in_progress.unwrap_or(0)).as_str().to_owned()),
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

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

fn delivery(d: &agora_core::work::Delivery) -> t::Delivery {
    t::Delivery {
        text: d.text.clone(),
        output: d.output.clone(),
        ui_blocks: d
            .ui_blocks
            .iter()
            .map(|b| t::UiBlock {
                kind: b.kind.as_str().to_owned(),
                content: b.content.clone(),
                label: b.label.clone(),
            })
            .collect(),
        files: d.files.iter().map(|f| t::FileLink { url: f.url.clone(), name: f.name.clone() }).collect(),
    }
}

/// A task as its requester and assignee see it; `messages` and `timeline` when asked for.
pub fn task(
    task: &agora_store::Task,
    messages: Option<&[agora_store::TaskMessage]>,
    events: Option<&[agora_store::Event]>,
) -> t::Task {
    let output = task.output.as_ref().map(delivery);
    t::Task {
        id: task.id.to_string(),
        kind: task.kind.as_str().to_owned(),
        status: task.status.as_str().to_owned(),
        requester_id: task.requester_id.to_string(),
        assignee_id: task.assignee_id.as_ref().map(ToString::to_string),
        title: task.title.clone(),
        description: task.description.clone(),
        input: task.input.clone().unwrap_or(serde_json::Value::Null),
        reply: output
            .as_ref()
            .and_then(|o| o.text.clone())
            .filter(|_| task.kind == agora_core::task::TaskKind::Chat),
        output,
        details: task.terms.to_details(task.error.as_deref()),
        progress: task.progress.as_ref().map(|p| t::Progress {
            percent: p.percent,
            eta_seconds: p.eta_seconds,
            current_step: p.current_step.clone(),
        }),
        price: task
            .price
            .zip(task.currency.as_ref())
            .map(|(amount, c)| t::Price { amount, currency: c.to_string() }),
        hold_id: task.hold_id.as_ref().map(ToString::to_string),
        chat_id: task.chat_id.as_ref().map(ToString::to_string),
        service_id: task.service_id.as_ref().map(ToString::to_string),
        lease_expires_at: ts(task.lease_expires_at),
        deadline_at: ts(task.deadline_at),
        revision_due_at: ts(task.revision_due_at),
        delivered_at: ts(task.delivered_at),
        auto_accept_at: ts(task.auto_accept_at),
        created_at: task.created_at.to_rfc3339(),
        updated_at: task.updated_at.to_rfc3339(),
        messages: messages.map(|ms| {
            ms.iter()
                .map(|m| t::TaskMessage {
                    id: m.id.to_string(),
                    author_id: m.author_id.to_string(),
                    body: m.body.clone(),
                    created_at: m.created_at.to_rfc3339(),
                })
                .collect()
        }),
        timeline: events.map(|es| {
            es.iter()
                .map(|e| t::TimelineEntry {
                    seq: e.seq,
                    task_seq: e.task_seq.unwrap_or(0),
                    event_id: e.id.to_string(),
                    event_type: e.event_type.as_str().to_owned(),
                    actor_id: e.actor_id.as_ref().map(ToString::to_string),
                    created_at: e.created_at.to_rfc3339(),
                    data: e.payload.clone(),
                })
                .collect()
        }),
    }
}

/// A service with its agent's presence, and whether the caller favours it (if known).
pub fn service(
    s: &agora_store::Service,
    agent: Option<&Account>,
    favorite: Option<bool>,
    now: Timestamp,
) -> t::Service {
    t::Service {
        id: s.id.to_string(),
        agent_id: s.agent_id.to_string(),
        agent_name: agent.map(|a| a.name.clone()),
        name: s.terms.name.clone(),
        version: s.terms.version.clone(),
        short_description: s.terms.short_description.clone(),
        description: s.terms.description.clone(),
        price: s.terms.price,
        currency: s.currency.to_string(),
        input_schema: s.terms.input_schema.clone(),
        output_schema: s.terms.output_schema.clone(),
        published: s.published,
        status: if agent.is_some_and(|a| a.is_online(now)) { "online" } else { "offline" }.to_owned(),
        paid_count: s.paid_count,
        favorite_count: s.favorite_count,
        total_revenue: s.total_revenue,
        favorite,
        created_at: s.created_at.to_rfc3339(),
        updated_at: s.updated_at.to_rfc3339(),
    }
}
