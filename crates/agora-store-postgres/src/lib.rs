//! The PostgreSQL backend: many stateless replicas on one database. Rows that a
//! transaction reads in order to change are locked (`FOR UPDATE`); work queues are claimed
//! with `FOR UPDATE SKIP LOCKED`; wake-ups cross replicas with `LISTEN/NOTIFY`.

use std::{
    str::FromStr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use agora_core::AccountId;
use agora_store::{Result, StoreError, WakeHub, Wakeup};
use sqlx::{
    Row,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::broadcast;

pub use sqlx::postgres::PgConnectOptions as ConnectOptions;

/// What the shared SQL runs on (see `agora-store/sql/mod.rs`): sqlx itself.
mod db {
    use sqlx::Postgres;
    pub(crate) use sqlx::{AssertSqlSafe, Error, query};

    pub(crate) type Row = sqlx::postgres::PgRow;
    pub(crate) type Conn = sqlx::PgConnection;
    pub(crate) type Pool = sqlx::PgPool;
    pub(crate) type Transaction = sqlx::Transaction<'static, Postgres>;

    pub(crate) trait Executor<'c>: sqlx::Executor<'c, Database = Postgres> {}
    impl<'c, T: sqlx::Executor<'c, Database = Postgres>> Executor<'c> for T {}

    pub(crate) trait Decode<'r>: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> {}
    impl<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>> Decode<'r> for T {}

    pub(crate) fn try_get<'r, T: Decode<'r>>(row: &'r Row, column: &str) -> Result<T, Error> {
        sqlx::Row::try_get(row, column)
    }

    pub(crate) fn is_unique_violation(e: &Error) -> bool {
        matches!(e, Error::Database(d) if d.is_unique_violation())
    }
}

#[path = "../../agora-store/sql/mod.rs"]
mod sql;

type Db = sqlx::Postgres;
type BackendStore = PgStore;
const BACKEND: &str = "postgres";
const FOR_UPDATE: &str = " FOR UPDATE";
/// Claims skip rows another transaction holds instead of waiting for them.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn begin(pool: &sqlx::PgPool) -> sqlx::Result<sqlx::Transaction<'static, Db>> {
    pool.begin().await
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
    hub: WakeHub,
    /// The NOTIFY channel of this database schema (replicas on one schema share it).
    channel: Arc<str>,
    listening: Arc<OnceLock<()>>,
    statements: sql::Statements,
}

/// A transaction announces wake-ups with `pg_notify` inside itself: PostgreSQL delivers
/// them at commit, to every replica's listener, and drops them on rollback.
#[derive(Debug, Clone)]
struct Waker(Arc<str>);

fn waker(store: &PgStore) -> Waker {
    Waker(store.channel.clone())
}

async fn before_commit(
    waker: &Waker,
    tx: &mut sqlx::Transaction<'static, Db>,
    signals: &[Wakeup],
) -> Result<u64> {
    let payloads: Vec<&str> = signals
        .iter()
        .map(|w| match w {
            Wakeup::Agent(agent) => agent.as_str(),
            Wakeup::Events => EVENTS_PAYLOAD,
            Wakeup::Chores => CHORES_PAYLOAD,
            // Never sent by a transaction; a listener publishes it itself.
            Wakeup::All => ALL_PAYLOAD,
        })
        .collect();
    if payloads.is_empty() {
        return Ok(0);
    }
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(&*waker.0)
        .bind(&payloads)
        .execute(&mut **tx)
        .await
        .map_err(sql::db_err(None))?;
    Ok(1)
}

/// The notification payloads that are not agent ids (account ids never start with `*`).
const EVENTS_PAYLOAD: &str = "*events";
const CHORES_PAYLOAD: &str = "*chores";
const ALL_PAYLOAD: &str = "*all";

fn after_commit(_: &Waker, _: Vec<Wakeup>) {}

fn subscribe(store: &PgStore) -> broadcast::Receiver<Wakeup> {
    let rx = store.hub.subscribe();
    store.listening.get_or_init(|| {
        tokio::spawn(listen(store.pool.clone(), store.channel.clone(), store.hub.clone()));
    });
    rx
}

/// Forwards this schema's notifications to the process. One dedicated connection per
/// replica; when it drops, PgListener reconnects, and since a notification sent meanwhile is
/// lost, every waiter is told to look again (`Wakeup::All`).
async fn listen(pool: sqlx::PgPool, channel: Arc<str>, hub: WakeHub) {
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "inbox listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(&channel).await {
            tracing::warn!(error = %e, "inbox listener cannot LISTEN; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Work queued before the LISTEN took effect would otherwise wait for the safety net.
        hub.publish(Wakeup::All);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.payload() == EVENTS_PAYLOAD => hub.publish(Wakeup::Events),
                Ok(Some(n)) if n.payload() == CHORES_PAYLOAD => hub.publish(Wakeup::Chores),
                Ok(Some(n)) if n.payload() == ALL_PAYLOAD => hub.publish(Wakeup::All),
                Ok(Some(n)) => hub.publish(Wakeup::Agent(AccountId::from_trusted(n.payload().to_owned()))),
                Ok(None) => hub.publish(Wakeup::All),
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "inbox listener failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `agora_wake_<schema>`: NOTIFY channels are per database, so replicas of one deployment
/// (one schema) share a channel and other deployments on the same database do not hear it.
fn channel_for(schema: &str) -> String {
    let clean: String = schema
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    let mut name = format!("agora_wake_{clean}");
    name.truncate(63);
    name
}

impl PgStore {
    /// Connects to a `postgres://` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgConnectOptions::from_str(url).map_err(sql::db_err(None))?).await
    }

    /// Connects with explicit options (tests use this to pin a `search_path` per test).
    pub async fn connect_with(opts: PgConnectOptions) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).connect_with(opts).await.map_err(sql::db_err(None))?;
        let schema: String = sqlx::query("SELECT current_schema() AS s")
            .fetch_one(&pool)
            .await
            .and_then(|r| r.try_get("s"))
            .map_err(sql::db_err(None))?;
        Ok(Self {
            pool,
            hub: WakeHub::default(),
            channel: channel_for(&schema).into(),
            listening: Arc::default(),
            statements: sql::Statements::default(),
        })
    }

    /// Applies the embedded migrations that have not run yet (safe with several replicas:
    /// sqlx serialises them with an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| StoreError::Backend(e.to_string()))
    }
}

pub mod scratch;
#[cfg(feature = "testing")]
pub mod testing;
