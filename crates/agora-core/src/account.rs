//! Accounts: humans and agents, their roles, credentials' inputs and profiles (SPEC §2).

use serde::{Deserialize, Serialize};

use crate::{AccountId, Invalid, Timestamp, money::MaxAmount, validation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Human,
    Agent,
}

impl AccountKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(Self::Human),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A login email, trimmed and lower-cased so that one address is one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let v = s.trim().to_lowercase();
        let ok = v.len() <= 254
            && v.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            })
            && !v.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok { Ok(Self(v)) } else { Err(Invalid::field("", "must be an email address")) }
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed; its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 256;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let n = s.chars().count();
        if n < Self::MIN {
            return Err(Invalid::field("", format!("must be at least {} characters", Self::MIN)));
        }
        if n > Self::MAX {
            return Err(Invalid::field("", format!("must be at most {} characters", Self::MAX)));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

pub fn parse_name(s: &str) -> Result<String, Invalid> {
    validation::text(s, 1, 100)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortfolioKind {
    Image,
    Link,
    Video,
}

impl PortfolioKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(Self::Image),
            "link" => Some(Self::Link),
            "video" => Some(Self::Video),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortfolioItem {
    pub title: String,
    pub url: String,
    pub kind: PortfolioKind,
}

/// Prices an agent or provider asks, in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Pricing {
    pub currency: Option<String>,
    pub chat_first_message: Option<i64>,
    pub chat_subsequent_message: Option<i64>,
    pub per_task: Option<i64>,
    pub hourly: Option<i64>,
}

/// The editable part of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub description: String,
    pub skills: Vec<String>,
    pub model_name: Option<String>,
    pub pricing: Pricing,
    /// How many tasks the account works on at once; the seeds' "exclusive mode" is 1.
    pub max_concurrent_tasks: u32,
    pub wallet_address: Option<String>,
    pub portfolio: Vec<PortfolioItem>,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            description: String::new(),
            skills: Vec::new(),
            model_name: None,
            pricing: Pricing::default(),
            max_concurrent_tasks: 1,
            wallet_address: None,
            portfolio: Vec::new(),
        }
    }
}

/// Raw profile fields as they arrive; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct ProfileInput {
    pub description: Option<String>,
    pub skills: Option<Vec<String>>,
    pub model_name: Option<Option<String>>,
    /// Prices as given; checked by `Profile::apply`.
    pub pricing: Option<Pricing>,
    pub max_concurrent_tasks: Option<i64>,
    pub wallet_address: Option<Option<String>>,
    pub portfolio: Option<Vec<PortfolioInput>>,
}

#[derive(Debug, Clone)]
pub struct PortfolioInput {
    pub title: String,
    pub url: String,
    pub kind: String,
}

pub const MAX_SKILLS: usize = 50;
pub const MAX_PORTFOLIO: usize = 50;
pub const MAX_CONCURRENT_TASKS: i64 = 1000;

/// A skill tag: 1–50 characters of `a-z 0-9 - _ . + #`, lower-cased. The restricted alphabet
/// also lets storage match a tag inside its JSON list without escaping.
/// A skill tag (also a job's tag or category): 1–50 letters of any script (lower-cased),
/// digits and `- _ . + #`, so `翻译` and `c++` are tags. No quote, `%` or space can occur,
/// which lets a stored JSON list of tags be matched one whole element at a time.
pub fn parse_skill(s: &str) -> Result<String, Invalid> {
    let v = s.trim().to_lowercase();
    let ok = (1..=50).contains(&v.chars().count())
        && v.chars().all(|c| c.is_alphanumeric() || "-_.+#".contains(c));
    if ok { Ok(v) } else { Err(Invalid::field("", "must be 1-50 letters, digits or - _ . + #")) }
}

/// A currency code as written in pricing: 2–10 upper-case letters.
pub fn parse_currency(s: &str) -> Result<String, Invalid> {
    let ok = (2..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Invalid::field("", "must be 2-10 upper-case letters, e.g. PTS or USD"))
    }
}

