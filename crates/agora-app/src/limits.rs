//! Rate limits: the default per-credential / per-IP limit and named ones (SPEC §6), using
//! `governor`'s keyed GCRA limiters. Limits are kept per process: with several replicas each
//! one counts its own share.

use std::{collections::HashMap, net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use serde::Deserialize;

use crate::{Settings, error::Error};

type Limiter = DefaultKeyedRateLimiter<String>;

/// The bucket of a client's address (`unknown` when the socket gave none).
pub fn ip_key(ip: Option<IpAddr>) -> String {
    format!("ip:{}", ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()))
}

/// `COUNT/PERIOD`, e.g. `60/minute` or `3/day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: u32,
    pub period: Duration,
}

impl std::str::FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, unit) =
            s.split_once('/').ok_or_else(|| format!("{s:?}: expected COUNT/PERIOD, e.g. 60/minute"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("{s:?}: COUNT must be a whole number"))?;
        let secs = match unit.trim() {
            "second" | "s" => 1,
            "minute" | "min" | "m" => 60,
            "hour" | "h" => 3600,
            "day" | "d" => 86_400,
            other => return Err(format!("{s:?}: unknown period {other:?} (second, minute, hour, day)")),
        };
        if count == 0 {
            return Err(format!("{s:?}: COUNT must be at least 1"));
        }
        Ok(Self { count, period: Duration::from_secs(secs) })
    }
}

impl<'de> Deserialize<'de> for RateSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The named limits that exist unless the operator overrides them.
pub fn default_named() -> std::collections::BTreeMap<String, RateSpec> {
    std::collections::BTreeMap::from([
        // Login and registration per IP: slows password guessing without bothering people.
        ("auth".to_owned(), RateSpec { count: 20, period: Duration::from_secs(60) }),
        // Chat turns per IP (AgentJob's limit on POST /api/chat).
        ("chat".to_owned(), RateSpec { count: 60, period: Duration::from_secs(60) }),
        // Invitations to bid per requester (SPEC §4: at most 10 a day).
        ("invitations".to_owned(), RateSpec { count: 10, period: Duration::from_secs(86_400) }),
    ])
}

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
    pub fn new(settings: &Settings) -> Self {
        let default =
            limiter(RateSpec { count: settings.rate_limit_per_minute, period: Duration::from_secs(60) });
        let named = settings
            .rate_limits
            .iter()
            .filter_map(|(name, spec)| Some((name.clone(), limiter(*spec)?)))
            .collect();
        Self { default, named }
    }

    /// Charges one request to `key` under the default limit.
    pub fn check_default(&self, key: &str) -> Result<(), Error> {
        self.default.as_ref().map_or(Ok(()), |l| check(l, key))
    }

    /// Charges one request to the client's address under the default limit (anonymous
    /// requests, failed credentials, refused paths).
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), Error> {
        self.check_default(&ip_key(ip))
    }

    /// Charges one request to `key` under the named limit (if the operator configured it).
    pub fn check(&self, name: &str, key: &str) -> Result<(), Error> {
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

fn check(limiter: &Limiter, key: &str) -> Result<(), Error> {
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        // Round up: retrying after a truncated wait would be refused again.
        Error::RateLimited { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_a_retry_after() {
        let limits = RateLimits::new(&Settings { rate_limit_per_minute: 3, ..Settings::default() });
        for _ in 0..3 {
            assert!(limits.check_default("a").is_ok());
        }
        assert!(
            matches!(limits.check_default("a"), Err(Error::RateLimited { retry_after_secs }) if retry_after_secs > 0)
        );
        assert!(limits.check_default("b").is_ok(), "keys are limited separately");
    }

    #[test]
    fn zero_disables_the_default_limit() {
        let limits = RateLimits::new(&Settings { rate_limit_per_minute: 0, ..Settings::default() });
        for _ in 0..1000 {
            assert!(limits.check_default("a").is_ok());
        }
        assert!(limits.check("unconfigured", "a").is_ok());
    }

    #[test]
    fn rate_specs_parse() {
        assert_eq!("60/minute".parse(), Ok(RateSpec { count: 60, period: Duration::from_secs(60) }));
        assert_eq!("3/day".parse::<RateSpec>().map(|r| r.period.as_secs()), Ok(86_400));
        assert!("0/minute".parse::<RateSpec>().is_err());
        assert!("5/fortnight".parse::<RateSpec>().is_err());
    }
}
