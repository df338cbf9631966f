//! Chores: durable background work.

use agora_core::{ChoreId, Timestamp};
use agora_store::{Chore, ChoreCounts, ChoreReads, ChoreStatus, ChoreWrites, NewChore, Result};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{corrupt, count, err, get, json_col, limit_of, opt_time, time, to_json},
};
use crate::SKIP_LOCKED;
use crate::db;

macro_rules! chore_cols {
    () => {
        "id, kind, key, payload, run_at, status, attempts, max_attempts, last_error, claim_token, created_at, updated_at"
    };
}

fn chore_from_row(r: &DbRow) -> Result<Chore> {
    let status: String = get(r, "status")?;
    Ok(Chore {
        id: ChoreId::from_trusted(get(r, "id")?),
        kind: get(r, "kind")?,
        key: get(r, "key")?,
        payload: json_col(r, "payload")?,
        run_at: time(r, "run_at")?,
        status: ChoreStatus::parse(&status).ok_or_else(|| corrupt("chore status", &status))?,
        attempts: get(r, "attempts")?,
        max_attempts: get(r, "max_attempts")?,
        last_error: get(r, "last_error")?,
        claim_token: get(r, "claim_token")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

#[async_trait]
impl<S: Source> ChoreReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn chore_counts(&mut self) -> Result<ChoreCounts> {
        let rows = db::query("SELECT status, COUNT(*) AS n FROM chores GROUP BY status")
            .fetch_all(self.0.exec())
            .await
            .map_err(err)?;
        let mut counts = ChoreCounts::default();
        for r in &rows {
            let status: String = get(r, "status")?;
            let n = count(get(r, "n")?);
            match ChoreStatus::parse(&status) {
                Some(ChoreStatus::Queued) => counts.queued = n,
                Some(ChoreStatus::Running) => counts.running = n,
                Some(ChoreStatus::Failed) => counts.failed = n,
                None => return Err(corrupt("chore status", &status)),
            }
        }
        Ok(counts)
    }

    #[instrument(level = "debug", skip_all)]
    async fn chore_by_key(&mut self, key: &str) -> Result<Option<Chore>> {
        let sql = concat!("SELECT ", chore_cols!(), " FROM chores WHERE key = $1");
        let row = db::query(sql).bind(key).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(chore_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn next_chore_at(&mut self) -> Result<Option<Timestamp>> {
        let row = db::query("SELECT MIN(run_at) AS at FROM chores WHERE status = 'queued'")
            .fetch_one(self.0.exec())
            .await
            .map_err(err)?;
        opt_time(&row, "at")
    }
}

#[async_trait]
impl ChoreWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn schedule_chore(&mut self, c: &NewChore, now: Timestamp) -> Result<Chore> {
        let sql = concat!(
            "INSERT INTO chores (id, kind, key, payload, run_at, status, attempts, max_attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7) \
             ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, payload = excluded.payload, \
             run_at = excluded.run_at, status = 'queued', attempts = 0, max_attempts = excluded.max_attempts, \
             last_error = NULL, claim_token = NULL, lease_until = NULL, updated_at = excluded.updated_at \
             RETURNING ",
            chore_cols!()
        );
        let row = db::query(sql)
            .bind(ChoreId::generate().as_str())
            .bind(&c.kind)
            .bind(c.key.as_deref())
            .bind(to_json(&c.payload)?)
            .bind(c.run_at.millis())
            .bind(c.max_attempts)
            .bind(now.millis())
            .fetch_one(self.conn())
            .await
            .map_err(err)?;
        self.0.chores = true;
        chore_from_row(&row)
    }

    #[instrument(level = "debug", skip_all)]
    async fn cancel_chore(&mut self, key: &str) -> Result<bool> {
        let done = db::query("DELETE FROM chores WHERE key = $1 AND status <> 'running'")
            .bind(key)
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn claim_chores(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        token: &str,
        limit: u64,
    ) -> Result<Vec<Chore>> {
        let sql = format!(
            "UPDATE chores SET status = 'running', attempts = attempts + 1, claim_token = $1, lease_until = $2, \
             updated_at = $3 WHERE id IN ( \
             SELECT id FROM chores WHERE (status = 'queued' AND run_at <= $3) \
             OR (status = 'running' AND lease_until <= $3) ORDER BY run_at, id LIMIT $4{SKIP_LOCKED}) \
             RETURNING {}",
            chore_cols!()
        );
        let rows = db::query(db::AssertSqlSafe(sql))
            .bind(token)
            .bind(lease_until.millis())
            .bind(now.millis())
            .bind(limit_of(limit))
            .fetch_all(self.conn())
            .await
            .map_err(err)?;
        rows.iter().map(chore_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn finish_chore(&mut self, id: &ChoreId, token: &str) -> Result<bool> {
        let done = db::query("DELETE FROM chores WHERE id = $1 AND claim_token = $2")
            .bind(id.as_str())
            .bind(token)
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn retry_chore(
        &mut self,
        id: &ChoreId,
        token: &str,
        run_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let done = db::query(
            "UPDATE chores SET status = $3, run_at = COALESCE($4, run_at), last_error = $5, claim_token = NULL, \
             lease_until = NULL, updated_at = $6 WHERE id = $1 AND claim_token = $2",
        )
        .bind(id.as_str())
        .bind(token)
        .bind(if run_at.is_some() { ChoreStatus::Queued } else { ChoreStatus::Failed }.as_str())
        .bind(run_at.map(Timestamp::millis))
        .bind(error)
        .bind(now.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        if run_at.is_some() {
            self.0.chores = true;
        }
        Ok(done.rows_affected() == 1)
    }
}
