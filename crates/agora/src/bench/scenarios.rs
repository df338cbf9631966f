//! The scenarios. Each sets up its accounts through the API, measures, and stops its server.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agora_client::{
    Client,
    types::{
        AccountType, Bid, BidAccepted, BidRequest, DeliverRequest, JobCreated, JobRequest, PricingInput,
        ProfileFields, RegisterRequest, TopUpRequest, WebhookRequest,
    },
};
use agora_core::Timestamp;
use anyhow::Context;
use axum::{Router, extract::State, http::HeaderMap, routing::post};
use tokio::{sync::mpsc, task::JoinSet};

use super::{
    BenchArgs, Progress, Report, Summary, r2,
    servers::{Agora, Baseline, fresh_store, rss_bytes},
};

const PRICE: i64 = 1;
/// How many setup requests (registrations, top-ups) run at once.
const SETUP_CONCURRENCY: usize = 32;

/// Runs `f(0..n)` with at most `concurrency` at a time; results in index order.
async fn parallel<T, F, Fut>(n: usize, concurrency: usize, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (f, next) = (f.clone(), next.clone());
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                out.push((i, f(i).await?));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        all.extend(done??);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

/// An account of the benchmark's: its id and a client holding its API key.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    client: Client,
}

/// Registers `n` agent accounts (requesters are agent accounts too: they need no password),
/// each with a chat price of `price` PTS if given.
async fn members(
    base: &Client,
    n: usize,
    price: Option<i64>,
    label: &'static str,
) -> anyhow::Result<Vec<Member>> {
    skilled_members(base, n, price, label, |_| Vec::new()).await
}

