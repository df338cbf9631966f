//! `agora bench <scenario>`: measures Agora on this machine, next to the machine's own
//! ceiling measured in the same run (shared machines are noisy; ratios taken side by side
//! are what count). Every scenario starts its own server as a child process on a fresh
//! temporary database, drives it over loopback HTTP with the client crate, is bounded in
//! count and time, and stops by itself. Output: a table, and with `--json` one JSON object
//! per scenario (name, backend, cores, parameters, figures).

mod scenarios;
mod servers;

use std::{
    io::{IsTerminal, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

pub use servers::baseline_server;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Agents long-polling; tasks created one at a time; create response → agent holds it.
    Dispatch,
    /// Concurrent requester/agent pairs running whole paid chat lifecycles.
    Lifecycle,
    /// Memory per waiting agent, against a bare axum handler awaiting a `Notify`.
    Idle,
    /// Events fanned out as signed webhooks to a local receiver.
    Webhooks,
    /// The same client against a bare hello-world endpoint: the loopback ceiling.
    Baseline,
    /// Event-writing commits from 1, then 8 concurrent connections, against the store.
    Writers,
    /// The job board: job creation's matching latency with 10 and many skilled agents, and
    /// whole hirings (post, five bids, accept) per second.
    Jobs,
    /// Every scenario in turn (baseline first, so lifecycle can be compared with it).
    All,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Benchmark PostgreSQL: each scenario gets a fresh schema in this database, dropped
    /// afterwards [default: a temporary SQLite file].
    #[arg(long)]
    pub database_url: Option<String>,
    /// Also print one JSON object per scenario on standard output (the table then goes to
    /// standard error).
    #[arg(long)]
    pub json: bool,
    /// dispatch: tasks created, one at a time.
    #[arg(long, default_value_t = 2000)]
    pub tasks: usize,
    /// dispatch: agents long-polling.
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// lifecycle and baseline: concurrent requester/agent pairs (client loops for baseline).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// lifecycle on PostgreSQL: servers on the one database, the pairs split evenly across
    /// them (2 measures what a second replica adds).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// lifecycle and baseline: seconds each runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// idle: agents waiting at once (this machine allows 20,000 open files per process).
    #[arg(long, default_value_t = 15_000)]
    pub waiting: usize,
    /// webhooks: events committed and delivered.
    #[arg(long, default_value_t = 5_000)]
    pub events: usize,
    /// jobs: skilled agents registered for the second matching measurement.
    #[arg(long, default_value_t = 10_000)]
    pub match_agents: usize,
    /// jobs: jobs posted for each matching measurement.
    #[arg(long, default_value_t = 200)]
    pub match_samples: usize,
    /// lifecycle alone: compare with this ceiling (requests/s) instead of measuring the
    /// baseline first (for profiling runs; `all` always measures it).
    #[arg(long)]
    pub ceiling: Option<f64>,
    /// The servers' log filter (their `RUST_LOG`); logs go to a file in the run's directory.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
    /// Not an argument: what this run has made and must remove.
    #[arg(skip)]
    pub leftovers: servers::Leftovers,
}

impl BenchArgs {
    fn backend(&self) -> &'static str {
        if self.database_url.is_some() { "postgres" } else { "sqlite" }
    }
}

