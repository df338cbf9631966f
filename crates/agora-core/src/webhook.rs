//! Webhooks (SPEC §7): which events an endpoint can subscribe to (the names come from the
//! event catalogue, `crate::event`), how a delivery is signed (Standard Webhooks), when a
//! failed one is tried again, and which network addresses a delivery may reach.

use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Invalid, event::EventType};

/// The most endpoints one account may register.
pub const MAX_ENDPOINTS: usize = 20;

/// The most types one endpoint may list.
pub const MAX_EVENT_TYPES: usize = 64;

/// Checks an endpoint's subscription: `*` (everything), an event type, or `noun.*` (every
/// type of one noun). Unknown names are refused rather than silently never matching.
pub fn parse_event_types(raw: &[String]) -> Result<Vec<String>, Invalid> {
    if raw.is_empty() {
        return Err(Invalid::field("event_types", "must name at least one event type, or \"*\""));
    }
    if raw.len() > MAX_EVENT_TYPES {
        return Err(Invalid::field("event_types", format!("must list at most {MAX_EVENT_TYPES} types")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let t = t.trim();
        let known = t == "*"
            || EventType::parse(t).is_some()
            || t.strip_suffix(".*").is_some_and(|noun| EventType::ALL.iter().any(|e| e.noun() == noun));
        if !known {
            return Err(Invalid::field(
                format!("event_types/{i}"),
                format!(
                    "unknown event type {t:?}; use \"*\", a type such as \"task.completed\", or \"task.*\""
                ),
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// Whether an endpoint subscribed to `types` receives an event of `event_type`.
pub fn subscribed(types: &[String], event_type: EventType) -> bool {
    let event_type = event_type.as_str();
    types.iter().any(|t| {
        t == "*"
            || t == event_type
            || t.strip_suffix(".*")
                .is_some_and(|noun| event_type.strip_prefix(noun).is_some_and(|rest| rest.starts_with('.')))
    })
}

/// The delays between delivery attempts (SPEC §11 `AGORA_WEBHOOK_RETRY_SCHEDULE`): a
/// delivery is tried once, then once after each delay, so `n` delays make `n + 1` attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<i64>);

/// The default: 8 attempts over about 27.5 hours.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

impl Default for RetrySchedule {
    fn default() -> Self {
        Self(vec![5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000])
    }
}

impl RetrySchedule {
    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> usize {
        self.0.len() + 1
    }

    /// The wait, in milliseconds, before the attempt after `made` failed ones (`made` ≥ 1),
    /// spread by `jitter` (0.0–1.0, uniformly random) to ±10 % so that deliveries failing
    /// together do not come back together; `None` when no attempt is left.
    pub fn delay_after(&self, made: usize, jitter: f64) -> Option<i64> {
        let base = *self.0.get(made.checked_sub(1)?)?;
        let spread = (base as f64) * 0.2 * (jitter.clamp(0.0, 1.0) - 0.5);
        Some((base as f64 + spread).round().max(0.0) as i64)
    }
}

impl FromStr for RetrySchedule {
    type Err = String;

    /// `5s,5m,30m,2h`: durations with a unit (`ms`, `s`, `m`, `h`, `d`), comma-separated.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut delays = Vec::new();
        for part in s.split(',').map(str::trim) {
            let split = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
            let (n, unit) = part.split_at(split);
            let n: i64 = n.parse().map_err(|_| format!("{part:?}: expected a number and a unit, e.g. 5m"))?;
            let ms = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("{part:?}: unit must be ms, s, m, h or d")),
            };
            let delay = n.checked_mul(ms).filter(|d| *d <= 30 * 86_400_000);
            delays.push(delay.ok_or_else(|| format!("{part:?}: at most 30 days"))?);
        }
        if delays.len() > 20 {
            return Err("at most 20 retries".to_owned());
        }
        Ok(Self(delays))
    }
}

/// The `webhook-signature` value of a Standard Webhooks delivery: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed with the base64 bytes after `whsec_`.
/// `None` if the secret is not of that form.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The secrets a delivery is signed with at `now`: the current one, and a rotated-out one
/// while its overlap lasts (Standard Webhooks sends one signature per secret, so a
/// receiver still holding the old secret verifies during the switch).
pub fn signing_secrets(
    current: &str,
    previous: Option<&(String, crate::Timestamp)>,
    now: crate::Timestamp,
) -> Vec<String> {
    let mut all = vec![current.to_owned()];
    if let Some((old, until)) = previous
        && *until > now
    {
        all.push(old.clone());
    }
    all
}

/// Why a delivery may not go to `ip` (SSRF guard), or `None` if it may: loopback, private,
/// link-local (cloud metadata lives there), shared (CGNAT), multicast, unspecified,
/// broadcast, documentation and reserved ranges, and IPv6 forms that embed such an IPv4.
pub fn blocked_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_v4(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback address")
            } else if v6.is_unspecified() {
                Some("unspecified address")
            } else if v6.is_multicast() {
                Some("multicast address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local) address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local address")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation address")
            } else if seg[..6] == [0; 6] {
                // IPv4-compatible (deprecated) `::a.b.c.d`.
                blocked_v4(Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                ))
                .or(Some("IPv4-compatible address"))
            } else if seg[..4] == [0, 0, 0, 0] && seg[4] == 0xffff && seg[5] == 0 {
                // IPv4-translated `::ffff:0:a.b.c.d`.
                Some("IPv4-translated address")
            } else if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001 {
                // Local-use NAT64 `64:ff9b:1::/48` embeds the IPv4 elsewhere; refuse it outright.
                Some("local NAT64 address")
            } else if seg[0] == 0x0064 && seg[1] == 0xff9b {
                // NAT64 `64:ff9b::/96` reaches the embedded IPv4.
                blocked_v4(Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                ))
            } else if seg[0] == 0x2002 {
                // 6to4 `2002:a.b.c.d::/48` reaches the embedded IPv4.
                blocked_v4(Ipv4Addr::new(
                    (seg[1] >> 8) as u8,
                    seg[1] as u8,
                    (seg[2] >> 8) as u8,
                    seg[2] as u8,
                ))
            } else {
                None
            }
        }
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback address")
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata address")
    } else if ip.is_private() {
        Some("private address")
    } else if ip.is_link_local() {
        Some("link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT) address")
    } else if ip.is_multicast() {
        Some("multicast address")
    } else if a == 0 {
        Some("unspecified address")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved address")
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Some("documentation address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking address")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_exact_wildcard_and_noun() {
        let types = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(subscribed(&types(&["*"]), EventType::PaymentHeld));
        assert!(subscribed(&types(&["task.completed"]), EventType::TaskCompleted));
        assert!(!subscribed(&types(&["task.completed"]), EventType::TaskCreated));
        assert!(subscribed(&types(&["payment.*"]), EventType::PaymentCryptoConfirmed));
        assert!(!subscribed(&types(&["task.*"]), EventType::MessageReceived));
        assert!(parse_event_types(&types(&["task.*", "payment.held", "task.*"])).unwrap().len() == 2);
        assert!(parse_event_types(&types(&["task.complete"])).is_err());
        assert!(parse_event_types(&types(&["nope.*"])).is_err());
        assert!(parse_event_types(&[]).is_err());
    }

    #[test]
    fn retry_schedules_parse_and_spread() {
        let s: RetrySchedule = DEFAULT_RETRY_SCHEDULE.parse().unwrap();
        assert_eq!(s, RetrySchedule::default());
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.delay_after(1, 0.5), Some(5_000));
        assert_eq!(s.delay_after(1, 0.0), Some(4_500));
        assert_eq!(s.delay_after(1, 1.0), Some(5_500));
        assert_eq!(s.delay_after(7, 0.5), Some(36_000_000));
        assert_eq!(s.delay_after(8, 0.5), None);
        assert_eq!(s.delay_after(0, 0.5), None);
        assert_eq!("250ms,1s".parse::<RetrySchedule>().unwrap().delay_after(1, 0.5), Some(250));
        assert!("5x".parse::<RetrySchedule>().is_err());
        assert!("m".parse::<RetrySchedule>().is_err());
        assert!("31d".parse::<RetrySchedule>().is_err());
    }

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signatures_follow_standard_webhooks() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        assert_eq!(sign("nope", "a", 1, b""), None);
    }

    #[test]
    fn private_and_special_addresses_are_blocked() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::ffff:0:7f00:1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(blocked_address(ip.parse().unwrap()).is_some(), "{ip} must be blocked");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "100.128.0.1", "172.32.0.1"] {
            assert_eq!(blocked_address(ip.parse().unwrap()), None, "{ip} must be allowed");
        }
        assert_eq!(blocked_address("169.254.169.254".parse().unwrap()), Some("cloud metadata address"));
    }
}
