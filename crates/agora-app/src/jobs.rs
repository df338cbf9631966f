//! Jobs and bids (SPEC §4 "Jobs"; seeds 003 and 004): posting, matching with reasons,
//! bidding, negotiation, hiring with escrow, invitations, auto-bids and the moderation
//! queue.
//!
//! A job is work like every other. Its posting is a task of kind `job` (terms
//! `JobRole::Posting`) whose row in `jobs` holds what searches filter on; bid, match and
//! invitation events are entries of the posting's timeline. Accepting a bid creates the
//! hire: a task of kind `job` (terms `JobRole::Hire`) for the bidder, funded by its own
//! escrow hold, assigned through the state machine. The posting is `open` while it takes
//! bids; it is `completed` once bidding closed with at least one hire (full, closed by its
//! requester, or a reverse auction's deadline), `cancelled` when given up without one, and
//! `expired` when its deadline passed without one.
//!
//! Lock order, everywhere: the job row, then its bids, then tasks. Bids on one job queue
//! on the job row, which is how `bid_limit` and `max_workers` hold under races.

use agora_core::{
    AccountId, BidId, EventId, InvitationId, TaskId, Timestamp,
    account::Account,
    event::EventType,
    job::{
        self, Award, BidChange, BidInput, BidSpec, BidStatus, Counter, CounterSpec, CounterState, JobInput,
        JobSpec, Privacy, RankInput, Review,
    },
    task::TaskStatus,
    work::{JobRole, TaskTerms},
};
use agora_store::{
    AutoBidRule, Bid, BidQuery, Invitation, Job, JobQuery, JobSort, MatchQuery, NewEvent, Page, Task, Tx,
};
use serde_json::{Value, json};

use crate::{
    Admin, App, Principal, Uncommitted, access, chores,
    engine::{self, Act, By},
    error::{Error, Refusal, Result},
};

/// Workers a new job is matched to, at most.
const MATCH_LIMIT: usize = 20;
/// Candidates (accounts with one of its tags) a new job's matching reads, at most.
const MATCH_CANDIDATES: u64 = 2000;
/// Auto-bid rules one new job is checked against, at most.
const AUTO_BID_LIMIT: u64 = 200;

/// A worker matched to a job, and why.
#[derive(Debug, Clone)]
pub struct Match {
    pub account: Account,
    /// The job's tags (and category) the worker's skills cover.
    pub covered: Vec<String>,
    pub online: bool,
    pub reputation: f64,
    pub completed: i64,
    /// Whether the worker's kind fits the job's executor preference (always, for a match:
    /// workers that do not fit are not matched; said so that a client need not know).
    pub fits_preference: bool,
}

/// A new job and the workers it was matched to.
#[derive(Debug, Clone)]
pub struct Posted {
    pub job: Job,
    pub matches: Vec<Match>,
}

/// A bid with its rank among the job's live bids (`None` once it is out of the running).
#[derive(Debug, Clone)]
pub struct RankedBid {
    pub bid: Bid,
    pub rank: Option<u32>,
}

/// An accepted bid and the hire it created.
#[derive(Debug, Clone)]
pub struct Hired {
    pub bid: Bid,
    pub hire: Task,
    pub job: Job,
}

/// A search of the job board.
#[derive(Debug, Clone, Default)]
pub struct JobSearch {
    pub text: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    pub executor_preference: Option<job::ExecutorPreference>,
    pub budget_type: Option<job::BudgetType>,
    /// Statuses of the posting (`open` when empty and not `mine`).
    pub statuses: Vec<TaskStatus>,
    /// Only the caller's own jobs (every status unless named).
    pub mine: bool,
    pub sort: JobSort,
    pub offset: u64,
    pub limit: u64,
}

/// An invitation with the job it is for.
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub invitation: Invitation,
    pub job: Job,
}

/// An auto-bid rule as sent (`PUT /me/auto-bid-rules`).
#[derive(Debug, Clone, Default)]
pub struct AutoBidInput {
    pub enabled: bool,
    pub min_price: i64,
    pub max_price: i64,
    pub currency: Option<String>,
    pub categories: Vec<String>,
    pub max_deadline_days: Option<i64>,
    pub template: Option<String>,
}

fn chore_key(job: &TaskId) -> String {
    format!("close_job:{job}")
}

/// An event on a job's timeline, seen by `audience`.
async fn job_event(
    tx: &mut dyn Tx,
    job: &Job,
    event: EventType,
    actor: Option<&AccountId>,
    audience: Vec<AccountId>,
    extra: Value,
    now: Timestamp,
) -> Result<()> {
    let mut payload = json!({
        "task_id": job.id, "job_id": job.id, "kind": "job", "status": job.status.as_str(),
        "requester_id": job.requester_id, "title": job.spec.title,
    });
    if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        p.extend(extra);
    }
    tx.append_event(&NewEvent {
        id: EventId::generate(),
        event_type: event,
        actor_id: actor.cloned(),
        task_id: Some(job.id.to_string()),
        audience,
        payload,
        created_at: now,
    })
    .await?;
    Ok(())
}

/// A bid event: seen by the bidder, and by the requester unless the bid waits for review.
async fn bid_event(
    tx: &mut dyn Tx,
    job: &Job,
    bid: &Bid,
    event: EventType,
    actor: Option<&AccountId>,
    extra: Value,
    now: Timestamp,
) -> Result<()> {
    let mut audience = vec![bid.bidder_id.clone()];
    if bid.review == Review::Clear {
        audience.push(job.requester_id.clone());
    }
    let mut payload = json!({
        "bid_id": bid.id, "bidder_id": bid.bidder_id, "amount": bid.amount, "currency": bid.currency,
        "estimated_days": bid.estimated_days, "bid_status": bid.status.as_str(),
    });
    if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        p.extend(extra);
    }
    job_event(tx, job, event, actor, audience, payload, now).await
}

