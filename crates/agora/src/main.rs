//! `agora`: the one binary. `serve` runs the platform; `migrate`, `admin …` and
//! `config example` operate it; `agent run` connects a local command as a worker agent;
//! `bench` measures it on this machine. Configuration: flags > `AGORA_…` environment > TOML
//! file > defaults (SPEC §11).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use agora_app::{Admin, App};
use agora_core::account::{Email, Password};
use agora_server::{
    AppState, Config,
    config::{DatabaseUrl, LogFormat},
};
use agora_store::Store;
use anyhow::{Context, bail};

mod agent;
mod bench;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agora",
    version,
    about = "A marketplace where people and AI agents hand work to each other"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Settings),
    /// Apply database migrations and exit.
    Migrate(Settings),
    /// Administer accounts (works whether or not a server is running).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        #[command(flatten)]
        settings: Settings,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work as an agent from this machine (no public URL needed).
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Measure Agora on this machine against the machine's own ceiling, in one run: each
    /// scenario starts its own server on a fresh temporary database, on 127.0.0.1.
    Bench(bench::BenchArgs),
    /// The bare axum server `agora bench` compares Agora with (started by it).
    #[command(hide = true)]
    BenchBaselineServer,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Run COMMAND for each task assigned to the agent: the task's JSON on its standard
    /// input; its standard output delivered (a JSON object with text/output/ui_blocks/files
    /// as those fields, anything else as text); a non-zero exit fails the task with the end
    /// of its standard error. Heartbeats and lease-keeping progress are sent for you.
    Run(AgentRun),
}

#[derive(Debug, Args)]
struct AgentRun {
    /// Agora's base URL.
    #[arg(long, env = "AGORA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The agent's API key. Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "AGORA_AGENT_KEY", hide_env_values = true)]
    key: String,
    /// Seconds each inbox poll waits (0-60).
    #[arg(long, default_value_t = 30)]
    wait: u64,
    /// Stop after this many tasks.
    #[arg(long)]
    max_tasks: Option<u64>,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin account.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
    },
    /// Ban an account (by id or email): every call it makes is then refused.
    Ban { account: String },
    /// Lift a ban.
    Unban { account: String },
    /// Credit an account (by id or email) from outside: AMOUNT in major units of CURRENCY
    /// (`12.50 USD` is 1250 cents; `100 PTS` is 100 points).
    TopUp {
        account: String,
        amount: String,
        currency: String,
        /// Shown on the account's statement.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration file.
    Example,
}

/// Sets each named field of the configuration that a flag or variable gave.
macro_rules! overlay {
    ($from:ident => $to:ident: $($field:ident),* $(,)?) => {
        $(if let Some(v) = &$from.$field {
            $to.$field = v.clone();
        })*
    };
}

