//! What agents and requesters send while work runs — progress reports, deliveries, service
//! and bounty terms, chat messages — as domain values checked at the edge, and the money
//! rules that depend on them (which chat price applies, what a late bounty pays).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Invalid, account::Pricing, money::MaxAmount, task::TaskKind, validation};

/// Longest chat message, delivery text or task message (the seeds' 1–100000 characters).
pub const MAX_TEXT: usize = 100_000;
/// Longest markdown description of a service or bounty.
pub const MAX_DESCRIPTION: usize = 20_000;
/// Largest `input`/`output` document, serialised.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Where a running task is, as its assignee reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub percent: u8,
    pub eta_seconds: Option<u32>,
    pub current_step: Option<String>,
}

impl ProgressReport {
    pub fn parse(
        percent: i64,
        eta_seconds: Option<i64>,
        current_step: Option<String>,
    ) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        let pct = u8::try_from(percent).ok().filter(|p| *p <= 100);
        if pct.is_none() {
            inv.push("percent", "must be 0-100");
        }
        let eta = match eta_seconds {
            None => None,
            Some(s) => {
                let v = u32::try_from(s).ok().filter(|s| *s <= 31_536_000);
                if v.is_none() {
                    inv.push("eta_seconds", "must be 0-31536000");
                }
                v
            }
        };
        let step = current_step.and_then(|s| inv.collect("current_step", validation::text(&s, 1, 500)));
        inv.finish(|| Self { percent: pct.unwrap_or(0), eta_seconds: eta, current_step: step })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiBlockKind {
    Markdown,
    File,
    Link,
}

impl UiBlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Markdown => "markdown",
            Self::File => "file",
            Self::Link => "link",
        }
    }
}

/// A piece of a delivery meant for a person: markdown to render, or a file or link to show
/// with a label (AgentFlow's `ui_content`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiBlock {
    #[serde(rename = "type")]
    pub kind: UiBlockKind,
    pub content: String,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLink {
    pub url: String,
    pub name: Option<String>,
}

/// What an assignee hands over: text and/or structured output, UI blocks and file links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub text: Option<String>,
    pub output: Option<Value>,
    pub ui_blocks: Vec<UiBlock>,
    pub files: Vec<FileLink>,
}

/// A delivery as it arrives, before checking.
#[derive(Debug, Clone, Default)]
pub struct DeliveryInput {
    pub text: Option<String>,
    pub output: Option<Value>,
    /// `(type, content, label)`.
    pub ui_blocks: Vec<(String, String, Option<String>)>,
    /// `(url, name)`.
    pub files: Vec<(String, Option<String>)>,
}

impl Delivery {
    /// Checks a delivery; it must carry something. The output's schema is checked by the
    /// caller, which knows the task's schema.
    pub fn parse(input: DeliveryInput) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        let text = input.text.and_then(|t| inv.collect("text", validation::text(&t, 1, MAX_TEXT)));
        if let Some(o) = &input.output {
            inv.collect("output", document(o));
        }
        if input.ui_blocks.len() > 50 {
            inv.push("ui_blocks", "at most 50 blocks");
        }
        if input.files.len() > 50 {
            inv.push("files", "at most 50 files");
        }
        let mut ui_blocks = Vec::new();
        for (i, (kind, content, label)) in input.ui_blocks.into_iter().enumerate() {
            let at = format!("ui_blocks[{i}]");
            let kind = match kind.as_str() {
                "markdown" => Some(UiBlockKind::Markdown),
                "file" => Some(UiBlockKind::File),
                "link" => Some(UiBlockKind::Link),
                _ => {
                    inv.push(format!("{at}.type"), "must be markdown, file or link");
                    None
                }
            };
            let content = match kind {
                Some(UiBlockKind::Markdown) => {
                    inv.collect(&format!("{at}.content"), validation::text(&content, 1, MAX_TEXT))
                }
                Some(_) => inv.collect(&format!("{at}.content"), validation::http_url(&content)),
                None => None,
            };
            let label = label.and_then(|l| inv.collect(&format!("{at}.label"), validation::text(&l, 1, 200)));
            if let (Some(kind), Some(content)) = (kind, content) {
                ui_blocks.push(UiBlock { kind, content, label });
            }
        }
        let mut files = Vec::new();
        for (i, (url, name)) in input.files.into_iter().enumerate() {
            let url = inv.collect(&format!("files[{i}].url"), validation::http_url(&url));
            let name =
                name.and_then(|n| inv.collect(&format!("files[{i}].name"), validation::text(&n, 1, 200)));
            if let Some(url) = url {
                files.push(FileLink { url, name });
            }
        }
        if text.is_none()
            && input.output.is_none()
            && ui_blocks.is_empty()
            && files.is_empty()
            && inv.0.is_empty()
        {
            inv.push("", "a delivery needs text, output, ui_blocks or files");
        }
        inv.finish(|| Self { text, output: input.output, ui_blocks, files })
    }
}

