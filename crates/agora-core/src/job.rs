//! Jobs and bids (SPEC §4 "Jobs"; seeds 003 and 004): what a posting and a bid may say,
//! who may bid, how bids rank, how a worker's record reads as a reputation, and the words
//! a job is found by. Plain rules; the application decides who acts and stores the result.

use serde::{Deserialize, Serialize};

use crate::{
    Invalid, account::AccountKind, account::parse_skill, money::MaxAmount, time::Timestamp, validation,
};

/// Longest job description (markdown).
pub const MAX_JOB_DESCRIPTION: usize = 20_000;
/// Most tags or requirements on a job.
pub const MAX_TAGS: usize = 20;
/// The bid limit a job gets when it names none.
pub const DEFAULT_BID_LIMIT: u32 = 50;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? } default $default:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $(#[doc = $s] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s,)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The one-of list for error messages.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }
    };
}

wire_enum!(
    /// How a job is priced.
    BudgetType { Fixed = "fixed", Bidding = "bidding", Hourly = "hourly" } default Fixed
);
wire_enum!(
    Priority { Low = "low", Normal = "normal", High = "high", Urgent = "urgent" } default Normal
);
wire_enum!(
    /// Who may bid.
    ExecutorPreference { HumanOnly = "human_only", AiOnly = "ai_only", Any = "any" } default Any
);
wire_enum!(
    /// `invite_only` jobs are seen and bid on by invited providers only.
    Privacy { Public = "public", InviteOnly = "invite_only" } default Public
);
wire_enum!(
    /// How bids win: the requester chooses, or when bidding closes the lowest valid bids
    /// win by themselves.
    Award { Choose = "choose", ReverseAuction = "reverse_auction" } default Choose
);

impl ExecutorPreference {
    /// Whether an account of `kind` may bid on (and is matched to) a job with this
    /// preference.
    pub fn admits(self, kind: AccountKind) -> bool {
        match self {
            Self::Any => true,
            Self::HumanOnly => kind == AccountKind::Human,
            Self::AiOnly => kind == AccountKind::Agent,
        }
    }
}

/// A job posting as it arrives; every field optional so that the same shape serves a
/// creation (where some are required) and a patch (overlaid on the current spec).
#[derive(Debug, Clone, Default)]
pub struct JobInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub requirements: Option<Vec<String>>,
    pub budget_type: Option<String>,
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    /// RFC 3339.
    pub deadline: Option<String>,
    pub bid_limit: Option<i64>,
    pub priority: Option<String>,
    pub executor_preference: Option<String>,
    pub privacy: Option<String>,
    pub max_workers: Option<i64>,
    pub award: Option<String>,
}

/// A checked job posting (its currency is checked by the caller, which knows the
/// platform's currencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    /// Lower case, deduplicated, in the order given.
    pub tags: Vec<String>,
    pub requirements: Vec<String>,
    pub budget_type: BudgetType,
    pub budget_min: i64,
    pub budget_max: i64,
    pub deadline: Option<Timestamp>,
    pub bid_limit: u32,
    pub priority: Priority,
    pub executor_preference: ExecutorPreference,
    pub privacy: Privacy,
    pub max_workers: u32,
    pub award: Award,
}

fn choice<T: Copy>(
    inv: &mut Invalid,
    path: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    default: T,
    choices: fn() -> String,
) -> T {
    match raw {
        None => default,
        Some(s) => parse(s).unwrap_or_else(|| {
            inv.push(path, format!("must be one of: {}", choices()));
            default
        }),
    }
}

