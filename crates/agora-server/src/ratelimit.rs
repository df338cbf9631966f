//! Rate limits: the default per-key / per-IP limit and named ones (SPEC §6), using
//! `governor`'s keyed GCRA limiters. Limits are kept per process: with several replicas
//! each one counts its own share.

use std::{collections::HashMap, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use crate::{
    config::{Config, RateSpec},
    error::ApiError,
};

type Limiter = DefaultKeyedRateLimiter<String>;

#[derive(Debug)]
pub struct RateLimits {
    default: Option<Limiter>,
    named: HashMap<String, Limiter>,
}

fn limiter(spec: RateSpec) -> Option<Limiter> {
    let burst = NonZeroU32::new(spec.count)?;
    // COUNT per PERIOD: a full bucket of COUNT, refilled one request every PERIOD / COUNT.
    let quota = Quota::with_period(spec.period / spec.count)?.allow_burst(burst);
    Some(Limiter::keyed(quota))
}

impl RateLimits {
    pub fn new(config: &Config) -> Self {
        let default =
            limiter(RateSpec { count: config.rate_limit_per_minute, period: Duration::from_secs(60) });
        let named = config
            .rate_limits
            .iter()
            .filter_map(|(name, spec)| Some((name.clone(), limiter(*spec)?)))
            .collect();
        Self { default, named }
    }

    /// Charges one request to `key` under the default limit.
    pub fn check_default(&self, key: &str) -> Result<(), ApiError> {
        self.default.as_ref().map_or(Ok(()), |l| check(l, key))
    }

    /// Charges one request to `key` under the named limit (if the operator configured it).
    pub fn check(&self, name: &str, key: &str) -> Result<(), ApiError> {
        self.named.get(name).map_or(Ok(()), |l| check(l, key))
    }

    /// Forgets keys whose buckets are full again, so memory follows active clients only.
    pub fn sweep(&self) {
        for l in self.default.iter().chain(self.named.values()) {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn check(limiter: &Limiter, key: &str) -> Result<(), ApiError> {
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        // Round up: retrying after a truncated wait would be refused again.
        ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_a_retry_after() {
        let cfg = Config { rate_limit_per_minute: 3, ..Config::default() };
        let limits = RateLimits::new(&cfg);
        for _ in 0..3 {
            assert!(limits.check_default("a").is_ok());
        }
        let err = limits.check_default("a").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(limits.check_default("b").is_ok(), "keys are limited separately");
    }

    #[test]
    fn zero_disables_the_default_limit() {
        let limits = RateLimits::new(&Config { rate_limit_per_minute: 0, ..Config::default() });
        for _ in 0..1000 {
            assert!(limits.check_default("a").is_ok());
        }
        assert!(limits.check("unconfigured", "a").is_ok());
    }
}
