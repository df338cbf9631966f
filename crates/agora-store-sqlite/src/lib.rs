//! The SQLite backend: one embedded database file in WAL mode. Statements run through
//! rusqlite on the calling thread (`db.rs` says why); one connection writes, and a write
//! transaction takes the database lock up front (`BEGIN IMMEDIATE`) so that it never fails
//! half way for want of it. Migrations run through sqlx, which keeps their record.

use std::{path::Path, str::FromStr, time::Duration};

use agora_store::{Result, StoreError, WakeHub, Wakeup};
use sqlx::{
    ConnectOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::broadcast;

mod db;

#[path = "../../agora-store/sql/mod.rs"]
mod sql;

type BackendStore = SqliteStore;
const BACKEND: &str = "sqlite";
/// SQLite locks the whole database for a write transaction; rows need no lock of their own.
const FOR_UPDATE: &str = "";
/// Nothing to skip: a write transaction holds the whole database, so no other transaction
/// holds a row this one could take.
const SKIP_LOCKED: &str = "";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn begin(pool: &db::Pool) -> Result<db::Transaction, db::Error> {
    pool.begin().await
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: db::Pool,
    /// How to reach the file with sqlx, which runs the migrations.
    options: SqliteConnectOptions,
    hub: WakeHub,
    statements: sql::Statements,
    log: Log,
}

/// One process owns the database file, so wake-ups are published in-process after commit.
#[derive(Debug, Clone)]
struct Waker(WakeHub);

fn waker(store: &SqliteStore) -> Waker {
    Waker(store.hub.clone())
}

/// Nothing the event log needs to know about this database.
#[derive(Debug, Clone, Default)]
struct Log;

/// One writer at a time, so the counter row numbers events in commit order, gap-free, and
/// holds every task's numbering for this transaction alone. The tasks' last numbers come
/// back from the same statement (a subquery in `RETURNING`).
async fn number_events(tx: &mut sql::InTx, n: usize, tasks: &[&str]) -> Result<sql::Numbering> {
    use sql::Source;
    let folded = sql::folded(tasks);
    let statement = format!(
        "UPDATE event_counter SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq, {} AS t",
        sql::last_task_seqs_column("json_group_object(task_id, n)", 2, folded.len())
    );
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let mut q = db::query(db::AssertSqlSafe(statement)).bind(n);
    for task in folded {
        q = q.bind(*task);
    }
    let row = q.fetch_one(tx.exec()).await.map_err(sql::err)?;
    let last: i64 = sql::get(&row, "last_seq")?;
    Ok(sql::Numbering { seqs: (last - n + 1..=last).collect(), task_seqs: sql::get(&row, "t")? })
}

/// Every committed position may be read: no write is in flight while a statement reads.
#[allow(clippy::unused_async)]
async fn log_fence<S: sql::Source>(_: &mut S) -> Result<i64> {
    Ok(i64::MAX)
}

/// The last position handed out, all of it committed.
async fn log_end<S: sql::Source>(s: &mut S) -> Result<i64> {
    let row = db::query("SELECT last_seq FROM event_counter WHERE id = 1")
        .fetch_one(s.exec())
        .await
        .map_err(sql::err)?;
    sql::get(&row, "last_seq")
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
        let opts = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Backend(e.to_string()))?;
        Self::open(opts).await
    }

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open_file(path: &Path) -> Result<Self> {
        Self::open(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open(opts: SqliteConnectOptions) -> Result<Self> {
        let options = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = options.get_filename().to_owned();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return Err(StoreError::Backend(
                "an in-memory SQLite database is not supported: give a file (sqlite://path/agora.db)".into(),
            ));
        }
        // Opening creates the file and switches it to WAL (a blocking call).
        let pool = tokio::task::spawn_blocking(move || db::Pool::open(&path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .map_err(sql::db_err(None))?;
        Ok(Self { pool, options, hub: WakeHub::default(), statements: sql::Statements::default(), log: Log })
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.options.connect().await.map_err(|e| StoreError::Backend(e.to_string()))?;
        MIGRATOR.run(&mut conn).await.map_err(|e| StoreError::Backend(e.to_string()))
    }
}
