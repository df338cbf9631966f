//! Jobs, bids, invitations, the skill index and auto-bid rules.

use agora_core::{
    AccountId, BidId, InvitationId, TaskId, Timestamp,
    account::{Account, AccountKind},
    job::{Award, BidStatus, BudgetType, ExecutorPreference, JobSpec, Priority, Privacy, Review},
    money::Currency,
    task::TaskStatus,
};
use agora_store::{
    AutoBidRule, Bid, BidQuery, Conflict, Invitation, Job, JobQuery, JobReads, JobSort, JobWrites,
    MatchQuery, Page, Result,
};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    accounts::account_from_row,
    rows::{
        CHUNK, corrupt, count, db_err, err, get, json_col, limit_of, marks, opt_json, opt_time, opt_to_json,
        row_marks, time, to_json,
    },
};
use crate::db;

macro_rules! job_cols {
    () => {
        "j.id, j.requester_id, j.title, j.description, j.category, j.tags, j.requirements, j.budget_type, \
         j.budget_min, j.budget_max, j.currency, j.deadline_at, j.bid_limit, j.priority, j.executor_preference, \
         j.privacy, j.max_workers, j.award, j.status, j.bid_count, j.hired_count, j.created_at, j.updated_at"
    };
}

macro_rules! bid_cols {
    () => {
        "b.id, b.job_id, b.bidder_id, b.amount, b.currency, b.message, b.estimated_days, b.sample_links, \
         b.status, b.review, b.counter, b.history, b.reason, b.hire_task_id, b.created_at, b.updated_at"
    };
}

fn parsed<T>(what: &str, raw: String, parse: impl FnOnce(&str) -> Option<T>) -> Result<T> {
    parse(&raw).ok_or_else(|| corrupt(what, &raw))
}

fn small(r: &DbRow, col: &str) -> Result<u32> {
    let v: i64 = get(r, col)?;
    u32::try_from(v).map_err(|_| corrupt(col, &v.to_string()))
}