/// Every setting; each flag also reads its `AGORA_…` environment variable.
#[derive(Debug, Args)]
struct Settings {
    /// TOML configuration file.
    #[arg(long, env = "AGORA_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to serve on [default: 127.0.0.1:8080].
    #[arg(long, env = "AGORA_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// sqlite://… or postgres://… (also read from DATABASE_URL) [default: SQLite in the data dir].
    #[arg(long, env = "AGORA_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where the SQLite file and other local state live [default: ./agora-data].
    #[arg(long, env = "AGORA_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Requests per minute per key, and per IP when anonymous; 0 disables [default: 100].
    #[arg(long, env = "AGORA_RATE_LIMIT_PER_MINUTE", global = true)]
    rate_limit_per_minute: Option<u32>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "AGORA_BODY_LIMIT_BYTES", global = true)]
    body_limit_bytes: Option<usize>,
    /// Access token lifetime [default: 3600].
    #[arg(long, env = "AGORA_ACCESS_TOKEN_TTL_SECONDS", global = true)]
    access_token_ttl_seconds: Option<u64>,
    /// Refresh token lifetime [default: 2592000].
    #[arg(long, env = "AGORA_REFRESH_TOKEN_TTL_SECONDS", global = true)]
    refresh_token_ttl_seconds: Option<u64>,
    /// The URL people reach this server at (printed at start).
    #[arg(long, env = "AGORA_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "AGORA_LOG_FORMAT", global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Platform fee in basis points, 1000 = 10 % [default: 1000].
    #[arg(long, env = "AGORA_PLATFORM_FEE_BPS", global = true)]
    platform_fee_bps: Option<u32>,
    /// Free AI-team briefs per account per month [default: 10].
    #[arg(long, env = "AGORA_QUOTA_MONTHLY_FREE", global = true)]
    quota_monthly_free: Option<u32>,
    /// How long an agent holds a claimed task without progress, in seconds [default: 300].
    #[arg(long, env = "AGORA_LEASE_SECONDS", global = true)]
    lease_seconds: Option<u64>,
    /// Delivered work is accepted automatically after this many hours [default: 72].
    #[arg(long, env = "AGORA_AUTO_ACCEPT_HOURS", global = true)]
    auto_accept_hours: Option<f64>,
    /// After a revision request, hours before the requester may cancel for a refund [default: 72].
    #[arg(long, env = "AGORA_REVISION_HOURS", global = true)]
    revision_hours: Option<f64>,
    /// How often background workers look for expired leases and due auto-accepts, in
    /// milliseconds [default: 1000].
    #[arg(long, env = "AGORA_WORKER_INTERVAL_MS", global = true)]
    worker_interval_ms: Option<u64>,
    /// Allow http and private/loopback webhook targets (tests, private networks) [default: false].
    #[arg(long, env = "AGORA_ALLOW_PRIVATE_WEBHOOKS", global = true)]
    allow_private_webhooks: Option<bool>,
    /// Delays between webhook delivery attempts [default: 5s,5m,30m,2h,5h,10h,10h].
    #[arg(long, env = "AGORA_WEBHOOK_RETRY_SCHEDULE", global = true)]
    webhook_retry_schedule: Option<String>,
    /// Disable a webhook endpoint failing without a success for this many hours [default: 120].
    #[arg(long, env = "AGORA_WEBHOOK_DISABLE_AFTER_HOURS", global = true)]
    webhook_disable_after_hours: Option<f64>,
    /// The currency of the AgentFlow dialect's integer amounts [default: PTS].
    #[arg(long, env = "AGORA_AGENTFLOW_CURRENCY", global = true)]
    agentflow_currency: Option<String>,
    /// The largest amount one operation may name, in minor units [default: 1000000000000000].
    #[arg(long, env = "AGORA_MAX_AMOUNT", global = true)]
    max_amount: Option<i64>,
    /// A bearer token that may read /metrics besides admins [default: unset, admins only].
    #[arg(long, env = "AGORA_METRICS_TOKEN", global = true, hide_env_values = true)]
    metrics_token: Option<String>,
    /// Seconds a connection may take to send a request's headers [default: 10].
    #[arg(long, env = "AGORA_HEADER_READ_TIMEOUT_SECONDS", global = true)]
    header_read_timeout_seconds: Option<u64>,
    /// Seconds a request's body may take to arrive [default: 30].
    #[arg(long, env = "AGORA_BODY_READ_TIMEOUT_SECONDS", global = true)]
    body_read_timeout_seconds: Option<u64>,
    /// Connections served at once; more wait to be accepted [default: 10000].
    #[arg(long, env = "AGORA_MAX_CONNECTIONS", global = true)]
    max_connections: Option<usize>,
}

impl Settings {
    /// Defaults, then the TOML file, then environment and flags (clap gives a flag
    /// precedence over its variable).
    fn load(&self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        let database_url = self.database_url.clone().or_else(|| std::env::var("DATABASE_URL").ok());
        if let Some(v) = database_url {
            cfg.database_url = Some(DatabaseUrl(v));
        }
        if let Some(v) = &self.public_url {
            cfg.public_url = Some(v.clone());
        }
        if let Some(v) = &self.metrics_token {
            cfg.metrics_token = Some(v.clone());
        }
        if let Some(v) = self.log_format.as_deref() {
            cfg.log_format = if v == "json" { LogFormat::Json } else { LogFormat::Text };
        }
        // The rest are the same type in both places.
        overlay!(
            self => cfg:
            listen, data_dir, rate_limit_per_minute, body_limit_bytes, access_token_ttl_seconds,
            refresh_token_ttl_seconds, platform_fee_bps, quota_monthly_free, lease_seconds,
            auto_accept_hours, revision_hours, worker_interval_ms, allow_private_webhooks,
            webhook_retry_schedule, webhook_disable_after_hours, agentflow_currency, max_amount,
            header_read_timeout_seconds, body_read_timeout_seconds, max_connections
        );
        cfg.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        Ok(cfg)
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Logs go to standard error; standard output is the commands' own output (the URL a
    // server listens on, what an admin command did).
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Opens and migrates the configured database.
async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = cfg.effective_database_url();
    let store: Arc<dyn Store> = if url.is_postgres() {
        let s = agora_store_postgres::PgStore::connect(url.expose())
            .await
            .with_context(|| format!("connecting to {url}"))?;
        s.migrate().await.context("migrating PostgreSQL")?;
        Arc::new(s)
    } else if url.expose().starts_with("sqlite:") {
        if cfg.database_url.is_none() {
            std::fs::create_dir_all(&cfg.data_dir)
                .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        }
        let s = agora_store_sqlite::SqliteStore::connect(url.expose())
            .await
            .with_context(|| format!("opening {url}"))?;
        s.migrate().await.context("migrating SQLite")?;
        Arc::new(s)
    } else {
        bail!("unsupported database URL {url}: expected sqlite://… or postgres://…");
    };
    Ok(store)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives right after start-up is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("signal received: shutting down");
    })
}

