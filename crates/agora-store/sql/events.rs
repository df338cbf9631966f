//! The event log and its projection cursors.

use std::collections::HashMap;

use agora_core::{AccountId, EventId, event::EventType};
use agora_store::{Event, EventReads, EventWrites, NewEvent, Result};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{corrupt, err, get, json_col, limit_of, time, to_json},
};
use crate::SKIP_LOCKED;

macro_rules! event_cols {
    () => {
        "seq, task_seq, id, type, actor_id, task_id, payload, created_at"
    };
}

pub(super) fn event_type(r: &DbRow, col: &str) -> Result<EventType> {
    let name: String = get(r, col)?;
    EventType::parse(&name).ok_or_else(|| corrupt("event type", &name))
}

pub(super) fn event_from_row(r: &DbRow) -> Result<Event> {
    Ok(Event {
        seq: get(r, "seq")?,
        task_seq: get(r, "task_seq")?,
        id: EventId::from_trusted(get(r, "id")?),
        event_type: event_type(r, "type")?,
        actor_id: get::<Option<String>>(r, "actor_id")?.map(AccountId::from_trusted),
        task_id: get(r, "task_id")?,
        payload: json_col(r, "payload")?,
        created_at: time(r, "created_at")?,
    })
}

#[async_trait]
impl<S: Source> EventReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn events_after(&mut self, after: i64, limit: u64) -> Result<Vec<Event>> {
        let sql = concat!("SELECT ", event_cols!(), " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows =
            sqlx::query(sql).bind(after).bind(limit_of(limit)).fetch_all(self.0.exec()).await.map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn events_with_audience_after(
        &mut self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>> {
        // One row per event and member.
        let rows = sqlx::query(
            "SELECT e.seq, e.task_seq, e.id, e.type, e.actor_id, e.task_id, e.payload, e.created_at, \
                    a.account_id AS audience \
             FROM (SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) p \
             JOIN events e ON e.seq = p.seq LEFT JOIN event_audience a ON a.seq = e.seq \
             ORDER BY e.seq, a.account_id",
        )
        .bind(after)
        .bind(limit_of(limit))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        let mut out: Vec<(Event, Vec<AccountId>)> = Vec::new();
        for r in &rows {
            let seq: i64 = get(r, "seq")?;
            if out.last().is_none_or(|(e, _)| e.seq != seq) {
                out.push((event_from_row(r)?, Vec::new()));
            }
            if let (Some(member), Some((_, audience))) =
                (get::<Option<String>>(r, "audience")?, out.last_mut())
            {
                audience.push(AccountId::from_trusted(member));
            }
        }
        Ok(out)
    }

    #[instrument(level = "debug", skip_all)]
    async fn account_events_after(
        &mut self,
        account: &AccountId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT e.seq, e.task_seq, e.id, e.type, e.actor_id, e.task_id, e.payload, e.created_at \
             FROM event_audience a JOIN events e ON e.seq = a.seq \
             WHERE a.account_id = $1 AND a.seq > $2 ORDER BY a.seq LIMIT $3",
        )
        .bind(account.as_str())
        .bind(after)
        .bind(limit_of(limit))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn last_event_seq(&mut self) -> Result<i64> {
        let row = sqlx::query("SELECT last_seq FROM event_counter WHERE id = 1")
            .fetch_one(self.0.exec())
            .await
            .map_err(err)?;
        get(&row, "last_seq")
    }

    #[instrument(level = "debug", skip_all)]
    async fn task_events(&mut self, task: &str) -> Result<Vec<Event>> {
        let sql = concat!("SELECT ", event_cols!(), " FROM events WHERE task_id = $1 ORDER BY seq");
        let rows = sqlx::query(sql).bind(task).fetch_all(self.0.exec()).await.map_err(err)?;
        rows.iter().map(event_from_row).collect()
    }
}

#[async_trait]
impl EventWrites for Sql<InTx> {
    async fn append_event(&mut self, event: &NewEvent) -> Result<()> {
        self.0.events.push(event.clone());
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn lock_cursor(&mut self, name: &str) -> Result<Option<i64>> {
        let sql = format!("SELECT position FROM event_cursors WHERE name = $1{SKIP_LOCKED}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.conn())
            .await
            .map_err(err)?;
        row.map(|r| get(&r, "position")).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_cursor(&mut self, name: &str, position: i64) -> Result<()> {
        sqlx::query("UPDATE event_cursors SET position = $2 WHERE name = $1")
            .bind(name)
            .bind(position)
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Writes the transaction's buffered events, numbered from the counter row. Runs last, just
/// before commit, so the counter's row lock is the last lock taken and is held only for this:
/// positions follow commit order and are gap-free (see docs/architecture.md, "The event log").
#[instrument(level = "debug", skip_all)]
pub(super) async fn flush(tx: &mut Sql<InTx>) -> Result<()> {
    if tx.0.events.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(tx.0.events.len()).unwrap_or(i64::MAX);
    let row =
        sqlx::query("UPDATE event_counter SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq")
            .bind(n)
            .fetch_one(tx.conn())
            .await
            .map_err(err)?;
    let last: i64 = get(&row, "last_seq")?;
    let events = std::mem::take(&mut tx.0.events);
    // Per-task numbers continue from the task's last event; the counter lock held since the
    // `UPDATE` above makes reading that last number race-free.
    let mut task_seqs: HashMap<&str, i64> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let seq = last - n + 1 + i64::try_from(i).unwrap_or(0);
        let task_seq = match e.task_id.as_deref() {
            None => None,
            Some(task) => {
                let next = match task_seqs.get(task) {
                    Some(n) => n + 1,
                    None => {
                        let row = sqlx::query("SELECT MAX(task_seq) AS n FROM events WHERE task_id = $1")
                            .bind(task)
                            .fetch_one(tx.conn())
                            .await
                            .map_err(err)?;
                        get::<Option<i64>>(&row, "n")?.unwrap_or(0) + 1
                    }
                };
                task_seqs.insert(task, next);
                Some(next)
            }
        };
        sqlx::query(
            "INSERT INTO events (seq, task_seq, id, type, actor_id, task_id, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(task_seq)
        .bind(e.id.as_str())
        .bind(e.event_type.as_str())
        .bind(e.actor_id.as_ref().map(AccountId::as_str))
        .bind(e.task_id.as_deref())
        .bind(to_json(&e.payload)?)
        .bind(e.created_at.millis())
        .execute(tx.conn())
        .await
        .map_err(err)?;
        let mut audience: Vec<&str> = e.audience.iter().map(AccountId::as_str).collect();
        audience.sort_unstable();
        audience.dedup();
        for account in audience {
            sqlx::query("INSERT INTO event_audience (account_id, seq) VALUES ($1, $2)")
                .bind(account)
                .bind(seq)
                .execute(tx.conn())
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}
