//! Prometheus metrics of the application (inbox waiters, dispatch latency, webhook
//! attempts and backlog, revenue, background work), in one registry that frontends add
//! their own families to (the HTTP layer's request counts and latencies).

use std::sync::Mutex;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry},
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CurrencyLabels {
    pub currency: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// A latency histogram from 0.25 ms to ~4 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 15))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Long-polls waiting on an inbox right now.
    pub inbox_waiters: Gauge,
    /// Tasks handed out by inboxes.
    pub tasks_claimed: Counter,
    /// From a task's creation to an agent holding it.
    pub dispatch_latency: Histogram,
    /// Fees collected, per currency (minor units), read from the ledger at each scrape.
    pub platform_revenue: Family<CurrencyLabels, Gauge>,
    /// Webhook attempts by outcome: delivered, retrying, failed.
    pub webhook_attempts: Family<OutcomeLabels, Counter>,
    /// Deliveries waiting to be made, read from the database at each scrape.
    pub webhook_backlog: Gauge,
    /// Background work by state (queued, running, failed), read at each scrape.
    pub chores: Family<StateLabels, Gauge>,
    /// Background work finished, by outcome (done, retried, failed).
    pub chore_runs: Family<OutcomeLabels, Counter>,
    /// Statements sent to the database, copied from the store's count at each scrape.
    pub store_statements: Counter,
    /// Serialises the copy, so that two scrapes at once do not both add the same difference.
    statements_copy: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("agora");
        let inbox_waiters = Gauge::default();
        registry.register("inbox_waiters", "Agents waiting on their inbox", inbox_waiters.clone());
        let tasks_claimed = Counter::default();
        registry.register("tasks_claimed", "Tasks claimed through inboxes", tasks_claimed.clone());
        let dispatch_latency = latency_histogram();
        registry.register(
            "dispatch_latency_seconds",
            "From a task's creation to an agent claiming it from its inbox",
            dispatch_latency.clone(),
        );
        let platform_revenue = Family::<CurrencyLabels, Gauge>::default();
        registry.register(
            "platform_revenue_minor_units",
            "Platform fees collected, per currency, from the ledger",
            platform_revenue.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_attempts.clone(),
        );
        let webhook_backlog = Gauge::default();
        registry.register(
            "webhook_backlog",
            "Webhook deliveries waiting to be made",
            webhook_backlog.clone(),
        );
        let chores = Family::<StateLabels, Gauge>::default();
        registry.register("chores", "Background work by state: queued, running, failed", chores.clone());
        let chore_runs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "chore_runs",
            "Background work attempts by outcome: done, retried, failed",
            chore_runs.clone(),
        );
        let store_statements = Counter::default();
        registry.register(
            "store_statements",
            "Statements sent to the database, transaction control included",
            store_statements.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            inbox_waiters,
            tasks_claimed,
            dispatch_latency,
            platform_revenue,
            webhook_attempts,
            webhook_backlog,
            chores,
            chore_runs,
            store_statements,
            statements_copy: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Adds a frontend's metric to the one registry (at start-up).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().unwrap_or_else(|p| p.into_inner()).register(name, help, metric);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry.lock().unwrap_or_else(|p| p.into_inner())) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

impl crate::App {
    /// Reads the figures that come from the database (revenue, webhook backlog, background
    /// work) into their gauges, then renders every metric.
    pub async fn render_metrics(&self) -> String {
        let m = self.metrics();
        {
            // Before this scrape's own reads, so that one scrape to the next counts only
            // what ran between them.
            let _one = m.statements_copy.lock().unwrap_or_else(|p| p.into_inner());
            let total = self.store().statements();
            m.store_statements.inc_by(total.saturating_sub(m.store_statements.get()));
        }
        let mut read = self.store().read();
        // The ledger, not a process counter, is the truth.
        match read.revenue().await {
            Ok(totals) => {
                for (currency, amount) in totals {
                    m.platform_revenue
                        .get_or_create(&CurrencyLabels { currency: currency.to_string() })
                        .set(amount);
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not read revenue from the ledger"),
        }
        match read.pending_deliveries().await {
            Ok(n) => {
                m.webhook_backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not count pending webhook deliveries"),
        }
        match read.chore_counts().await {
            Ok(c) => {
                for (state, n) in [("queued", c.queued), ("running", c.running), ("failed", c.failed)] {
                    m.chores.get_or_create(&StateLabels { state }).set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not count background work"),
        }
        m.render()
    }
}
