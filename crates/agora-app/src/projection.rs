//! From the event log to webhooks and notifications (SPEC §7), the same for every caller
//! (the workers, tests, the bench).
//!
//! [`fan_out`] projects committed events, in log order, into one delivery per matching
//! endpoint and one notification per recipient, moving a durable cursor in the same
//! transaction: an event is projected once, and one committed but not yet projected when the
//! process dies is projected after restart. [`record`] writes what sending a batch of
//! claimed deliveries found: delivered, retried later, or given up, and turns off endpoints
//! that are gone or have failed for too long.

use std::collections::{BTreeMap, HashMap, HashSet};

use agora_core::{
    AccountId, DeliveryId, EventId, NotificationId, Timestamp, WebhookId,
    event::EventType,
    webhook::{RetrySchedule, subscribed},
};
use agora_store::{
    DeliveryAttempt, DeliveryJob, DeliveryStatus, Event, NewEvent, Notification, Tx, WebhookDelivery,
    WebhookEndpoint,
};
use serde_json::json;

use crate::error::{Error, Refusal, Result};

/// The cursor of the fan-out in `event_cursors`.
pub const FANOUT_CURSOR: &str = "fanout";

/// What one [`fan_out`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    pub events: usize,
    pub deliveries: usize,
    pub notifications: usize,
}

/// Projects up to `limit` events after the fan-out cursor and moves the cursor past them,
/// in `tx`. `None` when another transaction (another replica) holds the cursor.
pub async fn fan_out(tx: &mut dyn Tx, limit: u64, now: Timestamp) -> Result<Option<FanOut>> {
    let Some(position) = tx.lock_cursor(FANOUT_CURSOR).await? else { return Ok(None) };
    let events = tx.events_with_audience_after(position, limit).await?;
    let Some(last) = events.last().map(|(e, _)| e.seq) else { return Ok(Some(FanOut::default())) };

    let members: Vec<AccountId> =
        events.iter().flat_map(|(_, a)| a.iter().cloned()).collect::<HashSet<_>>().into_iter().collect();
    let mut endpoints: HashMap<AccountId, Vec<WebhookEndpoint>> = HashMap::new();
    for e in tx.active_endpoints(&members).await? {
        endpoints.entry(e.account_id.clone()).or_default().push(e);
    }
    let tasks: Vec<String> =
        events.iter().filter_map(|(e, _)| e.task_id.clone()).collect::<HashSet<_>>().into_iter().collect();
    let one_off: HashMap<String, (AccountId, String)> =
        tx.task_webhook_urls(&tasks).await?.into_iter().map(|(t, who, url)| (t, (who, url))).collect();

    let mut deliveries = Vec::new();
    let mut notifications = Vec::new();
    for (event, audience) in &events {
        for member in audience {
            for endpoint in endpoints.get(member).into_iter().flatten() {
                if subscribed(&endpoint.event_types, event.event_type) {
                    deliveries.push(new_delivery(event, member, Some(endpoint.id.clone()), None, now));
                }
            }
            if event.actor_id.as_ref() != Some(member) && event.event_type.notifies() {
                notifications.push(notification(event, member, now));
            }
        }
        if let Some((requester, url)) = event.task_id.as_ref().and_then(|t| one_off.get(t))
            && audience.contains(requester)
        {
            deliveries.push(new_delivery(event, requester, None, Some(url.clone()), now));
        }
    }
    tx.insert_deliveries(&deliveries).await?;
    tx.insert_notifications(&notifications).await?;
    tx.set_cursor(FANOUT_CURSOR, last).await?;
    Ok(Some(FanOut {
        events: events.len(),
        deliveries: deliveries.len(),
        notifications: notifications.len(),
    }))
}

