//! `TestApp`: a real server on a free loopback port over a fresh database, and helpers to
//! drive it through `agora-client`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use agora_client::{
    Client, Reply,
    types::{AccountType, RegisterRequest, Registered},
};
use agora_core::account::{Email, Password};
use agora_server::{AppState, Config};
use agora_store::Store;
use agora_store_postgres::testing::TestSchema;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;

/// Generates, for each named `async fn(Backend)`, one test per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    // Skipped (with one line saying so) only when no server is configured or answering.
                    if agora_store_postgres::testing::server_url().is_none() {
                        return;
                    }
                    super::$name(crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The configuration tests start from: no rate limits (tests make many calls from one IP).
pub fn test_config() -> Config {
    Config { rate_limit_per_minute: 0, rate_limits: Default::default(), ..Config::default() }
}

enum Db {
    Sqlite(PathBuf),
    Postgres(TestSchema),
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// An anonymous client.
    pub client: Client,
    pub store: Arc<dyn Store>,
    config: Config,
    db: Db,
    stop: Option<oneshot::Sender<()>>,
    /// Further servers on the same database (see [`TestApp::replica`]).
    replicas: Vec<oneshot::Sender<()>>,
}

/// Starts a server on `store` at a free loopback port; it stops when the sender is dropped
/// or sent to.
async fn start_server(store: Arc<dyn Store>, config: Config) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let state = AppState::new(store, config);
    tokio::spawn(agora_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with_config(backend, test_config()).await
    }

    pub async fn with_config(backend: Backend, config: Config) -> Self {
        let (store, db): (Arc<dyn Store>, Db) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("agora-test-{}", ulid::Ulid::generate()));
                std::fs::create_dir_all(&dir).unwrap();
                let store = agora_store_sqlite::SqliteStore::open_file(&dir.join("agora.db")).await.unwrap();
                store.migrate().await.unwrap();
                (Arc::new(store), Db::Sqlite(dir))
            }
            Backend::Postgres => {
                let schema = TestSchema::create().await.expect("PostgreSQL is configured");
                (Arc::new(schema.store().await), Db::Postgres(schema))
            }
        };
        let (addr, stop) = start_server(store.clone(), config.clone()).await;
        Self {
            addr,
            client: Client::new(format!("http://{addr}")),
            store,
            config,
            db,
            stop: Some(stop),
            replicas: Vec::new(),
        }
    }

    /// A second server on the same PostgreSQL schema, with its own connection pool and
    /// listener, as another replica would be; `None` on SQLite (one process owns the file).
    pub async fn replica(&mut self) -> Option<Client> {
        let Db::Postgres(schema) = &self.db else { return None };
        let store: Arc<dyn Store> = Arc::new(schema.store().await);
        let (addr, stop) = start_server(store, self.config.clone()).await;
        self.replicas.push(stop);
        Some(Client::new(format!("http://{addr}")))
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

    /// An agent created straight in the store, not over HTTP; returns its API key.
    pub async fn agent_direct(&self, name: &str) -> String {
        use agora_core::account::{AccountKind, Profile, Role};
        let prepared = agora_server::accounts::prepare(agora_server::accounts::AccountSpec {
            kind: AccountKind::Agent,
            role: Role::User,
            name: name.to_owned(),
            email: None,
            password: None,
            owner_id: None,
            profile: Profile::default(),
            with_key: true,
        })
        .await
        .unwrap();
        let mut tx = self.store.begin().await.unwrap();
        let created = agora_server::accounts::insert(tx.as_mut(), prepared).await.unwrap();
        tx.commit().await.unwrap();
        created.api_key.unwrap()
    }

    /// An admin (created the way `agora admin create-admin` does) and its logged-in client.
    pub async fn admin(&self) -> Client {
        let email = format!("admin-{}@example.com", ulid::Ulid::generate());
        agora_server::accounts::create_admin(
            self.store.as_ref(),
            Email::parse(&email).unwrap(),
            Password::parse("admin password 1").unwrap(),
        )
        .await
        .unwrap();
        let tokens = self.client.token(&email, "admin password 1").await.unwrap();
        self.client.with_token(tokens.access_token)
    }

    /// Every stored byte of the database as text, for checking that a secret is not in it.
    pub async fn database_dump(&self) -> String {
        match &self.db {
            Db::Sqlite(dir) => {
                let mut all = String::new();
                for entry in std::fs::read_dir(dir).unwrap() {
                    let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                    all.push_str(&String::from_utf8_lossy(&bytes));
                }
                all
            }
            Db::Postgres(schema) => {
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
        if let Db::Sqlite(dir) = &self.db {
            let _ = std::fs::remove_dir_all(dir);
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

    /// The PTS balance (available, held) of the client's account.
    pub async fn pts(&self, client: &Client) -> (i64, i64) {
        let w = client.wallet().await.unwrap();
        w.balances.iter().find(|b| b.currency == "PTS").map_or((0, 0), |b| (b.available, b.held))
    }
}
