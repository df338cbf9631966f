//! The event log and its projection cursors.

use std::collections::HashMap;

use agora_core::{AccountId, EventId, event::EventType};
use agora_store::{Event, EventReads, EventWrites, NewEvent, Result, StoreError};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{CHUNK, corrupt, err, get, json_col, limit_of, marks_from, row_marks, time, to_json},
};
use crate::SKIP_LOCKED;
use crate::db;

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

impl<S: Source> Sql<S> {
    /// A page of the log after a position, never past the fence (see `log_fence`): `sql`
    /// reads positions above `$1`, at most `$2` of them, up to `$3`, for the account `$4` if
    /// given. Every read of the log by position goes through here.
    async fn fenced_page(
        &mut self,
        sql: &'static str,
        after: i64,
        limit: u64,
        account: Option<&str>,
    ) -> Result<Vec<DbRow>> {
        let fence = crate::log_fence(&mut self.0).await?;
        let mut q = db::query(sql).bind(after).bind(limit_of(limit)).bind(fence);
        if let Some(account) = account {
            q = q.bind(account);
        }
        q.fetch_all(self.0.exec()).await.map_err(err)
    }
}

#[async_trait]
impl<S: Source> EventReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn events_after(&mut self, after: i64, limit: u64) -> Result<Vec<Event>> {
        let sql = concat!(
            "SELECT ",
            event_cols!(),
            " FROM events WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2"
        );
        let rows = self.fenced_page(sql, after, limit, None).await?;
        rows.iter().map(event_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn events_with_audience_after(
        &mut self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(Event, Vec<AccountId>)>> {
        // One row per event and member.
        let sql = "SELECT e.seq, e.task_seq, e.id, e.type, e.actor_id, e.task_id, e.payload, e.created_at, \
                    a.account_id AS audience \
             FROM (SELECT seq FROM events WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2) p \
             JOIN events e ON e.seq = p.seq LEFT JOIN event_audience a ON a.seq = e.seq \
             ORDER BY e.seq, a.account_id";
        let rows = self.fenced_page(sql, after, limit, None).await?;
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
        let sql = "SELECT e.seq, e.task_seq, e.id, e.type, e.actor_id, e.task_id, e.payload, e.created_at \
             FROM event_audience a JOIN events e ON e.seq = a.seq \
             WHERE a.account_id = $4 AND a.seq > $1 AND a.seq <= $3 ORDER BY a.seq LIMIT $2";
        let rows = self.fenced_page(sql, after, limit, Some(account.as_str())).await?;
        rows.iter().map(event_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn last_event_seq(&mut self) -> Result<i64> {
        crate::log_end(&mut self.0).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn task_events(&mut self, task: &str) -> Result<Vec<Event>> {
        let sql = concat!("SELECT ", event_cols!(), " FROM events WHERE task_id = $1 ORDER BY seq");
        let rows = db::query(sql).bind(task).fetch_all(self.0.exec()).await.map_err(err)?;
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
        let row =
            db::query(db::AssertSqlSafe(sql)).bind(name).fetch_optional(self.conn()).await.map_err(err)?;
        row.map(|r| get(&r, "position")).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_cursor(&mut self, name: &str, position: i64) -> Result<()> {
        db::query("UPDATE event_cursors SET position = $2 WHERE name = $1")
            .bind(name)
            .bind(position)
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Writes the transaction's buffered events. Runs last, just before commit. The backend
/// numbers them (`number_events`: a counter row on SQLite, a sequence and a fence that
/// readers respect on PostgreSQL; docs/architecture.md, "The event log") and reads the
/// tasks' last numbers in the same statement ([`Numbering`]); then come the events and
/// their audiences, one statement each (inserts in chunks of at most [`CHUNK`] rows).
#[instrument(level = "debug", skip_all)]
pub(super) async fn flush(tx: &mut Sql<InTx>) -> Result<()> {
    if tx.0.events.is_empty() {
        return Ok(());
    }
    let events = std::mem::take(&mut tx.0.events);
    let mut tasks: Vec<&str> = events.iter().filter_map(|e| e.task_id.as_deref()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    // Positions, ascending, and every task held against other writers until commit, so that
    // reading each task's last number is race-free (the backend says how); the last numbers
    // of the first tasks come with the positions, the rest's are read here.
    let Numbering { seqs, task_seqs } = crate::number_events(&mut tx.0, events.len(), &tasks).await?;
    if seqs.len() != events.len() {
        return Err(StoreError::Backend(format!("{} positions for {} events", seqs.len(), events.len())));
    }
    let mut task_seqs = parse_task_seqs(task_seqs.as_deref())?;
    task_seqs.extend(last_task_seqs(tx, &tasks[folded(&tasks).len()..]).await?);
    let mut rows = Vec::with_capacity(events.len());
    for (e, &seq) in events.iter().zip(&seqs) {
        let task_seq = e.task_id.as_deref().map(|task| {
            let next = task_seqs.get(task).copied().unwrap_or(0) + 1;
            task_seqs.insert(task.to_owned(), next);
            next
        });
        rows.push((seq, task_seq, e));
    }
    for chunk in rows.chunks(CHUNK / 8) {
        let sql = format!(
            "INSERT INTO events (seq, task_seq, id, type, actor_id, task_id, payload, created_at) VALUES {}",
            row_marks(chunk.len(), 8)
        );
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (seq, task_seq, e) in chunk {
            q = q
                .bind(*seq)
                .bind(*task_seq)
                .bind(e.id.as_str())
                .bind(e.event_type.as_str())
                .bind(e.actor_id.as_ref().map(AccountId::as_str))
                .bind(e.task_id.as_deref())
                .bind(to_json(&e.payload)?)
                .bind(e.created_at.millis());
        }
        q.execute(tx.conn()).await.map_err(err)?;
    }
    let mut audience: Vec<(&str, i64)> =
        rows.iter().flat_map(|(seq, _, e)| e.audience.iter().map(move |a| (a.as_str(), *seq))).collect();
    audience.sort_unstable();
    audience.dedup();
    for chunk in audience.chunks(CHUNK / 2) {
        let sql =
            format!("INSERT INTO event_audience (account_id, seq) VALUES {}", row_marks(chunk.len(), 2));
        let mut q = db::query(db::AssertSqlSafe(sql));
        for (account, seq) in chunk {
            q = q.bind(*account).bind(*seq);
        }
        q.execute(tx.conn()).await.map_err(err)?;
    }
    Ok(())
}

/// What a backend's `number_events` answers, from one statement.
pub(crate) struct Numbering {
    /// The events' positions, ascending.
    pub(crate) seqs: Vec<i64>,
    /// The last `task_seq` of the [`folded`] tasks as a JSON object (task id → number; a
    /// task with no events yet is absent), or none without tasks: the column
    /// [`last_task_seqs_column`] makes.
    pub(crate) task_seqs: Option<String>,
}

/// The first of a flush's tasks, whose last numbers `number_events` reads in the statement
/// that numbers the events: as many as one statement binds ([`CHUNK`]).
pub(crate) fn folded<'a, 'b>(tasks: &'a [&'b str]) -> &'a [&'b str] {
    &tasks[..tasks.len().min(CHUNK)]
}

/// A column for the statement that numbers events: the last `task_seq` of `n` tasks bound
/// from `$first` on, as JSON object text by the backend's aggregate `agg` over
/// (`task_id`, `n`); `NULL` when there are none.
pub(crate) fn last_task_seqs_column(agg: &str, first: usize, n: usize) -> String {
    if n == 0 {
        return "NULL".to_owned();
    }
    format!("(SELECT {agg} FROM ({}) AS m)", last_task_seqs_sql(first, n))
}

/// The last `task_seq` of `n` tasks bound from `$first` on: rows of (`task_id`, `n`).
fn last_task_seqs_sql(first: usize, n: usize) -> String {
    format!(
        "SELECT task_id, MAX(task_seq) AS n FROM events WHERE task_id IN ({}) GROUP BY task_id",
        marks_from(first, n)
    )
}

fn parse_task_seqs(json: Option<&str>) -> Result<HashMap<String, i64>> {
    match json {
        None => Ok(HashMap::new()),
        Some(j) => serde_json::from_str(j).map_err(|e| corrupt("tasks' last event numbers", &e.to_string())),
    }
}

/// The last `task_seq` of each of `tasks` (those beyond the [`folded`] ones; absent: none
/// yet), in one query per chunk.
async fn last_task_seqs(tx: &mut Sql<InTx>, tasks: &[&str]) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for chunk in tasks.chunks(CHUNK) {
        let mut q = db::query(db::AssertSqlSafe(last_task_seqs_sql(1, chunk.len())));
        for task in chunk {
            q = q.bind(*task);
        }
        for r in q.fetch_all(tx.conn()).await.map_err(err)? {
            out.insert(get::<String>(&r, "task_id")?, get::<Option<i64>>(&r, "n")?.unwrap_or(0));
        }
    }
    Ok(out)
}
