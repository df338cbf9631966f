//! `TestApp`: a real server on a free loopback port over a fresh database, helpers to drive
//! it through `agora-client`, and the application behind it, so that a test can run the
//! background workers to quiescence (`drain_webhooks`, `run_due`, `run_background`) and
//! move the clock, instead of sleeping.

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use agora_app::testing::Backend;
use agora_app::{Admin, App, testing::TestDb};
use agora_client::{
    Client, Reply,
    types::{AccountType, RegisterRequest, Registered},
};
use agora_core::account::{Email, Password};
use agora_server::{AppState, Config};
use agora_store::Store;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;

/// Generates, for each named `async fn(Backend)`, one test per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        agora_app::both_backends!($($name),*);
    };
}

/// The metrics token of [`test_config`].
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// The configuration tests start from: no rate limits (tests make many calls from one IP),
/// and a metrics token for reading `/metrics`.
pub fn test_config() -> Config {
    Config {
        rate_limit_per_minute: 0,
        rate_limits: Default::default(),
        metrics_token: Some(METRICS_TOKEN.to_owned()),
        ..Config::default()
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// An anonymous client.
    pub client: Client,
    /// The application the server runs (its clock, its workers).
    pub app: App,
    /// The database, for setting up what no API does.
    pub store: Arc<dyn Store>,
    config: Config,
    db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    /// Every server of this test (the first and its replicas): how to stop it, and its task.
    servers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Further servers on the same database (see [`TestApp::replica`]).
    replicas: Vec<oneshot::Sender<()>>,
}

/// How a [`TestApp`] is made: `TestApp::builder(backend).config(…).build()`.
pub struct TestAppBuilder {
    backend: Backend,
    config: Config,
}

impl TestAppBuilder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    pub async fn build(self) -> TestApp {
        let db = TestDb::create(self.backend).await;
        let store = db.store();
        let (app, addr, stop, server) = start_server(store.clone(), self.config.clone()).await;
        TestApp {
            addr,
            client: Client::new(format!("http://{addr}")),
            app,
            store,
            config: self.config,
            db,
            stop: Some(stop),
            servers: vec![server],
            replicas: Vec::new(),
        }
    }
}

type Server = tokio::task::JoinHandle<std::io::Result<()>>;

/// Starts a server on `store` at a free loopback port; it stops when the sender is dropped
/// or sent to.
async fn start_server(
    store: Arc<dyn Store>,
    config: Config,
) -> (App, SocketAddr, oneshot::Sender<()>, Server) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = App::new(store, config.app_settings());
    let server =
        tokio::spawn(agora_server::serve(listener, AppState::new(app.clone(), config), async move {
            let _ = stopped.await;
        }));
    (app, addr, stop, server)
}