/// What happened to a bid, for [`save_bid`].
struct Change<'a> {
    /// The history entry's name (`accepted`, `withdrawn`…).
    what: &'static str,
    note: Option<String>,
    /// The terms the entry records, when not the bid's own (a counter-offer's).
    terms: Option<(i64, Option<u32>)>,
    event: EventType,
    actor: Option<&'a AccountId>,
    extra: Value,
}

impl<'a> Change<'a> {
    fn new(what: &'static str, event: EventType, actor: Option<&'a AccountId>) -> Self {
        Self { what, note: None, terms: None, event, actor, extra: json!({}) }
    }

    fn note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    fn extra(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }
}

/// Records a change of a locked bid: its history entry, the row, and its event.
async fn save_bid(tx: &mut dyn Tx, job: &Job, bid: &mut Bid, c: Change<'_>, now: Timestamp) -> Result<()> {
    let (amount, estimated_days) = c.terms.unwrap_or((bid.amount, bid.estimated_days));
    bid.history.push(BidChange { what: c.what.into(), amount, estimated_days, at: now, note: c.note });
    bid.updated_at = now;
    tx.update_bid(bid).await?;
    bid_event(tx, job, bid, c.event, c.actor, c.extra, now).await
}

/// Whether `who` may see `job`: public ones everyone; `invite_only` ones their requester,
/// invitees and bidders.
async fn may_see_job(tx: &mut dyn agora_store::Reads, job: &Job, who: &AccountId) -> Result<bool> {
    Ok(job.spec.privacy == Privacy::Public
        || &job.requester_id == who
        || tx.invitation(&job.id, who).await?.is_some()
        || tx.bid_of(&job.id, who).await?.is_some())
}

/// Whether the job takes bids and hires at `now`.
fn is_open(job: &Job, now: Timestamp) -> bool {
    job.status == TaskStatus::Open && job.spec.deadline.is_none_or(|d| d > now)
}

impl App {
    /// Posts a job: the posting task and its row, the workers it matches (each told with
    /// `task.matched` when the job is public), its close at the deadline, and the auto-bids
    /// it may draw (placed by background work, not in this request).
    pub async fn post_job(
        &self,
        p: &Principal,
        input: JobInput,
        currency: Option<&str>,
    ) -> Result<Uncommitted<Posted>> {
        let now = self.now();
        let mut inv = agora_core::Invalid::default();
        let currency = inv.collect("currency", self.settings().currencies.parse(currency.unwrap_or("PTS")));
        let spec = inv.collect("", JobSpec::parse(input, now, self.settings().max_amount));
        let (Some(currency), Some(spec)) = (currency, spec) else { return Err(inv.into()) };
        let mut task = Task::new(TaskTerms::Job(JobRole::Posting), p.id(), spec.title.clone(), now);
        task.description = spec.description.clone();
        task.currency = Some(currency.clone());
        task.deadline_at = spec.deadline;
        let mut tx = self.begin().await?;
        let task = engine::create(tx.as_mut(), task, now).await?;
        let job = Job {
            id: task.id.clone(),
            requester_id: p.id().clone(),
            currency,
            status: task.status,
            bid_count: 0,
            hired_count: 0,
            created_at: now,
            updated_at: now,
            spec,
        };
        tx.insert_job(&job, &job.spec.search_terms()).await?;
        let matches = self.match_workers(tx.as_mut(), &job, &p.account, now).await?;
        if job.spec.privacy == Privacy::Public && !matches.is_empty() {
            // One event for all of them: each matched worker sees it (webhook, notification,
            // live stream); the reasons are the requester's, in the response.
            let audience = matches.iter().map(|m| m.account.id.clone()).collect();
            let extra = json!({ "tags": job.spec.tags, "category": job.spec.category,
                "budget_min": job.spec.budget_min, "budget_max": job.spec.budget_max, "currency": job.currency });
            job_event(tx.as_mut(), &job, EventType::TaskMatched, Some(p.id()), audience, extra, now).await?;
        }
        // Auto-bids are background work, scheduled only when some rule may bid.
        if job.spec.privacy == Privacy::Public
            && !self.auto_bid_rules_for(tx.as_mut(), &job, 1).await?.is_empty()
        {
            chores::schedule(tx.as_mut(), chores::Kind::AutoBid, None, json!({ "job_id": job.id }), now, now)
                .await?;
        }
        if let Some(deadline) = job.spec.deadline {
            chores::schedule(
                tx.as_mut(),
                chores::Kind::CloseJob,
                Some(chore_key(&job.id)),
                json!({ "job_id": job.id }),
                deadline,
                now,
            )
            .await?;
        }
        Ok(self.uncommitted(tx, Posted { job, matches }))
    }

