//! Webhook endpoints (SPEC §7): register a URL for event types, get its `whsec_…` secret
//! once, rotate it, ping it, read its delivery log and redeliver. Others' endpoints and
//! deliveries are not found.

use agora_core::{
    DeliveryId, EventId, Invalid, WebhookId, credential,
    event::EventType,
    validation,
    webhook::{self, MAX_ENDPOINTS, parse_event_types},
};
use agora_store::{DeliveryAttempt, DeliveryStatus, Page, WebhookDelivery, WebhookEndpoint};
use serde_json::json;

use crate::{
    After, App, Principal, Uncommitted, access,
    accounts::random_bytes,
    delivery::{Sent, check_url},
    error::{Error, Refusal, Result},
    projection,
};

/// How long a rotated-out secret keeps signing next to the new one.
pub const SECRET_OVERLAP_SECS: i64 = 24 * 3600;

/// An endpoint to register, as it arrives.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// Changes to an endpoint; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// A delivery and its attempts, as its owner reads it.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    pub delivery: WebhookDelivery,
    pub attempts: Vec<DeliveryAttempt>,
}

fn description(raw: Option<&str>) -> Result<String, Invalid> {
    match raw.map(str::trim) {
        None | Some("") => Ok(String::new()),
        Some(d) => validation::text(d, 1, 500).map_err(|e| e.at("description")),
    }
}

impl App {
    /// A URL the SSRF guard accepts, or `WEBHOOK_URL_NOT_ALLOWED` with the reason.
    pub(crate) async fn allowed_webhook_url(&self, raw: &str) -> Result<String> {
        validation::http_url(raw).map_err(|e| e.at("url"))?;
        check_url(raw, self.settings().allow_private_webhooks)
            .await
            .map(|u| u.to_string())
            .map_err(|reason| Refusal::WebhookUrlNotAllowed { reason }.into())
    }

    /// The principal's endpoint `id` (not found for anyone else's).
    async fn own_endpoint(&self, p: &Principal, id: &WebhookId) -> Result<WebhookEndpoint> {
        self.store()
            .read()
            .webhook_endpoint(id)
            .await?
            .filter(|w| access::owns_endpoint(w, p.id()))
            .ok_or(Error::NotFound("webhook"))
    }

