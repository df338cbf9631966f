//! Webhook delivery (SPEC §7): the SSRF guard, the signed POST, and the two workers every
//! replica runs — the fan-out, which projects the event log into deliveries and
//! notifications ([`crate::projection`]), and the sender, which makes the deliveries that
//! are due.
//!
//! At least once: a delivery is claimed by moving its next attempt `CLAIM_LEASE` ahead
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two replicas never take the same one), sent,
//! and its outcome recorded only if the claim is still the sender's. A sender that dies
//! mid-way leaves the delivery to be taken again when the lease runs out.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use agora_core::{Timestamp, webhook};
use agora_store::{DeliveryJob, Event};
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::{
    App,
    inbox::stopped,
    metrics::OutcomeLabels,
    projection::{self, Attempt, Recorded},
};

/// How long one attempt may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is the sender's: the timeout plus time to record it.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);
const FANOUT_BATCH: u64 = 500;
const CLAIM_BATCH: usize = 200;
/// Attempts in flight per replica.
const CONCURRENCY: usize = 256;
/// Outcomes recorded per transaction.
const RECORD_BATCH: usize = 256;
/// How long shutdown waits for in-flight attempts to be recorded.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Checks a webhook URL before it is stored (SPEC §7): `https` (or `http` where the
/// operator allows private targets), no credentials, and a host that resolves only to
/// public addresses. The sender checks again at connect time against the address it
/// connects to, so a name that changes its answer later is caught then.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
    check_shape(&url, allow_private)?;
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.parse::<IpAddr>().is_ok() || allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| format!("the host {host} does not resolve"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("the host {host} does not resolve"));
    }
    guard(&host, &addrs)?;
    Ok(url)
}

/// What can be told without DNS: scheme, credentials, and an address written in the URL.
fn check_shape(url: &Url, allow_private: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("must use https".to_owned()),
        other => return Err(format!("must be an https URL, not {other}")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".to_owned());
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err("must name a host".to_owned());
    };
    if url.as_str().len() > 2048 {
        return Err("must be at most 2048 characters".to_owned());
    }
    if let (Ok(ip), false) =
        (host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>(), allow_private)
    {
        guard(host, &[SocketAddr::new(ip, 0)])?;
    }
    Ok(())
}

/// Refuses if any address is one a webhook may not reach.
fn guard(host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
    for a in addrs {
        if let Some(why) = webhook::blocked_address(a.ip()) {
            // The kind of address only: the address itself would map the inside of the
            // network for whoever asks.
            return Err(format!("{host} resolves to a {why}"));
        }
    }
    Ok(())
}

/// The resolver of the delivery client: resolves once, refuses the whole answer if any
/// address is blocked, and hands the client exactly the addresses it checked, so DNS
/// rebinding between the check and the connection is impossible.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                guard(&host, &addrs)?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// What one POST found.
#[derive(Debug, Clone)]
pub struct Sent {
    pub status: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

impl Sent {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Signs and posts deliveries through one pooled client.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    pub fn new(allow_private: bool) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect for us, past the guard below.
            .no_proxy()
            .user_agent(concat!("Agora-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(GuardedResolver { allow_private })
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, allow_private })
    }

    /// POSTs `body` to `url`, signed the Standard Webhooks way with each of `secrets` (one
    /// signature each, space-separated, as the scheme allows while a secret rotates); `id`
    /// is the `webhook-id` (the same on every retry of one delivery).
    pub async fn post(
        &self,
        url: &str,
        secrets: &[String],
        id: &str,
        event_type: &str,
        body: String,
    ) -> Sent {
        let start = Instant::now();
        let refused = |error: String| Sent { status: None, duration_ms: 0, error: Some(error) };
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return refused(format!("not a valid URL ({e})")),
        };
        if let Err(why) = check_shape(&url, self.allow_private) {
            return refused(format!("URL not allowed: {why}"));
        }
        let timestamp = Timestamp::now().millis() / 1000;
        let signatures: Option<Vec<String>> =
            secrets.iter().map(|s| webhook::sign(s, id, timestamp, body.as_bytes())).collect();
        let Some(signature) = signatures.filter(|s| !s.is_empty()).map(|s| s.join(" ")) else {
            return refused("no valid signing secret".to_owned());
        };
        let result = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("x-agora-event", event_type)
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                // Read a short answer to its end so the connection can be reused; stop at
                // 64 KiB (an endless body must not cost us memory or time).
                let mut read = 0usize;
                while let Ok(Some(chunk)) = resp.chunk().await {
                    read += chunk.len();
                    if read > 64 * 1024 {
                        break;
                    }
                }
                let error =
                    (!(200..300).contains(&status)).then(|| format!("the endpoint answered HTTP {status}"));
                Sent { status: Some(status), duration_ms: 0, error }
            }
            // Without the URL: it may carry a token in its query.
            Err(e) => Sent { status: None, duration_ms: 0, error: Some(describe(&e.without_url())) },
        };
        Sent { duration_ms: i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX), ..outcome }
    }
}