/// A JSON document (a run's input, a delivery's output) of reasonable size.
pub fn document(v: &Value) -> Result<(), Invalid> {
    if v.to_string().len() > MAX_DOCUMENT_BYTES {
        return Err(Invalid::field("", format!("must be at most {MAX_DOCUMENT_BYTES} bytes of JSON")));
    }
    Ok(())
}

/// A chat message, task message or failure log: 1–100000 characters.
pub fn message_text(s: &str) -> Result<String, Invalid> {
    validation::text(s, 1, MAX_TEXT)
}

/// What a chat turn costs: the agent's first-message price for the first turn of a chat,
/// its subsequent-message price after that, in its pricing currency. `None` (free) when
/// the agent set no price or a price of zero.
pub fn chat_price(pricing: &Pricing, first_turn: bool) -> Option<(String, i64)> {
    let amount = if first_turn { pricing.chat_first_message } else { pricing.chat_subsequent_message }
        .filter(|a| *a > 0)?;
    Some((pricing.currency.clone().unwrap_or_else(|| "PTS".to_owned()), amount))
}

/// Whether the next turn of a chat is its first message for pricing: until the agent has
/// answered once (a first turn that failed or was cancelled does not count), given the
/// roles (`user`, `assistant`) of the conversation so far.
pub fn is_first_turn<'a>(mut roles: impl Iterator<Item = &'a str>) -> bool {
    !roles.any(|r| r == "assistant")
}

/// A published service's terms (AgentFlow), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTerms {
    pub name: String,
    pub version: String,
    pub short_description: String,
    pub description: String,
    pub price: i64,
    pub input_schema: Value,
    pub output_schema: Value,
}

/// Raw service fields; `None` keeps the current value when updating.
#[derive(Debug, Clone, Default)]
pub struct ServiceInput {
    pub name: Option<String>,
    pub version: Option<String>,
    pub short_description: Option<String>,
    pub description: Option<String>,
    pub price: Option<i64>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
}

impl ServiceTerms {
    /// Applies `input` over `current` (a new service starts from `None`, where name and
    /// price are required), checking every field and both schemas.
    pub fn apply(current: Option<&Self>, input: ServiceInput, max: MaxAmount) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        let name = match (input.name, current) {
            (Some(n), _) => inv.collect("name", validation::text(&n, 1, 100)),
            (None, Some(c)) => Some(c.name.clone()),
            (None, None) => {
                inv.push("name", "is required");
                None
            }
        };
        let version = match (input.version, current) {
            (Some(v), _) => inv.collect("version", validation::text(&v, 1, 32)),
            (None, Some(c)) => Some(c.version.clone()),
            (None, None) => Some("v1.0.0".to_owned()),
        };
        let short = match (input.short_description, current) {
            (Some(s), _) => inv.collect("short_description", validation::text(&s, 0, 200)),
            (None, c) => Some(c.map(|c| c.short_description.clone()).unwrap_or_default()),
        };
        let description = match (input.description, current) {
            (Some(s), _) => inv.collect("description", validation::text(&s, 0, MAX_DESCRIPTION)),
            (None, c) => Some(c.map(|c| c.description.clone()).unwrap_or_default()),
        };
        let price = match (input.price, current) {
            (Some(p), _) if p > max.0 => {
                max.check(&mut inv, "price", p);
                None
            }
            (Some(p), _) if p >= 0 => Some(p),
            (Some(_), _) => {
                inv.push("price", "must be zero or a positive whole number of minor units");
                None
            }
            (None, Some(c)) => Some(c.price),
            (None, None) => {
                inv.push("price", "is required");
                None
            }
        };
        let mut schema = |field: &str, new: Option<Value>, old: Option<&Value>| -> Option<Value> {
            let v = new.or_else(|| old.cloned()).unwrap_or_else(|| Value::Object(Default::default()));
            inv.collect(field, crate::schema::Schema::compile(&v)).map(|_| v)
        };
        let input_schema = schema("input_schema", input.input_schema, current.map(|c| &c.input_schema));
        let output_schema = schema("output_schema", input.output_schema, current.map(|c| &c.output_schema));
        match (name, version, short, description, price, input_schema, output_schema) {
            (
                Some(name),
                Some(version),
                Some(short_description),
                Some(description),
                Some(price),
                Some(i),
                Some(o),
            ) if inv.0.is_empty() => Ok(Self {
                name,
                version,
                short_description,
                description,
                price,
                input_schema: i,
                output_schema: o,
            }),
            _ => Err(inv),
        }
    }
}