    /// Registers an endpoint for event types (`*` for all, `task.*` for a noun); its signing
    /// secret is in the value, to be shown this once.
    pub async fn create_webhook(
        &self,
        p: &Principal,
        new: NewEndpoint,
    ) -> Result<Uncommitted<WebhookEndpoint>> {
        let mut inv = Invalid::default();
        let event_types =
            inv.collect("", parse_event_types(&new.event_types.unwrap_or_else(|| vec!["*".to_owned()])));
        let description = inv.collect("", description(new.description.as_deref()));
        let (Some(event_types), Some(description)) = (event_types, description) else {
            return Err(inv.into());
        };
        let url = self.allowed_webhook_url(&new.url).await?;
        if self.store().read().webhook_endpoints(p.id()).await?.len() >= MAX_ENDPOINTS {
            return Err(Error::invalid(
                "",
                format!("an account may register at most {MAX_ENDPOINTS} endpoints"),
            ));
        }
        let now = self.now();
        let endpoint = WebhookEndpoint {
            id: WebhookId::generate(),
            account_id: p.id().clone(),
            url,
            description,
            event_types,
            secret: credential::webhook_secret(random_bytes()),
            previous_secret: None,
            previous_secret_until: None,
            active: new.active.unwrap_or(true),
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin().await?;
        tx.insert_webhook_endpoint(&endpoint).await?;
        Ok(self.uncommitted(tx, endpoint))
    }

    /// The principal's endpoints, oldest first.
    pub async fn webhooks(&self, p: &Principal) -> Result<Vec<WebhookEndpoint>> {
        Ok(self.store().read().webhook_endpoints(p.id()).await?)
    }

    pub async fn webhook(&self, p: &Principal, id: &WebhookId) -> Result<WebhookEndpoint> {
        self.own_endpoint(p, id).await
    }

    /// Changes the URL, event types, description or `active`. Turning an endpoint off fails
    /// its pending deliveries; turning it on clears the reason the system turned it off for.
    pub async fn update_webhook(
        &self,
        p: &Principal,
        id: &WebhookId,
        change: EndpointChange,
    ) -> Result<Uncommitted<WebhookEndpoint>> {
        let current = self.own_endpoint(p, id).await?;
        let mut inv = Invalid::default();
        let event_types = change.event_types.as_ref().and_then(|t| inv.collect("", parse_event_types(t)));
        let description = change.description.as_deref().and_then(|d| inv.collect("", description(Some(d))));
        if !inv.0.is_empty() {
            return Err(inv.into());
        }
        let url = match &change.url {
            Some(raw) => Some(self.allowed_webhook_url(raw).await?),
            None => None,
        };
        let now = self.now();
        let mut tx = self.begin().await?;
        let mut w = tx.webhook_endpoint_for_update(&current.id).await?.ok_or(Error::NotFound("webhook"))?;
        w.url = url.unwrap_or(w.url);
        w.event_types = event_types.unwrap_or(w.event_types);
        w.description = description.unwrap_or(w.description);
        match change.active {
            Some(true) if !w.active => {
                w.active = true;
                w.disabled_reason = None;
                w.failing_since = None;
            }
            Some(false) if w.active => {
                w.active = false;
                tx.fail_pending_deliveries(&w.id, "endpoint turned off by its owner", now).await?;
            }
            _ => {}
        }
        w.updated_at = now;
        tx.update_webhook_endpoint(&w).await?;
        Ok(self.uncommitted(tx, w))
    }

    /// Deletes an endpoint and its delivery log.
    pub async fn delete_webhook(
        &self,
        p: &Principal,
        id: &WebhookId,
    ) -> Result<Uncommitted<WebhookEndpoint>> {
        let w = self.own_endpoint(p, id).await?;
        let mut tx = self.begin().await?;
        tx.delete_webhook_endpoint(&w.id).await?;
        Ok(self.uncommitted(tx, w))
    }

    /// Sends a signed `webhook.ping` to the endpoint now; what it answered, and its entry
    /// in the endpoint's delivery log (one attempt, never retried).
    pub async fn ping_webhook(&self, p: &Principal, id: &WebhookId) -> Result<(Sent, DeliveryId)> {
        let w = self.own_endpoint(p, id).await?;
        let sender =
            self.sender().ok_or_else(|| Error::Unavailable("webhook client is not running".into()))?;
        let (delivery_id, event_id, at) = (DeliveryId::generate(), EventId::generate(), self.now());
        let body = json!({
            "id": event_id,
            "type": EventType::WebhookPing.as_str(),
            "created_at": at.to_rfc3339(),
            "data": { "webhook_id": w.id },
        });
        let previous = w.previous_secret.clone().zip(w.previous_secret_until);
        let secrets = webhook::signing_secrets(&w.secret, previous.as_ref(), at);
        let sent = sender
            .post(&w.url, &secrets, delivery_id.as_str(), EventType::WebhookPing.as_str(), body.to_string())
            .await;
        let done = self.now();
        let status_code = sent.status.map(i64::from);
        let log = WebhookDelivery {
            id: delivery_id.clone(),
            endpoint_id: Some(w.id.clone()),
            account_id: w.account_id.clone(),
            url: None,
            event_seq: None,
            event_id,
            event_type: EventType::WebhookPing,
            task_id: None,
            status: if sent.delivered() { DeliveryStatus::Delivered } else { DeliveryStatus::Failed },
            attempts: 1,
            round_attempts: 1,
            next_attempt_at: done,
            last_status_code: status_code,
            last_error: sent.error.clone(),
            last_attempt_at: Some(at),
            delivered_at: sent.delivered().then_some(done),
            created_at: at,
        };
        let attempt = DeliveryAttempt {
            delivery_id: delivery_id.clone(),
            attempt: 1,
            at,
            status_code,
            duration_ms: sent.duration_ms,
            error: sent.error.clone(),
        };
        let mut tx = self.begin().await?;
        tx.insert_deliveries(std::slice::from_ref(&log)).await?;
        tx.insert_attempt(&attempt).await?;
        self.uncommitted(tx, ()).commit().await?;
        Ok((sent, delivery_id))
    }

    /// Replaces the endpoint's signing secret. The new one (in the value, shown this once)
    /// signs every attempt from now on, retries of earlier deliveries included; the old one
    /// keeps signing beside it for [`SECRET_OVERLAP_SECS`], so a receiver can switch over.
    pub async fn rotate_webhook_secret(
        &self,
        p: &Principal,
        id: &WebhookId,
    ) -> Result<Uncommitted<WebhookEndpoint>> {
        let current = self.own_endpoint(p, id).await?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let mut w = tx.webhook_endpoint_for_update(&current.id).await?.ok_or(Error::NotFound("webhook"))?;
        w.previous_secret =
            Some(std::mem::replace(&mut w.secret, credential::webhook_secret(random_bytes())));
        w.previous_secret_until = Some(now.plus_seconds(SECRET_OVERLAP_SECS));
        w.updated_at = now;
        tx.update_webhook_endpoint(&w).await?;
        Ok(self.uncommitted(tx, w))
    }

    /// An endpoint's deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        p: &Principal,
        id: &WebhookId,
        status: Option<DeliveryStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<DeliveryLog>> {
        let w = self.own_endpoint(p, id).await?;
        let mut read = self.store().read();
        let found = read.deliveries(&w.id, status, offset, limit).await?;
        let ids: Vec<DeliveryId> = found.items.iter().map(|d| d.id.clone()).collect();
        let attempts = read.delivery_attempts(&ids).await?;
        let items = found
            .items
            .into_iter()
            .map(|delivery| {
                let attempts = attempts.iter().filter(|a| a.delivery_id == delivery.id).cloned().collect();
                DeliveryLog { delivery, attempts }
            })
            .collect();
        Ok(Page { items, total: found.total })
    }

    /// Sends a delivery again now, with a fresh round of retries (same `webhook-id`, same
    /// body).
    pub async fn redeliver(&self, p: &Principal, id: &DeliveryId) -> Result<Uncommitted<DeliveryLog>> {
        let delivery = self
            .store()
            .read()
            .delivery(id)
            .await?
            .filter(|d| access::owns_delivery(d, p.id()))
            .ok_or(Error::NotFound("delivery"))?;
        let now = self.now();
        if delivery.event_seq.is_none() {
            return Err(Refusal::PingNotRedelivered.into());
        }
        let mut tx = self.begin().await?;
        projection::redeliver(tx.as_mut(), p.id(), &delivery, now).await?;
        let current = tx.delivery(id).await?.ok_or(Error::NotFound("delivery"))?;
        let attempts = tx.delivery_attempts(std::slice::from_ref(id)).await?;
        Ok(self.uncommitted(tx, DeliveryLog { delivery: current, attempts }).then(After::KickWebhooks))
    }
}
