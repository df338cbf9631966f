//! Chores: durable background work (SPEC §11 "timers"), written once for every kind.
//!
//! A chore is a row: what to do (`kind` and a JSON payload), when (`run_at`), and at most one
//! per `key` (a timer moved is the same chore rescheduled). Any replica's runner claims due
//! chores (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite), marks them
//! running under a lease, and runs each: its work and the chore's removal commit in one
//! transaction, so work that only touches the database happens exactly once, and a runner
//! killed mid-way leaves its chore to be claimed again when the lease runs out. A failed
//! attempt is retried with exponential backoff until its attempts run out; then it stays,
//! `failed`, for the operator (`agora_chores{state="failed"}` in `/metrics`).
//!
//! Work with an effect outside the database (an LLM call, a payment provider) is retried
//! the same way and must therefore be idempotent on the other side.

use std::time::Duration;

use agora_core::{TaskId, Timestamp, task::TaskStatus};
use agora_store::{Chore, NewChore, Tx};
use serde_json::Value;

use crate::{
    App,
    engine::{self, Act, By},
    error::{Error, Result},
    metrics::OutcomeLabels,
};

/// How long a runner holds a chore before another may take it over.
pub const LEASE: Duration = Duration::from_secs(300);
/// Attempts a chore gets by default.
pub const MAX_ATTEMPTS: i64 = 10;
/// Chores claimed per statement.
const BATCH: u64 = 32;

/// Every kind of background work, and what runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Accept delivered work that its requester left unreviewed (`AGORA_AUTO_ACCEPT_HOURS`).
    AutoAccept,
    /// Close a job's bidding at its deadline (a reverse auction hires its lowest bids).
    CloseJob,
    /// Place the auto-bids a new job draws.
    AutoBid,
}

impl Kind {
    pub const ALL: [Self; 3] = [Self::AutoAccept, Self::CloseJob, Self::AutoBid];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AutoAccept => "auto_accept",
            Self::CloseJob => "close_job",
            Self::AutoBid => "auto_bid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Schedules a chore in `tx`, to run at `run_at` (it runs once the transaction commits).
pub(crate) async fn schedule(
    tx: &mut dyn Tx,
    kind: Kind,
    key: Option<String>,
    payload: Value,
    run_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    tx.schedule_chore(
        &NewChore { kind: kind.as_str().to_owned(), key, payload, run_at, max_attempts: MAX_ATTEMPTS },
        now,
    )
    .await?;
    Ok(())
}

/// The wait before the attempt after `attempts` failed ones: 10 s, doubling, at most 1 h.
pub fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(10u64.saturating_mul(1 << exp).min(3600))
}

/// What one run of the runner did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ran {
    pub done: usize,
    pub retried: usize,
    pub failed: usize,
}

impl App {
    /// Runs every chore that is due now, batch after batch, until none is left (or another
    /// replica holds the rest). Chores scheduled for later wait for their time.
    pub async fn run_chores(&self) -> Result<Ran> {
        let mut ran = Ran::default();
        loop {
            let now = self.now();
            let token = ulid::Ulid::generate().to_string();
            let lease_until = now.plus_millis(i64::try_from(LEASE.as_millis()).unwrap_or(300_000));
            let mut tx = self.begin().await?;
            let claimed = tx.claim_chores(now, lease_until, &token, BATCH).await?;
            tx.commit().await?;
            if claimed.is_empty() {
                return Ok(ran);
            }
            for chore in claimed {
                self.run_chore(chore, &token, &mut ran).await;
            }
        }
    }

    async fn run_chore(&self, chore: Chore, token: &str, ran: &mut Ran) {
        let outcome = match Kind::parse(&chore.kind) {
            Some(kind) => self.chore_work(kind, &chore, token).await,
            None => Err(Error::internal(format!("no runner for chores of kind {:?}", chore.kind))),
        };
        let labels = |outcome| OutcomeLabels { outcome };
        let Err(e) = outcome else {
            ran.done += 1;
            self.metrics().chore_runs.get_or_create(&labels("done")).inc();
            return;
        };
        let now = self.now();
        let retry = (chore.attempts < chore.max_attempts)
            .then(|| now.plus_millis(i64::try_from(backoff(chore.attempts).as_millis()).unwrap_or(i64::MAX)));
        tracing::warn!(chore_id = %chore.id, kind = %chore.kind, attempt = chore.attempts, error = %e,
            retry = retry.is_some(), "background work failed");
        let recorded = async {
            let mut tx = self.begin().await?;
            tx.retry_chore(&chore.id, token, retry, &e.to_string(), now).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = recorded.await {
            // Its lease runs out and another run takes it again.
            tracing::warn!(chore_id = %chore.id, error = %e, "could not record a failed chore");
        }
        let outcome = if retry.is_some() { "retried" } else { "failed" };
        self.metrics().chore_runs.get_or_create(&labels(outcome)).inc();
        if retry.is_some() { ran.retried += 1 } else { ran.failed += 1 }
    }

    /// One chore's work and its removal, in one transaction. A chore that was taken over
    /// or rescheduled meanwhile does nothing (its transaction is dropped).
    async fn chore_work(&self, kind: Kind, chore: &Chore, token: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let task = |key: &str| {
            let id = chore.payload.get(key).and_then(Value::as_str).and_then(TaskId::parse);
            id.ok_or_else(|| Error::internal(format!("a {} chore without its {key}", kind.as_str())))
        };
        match kind {
            Kind::AutoAccept => self.auto_accept(tx.as_mut(), &task("task_id")?).await?,
            Kind::CloseJob => self.close_job_at_deadline(tx.as_mut(), &task("job_id")?).await?,
            Kind::AutoBid => {
                let placed = self.auto_bid(tx.as_mut(), &task("job_id")?).await?;
                tracing::info!(job_id = ?chore.payload.get("job_id"), placed, "auto-bids placed");
            }
        }
        if tx.finish_chore(&chore.id, token).await? {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Accepts delivered work whose review time ran out. Work of a banned worker is not
    /// accepted by the system: it waits for its requester, who may accept or reject it.
    async fn auto_accept(&self, tx: &mut dyn Tx, id: &TaskId) -> Result<()> {
        let now = self.now();
        let Some(task) = tx.task_for_update(id).await? else { return Ok(()) };
        let due = task.status == TaskStatus::Delivered && task.auto_accept_at.is_some_and(|at| at <= now);
        if !due {
            return Ok(());
        }
        if let Some(worker) = &task.assignee_id
            && tx.account(worker).await?.is_some_and(|a| a.is_banned())
        {
            tracing::info!(task_id = %id, "delivered work of a banned worker waits for its requester");
            return Ok(());
        }
        let done = engine::apply(tx, task, By::System, Act::Accept, self.settings(), now).await?;
        tracing::info!(task_id = %id, status = done.task.status.as_str(), "delivered work accepted automatically");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(80));
        assert_eq!(backoff(9), Duration::from_secs(2560));
        assert_eq!(backoff(10), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }
}