    /// Workers whose skills cover the job's tags or category, of the kind it admits, not of
    /// the requester's party: online first, then by reputation. Reads the skill index.
    async fn match_workers(
        &self,
        tx: &mut dyn Tx,
        job: &Job,
        requester: &Account,
        now: Timestamp,
    ) -> Result<Vec<Match>> {
        let mut wanted = job.spec.tags.clone();
        wanted.extend(job.spec.category.iter().filter(|c| !job.spec.tags.contains(c)).cloned());
        let kind = match job.spec.executor_preference {
            job::ExecutorPreference::Any => None,
            job::ExecutorPreference::HumanOnly => Some(agora_core::account::AccountKind::Human),
            job::ExecutorPreference::AiOnly => Some(agora_core::account::AccountKind::Agent),
        };
        let found = tx
            .skill_matches(&MatchQuery {
                skills: wanted.clone(),
                kind,
                exclude: requester.id.clone(),
                cap: MATCH_CANDIDATES,
            })
            .await?;
        let mut matches: Vec<Match> = found
            .into_iter()
            .filter(|a| !access::same_party(a, requester))
            .map(|a| Match {
                covered: wanted.iter().filter(|t| a.profile.skills.contains(t)).cloned().collect(),
                online: a.is_online(now),
                reputation: job::reputation(a.counters.completed, a.counters.failed, a.counters.no_response),
                completed: a.counters.completed,
                fits_preference: job.spec.executor_preference.admits(a.kind),
                account: a,
            })
            .collect();
        // Online first, then by reputation, then by completed work; ties by id.
        matches.sort_by(|x, y| {
            y.online
                .cmp(&x.online)
                .then(y.reputation.total_cmp(&x.reputation))
                .then(y.completed.cmp(&x.completed))
                .then(x.account.id.cmp(&y.account.id))
        });
        matches.truncate(MATCH_LIMIT);
        Ok(matches)
    }

    /// The job board: open public jobs (and invite-only ones the caller was invited to), or
    /// the caller's own jobs in any status.
    pub async fn jobs(&self, p: &Principal, s: JobSearch) -> Result<Page<Job>> {
        let statuses = if s.statuses.is_empty() && !s.mine { vec![TaskStatus::Open] } else { s.statuses };
        let terms = s.text.as_deref().map(job::search_terms).unwrap_or_default();
        if terms.len() > 16 {
            return Err(Error::invalid("q", "at most 16 words"));
        }
        let query = JobQuery {
            viewer: Some(p.id().clone()),
            requester: s.mine.then(|| p.id().clone()),
            terms,
            category: s.category,
            tag: s.tag,
            budget_min: s.budget_min,
            budget_max: s.budget_max,
            executor_preference: s.executor_preference,
            budget_type: s.budget_type,
            statuses,
            sort: s.sort,
            offset: s.offset,
            limit: s.limit,
        };
        Ok(self.store().read().jobs(&query).await?)
    }

    /// One job, if the caller may see it.
    pub async fn job(&self, p: &Principal, id: &TaskId) -> Result<Job> {
        let mut r = self.store().read();
        let job = r.job(id).await?.ok_or(Error::NotFound("job"))?;
        if may_see_job(r.as_mut(), &job, p.id()).await? { Ok(job) } else { Err(Error::NotFound("job")) }
    }

    /// Locks the caller's own job; others' are `NOT_FOUND`.
    async fn own_job(tx: &mut dyn Tx, p: &Principal, id: &TaskId) -> Result<Job> {
        tx.job_for_update(id).await?.filter(|j| &j.requester_id == p.id()).ok_or(Error::NotFound("job"))
    }

