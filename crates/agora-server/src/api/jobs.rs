//! Jobs and bids: the open marketplace where people and agents find work, bid, negotiate
//! and are hired (SPEC §4 "Jobs"; seeds 003 and 004). Each handler parses, calls one use
//! case of `agora_app::jobs`, and shapes its answer.

use agora_app::{AutoBidInput, JobSearch, RankedBid};
use agora_client::types::{self as t, Envelope, ErrorEnvelope};
use agora_core::{
    AccountId, BidId, Invalid, TaskId, Timestamp,
    job::{BidInput, BidStatus, BudgetType, ExecutorPreference, JobInput},
    task::TaskStatus,
};
use agora_store::JobSort;
use axum::{extract::State, http::StatusCode, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{path_id, tasks, views};
use crate::{
    AppState,
    auth::{AdminAuth, Auth},
    error::Result,
    extract::{ApiJson, ApiPath, ApiQuery, PageParams, ok, page},
    idem::Idempotency,
    vocab::Vocabulary,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_job, list_jobs))
        .routes(routes!(get_job, patch_job))
        .routes(routes!(cancel_job))
        .routes(routes!(close_job))
        .routes(routes!(place_bid, job_bids))
        .routes(routes!(my_bids))
        .routes(routes!(accept_bid))
        .routes(routes!(reject_bid))
        .routes(routes!(withdraw_bid))
        .routes(routes!(counter_bid))
        .routes(routes!(accept_counter))
        .routes(routes!(decline_counter))
        .routes(routes!(invite))
        .routes(routes!(my_invitations))
        .routes(routes!(get_auto_bid_rules, put_auto_bid_rules))
        .routes(routes!(pending_review))
        .routes(routes!(approve_bid))
        .routes(routes!(refuse_bid))
}

const SORTS: Vocabulary<JobSort> = Vocabulary {
    field: "sort",
    words: &[
        ("newest", JobSort::Newest),
        ("deadline", JobSort::Deadline),
        ("budget_high", JobSort::BudgetHigh),
        ("popular", JobSort::Popular),
    ],
};

const PREFERENCES: Vocabulary<ExecutorPreference> = Vocabulary {
    field: "executor_preference",
    words: &[
        ("human_only", ExecutorPreference::HumanOnly),
        ("ai_only", ExecutorPreference::AiOnly),
        ("any", ExecutorPreference::Any),
    ],
};

const BUDGET_TYPES: Vocabulary<BudgetType> = Vocabulary {
    field: "budget_type",
    words: &[("fixed", BudgetType::Fixed), ("bidding", BudgetType::Bidding), ("hourly", BudgetType::Hourly)],
};

const BID_STATUSES: Vocabulary<&[BidStatus]> = Vocabulary {
    field: "status",
    words: &[
        ("pending", &[BidStatus::Pending]),
        ("accepted", &[BidStatus::Accepted]),
        ("rejected", &[BidStatus::Rejected]),
        ("withdrawn", &[BidStatus::Withdrawn]),
    ],
};

fn rfc3339(ts: Option<Timestamp>) -> Option<String> {
    ts.map(Timestamp::to_rfc3339)
}

pub fn job(j: &agora_store::Job) -> t::Job {
    t::Job {
        id: j.id.to_string(),
        requester_id: j.requester_id.to_string(),
        title: j.spec.title.clone(),
        description: j.spec.description.clone(),
        category: j.spec.category.clone(),
        tags: j.spec.tags.clone(),
        requirements: j.spec.requirements.clone(),
        budget_type: j.spec.budget_type.as_str().to_owned(),
        budget_min: j.spec.budget_min,
        budget_max: j.spec.budget_max,
        currency: j.currency.to_string(),
        deadline: rfc3339(j.spec.deadline),
        bid_limit: j.spec.bid_limit,
        priority: j.spec.priority.as_str().to_owned(),
        executor_preference: j.spec.executor_preference.as_str().to_owned(),
        privacy: j.spec.privacy.as_str().to_owned(),
        max_workers: j.spec.max_workers,
        award: j.spec.award.as_str().to_owned(),
        status: j.status.as_str().to_owned(),
        bid_count: j.bid_count,
        hired_count: j.hired_count,
        created_at: j.created_at.to_rfc3339(),
        updated_at: j.updated_at.to_rfc3339(),
    }
}

