//! Webhook endpoints, deliveries and their attempts, and notifications.

use std::collections::HashMap;

use agora_core::{AccountId, DeliveryId, EventId, NotificationId, Timestamp, WebhookId};
use agora_store::{
    DeliveryAttempt, DeliveryJob, DeliveryStatus, Event, Notification, Page, Result, WebhookDelivery,
    WebhookEndpoint, WebhookReads, WebhookWrites,
};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    events::{event_from_row, event_type},
    rows::{CHUNK, corrupt, count, err, get, json_col, limit_of, marks, opt_time, row_marks, time, to_json},
};
use crate::SKIP_LOCKED;
use crate::db;

macro_rules! endpoint_cols {
    () => {
        "id, account_id, url, description, event_types, secret, active, disabled_reason, failing_since, \
         created_at, updated_at, previous_secret, previous_secret_until"
    };
}

macro_rules! delivery_cols {
    () => {
        "id, endpoint_id, account_id, url, event_seq, event_type, task_id, status, attempts, round_attempts, \
         next_attempt_at, last_status_code, last_error, last_attempt_at, delivered_at, created_at, event_id"
    };
}

macro_rules! notification_cols {
    () => {
        "id, account_id, event_seq, type, title, message, link, read_at, created_at"
    };
}

fn endpoint_from_row(r: &DbRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: WebhookId::from_trusted(get(r, "id")?),
        account_id: AccountId::from_trusted(get(r, "account_id")?),
        url: get(r, "url")?,
        description: get(r, "description")?,
        event_types: json_col(r, "event_types")?,
        secret: get(r, "secret")?,
        previous_secret: get(r, "previous_secret")?,
        previous_secret_until: opt_time(r, "previous_secret_until")?,
        active: get(r, "active")?,
        disabled_reason: get(r, "disabled_reason")?,
        failing_since: opt_time(r, "failing_since")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

fn delivery_from_row(r: &DbRow) -> Result<WebhookDelivery> {
    let status: String = get(r, "status")?;
    Ok(WebhookDelivery {
        id: DeliveryId::from_trusted(get(r, "id")?),
        endpoint_id: get::<Option<String>>(r, "endpoint_id")?.map(WebhookId::from_trusted),
        account_id: AccountId::from_trusted(get(r, "account_id")?),
        url: get(r, "url")?,
        event_seq: get(r, "event_seq")?,
        event_type: event_type(r, "event_type")?,
        task_id: get(r, "task_id")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?,
        attempts: get(r, "attempts")?,
        round_attempts: get(r, "round_attempts")?,
        next_attempt_at: time(r, "next_attempt_at")?,
        last_status_code: get(r, "last_status_code")?,
        last_error: get(r, "last_error")?,
        last_attempt_at: opt_time(r, "last_attempt_at")?,
        delivered_at: opt_time(r, "delivered_at")?,
        created_at: time(r, "created_at")?,
        event_id: EventId::from_trusted(get(r, "event_id")?),
    })
}

fn notification_from_row(r: &DbRow) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId::from_trusted(get(r, "id")?),
        account_id: AccountId::from_trusted(get(r, "account_id")?),
        event_seq: get(r, "event_seq")?,
        kind: event_type(r, "type")?,
        title: get(r, "title")?,
        message: get(r, "message")?,
        link: get(r, "link")?,
        read_at: opt_time(r, "read_at")?,
        created_at: time(r, "created_at")?,
    })
}