fn new_delivery(
    event: &Event,
    owner: &AccountId,
    endpoint: Option<WebhookId>,
    url: Option<String>,
    now: Timestamp,
) -> WebhookDelivery {
    WebhookDelivery {
        id: DeliveryId::generate(),
        endpoint_id: endpoint,
        account_id: owner.clone(),
        url,
        event_seq: Some(event.seq),
        event_id: event.id.clone(),
        event_type: event.event_type,
        task_id: event.task_id.clone(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        round_attempts: 0,
        next_attempt_at: now,
        last_status_code: None,
        last_error: None,
        last_attempt_at: None,
        delivered_at: None,
        created_at: now,
    }
}

fn notification(event: &Event, recipient: &AccountId, now: Timestamp) -> Notification {
    let (title, message) = event.event_type.describe(&event.payload);
    let link = match (&event.task_id, event.event_type) {
        (Some(task), _) => Some(format!("/api/v1/tasks/{task}")),
        (None, t) if t.noun() == "payment" => Some("/api/v1/wallet".to_owned()),
        (None, EventType::WebhookDisabled) => event
            .payload
            .get("webhook_id")
            .and_then(|v| v.as_str())
            .map(|id| format!("/api/v1/webhooks/{id}")),
        _ => None,
    };
    Notification {
        id: NotificationId::generate(),
        account_id: recipient.clone(),
        event_seq: event.seq,
        kind: event.event_type,
        title,
        message,
        link,
        read_at: None,
        created_at: now,
    }
}

/// What one attempt at a claimed delivery found.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub job: DeliveryJob,
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// No retry whatever the schedule says (the endpoint was disabled meanwhile).
    pub give_up: bool,
    /// 0.0–1.0, spreads the retry delay (see `RetrySchedule::delay_after`).
    pub jitter: f64,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }

    fn gone(&self) -> bool {
        self.status_code == Some(410)
    }
}

/// What [`record`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Attempts whose claim had been taken over (not recorded).
    pub stale: usize,
    pub endpoints_disabled: usize,
}

/// Records a batch of attempts in `tx`: logs each, moves each delivery on (delivered, due
/// again after the schedule's next delay, or failed), and keeps each endpoint's failure
/// streak — disabling one that answered 410 Gone or has failed for `disable_after_ms`.
pub async fn record(
    tx: &mut dyn Tx,
    attempts: &[Attempt],
    schedule: &RetrySchedule,
    disable_after_ms: i64,
    now: Timestamp,
) -> Result<Recorded> {
    let mut out = Recorded::default();
    // Lock the batch's endpoints first, in id order: disabling an endpoint (here or by its
    // owner) locks it before its deliveries, so every transaction takes the locks in one
    // order and two replicas recording at once cannot deadlock.
    let mut endpoints: BTreeMap<WebhookId, WebhookEndpoint> = BTreeMap::new();
    let ids: HashSet<&WebhookId> =
        attempts.iter().filter_map(|a| a.job.delivery.endpoint_id.as_ref()).collect();
    let mut ids: Vec<&WebhookId> = ids.into_iter().collect();
    ids.sort_unstable();
    for id in ids {
        if let Some(e) = tx.webhook_endpoint_for_update(id).await? {
            endpoints.insert(id.clone(), e);
        }
    }
    // Per endpoint: the latest success, the earliest failure, whether a delivery ran out of
    // attempts, and a reason to disable it at once.
    #[derive(Default)]
    struct Streak {
        success: Option<Timestamp>,
        failure: Option<Timestamp>,
        exhausted: bool,
        gone: bool,
    }
    let mut streaks: BTreeMap<WebhookId, Streak> = BTreeMap::new();
    for a in attempts {
        let mut d = a.job.delivery.clone();
        d.attempts += 1;
        d.round_attempts += 1;
        d.last_status_code = a.status_code.map(i64::from);
        d.last_error = a.error.clone();
        d.last_attempt_at = Some(a.at);
        let retry = usize::try_from(d.round_attempts).ok().and_then(|n| schedule.delay_after(n, a.jitter));
        if a.succeeded() {
            d.status = DeliveryStatus::Delivered;
            d.delivered_at = Some(now);
        } else if let (Some(delay), false, false) = (retry, a.give_up, a.gone()) {
            d.status = DeliveryStatus::Pending;
            d.next_attempt_at = Timestamp::from_millis(now.millis().saturating_add(delay));
        } else {
            d.status = DeliveryStatus::Failed;
        }
        let attempt = DeliveryAttempt {
            delivery_id: d.id.clone(),
            attempt: d.attempts,
            at: a.at,
            status_code: d.last_status_code,
            duration_ms: a.duration_ms,
            error: a.error.clone(),
        };
        if !tx.finish_attempt(&d, &a.job.claim_token, &attempt).await? {
            out.stale += 1;
            continue;
        }
        match d.status {
            DeliveryStatus::Delivered => out.delivered += 1,
            DeliveryStatus::Pending => out.retrying += 1,
            DeliveryStatus::Failed => out.failed += 1,
        }
        if let (Some(endpoint), false) = (&d.endpoint_id, a.give_up) {
            let s = streaks.entry(endpoint.clone()).or_default();
            if a.succeeded() {
                s.success = Some(s.success.map_or(a.at, |t| t.max(a.at)));
            } else {
                s.failure = Some(s.failure.map_or(a.at, |t| t.min(a.at)));
                s.exhausted |= d.status == DeliveryStatus::Failed;
            }
            s.gone |= a.gone();
        }
    }
    for (id, s) in streaks {
        let Some(mut endpoint) = endpoints.remove(&id) else { continue };
        let before = (endpoint.failing_since, endpoint.active);
        match (s.success, s.failure) {
            // Failing only if the failures came after the last success.
            (Some(ok), Some(bad)) if bad > ok => endpoint.failing_since = Some(bad),
            (Some(_), _) => endpoint.failing_since = None,
            (None, Some(bad)) => {
                endpoint.failing_since = Some(endpoint.failing_since.map_or(bad, |t| t.min(bad)))
            }
            (None, None) => {}
        }
        // A long streak disables the endpoint only once a delivery has run out of attempts,
        // so one blip after a quiet spell (whose retry would succeed) does not.
        let too_long = s.exhausted
            && endpoint.failing_since.is_some_and(|since| now.millis() - since.millis() >= disable_after_ms);
        let reason = if s.gone {
            Some("the endpoint answered 410 Gone".to_owned())
        } else if too_long {
            Some(format!("deliveries failed for {} hours without a success", disable_after_ms / 3_600_000))
        } else {
            None
        };
        if let (Some(reason), true) = (reason, endpoint.active) {
            disable(tx, &mut endpoint, &reason, now).await?;
            out.endpoints_disabled += 1;
        }
        if (endpoint.failing_since, endpoint.active) != before {
            endpoint.updated_at = now;
            tx.update_webhook_endpoint(&endpoint).await?;
        }
    }
    Ok(out)
}