impl JobSpec {
    /// Checks a new posting at `now`: a title and a budget are required; a deadline must be
    /// in the future; a reverse auction needs a deadline to close at.
    pub fn parse(j: JobInput, now: Timestamp, max: MaxAmount) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        let title = match &j.title {
            Some(t) => inv.collect("title", validation::text(t, 1, 200)),
            None => {
                inv.push("title", "is required");
                None
            }
        };
        let description = inv
            .collect(
                "description",
                validation::text(j.description.as_deref().unwrap_or(""), 0, MAX_JOB_DESCRIPTION),
            )
            .unwrap_or_default();
        let category = j.category.as_deref().and_then(|c| inv.collect("category", parse_skill(c)));
        let mut tags: Vec<String> = Vec::new();
        let raw_tags = j.tags.unwrap_or_default();
        if raw_tags.len() > MAX_TAGS {
            inv.push("tags", format!("at most {MAX_TAGS} tags"));
        }
        for (i, t) in raw_tags.iter().enumerate() {
            if let Some(t) = inv.collect(&format!("tags[{i}]"), parse_skill(t))
                && !tags.contains(&t)
            {
                tags.push(t);
            }
        }
        let raw_reqs = j.requirements.unwrap_or_default();
        if raw_reqs.len() > MAX_TAGS {
            inv.push("requirements", format!("at most {MAX_TAGS} requirements"));
        }
        let requirements: Vec<String> = raw_reqs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| inv.collect(&format!("requirements[{i}]"), validation::text(r, 1, 500)))
            .collect();
        let budget_type = choice(
            &mut inv,
            "budget_type",
            j.budget_type.as_deref(),
            BudgetType::parse,
            BudgetType::default(),
            BudgetType::choices,
        );
        let (min, max_budget) = match (j.budget_min, j.budget_max) {
            (None, None) => {
                inv.push("budget_max", "is required");
                (0, 0)
            }
            (min, max_b) => {
                let hi = max_b.or(min).unwrap_or(0);
                let lo = min.unwrap_or(hi);
                (lo, hi)
            }
        };
        if min <= 0 && (j.budget_min.is_some() || j.budget_max.is_some()) {
            inv.push("budget_min", "must be a positive whole number of minor units");
        }
        if max_budget < min {
            inv.push("budget_max", "must be at least budget_min");
        }
        max.check(&mut inv, "budget_max", max_budget);
        let deadline = j.deadline.as_deref().and_then(|d| match Timestamp::parse_rfc3339(d) {
            None => {
                inv.push("deadline", "must be an RFC 3339 time, e.g. 2026-12-31T23:59:59Z");
                None
            }
            Some(d) if d <= now => {
                inv.push("deadline", "must be in the future");
                None
            }
            Some(d) => Some(d),
        });
        let bid_limit = match j.bid_limit {
            None => DEFAULT_BID_LIMIT,
            Some(n) => u32::try_from(n).ok().filter(|n| (1..=1000).contains(n)).unwrap_or_else(|| {
                inv.push("bid_limit", "must be 1-1000");
                1
            }),
        };
        let max_workers = match j.max_workers {
            None => 1,
            Some(n) => u32::try_from(n).ok().filter(|n| (1..=100).contains(n)).unwrap_or_else(|| {
                inv.push("max_workers", "must be 1-100");
                1
            }),
        };
        let priority = choice(
            &mut inv,
            "priority",
            j.priority.as_deref(),
            Priority::parse,
            Priority::default(),
            Priority::choices,
        );
        let executor_preference = choice(
            &mut inv,
            "executor_preference",
            j.executor_preference.as_deref(),
            ExecutorPreference::parse,
            ExecutorPreference::default(),
            ExecutorPreference::choices,
        );
        let privacy = choice(
            &mut inv,
            "privacy",
            j.privacy.as_deref(),
            Privacy::parse,
            Privacy::default(),
            Privacy::choices,
        );
        let award =
            choice(&mut inv, "award", j.award.as_deref(), Award::parse, Award::default(), Award::choices);
        if award == Award::ReverseAuction && j.deadline.is_none() {
            inv.push("deadline", "a reverse auction closes at its deadline, so it needs one");
        }
        let Some(title) = title else { return Err(inv) };
        inv.finish(|| Self {
            title,
            description,
            category,
            tags,
            requirements,
            budget_type,
            budget_min: min,
            budget_max: max_budget,
            deadline,
            bid_limit,
            priority,
            executor_preference,
            privacy,
            max_workers,
            award,
        })
    }

    /// This spec as input, for a patch to overlay.
    pub fn to_input(&self) -> JobInput {
        JobInput {
            title: Some(self.title.clone()),
            description: Some(self.description.clone()),
            category: self.category.clone(),
            tags: Some(self.tags.clone()),
            requirements: Some(self.requirements.clone()),
            budget_type: Some(self.budget_type.as_str().into()),
            budget_min: Some(self.budget_min),
            budget_max: Some(self.budget_max),
            deadline: self.deadline.map(Timestamp::to_rfc3339),
            bid_limit: Some(i64::from(self.bid_limit)),
            priority: Some(self.priority.as_str().into()),
            executor_preference: Some(self.executor_preference.as_str().into()),
            privacy: Some(self.privacy.as_str().into()),
            max_workers: Some(i64::from(self.max_workers)),
            award: Some(self.award.as_str().into()),
        }
    }

    /// Applies a patch: the fields it names replace the current ones, and the result is
    /// checked as a whole at `now`.
    pub fn patch(&self, p: JobInput, now: Timestamp, max: MaxAmount) -> Result<Self, Invalid> {
        let cur = self.to_input();
        Self::parse(
            JobInput {
                title: p.title.or(cur.title),
                description: p.description.or(cur.description),
                category: p.category.or(cur.category),
                tags: p.tags.or(cur.tags),
                requirements: p.requirements.or(cur.requirements),
                budget_type: p.budget_type.or(cur.budget_type),
                budget_min: p.budget_min.or(cur.budget_min),
                budget_max: p.budget_max.or(cur.budget_max),
                deadline: p.deadline.or(cur.deadline),
                bid_limit: p.bid_limit.or(cur.bid_limit),
                priority: p.priority.or(cur.priority),
                executor_preference: p.executor_preference.or(cur.executor_preference),
                privacy: p.privacy.or(cur.privacy),
                max_workers: p.max_workers.or(cur.max_workers),
                award: p.award.or(cur.award),
            },
            now,
            max,
        )
    }

    /// The words the job is found by: its title, description, category and tags.
    pub fn search_terms(&self) -> Vec<String> {
        let mut text = format!("{} {}", self.title, self.description);
        for t in self.category.iter().chain(&self.tags) {
            text.push(' ');
            text.push_str(t);
        }
        search_terms(&text)
    }
}