/// A bounty's terms (AgentFlow "requests"), checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BountyTerms {
    pub short_description: String,
    pub penalty: i64,
    pub max_delivery_hours: u32,
    pub input_schema: Value,
    pub output_schema: Value,
}

#[derive(Debug, Clone, Default)]
pub struct BountyInput {
    pub title: String,
    pub short_description: String,
    pub description: Option<String>,
    pub reward: i64,
    pub penalty: Option<i64>,
    pub max_delivery_hours: i64,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub input_data: Option<Value>,
}

/// A checked bounty: its title, description, reward, terms and input.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounty {
    pub title: String,
    pub description: String,
    pub reward: i64,
    pub terms: BountyTerms,
    pub input: Value,
}

impl Bounty {
    pub fn parse(b: BountyInput, max: MaxAmount) -> Result<Self, Invalid> {
        let mut inv = Invalid::default();
        let title = inv.collect("title", validation::text(&b.title, 1, 20));
        let short = inv.collect("short_description", validation::text(&b.short_description, 1, 200));
        let description = inv.collect(
            "description",
            validation::text(b.description.as_deref().unwrap_or(""), 0, MAX_DESCRIPTION),
        );
        if b.reward <= 0 {
            inv.push("reward_amount", "must be a positive whole number of minor units");
        }
        max.check(&mut inv, "reward_amount", b.reward);
        let penalty = b.penalty.unwrap_or(0);
        if penalty < 0 || penalty > b.reward.max(0) {
            inv.push("penalty_amount", "must be between 0 and the reward");
        }
        let hours = u32::try_from(b.max_delivery_hours).ok().filter(|h| (1..=8760).contains(h));
        if hours.is_none() {
            inv.push("max_delivery_hours", "must be 1-8760");
        }
        let mut schema = |field: &str, v: Option<Value>| -> Option<Value> {
            let v = v.unwrap_or_else(|| Value::Object(Default::default()));
            inv.collect(field, crate::schema::Schema::compile(&v)).map(|_| v)
        };
        let input_schema = schema("input_schema", b.input_schema);
        let output_schema = schema("output_schema", b.output_schema);
        let input = b.input_data.unwrap_or(Value::Null);
        inv.collect("input_data", document(&input));
        if let (Some(s), false) = (&input_schema, input.is_null()) {
            inv.collect("", crate::schema::check(s, &input, "input_data"));
        }
        match (title, short, description, hours, input_schema, output_schema) {
            (
                Some(title),
                Some(short_description),
                Some(description),
                Some(max_delivery_hours),
                Some(i),
                Some(o),
            ) if inv.0.is_empty() => Ok(Self {
                title,
                description,
                reward: b.reward,
                terms: BountyTerms {
                    short_description,
                    penalty,
                    max_delivery_hours,
                    input_schema: i,
                    output_schema: o,
                },
                input,
            }),
            _ => Err(inv),
        }
    }
}

/// What a service run keeps of its service: the terms at the time it started, so that
/// editing the service never changes a running task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRun {
    pub service_name: String,
    pub service_version: String,
    pub input_schema: Value,
    pub output_schema: Value,
}

/// What a task's kind adds to the fields every task has (SPEC §4), parsed once when a task
/// is read. Kinds without terms of their own (a chat turn) carry none; kinds whose issues
/// have not landed yet cannot be stored, so reading one is an error, never a default.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskTerms {
    Chat,
    Service(ServiceRun),
    Bounty(BountyTerms),
    Job(JobRole),
}

/// What a task of kind `job` is: a posting that takes bids (its terms live in the job
/// row), or one hire of a posting, for the worker whose bid was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum JobRole {
    Posting,
    Hire { job_id: crate::TaskId, bid_id: crate::BidId },
}