/// [`members`], the `i`th with the skills `skills(i)`.
async fn skilled_members(
    base: &Client,
    n: usize,
    price: Option<i64>,
    label: &'static str,
    skills: fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<Member>> {
    let progress = Progress::start(format!("registering {label}"), n as u64);
    let counter = progress.counter();
    let base = base.clone();
    let made = parallel(n, SETUP_CONCURRENCY, move |i| {
        let (base, counter) = (base.clone(), counter.clone());
        async move {
            let reg = base
                .register(&RegisterRequest {
                    account_type: AccountType::Agent,
                    name: format!("bench {label} {i}"),
                    email: None,
                    password: None,
                    description: None,
                    skills: Some(skills(i)).filter(|s| !s.is_empty()),
                    model_name: None,
                })
                .await
                .context("registering an account")?;
            let client = base.with_token(reg.api_key.context("an agent account gets a key")?);
            if let Some(p) = price {
                let pricing = PricingInput {
                    currency: Some("PTS".into()),
                    chat_first_message: Some(p),
                    chat_subsequent_message: Some(p),
                    per_task: None,
                    hourly: None,
                };
                client
                    .update_me(&ProfileFields { pricing: Some(pricing), ..Default::default() })
                    .await
                    .context("pricing an agent")?;
            }
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(Member { id: reg.account.id, client })
        }
    })
    .await;
    progress.finish().await;
    made
}

async fn fund(server: &Agora, account: &str, amount: i64) -> anyhow::Result<()> {
    let req = TopUpRequest { amount, currency: "PTS".into(), reason: Some("benchmark".into()) };
    server.admin.top_up(account, &req).await.context("topping up a requester")?;
    Ok(())
}

/// Waits until `count()` reaches `n` (polled every 50 ms, at most `secs`), showing progress.
async fn reach<F, Fut>(label: &str, n: usize, secs: u64, mut count: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    let progress = Progress::start(label.to_owned(), n as u64);
    let counter = progress.counter();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let result = loop {
        let now = count().await;
        counter.store(now, Ordering::Relaxed);
        if now >= n as u64 {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!("{label}: only {now} of {n} after {secs} s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    progress.finish().await;
    result
}

/// Waits until `n` inbox polls wait on the server (its `agora_inbox_waiters` gauge).
async fn waiters(server: &Agora, n: usize, secs: u64) -> anyhow::Result<()> {
    reach("agents waiting", n, secs, || async {
        server.metric("agora_inbox_waiters").await.unwrap_or(0.0) as u64
    })
    .await
}

/// Counts failures, keeping the first one's text for the report.
#[derive(Debug, Default)]
struct Errors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Errors {
    fn record(&self, what: impl std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(what.to_string());
        }
    }

    fn add_to(&self, report: Report) -> Report {
        let report = report.figure("errors", self.count.load(Ordering::Relaxed));
        match self.first.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(first) => report.figure("first_error", first),
            None => report,
        }
    }
}

/// A worker agent: polls its inbox, reports each claimed task (with the instant it was
/// held), answers it, reports it delivered. Stops once `stop` is set.
#[derive(Debug, Clone)]
struct Worker {
    client: Client,
    stop: Arc<AtomicBool>,
    errors: Arc<Errors>,
    requests: Arc<AtomicU64>,
    claimed: Option<mpsc::UnboundedSender<(String, Instant)>>,
    delivered: Option<mpsc::UnboundedSender<String>>,
}

impl Worker {
    async fn run(self) {
        let reply = DeliverRequest { text: Some("pong".into()), ..Default::default() };
        while !self.stop.load(Ordering::Relaxed) {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let task = match self.client.inbox(30).await {
                Ok(Some(task)) => task,
                Ok(None) => continue,
                Err(e) => {
                    if !self.stop.load(Ordering::Relaxed) {
                        self.errors.record(format!("inbox: {e}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    continue;
                }
            };
            let held = Instant::now();
            if let Some(tx) = &self.claimed {
                let _ = tx.send((task.id.clone(), held));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.client.deliver(&task.id, &reply).await {
                Ok(_) => {
                    if let Some(tx) = &self.delivered {
                        let _ = tx.send(task.id);
                    }
                }
                // A delivery cut off by the server stopping at the end is not a failure.
                Err(e) if !self.stop.load(Ordering::Relaxed) => self.errors.record(format!("deliver: {e}")),
                Err(_) => {}
            }
        }
    }
}

/// Stops the workers and the server; the server's shutdown answers their waiting polls.
async fn wind_down(stop: &AtomicBool, server: Agora, mut workers: JoinSet<()>) -> anyhow::Result<()> {
    stop.store(true, Ordering::Relaxed);
    server.stop().await?;
    let _ =
        tokio::time::timeout(Duration::from_secs(30), async { while workers.join_next().await.is_some() {} })
            .await;
    workers.abort_all();
    Ok(())
}

pub async fn dispatch(args: &BenchArgs) -> anyhow::Result<Report> {
    let (a, n) = (args.agents.max(1), args.tasks.max(1));
    let server = Agora::start(args, "dispatch").await?;
    let base = server.client.clone();
    let agents = members(&base, a, Some(PRICE), "agents").await?;
    let requester = members(&base, 1, None, "requester").await?.remove(0);
    fund(&server, &requester.id, PRICE * n as i64).await?;

    let (claimed_tx, mut claimed) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Errors::default());
    let mut workers = JoinSet::new();
    for agent in &agents {
        let worker = Worker {
            client: agent.client.clone(),
            stop: stop.clone(),
            errors: errors.clone(),
            requests: Arc::default(),
            claimed: Some(claimed_tx.clone()),
            delivered: None,
        };
        workers.spawn(worker.run());
    }
    waiters(&server, a, 60).await?;

    let progress = Progress::start("dispatch: tasks".into(), n as u64);
    let counter = progress.counter();
    let mut latencies = Vec::with_capacity(n);
    let mut before_response = 0u64;
    for i in 0..n {
        let agent = &agents[i % a];
        let created = requester.client.start_chat(&agent.id, "ping").await.context("creating a chat task")?;
        let answered = Instant::now();
        loop {
            let (id, held) = tokio::time::timeout(Duration::from_secs(10), claimed.recv())
                .await
                .context("a created task was not held by its agent within 10 s")?
                .context("the agents stopped")?;
            if id == created.task_id {
                if held < answered {
                    before_response += 1;
                }
                latencies.push(held.saturating_duration_since(answered));
                break;
            }
        }
        counter.fetch_add(1, Ordering::Relaxed);
    }
    progress.finish().await;
    wind_down(&stop, server, workers).await?;

    let s = Summary::of(latencies);
    let report = Report::new("dispatch")
        .param("agents", a)
        .param("tasks", n)
        .figure("p50_ms", s.p50)
        .figure("p90_ms", s.p90)
        .figure("p99_ms", s.p99)
        .figure("max_ms", s.max)
        .figure("held_before_create_response", before_response);
    Ok(errors.add_to(report))
}

/// The same client, `concurrency` loops, against the bare hello-world endpoint.
pub async fn baseline(args: &BenchArgs) -> anyhow::Result<Report> {
    let server = Baseline::start(&args.leftovers).await?;
    let client = Client::new(server.url.clone());
    let c = args.concurrency.max(1);
    let progress = Progress::start("baseline: requests".into(), 0);
    let counter = progress.counter();
    let errors = Arc::new(Errors::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds.max(1));
    let mut loops = JoinSet::new();
    for _ in 0..c {
        let (client, counter, errors) = (client.clone(), counter.clone(), errors.clone());
        loops.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match client.send(reqwest::Method::GET, "/hello", None, &[]).await {
                    Ok(r) if r.status == 200 => latencies.push(t0.elapsed()),
                    Ok(r) => errors.record(format!("hello: status {}", r.status)),
                    Err(e) => errors.record(format!("hello: {e}")),
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(l) = loops.join_next().await {
        latencies.extend(l?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish().await;
    server.stop().await?;
    let n = latencies.len();
    let s = Summary::of(latencies);
    let report = Report::new("baseline")
        .param("concurrency", c)
        .param("seconds", args.seconds)
        .figure("requests", n)
        .figure("requests_per_s", r2(n as f64 / elapsed))
        .figure("p50_ms", s.p50)
        .figure("p99_ms", s.p99);
    Ok(errors.add_to(report))
}

/// The server's count of statements sent to its database.
const STATEMENTS: &str = "agora_store_statements_total";

pub async fn lifecycle(args: &BenchArgs, ceiling: f64) -> anyhow::Result<Report> {
    let c = args.concurrency.max(1);
    let mut server = Agora::start(args, "lifecycle").await?;
    for _ in 1..args.replicas.max(1) {
        server.add_replica().await?;
    }
    let urls = server.urls();
    let base = server.client.clone();
    let agents = members(&base, c, Some(PRICE), "agents").await?;
    let requesters = members(&base, c, None, "requesters").await?;
    for r in &requesters {
        fund(&server, &r.id, 1_000_000_000).await?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Errors::default());
    let requests = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    let mut pairs = Vec::new();
    for (i, (agent, requester)) in agents.iter().zip(&requesters).enumerate() {
        // Pair i talks to server i mod n, both its members.
        let url = &urls[i % urls.len()];
        let (delivered_tx, delivered) = mpsc::unbounded_channel();
        let worker = Worker {
            client: agent.client.rebase(url.clone()),
            stop: stop.clone(),
            errors: errors.clone(),
            requests: requests.clone(),
            claimed: None,
            delivered: Some(delivered_tx),
        };
        workers.spawn(worker.run());
        pairs.push((agent.id.clone(), requester.client.rebase(url.clone()), delivered));
    }
    waiters(&server, c, 60).await?;

    let progress = Progress::start("lifecycle: completed".into(), 0);
    let counter = progress.counter();
    requests.store(0, Ordering::Relaxed);
    let statements_before = server.metric(STATEMENTS).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds.max(1));
    let mut loops = JoinSet::new();
    for (agent_id, requester, mut delivered) in pairs {
        let (errors, requests, counter) = (errors.clone(), requests.clone(), counter.clone());
        loops.spawn(async move {
            let mut latencies = Vec::new();
            'lifecycles: while Instant::now() < deadline {
                let t0 = Instant::now();
                requests.fetch_add(1, Ordering::Relaxed);
                let created = match requester.start_chat(&agent_id, "ping").await {
                    Ok(c) => c,
                    Err(e) => {
                        errors.record(format!("create: {e}"));
                        continue;
                    }
                };
                // The agent tells its requester in-process that it delivered, as a webhook or
                // the live stream would; then the requester reads the outcome once.
                loop {
                    match tokio::time::timeout(Duration::from_secs(30), delivered.recv()).await {
                        Ok(Some(id)) if id == created.task_id => break,
                        Ok(Some(_)) => {}
                        _ => {
                            errors.record("a task was not delivered within 30 s");
                            continue 'lifecycles;
                        }
                    }
                }
                requests.fetch_add(1, Ordering::Relaxed);
                match requester.task(&created.task_id).await {
                    Ok(t) if t.status == "completed" => {
                        latencies.push(t0.elapsed());
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(t) => errors.record(format!("read: status {} instead of completed", t.status)),
                    Err(e) => errors.record(format!("read: {e}")),
                }
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(l) = loops.join_next().await {
        latencies.extend(l?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = requests.load(Ordering::Relaxed);
    let statements = server.metric(STATEMENTS).await? - statements_before;
    progress.finish().await;
    wind_down(&stop, server, workers).await?;

    let done = latencies.len();
    let per_s = done as f64 / elapsed;
    let per_lifecycle = if done > 0 { sent as f64 / done as f64 } else { 0.0 };
    // Everything the server ran meanwhile: the agents' polls, background work and the
    // lifecycles cut off by the deadline are shared out over the completed ones.
    let statements_per_lifecycle = if done > 0 { statements / done as f64 } else { 0.0 };
    let bound = if per_lifecycle > 0.0 { ceiling / per_lifecycle } else { 0.0 };
    let s = Summary::of(latencies);
    let report = Report::new("lifecycle")
        .param("pairs", c)
        .param("servers", urls.len())
        .param("seconds", args.seconds)
        .figure("lifecycles", done)
        .figure("lifecycles_per_s", r2(per_s))
        .figure("p50_ms", s.p50)
        .figure("p99_ms", s.p99)
        .figure("requests_per_lifecycle", r2(per_lifecycle))
        .figure("statements_per_lifecycle", r2(statements_per_lifecycle))
        .figure("ceiling_requests_per_s", r2(ceiling))
        .figure(
            "fraction_of_ceiling_bound",
            if bound > 0.0 { (per_s / bound * 1e4).round() / 1e4 } else { 0.0 },
        );
    Ok(errors.add_to(report))
}

/// Keeps `n` long-polls open through `client` (each re-polls when its wait ends) until
/// `stop` is set.
fn hold_polls(
    n: usize,
    stop: &Arc<AtomicBool>,
    poll: impl Fn(usize) -> Client,
    path: &'static str,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let (client, stop) = (poll(i), stop.clone());
        set.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if client.send(reqwest::Method::GET, path, None, &[]).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    set
}

/// Samples a process's RSS for a second after it settles and keeps the largest reading.
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut top = 0;
    for _ in 0..10 {
        top = top.max(rss_bytes(pid)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(top)
}

pub async fn idle(args: &BenchArgs) -> anyhow::Result<Report> {
    let w = args.waiting.max(1);
    let mut server = Agora::start(args, "idle").await?;
    let agents = members(&server.client, w, None, "agents").await?;
    // Measured from a fresh process, so that memory freed after the registrations cannot
    // hide what the waiting polls take.
    server.restart().await?;
    let agora_pid = server.pid()?;
    let before = settled_rss(agora_pid).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let keys: Vec<String> = agents.iter().filter_map(|a| a.client.bearer().map(str::to_owned)).collect();
    let polls = Client::new(server.url.clone());
    let agora_polls =
        hold_polls(w, &stop, |i| polls.with_token(keys[i].clone()), "/api/v1/agent/inbox?wait=60");
    waiters(&server, w, 180).await?;
    let during = settled_rss(agora_pid).await?;
    wind_down(&stop, server, agora_polls).await?;
    drop(polls);

    let baseline = Baseline::start(&args.leftovers).await?;
    let baseline_pid = baseline.pid()?;
    let base_before = settled_rss(baseline_pid).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let bare = Client::new(baseline.url.clone());
    let bare_polls = hold_polls(w, &stop, |_| bare.clone(), "/wait");
    reach("baseline polls waiting", w, 180, || async {
        match bare.send(reqwest::Method::GET, "/waiting", None, &[]).await {
            Ok(reply) => reply.text.trim().parse().unwrap_or(0),
            Err(_) => 0,
        }
    })
    .await?;
    let base_during = settled_rss(baseline_pid).await?;
    stop.store(true, Ordering::Relaxed);
    baseline.stop().await?;
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut polls = bare_polls;
        while polls.join_next().await.is_some() {}
    })
    .await;

    let per = |during: u64, before: u64| during.saturating_sub(before) as f64 / w as f64;
    let (agora, bare) = (per(during, before), per(base_during, base_before));
    Ok(Report::new("idle")
        .param("waiting", w)
        .figure("agora_rss_before_mb", r2(before as f64 / 1e6))
        .figure("agora_rss_waiting_mb", r2(during as f64 / 1e6))
        .figure("agora_bytes_per_waiting_agent", agora.round())
        .figure("baseline_rss_before_mb", r2(base_before as f64 / 1e6))
        .figure("baseline_rss_waiting_mb", r2(base_during as f64 / 1e6))
        .figure("baseline_bytes_per_waiting_poll", bare.round())
        .figure("ratio_to_baseline", if bare > 0.0 { r2(agora / bare) } else { 0.0 }))
}

/// The local webhook receiver: when each delivery (by `webhook-id`) arrived, and its
/// event's `created_at`, both in milliseconds of the shared wall clock.
#[derive(Debug, Default)]
struct Received {
    by_id: Mutex<HashMap<String, (i64, i64)>>,
    duplicates: AtomicU64,
}

async fn receive(State(r): State<Arc<Received>>, headers: HeaderMap, body: String) -> &'static str {
    let now = Timestamp::now().millis();
    let created = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("created_at").and_then(|c| c.as_str()).and_then(Timestamp::parse_rfc3339))
        .map_or(now, Timestamp::millis);
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut seen = r.by_id.lock().unwrap_or_else(|p| p.into_inner());
    if seen.insert(id, (created, now)).is_some() {
        r.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    "ok"
}

pub async fn webhooks(args: &BenchArgs) -> anyhow::Result<Report> {
    let e = args.events.max(1);
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    let app = Router::new().route("/hook", post(receive)).with_state(received.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

    let server = Agora::start(args, "webhooks").await?;
    let firehose = members(&server.client, 1, None, "receiver account").await?.remove(0);
    let hook = WebhookRequest {
        url: hook_url,
        event_types: Some(vec!["payment.topped_up".into()]),
        description: Some("benchmark".into()),
        active: None,
    };
    firehose.client.create_webhook(&hook).await.context("registering the receiver")?;

    // Events are committed the way they are in use: one API call, one transaction each.
    let progress = Progress::start("webhooks: events committed".into(), e as u64);
    let counter = progress.counter();
    let started = Instant::now();
    let (admin, account) = (server.admin.clone(), firehose.id.clone());
    parallel(e, SETUP_CONCURRENCY, move |_| {
        let (admin, account, counter) = (admin.clone(), account.clone(), counter.clone());
        async move {
            let req = TopUpRequest { amount: 1, currency: "PTS".into(), reason: None };
            admin.top_up(&account, &req).await.context("committing an event (a top-up)")?;
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    let committed = started.elapsed().as_secs_f64();
    progress.finish().await;

    let progress = Progress::start("webhooks: delivered".into(), e as u64);
    let counter = progress.counter();
    let deadline = Instant::now() + Duration::from_secs(300);
    let timed_out = loop {
        let n = received.by_id.lock().unwrap_or_else(|p| p.into_inner()).len();
        counter.store(n as u64, Ordering::Relaxed);
        if n >= e {
            break false;
        }
        if Instant::now() > deadline {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    progress.finish().await;
    server.stop().await?;
    receiver.abort();

    let seen: Vec<(i64, i64)> =
        received.by_id.lock().unwrap_or_else(|p| p.into_inner()).values().copied().collect();
    anyhow::ensure!(!timed_out, "only {} of {e} deliveries arrived within 300 s", seen.len());
    let first_commit = seen.iter().map(|(c, _)| *c).min().unwrap_or(0);
    let last_receipt = seen.iter().map(|(_, r)| *r).max().unwrap_or(0);
    let span = ((last_receipt - first_commit) as f64 / 1000.0).max(0.001);
    let latencies = seen.iter().map(|(c, r)| Duration::from_millis((r - c).max(0) as u64)).collect();
    let s = Summary::of(latencies);
    Ok(Report::new("webhooks")
        .param("events", e)
        .figure("deliveries", seen.len())
        .figure("deliveries_per_s", r2(seen.len() as f64 / span))
        .figure("events_committed_per_s", r2(e as f64 / committed))
        .figure("commit_to_receipt_p50_ms", s.p50)
        .figure("commit_to_receipt_p99_ms", s.p99)
        .figure("duplicates", received.duplicates.load(Ordering::Relaxed)))
}

/// Concurrent connections in the `writers` scenario's second half.
const WRITERS: usize = 8;

/// Transactions that each append one event and commit, straight against a store in this
/// process: first from one connection, then from [`WRITERS`] at once. The ratio says
/// whether event-writing commits run side by side (PostgreSQL) or one after another (SQLite
/// has one writer by design).
pub async fn writers(args: &BenchArgs) -> anyhow::Result<Report> {
    let store = fresh_store(args, "writers").await?;
    let each = Duration::from_secs((args.seconds / 2).max(1));
    let one = commits(&store, 1, each).await?;
    let many = commits(&store, WRITERS, each).await?;
    store.close().await;
    Ok(Report::new("writers")
        .param("writers", WRITERS)
        .param("seconds_each", each.as_secs())
        .figure("commits_per_s_1", r2(one))
        .figure("commits_per_s_8", r2(many))
        .figure("ratio_8_to_1", if one > 0.0 { r2(many / one) } else { 0.0 }))
}

/// Commits per second of `n` concurrent loops of begin → append one event → commit.
async fn commits(store: &Arc<dyn agora_store::Store>, n: usize, length: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let deadline = started + length;
    let mut loops = JoinSet::new();
    for _ in 0..n {
        let store = store.clone();
        loops.spawn(async move {
            let mut done = 0_u64;
            while Instant::now() < deadline {
                let mut tx = store.begin().await?;
                tx.append_event(&agora_store::NewEvent {
                    id: agora_core::EventId::generate(),
                    event_type: agora_core::event::EventType::PaymentAdjusted,
                    actor_id: None,
                    task_id: None,
                    audience: Vec::new(),
                    payload: serde_json::json!({ "bench": "writers" }),
                    created_at: Timestamp::now(),
                })
                .await?;
                tx.commit().await?;
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut total = 0;
    while let Some(done) = loops.join_next().await {
        total += done??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// What `agora bench jobs` posts: a job of 100–500 PTS with `tags`.
fn job_request(title: String, tags: &[&str]) -> JobRequest {
    JobRequest {
        title: Some(title),
        tags: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
        budget_min: Some(100),
        budget_max: Some(500),
        ..Default::default()
    }
}

/// The time `POST /jobs` takes, `n` in a row, for a job with `tags` (matched by them),
/// after `n / 4` unmeasured ones: the first reads of freshly registered accounts are
/// slower for reasons that are not matching's (PostgreSQL sets their hint bits, writing).
async fn matching_latency(client: &Client, n: usize, tags: &[&str], errors: &Errors) -> Summary {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + n / 4 {
        let started = Instant::now();
        let posted: Result<JobCreated, _> =
            client.post("/api/v1/jobs", &job_request(format!("match {i}"), tags)).await;
        match posted {
            Ok(_) if i >= n / 4 => samples.push(started.elapsed()),
            Ok(_) => {}
            Err(e) => errors.record(format!("posting a job: {e}")),
        }
    }
    Summary::of(samples)
}

/// The job board: matching latency (job creation, which matches workers through the skill
/// index) with 10 skilled agents, then with `--match-agents` registered (the same 10
/// matching; and a job whose tags about 70 of them have), then `--concurrency` loops (at
/// most 8) of a whole hiring — post, five bids, accept the lowest — for `--seconds`.
pub async fn jobs(args: &BenchArgs) -> anyhow::Result<Report> {
    let loops = args.concurrency.clamp(1, 8);
    let mut server = Agora::start(args, "jobs").await?;
    let base = server.client.clone();
    let errors = Errors::default();
    let requesters = members(&base, loops, None, "requesters").await?;
    for r in &requesters {
        fund(&server, &r.id, 1_000_000_000_000).await?;
    }
    let bidders = members(&base, 5, None, "bidders").await?;

    let few = 10.min(args.match_agents);
    skilled_members(&base, few, None, "matching agents", |_| vec!["translation".into()]).await?;
    let samples = args.match_samples.max(1);
    let small = matching_latency(&requesters[0].client, samples, &["translation"], &errors).await;
    // The rest spread over 500 other skills, three each (a tag has about 60 of them): the
    // same job matches the same 10 among them all, which isolates what the number of
    // accounts costs; a job tagged with one of theirs too shows what more candidates cost.
    let skills = |i: usize| (0..3).map(|k| format!("skill-{}", (i * 7 + k * 131) % 500)).collect();
    skilled_members(&base, args.match_agents.saturating_sub(few), None, "more agents", skills).await?;
    // A server that has run with 10,000 agents, not one whose tables grew a thousandfold
    // within seconds: PostgreSQL keeps the generic plans it made for its prepared
    // statements while the tables were tiny until autovacuum next analyzes them (within a
    // minute). Restarting gives the measurement fresh connections.
    server.restart().await?;
    let rebase = |m: &Member| Member { id: m.id.clone(), client: m.client.rebase(server.url.clone()) };
    let requesters: Vec<Member> = requesters.iter().map(rebase).collect();
    let bidders: Vec<Member> = bidders.iter().map(rebase).collect();
    let large = matching_latency(&requesters[0].client, samples, &["translation"], &errors).await;
    let wide = matching_latency(&requesters[0].client, samples, &["translation", "skill-42"], &errors).await;

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(errors);
    let progress = Progress::start("jobs: hirings".into(), 0);
    let hired = progress.counter();
    let mut set = JoinSet::new();
    for (l, requester) in requesters.iter().enumerate() {
        let (client, bidders, stop, errors, hired) =
            (requester.client.clone(), bidders.clone(), stop.clone(), errors.clone(), hired.clone());
        set.spawn(async move {
            let mut cycles = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match hiring(&client, &bidders, format!("hire {l}-{i}")).await {
                    Ok(()) => {
                        cycles.push(started.elapsed());
                        hired.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.record(e),
                }
                i += 1;
            }
            cycles
        });
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds.max(1))).await;
    stop.store(true, Ordering::Relaxed);
    let mut cycles = Vec::new();
    while let Some(done) = set.join_next().await {
        cycles.extend(done?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish().await;
    server.stop().await?;

    let n = cycles.len();
    let c = Summary::of(cycles);
    let report = Report::new("jobs")
        .param("loops", loops)
        .param("seconds", args.seconds)
        .param("match_agents", args.match_agents)
        .param("match_samples", samples)
        .figure("hirings", n)
        .figure("hirings_per_s", r2(n as f64 / elapsed))
        .figure("hiring_p50_ms", c.p50)
        .figure("hiring_p99_ms", c.p99)
        .figure("match_p50_ms_10_agents", small.p50)
        .figure("match_p50_ms_many_agents", large.p50)
        .figure("match_p99_ms_many_agents", large.p99)
        .figure("match_ratio", r2(if small.p50 > 0.0 { large.p50 / small.p50 } else { 0.0 }))
        .figure("match_p50_ms_70_candidates", wide.p50);
    Ok(errors.add_to(report))
}

/// One hiring: post a job, five bids at once, accept the lowest.
async fn hiring(requester: &Client, bidders: &[Member], title: String) -> Result<(), String> {
    let job: JobCreated = requester
        .post("/api/v1/jobs", &job_request(title, &["bench"]))
        .await
        .map_err(|e| format!("post: {e}"))?;
    let mut bids = JoinSet::new();
    for (k, b) in bidders.iter().enumerate() {
        let (client, path) = (b.client.clone(), format!("/api/v1/jobs/{}/bids", job.job.id));
        let amount = 100 + 10 * i64::try_from(k).unwrap_or(0);
        bids.spawn(async move {
            client
                .post::<Bid>(&path, &BidRequest { amount, estimated_days: Some(3), ..Default::default() })
                .await
        });
    }
    let mut lowest: Option<Bid> = None;
    while let Some(done) = bids.join_next().await {
        let bid = done.map_err(|e| e.to_string())?.map_err(|e| format!("bid: {e}"))?;
        if lowest.as_ref().is_none_or(|l| bid.amount < l.amount) {
            lowest = Some(bid);
        }
    }
    let lowest = lowest.ok_or("no bid")?;
    let _: BidAccepted = requester
        .post(&format!("/api/v1/bids/{}/accept", lowest.id), &serde_json::json!({}))
        .await
        .map_err(|e| format!("accept: {e}"))?;
    Ok(())
}
