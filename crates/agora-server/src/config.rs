//! The one typed configuration (SPEC §11), built by the binary from defaults, then an
//! optional TOML file, then `AGORA_…` environment variables, then flags, and passed through
//! the application state. Nothing reads the environment anywhere else.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

pub use agora_app::limits::RateSpec;
use agora_core::money::Currencies;
use serde::Deserialize;

/// Every setting. TOML keys are these field names; environment variables are `AGORA_` + the
/// name in upper case.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; unset means SQLite in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    /// Where the SQLite file and other local state live.
    pub data_dir: PathBuf,
    /// Default per-key and per-IP limit (requests per minute); 0 disables rate limiting.
    pub rate_limit_per_minute: u32,
    /// Named limits, `name = "COUNT/PERIOD"` with PERIOD one of second, minute, hour, day.
    pub rate_limits: BTreeMap<String, RateSpec>,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_seconds: u64,
    /// The URL people reach this server at (printed at start; defaults to `http://<listen>`).
    pub public_url: Option<String>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Platform fee in basis points (1000 = 10 %), taken from every payment to a worker.
    pub platform_fee_bps: u32,
    /// Free AI-team briefs per account per calendar month (UTC).
    pub quota_monthly_free: u32,
    /// Currencies beyond (or overriding) the built-in ones: `CODE = exponent`.
    pub currencies: BTreeMap<String, u32>,
    /// How long an agent holds a claimed task without reporting progress.
    pub lease_seconds: u64,
    /// Delivered work is accepted automatically after this many hours (fractions allowed).
    pub auto_accept_hours: f64,
    /// After a revision request, how many hours the worker has before the requester may
    /// cancel for a refund (fractions allowed).
    pub revision_hours: f64,
    /// How often background workers look for leases that ran out and deliveries due for
    /// auto-accept, in milliseconds.
    pub worker_interval_ms: u64,
    /// Allow `http` and private, loopback or link-local webhook targets (tests, private
    /// networks). Off, webhook URLs must be `https` and reach public addresses only.
    pub allow_private_webhooks: bool,
    /// Delays between webhook delivery attempts, e.g. `5s,5m,30m,2h,5h,10h,10h`.
    pub webhook_retry_schedule: String,
    /// A webhook endpoint failing without a success for this many hours is disabled and
    /// its owner notified (fractions allowed).
    pub webhook_disable_after_hours: f64,
    /// The currency of the AgentFlow dialect's integer point amounts (`/compat/agentflow`).
    pub agentflow_currency: String,
    /// The largest amount one operation may name (price, reward, top-up), in minor units.
    pub max_amount: i64,
    /// A bearer token that may read `/metrics` (besides admins); unset, only admins may.
    pub metrics_token: Option<String>,
    /// How long a connection may take to send a request's headers, in seconds.
    pub header_read_timeout_seconds: u64,
    /// How long a request's body may take to arrive, in seconds.
    pub body_read_timeout_seconds: u64,
    /// The most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// The moderation queue: the first this-many bids of an account younger than
    /// `bid_review_account_days` wait for an admin's approval (0: off).
    pub bid_review_first_bids: u32,
    pub bid_review_account_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("./agora-data"),
            rate_limit_per_minute: 100,
            rate_limits: agora_app::limits::default_named(),
            body_limit_bytes: 1024 * 1024,
            access_token_ttl_seconds: 3600,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
            public_url: None,
            log_format: LogFormat::Text,
            platform_fee_bps: 1000,
            quota_monthly_free: 10,
            currencies: BTreeMap::new(),
            lease_seconds: 300,
            auto_accept_hours: 72.0,
            revision_hours: 72.0,
            worker_interval_ms: 1000,
            allow_private_webhooks: false,
            webhook_retry_schedule: agora_core::webhook::DEFAULT_RETRY_SCHEDULE.to_owned(),
            webhook_disable_after_hours: 120.0,
            agentflow_currency: "PTS".to_owned(),
            max_amount: agora_core::money::MaxAmount::default().0,
            metrics_token: None,
            header_read_timeout_seconds: 10,
            body_read_timeout_seconds: 30,
            max_connections: 10_000,
            bid_review_first_bids: 0,
            bid_review_account_days: 7,
        }
    }
}