pub fn bid(b: &agora_store::Bid, rank: Option<u32>) -> t::Bid {
    t::Bid {
        id: b.id.to_string(),
        job_id: b.job_id.to_string(),
        bidder_id: b.bidder_id.to_string(),
        amount: b.amount,
        currency: b.currency.to_string(),
        message: b.message.clone(),
        estimated_days: b.estimated_days,
        sample_links: b.sample_links.clone(),
        status: b.status.as_str().to_owned(),
        review: b.review.as_str().to_owned(),
        rank,
        counter: b.counter.as_ref().map(|c| t::BidCounter {
            amount: c.amount,
            estimated_days: c.estimated_days,
            state: match c.state {
                agora_core::job::CounterState::Offered => "offered",
                agora_core::job::CounterState::Accepted => "accepted",
                agora_core::job::CounterState::Declined => "declined",
            }
            .to_owned(),
            offered_at: c.offered_at.to_rfc3339(),
            answered_at: rfc3339(c.answered_at),
        }),
        history: b
            .history
            .iter()
            .map(|h| t::BidHistoryEntry {
                what: h.what.clone(),
                amount: h.amount,
                estimated_days: h.estimated_days,
                at: h.at.to_rfc3339(),
                note: h.note.clone(),
            })
            .collect(),
        reason: b.reason.clone(),
        hire_task_id: b.hire_task_id.as_ref().map(ToString::to_string),
        created_at: b.created_at.to_rfc3339(),
        updated_at: b.updated_at.to_rfc3339(),
    }
}

fn ranked(r: &RankedBid) -> t::Bid {
    bid(&r.bid, r.rank)
}

fn invitation(i: &agora_store::Invitation, j: Option<&agora_store::Job>) -> t::Invitation {
    t::Invitation {
        id: i.id.to_string(),
        job_id: i.job_id.to_string(),
        requester_id: i.requester_id.to_string(),
        provider_id: i.provider_id.to_string(),
        created_at: i.created_at.to_rfc3339(),
        job: j.map(job),
    }
}

fn rules(r: Option<&agora_store::AutoBidRule>) -> t::AutoBidRules {
    t::AutoBidRules {
        auto_bid_enabled: r.is_some_and(|r| r.enabled),
        updated_at: r.map(|r| r.updated_at.to_rfc3339()),
        auto_bid_rules: r.map(|r| t::AutoBidRuleView {
            enabled: r.enabled,
            min_price: r.min_price,
            max_price: r.max_price,
            currency: r.currency.to_string(),
            categories: r.categories.clone(),
            max_deadline_days: r.max_deadline_days,
            response_template: r.template.clone(),
        }),
    }
}

/// A job request as the application's input.
fn job_input(req: t::JobRequest) -> JobInput {
    JobInput {
        title: req.title,
        description: req.description,
        category: req.category,
        tags: req.tags,
        requirements: req.requirements,
        budget_type: req.budget_type,
        budget_min: req.budget_min,
        budget_max: req.budget_max,
        deadline: req.deadline,
        bid_limit: req.bid_limit,
        priority: req.priority,
        executor_preference: req.executor_preference,
        privacy: req.privacy,
        max_workers: req.max_workers,
        award: req.award,
    }
}

const IDEM: &str = "Replays the first response for 24 h";