impl Profile {
    /// Applies `input` to this profile, checking every field; on error nothing is applied.
    pub fn apply(&self, input: ProfileInput, max: MaxAmount) -> Result<Profile, Invalid> {
        let mut inv = Invalid::default();
        let mut next = self.clone();
        if let Some(d) = input.description
            && let Some(d) = inv.collect("description", validation::text(&d, 0, 5000))
        {
            next.description = d;
        }
        if let Some(skills) = input.skills {
            if skills.len() > MAX_SKILLS {
                inv.push("skills", format!("at most {MAX_SKILLS} skills"));
            }
            let mut parsed = Vec::with_capacity(skills.len());
            for (i, s) in skills.iter().enumerate() {
                if let Some(s) = inv.collect(&format!("skills[{i}]"), parse_skill(s))
                    && !parsed.contains(&s)
                {
                    parsed.push(s);
                }
            }
            next.skills = parsed;
        }
        if let Some(m) = input.model_name {
            next.model_name = match m {
                None => None,
                Some(m) => inv.collect("model_name", validation::text(&m, 1, 100)),
            };
        }
        if let Some(p) = input.pricing {
            next.pricing = Pricing {
                currency: match p.currency {
                    None => None,
                    Some(c) => inv.collect("pricing.currency", parse_currency(&c)),
                },
                chat_first_message: amount(&mut inv, "pricing.chat_first_message", p.chat_first_message, max),
                chat_subsequent_message: amount(
                    &mut inv,
                    "pricing.chat_subsequent_message",
                    p.chat_subsequent_message,
                    max,
                ),
                per_task: amount(&mut inv, "pricing.per_task", p.per_task, max),
                hourly: amount(&mut inv, "pricing.hourly", p.hourly, max),
            };
            let priced = [
                next.pricing.chat_first_message,
                next.pricing.chat_subsequent_message,
                next.pricing.per_task,
                next.pricing.hourly,
            ]
            .iter()
            .any(Option::is_some);
            if priced && next.pricing.currency.is_none() {
                inv.push("pricing.currency", "is required when a price is set");
            }
        }
        if let Some(n) = input.max_concurrent_tasks {
            match u32::try_from(n) {
                Ok(v) if (1..=MAX_CONCURRENT_TASKS).contains(&n) => next.max_concurrent_tasks = v,
                _ => {
                    inv.push("max_concurrent_tasks", format!("must be between 1 and {MAX_CONCURRENT_TASKS}"))
                }
            }
        }
        if let Some(w) = input.wallet_address {
            next.wallet_address = match w {
                None => None,
                Some(w) => inv.collect("wallet_address", validation::text(&w, 1, 200)),
            };
        }
        if let Some(items) = input.portfolio {
            if items.len() > MAX_PORTFOLIO {
                inv.push("portfolio", format!("at most {MAX_PORTFOLIO} items"));
            }
            let mut parsed = Vec::with_capacity(items.len());
            for (i, it) in items.into_iter().enumerate() {
                let title =
                    inv.collect(&format!("portfolio[{i}].title"), validation::text(&it.title, 1, 200));
                let url = inv.collect(&format!("portfolio[{i}].url"), validation::http_url(&it.url));
                let kind = PortfolioKind::parse(&it.kind);
                if kind.is_none() {
                    inv.push(format!("portfolio[{i}].kind"), "must be one of image, link, video");
                }
                if let (Some(title), Some(url), Some(kind)) = (title, url, kind) {
                    parsed.push(PortfolioItem { title, url, kind });
                }
            }
            next.portfolio = parsed;
        }
        inv.finish(|| next)
    }
}

fn amount(inv: &mut Invalid, path: &str, v: Option<i64>, max: MaxAmount) -> Option<i64> {
    match v {
        Some(a) if a < 0 => {
            inv.push(path, "must not be negative");
            None
        }
        Some(a) if a > max.0 => {
            max.check(inv, path, a);
            None
        }
        other => other,
    }
}

/// Counters kept per account and shown on its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub completed: i64,
    pub failed: i64,
    pub no_response: i64,
}

impl Counters {
    /// Completed over all finished tasks, in whole percent; `None` before the first one.
    pub fn success_rate(&self) -> Option<u8> {
        let total = self.completed + self.failed + self.no_response;
        (total > 0).then(|| u8::try_from(self.completed * 100 / total).unwrap_or(100))
    }
}

/// How recently an agent must have been seen to count as online (SPEC §3).
pub const ONLINE_WINDOW_SECS: i64 = 120;

/// An account as the rest of the system sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub role: Role,
    pub name: String,
    pub email: Option<Email>,
    /// The person who registered this agent, if it did not register itself.
    pub owner_id: Option<AccountId>,
    pub profile: Profile,
    pub counters: Counters,
    pub banned_at: Option<Timestamp>,
    /// When the agent's owner was banned: a ban reaches the agents an owner registered,
    /// and lifting it restores them (read with the account, never stored on it).
    pub owner_banned_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    /// When the agent signed itself off; it stays offline until its next heartbeat, whatever
    /// its inbox polls do meanwhile.
    pub offline_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An agent's derived status (SPEC §3): `busy` when it holds as many tasks as it works on at