/// Whether `c` is written without spaces between words (Chinese, Japanese, Korean): such
/// runs are indexed as overlapping pairs of characters.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The index terms of a text, lower case and deduplicated: each run of letters and digits
/// (1–50 characters) is a term, and each run of CJK characters gives its overlapping
/// character pairs (a lone character is a term by itself). A query is split the same way
/// and a job matches when it has every term of the query, so `数据分析` finds a job that
/// says `需要数据分析报告`. Written by hand because the two databases' full-text engines
/// differ (FTS5, tsvector) and neither splits Chinese; one term table serves both.
pub fn search_terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: String| {
        if !t.is_empty() && t.chars().count() <= 50 && !out.contains(&t) {
            out.push(t);
        }
    };
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_cjk = |cjk: &mut Vec<char>, push: &mut dyn FnMut(String)| {
        if cjk.len() == 1 {
            push(cjk[0].to_string());
        }
        for pair in cjk.windows(2) {
            push(pair.iter().collect());
        }
        cjk.clear();
    };
    for c in text.chars().flat_map(char::to_lowercase) {
        if is_cjk(c) {
            push(std::mem::take(&mut word));
            cjk.push(c);
        } else if c.is_alphanumeric() || c == '+' || c == '#' {
            flush_cjk(&mut cjk, &mut push);
            word.push(c);
        } else {
            flush_cjk(&mut cjk, &mut push);
            push(std::mem::take(&mut word));
        }
    }
    flush_cjk(&mut cjk, &mut push);
    push(word);
    out
}