/// A transport error with its causes (the SSRF guard's refusal is one of them).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The body of a delivery: `{"id", "type", "created_at", "data"}`.
pub fn body(event: &Event) -> String {
    json!({
        "id": event.id,
        "type": event.event_type,
        "created_at": event.created_at.to_rfc3339(),
        "data": event.payload,
    })
    .to_string()
}

/// How long the fan-out lets commits gather after a wake-up before it projects them, in
/// one write transaction (measured with `agora bench`: see README, Performance).
const FANOUT_COALESCE: Duration = Duration::from_millis(5);

impl App {
    /// Projects every event not yet projected into deliveries and notifications, a batch per
    /// transaction; how many deliveries it made. Stops early when another replica holds the
    /// cursor.
    pub async fn fan_out(&self) -> crate::Result<usize> {
        let mut deliveries = 0;
        loop {
            let mut tx = self.begin().await?;
            let Some(done) = projection::fan_out(tx.as_mut(), FANOUT_BATCH, self.now()).await? else {
                return Ok(deliveries);
            };
            if done.events == 0 {
                return Ok(deliveries);
            }
            tx.commit().await?;
            deliveries += done.deliveries;
            if (done.events as u64) < FANOUT_BATCH {
                return Ok(deliveries);
            }
        }
    }

    /// Sends every delivery that is due now, records the outcomes, and repeats until none is
    /// due (retries wait for their time): the webhook workers run to quiescence, for tests.
    pub async fn send_due_deliveries(&self) -> crate::Result<Recorded> {
        let sender = self
            .0
            .sender
            .clone()
            .ok_or_else(|| crate::Error::Unavailable("webhook client is not running".into()))?;
        let mut all = Recorded::default();
        loop {
            let jobs = self.claim_deliveries(CLAIM_BATCH).await?;
            if jobs.is_empty() {
                return Ok(all);
            }
            let mut attempts = Vec::with_capacity(jobs.len());
            for job in jobs {
                attempts.push(attempt(&sender, job, self.now()).await);
            }
            let r = self.record_attempts(&attempts).await?;
            all.delivered += r.delivered;
            all.retrying += r.retrying;
            all.failed += r.failed;
            all.stale += r.stale;
            all.endpoints_disabled += r.endpoints_disabled;
        }
    }