/// once, `offline` when not seen within [`ONLINE_WINDOW_SECS`] or signed off since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Idle,
    Busy,
    Offline,
}

impl Presence {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Offline => "offline",
        }
    }
}

impl Account {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Banned itself, or an agent whose owner is banned.
    pub fn is_banned(&self) -> bool {
        self.banned_at.is_some() || self.owner_banned_at.is_some()
    }

    /// Online: seen (heartbeat or inbox wait) within the last [`ONLINE_WINDOW_SECS`], and
    /// not signed off (a heartbeat ends a sign-off).
    pub fn is_online(&self, now: Timestamp) -> bool {
        self.last_seen_at
            .is_some_and(|t| t >= now.plus_seconds(-ONLINE_WINDOW_SECS) && self.offline_at.is_none())
    }

    /// The derived status, given how many tasks the account holds in progress.
    pub fn presence(&self, now: Timestamp, in_progress: i64) -> Presence {
        if !self.is_online(now) {
            Presence::Offline
        } else if in_progress >= i64::from(self.profile.max_concurrent_tasks) {
            Presence::Busy
        } else {
            Presence::Idle
        }
    }

    /// Whether `other` may manage this account: itself, or the owner of this agent.
    pub fn is_managed_by(&self, other: &AccountId) -> bool {
        &self.id == other || self.owner_id.as_ref() == Some(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ann@Example.COM ").map(|e| e.0), Ok("ann@example.com".to_owned()));
        for bad in ["", "ann", "@x.com", "ann@", "a b@x.com", "ann@.x", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::parse("short").is_err());
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn profile_apply_reports_every_bad_field_with_its_path() {
        let input = ProfileInput {
            skills: Some(vec!["rust".into(), "Bad Skill!".into()]),
            pricing: Some(Pricing { per_task: Some(-1), ..Default::default() }),
            max_concurrent_tasks: Some(0),
            portfolio: Some(vec![PortfolioInput {
                title: "x".into(),
                url: "ftp://x".into(),
                kind: "gif".into(),
            }]),
            ..Default::default()
        };
        let err = Profile::default().apply(input, MaxAmount::default()).unwrap_err();
        let paths: Vec<_> = err.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "skills[1]",
                "pricing.per_task",
                "max_concurrent_tasks",
                "portfolio[0].url",
                "portfolio[0].kind"
            ]
        );
    }

    #[test]
    fn profile_apply_changes_only_given_fields() {
        let base = Profile { description: "keep".into(), ..Default::default() };
        let next = base
            .apply(
                ProfileInput {
                    skills: Some(vec!["Rust".into(), "rust".into(), "sql".into()]),
                    pricing: Some(Pricing {
                        currency: Some("PTS".into()),
                        per_task: Some(5),
                        ..Default::default()
                    }),
                    max_concurrent_tasks: Some(3),
                    ..Default::default()
                },
                MaxAmount::default(),
            )
            .unwrap();
        assert_eq!(next.description, "keep");
        assert_eq!(next.skills, ["rust", "sql"]);
        assert_eq!(next.pricing.per_task, Some(5));
        assert_eq!(next.max_concurrent_tasks, 3);
    }

    #[test]
    fn a_price_needs_a_currency() {
        let err = Profile::default()
            .apply(
                ProfileInput {
                    pricing: Some(Pricing { hourly: Some(10), ..Default::default() }),
                    ..Default::default()
                },
                MaxAmount::default(),
            )
            .unwrap_err();
        assert_eq!(err.0[0].path, "pricing.currency");
    }

    #[test]
    fn a_price_above_the_maximum_is_refused() {
        let pricing =
            |v| Pricing { currency: Some("PTS".into()), chat_first_message: Some(v), ..Default::default() };
        let input = |v| ProfileInput { pricing: Some(pricing(v)), ..Default::default() };
        let max = MaxAmount(1000);
        assert!(Profile::default().apply(input(1000), max).is_ok());
        let err = Profile::default().apply(input(1001), max).unwrap_err();
        assert_eq!(
            (err.0[0].path.as_str(), err.0[0].message.as_str()),
            ("pricing.chat_first_message", "must be at most 1000 minor units")
        );
    }

    #[test]
    fn success_rate_is_a_whole_percent() {
        assert_eq!(Counters::default().success_rate(), None);
        assert_eq!(Counters { completed: 2, failed: 1, no_response: 0 }.success_rate(), Some(66));
    }
}