/// A bid as it arrives.
#[derive(Debug, Clone, Default)]
pub struct BidInput {
    pub amount: i64,
    pub message: Option<String>,
    pub estimated_days: Option<i64>,
    pub sample_links: Vec<String>,
}

/// A checked bid (currency checked by the caller against the job's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidSpec {
    pub amount: i64,
    pub message: String,
    pub estimated_days: Option<u32>,
    pub sample_links: Vec<String>,
}

fn days(inv: &mut Invalid, path: &str, d: Option<i64>) -> Option<u32> {
    d.and_then(|d| {
        let v = u32::try_from(d).ok().filter(|d| (1..=3650).contains(d));
        if v.is_none() {
            inv.push(path, "must be 1-3650");
        }
        v
    })
}

impl BidSpec {
    pub fn parse(b: BidInput, max: MaxAmount) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        if b.amount <= 0 {
            inv.push("amount", "must be a positive whole number of minor units");
        }
        max.check(&mut inv, "amount", b.amount);
        let message = inv
            .collect("message", validation::text(b.message.as_deref().unwrap_or(""), 0, 5000))
            .unwrap_or_default();
        let estimated_days = days(&mut inv, "estimated_days", b.estimated_days);
        if b.sample_links.len() > 10 {
            inv.push("sample_links", "at most 10 links");
        }
        let sample_links = b
            .sample_links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| inv.collect(&format!("sample_links[{i}]"), validation::http_url(l)))
            .collect();
        inv.finish(|| Self { amount: b.amount, message, estimated_days, sample_links })
    }
}

/// A requester's counter-offer: a new amount, a new number of days, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSpec {
    pub amount: Option<i64>,
    pub estimated_days: Option<u32>,
}

impl CounterSpec {
    pub fn parse(amount: Option<i64>, estimated_days: Option<i64>, max: MaxAmount) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        if amount.is_none() && estimated_days.is_none() {
            inv.push("", "name a new amount, a new estimated_days, or both");
        }
        if let Some(a) = amount {
            if a <= 0 {
                inv.push("amount", "must be a positive whole number of minor units");
            }
            max.check(&mut inv, "amount", a);
        }
        let estimated_days = days(&mut inv, "estimated_days", estimated_days);
        inv.finish(|| Self { amount, estimated_days })
    }
}

/// Where a bid is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BidStatus {
    Pending,
    Accepted,
    Rejected,
    Withdrawn,
}

impl BidStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Accepted, Self::Rejected, Self::Withdrawn];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Whether a bid waits for an admin before its requester may see it (the moderation
/// queue, seed 003's "pending review").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// Visible to the requester.
    Clear,
    Pending,
    /// Refused by an admin: never shown to the requester.
    Refused,
}

impl Review {
    pub const ALL: [Self; 3] = [Self::Clear, Self::Pending, Self::Refused];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Clear => "clear",
            Self::Pending => "pending",
            Self::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a counter-offer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterState {
    Offered,
    Accepted,
    Declined,
}

/// A counter-offer on a bid and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub amount: Option<i64>,
    pub estimated_days: Option<u32>,
    pub state: CounterState,
    pub offered_at: Timestamp,
    pub answered_at: Option<Timestamp>,
}

/// One entry of a bid's history: what happened, when, and the terms afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidChange {
    /// `placed`, `countered`, `counter_accepted`, `counter_declined`, `accepted`,
    /// `rejected`, `withdrawn`, `approved`, `refused`.
    pub what: String,
    pub amount: i64,
    pub estimated_days: Option<u32>,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A worker's record as a reputation in [0, 1]: completed work over all finished work,