fn job_from_row(r: &DbRow) -> Result<Job> {
    Ok(Job {
        id: TaskId::from_trusted(get(r, "id")?),
        requester_id: AccountId::from_trusted(get(r, "requester_id")?),
        spec: JobSpec {
            title: get(r, "title")?,
            description: get(r, "description")?,
            category: get(r, "category")?,
            tags: json_col(r, "tags")?,
            requirements: json_col(r, "requirements")?,
            budget_type: parsed("budget type", get(r, "budget_type")?, BudgetType::parse)?,
            budget_min: get(r, "budget_min")?,
            budget_max: get(r, "budget_max")?,
            deadline: opt_time(r, "deadline_at")?,
            bid_limit: small(r, "bid_limit")?,
            priority: parsed("priority", get(r, "priority")?, Priority::parse)?,
            executor_preference: parsed(
                "executor preference",
                get(r, "executor_preference")?,
                ExecutorPreference::parse,
            )?,
            privacy: parsed("privacy", get(r, "privacy")?, Privacy::parse)?,
            max_workers: small(r, "max_workers")?,
            award: parsed("award", get(r, "award")?, Award::parse)?,
        },
        currency: Currency::from_trusted(get(r, "currency")?),
        status: parsed("task status", get(r, "status")?, TaskStatus::parse)?,
        bid_count: get(r, "bid_count")?,
        hired_count: get(r, "hired_count")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn bid_from_row(r: &DbRow) -> Result<Bid> {
    let days: Option<i64> = get(r, "estimated_days")?;
    Ok(Bid {
        id: BidId::from_trusted(get(r, "id")?),
        job_id: TaskId::from_trusted(get(r, "job_id")?),
        bidder_id: AccountId::from_trusted(get(r, "bidder_id")?),
        amount: get(r, "amount")?,
        currency: Currency::from_trusted(get(r, "currency")?),
        message: get(r, "message")?,
        estimated_days: days
            .map(|d| u32::try_from(d).map_err(|_| corrupt("estimated_days", &d.to_string())))
            .transpose()?,
        sample_links: json_col(r, "sample_links")?,
        status: parsed("bid status", get(r, "status")?, BidStatus::parse)?,
        review: parsed("bid review", get(r, "review")?, Review::parse)?,
        counter: opt_json(r, "counter")?,
        history: json_col(r, "history")?,
        reason: get(r, "reason")?,
        hire_task_id: get::<Option<String>>(r, "hire_task_id")?.map(TaskId::from_trusted),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn invitation_from_row(r: &DbRow) -> Result<Invitation> {
    Ok(Invitation {
        id: InvitationId::from_trusted(get(r, "id")?),
        job_id: TaskId::from_trusted(get(r, "job_id")?),
        requester_id: AccountId::from_trusted(get(r, "requester_id")?),
        provider_id: AccountId::from_trusted(get(r, "provider_id")?),
        created_at: time(r, "created_at")?,
    })
}

fn rule_from_row(r: &DbRow) -> Result<AutoBidRule> {
    let days: Option<i64> = get(r, "max_deadline_days")?;
    Ok(AutoBidRule {
        account_id: AccountId::from_trusted(get(r, "account_id")?),
        enabled: get(r, "enabled")?,
        min_price: get(r, "min_price")?,
        max_price: get(r, "max_price")?,
        currency: Currency::from_trusted(get(r, "currency")?),
        categories: json_col(r, "categories")?,
        max_deadline_days: days
            .map(|d| u32::try_from(d).map_err(|_| corrupt("max_deadline_days", &d.to_string())))
            .transpose()?,
        template: get(r, "template")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// A value bound to a statement whose text is assembled from optional filters.
enum Param {
    Text(String),
    Int(i64),
}

/// Filters joined by `AND`, each with its bound values numbered in order.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Filter {
    /// The next parameter's mark (`$n`), binding `p` to it.
    fn mark(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn text(&mut self, v: &str) -> String {
        self.mark(Param::Text(v.to_owned()))
    }

    fn int(&mut self, v: i64) -> String {
        self.mark(Param::Int(v))
    }

    fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    fn any_of(&mut self, col: &str, values: &[&str]) {
        if !values.is_empty() {
            let marks: Vec<String> = values.iter().map(|v| self.text(v)).collect();
            self.push(format!("{col} IN ({})", marks.join(", ")));
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() { "TRUE".to_owned() } else { self.clauses.join(" AND ") }
    }

    /// One page of `from` (a table and its alias) in `order`, with the total the filter
    /// selects. `cols`, `from` and `order` are this crate's constants.
    async fn page<S: Source, T>(
        mut self,
        sql: &mut Sql<S>,
        cols: &str,
        from: &str,
        order: &str,
        (offset, limit): (u64, u64),
        from_row: fn(&DbRow) -> Result<T>,
    ) -> Result<Page<T>> {
        let filter = self.sql();
        let counted = self.bind(format!("SELECT COUNT(*) AS n FROM {from} WHERE {filter}"));
        let total: i64 = get(&counted.fetch_one(sql.0.exec()).await.map_err(err)?, "n")?;
        let limit = self.int(limit_of(limit));
        let offset = self.int(limit_of(offset));
        let text = format!(
            "SELECT {cols} FROM {from} WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        );
        let rows = self.bind(text).fetch_all(sql.0.exec()).await.map_err(err)?;
        Ok(Page { items: rows.iter().map(from_row).collect::<Result<_>>()?, total: count(total) })
    }

    fn bind<'q>(&'q self, sql: String) -> db::Query<'q> {
        let mut q = db::query(db::AssertSqlSafe(sql));
        for p in &self.params {
            q = match p {
                Param::Text(s) => q.bind(s.as_str()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

#[async_trait]
impl<S: Source> JobReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn job(&mut self, id: &TaskId) -> Result<Option<Job>> {
        let sql = concat!("SELECT ", job_cols!(), " FROM jobs j WHERE j.id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn jobs(&mut self, q: &JobQuery) -> Result<Page<Job>> {
        let mut f = Filter::default();
        let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
        f.any_of("j.status", &statuses);
        if let Some(me) = &q.requester {
            let m = f.text(me.as_str());
            f.push(format!("j.requester_id = {m}"));
        }
        match &q.viewer {
            // Staff-wide reads (none today) would pass no viewer; everyone else sees public
            // jobs, their own, and those they were invited to.
            None => {}
            Some(v) => {
                let m = f.text(v.as_str());
                f.push(format!(
                    "(j.privacy = 'public' OR j.requester_id = {m} OR j.id IN \
                     (SELECT i.job_id FROM invitations i WHERE i.provider_id = {m}))"
                ));
            }
        }
        // Each term (and the tag, as `#tag`) narrows through the term index.
        let mut terms: Vec<String> = q.terms.clone();
        if let Some(tag) = &q.tag {
            terms.push(format!("#{tag}"));
        }
        for term in &terms {
            let m = f.text(term);
            f.push(format!("j.id IN (SELECT t.job_id FROM job_terms t WHERE t.term = {m})"));
        }
        if let Some(c) = &q.category {
            let m = f.text(c);
            f.push(format!("j.category = {m}"));
        }
        if let Some(min) = q.budget_min {
            let m = f.int(min);
            f.push(format!("j.budget_max >= {m}"));
        }
        if let Some(max) = q.budget_max {
            let m = f.int(max);
            f.push(format!("j.budget_min <= {m}"));
        }
        if let Some(p) = q.executor_preference {
            let m = f.text(p.as_str());
            f.push(format!("j.executor_preference = {m}"));
        }
        if let Some(t) = q.budget_type {
            let m = f.text(t.as_str());
            f.push(format!("j.budget_type = {m}"));
        }
        let order = match q.sort {
            JobSort::Newest => "j.created_at DESC, j.id DESC",
            // Jobs without a deadline last, on both backends; the index `jobs_deadline` has
            // exactly these expressions, so a page is read in order.
            JobSort::Deadline => "(j.deadline_at IS NULL), j.deadline_at ASC, j.id ASC",
            JobSort::BudgetHigh => "j.budget_max DESC, j.id DESC",
            JobSort::Popular => "j.bid_count DESC, j.id DESC",
        };
        f.page(self, job_cols!(), "jobs j", order, (q.offset, q.limit), job_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn bid(&mut self, id: &BidId) -> Result<Option<Bid>> {
        let sql = concat!("SELECT ", bid_cols!(), " FROM bids b WHERE b.id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(bid_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn bids(&mut self, q: &BidQuery) -> Result<Page<Bid>> {
        let mut f = Filter::default();
        if let Some(job) = &q.job {
            let m = f.text(job.as_str());
            f.push(format!("b.job_id = {m}"));
        }
        if let Some(bidder) = &q.bidder {
            let m = f.text(bidder.as_str());
            f.push(format!("b.bidder_id = {m}"));
        }
        let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
        f.any_of("b.status", &statuses);
        let reviews: Vec<&str> = q.reviews.iter().map(|s| s.as_str()).collect();
        f.any_of("b.review", &reviews);
        f.page(self, bid_cols!(), "bids b", "b.created_at, b.id", (q.offset, q.limit), bid_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn bid_of(&mut self, job: &TaskId, bidder: &AccountId) -> Result<Option<Bid>> {
        let sql = concat!("SELECT ", bid_cols!(), " FROM bids b WHERE b.job_id = $1 AND b.bidder_id = $2");
        let row = db::query(sql)
            .bind(job.as_str())
            .bind(bidder.as_str())
            .fetch_optional(self.0.exec())
            .await
            .map_err(err)?;
        row.as_ref().map(bid_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn invitation(&mut self, job: &TaskId, provider: &AccountId) -> Result<Option<Invitation>> {
        let row = db::query(
            "SELECT id, job_id, requester_id, provider_id, created_at FROM invitations \
             WHERE job_id = $1 AND provider_id = $2",
        )
        .bind(job.as_str())
        .bind(provider.as_str())
        .fetch_optional(self.0.exec())
        .await
        .map_err(err)?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn invitations(
        &mut self,
        provider: &AccountId,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Invitation>> {
        let rows = db::query(
            "SELECT id, job_id, requester_id, provider_id, created_at FROM invitations WHERE provider_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(provider.as_str())
        .bind(limit_of(limit))
        .bind(limit_of(offset))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        let total: i64 = get(
            &db::query("SELECT COUNT(*) AS n FROM invitations WHERE provider_id = $1")
                .bind(provider.as_str())
                .fetch_one(self.0.exec())
                .await
                .map_err(err)?,
            "n",
        )?;
        let items = rows.iter().map(invitation_from_row).collect::<Result<_>>()?;
        Ok(Page { items, total: count(total) })
    }

    #[instrument(level = "debug", skip_all)]
    async fn skill_matches(&mut self, q: &MatchQuery) -> Result<Vec<Account>> {
        if q.skills.is_empty() {
            return Ok(Vec::new());
        }
        // Two statements whose plans do not depend on statistics: the candidates from the
        // skill index, then those accounts by primary key. One statement joining the two
        // was planned by PostgreSQL as a scan of every account when its statistics were
        // stale. The first has no DISTINCT and no bound LIMIT: with either, PostgreSQL's
        // generic plan for the prepared statement walked the whole `(account_id)` index.
        // The cap is this crate's number, formatted into the text; duplicates go here.
        let sql = format!(
            "SELECT account_id FROM account_skills WHERE skill IN ({}) LIMIT {}",
            marks(q.skills.len()),
            q.cap.saturating_mul(4)
        );
        let mut query = db::query(db::AssertSqlSafe(sql));
        for skill in &q.skills {
            query = query.bind(skill.as_str());
        }
        let mut ids: Vec<String> = query
            .fetch_all(self.0.exec())
            .await
            .map_err(err)?
            .iter()
            .map(|r| get(r, "account_id"))
            .collect::<Result<_>>()?;
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(usize::try_from(q.cap).unwrap_or(usize::MAX));
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {} FROM accounts a WHERE a.id IN ({}) AND {} AND a.id <> ${} AND (${} IS NULL OR a.kind = ${})",
                account_cols!(),
                marks(chunk.len()),
                not_banned!(),
                chunk.len() + 1,
                chunk.len() + 2,
                chunk.len() + 2,
            );
            let mut query = db::query(db::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            let rows = query
                .bind(q.exclude.as_str())
                .bind(q.kind.map(AccountKind::as_str))
                .fetch_all(self.0.exec())
                .await
                .map_err(err)?;
            for r in &rows {
                out.push(account_from_row(r)?);
            }
        }
        Ok(out)
    }

    #[instrument(level = "debug", skip_all)]
    async fn auto_bid_rule(&mut self, account: &AccountId) -> Result<Option<AutoBidRule>> {
        let row = db::query(
            "SELECT account_id, enabled, min_price, max_price, currency, categories, max_deadline_days, template, \
             updated_at FROM auto_bid_rules WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_optional(self.0.exec())
        .await
        .map_err(err)?;
        row.as_ref().map(rule_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn auto_bid_candidates(
        &mut self,
        currency: &Currency,
        min: i64,
        max: i64,
        category: Option<&str>,
        exclude: &AccountId,
        limit: u64,
    ) -> Result<Vec<AutoBidRule>> {
        // Categories are a JSON list of restricted tags, so `"tag"` matches one element. The
        // rules drive (through their index); each one's agent is then looked up by id: with
        // a join, SQLite's planner started from the accounts and read every agent.
        let sql = concat!(
            "SELECT r.account_id, r.enabled, r.min_price, r.max_price, r.currency, r.categories, \
             r.max_deadline_days, r.template, r.updated_at FROM auto_bid_rules r \
             WHERE r.enabled AND r.currency = $1 AND r.min_price <= $3 AND r.max_price >= $2 \
             AND (r.categories = '[]' OR ($4 IS NOT NULL AND r.categories LIKE $4)) AND r.account_id <> $5 \
             AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = r.account_id AND a.kind = 'agent' \
             AND (a.owner_id IS NULL OR a.owner_id <> $5) AND ",
            not_banned!(),
            ") ORDER BY r.updated_at, r.account_id LIMIT $6"
        );
        let rows = db::query(sql)
            .bind(currency.as_str())
            .bind(min)
            .bind(max)
            .bind(category.map(|c| format!("%\"{c}\"%")))
            .bind(exclude.as_str())
            .bind(limit_of(limit))
            .fetch_all(self.0.exec())
            .await
            .map_err(err)?;
        rows.iter().map(rule_from_row).collect()
    }
}

/// The rows of the term index for a job: its words and `#tag` for each tag.
async fn write_terms(tx: &mut Sql<InTx>, job: &Job, terms: &[String]) -> Result<()> {
    let mut all: Vec<String> = terms.to_vec();
    for t in &job.spec.tags {
        let tag = format!("#{t}");
        if !all.contains(&tag) {
            all.push(tag);
        }
    }
    for chunk in all.chunks(CHUNK / 2) {
        let sql = format!("INSERT INTO job_terms (term, job_id) VALUES {}", row_marks(chunk.len(), 2));
        let mut q = db::query(db::AssertSqlSafe(sql));
        for term in chunk {
            q = q.bind(term.as_str()).bind(job.id.as_str());
        }
        q.execute(tx.conn()).await.map_err(err)?;
    }
    Ok(())
}

// Rows are inserted and updated by separate statements that bind the same columns. One
// `INSERT … ON CONFLICT (id) DO UPDATE` for both was tried: `agora bench jobs` fell from
// 164–196 to 70–100 hirings/s on SQLite, and job creation took twice as long.
#[async_trait]
impl JobWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn insert_job(&mut self, j: &Job, terms: &[String]) -> Result<()> {
        db::query(
            "INSERT INTO jobs (id, requester_id, title, description, category, tags, requirements, budget_type, \
             budget_min, budget_max, currency, deadline_at, bid_limit, priority, executor_preference, privacy, \
             max_workers, award, status, bid_count, hired_count, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23)",
        )
        .bind(j.id.as_str())
        .bind(j.requester_id.as_str())
        .bind(&j.spec.title)
        .bind(&j.spec.description)
        .bind(j.spec.category.as_deref())
        .bind(to_json(&j.spec.tags)?)
        .bind(to_json(&j.spec.requirements)?)
        .bind(j.spec.budget_type.as_str())
        .bind(j.spec.budget_min)
        .bind(j.spec.budget_max)
        .bind(j.currency.as_str())
        .bind(j.spec.deadline.map(Timestamp::millis))
        .bind(i64::from(j.spec.bid_limit))
        .bind(j.spec.priority.as_str())
        .bind(j.spec.executor_preference.as_str())
        .bind(j.spec.privacy.as_str())
        .bind(i64::from(j.spec.max_workers))
        .bind(j.spec.award.as_str())
        .bind(j.status.as_str())
        .bind(j.bid_count)
        .bind(j.hired_count)
        .bind(j.created_at.millis())
        .bind(j.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        write_terms(self, j, terms).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn job_for_update(&mut self, id: &TaskId) -> Result<Option<Job>> {
        self.locked_by_id(job_cols!(), "jobs j", id.as_str(), job_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_job(&mut self, j: &Job, terms: Option<&[String]>) -> Result<()> {
        db::query(
            "UPDATE jobs SET title = $2, description = $3, category = $4, tags = $5, requirements = $6, \
             budget_type = $7, budget_min = $8, budget_max = $9, deadline_at = $10, bid_limit = $11, priority = $12, \
             executor_preference = $13, privacy = $14, max_workers = $15, award = $16, status = $17, \
             bid_count = $18, hired_count = $19, updated_at = $20 WHERE id = $1",
        )
        .bind(j.id.as_str())
        .bind(&j.spec.title)
        .bind(&j.spec.description)
        .bind(j.spec.category.as_deref())
        .bind(to_json(&j.spec.tags)?)
        .bind(to_json(&j.spec.requirements)?)
        .bind(j.spec.budget_type.as_str())
        .bind(j.spec.budget_min)
        .bind(j.spec.budget_max)
        .bind(j.spec.deadline.map(Timestamp::millis))
        .bind(i64::from(j.spec.bid_limit))
        .bind(j.spec.priority.as_str())
        .bind(j.spec.executor_preference.as_str())
        .bind(j.spec.privacy.as_str())
        .bind(i64::from(j.spec.max_workers))
        .bind(j.spec.award.as_str())
        .bind(j.status.as_str())
        .bind(j.bid_count)
        .bind(j.hired_count)
        .bind(j.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        if let Some(terms) = terms {
            db::query("DELETE FROM job_terms WHERE job_id = $1")
                .bind(j.id.as_str())
                .execute(self.conn())
                .await
                .map_err(err)?;
            write_terms(self, j, terms).await?;
        }
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_bid(&mut self, b: &Bid) -> Result<()> {
        db::query(
            "INSERT INTO bids (id, job_id, bidder_id, amount, currency, message, estimated_days, sample_links, \
             status, review, counter, history, reason, hire_task_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(b.id.as_str())
        .bind(b.job_id.as_str())
        .bind(b.bidder_id.as_str())
        .bind(b.amount)
        .bind(b.currency.as_str())
        .bind(&b.message)
        .bind(b.estimated_days.map(i64::from))
        .bind(to_json(&b.sample_links)?)
        .bind(b.status.as_str())
        .bind(b.review.as_str())
        .bind(opt_to_json(b.counter.as_ref())?)
        .bind(to_json(&b.history)?)
        .bind(b.reason.as_deref())
        .bind(b.hire_task_id.as_ref().map(TaskId::as_str))
        .bind(b.created_at.millis())
        .bind(b.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(db_err(Some(Conflict::Duplicate)))?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn bid_for_update(&mut self, id: &BidId) -> Result<Option<Bid>> {
        self.locked_by_id(bid_cols!(), "bids b", id.as_str(), bid_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_bid(&mut self, b: &Bid) -> Result<()> {
        db::query(
            "UPDATE bids SET amount = $2, message = $3, estimated_days = $4, sample_links = $5, status = $6, \
             review = $7, counter = $8, history = $9, reason = $10, hire_task_id = $11, updated_at = $12 WHERE id = $1",
        )
        .bind(b.id.as_str())
        .bind(b.amount)
        .bind(&b.message)
        .bind(b.estimated_days.map(i64::from))
        .bind(to_json(&b.sample_links)?)
        .bind(b.status.as_str())
        .bind(b.review.as_str())
        .bind(opt_to_json(b.counter.as_ref())?)
        .bind(to_json(&b.history)?)
        .bind(b.reason.as_deref())
        .bind(b.hire_task_id.as_ref().map(TaskId::as_str))
        .bind(b.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_invitation(&mut self, i: &Invitation) -> Result<bool> {
        let done = db::query(
            "INSERT INTO invitations (id, job_id, requester_id, provider_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (job_id, provider_id) DO NOTHING",
        )
        .bind(i.id.as_str())
        .bind(i.job_id.as_str())
        .bind(i.requester_id.as_str())
        .bind(i.provider_id.as_str())
        .bind(i.created_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn put_auto_bid_rule(&mut self, r: &AutoBidRule) -> Result<()> {
        db::query(
            "INSERT INTO auto_bid_rules (account_id, enabled, min_price, max_price, currency, categories, \
             max_deadline_days, template, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (account_id) DO UPDATE SET enabled = excluded.enabled, min_price = excluded.min_price, \
             max_price = excluded.max_price, currency = excluded.currency, categories = excluded.categories, \
             max_deadline_days = excluded.max_deadline_days, template = excluded.template, \
             updated_at = excluded.updated_at",
        )
        .bind(r.account_id.as_str())
        .bind(r.enabled)
        .bind(r.min_price)
        .bind(r.max_price)
        .bind(r.currency.as_str())
        .bind(to_json(&r.categories)?)
        .bind(r.max_deadline_days.map(i64::from))
        .bind(&r.template)
        .bind(r.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }
}

/// Keeps the skill index in step with an account's skills (called by the account writes).
pub(super) async fn index_skills(tx: &mut Sql<InTx>, account: &AccountId, skills: &[String]) -> Result<()> {
    db::query("DELETE FROM account_skills WHERE account_id = $1")
        .bind(account.as_str())
        .execute(tx.conn())
        .await
        .map_err(err)?;
    let mut unique: Vec<&str> = skills.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    for chunk in unique.chunks(CHUNK / 2) {
        let sql =
            format!("INSERT INTO account_skills (skill, account_id) VALUES {}", row_marks(chunk.len(), 2));
        let mut q = db::query(db::AssertSqlSafe(sql));
        for s in chunk {
            q = q.bind(*s).bind(account.as_str());
        }
        q.execute(tx.conn()).await.map_err(err)?;
    }
    Ok(())
}