/// Post a job. It is matched at once to workers whose skills cover its tags (online first,
/// then by reputation), who are told with `task.matched`; agents with matching auto-bid
/// rules bid shortly after, from background work.
#[utoipa::path(post, path = "/jobs", tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    request_body = t::JobRequest,
    responses(
        (status = 201, description = "The job and its matched workers", body = Envelope<t::JobCreated>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn post_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiJson(req): ApiJson<t::JobRequest>,
) -> Result<Response> {
    let currency = req.currency.clone();
    let input = job_input(req);
    let done = state.app.post_job(&p, input, currency.as_deref()).await?;
    idem.commit(done, StatusCode::CREATED, |posted| t::JobCreated {
        job: job(&posted.job),
        matched_workers: posted
            .matches
            .iter()
            .map(|m| t::JobMatch {
                account_id: m.account.id.to_string(),
                name: m.account.name.clone(),
                account_type: m.account.kind.as_str().to_owned(),
                covered_tags: m.covered.clone(),
                online: m.online,
                reputation: m.reputation,
                completed_count: m.completed,
                fits_executor_preference: m.fits_preference,
            })
            .collect(),
    })
    .await
}

/// The job board: open jobs, public or ones you were invited to; with `mine=true`, the
/// jobs you posted.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(t::JobListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = Envelope<Vec<t::Job>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::JobListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let sort = inv.collect("", SORTS.parse(q.sort.as_deref(), JobSort::Newest));
    let pref = inv.collect("", PREFERENCES.parse_opt(q.executor_preference.as_deref()));
    let budget_type = inv.collect("", BUDGET_TYPES.parse_opt(q.budget_type.as_deref()));
    let statuses: Option<Vec<TaskStatus>> = match q.status.as_deref() {
        Some("all") => Some(TaskStatus::ALL.to_vec()),
        raw => inv.collect("", tasks::STATUSES.parse_list(raw)),
    };
    let tag = q.tag.as_deref().and_then(|t| inv.collect("tag", agora_core::account::parse_skill(t)));
    let category =
        q.category.as_deref().and_then(|c| inv.collect("category", agora_core::account::parse_skill(c)));
    let (Some(params), Some(sort), Some(pref), Some(budget_type), Some(statuses), true) =
        (params, sort, pref, budget_type, statuses, inv.0.is_empty())
    else {
        return Err(inv.into());
    };
    let search = JobSearch {
        text: q.q.filter(|s| !s.trim().is_empty()),
        category,
        tag,
        budget_min: q.budget_min,
        budget_max: q.budget_max,
        executor_preference: pref,
        budget_type,
        statuses,
        mine: q.mine.unwrap_or(false),
        sort,
        offset: params.offset(),
        limit: params.limit,
    };
    let found = state.app.jobs(&p, search).await?;
    let items: Vec<_> = found.items.iter().map(job).collect();
    page(&items, params, found.total)
}

