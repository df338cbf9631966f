//! Bounties (AgentFlow "requests"): posted openly with the reward held at once; the first
//! account to claim one gets it (409 for the rest, 403 for the poster's own party); the
//! claim starts the delivery clock; late delivery costs the worker the penalty. The poster
//! may take back an overdue claim, which reopens the bounty, or cancel an unclaimed one for
//! a refund.

use agora_core::{
    TaskId,
    task::{TaskKind, TaskStatus},
    work::{Bounty, BountyInput, TaskTerms},
};
use agora_store::{Page, Task, TaskQuery};

use crate::{
    App, Principal, Uncommitted, access,
    engine::{self, Act, By, Done},
    error::{Error, Refusal, Result},
};

/// Which bounties a list shows: open ones from everyone, or — in any other status set
/// (empty: all statuses) — only those the principal posted or claimed.
#[derive(Debug, Clone)]
pub enum BountyFilter {
    Open,
    Mine(Vec<TaskStatus>),
    /// Those the principal claimed, in these statuses (all when empty).
    Claimed(Vec<TaskStatus>),
}

impl App {
    /// Posts a bounty; its reward is held from the poster at once (402 if it cannot be).
    pub async fn post_bounty(
        &self,
        p: &Principal,
        b: BountyInput,
        currency: Option<&str>,
    ) -> Result<Uncommitted<Task>> {
        let mut inv = agora_core::Invalid::default();
        let currency = inv.collect("currency", self.settings().currencies.parse(currency.unwrap_or("PTS")));
        let bounty = inv.collect("", Bounty::parse(b, self.settings().max_amount));
        let (Some(currency), Some(bounty)) = (currency, bounty) else { return Err(inv.into()) };
        let now = self.now();
        let mut task = Task::new(TaskTerms::Bounty(bounty.terms), p.id(), bounty.title, now);
        task.description = bounty.description;
        task.input = Some(bounty.input).filter(|i| !i.is_null());
        task.price = Some(bounty.reward);
        task.currency = Some(currency);
        let mut tx = self.begin().await?;
        let task = engine::create(tx.as_mut(), task, now).await?;
        Ok(self.uncommitted(tx, task))
    }

    /// Bounties, newest first (see [`BountyFilter`]).
    pub async fn bounties(
        &self,
        p: &Principal,
        filter: BountyFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Task>> {
        let me = p.id().clone();
        let (requester, assignee, either, statuses, assigned_only) = match filter {
            BountyFilter::Open => (None, None, false, vec![TaskStatus::Open], false),
            BountyFilter::Mine(statuses) => (Some(me.clone()), Some(me), true, statuses, false),
            BountyFilter::Claimed(statuses) => (None, Some(me), false, statuses, true),
        };
        let query = TaskQuery {
            requester,
            assignee,
            either,
            statuses,
            kinds: vec![TaskKind::Bounty],
            assigned_only,
            offset,
            limit,
        };
        Ok(self.store().read().tasks(&query).await?)
    }

    /// One bounty: open ones for everyone, others for their poster and claimer.
    pub async fn bounty(&self, p: &Principal, id: &TaskId) -> Result<Task> {
        self.store()
            .read()
            .task(id)
            .await?
            .filter(|t| t.kind == TaskKind::Bounty && access::may_see_task(t, p.id()))
            .ok_or(Error::NotFound("bounty"))
    }

    /// Claims an open bounty: the first claimer gets it and its delivery clock starts;
    /// everyone after gets `TASK_ALREADY_CLAIMED`; the poster's own party gets
    /// `CANNOT_CLAIM_OWN_TASK`.
    pub async fn claim_bounty(&self, p: &Principal, id: &TaskId) -> Result<Uncommitted<Done>> {
        let mut tx = self.begin().await?;
        let task = tx
            .task_for_update(id)
            .await?
            .filter(|t| t.kind == TaskKind::Bounty && access::may_claim_task(t, p.id()))
            .ok_or(Error::NotFound("bounty"))?;
        // The poster itself is refused by the state machine; the rest of its party here.
        if task.requester_id != *p.id()
            && let Some(poster) = tx.account(&task.requester_id).await?
        {
            access::not_own_party(&p.account, &poster, Refusal::OwnTask)?;
        }
        let done =
            engine::apply(tx.as_mut(), task, By::Account(p.id()), Act::Claim, self.settings(), self.now())
                .await?;
        Ok(self.uncommitted(tx, done))
    }

    /// The poster cancels an unclaimed bounty (refunded), takes back an overdue claim (the
    /// bounty reopens; `CLAIM_NOT_OVERDUE` before its deadline), or gives up on an overdue
    /// revision (refunded).
    pub async fn cancel_bounty(&self, p: &Principal, id: &TaskId) -> Result<Uncommitted<Done>> {
        let mut tx = self.begin().await?;
        let task = tx
            .task_for_update(id)
            .await?
            .filter(|t| t.kind == TaskKind::Bounty && &t.requester_id == p.id())
            .ok_or(Error::NotFound("bounty"))?;
        let act = match Act::cancel(&task) {
            Act::Cancel if task.status == TaskStatus::InProgress => Act::ReleaseClaim,
            other => other,
        };
        let done =
            engine::apply(tx.as_mut(), task, By::Account(p.id()), act, self.settings(), self.now()).await?;
        Ok(self.uncommitted(tx, done))
    }
}
