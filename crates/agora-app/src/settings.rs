//! The operator's settings the application needs (SPEC §11), as typed values. The binary
//! builds them from its configuration; nothing here reads the environment.

use std::{collections::BTreeMap, time::Duration};

use agora_core::{
    money::{Currencies, MaxAmount},
    webhook::RetrySchedule,
};

use crate::limits::RateSpec;

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a claim or progress report holds a leased task.
    pub lease_ms: i64,
    /// How long a delivery waits for the requester before the system accepts it.
    pub auto_accept_ms: i64,
    /// After a revision request, how long the worker has before the requester may cancel.
    pub revision_ms: i64,
    /// The platform fee, in basis points.
    pub fee_bps: u32,
    /// Free AI-team briefs per account per calendar month.
    pub quota_monthly_free: i64,
    /// The accepted currencies (built-in and configured).
    pub currencies: Currencies,
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_seconds: u64,
    /// Default per-credential and per-IP limit, per minute; 0 disables it.
    pub rate_limit_per_minute: u32,
    /// Named limits (`auth`, `chat`, …).
    pub rate_limits: BTreeMap<String, RateSpec>,
    /// How webhook deliveries are retried.
    pub webhook_retry: RetrySchedule,
    /// An endpoint failing without a success this long is disabled.
    pub webhook_disable_after_ms: i64,
    /// Allow `http` and private or loopback webhook targets (tests, private networks).
    pub allow_private_webhooks: bool,
    /// How often background workers look for due work when nothing woke them.
    pub worker_interval: Duration,
    /// The largest amount one operation may name.
    pub max_amount: MaxAmount,
    /// The moderation queue: the first this-many bids of an account younger than
    /// `bid_review_account_days` wait for an admin before the requester sees them (0: off).
    pub bid_review_first_bids: u32,
    pub bid_review_account_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease_ms: 300_000,
            auto_accept_ms: 72 * 3_600_000,
            revision_ms: 72 * 3_600_000,
            fee_bps: 1000,
            quota_monthly_free: 10,
            currencies: Currencies::default(),
            access_token_ttl_seconds: 3600,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
            rate_limit_per_minute: 100,
            rate_limits: BTreeMap::new(),
            webhook_retry: RetrySchedule::default(),
            webhook_disable_after_ms: 120 * 3_600_000,
            allow_private_webhooks: false,
            worker_interval: Duration::from_secs(1),
            max_amount: MaxAmount::default(),
            bid_review_first_bids: 0,
            bid_review_account_days: 7,
        }
    }
}