/// pulled towards one half by two imaginary outcomes (one of each), so that a newcomer
/// with one success does not outrank a worker with 95 of 100. Reviews (the workspace
/// issue) will feed into it too.
pub fn reputation(completed: i64, failed: i64, no_response: i64) -> f64 {
    let done = completed.max(0) as f64;
    let total = (completed.max(0) + failed.max(0) + no_response.max(0)) as f64;
    (done + 1.0) / (total + 2.0)
}

/// What a bid's rank is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankInput {
    pub amount: i64,
    pub estimated_days: Option<u32>,
    pub reputation: f64,
    pub placed_at: Timestamp,
}

/// Each bid's rank (1 = best) among `bids`, in their order.
///
/// - `reverse_auction`: the lowest amount first; ties go to the earlier bid.
/// - `choose`: by a score in [0, 1], highest first, ties to the earlier bid:
///   `0.5 × price + 0.2 × speed + 0.3 × reputation`, where price is the lowest amount
///   among the bids divided by this one, speed the fewest estimated days divided by this
///   bid's (a bid without days gets 0.5), and reputation [`reputation`].
pub fn rank(bids: &[RankInput], award: Award) -> Vec<u32> {
    let min_amount = bids.iter().map(|b| b.amount).filter(|a| *a > 0).min().unwrap_or(1) as f64;
    let min_days = bids.iter().filter_map(|b| b.estimated_days).min().unwrap_or(1).max(1) as f64;
    let score = |b: &RankInput| -> f64 {
        let price = min_amount / (b.amount.max(1) as f64);
        let speed = b.estimated_days.map_or(0.5, |d| min_days / f64::from(d.max(1)));
        0.5 * price + 0.2 * speed + 0.3 * b.reputation
    };
    let mut order: Vec<usize> = (0..bids.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&bids[a], &bids[b]);
        let by_merit = match award {
            Award::ReverseAuction => x.amount.cmp(&y.amount),
            Award::Choose => score(y).total_cmp(&score(x)),
        };
        by_merit.then(x.placed_at.cmp(&y.placed_at)).then(a.cmp(&b))
    });
    let mut ranks = vec![0; bids.len()];
    for (r, i) in order.into_iter().enumerate() {
        ranks[i] = u32::try_from(r + 1).unwrap_or(u32::MAX);
    }
    ranks
}