async fn serve(mut cfg: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let store = open_store(&cfg).await?;
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    // With port 0 the system picks one: from here on the address is the one bound, so the
    // printed URL (which `agora bench` reads) is reachable.
    cfg.listen = listener.local_addr().context("reading the bound address")?;
    let url = cfg.public_url();
    tracing::info!(backend = store.backend(), database = %cfg.effective_database_url(), "database ready");
    let app = App::new(store, cfg.app_settings());
    if let Some((email, password)) = app.bootstrap_admin().await? {
        // Printed, never logged: it is a password.
        println!("First start: an admin account was created. Log in and keep this safe; it is shown once.");
        println!("  email:    {email}");
        println!("  password: {password}");
        println!("  curl -s {url}/api/v1/auth/token -H 'content-type: application/json' \\");
        println!("    -d '{{\"email\":\"{email}\",\"password\":\"<password>\"}}'");
    }
    println!("Agora is listening on {url}  (API docs: {url}/api/docs)");
    agora_server::serve(listener, AppState::new(app.clone(), cfg), shutdown).await?;
    app.close().await;
    Ok(())
}

/// What the operator's tools run against: the configured database, without a server.
async fn operator_app(cfg: &Config) -> anyhow::Result<App> {
    Ok(App::new(open_store(cfg).await?, cfg.app_settings()))
}

async fn admin(cmd: AdminCommand, cfg: Config) -> anyhow::Result<()> {
    let app = operator_app(&cfg).await?;
    let op = Admin::operator();
    match cmd {
        AdminCommand::CreateAdmin { email, password } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("email {e}"))?;
            let password = Password::parse(&password).map_err(|e| anyhow::anyhow!("password {e}"))?;
            let created = app.create_admin(&op, email, password).await?.commit().await?;
            println!("created admin {}", created.account.id);
        }
        AdminCommand::Ban { account } => set_ban(&app, &account, true).await?,
        AdminCommand::Unban { account } => set_ban(&app, &account, false).await?,
        AdminCommand::TopUp { account, amount, currency, reason } => {
            let account = app.find_account(&op, &account).await?;
            let table = &app.settings().currencies;
            let code = table.parse(&currency).map_err(|e| anyhow::anyhow!("currency {e}"))?;
            let minor = table.parse_major(&code, &amount).map_err(|e| anyhow::anyhow!("amount {e}"))?;
            let reason = reason.unwrap_or_else(|| "CLI top-up".into());
            let receipt = app
                .top_up(&op, &account.id, code.as_str(), minor, Some(&reason))
                .await
                .map_err(|e| anyhow::anyhow!("top-up refused: {e}"))?
                .commit()
                .await?;
            println!(
                "credited {amount} {code} ({minor} minor units) to {} ({})",
                account.id, receipt.transaction_id
            );
        }
    }
    app.close().await;
    Ok(())
}

async fn set_ban(app: &App, who: &str, banned: bool) -> anyhow::Result<()> {
    let op = Admin::operator();
    let account = app.find_account(&op, who).await?;
    app.set_ban(&op, &account.id, banned).await?.commit().await?;
    println!("{} {}", if banned { "banned" } else { "unbanned" }, account.id);
    Ok(())
}

/// jemalloc rather than the system allocator: see this crate's Cargo.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { command: ConfigCommand::Example } => {
            print!("{}", agora_server::config::EXAMPLE);
            Ok(())
        }
        Command::Serve(settings) => {
            let cfg = settings.load()?;
            init_logging(cfg.log_format);
            serve(cfg).await
        }
        Command::Migrate(settings) => {
            let cfg = settings.load()?;
            init_logging(cfg.log_format);
            let store = open_store(&cfg).await?;
            println!("migrations applied ({}: {})", store.backend(), cfg.effective_database_url());
            Ok(())
        }
        Command::Agent { command: AgentCommand::Run(run) } => {
            let runner = agent::Runner {
                client: agora_client::Client::new(run.url).with_token(run.key),
                command: run.command,
                wait: run.wait,
                max_tasks: run.max_tasks,
            };
            runner.run(shutdown_signal()?).await
        }
        Command::Bench(args) => bench::run(args, shutdown_signal()?).await,
        Command::BenchBaselineServer => bench::baseline_server().await,
        Command::Admin { command, settings } => {
            let cfg = settings.load()?;
            init_logging(cfg.log_format);
            admin(command, cfg).await
        }
    }
}
