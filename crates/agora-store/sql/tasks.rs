//! Tasks of every kind, their messages, and chats.

use agora_core::{
    AccountId, ChatId, HoldId, MessageId, ServiceId, TaskId, Timestamp,
    money::Currency,
    task::{TaskKind, TaskStatus},
    work::TaskTerms,
};
use agora_store::{Chat, Due, Page, Result, Task, TaskMessage, TaskQuery, TaskReads, TaskWrites};
use async_trait::async_trait;
use serde_json::Value;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{
        CHUNK, corrupt, count, err, get, json_col, limit_of, marks, opt_json, opt_time, opt_to_json, time,
        to_json,
    },
};
use crate::SKIP_LOCKED;
use crate::db;

macro_rules! task_cols {
    () => {
        "id, kind, status, requester_id, assignee_id, title, description, input, output, details, progress, \
         price, currency, hold_id, chat_id, service_id, lease_expires_at, deadline_at, delivered_at, \
         auto_accept_at, created_at, updated_at, webhook_url, revision_due_at"
    };
}

macro_rules! chat_cols {
    () => {
        "id, requester_id, agent_id, messages, open_task_id, turns, created_at, updated_at"
    };
}

fn task_from_row(r: &DbRow) -> Result<Task> {
    let kind: String = get(r, "kind")?;
    let status: String = get(r, "status")?;
    let id: String = get(r, "id")?;
    let kind = TaskKind::parse(&kind).ok_or_else(|| corrupt("task kind", &kind))?;
    let (terms, error) = TaskTerms::from_details(kind, json_col(r, "details")?)
        .map_err(|e| corrupt(&format!("terms of task {id}"), &e))?;
    let id_of = |col: &str| -> Result<Option<String>> { get(r, col) };
    Ok(Task {
        id: TaskId::from_trusted(id),
        kind,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status", &status))?,
        requester_id: AccountId::from_trusted(get(r, "requester_id")?),
        assignee_id: id_of("assignee_id")?.map(AccountId::from_trusted),
        title: get(r, "title")?,
        description: get(r, "description")?,
        input: Some(json_col::<Value>(r, "input")?).filter(|v| !v.is_null()),
        output: opt_json(r, "output")?,
        terms,
        error,
        progress: opt_json(r, "progress")?,
        price: get(r, "price")?,
        currency: id_of("currency")?.map(Currency::from_trusted),
        hold_id: id_of("hold_id")?.map(HoldId::from_trusted),
        chat_id: id_of("chat_id")?.map(ChatId::from_trusted),
        service_id: id_of("service_id")?.map(ServiceId::from_trusted),
        webhook_url: id_of("webhook_url")?,
        lease_expires_at: opt_time(r, "lease_expires_at")?,
        deadline_at: opt_time(r, "deadline_at")?,
        revision_due_at: opt_time(r, "revision_due_at")?,
        delivered_at: opt_time(r, "delivered_at")?,
        auto_accept_at: opt_time(r, "auto_accept_at")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn chat_from_row(r: &DbRow) -> Result<Chat> {
    Ok(Chat {
        id: ChatId::from_trusted(get(r, "id")?),
        requester_id: AccountId::from_trusted(get(r, "requester_id")?),
        agent_id: AccountId::from_trusted(get(r, "agent_id")?),
        messages: json_col(r, "messages")?,
        open_task_id: get::<Option<String>>(r, "open_task_id")?.map(TaskId::from_trusted),
        turns: get(r, "turns")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn details(t: &Task) -> Result<String> {
    to_json(&t.terms.to_details(t.error.as_deref()))
}

#[async_trait]
impl<S: Source> TaskReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn task(&mut self, id: &TaskId) -> Result<Option<Task>> {
        let sql = concat!("SELECT ", task_cols!(), " FROM tasks WHERE id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn tasks(&mut self, q: &TaskQuery) -> Result<Page<Task>> {
        // Only constants are formatted into the text; every value is a bound parameter.
        let who = if q.either {
            "(requester_id = $1 OR assignee_id = $2)"
        } else {
            "($1 IS NULL OR requester_id = $1) AND ($2 IS NULL OR assignee_id = $2)"
        };
        let filter = format!(
            "{who} AND ($3 IS NULL OR ',' || $3 || ',' LIKE '%,' || status || ',%') \
             AND ($4 IS NULL OR ',' || $4 || ',' LIKE '%,' || kind || ',%') \
             AND (NOT $5 OR assignee_id IS NOT NULL)"
        );
        let statuses = (!q.statuses.is_empty())
            .then(|| q.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
        let requester = q.requester.as_ref().map(AccountId::as_str);
        let assignee = q.assignee.as_ref().map(AccountId::as_str);
        let kinds =
            (!q.kinds.is_empty()).then(|| q.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
        let sql = format!(
            "SELECT {} FROM tasks WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7",
            task_cols!()
        );
        let rows = db::query(db::AssertSqlSafe(sql))
            .bind(requester)
            .bind(assignee)
            .bind(statuses.as_deref())
            .bind(kinds.as_deref())
            .bind(q.assigned_only)
            .bind(limit_of(q.limit))
            .bind(limit_of(q.offset))
            .fetch_all(self.0.exec())
            .await
            .map_err(err)?;
        let total: i64 = get(
            &db::query(db::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM tasks WHERE {filter}")))
                .bind(requester)
                .bind(assignee)
                .bind(statuses.as_deref())
                .bind(kinds.as_deref())
                .bind(q.assigned_only)
                .fetch_one(self.0.exec())
                .await
                .map_err(err)?,
            "n",
        )?;
        Ok(Page { items: rows.iter().map(task_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    #[instrument(level = "debug", skip_all)]
    async fn task_messages(&mut self, id: &TaskId) -> Result<Vec<TaskMessage>> {
        let rows = db::query(
            "SELECT id, task_id, author_id, body, created_at FROM task_messages WHERE task_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(id.as_str())
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(TaskMessage {
                    id: MessageId::from_trusted(get(r, "id")?),
                    task_id: TaskId::from_trusted(get(r, "task_id")?),
                    author_id: AccountId::from_trusted(get(r, "author_id")?),
                    body: get(r, "body")?,
                    created_at: time(r, "created_at")?,
                })
            })
            .collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn in_progress_count(&mut self, agent: &AccountId) -> Result<i64> {
        let row =
            db::query("SELECT COUNT(*) AS n FROM tasks WHERE assignee_id = $1 AND status = 'in_progress'")
                .bind(agent.as_str())
                .fetch_one(self.0.exec())
                .await
                .map_err(err)?;
        get(&row, "n")
    }

    #[instrument(level = "debug", skip_all)]
    async fn in_progress_counts(&mut self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>> {
        let mut out = Vec::new();
        for chunk in accounts.chunks(CHUNK) {
            let sql = format!(
                "SELECT assignee_id, COUNT(*) AS n FROM tasks WHERE status = 'in_progress' \
                 AND assignee_id IN ({}) GROUP BY assignee_id",
                marks(chunk.len())
            );
            let mut query = db::query(db::AssertSqlSafe(sql));
            for a in chunk {
                query = query.bind(a.as_str());
            }
            for r in query.fetch_all(self.0.exec()).await.map_err(err)? {
                out.push((AccountId::from_trusted(get(&r, "assignee_id")?), get(&r, "n")?));
            }
        }
        Ok(out)
    }

    #[instrument(level = "debug", skip_all)]
    async fn held_tasks(&mut self, agent: &AccountId) -> Result<Vec<TaskId>> {
        let rows = db::query(
            "SELECT id FROM tasks WHERE status IN ('queued', 'in_progress') \
             AND (assignee_id = $1 OR assignee_id IN (SELECT id FROM accounts WHERE owner_id = $1)) \
             ORDER BY created_at, id",
        )
        .bind(agent.as_str())
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        rows.iter().map(|r| Ok(TaskId::from_trusted(get(r, "id")?))).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn with_queued_work(&mut self, agents: &[AccountId]) -> Result<Vec<AccountId>> {
        let mut found = Vec::new();
        for chunk in agents.chunks(CHUNK) {
            let sql = format!(
                "SELECT DISTINCT assignee_id FROM tasks WHERE status = 'queued' AND assignee_id IN ({})",
                marks(chunk.len())
            );
            let mut query = db::query(db::AssertSqlSafe(sql));
            for a in chunk {
                query = query.bind(a.as_str());
            }
            for r in query.fetch_all(self.0.exec()).await.map_err(err)? {
                found.push(AccountId::from_trusted(get(&r, "assignee_id")?));
            }
        }
        Ok(found)
    }

    #[instrument(level = "debug", skip_all)]
    async fn chat(&mut self, id: &ChatId) -> Result<Option<Chat>> {
        let sql = concat!("SELECT ", chat_cols!(), " FROM chats WHERE id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(chat_from_row).transpose()
    }
}

#[async_trait]
impl TaskWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn insert_task(&mut self, t: &Task) -> Result<()> {
        db::query(concat!(
            "INSERT INTO tasks (",
            task_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
             $20, $21, $22, $23, $24)"
        ))
        .bind(t.id.as_str())
        .bind(t.kind.as_str())
        .bind(t.status.as_str())
        .bind(t.requester_id.as_str())
        .bind(t.assignee_id.as_ref().map(AccountId::as_str))
        .bind(&t.title)
        .bind(&t.description)
        .bind(to_json(&t.input.clone().unwrap_or(Value::Null))?)
        .bind(opt_to_json(t.output.as_ref())?)
        .bind(details(t)?)
        .bind(opt_to_json(t.progress.as_ref())?)
        .bind(t.price)
        .bind(t.currency.as_ref().map(Currency::as_str))
        .bind(t.hold_id.as_ref().map(HoldId::as_str))
        .bind(t.chat_id.as_ref().map(ChatId::as_str))
        .bind(t.service_id.as_ref().map(ServiceId::as_str))
        .bind(t.lease_expires_at.map(Timestamp::millis))
        .bind(t.deadline_at.map(Timestamp::millis))
        .bind(t.delivered_at.map(Timestamp::millis))
        .bind(t.auto_accept_at.map(Timestamp::millis))
        .bind(t.created_at.millis())
        .bind(t.updated_at.millis())
        .bind(t.webhook_url.as_deref())
        .bind(t.revision_due_at.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn task_for_update(&mut self, id: &TaskId) -> Result<Option<Task>> {
        self.locked_by_id(task_cols!(), "tasks", id.as_str(), task_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_task(&mut self, t: &Task) -> Result<()> {
        db::query(
            "UPDATE tasks SET status = $2, assignee_id = $3, output = $4, details = $5, progress = $6, \
             hold_id = $7, lease_expires_at = $8, deadline_at = $9, delivered_at = $10, auto_accept_at = $11, \
             updated_at = $12, revision_due_at = $13 WHERE id = $1",
        )
        .bind(t.id.as_str())
        .bind(t.status.as_str())
        .bind(t.assignee_id.as_ref().map(AccountId::as_str))
        .bind(opt_to_json(t.output.as_ref())?)
        .bind(details(t)?)
        .bind(opt_to_json(t.progress.as_ref())?)
        .bind(t.hold_id.as_ref().map(HoldId::as_str))
        .bind(t.lease_expires_at.map(Timestamp::millis))
        .bind(t.deadline_at.map(Timestamp::millis))
        .bind(t.delivered_at.map(Timestamp::millis))
        .bind(t.auto_accept_at.map(Timestamp::millis))
        .bind(t.updated_at.millis())
        .bind(t.revision_due_at.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn next_queued(&mut self, agent: &AccountId) -> Result<Option<Task>> {
        let sql = format!(
            "SELECT {} FROM tasks WHERE assignee_id = $1 AND status = 'queued' \
             ORDER BY created_at, id LIMIT 1{SKIP_LOCKED}",
            task_cols!()
        );
        let row = db::query(db::AssertSqlSafe(sql))
            .bind(agent.as_str())
            .fetch_optional(self.conn())
            .await
            .map_err(err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn due_task(
        &mut self,
        due: Due,
        now: Timestamp,
        after: Option<&(Timestamp, TaskId)>,
    ) -> Result<Option<Task>> {
        let (status, col) = match due {
            Due::LeaseExpired => ("in_progress", "lease_expires_at"),
        };
        // Constants only; the times and the id are bound.
        let sql = format!(
            "SELECT {} FROM tasks WHERE status = '{status}' AND {col} <= $1 \
             AND ({col} > $2 OR ({col} = $2 AND id > $3)) ORDER BY {col}, id LIMIT 1{SKIP_LOCKED}",
            task_cols!()
        );
        let (after_at, after_id) = after.map_or((i64::MIN, ""), |(t, id)| (t.millis(), id.as_str()));
        let row = db::query(db::AssertSqlSafe(sql))
            .bind(now.millis())
            .bind(after_at)
            .bind(after_id)
            .fetch_optional(self.conn())
            .await
            .map_err(err)?;
        row.as_ref().map(task_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_task_message(&mut self, m: &TaskMessage) -> Result<()> {
        db::query("INSERT INTO task_messages (id, task_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(m.id.as_str())
            .bind(m.task_id.as_str())
            .bind(m.author_id.as_str())
            .bind(&m.body)
            .bind(m.created_at.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_chat(&mut self, c: &Chat) -> Result<()> {
        db::query(concat!("INSERT INTO chats (", chat_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(c.id.as_str())
            .bind(c.requester_id.as_str())
            .bind(c.agent_id.as_str())
            .bind(to_json(&c.messages)?)
            .bind(c.open_task_id.as_ref().map(TaskId::as_str))
            .bind(c.turns)
            .bind(c.created_at.millis())
            .bind(c.updated_at.millis())
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn chat_for_update(&mut self, id: &ChatId) -> Result<Option<Chat>> {
        self.locked_by_id(chat_cols!(), "chats", id.as_str(), chat_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_chat(&mut self, c: &Chat) -> Result<()> {
        db::query(
            "UPDATE chats SET messages = $2, open_task_id = $3, turns = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(to_json(&c.messages)?)
        .bind(c.open_task_id.as_ref().map(TaskId::as_str))
        .bind(c.turns)
        .bind(c.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    fn wake(&mut self, agent: &AccountId) {
        if !self.0.wakes.contains(agent) {
            self.0.wakes.push(agent.clone());
        }
    }
}