    async fn claim_deliveries(&self, limit: usize) -> crate::Result<Vec<DeliveryJob>> {
        let now = self.now();
        let lease_until = now.plus_millis(i64::try_from(CLAIM_LEASE.as_millis()).unwrap_or(30_000));
        let token = ulid::Ulid::generate().to_string();
        let mut tx = self.begin().await?;
        let jobs = tx.claim_deliveries(now, lease_until, &token, limit as u64).await?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn record_attempts(&self, batch: &[Attempt]) -> crate::Result<Recorded> {
        let s = self.settings();
        let mut tx = self.begin().await?;
        let r =
            projection::record(tx.as_mut(), batch, &s.webhook_retry, s.webhook_disable_after_ms, self.now())
                .await?;
        tx.commit().await?;
        let m = &self.metrics().webhook_attempts;
        m.get_or_create(&OutcomeLabels { outcome: "delivered" }).inc_by(r.delivered as u64);
        m.get_or_create(&OutcomeLabels { outcome: "retrying" }).inc_by(r.retrying as u64);
        m.get_or_create(&OutcomeLabels { outcome: "failed" }).inc_by(r.failed as u64);
        Ok(r)
    }

    pub(crate) fn sender(&self) -> Option<Arc<Sender>> {
        self.0.sender.clone()
    }

    pub(crate) fn webhook_kick(&self) -> Arc<Notify> {
        self.0.webhook_kick.clone()
    }
}

/// Projects new events shortly after they commit (the store's `Events` wake-up, from any
/// replica on PostgreSQL), and every worker interval in case a wake-up was lost.
pub(crate) async fn fan_out_loop(app: App) {
    let kick = app.webhook_kick();
    let mut watch = crate::live::LogWatch::new(&app);
    while watch.moved().await {
        watch.coalesce(FANOUT_COALESCE).await;
        match app.fan_out().await {
            Ok(n) if n > 0 => kick.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook fan-out failed; retrying"),
        }
    }
}

/// Claims due deliveries while it has room, sends each on its own task, and hands the
/// outcomes to one recorder that writes them in batches.
pub(crate) async fn send_loop(app: App, sender: Arc<Sender>) {
    let kick = app.webhook_kick();
    let mut shutdown = app.shutdown_signal();
    let mut tick = tokio::time::interval(app.settings().worker_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let room = Arc::new(Semaphore::new(CONCURRENCY));
    let (done_tx, done_rx) = mpsc::channel::<Attempt>(CONCURRENCY * 2);
    let recorder = tokio::spawn(record_loop(app.clone(), done_rx, kick.clone()));
    loop {
        tokio::select! {
            () = kick.notified() => {}
            _ = tick.tick() => {}
            () = stopped(&mut shutdown) => break,
        }
        loop {
            let free = room.available_permits().min(CLAIM_BATCH);
            if free == 0 {
                // Every slot is busy; a finishing attempt kicks us again.
                break;
            }
            let jobs = match app.claim_deliveries(free).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook sender cannot claim deliveries; retrying");
                    break;
                }
            };
            let full = jobs.len() == free;
            for job in jobs {
                let Ok(permit) = room.clone().acquire_owned().await else { return };
                let (sender, done_tx, at) = (sender.clone(), done_tx.clone(), app.now());
                tokio::spawn(async move {
                    let attempt = attempt(&sender, job, at).await;
                    let _ = done_tx.send(attempt).await;
                    drop(permit);
                });
            }
            if !full {
                break;
            }
        }
    }
    // Let finished and in-flight attempts be recorded for a moment; what is still out after
    // that is taken again when its claim runs out.
    drop(done_tx);
    let mut recorder = recorder;
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut recorder).await.is_err() {
        recorder.abort();
        tracing::info!("webhook attempts still in flight at shutdown will be retried");
    }
}

/// One attempt at a claimed delivery, started at `at` (the application's clock).
async fn attempt(sender: &Sender, job: DeliveryJob, at: Timestamp) -> Attempt {
    if job.url.is_empty() {
        // Its endpoint was turned off after the delivery was made.
        return Attempt {
            job,
            at,
            status_code: None,
            duration_ms: 0,
            error: Some("the endpoint is disabled".to_owned()),
            give_up: true,
            jitter: 0.5,
        };
    }
    let secrets = webhook::signing_secrets(&job.secret, job.previous_secret.as_ref(), at);
    let sent = sender
        .post(&job.url, &secrets, job.delivery.id.as_str(), job.event.event_type.as_str(), body(&job.event))
        .await;
    Attempt {
        job,
        at,
        status_code: sent.status,
        duration_ms: sent.duration_ms,
        error: sent.error,
        give_up: false,
        jitter: rand::random(),
    }
}

async fn record_loop(app: App, mut done: mpsc::Receiver<Attempt>, kick: Arc<Notify>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    loop {
        if done.recv_many(&mut batch, RECORD_BATCH).await == 0 {
            return;
        }
        match app.record_attempts(&batch).await {
            Ok(r) => {
                if r.failed + r.retrying > 0 {
                    tracing::info!(retrying = r.retrying, failed = r.failed, "webhook deliveries failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = batch.len(), "webhook outcomes not recorded; they will be retried")
            }
        }
        batch.clear();
        // Slots freed: more due deliveries may be waiting.
        kick.notify_one();
    }
}