impl Config {
    /// Checks what serde cannot: ranges and currency codes. Run once at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.platform_fee_bps > agora_core::money::MAX_BPS {
            return Err(format!("platform_fee_bps must be 0-{}", agora_core::money::MAX_BPS));
        }
        if !(1..=86_400).contains(&self.lease_seconds) {
            return Err("lease_seconds must be 1-86400".to_owned());
        }
        if !(self.auto_accept_hours.is_finite() && (0.0..=8760.0).contains(&self.auto_accept_hours)) {
            return Err("auto_accept_hours must be 0-8760".to_owned());
        }
        if !(self.revision_hours.is_finite() && (0.0..=8760.0).contains(&self.revision_hours)) {
            return Err("revision_hours must be 0-8760".to_owned());
        }
        if !(10..=60_000).contains(&self.worker_interval_ms) {
            return Err("worker_interval_ms must be 10-60000".to_owned());
        }
        self.webhook_retry_schedule
            .parse::<agora_core::webhook::RetrySchedule>()
            .map_err(|e| format!("webhook_retry_schedule: {e}"))?;
        if !(self.webhook_disable_after_hours.is_finite()
            && (0.0..=8760.0).contains(&self.webhook_disable_after_hours))
        {
            return Err("webhook_disable_after_hours must be 0-8760".to_owned());
        }
        if self.max_amount < 1 {
            return Err("max_amount must be at least 1".to_owned());
        }
        if self.metrics_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err("metrics_token must be at least 16 characters".to_owned());
        }
        if !(1..=3600).contains(&self.header_read_timeout_seconds) {
            return Err("header_read_timeout_seconds must be 1-3600".to_owned());
        }
        if !(1..=3600).contains(&self.body_read_timeout_seconds) {
            return Err("body_read_timeout_seconds must be 1-3600".to_owned());
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err("max_connections must be 1-1000000".to_owned());
        }
        let table = self.currency_table()?;
        table.parse(&self.agentflow_currency).map_err(|e| format!("agentflow_currency: {e}"))?;
        Ok(())
    }

    /// The built-in currencies with the configured ones added.
    pub fn currency_table(&self) -> Result<Currencies, String> {
        self.currencies.iter().try_fold(Currencies::default(), |all, (code, exp)| {
            all.with(code, *exp).map_err(|e| format!("currencies.{code}: {e}"))
        })
    }

    /// What the application needs of the configuration. Run after [`Config::validate`];
    /// an embedder that skipped it gets defaults for what does not parse.
    pub fn app_settings(&self) -> agora_app::Settings {
        let hours = |h: f64| (h * 3_600_000.0) as i64;
        agora_app::Settings {
            lease_ms: i64::try_from(self.lease_seconds).unwrap_or(300).saturating_mul(1000),
            // Validated to 0-8760 hours, so the products fit easily.
            auto_accept_ms: hours(self.auto_accept_hours),
            revision_ms: hours(self.revision_hours),
            fee_bps: self.platform_fee_bps,
            quota_monthly_free: i64::from(self.quota_monthly_free),
            currencies: self.currency_table().unwrap_or_else(|e| {
                tracing::error!(error = %e, "invalid currency configuration; using the built-in currencies");
                Currencies::default()
            }),
            access_token_ttl_seconds: self.access_token_ttl_seconds,
            refresh_token_ttl_seconds: self.refresh_token_ttl_seconds,
            rate_limit_per_minute: self.rate_limit_per_minute,
            rate_limits: self.rate_limits.clone(),
            webhook_retry: self.webhook_retry_schedule.parse().unwrap_or_default(),
            webhook_disable_after_ms: hours(self.webhook_disable_after_hours),
            allow_private_webhooks: self.allow_private_webhooks,
            worker_interval: Duration::from_millis(self.worker_interval_ms),
            max_amount: agora_core::money::MaxAmount(self.max_amount),
            bid_review_first_bids: self.bid_review_first_bids,
            bid_review_account_days: self.bid_review_account_days,
        }
    }

    /// The base URL to show people.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The database URL in effect: the configured one, or the SQLite file in `data_dir`.
    pub fn effective_database_url(&self) -> DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl(format!("sqlite://{}", self.data_dir.join("agora.db").display())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A database URL whose password never reaches a log.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else { return self.0.clone() };
        let Some((userinfo, host)) = rest.split_once('@') else { return self.0.clone() };
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The commented example printed by `agora config example`. A test parses it, so it stays valid.
pub const EXAMPLE: &str = r#"# Agora configuration. Every setting is optional; shown here with its default.
# Precedence: flags > AGORA_* environment variables > this file > defaults.
# Load it with `agora serve --config agora.toml` (or AGORA_CONFIG=agora.toml).

# Address to serve on (AGORA_LISTEN).
listen = "127.0.0.1:8080"

# sqlite://path or postgres://user:password@host/db (AGORA_DATABASE_URL or DATABASE_URL).
# Unset: SQLite at <data_dir>/agora.db.
# database_url = "postgres://agora@127.0.0.1:5432/agora"

# Where the SQLite file and other local state live (AGORA_DATA_DIR).
data_dir = "./agora-data"

# Requests per minute per API key or token, and per IP for anonymous calls; 0 disables
# rate limiting (AGORA_RATE_LIMIT_PER_MINUTE).
rate_limit_per_minute = 100

# Largest request body in bytes (AGORA_BODY_LIMIT_BYTES); larger ones get 413.
body_limit_bytes = 1048576

# Lifetimes of login tokens (AGORA_ACCESS_TOKEN_TTL_SECONDS, AGORA_REFRESH_TOKEN_TTL_SECONDS).
access_token_ttl_seconds = 3600
refresh_token_ttl_seconds = 2592000

# The URL people reach this server at, printed at start (AGORA_PUBLIC_URL).
# public_url = "https://agora.example.com"

# "text" or "json" logs (AGORA_LOG_FORMAT). Verbosity: RUST_LOG, e.g. RUST_LOG=agora=debug.
log_format = "text"

# Platform fee in basis points, taken from every payment to a worker; 1000 = 10 %
# (AGORA_PLATFORM_FEE_BPS). Fees round down: 1000 bps of 5 is 0.
platform_fee_bps = 1000

# Free AI-team briefs per account per calendar month, UTC (AGORA_QUOTA_MONTHLY_FREE).
quota_monthly_free = 10

# How long an agent holds a claimed task without reporting progress; when the lease runs
# out, a chat turn or service run fails and its requester is refunded (AGORA_LEASE_SECONDS).
lease_seconds = 300

# Delivered work is accepted automatically after this many hours (AGORA_AUTO_ACCEPT_HOURS).
auto_accept_hours = 72.0

# After a revision request, the worker has this many hours to deliver again; then the
# requester may cancel for a refund (AGORA_REVISION_HOURS).
revision_hours = 72.0

# How often background workers look for expired leases and due auto-accepts, in
# milliseconds (AGORA_WORKER_INTERVAL_MS).
worker_interval_ms = 1000

# Allow http and private/loopback/link-local webhook targets: tests and private networks
# only (AGORA_ALLOW_PRIVATE_WEBHOOKS).
allow_private_webhooks = false

# Delays between webhook delivery attempts: units ms, s, m, h, d; n delays = n + 1
# attempts (AGORA_WEBHOOK_RETRY_SCHEDULE).
webhook_retry_schedule = "5s,5m,30m,2h,5h,10h,10h"

# An endpoint failing without a success for this many hours is disabled and its owner
# notified (AGORA_WEBHOOK_DISABLE_AFTER_HOURS).
webhook_disable_after_hours = 120.0

# The currency of the AgentFlow dialect's integer amounts (price, reward_amount,
# budget_frozen…) under /compat/agentflow (AGORA_AGENTFLOW_CURRENCY).
agentflow_currency = "PTS"

# The largest amount one operation may name (a price, a reward, a top-up), in minor units
# of its currency; larger ones are refused with 422 (AGORA_MAX_AMOUNT).
max_amount = 1000000000000000

# /metrics answers admins, and whoever presents this bearer token (at least 16
# characters): set it for your Prometheus scraper (AGORA_METRICS_TOKEN).
# metrics_token = "a long random string"

# Slow or stalled clients: seconds to send a request's headers, and its body
# (AGORA_HEADER_READ_TIMEOUT_SECONDS, AGORA_BODY_READ_TIMEOUT_SECONDS).
header_read_timeout_seconds = 10
body_read_timeout_seconds = 30

# Connections served at once; further ones wait in the listen queue until one closes.
# Keep it below the process's open-file limit (AGORA_MAX_CONNECTIONS).
max_connections = 10000

# The moderation queue: the first N bids of accounts younger than D days wait for an
# admin (GET /api/v1/admin/bids/pending-review) before the job's requester sees them;
# 0 turns it off (AGORA_BID_REVIEW_FIRST_BIDS, AGORA_BID_REVIEW_ACCOUNT_DAYS).
bid_review_first_bids = 0
bid_review_account_days = 7

# Named limits: COUNT/PERIOD with PERIOD second, minute, hour or day. This table replaces
# the defaults, so list every limit you want.
[rate_limits]
# Logins and registrations per IP.
auth = "20/minute"
# Chat turns per IP.
chat = "60/minute"
# Invitations to bid per requester.
invitations = "10/day"

# Currencies besides the built-in PTS (0 decimals), CNY, HKD, USD (2) and USDC (6):
# CODE = number of decimals of its minor unit. Amounts in the API are minor units.
[currencies]
# EUR = 2
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        let parsed: Config = toml::from_str(EXAMPLE).unwrap();
        let d = Config::default();
        assert_eq!(parsed.listen, d.listen);
        assert_eq!(parsed.data_dir, d.data_dir);
        assert_eq!(parsed.rate_limit_per_minute, d.rate_limit_per_minute);
        assert_eq!(parsed.rate_limits, d.rate_limits);
        assert_eq!(parsed.body_limit_bytes, d.body_limit_bytes);
        assert_eq!(parsed.access_token_ttl_seconds, d.access_token_ttl_seconds);
        assert_eq!(parsed.refresh_token_ttl_seconds, d.refresh_token_ttl_seconds);
        assert_eq!(parsed.log_format, d.log_format);
        assert_eq!(parsed.platform_fee_bps, d.platform_fee_bps);
        assert_eq!(parsed.quota_monthly_free, d.quota_monthly_free);
        assert_eq!(parsed.currencies, d.currencies);
        assert_eq!(parsed.lease_seconds, d.lease_seconds);
        assert_eq!(parsed.auto_accept_hours, d.auto_accept_hours);
        assert_eq!(parsed.revision_hours, d.revision_hours);
        assert_eq!(parsed.worker_interval_ms, d.worker_interval_ms);
        assert_eq!(parsed.allow_private_webhooks, d.allow_private_webhooks);
        assert_eq!(parsed.webhook_retry_schedule, d.webhook_retry_schedule);
        assert_eq!(parsed.webhook_disable_after_hours, d.webhook_disable_after_hours);
        assert_eq!(parsed.agentflow_currency, d.agentflow_currency);
        assert_eq!(parsed.max_amount, d.max_amount);
        assert_eq!(parsed.metrics_token, d.metrics_token);
        assert_eq!(parsed.header_read_timeout_seconds, d.header_read_timeout_seconds);
        assert_eq!(parsed.body_read_timeout_seconds, d.body_read_timeout_seconds);
        assert_eq!(parsed.max_connections, d.max_connections);
    }

    #[test]
    fn fees_and_currencies_are_checked() {
        assert!(Config::default().validate().is_ok());
        assert!(Config { platform_fee_bps: 10_001, ..Config::default() }.validate().is_err());
        let extra = Config { currencies: BTreeMap::from([("EUR".into(), 2)]), ..Config::default() };
        let table = extra.currency_table().unwrap();
        assert_eq!(table.exponent(&table.parse("EUR").unwrap()), Some(2));
        let bad = Config { currencies: BTreeMap::from([("eur".into(), 2)]), ..Config::default() };
        assert!(bad.validate().is_err());
        let bad = Config { webhook_retry_schedule: "5 minutes".into(), ..Config::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("listen_addr = \"x\"").is_err());
    }

    #[test]
    fn database_passwords_never_print() {
        let url = DatabaseUrl("postgres://agora:hunter2@db:5432/agora".into());
        assert_eq!(url.redacted(), "postgres://agora:***@db:5432/agora");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!format!("{url}").contains("hunter2"));
        let cfg = Config { database_url: Some(url), ..Config::default() };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