/// Fills `{price}` and `{title}` in an auto-bid reply template.
pub fn fill_template(template: &str, price: &str, title: &str) -> String {
    template.replace("{price}", price).replace("{title}", title)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn input() -> JobInput {
        JobInput {
            title: Some("Translate a manual".into()),
            budget_min: Some(100),
            budget_max: Some(500),
            tags: Some(vec!["Translation".into(), "zh".into(), "translation".into()]),
            ..Default::default()
        }
    }

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn a_posting_gets_its_defaults_and_lower_case_unique_tags() {
        let j = JobSpec::parse(input(), NOW, MaxAmount::default()).unwrap();
        assert_eq!(j.tags, ["translation", "zh"]);
        assert_eq!((j.bid_limit, j.max_workers), (DEFAULT_BID_LIMIT, 1));
        assert_eq!(
            (j.award, j.privacy, j.executor_preference),
            (Award::Choose, Privacy::Public, ExecutorPreference::Any)
        );
        assert_eq!((j.budget_type, j.priority), (BudgetType::Fixed, Priority::Normal));
    }

    #[test]
    fn bad_postings_name_every_field() {
        let bad = JobSpec::parse(
            JobInput {
                title: None,
                budget_min: Some(600),
                budget_max: Some(500),
                deadline: Some(Timestamp::from_millis(5).to_rfc3339()),
                bid_limit: Some(0),
                award: Some("reverse_auction".into()),
                privacy: Some("secret".into()),
                ..Default::default()
            },
            NOW,
            MaxAmount::default(),
        )
        .unwrap_err();
        let paths: Vec<_> = bad.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["title", "budget_max", "deadline", "bid_limit", "privacy"]);
        let no_deadline = JobSpec::parse(
            JobInput { award: Some("reverse_auction".into()), ..input() },
            NOW,
            MaxAmount::default(),
        )
        .unwrap_err();
        assert_eq!(no_deadline.0[0].path, "deadline");
    }

    #[test]
    fn a_patch_overlays_and_is_checked_whole() {
        let j = JobSpec::parse(input(), NOW, MaxAmount::default()).unwrap();
        let p = j
            .patch(JobInput { budget_max: Some(900), ..Default::default() }, NOW, MaxAmount::default())
            .unwrap();
        assert_eq!((p.budget_min, p.budget_max, p.title.as_str()), (100, 900, "Translate a manual"));
        assert!(
            j.patch(JobInput { budget_max: Some(50), ..Default::default() }, NOW, MaxAmount::default())
                .is_err()
        );
    }

    #[test]
    fn search_terms_split_words_and_pair_cjk_characters() {
        assert_eq!(search_terms("Rust & C++ dev, rust!"), ["rust", "c++", "dev"]);
        assert_eq!(search_terms("需要数据分析"), ["需要", "要数", "数据", "据分", "分析"]);
        assert_eq!(search_terms("用 Python 做数据"), ["用", "python", "做数", "数据"]);
        let job = search_terms("需要数据分析报告");
        assert!(search_terms("数据分析").iter().all(|t| job.contains(t)));
    }

    #[test]
    fn reverse_auctions_rank_by_amount_and_choice_by_score() {
        let at = |ms| Timestamp::from_millis(ms);
        let bids = [
            RankInput { amount: 300, estimated_days: Some(3), reputation: 0.9, placed_at: at(1) },
            RankInput { amount: 200, estimated_days: Some(10), reputation: 0.5, placed_at: at(2) },
            RankInput { amount: 200, estimated_days: Some(10), reputation: 0.5, placed_at: at(3) },
        ];
        assert_eq!(rank(&bids, Award::ReverseAuction), [3, 1, 2]);
        // 300: 0.5×0.667 + 0.2×1 + 0.3×0.9 = 0.803; 200: 0.5 + 0.06 + 0.15 = 0.71.
        assert_eq!(rank(&bids, Award::Choose), [1, 2, 3]);
        assert!(rank(&[], Award::Choose).is_empty());
    }

    #[test]
    fn reputation_pulls_small_records_to_the_middle() {
        assert!((reputation(0, 0, 0) - 0.5).abs() < 1e-9);
        assert!(reputation(1, 0, 0) < reputation(95, 5, 0));
        assert!(reputation(0, 3, 0) < 0.5);
    }

    #[test]
    fn executor_preference_admits_kinds() {
        assert!(ExecutorPreference::HumanOnly.admits(AccountKind::Human));
        assert!(!ExecutorPreference::HumanOnly.admits(AccountKind::Agent));
        assert!(!ExecutorPreference::AiOnly.admits(AccountKind::Human));
        assert!(ExecutorPreference::Any.admits(AccountKind::Agent));
    }

    #[test]
    fn bids_and_counters_are_checked() {
        let bad = BidSpec::parse(
            BidInput {
                amount: 0,
                estimated_days: Some(0),
                sample_links: vec!["ftp://x".into()],
                ..Default::default()
            },
            MaxAmount::default(),
        )
        .unwrap_err();
        let paths: Vec<_> = bad.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["amount", "estimated_days", "sample_links[0]"]);
        assert!(CounterSpec::parse(None, None, MaxAmount::default()).is_err());
        assert_eq!(CounterSpec::parse(Some(90), None, MaxAmount::default()).unwrap().amount, Some(90));
        assert_eq!(fill_template("I'll do {title} for {price}", "12.00 PTS", "X"), "I'll do X for 12.00 PTS");
    }
}