impl TaskTerms {
    pub fn kind(&self) -> TaskKind {
        match self {
            Self::Chat => TaskKind::Chat,
            Self::Service(_) => TaskKind::Service,
            Self::Bounty(_) => TaskKind::Bounty,
            Self::Job(_) => TaskKind::Job,
        }
    }

    /// The schema a delivery's output must satisfy, if the task has one that constrains it.
    pub fn output_schema(&self) -> Option<&Value> {
        let schema = match self {
            Self::Chat | Self::Job(_) => return None,
            Self::Service(s) => &s.output_schema,
            Self::Bounty(b) => &b.output_schema,
        };
        let unconstrained = schema.is_null() || schema.as_object().is_some_and(|o| o.is_empty());
        (!unconstrained).then_some(schema)
    }

    /// The terms as one JSON object, with the failure log (`error`) when there is one: how
    /// they are stored and how the API shows them (`details`).
    pub fn to_details(&self, error: Option<&str>) -> Value {
        let mut v = match self {
            Self::Chat => Value::Object(Default::default()),
            Self::Service(s) => serde_json::to_value(s).unwrap_or_default(),
            Self::Bounty(b) => serde_json::to_value(b).unwrap_or_default(),
            Self::Job(j) => serde_json::to_value(j).unwrap_or_default(),
        };
        if let (Some(e), Some(o)) = (error, v.as_object_mut()) {
            o.insert("error".to_owned(), Value::String(e.to_owned()));
        }
        v
    }

    /// Reads stored terms of a task of `kind`: the terms and the failure log.
    pub fn from_details(kind: TaskKind, mut details: Value) -> Result<(Self, Option<String>), String> {
        let error = details
            .as_object_mut()
            .and_then(|o| o.remove("error"))
            .map(|e| e.as_str().map(str::to_owned).ok_or("error is not text"))
            .transpose()?;
        let terms = match kind {
            TaskKind::Chat => Self::Chat,
            TaskKind::Service => Self::Service(serde_json::from_value(details).map_err(|e| e.to_string())?),
            TaskKind::Bounty => Self::Bounty(serde_json::from_value(details).map_err(|e| e.to_string())?),
            TaskKind::Job => Self::Job(serde_json::from_value(details).map_err(|e| e.to_string())?),
            other => {
                return Err(format!("tasks of kind {} are not supported by this version", other.as_str()));
            }
        };
        Ok((terms, error))
    }
}