/// One scenario's result.
#[derive(Debug)]
pub struct Report {
    name: &'static str,
    parameters: Vec<(&'static str, Value)>,
    figures: Vec<(&'static str, Value)>,
}

impl Report {
    fn new(name: &'static str) -> Self {
        Self { name, parameters: Vec::new(), figures: Vec::new() }
    }

    fn param(mut self, k: &'static str, v: impl Into<Value>) -> Self {
        self.parameters.push((k, v.into()));
        self
    }

    fn figure(mut self, k: &'static str, v: impl Into<Value>) -> Self {
        self.figures.push((k, v.into()));
        self
    }

    fn get(&self, k: &str) -> Option<f64> {
        self.figures.iter().find(|(n, _)| *n == k).and_then(|(_, v)| v.as_f64())
    }

    fn to_json(&self, backend: &str, cores: usize) -> Value {
        let obj = |kv: &[(&str, Value)]| {
            Value::Object(kv.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Map<_, _>>())
        };
        json!({
            "name": self.name,
            "backend": backend,
            "cores": cores,
            "parameters": obj(&self.parameters),
            "figures": obj(&self.figures),
        })
    }

    fn table(&self, backend: &str, cores: usize) -> String {
        let params: Vec<String> = self.parameters.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect();
        let mut out = format!("{} — {backend}, {cores} cores ({})\n", self.name, params.join(", "));
        for (k, v) in &self.figures {
            out.push_str(&format!("  {k:<34} {}\n", plain(v)));
        }
        out
    }
}

/// A figure as the table shows it: numbers as they are (already rounded), strings bare.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rounds to two decimals for the output.
fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Nearest-rank percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Summary {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            r2(samples[rank - 1].as_secs_f64() * 1000.0)
        };
        Self { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: at(1.0) }
    }
}

/// A progress line on standard error while a phase runs: redrawn in place on a terminal,
/// a line every few seconds otherwise.
#[derive(Debug)]
struct Progress {
    done: Arc<AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(label: String, total: u64) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let tty = std::io::stderr().is_terminal();
        let task = {
            let done = done.clone();
            tokio::spawn(async move {
                let every = if tty { Duration::from_millis(200) } else { Duration::from_secs(5) };
                let started = std::time::Instant::now();
                loop {
                    // Finishing ends the wait at once: a step never lasts a tick longer
                    // than its work.
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = &mut stopped => break,
                    }
                    let n = done.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs();
                    let line = if total > 0 {
                        format!("{label}: {n}/{total} ({secs} s)")
                    } else {
                        format!("{label}: {n} ({secs} s)")
                    };
                    let mut err = std::io::stderr();
                    let _ = if tty { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
                    let _ = err.flush();
                }
                if tty {
                    let _ = write!(std::io::stderr(), "\r\x1b[2K");
                }
            })
        };
        Self { done, stop, task }
    }

    fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }

    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Runs the scenarios until they finish, fail or `interrupted` resolves (SIGINT or
/// SIGTERM); in every case the servers are stopped and their databases removed.
pub async fn run(args: BenchArgs, interrupted: impl Future<Output = ()>) -> anyhow::Result<()> {
    let leftovers = args.leftovers.clone();
    let outcome = tokio::select! {
        outcome = run_scenarios(args) => outcome,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever the outcome, the scenario's future is gone by now, and with it every server
    // child still running (killed on drop); what they leave behind goes too.
    leftovers.clean().await;
    outcome
}

async fn run_scenarios(args: BenchArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let backend = args.backend();
    let order = match args.scenario {
        Scenario::All => vec![
            Scenario::Baseline,
            Scenario::Dispatch,
            Scenario::Lifecycle,
            Scenario::Idle,
            Scenario::Webhooks,
            Scenario::Writers,
            Scenario::Jobs,
        ],
        one => vec![one],
    };
    let mut ceiling: Option<f64> = args.ceiling.filter(|_| args.scenario != Scenario::All);
    for scenario in &order {
        let report = match scenario {
            Scenario::Baseline => scenarios::baseline(&args).await?,
            Scenario::Dispatch => scenarios::dispatch(&args).await?,
            Scenario::Lifecycle => {
                let ceiling = match ceiling {
                    Some(c) => c,
                    None => scenarios::baseline(&args).await?.get("requests_per_s").unwrap_or(0.0),
                };
                scenarios::lifecycle(&args, ceiling).await?
            }
            Scenario::Idle => scenarios::idle(&args).await?,
            Scenario::Webhooks => scenarios::webhooks(&args).await?,
            Scenario::Writers => scenarios::writers(&args).await?,
            Scenario::Jobs => scenarios::jobs(&args).await?,
            Scenario::All => continue,
        };
        if *scenario == Scenario::Baseline {
            ceiling = report.get("requests_per_s");
        }
        let table = report.table(backend, cores);
        if args.json {
            eprint!("{table}");
            println!("{}", report.to_json(backend, cores));
        } else {
            print!("{table}");
        }
    }
    Ok(())
}