    /// Changes an open job's terms (its requester). Lowering `bid_limit` or `max_workers`
    /// below what the job already has is refused.
    pub async fn update_job(&self, p: &Principal, id: &TaskId, patch: JobInput) -> Result<Uncommitted<Job>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let mut job = Self::own_job(tx.as_mut(), p, id).await?;
        if !is_open(&job, now) {
            return Err(Refusal::JobNotOpen.into());
        }
        let spec = job.spec.patch(patch, now, self.settings().max_amount)?;
        if i64::from(spec.bid_limit) < job.bid_count {
            return Err(Refusal::JobLimitBelowCurrent { field: "bid_limit", current: job.bid_count }.into());
        }
        if i64::from(spec.max_workers) <= job.hired_count {
            return Err(
                Refusal::JobLimitBelowCurrent { field: "max_workers", current: job.hired_count }.into()
            );
        }
        let deadline_moved = spec.deadline != job.spec.deadline;
        job.spec = spec;
        job.updated_at = now;
        tx.update_job(&job, Some(&job.spec.search_terms())).await?;
        let mut task = tx.task_for_update(id).await?.ok_or(Error::NotFound("job"))?;
        task.title = job.spec.title.clone();
        task.description = job.spec.description.clone();
        task.deadline_at = job.spec.deadline;
        task.updated_at = now;
        tx.update_task(&task).await?;
        if deadline_moved && let Some(deadline) = job.spec.deadline {
            chores::schedule(
                tx.as_mut(),
                chores::Kind::CloseJob,
                Some(chore_key(&job.id)),
                json!({ "job_id": job.id }),
                deadline,
                now,
            )
            .await?;
        }
        Ok(self.uncommitted(tx, job))
    }

    /// Cancels an open job without hires (its requester); its pending bids are rejected.
    pub async fn cancel_job(&self, p: &Principal, id: &TaskId) -> Result<Uncommitted<Job>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let job = Self::own_job(tx.as_mut(), p, id).await?;
        if job.hired_count > 0 {
            return Err(Refusal::JobHasHires { hired: job.hired_count }.into());
        }
        if job.status != TaskStatus::Open {
            return Err(Refusal::JobNotOpen.into());
        }
        let job = self
            .end_bidding(tx.as_mut(), job, By::Account(p.id()), Act::Cancel, "the job was cancelled", now)
            .await?;
        Ok(self.uncommitted(tx, job))
    }

    /// Closes bidding (its requester): a job with hires is complete, one without is
    /// cancelled; either way its pending bids are rejected.
    pub async fn close_job(&self, p: &Principal, id: &TaskId) -> Result<Uncommitted<Job>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let job = Self::own_job(tx.as_mut(), p, id).await?;
        if job.status != TaskStatus::Open {
            return Err(Refusal::JobNotOpen.into());
        }
        let act = if job.hired_count > 0 { Act::Fill } else { Act::Cancel };
        let job =
            self.end_bidding(tx.as_mut(), job, By::Account(p.id()), act, "the job was closed", now).await?;
        Ok(self.uncommitted(tx, job))
    }

    /// Moves the posting out of `open` with `act` and rejects the job's pending bids.
    async fn end_bidding(
        &self,
        tx: &mut dyn Tx,
        mut job: Job,
        by: By<'_>,
        act: Act,
        why: &str,
        now: Timestamp,
    ) -> Result<Job> {
        let done = engine::act(tx, &job.id, by, act, self.settings(), now).await?;
        job.status = done.task.status;
        job.updated_at = now;
        tx.update_job(&job, None).await?;
        tx.cancel_chore(&chore_key(&job.id)).await?;
        let pending = tx
            .bids(&BidQuery {
                job: Some(job.id.clone()),
                statuses: vec![BidStatus::Pending],
                limit: u64::from(job.spec.bid_limit) + 1000,
                ..Default::default()
            })
            .await?;
        for mut bid in pending.items {
            bid.status = BidStatus::Rejected;
            bid.reason = Some(why.to_owned());
            let c = Change::new("rejected", EventType::BidRejected, None)
                .note(Some(why.to_owned()))
                .extra(json!({ "reason": why }));
            save_bid(tx, &job, &mut bid, c, now).await?;
        }
        Ok(job)
    }

    /// Places a bid (see [`App::bid_in`] for the rules).
    pub async fn place_bid(
        &self,
        p: &Principal,
        job_id: &TaskId,
        input: BidInput,
        currency: Option<&str>,
    ) -> Result<Uncommitted<RankedBid>> {
        let spec = BidSpec::parse(input, self.settings().max_amount)?;
        let mut tx = self.begin().await?;
        let (job, bid) = self.bid_in(tx.as_mut(), &p.account, job_id, spec, currency, self.now()).await?;
        let ranked = self.ranked(tx.as_mut(), &job).await?;
        let rank = ranked.into_iter().find(|r| r.bid.id == bid.id).and_then(|r| r.rank);
        Ok(self.uncommitted(tx, RankedBid { bid, rank }))
    }

    /// The one way a bid is placed, by a person or by an auto-bid rule: the job must be
    /// visible to the bidder (an `invite_only` job to invitees), open, not of the bidder's
    /// party, admit the bidder's kind, have room under `bid_limit`, and hold no other bid
    /// of the bidder. The job row is locked first, so concurrent bids count one by one.
    async fn bid_in(
        &self,
        tx: &mut dyn Tx,
        bidder: &Account,
        job_id: &TaskId,
        spec: BidSpec,
        currency: Option<&str>,
        now: Timestamp,
    ) -> Result<(Job, Bid)> {
        let mut job = tx.job_for_update(job_id).await?.ok_or(Error::NotFound("job"))?;
        if !may_see_job(&mut *tx, &job, &bidder.id).await? {
            return Err(Error::NotFound("job"));
        }
        if let Some(c) = currency
            && c != job.currency.as_str()
        {
            return Err(Error::invalid("currency", format!("bids on this job are in {}", job.currency)));
        }
        if let Some(requester) = tx.account(&job.requester_id).await? {
            access::not_own_party(bidder, &requester, Refusal::OwnJob)?;
        }
        if !is_open(&job, now) {
            return Err(Refusal::JobNotOpen.into());
        }
        if !job.spec.executor_preference.admits(bidder.kind) {
            return Err(Refusal::ExecutorPreferenceMismatch {
                executor_preference: job.spec.executor_preference.as_str(),
            }
            .into());
        }
        if tx.bid_of(&job.id, &bidder.id).await?.is_some() {
            return Err(Refusal::DuplicateBid.into());
        }
        if job.bid_count >= i64::from(job.spec.bid_limit) {
            return Err(Refusal::BidLimitReached {
                job_id: job.id.to_string(),
                limit: job.spec.bid_limit,
                current: job.bid_count,
            }
            .into());
        }
        let review = if self.needs_review(tx, bidder, now).await? { Review::Pending } else { Review::Clear };
        let mut bid = Bid {
            id: BidId::generate(),
            job_id: job.id.clone(),
            bidder_id: bidder.id.clone(),
            amount: spec.amount,
            currency: job.currency.clone(),
            message: spec.message,
            estimated_days: spec.estimated_days,
            sample_links: spec.sample_links,
            status: BidStatus::Pending,
            review,
            counter: None,
            history: Vec::new(),
            reason: None,
            hire_task_id: None,
            created_at: now,
            updated_at: now,
        };
        bid.history.push(BidChange {
            what: "placed".into(),
            amount: bid.amount,
            estimated_days: bid.estimated_days,
            at: now,
            note: None,
        });
        tx.insert_bid(&bid).await.map_err(|e| match e {
            agora_store::StoreError::Conflict(_) => Error::from(Refusal::DuplicateBid),
            other => other.into(),
        })?;
        job.bid_count += 1;
        job.updated_at = now;
        tx.update_job(&job, None).await?;
        bid_event(
            tx,
            &job,
            &bid,
            EventType::BidCreated,
            Some(&bidder.id),
            json!({ "review": review.as_str() }),
            now,
        )
        .await?;
        Ok((job, bid))
    }

    /// Whether a new bid of `bidder` goes to the moderation queue: one of its first
    /// `bid_review_first_bids` while its account is younger than `bid_review_account_days`.
    async fn needs_review(&self, tx: &mut dyn Tx, bidder: &Account, now: Timestamp) -> Result<bool> {
        let s = self.settings();
        if s.bid_review_first_bids == 0 {
            return Ok(false);
        }
        let young = bidder.created_at > now.plus_seconds(-i64::from(s.bid_review_account_days) * 86_400);
        if !young {
            return Ok(false);
        }
        let placed =
            tx.bids(&BidQuery { bidder: Some(bidder.id.clone()), limit: 0, ..Default::default() }).await?;
        Ok(placed.total < u64::from(s.bid_review_first_bids))
    }

    /// Every bid on `job` in placing order, each with its rank among the live ones (pending
    /// or accepted, and cleared by moderation), by [`job::rank`].
    async fn ranked(&self, r: &mut dyn agora_store::Reads, job: &Job) -> Result<Vec<RankedBid>> {
        let limit = u64::from(job.spec.bid_limit) + u64::try_from(job.hired_count).unwrap_or(0) + 1000;
        let bids = r.bids(&BidQuery { job: Some(job.id.clone()), limit, ..Default::default() }).await?.items;
        let live = |b: &Bid| {
            matches!(b.status, BidStatus::Pending | BidStatus::Accepted) && b.review == Review::Clear
        };
        let bidder_ids: Vec<AccountId> =
            bids.iter().filter(|b| live(b)).map(|b| b.bidder_id.clone()).collect();
        let accounts = r.accounts(&bidder_ids).await?;
        let inputs: Vec<RankInput> = bids
            .iter()
            .filter(|b| live(b))
            .map(|b| {
                let rep = accounts.iter().find(|a| a.id == b.bidder_id).map_or(0.5, |a| {
                    job::reputation(a.counters.completed, a.counters.failed, a.counters.no_response)
                });
                RankInput {
                    amount: b.amount,
                    estimated_days: b.estimated_days,
                    reputation: rep,
                    placed_at: b.created_at,
                }
            })
            .collect();
        let mut ranks = job::rank(&inputs, job.spec.award).into_iter();
        Ok(bids
            .into_iter()
            .map(|b| {
                let rank = if live(&b) { ranks.next() } else { None };
                RankedBid { bid: b, rank }
            })
            .collect())
    }

    /// A job's bids as the caller may see them: all of them (but those waiting for or
    /// refused by moderation) for its requester; one's own bid for a bidder; none for
    /// anyone else who may see the job.
    pub async fn job_bids(&self, p: &Principal, job_id: &TaskId) -> Result<Vec<RankedBid>> {
        let mut r = self.store().read();
        let job = r.job(job_id).await?.ok_or(Error::NotFound("job"))?;
        if !may_see_job(r.as_mut(), &job, p.id()).await? {
            return Err(Error::NotFound("job"));
        }
        let all = self.ranked(r.as_mut(), &job).await?;
        Ok(if &job.requester_id == p.id() {
            all.into_iter().filter(|b| b.bid.review == Review::Clear).collect()
        } else {
            all.into_iter().filter(|b| &b.bid.bidder_id == p.id()).collect()
        })
    }

    /// The caller's bids, newest first, in these statuses (all when empty).
    pub async fn my_bids(
        &self,
        p: &Principal,
        statuses: Vec<BidStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Bid>> {
        let q = BidQuery { bidder: Some(p.id().clone()), statuses, offset, limit, ..Default::default() };
        Ok(self.store().read().bids(&q).await?)
    }

    /// Locks a bid and its job for `p` acting as the job's requester (`requester`) or as
    /// the bidder; anyone else gets `NOT_FOUND`. The job is locked first (the lock order).
    async fn bid_for(tx: &mut dyn Tx, p: &Principal, id: &BidId, requester: bool) -> Result<(Job, Bid)> {
        let peek = tx.bid(id).await?.ok_or(Error::NotFound("bid"))?;
        let job = tx.job_for_update(&peek.job_id).await?.ok_or(Error::NotFound("bid"))?;
        let bid = tx.bid_for_update(id).await?.ok_or(Error::NotFound("bid"))?;
        let mine = if requester {
            &job.requester_id == p.id() && bid.review == Review::Clear
        } else {
            &bid.bidder_id == p.id()
        };
        if mine { Ok((job, bid)) } else { Err(Error::NotFound("bid")) }
    }

    /// Accepts a bid (its job's requester) while the job is open: hires the bidder (a
    /// reverse auction is not accepted by hand: it awards itself at its deadline). The accepted amount is held
    /// from the requester (`INSUFFICIENT_FUNDS` leaves everything as it was) and a hire
    /// task is assigned to the bidder. A job that is then full completes, and its other
    /// pending bids are rejected.
    pub async fn accept_bid(&self, p: &Principal, id: &BidId) -> Result<Uncommitted<Hired>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let (job, bid) = Self::bid_for(tx.as_mut(), p, id, true).await?;
        if !is_open(&job, now) {
            return Err(Refusal::JobNotOpen.into());
        }
        if job.spec.award == Award::ReverseAuction {
            return Err(Refusal::AwardedAtDeadline.into());
        }
        let hired = self.hire(tx.as_mut(), job, bid, By::Account(p.id()), now).await?;
        Ok(self.uncommitted(tx, hired))
    }

    /// Hires a locked bid's bidder on a locked job.
    async fn hire(
        &self,
        tx: &mut dyn Tx,
        mut job: Job,
        mut bid: Bid,
        by: By<'_>,
        now: Timestamp,
    ) -> Result<Hired> {
        if job.status != TaskStatus::Open {
            return Err(Refusal::JobNotOpen.into());
        }
        if bid.status != BidStatus::Pending {
            return Err(Refusal::BidNotPending.into());
        }
        let mut task = Task::new(
            TaskTerms::Job(JobRole::Hire { job_id: job.id.clone(), bid_id: bid.id.clone() }),
            &job.requester_id,
            job.spec.title.clone(),
            now,
        );
        task.description = job.spec.description.clone();
        task.price = Some(bid.amount);
        task.currency = Some(bid.currency.clone());
        task.deadline_at = bid.estimated_days.map(|d| now.plus_seconds(i64::from(d) * 86_400));
        let task = engine::create(tx, task, now).await?;
        let s = self.settings();
        let hire = engine::apply(tx, task, by, Act::Assign(bid.bidder_id.clone()), s, now).await?.task;
        bid.status = BidStatus::Accepted;
        bid.hire_task_id = Some(hire.id.clone());
        job.hired_count += 1;
        job.updated_at = now;
        tx.update_job(&job, None).await?;
        let actor = match by {
            By::Account(a) => Some(a.clone()),
            By::System => None,
        };
        let c = Change::new("accepted", EventType::BidAccepted, actor.as_ref())
            .extra(json!({ "hire_task_id": hire.id }));
        save_bid(tx, &job, &mut bid, c, now).await?;
        if job.hired_count >= i64::from(job.spec.max_workers) {
            job = self.end_bidding(tx, job, by, Act::Fill, "the job is full", now).await?;
        }
        Ok(Hired { bid, hire, job })
    }

    /// Rejects a pending bid (its job's requester), with an optional reason.
    pub async fn reject_bid(
        &self,
        p: &Principal,
        id: &BidId,
        reason: Option<String>,
    ) -> Result<Uncommitted<Bid>> {
        let reason = reason
            .map(|r| agora_core::validation::text(&r, 1, 1000).map_err(|e| e.at("reason")))
            .transpose()?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let (job, mut bid) = Self::bid_for(tx.as_mut(), p, id, true).await?;
        if bid.status != BidStatus::Pending {
            return Err(Refusal::BidNotPending.into());
        }
        bid.status = BidStatus::Rejected;
        bid.reason.clone_from(&reason);
        let c = Change::new("rejected", EventType::BidRejected, Some(p.id()))
            .extra(json!({ "reason": reason }))
            .note(reason);
        save_bid(tx.as_mut(), &job, &mut bid, c, now).await?;
        Ok(self.uncommitted(tx, bid))
    }

    /// Withdraws one's pending bid; it no longer counts against the job's limit.
    pub async fn withdraw_bid(&self, p: &Principal, id: &BidId) -> Result<Uncommitted<Bid>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let (mut job, mut bid) = Self::bid_for(tx.as_mut(), p, id, false).await?;
        if bid.status != BidStatus::Pending {
            return Err(Refusal::BidNotPending.into());
        }
        bid.status = BidStatus::Withdrawn;
        job.bid_count -= 1;
        job.updated_at = now;
        tx.update_job(&job, None).await?;
        save_bid(
            tx.as_mut(),
            &job,
            &mut bid,
            Change::new("withdrawn", EventType::BidWithdrawn, Some(p.id())),
            now,
        )
        .await?;
        Ok(self.uncommitted(tx, bid))
    }

    /// Counters a pending bid once (its job's requester) with a new amount or number of
    /// days; the bidder answers with [`App::answer_counter`].
    pub async fn counter_bid(
        &self,
        p: &Principal,
        id: &BidId,
        amount: Option<i64>,
        estimated_days: Option<i64>,
    ) -> Result<Uncommitted<Bid>> {
        let spec = CounterSpec::parse(amount, estimated_days, self.settings().max_amount)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let (job, mut bid) = Self::bid_for(tx.as_mut(), p, id, true).await?;
        if !is_open(&job, now) {
            return Err(Refusal::JobNotOpen.into());
        }
        if bid.status != BidStatus::Pending {
            return Err(Refusal::BidNotPending.into());
        }
        if bid.counter.is_some() {
            return Err(Refusal::CounterAlreadyMade.into());
        }
        bid.counter = Some(Counter {
            amount: spec.amount,
            estimated_days: spec.estimated_days,
            state: CounterState::Offered,
            offered_at: now,
            answered_at: None,
        });
        let extra = json!({ "counter_amount": spec.amount, "counter_estimated_days": spec.estimated_days });
        let c = Change {
            terms: Some((spec.amount.unwrap_or(bid.amount), spec.estimated_days.or(bid.estimated_days))),
            ..Change::new("countered", EventType::BidCountered, Some(p.id())).extra(extra)
        };
        save_bid(tx.as_mut(), &job, &mut bid, c, now).await?;
        Ok(self.uncommitted(tx, bid))
    }

    /// The bidder accepts (the bid takes the counter's terms) or declines (the bid keeps
    /// its own) a counter-offer.
    pub async fn answer_counter(&self, p: &Principal, id: &BidId, accept: bool) -> Result<Uncommitted<Bid>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let (job, mut bid) = Self::bid_for(tx.as_mut(), p, id, false).await?;
        if bid.status != BidStatus::Pending {
            return Err(Refusal::BidNotPending.into());
        }
        let Some(mut counter) = bid.counter.clone().filter(|c| c.state == CounterState::Offered) else {
            return Err(Refusal::NoCounterOffer.into());
        };
        if !is_open(&job, now) {
            return Err(Refusal::JobNotOpen.into());
        }
        counter.answered_at = Some(now);
        if accept {
            counter.state = CounterState::Accepted;
            bid.amount = counter.amount.unwrap_or(bid.amount);
            bid.estimated_days = counter.estimated_days.or(bid.estimated_days);
        } else {
            counter.state = CounterState::Declined;
        }
        bid.counter = Some(counter);
        let what = if accept { "counter_accepted" } else { "counter_declined" };
        let c = Change::new(what, EventType::BidCounterAnswered, Some(p.id()))
            .extra(json!({ "accepted": accept }));
        save_bid(tx.as_mut(), &job, &mut bid, c, now).await?;
        Ok(self.uncommitted(tx, bid))
    }

    /// Invites a provider to bid on one's open job (`invitations` limit: 10 a day by
    /// default). Inviting the same provider again changes nothing and answers the same.
    pub async fn invite(
        &self,
        p: &Principal,
        job_id: &TaskId,
        provider: &AccountId,
    ) -> Result<Uncommitted<Invitation>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let job = Self::own_job(tx.as_mut(), p, job_id).await?;
        if !is_open(&job, now) {
            return Err(Refusal::JobNotOpen.into());
        }
        let invitee =
            tx.account(provider).await?.filter(|a| !a.is_banned()).ok_or(Error::NotFound("provider"))?;
        access::not_own_party(&invitee, &p.account, Refusal::OwnJob)?;
        let invitation = Invitation {
            id: InvitationId::generate(),
            job_id: job.id.clone(),
            requester_id: p.id().clone(),
            provider_id: invitee.id.clone(),
            created_at: now,
        };
        if !tx.insert_invitation(&invitation).await? {
            let existing = tx.invitation(&job.id, &invitee.id).await?;
            return Ok(
                self.uncommitted(tx, existing.ok_or_else(|| Error::internal("an invitation vanished"))?)
            );
        }
        self.limits().check("invitations", p.id().as_str())?;
        job_event(
            tx.as_mut(),
            &job,
            EventType::InvitationReceived,
            Some(p.id()),
            vec![invitee.id.clone()],
            json!({ "invitation_id": invitation.id, "provider_id": invitee.id }),
            now,
        )
        .await?;
        Ok(self.uncommitted(tx, invitation))
    }

    /// The invitations the caller received, newest first, with their jobs.
    pub async fn invitations(&self, p: &Principal, offset: u64, limit: u64) -> Result<Page<InvitationView>> {
        let mut r = self.store().read();
        let page = r.invitations(p.id(), offset, limit).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for invitation in page.items {
            if let Some(job) = r.job(&invitation.job_id).await? {
                items.push(InvitationView { invitation, job });
            }
        }
        Ok(Page { items, total: page.total })
    }

    /// The caller's auto-bid rule, if it set one.
    pub async fn auto_bid_rule(&self, p: &Principal) -> Result<Option<AutoBidRule>> {
        Ok(self.store().read().auto_bid_rule(p.id()).await?)
    }

    /// Sets the caller's auto-bid rule (agents only).
    pub async fn put_auto_bid_rule(
        &self,
        p: &Principal,
        input: AutoBidInput,
    ) -> Result<Uncommitted<AutoBidRule>> {
        access::require_agent(p)?;
        let mut inv = agora_core::Invalid::default();
        let currency = inv.collect(
            "currency",
            self.settings().currencies.parse(input.currency.as_deref().unwrap_or("PTS")),
        );
        if input.min_price <= 0 {
            inv.push("min_price", "must be a positive whole number of minor units");
        }
        if input.max_price < input.min_price {
            inv.push("max_price", "must be at least min_price");
        }
        self.settings().max_amount.check(&mut inv, "max_price", input.max_price);
        if input.categories.len() > job::MAX_TAGS {
            inv.push("categories", format!("at most {} categories", job::MAX_TAGS));
        }
        let categories: Vec<String> = input
            .categories
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                inv.collect(&format!("categories[{i}]"), agora_core::account::parse_skill(c))
            })
            .collect();
        let days = input.max_deadline_days.and_then(|d| {
            let v = u32::try_from(d).ok().filter(|d| (1..=3650).contains(d));
            if v.is_none() {
                inv.push("max_deadline_days", "must be 1-3650");
            }
            v
        });
        let template = inv
            .collect(
                "response_template",
                agora_core::validation::text(
                    input.template.as_deref().unwrap_or("I can do \"{title}\" for {price}."),
                    1,
                    2000,
                ),
            )
            .unwrap_or_default();
        let Some(currency) = currency else { return Err(inv.into()) };
        if !inv.0.is_empty() {
            return Err(inv.into());
        }
        let rule = AutoBidRule {
            account_id: p.id().clone(),
            enabled: input.enabled,
            min_price: input.min_price,
            max_price: input.max_price,
            currency,
            categories,
            max_deadline_days: days,
            template,
            updated_at: self.now(),
        };
        let mut tx = self.begin().await?;
        tx.put_auto_bid_rule(&rule).await?;
        Ok(self.uncommitted(tx, rule))
    }

    /// The enabled auto-bid rules (at most `limit`) whose price range and categories meet
    /// the job's, of agents outside the requester's party.
    async fn auto_bid_rules_for(&self, tx: &mut dyn Tx, job: &Job, limit: u64) -> Result<Vec<AutoBidRule>> {
        let (min, max) = (job.spec.budget_min, job.spec.budget_max);
        let category = job.spec.category.as_deref();
        Ok(tx.auto_bid_candidates(&job.currency, min, max, category, &job.requester_id, limit).await?)
    }

    /// Background work: places the bids of every auto-bid rule that matches a new job, in
    /// the chore's transaction; each such agent gets `task.created` for the job. A rule's
    /// bid is its price range's top, capped by the job's budget; rules that cannot bid
    /// (limit reached, already bid, wrong kind) are skipped.
    pub(crate) async fn auto_bid(&self, tx: &mut dyn Tx, job_id: &TaskId) -> Result<usize> {
        let now = self.now();
        let Some(job) = tx.job(job_id).await? else { return Ok(0) };
        if !is_open(&job, now) {
            return Ok(0);
        }
        let rules = self.auto_bid_rules_for(tx, &job, AUTO_BID_LIMIT).await?;
        let mut placed = 0;
        for rule in rules {
            if let (Some(days), Some(deadline)) = (rule.max_deadline_days, job.spec.deadline)
                && deadline > now.plus_seconds(i64::from(days) * 86_400)
            {
                continue;
            }
            let Some(agent) = tx.account(&rule.account_id).await? else { continue };
            let price = rule.max_price.min(job.spec.budget_max).max(rule.min_price);
            let shown = self.settings().currencies.format_major(&job.currency, price);
            let spec = BidSpec {
                amount: price,
                message: job::fill_template(
                    &rule.template,
                    &format!("{shown} {}", job.currency),
                    &job.spec.title,
                ),
                estimated_days: None,
                sample_links: Vec::new(),
            };
            match self.bid_in(tx, &agent, &job.id, spec, None, now).await {
                Ok((_, bid)) => {
                    placed += 1;
                    // The agent hears of the new job its rule bid on.
                    let extra = json!({ "auto_bid": { "bid_id": bid.id, "amount": bid.amount } });
                    job_event(tx, &job, EventType::TaskCreated, None, vec![agent.id.clone()], extra, now)
                        .await?;
                }
                Err(Error::Refused(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(placed)
    }

    /// Background work at a job's deadline: a reverse auction hires its lowest live bids
    /// (up to `max_workers`, skipping any the requester cannot pay for); then bidding
    /// closes: complete with hires, expired without. Does nothing to a job no longer open,
    /// so it runs once however often it is called.
    pub(crate) async fn close_job_at_deadline(&self, tx: &mut dyn Tx, job_id: &TaskId) -> Result<()> {
        let now = self.now();
        let Some(mut job) = tx.job_for_update(job_id).await? else { return Ok(()) };
        if job.status != TaskStatus::Open || job.spec.deadline.is_some_and(|d| d > now) {
            return Ok(());
        }
        if job.spec.award == Award::ReverseAuction {
            let ranked = self.ranked(&mut *tx, &job).await?;
            let mut order: Vec<_> = ranked
                .into_iter()
                .filter(|r| r.bid.status == BidStatus::Pending)
                .filter_map(|r| r.rank.map(|k| (k, r.bid)))
                .collect();
            order.sort_by_key(|(k, _)| *k);
            for (_, bid) in order {
                if job.hired_count >= i64::from(job.spec.max_workers) || job.status != TaskStatus::Open {
                    break;
                }
                let Some(bid) = tx.bid_for_update(&bid.id).await? else { continue };
                // A hire the requester cannot pay for is skipped and the next bid tried.
                // Checked here, before the hire writes anything: a refused hold would end
                // this transaction half written. (Should the balance change in between, the
                // hold refuses, the chore's transaction rolls back and it runs again.)
                if tx.balance(&job.requester_id, &job.currency).await?.available < bid.amount {
                    continue;
                }
                let hired = self.hire(tx, job, bid, By::System, now).await?;
                job = hired.job;
            }
        }
        if job.status == TaskStatus::Open {
            let act = if job.hired_count > 0 { Act::Fill } else { Act::DeadlineExpired };
            self.end_bidding(tx, job, By::System, act, "bidding closed at the deadline", now).await?;
        }
        Ok(())
    }

    /// The moderation queue: bids waiting for an admin, oldest first.
    pub async fn bids_pending_review(&self, _admin: &Admin, offset: u64, limit: u64) -> Result<Page<Bid>> {
        let q = BidQuery { reviews: vec![Review::Pending], offset, limit, ..Default::default() };
        Ok(self.store().read().bids(&q).await?)
    }

    /// An admin clears a held bid (its requester now sees it and is told) or refuses it
    /// (never shown; it stops counting against the job's limit, and its bidder is told).
    pub async fn review_bid(&self, admin: &Admin, id: &BidId, approve: bool) -> Result<Uncommitted<Bid>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let peek = tx.bid(id).await?.ok_or(Error::NotFound("bid"))?;
        let mut job = tx.job_for_update(&peek.job_id).await?.ok_or(Error::NotFound("bid"))?;
        let mut bid = tx
            .bid_for_update(id)
            .await?
            .filter(|b| b.review == Review::Pending)
            .ok_or(Error::NotFound("bid"))?;
        let (what, event) = if approve {
            bid.review = Review::Clear;
            ("approved", EventType::BidCreated)
        } else {
            bid.review = Review::Refused;
            bid.status = BidStatus::Rejected;
            bid.reason = Some("refused by moderation".into());
            job.bid_count -= 1;
            job.updated_at = now;
            tx.update_job(&job, None).await?;
            ("refused", EventType::BidRejected)
        };
        let c = Change::new(what, event, admin.actor()).extra(json!({ "review": bid.review.as_str() }));
        save_bid(tx.as_mut(), &job, &mut bid, c, now).await?;
        Ok(self.uncommitted(tx, bid))
    }
}