impl TestApp {
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder { backend, config: test_config() }
    }

    pub async fn new(backend: Backend) -> Self {
        Self::builder(backend).build().await
    }

    pub async fn with_config(backend: Backend, config: Config) -> Self {
        Self::builder(backend).config(config).build().await
    }

    /// A second server on the same PostgreSQL schema, with its own connection pool and
    /// listener, as another replica would be; `None` on SQLite (one process owns the file).
    pub async fn replica(&mut self) -> Option<Client> {
        let store = self.db.replica().await?;
        let (_, addr, stop, server) = start_server(store, self.config.clone()).await;
        self.replicas.push(stop);
        self.servers.push(server);
        Some(Client::new(format!("http://{addr}")))
    }

    /// Shuts every server of this test down gracefully and waits until each has stopped:
    /// its workers have ended and its in-flight webhook attempts have finished.
    pub async fn stop_all(&mut self) {
        self.shut_down();
        for stop in self.replicas.drain(..) {
            let _ = stop.send(());
        }
        for server in self.servers.drain(..) {
            server.await.unwrap().unwrap();
        }
    }

    /// Begins the server's graceful shutdown, as SIGTERM does.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Moves the application's clock forward: leases, deadlines and timers fall due
    /// without waiting.
    pub fn advance(&self, by: Duration) {
        self.app.clock().advance(by);
    }

    /// Runs the system's due commands (expired leases) to quiescence.
    pub async fn run_due(&self) -> usize {
        self.app.run_due().await.unwrap()
    }

    /// Runs the background work that is due (timers such as auto-accept) to quiescence.
    pub async fn run_background(&self) -> agora_app::chores::Ran {
        self.app.run_chores().await.unwrap()
    }

    /// Projects every committed event and sends every delivery that is due, until none is
    /// (retries scheduled for later wait for their time): what the webhook workers would do.
    pub async fn drain_webhooks(&self) -> agora_app::projection::Recorded {
        self.app.fan_out().await.unwrap();
        self.app.send_due_deliveries().await.unwrap()
    }

    /// A raw request, for looking at statuses, headers and bodies.
    pub async fn send(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let client = token.map_or_else(|| self.client.clone(), |t| self.client.with_token(t));
        client.send(method, path, body.as_ref(), &[]).await.unwrap()
    }

    /// Registers a human and logs in: the account and a client holding its access token.
    pub async fn human(&self, name: &str) -> (Registered, Client) {
        let email =
            format!("{}-{}@example.com", name.to_lowercase().replace(' ', "-"), ulid::Ulid::generate());
        let reg = self
            .client
            .register(&RegisterRequest {
                account_type: AccountType::Human,
                name: name.to_owned(),
                email: Some(email.clone()),
                password: Some("correct horse battery".to_owned()),
                description: None,
                skills: None,
                model_name: None,
            })
            .await
            .unwrap();
        let tokens = self.client.token(&email, "correct horse battery").await.unwrap();
        (reg, self.client.with_token(tokens.access_token))
    }

    /// Logs a human in again: a client with a fresh access token, for after the clock has
    /// been moved past the old one's lifetime.
    pub async fn sign_in_again(&self, human: &Registered) -> Client {
        let email = human.account.email.as_deref().expect("humans have an email");
        let tokens = self.client.token(email, "correct horse battery").await.unwrap();
        self.client.with_token(tokens.access_token)
    }

    /// Registers a self-registered agent: the account and a client holding its API key.
    pub async fn agent(&self, name: &str, skills: &[&str]) -> (Registered, Client) {
        let reg = self
            .client
            .register(&RegisterRequest {
                account_type: AccountType::Agent,
                name: name.to_owned(),
                email: None,
                password: None,
                description: None,
                skills: Some(skills.iter().map(|s| (*s).to_owned()).collect()),
                model_name: None,
            })
            .await
            .unwrap();
        let key = reg.api_key.clone().expect("agents get a key");
        (reg, self.client.with_token(key))
    }

    /// An agent registered through the application, not over HTTP; returns its API key.
    pub async fn agent_direct(&self, name: &str) -> String {
        let registration = agora_app::Registration {
            kind: Some(agora_core::account::AccountKind::Agent),
            name: name.to_owned(),
            ..Default::default()
        };
        let created = self.app.register(registration, None).await.unwrap().commit().await.unwrap();
        created.api_key.unwrap()
    }

    /// An admin (created the way `agora admin create-admin` does) and its logged-in client.
    pub async fn admin(&self) -> Client {
        let email = format!("admin-{}@example.com", ulid::Ulid::generate());
        self.app
            .create_admin(
                &Admin::operator(),
                Email::parse(&email).unwrap(),
                Password::parse("admin password 1").unwrap(),
            )
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        let tokens = self.client.token(&email, "admin password 1").await.unwrap();
        self.client.with_token(tokens.access_token)
    }

    /// Every stored byte of the database as text, for checking that a secret is not in it.
    pub async fn database_dump(&self) -> String {
        if let Some(dir) = self.db.sqlite_dir() {
            let mut all = String::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                all.push_str(&String::from_utf8_lossy(&bytes));
            }
            return all;
        }
        let schema = self.db.postgres_schema().unwrap();
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect_with(&schema.options()).await.unwrap();
        let mut all = String::new();
        for table in ["accounts", "api_keys", "sessions", "idempotency_keys"] {
            let sql = format!("SELECT row_to_json(t)::text AS j FROM {table} t");
            for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await.unwrap() {
                all.push_str(&row.get::<String, _>("j"));
            }
        }
        all
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for stop in self.replicas.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// Asserts an error envelope with this status and code, and returns it.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "status of {}", reply.text);
    assert_eq!(reply.json["success"], Value::Bool(false), "{}", reply.text);
    assert_eq!(reply.code(), Some(code), "{}", reply.text);
    assert!(reply.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", reply.text);
}

/// The field paths of a 422 `VALIDATION_ERROR`.
#[track_caller]
pub fn error_paths(reply: &Reply) -> Vec<String> {
    assert_error(reply, 422, "VALIDATION_ERROR");
    reply.json["error"]["details"]["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (polling every 20 ms, at most `secs` seconds) until `check` returns `Some`, and
/// returns that; fails the test with `what` if it never does. For conditions that settle
/// by themselves (a worker's tick, a lease running out) — never a fixed sleep.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// A human with `amount` PTS credited by an admin.
    pub async fn funded_human(&self, name: &str, amount: i64) -> (Registered, Client) {
        let (reg, client) = self.human(name).await;
        if amount > 0 {
            let admin = self.admin().await;
            let req = agora_client::types::TopUpRequest { amount, currency: "PTS".into(), reason: None };
            admin.top_up(&reg.account.id, &req).await.unwrap();
        }
        (reg, client)
    }

    /// A self-registered agent with the given PTS chat prices, online (it has sent a heartbeat).
    pub async fn online_agent(
        &self,
        name: &str,
        first: Option<i64>,
        subsequent: Option<i64>,
    ) -> (Registered, Client) {
        let (reg, client) = self.agent(name, &["writing"]).await;
        if first.is_some() || subsequent.is_some() {
            let pricing = agora_client::types::PricingInput {
                currency: Some("PTS".into()),
                chat_first_message: first,
                chat_subsequent_message: subsequent,
                per_task: None,
                hourly: None,
            };
            client
                .update_me(&agora_client::types::ProfileFields {
                    pricing: Some(pricing),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        client.heartbeat(false).await.unwrap();
        (reg, client)
    }

    /// Waits (at most 10 s) until `n` inbox polls wait on the server: its
    /// `agora_inbox_waiters` gauge.
    pub async fn inbox_waiters(&self, n: usize) {
        let line = format!(" {n}");
        eventually(10, "the inbox polls to wait", || async {
            let m = self.metrics().await;
            m.lines().any(|l| l.starts_with("agora_inbox_waiters") && l.ends_with(&line)).then_some(())
        })
        .await;
    }

    /// The `/metrics` text, read with the metrics token.
    pub async fn metrics(&self) -> String {
        let r = self.client.with_token(METRICS_TOKEN).send(Method::GET, "/metrics", None, &[]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        r.text
    }

    /// The PTS balance (available, held) of the client's account.
    pub async fn pts(&self, client: &Client) -> (i64, i64) {
        let w = client.wallet().await.unwrap();
        w.balances.iter().find(|b| b.currency == "PTS").map_or((0, 0), |b| (b.available, b.held))
    }
}
