//! Jobs, their bids and invitations, the skill index matching reads, and auto-bid rules.
//!
//! A job's posting is a task (kind `job`); its row here holds what a search filters and
//! sorts on, keyed by the posting task's id, and its `status` follows the posting task's.

use agora_core::{
    AccountId, BidId, InvitationId, TaskId, Timestamp,
    account::{Account, AccountKind},
    job::{BidChange, BidStatus, Counter, ExecutorPreference, JobSpec, Review},
    money::Currency,
    task::TaskStatus,
};
use async_trait::async_trait;

use crate::{Page, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The posting task's id.
    pub id: TaskId,
    pub requester_id: AccountId,
    pub spec: JobSpec,
    pub currency: Currency,
    /// The posting task's status.
    pub status: TaskStatus,
    /// Bids that count against `bid_limit`: every bid not withdrawn nor refused by an admin.
    pub bid_count: i64,
    pub hired_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobSort {
    #[default]
    Newest,
    /// Soonest deadline first; jobs without one last.
    Deadline,
    BudgetHigh,
    /// Most bids first.
    Popular,
}

#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Who is looking: `invite_only` jobs show only to their requester and invitees.
    pub viewer: Option<AccountId>,
    /// Only jobs this account posted (any privacy).
    pub requester: Option<AccountId>,
    /// Index terms (`agora_core::job::search_terms`); a job must have all of them.
    pub terms: Vec<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    /// Jobs whose budget range meets `[budget_min, budget_max]`.
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    pub executor_preference: Option<ExecutorPreference>,
    pub budget_type: Option<agora_core::job::BudgetType>,
    /// Any of these statuses (all when empty).
    pub statuses: Vec<TaskStatus>,
    pub sort: JobSort,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    pub id: BidId,
    pub job_id: TaskId,
    pub bidder_id: AccountId,
    pub amount: i64,
    pub currency: Currency,
    pub message: String,
    pub estimated_days: Option<u32>,
    pub sample_links: Vec<String>,
    pub status: BidStatus,
    pub review: Review,
    pub counter: Option<Counter>,
    pub history: Vec<BidChange>,
    /// Why the requester rejected it, if it said.
    pub reason: Option<String>,
    /// The hire's task, once accepted.
    pub hire_task_id: Option<TaskId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct BidQuery {
    pub job: Option<TaskId>,
    pub bidder: Option<AccountId>,
    /// Any of these statuses (all when empty).
    pub statuses: Vec<BidStatus>,
    /// Any of these review states (all when empty).
    pub reviews: Vec<Review>,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub job_id: TaskId,
    pub requester_id: AccountId,
    pub provider_id: AccountId,
    pub created_at: Timestamp,
}

/// Which accounts may be matched to a job.
#[derive(Debug, Clone)]
pub struct MatchQuery {
    /// Lower-case skill tags; an account matches when its skills hold any of them.
    pub skills: Vec<String>,
    /// Only accounts of this kind (the job's executor preference), or any.
    pub kind: Option<AccountKind>,
    /// Not this account.
    pub exclude: AccountId,
    /// At most this many candidates are read (the first in the skill index's order).
    pub cap: u64,
}

/// An agent's rule for bidding on new jobs by itself (seed 004).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoBidRule {
    pub account_id: AccountId,
    pub enabled: bool,
    pub min_price: i64,
    pub max_price: i64,
    pub currency: Currency,
    /// Empty: any category.
    pub categories: Vec<String>,
    /// Bid only on jobs due within this many days (or without a deadline), if set.
    pub max_deadline_days: Option<u32>,
    pub template: String,
    pub updated_at: Timestamp,
}

#[async_trait]
pub trait JobReads: Send {
    async fn job(&mut self, id: &TaskId) -> Result<Option<Job>>;
    async fn jobs(&mut self, query: &JobQuery) -> Result<Page<Job>>;
    async fn bid(&mut self, id: &BidId) -> Result<Option<Bid>>;
    async fn bids(&mut self, query: &BidQuery) -> Result<Page<Bid>>;
    /// The bid `bidder` placed on `job`, if any.
    async fn bid_of(&mut self, job: &TaskId, bidder: &AccountId) -> Result<Option<Bid>>;
    /// The invitation of `provider` to `job`, if any.
    async fn invitation(&mut self, job: &TaskId, provider: &AccountId) -> Result<Option<Invitation>>;
    /// Invitations `provider` received, newest first.
    async fn invitations(
        &mut self,
        provider: &AccountId,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Invitation>>;
    /// Accounts whose skills hold any of the query's tags, not banned, in no particular
    /// order: read through the skill index, then by id, so the work follows the number of
    /// candidates, never the number of accounts.
    async fn skill_matches(&mut self, query: &MatchQuery) -> Result<Vec<Account>>;
    async fn auto_bid_rule(&mut self, account: &AccountId) -> Result<Option<AutoBidRule>>;
    /// Enabled rules whose price range meets `[min, max]` in `currency` and whose
    /// categories include `category` (or are empty), not of `exclude`; at most `limit`.
    async fn auto_bid_candidates(
        &mut self,
        currency: &Currency,
        min: i64,
        max: i64,
        category: Option<&str>,
        exclude: &AccountId,
        limit: u64,
    ) -> Result<Vec<AutoBidRule>>;
}

#[async_trait]
pub trait JobWrites: Send {
    /// Inserts a job row and its index terms.
    async fn insert_job(&mut self, job: &Job, terms: &[String]) -> Result<()>;
    /// The job, locked until the transaction ends: bids and hires on one job queue here.
    async fn job_for_update(&mut self, id: &TaskId) -> Result<Option<Job>>;
    /// Writes back the spec, status, counters and `updated_at`; replaces the index terms
    /// when `terms` is given.
    async fn update_job(&mut self, job: &Job, terms: Option<&[String]>) -> Result<()>;
    /// `Conflict::Duplicate` when the bidder already has a bid on the job.
    async fn insert_bid(&mut self, bid: &Bid) -> Result<()>;
    async fn bid_for_update(&mut self, id: &BidId) -> Result<Option<Bid>>;
    /// Writes back everything but the ids, job, bidder and creation time.
    async fn update_bid(&mut self, bid: &Bid) -> Result<()>;
    /// `false` when the provider was already invited to the job (nothing is written).
    async fn insert_invitation(&mut self, invitation: &Invitation) -> Result<bool>;
    async fn put_auto_bid_rule(&mut self, rule: &AutoBidRule) -> Result<()>;
}