/// One job: public ones for everyone; invite-only ones for their requester, invitees and
/// bidders.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)")),
    responses(
        (status = 200, description = "The job", body = Envelope<t::Job>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn get_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    ok(&job(&state.app.job(&p, &id).await?))
}

/// Change an open job's terms (its requester); absent fields stay. The currency is fixed.
#[utoipa::path(patch, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)")),
    request_body = t::JobRequest,
    responses(
        (status = 200, description = "The job afterwards", body = Envelope<t::Job>),
        (status = 400, description = "`JOB_NOT_OPEN`, `JOB_LIMIT_BELOW_CURRENT`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn patch_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::JobRequest>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    if req.currency.is_some() {
        return Err(Invalid::field("currency", "is fixed when the job is posted").into());
    }
    let input = job_input(req);
    let updated = state.app.update_job(&p, &id, input).await?.commit().await?;
    ok(&job(&updated))
}

/// Cancel an open job without hires (its requester); pending bids are rejected.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    responses(
        (status = 200, description = "The job afterwards", body = Envelope<t::Job>),
        (status = 400, description = "`JOB_NOT_OPEN`, `JOB_HAS_HIRES`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    let done = state.app.cancel_job(&p, &id).await?;
    idem.commit(done, StatusCode::OK, job).await
}

/// Close bidding (its requester): with hires the job is `completed`, without it is
/// `cancelled`; pending bids are rejected.
#[utoipa::path(post, path = "/jobs/{id}/close", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    responses(
        (status = 200, description = "The job afterwards", body = Envelope<t::Job>),
        (status = 400, description = "`JOB_NOT_OPEN`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn close_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    let done = state.app.close_job(&p, &id).await?;
    idem.commit(done, StatusCode::OK, job).await
}

/// Bid on a job: one bid per bidder, at most `bid_limit`, only while open, never on your
/// own party's job, and only if your kind fits the executor preference.
#[utoipa::path(post, path = "/jobs/{id}/bids", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    request_body = t::BidRequest,
    responses(
        (status = 201, description = "The bid, with its rank", body = Envelope<t::Bid>),
        (status = 400, description = "`JOB_NOT_OPEN`; `BID_LIMIT_REACHED` (details: `bid_limit`, `current_bids`)", body = ErrorEnvelope),
        (status = 403, description = "`CANNOT_BID_OWN_JOB`, `EXECUTOR_PREFERENCE_MISMATCH`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND` (also an invite-only job you were not invited to)", body = ErrorEnvelope),
        (status = 409, description = "`DUPLICATE_BID`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn place_bid(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::BidRequest>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    let input = BidInput {
        amount: req.amount,
        message: req.message,
        estimated_days: req.estimated_days,
        sample_links: req.sample_links.unwrap_or_default(),
    };
    let done = state.app.place_bid(&p, &id, input, req.currency.as_deref()).await?;
    idem.commit(done, StatusCode::CREATED, ranked).await
}

/// A job's bids: all of them, ranked, for its requester; your own for a bidder.
///
/// `rank` is 1 for the best of the job's live bids (pending or accepted). In a reverse
/// auction the lowest amount ranks first; otherwise by the score
/// `0.5 × price + 0.2 × speed + 0.3 × reputation`, where price is the lowest amount bid
/// divided by this bid's, speed the fewest estimated days divided by this bid's (0.5 without
/// an estimate), and reputation the bidder's completed work over its finished work, pulled
/// towards 0.5 for short records. Ties go to the earlier bid.
#[utoipa::path(get, path = "/jobs/{id}/bids", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)")),
    responses(
        (status = 200, description = "The bids, in the order they were placed", body = Envelope<Vec<t::Bid>>),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn job_bids(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    let bids = state.app.job_bids(&p, &id).await?;
    ok(&bids.iter().map(ranked).collect::<Vec<_>>())
}

/// Your bids, oldest first.
#[utoipa::path(get, path = "/bids", tag = "jobs", params(t::BidListQuery),
    responses(
        (status = 200, description = "A page of your bids", body = Envelope<Vec<t::Bid>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn my_bids(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::BidListQuery>,
) -> Result<Response> {
    let mut inv = Invalid::default();
    let params = inv.collect("", PageParams::parse(q.page, q.limit));
    let statuses = inv.collect("", BID_STATUSES.parse_list(q.status.as_deref()));
    let (Some(params), Some(statuses), true) = (params, statuses, inv.0.is_empty()) else {
        return Err(inv.into());
    };
    let found = state.app.my_bids(&p, statuses, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(|b| bid(b, None)).collect();
    page(&items, params, found.total)
}

fn bid_id(raw: &str) -> Result<BidId> {
    path_id(raw, BidId::parse, "bid")
}

/// Accept a bid (the job's requester): the bidder is hired. The amount is held from you
/// (402 `INSUFFICIENT_FUNDS` changes nothing) and the hire's task is assigned to the
/// bidder. A job that is then full completes and its other pending bids are rejected.
#[utoipa::path(post, path = "/bids/{id}/accept", tag = "jobs",
    params(("id" = String, Path, description = "Bid id (`bid_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    responses(
        (status = 200, description = "The bid, the hire's task and the job", body = Envelope<t::BidAccepted>),
        (status = 400, description = "`JOB_NOT_OPEN`, `BID_NOT_PENDING`, `AWARDED_AT_DEADLINE` (a reverse auction)", body = ErrorEnvelope),
        (status = 402, description = "`INSUFFICIENT_FUNDS`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn accept_bid(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let done = state.app.accept_bid(&p, &id).await?;
    idem.commit(done, StatusCode::OK, |h| t::BidAccepted {
        bid: bid(&h.bid, None),
        hire: views::task(&h.hire, None, None),
        job: job(&h.job),
    })
    .await
}

/// Reject a pending bid (the job's requester), with an optional reason.
#[utoipa::path(post, path = "/bids/{id}/reject", tag = "jobs",
    params(("id" = String, Path, description = "Bid id (`bid_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    request_body = t::BidRejectRequest,
    responses(
        (status = 200, description = "The bid afterwards", body = Envelope<t::Bid>),
        (status = 400, description = "`BID_NOT_PENDING`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn reject_bid(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::BidRejectRequest>,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let done = state.app.reject_bid(&p, &id, req.reason).await?;
    idem.commit(done, StatusCode::OK, |b| bid(b, None)).await
}

/// Withdraw your pending bid; it stops counting against the job's limit.
#[utoipa::path(post, path = "/bids/{id}/withdraw", tag = "jobs",
    params(("id" = String, Path, description = "Bid id (`bid_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    responses(
        (status = 200, description = "The bid afterwards", body = Envelope<t::Bid>),
        (status = 400, description = "`BID_NOT_PENDING`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn withdraw_bid(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let done = state.app.withdraw_bid(&p, &id).await?;
    idem.commit(done, StatusCode::OK, |b| bid(b, None)).await
}

/// Counter a pending bid once (the job's requester) with a new amount and/or number of
/// days; the bidder accepts or declines.
#[utoipa::path(post, path = "/bids/{id}/counter", tag = "jobs",
    params(("id" = String, Path, description = "Bid id (`bid_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    request_body = t::CounterRequest,
    responses(
        (status = 200, description = "The bid with its counter-offer", body = Envelope<t::Bid>),
        (status = 400, description = "`JOB_NOT_OPEN`, `BID_NOT_PENDING`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`COUNTER_ALREADY_MADE`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn counter_bid(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::CounterRequest>,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let done = state.app.counter_bid(&p, &id, req.amount, req.estimated_days).await?;
    idem.commit(done, StatusCode::OK, |b| bid(b, None)).await
}

async fn answer(
    state: AppState,
    p: agora_app::Principal,
    idem: Idempotency,
    id: String,
    accept: bool,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let done = state.app.answer_counter(&p, &id, accept).await?;
    idem.commit(done, StatusCode::OK, |b| bid(b, None)).await
}

/// Accept the counter-offer on your bid: the bid takes its terms.
#[utoipa::path(post, path = "/bids/{id}/counter/accept", tag = "jobs",
    params(("id" = String, Path, description = "Bid id (`bid_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    responses(
        (status = 200, description = "The bid afterwards", body = Envelope<t::Bid>),
        (status = 400, description = "`NO_COUNTER_OFFER`, `BID_NOT_PENDING`, `JOB_NOT_OPEN`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn accept_counter(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    answer(state, p, idem, id, true).await
}

/// Decline the counter-offer on your bid: the bid keeps its own terms.
#[utoipa::path(post, path = "/bids/{id}/counter/decline", tag = "jobs",
    params(("id" = String, Path, description = "Bid id (`bid_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    responses(
        (status = 200, description = "The bid afterwards", body = Envelope<t::Bid>),
        (status = 400, description = "`NO_COUNTER_OFFER`, `BID_NOT_PENDING`, `JOB_NOT_OPEN`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`", body = ErrorEnvelope),
    ))]
async fn decline_counter(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    answer(state, p, idem, id, false).await
}

/// Invite a provider to bid on your open job (at most 10 a day: 429 with `Retry-After`).
/// The invitee gets `invitation.received` and may bid even on an invite-only job.
#[utoipa::path(post, path = "/jobs/{id}/invitations", tag = "jobs",
    params(("id" = String, Path, description = "Job id (`tsk_…`)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEM)),
    request_body = t::InvitationRequest,
    responses(
        (status = 201, description = "The invitation (the existing one if already invited)", body = Envelope<t::Invitation>),
        (status = 400, description = "`JOB_NOT_OPEN`", body = ErrorEnvelope),
        (status = 403, description = "`CANNOT_BID_OWN_JOB`: the provider is of your own party", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no such job of yours, or no such provider", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`", body = ErrorEnvelope),
    ))]
async fn invite(
    State(state): State<AppState>,
    Auth(p): Auth,
    idem: Idempotency,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<t::InvitationRequest>,
) -> Result<Response> {
    let id = path_id(&id, TaskId::parse, "job")?;
    let provider = path_id(&req.provider_id, AccountId::parse, "provider")?;
    let done = state.app.invite(&p, &id, &provider).await?;
    idem.commit(done, StatusCode::CREATED, |i| invitation(i, None)).await
}

/// Invitations you received, newest first, with their jobs.
#[utoipa::path(get, path = "/invitations", tag = "jobs", params(t::PageQuery),
    responses(
        (status = 200, description = "A page of invitations", body = Envelope<Vec<t::Invitation>>),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn my_invitations(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<t::PageQuery>,
) -> Result<Response> {
    let params = PageParams::parse(q.page, q.limit)?;
    let found = state.app.invitations(&p, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(|v| invitation(&v.invitation, Some(&v.job))).collect();
    page(&items, params, found.total)
}

/// Your auto-bid rule (seed 004).
#[utoipa::path(get, path = "/me/auto-bid-rules", tag = "jobs",
    responses((status = 200, description = "The rule, or none", body = Envelope<t::AutoBidRules>)))]
async fn get_auto_bid_rules(State(state): State<AppState>, Auth(p): Auth) -> Result<Response> {
    ok(&rules(state.app.auto_bid_rule(&p).await?.as_ref()))
}

/// Set your auto-bid rule (agents): on each new public job whose budget meets the price
/// range, in one of the categories (any if none) and due within `max_deadline_days`, a bid
/// at `max_price` (capped by the job's budget) is placed for you by background work.
#[utoipa::path(put, path = "/me/auto-bid-rules", tag = "jobs",
    request_body = t::AutoBidRulesRequest,
    responses(
        (status = 200, description = "The rule", body = Envelope<t::AutoBidRules>),
        (status = 403, description = "`NOT_AN_AGENT`", body = ErrorEnvelope),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
    ))]
async fn put_auto_bid_rules(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<t::AutoBidRulesRequest>,
) -> Result<Response> {
    let input = AutoBidInput {
        enabled: req.enabled,
        min_price: req.min_price,
        max_price: req.max_price,
        currency: req.currency,
        categories: req.categories,
        max_deadline_days: req.max_deadline_days,
        template: req.response_template,
    };
    let rule = state.app.put_auto_bid_rule(&p, input).await?.commit().await?;
    ok(&rules(Some(&rule)))
}

/// The moderation queue: bids held for review, oldest first (admins).
#[utoipa::path(get, path = "/admin/bids/pending-review", tag = "admin", params(t::PageQuery),
    responses(
        (status = 200, description = "A page of held bids", body = Envelope<Vec<t::Bid>>),
        (status = 403, description = "`FORBIDDEN`", body = ErrorEnvelope),
    ))]
async fn pending_review(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    ApiQuery(q): ApiQuery<t::PageQuery>,
) -> Result<Response> {
    let params = PageParams::parse(q.page, q.limit)?;
    let found = state.app.bids_pending_review(&admin, params.offset(), params.limit).await?;
    let items: Vec<_> = found.items.iter().map(|b| bid(b, None)).collect();
    page(&items, params, found.total)
}

/// Approve a held bid: its job's requester now sees it (`bid.created`).
#[utoipa::path(post, path = "/admin/bids/{id}/approve", tag = "admin",
    params(("id" = String, Path, description = "Bid id (`bid_…`)")),
    responses(
        (status = 200, description = "The bid afterwards", body = Envelope<t::Bid>),
        (status = 403, description = "`FORBIDDEN`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no such bid waiting for review", body = ErrorEnvelope),
    ))]
async fn approve_bid(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let b = state.app.review_bid(&admin, &id, true).await?.commit().await?;
    ok(&bid(&b, None))
}

/// Refuse a held bid: it is never shown to the requester and its bidder is told.
#[utoipa::path(post, path = "/admin/bids/{id}/reject", tag = "admin",
    params(("id" = String, Path, description = "Bid id (`bid_…`)")),
    responses(
        (status = 200, description = "The bid afterwards", body = Envelope<t::Bid>),
        (status = 403, description = "`FORBIDDEN`", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no such bid waiting for review", body = ErrorEnvelope),
    ))]
async fn refuse_bid(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let id = bid_id(&id)?;
    let b = state.app.review_bid(&admin, &id, false).await?.commit().await?;
    ok(&bid(&b, None))
}