/// How a bounty's reward splits on acceptance: the worker's gross pay (before the platform
/// fee) and what goes back to the poster. Late delivery costs the worker the penalty.
pub const fn bounty_payout(reward: i64, penalty: i64, late: bool) -> (i64, i64) {
    if late && penalty > 0 { (reward - penalty, penalty) } else { (reward, 0) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn progress_is_bounded() {
        assert!(ProgressReport::parse(101, None, None).is_err());
        assert!(ProgressReport::parse(-1, None, None).is_err());
        let p = ProgressReport::parse(50, Some(60), Some("rendering".into())).unwrap();
        assert_eq!((p.percent, p.eta_seconds), (50, Some(60)));
    }

    #[test]
    fn deliveries_need_content_and_valid_blocks() {
        assert!(Delivery::parse(DeliveryInput::default()).is_err());
        let bad = Delivery::parse(DeliveryInput {
            ui_blocks: vec![("video".into(), "x".into(), None), ("file".into(), "not a url".into(), None)],
            ..Default::default()
        })
        .unwrap_err();
        let paths: Vec<_> = bad.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["ui_blocks[0].type", "ui_blocks[1].content"]);
        let ok = Delivery::parse(DeliveryInput {
            output: Some(json!({"result_url": "https://x.test/r"})),
            ui_blocks: vec![("markdown".into(), "## done".into(), None)],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.ui_blocks[0].kind, UiBlockKind::Markdown);
    }

    #[test]
    fn terms_round_trip_through_details_with_the_failure_log() {
        let bounty = TaskTerms::Bounty(BountyTerms {
            short_description: "s".into(),
            penalty: 3,
            max_delivery_hours: 12,
            input_schema: json!({}),
            output_schema: json!({"type": "object"}),
        });
        let details = bounty.to_details(Some("boom"));
        assert_eq!(details["error"], "boom");
        assert_eq!(details["max_delivery_hours"], 12);
        let (back, error) = TaskTerms::from_details(TaskKind::Bounty, details).unwrap();
        assert_eq!((back, error.as_deref()), (bounty.clone(), Some("boom")));
        assert_eq!(bounty.output_schema(), Some(&json!({"type": "object"})));
        assert_eq!(TaskTerms::from_details(TaskKind::Chat, json!({})).unwrap(), (TaskTerms::Chat, None));
        // No silent defaults: a bounty without its delivery hours is an error.
        assert!(TaskTerms::from_details(TaskKind::Bounty, json!({"short_description": "s"})).is_err());
        assert!(TaskTerms::from_details(TaskKind::Job, json!({})).is_err());
        assert!(TaskTerms::from_details(TaskKind::Brief, json!({})).is_err());
        let hire = TaskTerms::Job(JobRole::Hire {
            job_id: crate::TaskId::generate(),
            bid_id: crate::BidId::generate(),
        });
        assert_eq!(TaskTerms::from_details(TaskKind::Job, hire.to_details(None)).unwrap(), (hire, None));
    }

    #[test]
    fn chat_prices_pick_first_or_subsequent() {
        let p = Pricing {
            currency: Some("USDC".into()),
            chat_first_message: Some(100_000),
            chat_subsequent_message: Some(50_000),
            ..Default::default()
        };
        assert_eq!(chat_price(&p, true), Some(("USDC".into(), 100_000)));
        assert_eq!(chat_price(&p, false), Some(("USDC".into(), 50_000)));
        assert_eq!(chat_price(&Pricing::default(), true), None);
        assert!(is_first_turn(["user"].into_iter()));
        assert!(is_first_turn(["user", "user"].into_iter()), "an unanswered turn does not count");
        assert!(!is_first_turn(["user", "assistant", "user"].into_iter()));
    }

    #[test]
    fn bounty_terms_and_late_payout() {
        let b = Bounty::parse(
            BountyInput {
                title: "Translate docs".into(),
                short_description: "EN to ZH".into(),
                reward: 500,
                penalty: Some(100),
                max_delivery_hours: 24,
                ..Default::default()
            },
            MaxAmount::default(),
        )
        .unwrap();
        assert_eq!((b.reward, b.terms.penalty, b.terms.max_delivery_hours), (500, 100, 24));
        let bad = Bounty::parse(
            BountyInput {
                title: "a title much longer than twenty".into(),
                short_description: String::new(),
                reward: 0,
                penalty: Some(5),
                max_delivery_hours: 0,
                ..Default::default()
            },
            MaxAmount::default(),
        )
        .unwrap_err();
        let paths: Vec<_> = bad.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["title", "short_description", "reward_amount", "penalty_amount", "max_delivery_hours"]
        );
        assert_eq!(bounty_payout(500, 100, false), (500, 0));
        assert_eq!(bounty_payout(500, 100, true), (400, 100));
    }

    #[test]
    fn service_terms_require_name_and_price_and_valid_schemas() {
        let max = MaxAmount::default();
        let err = ServiceTerms::apply(None, ServiceInput::default(), max).unwrap_err();
        let paths: Vec<_> = err.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["name", "price"]);
        let t = ServiceTerms::apply(
            None,
            ServiceInput { name: Some("Images".into()), price: Some(100), ..Default::default() },
            max,
        )
        .unwrap();
        assert_eq!(t.version, "v1.0.0");
        let bad = ServiceTerms::apply(
            Some(&t),
            ServiceInput { input_schema: Some(json!({"type": 5})), ..Default::default() },
            max,
        )
        .unwrap_err();
        assert!(bad.0[0].path.starts_with("input_schema"), "{bad}");
    }

    #[test]
    fn amounts_above_the_maximum_are_refused() {
        let max = MaxAmount(1000);
        let price = |p| ServiceInput { name: Some("Images".into()), price: Some(p), ..Default::default() };
        assert!(ServiceTerms::apply(None, price(1000), max).is_ok());
        let err = ServiceTerms::apply(None, price(1001), max).unwrap_err();
        assert_eq!(err.0[0].path, "price");
        let bounty = |reward| BountyInput {
            title: "Translate docs".into(),
            short_description: "EN to ZH".into(),
            reward,
            max_delivery_hours: 24,
            ..Default::default()
        };
        assert!(Bounty::parse(bounty(1000), max).is_ok());
        let err = Bounty::parse(bounty(i64::MAX), max).unwrap_err();
        assert_eq!(err.0[0].path, "reward_amount");
    }
}