/// Turns an endpoint off, fails what it had pending, and tells its owner (`webhook.disabled`,
/// which becomes a notification). The caller writes the endpoint back.
async fn disable(
    tx: &mut dyn Tx,
    endpoint: &mut WebhookEndpoint,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    endpoint.active = false;
    endpoint.disabled_reason = Some(reason.to_owned());
    tx.fail_pending_deliveries(&endpoint.id, &format!("endpoint disabled: {reason}"), now).await?;
    tx.append_event(&NewEvent {
        id: EventId::generate(),
        event_type: EventType::WebhookDisabled,
        actor_id: None,
        task_id: None,
        audience: vec![endpoint.account_id.clone()],
        payload: json!({ "webhook_id": endpoint.id, "url": endpoint.url, "reason": reason }),
        created_at: now,
    })
    .await?;
    Ok(())
}

/// Starts `id` (a delivery of `owner`'s) again: pending, due now, a fresh round of retries.
/// `NOT_FOUND` when it is not theirs; refused when its endpoint is disabled or an attempt
/// is in flight (a second one would race it).
pub async fn redeliver(
    tx: &mut dyn Tx,
    owner: &AccountId,
    delivery: &WebhookDelivery,
    now: Timestamp,
) -> Result<()> {
    if &delivery.account_id != owner {
        return Err(Error::NotFound("delivery"));
    }
    if let Some(endpoint) = &delivery.endpoint_id {
        let endpoint = tx.webhook_endpoint_for_update(endpoint).await?.ok_or(Error::NotFound("delivery"))?;
        if !endpoint.active {
            return Err(Refusal::WebhookDisabled.into());
        }
    }
    if !tx.restart_delivery(&delivery.id, now).await? {
        return Err(Refusal::DeliveryInFlight.into());
    }
    Ok(())
}
