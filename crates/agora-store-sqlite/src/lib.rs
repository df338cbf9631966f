//! The SQLite backend: one embedded database file, WAL mode, write transactions that take
//! the database lock up front (`BEGIN IMMEDIATE`) so that a transaction never fails half
//! way for want of the lock.

use std::{path::Path, str::FromStr, time::Duration};

use agora_store::{Result, StoreError, WakeHub, Wakeup};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::broadcast;

#[path = "../../agora-store/sql/mod.rs"]
mod sql;

type Db = sqlx::Sqlite;
type BackendStore = SqliteStore;
const BACKEND: &str = "sqlite";
/// SQLite locks the whole database for a write transaction; rows need no lock of their own.
const FOR_UPDATE: &str = "";
/// Nothing to skip: a write transaction holds the whole database, so no other transaction
/// holds a row this one could take.
const SKIP_LOCKED: &str = "";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn begin(pool: &sqlx::SqlitePool) -> sqlx::Result<sqlx::Transaction<'static, Db>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    hub: WakeHub,
}

/// One process owns the database file, so wake-ups are published in-process after commit.
#[derive(Debug, Clone)]
struct Waker(WakeHub);

fn waker(store: &SqliteStore) -> Waker {
    Waker(store.hub.clone())
}

async fn before_commit(_: &Waker, _: &mut sqlx::Transaction<'static, Db>, _: &[Wakeup]) -> Result<()> {
    Ok(())
}

fn after_commit(waker: &Waker, signals: Vec<Wakeup>) {
    for w in signals {
        waker.0.publish(w);
    }
}

fn subscribe(store: &SqliteStore) -> broadcast::Receiver<Wakeup> {
    store.hub.subscribe()
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url).map_err(sql::db_err(None))?;
        Self::open(opts).await
    }

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open_file(path: &Path) -> Result<Self> {
        Self::open(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open(opts: SqliteConnectOptions) -> Result<Self> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(sql::db_err(None))?;
        Ok(Self { pool, hub: WakeHub::default() })
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| StoreError::Backend(e.to_string()))
    }
}