#[async_trait]
impl<S: Source> WebhookReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn webhook_endpoints(&mut self, account: &AccountId) -> Result<Vec<WebhookEndpoint>> {
        let sql = concat!(
            "SELECT ",
            endpoint_cols!(),
            " FROM webhook_endpoints WHERE account_id = $1 ORDER BY created_at, id"
        );
        let rows = db::query(sql).bind(account.as_str()).fetch_all(self.0.exec()).await.map_err(err)?;
        rows.iter().map(endpoint_from_row).collect()
    }

    #[instrument(level = "debug", skip_all)]
    async fn webhook_endpoint(&mut self, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let sql = concat!("SELECT ", endpoint_cols!(), " FROM webhook_endpoints WHERE id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn active_endpoints(&mut self, accounts: &[AccountId]) -> Result<Vec<WebhookEndpoint>> {
        let mut out = Vec::new();
        for chunk in accounts.chunks(CHUNK) {
            let sql = format!(
                "SELECT {} FROM webhook_endpoints WHERE active AND account_id IN ({})",
                endpoint_cols!(),
                marks(chunk.len())
            );
            let mut q = db::query(db::AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.as_str());
            }
            for r in q.fetch_all(self.0.exec()).await.map_err(err)? {
                out.push(endpoint_from_row(&r)?);
            }
        }
        Ok(out)
    }

    #[instrument(level = "debug", skip_all)]
    async fn task_webhook_urls(&mut self, tasks: &[String]) -> Result<Vec<(String, AccountId, String)>> {
        let mut out = Vec::new();
        for chunk in tasks.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, requester_id, webhook_url FROM tasks WHERE webhook_url IS NOT NULL AND id IN ({})",
                marks(chunk.len())
            );
            let mut q = db::query(db::AssertSqlSafe(sql));
            for t in chunk {
                q = q.bind(t.as_str());
            }
            for r in q.fetch_all(self.0.exec()).await.map_err(err)? {
                out.push((
                    get(&r, "id")?,
                    AccountId::from_trusted(get(&r, "requester_id")?),
                    get(&r, "webhook_url")?,
                ));
            }
        }
        Ok(out)
    }

    #[instrument(level = "debug", skip_all)]
    async fn deliveries(
        &mut self,
        endpoint: &WebhookId,
        status: Option<DeliveryStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WebhookDelivery>> {
        let filter = "endpoint_id = $1 AND ($2 IS NULL OR status = $2)";
        let status = status.map(DeliveryStatus::as_str);
        let rows = db::query(db::AssertSqlSafe(format!(
            "SELECT {} FROM webhook_deliveries WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            delivery_cols!()
        )))
        .bind(endpoint.as_str())
        .bind(status)
        .bind(limit_of(limit))
        .bind(limit_of(offset))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        let total: i64 = get(
            &db::query(db::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE {filter}"
            )))
            .bind(endpoint.as_str())
            .bind(status)
            .fetch_one(self.0.exec())
            .await
            .map_err(err)?,
            "n",
        )?;
        Ok(Page { items: rows.iter().map(delivery_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    #[instrument(level = "debug", skip_all)]
    async fn delivery(&mut self, id: &DeliveryId) -> Result<Option<WebhookDelivery>> {
        let sql = concat!("SELECT ", delivery_cols!(), " FROM webhook_deliveries WHERE id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn delivery_attempts(&mut self, ids: &[DeliveryId]) -> Result<Vec<DeliveryAttempt>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT delivery_id, attempt, at, status_code, duration_ms, error FROM webhook_attempts \
                 WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
                marks(chunk.len())
            );
            let mut q = db::query(db::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(self.0.exec()).await.map_err(err)? {
                out.push(DeliveryAttempt {
                    delivery_id: DeliveryId::from_trusted(get(&r, "delivery_id")?),
                    attempt: get(&r, "attempt")?,
                    at: time(&r, "at")?,
                    status_code: get(&r, "status_code")?,
                    duration_ms: get(&r, "duration_ms")?,
                    error: get(&r, "error")?,
                });
            }
        }
        Ok(out)
    }

    #[instrument(level = "debug", skip_all)]
    async fn pending_deliveries(&mut self) -> Result<u64> {
        let row = db::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(self.0.exec())
            .await
            .map_err(err)?;
        Ok(count(get(&row, "n")?))
    }

    #[instrument(level = "debug", skip_all)]
    async fn notifications(
        &mut self,
        account: &AccountId,
        unread_only: bool,
        offset: u64,
        limit: u64,
    ) -> Result<(Page<Notification>, u64)> {
        let filter = if unread_only { "account_id = $1 AND read_at IS NULL" } else { "account_id = $1" };
        let rows = db::query(db::AssertSqlSafe(format!(
            "SELECT {} FROM notifications WHERE {filter} ORDER BY event_seq DESC, id DESC LIMIT $2 OFFSET $3",
            notification_cols!()
        )))
        .bind(account.as_str())
        .bind(limit_of(limit))
        .bind(limit_of(offset))
        .fetch_all(self.0.exec())
        .await
        .map_err(err)?;
        let row = db::query(
            "SELECT COUNT(*) AS total, COUNT(read_at) AS read FROM notifications WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_one(self.0.exec())
        .await
        .map_err(err)?;
        let total: i64 = get(&row, "total")?;
        let read: i64 = get(&row, "read")?;
        let unread = count(total - read);
        let listed = if unread_only { unread } else { count(total) };
        Ok((
            Page { items: rows.iter().map(notification_from_row).collect::<Result<_>>()?, total: listed },
            unread,
        ))
    }
}

#[async_trait]
impl WebhookWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn insert_webhook_endpoint(&mut self, w: &WebhookEndpoint) -> Result<()> {
        db::query(concat!(
            "INSERT INTO webhook_endpoints (",
            endpoint_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(w.id.as_str())
        .bind(w.account_id.as_str())
        .bind(&w.url)
        .bind(&w.description)
        .bind(to_json(&w.event_types)?)
        .bind(&w.secret)
        .bind(w.active)
        .bind(w.disabled_reason.as_deref())
        .bind(w.failing_since.map(Timestamp::millis))
        .bind(w.created_at.millis())
        .bind(w.updated_at.millis())
        .bind(w.previous_secret.as_deref())
        .bind(w.previous_secret_until.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn webhook_endpoint_for_update(&mut self, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        self.locked_by_id(endpoint_cols!(), "webhook_endpoints", id.as_str(), endpoint_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_webhook_endpoint(&mut self, w: &WebhookEndpoint) -> Result<()> {
        db::query(
            "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, secret = $5, active = $6, \
             disabled_reason = $7, failing_since = $8, updated_at = $9, previous_secret = $10, \
             previous_secret_until = $11 WHERE id = $1",
        )
        .bind(w.id.as_str())
        .bind(&w.url)
        .bind(&w.description)
        .bind(to_json(&w.event_types)?)
        .bind(&w.secret)
        .bind(w.active)
        .bind(w.disabled_reason.as_deref())
        .bind(w.failing_since.map(Timestamp::millis))
        .bind(w.updated_at.millis())
        .bind(w.previous_secret.as_deref())
        .bind(w.previous_secret_until.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_webhook_endpoint(&mut self, id: &WebhookId) -> Result<()> {
        // The endpoint first, as every writer of its deliveries locks it first.
        self.webhook_endpoint_for_update(id).await?;
        for sql in [
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            "DELETE FROM webhook_endpoints WHERE id = $1",
        ] {
            db::query(sql).bind(id.as_str()).execute(self.conn()).await.map_err(err)?;
        }
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_deliveries(&mut self, deliveries: &[WebhookDelivery]) -> Result<()> {
        for chunk in deliveries.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO webhook_deliveries ({}) VALUES {}",
                delivery_cols!(),
                row_marks(chunk.len(), 17)
            );
            let mut q = db::query(db::AssertSqlSafe(sql));
            for d in chunk {
                q = q
                    .bind(d.id.as_str())
                    .bind(d.endpoint_id.as_ref().map(WebhookId::as_str))
                    .bind(d.account_id.as_str())
                    .bind(d.url.as_deref())
                    .bind(d.event_seq)
                    .bind(d.event_type.as_str())
                    .bind(d.task_id.as_deref())
                    .bind(d.status.as_str())
                    .bind(d.attempts)
                    .bind(d.round_attempts)
                    .bind(d.next_attempt_at.millis())
                    .bind(d.last_status_code)
                    .bind(d.last_error.as_deref())
                    .bind(d.last_attempt_at.map(Timestamp::millis))
                    .bind(d.delivered_at.map(Timestamp::millis))
                    .bind(d.created_at.millis())
                    .bind(d.event_id.as_str());
            }
            q.execute(self.conn()).await.map_err(err)?;
        }
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn fail_pending_deliveries(
        &mut self,
        endpoint: &WebhookId,
        reason: &str,
        _now: Timestamp,
    ) -> Result<u64> {
        let done = db::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $2, claim_token = NULL \
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(endpoint.as_str())
        .bind(reason)
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    #[instrument(level = "debug", skip_all)]
    async fn claim_deliveries(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        token: &str,
        limit: u64,
    ) -> Result<Vec<DeliveryJob>> {
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, claim_token = $2 WHERE id IN ( \
             SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
             AND event_seq IS NOT NULL \
             ORDER BY next_attempt_at LIMIT $4{SKIP_LOCKED}) RETURNING {}",
            delivery_cols!()
        );
        let rows = db::query(db::AssertSqlSafe(sql))
            .bind(lease_until.millis())
            .bind(token)
            .bind(now.millis())
            .bind(limit_of(limit))
            .fetch_all(self.conn())
            .await
            .map_err(err)?;
        let deliveries = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>>>()?;
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        // What each needs: its event, and where and how to send it.
        let seqs: Vec<i64> = deliveries.iter().filter_map(|d| d.event_seq).collect();
        let mut q = db::query(db::AssertSqlSafe(format!(
            "SELECT seq, task_seq, id, type, actor_id, task_id, payload, created_at FROM events WHERE seq IN ({})",
            marks(seqs.len())
        )));
        for seq in &seqs {
            q = q.bind(seq);
        }
        let events: HashMap<i64, Event> = q
            .fetch_all(self.conn())
            .await
            .map_err(err)?
            .iter()
            .map(|r| event_from_row(r).map(|e| (e.seq, e)))
            .collect::<Result<_>>()?;
        type Target = (String, String, Option<(String, Timestamp)>);
        let mut targets: HashMap<String, Target> = HashMap::new();
        let endpoint_ids: Vec<&str> =
            deliveries.iter().filter_map(|d| d.endpoint_id.as_ref().map(WebhookId::as_str)).collect();
        if !endpoint_ids.is_empty() {
            let mut q = db::query(db::AssertSqlSafe(format!(
                "SELECT id, url, secret, previous_secret, previous_secret_until, active FROM webhook_endpoints \
                 WHERE id IN ({})",
                marks(endpoint_ids.len())
            )));
            for id in &endpoint_ids {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.conn()).await.map_err(err)? {
                // An inactive endpoint's delivery comes back without a target; the sender
                // fails it instead of sending.
                if get::<bool>(&r, "active")? {
                    let previous: Option<String> = get(&r, "previous_secret")?;
                    let until = opt_time(&r, "previous_secret_until")?;
                    targets
                        .insert(get(&r, "id")?, (get(&r, "url")?, get(&r, "secret")?, previous.zip(until)));
                }
            }
        }
        let owners: Vec<&str> =
            deliveries.iter().filter(|d| d.endpoint_id.is_none()).map(|d| d.account_id.as_str()).collect();
        let mut account_secrets: HashMap<String, String> = HashMap::new();
        if !owners.is_empty() {
            let mut q = db::query(db::AssertSqlSafe(format!(
                "SELECT id, webhook_secret FROM accounts WHERE id IN ({})",
                marks(owners.len())
            )));
            for id in &owners {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.conn()).await.map_err(err)? {
                account_secrets.insert(get(&r, "id")?, get(&r, "webhook_secret")?);
            }
        }
        let mut jobs = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let event = d
                .event_seq
                .and_then(|seq| events.get(&seq).cloned())
                .ok_or_else(|| corrupt("delivery event", d.id.as_str()))?;
            let (url, secret, previous_secret) = match &d.endpoint_id {
                Some(e) => targets.get(e.as_str()).cloned().unwrap_or_default(),
                None => (
                    d.url.clone().unwrap_or_default(),
                    account_secrets.get(d.account_id.as_str()).cloned().unwrap_or_default(),
                    None,
                ),
            };
            jobs.push(DeliveryJob {
                delivery: d,
                url,
                secret,
                previous_secret,
                event,
                claim_token: token.to_owned(),
            });
        }
        Ok(jobs)
    }

    #[instrument(level = "debug", skip_all)]
    async fn finish_attempt(
        &mut self,
        d: &WebhookDelivery,
        token: &str,
        a: &DeliveryAttempt,
    ) -> Result<bool> {
        let done = db::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = $4, round_attempts = $5, next_attempt_at = $6, \
             claim_token = NULL, last_status_code = $7, last_error = $8, last_attempt_at = $9, delivered_at = $10 \
             WHERE id = $1 AND claim_token = $2",
        )
        .bind(d.id.as_str())
        .bind(token)
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.round_attempts)
        .bind(d.next_attempt_at.millis())
        .bind(d.last_status_code)
        .bind(d.last_error.as_deref())
        .bind(d.last_attempt_at.map(Timestamp::millis))
        .bind(d.delivered_at.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        self.insert_attempt(a).await?;
        Ok(true)
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_attempt(&mut self, a: &DeliveryAttempt) -> Result<()> {
        db::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(a.delivery_id.as_str())
        .bind(a.attempt)
        .bind(a.at.millis())
        .bind(a.status_code)
        .bind(a.duration_ms)
        .bind(a.error.as_deref())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn restart_delivery(&mut self, id: &DeliveryId, now: Timestamp) -> Result<bool> {
        let done = db::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, round_attempts = 0, \
             claim_token = NULL WHERE id = $1 \
             AND NOT (status = 'pending' AND claim_token IS NOT NULL AND next_attempt_at > $2)",
        )
        .bind(id.as_str())
        .bind(now.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    #[instrument(level = "debug", skip_all)]
    async fn insert_notifications(&mut self, notifications: &[Notification]) -> Result<()> {
        for chunk in notifications.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO notifications ({}) VALUES {}",
                notification_cols!(),
                row_marks(chunk.len(), 9)
            );
            let mut q = db::query(db::AssertSqlSafe(sql));
            for n in chunk {
                q = q
                    .bind(n.id.as_str())
                    .bind(n.account_id.as_str())
                    .bind(n.event_seq)
                    .bind(n.kind.as_str())
                    .bind(&n.title)
                    .bind(&n.message)
                    .bind(n.link.as_deref())
                    .bind(n.read_at.map(Timestamp::millis))
                    .bind(n.created_at.millis());
            }
            q.execute(self.conn()).await.map_err(err)?;
        }
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn mark_notifications_read(
        &mut self,
        account: &AccountId,
        id: Option<&NotificationId>,
        now: Timestamp,
    ) -> Result<u64> {
        let done = match id {
            // One: found (and the caller's) or not; reading it twice is not an error.
            Some(id) => db::query(
                "UPDATE notifications SET read_at = COALESCE(read_at, $3) WHERE account_id = $1 AND id = $2",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(now.millis()),
            None => {
                db::query("UPDATE notifications SET read_at = $2 WHERE account_id = $1 AND read_at IS NULL")
                    .bind(account.as_str())
                    .bind(now.millis())
            }
        }
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }
}
