//! Idempotency records.

use agora_core::{AccountId, Timestamp};
use agora_store::{Conflict, IdempotencyReads, IdempotencyRecord, IdempotencyWrites, Result, StoreError};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    InTx, Source, Sql,
    rows::{corrupt, db_err, err, get, time},
};
use crate::db;

#[async_trait]
impl<S: Source> IdempotencyReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn idempotency_record(
        &mut self,
        account: &AccountId,
        key: &str,
        not_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = db::query(
            "SELECT request_hash, status, body, created_at FROM idempotency_keys \
             WHERE account_id = $1 AND idem_key = $2 AND created_at >= $3",
        )
        .bind(account.as_str())
        .bind(key)
        .bind(not_before.millis())
        .fetch_optional(self.0.exec())
        .await
        .map_err(err)?;
        row.map(|r| {
            let status: i64 = get(&r, "status")?;
            Ok(IdempotencyRecord {
                account_id: account.clone(),
                key: key.to_owned(),
                request_hash: get(&r, "request_hash")?,
                status: u16::try_from(status).map_err(|_| corrupt("status", &status.to_string()))?,
                body: get(&r, "body")?,
                created_at: time(&r, "created_at")?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl IdempotencyWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn insert_idempotency_record(
        &mut self,
        r: &IdempotencyRecord,
        expired_before: Timestamp,
    ) -> Result<()> {
        let done = db::query(
            "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account_id, idem_key) DO UPDATE SET request_hash = excluded.request_hash, \
             status = excluded.status, body = excluded.body, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < $7",
        )
        .bind(r.account_id.as_str())
        .bind(&r.key)
        .bind(&r.request_hash)
        .bind(i64::from(r.status))
        .bind(&r.body)
        .bind(r.created_at.millis())
        .bind(expired_before.millis())
        .execute(self.conn())
        .await
        .map_err(db_err(Some(Conflict::IdempotencyKey)))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::IdempotencyKey));
        }
        Ok(())
    }
}
