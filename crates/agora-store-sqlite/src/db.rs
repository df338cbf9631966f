//! The slice of sqlx's query API that the shared SQL (`agora-store/sql`) uses, over
//! `rusqlite`, so that a statement runs on the caller's thread.
//!
//! Why by hand: sqlx's SQLite driver hands every statement to a per-connection worker
//! thread and waits for the answer, which cost 30–150 µs a statement on this machine while
//! SQLite itself needs a few (docs/architecture.md, "Storage"). rusqlite runs the statement
//! where it is called, but speaks a different API; these ~250 lines let the one copy of the
//! SQL that both backends share compile against it (PostgreSQL keeps sqlx itself). No crate
//! offers sqlx's builder over rusqlite.
//!
//! Running a statement blocks the calling task for as long as SQLite takes: microseconds for
//! the indexed reads and writes the store makes. One connection writes; a write transaction
//! holds it (an async mutex, so writers queue in order) from `BEGIN IMMEDIATE` to `COMMIT`.
//! Reads outside a transaction take a connection of their own from a small idle list (WAL:
//! readers never wait for the writer).

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex as StdMutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rusqlite::{
    Connection,
    types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef},
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Idle read connections kept for reuse; more are opened when needed and closed after.
const IDLE_READERS: usize = 8;
/// Prepared statements cached per connection: every distinct statement the store runs.
const STATEMENT_CACHE: usize = 256;
/// How long a statement waits for a lock another process holds (an `agora` CLI command).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong; the message is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    /// SQLite's extended result code, when SQLite refused the statement.
    code: Option<i32>,
}

impl Error {
    fn msg(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: None }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
            _ => None,
        };
        Self { message: e.to_string(), code }
    }
}

/// A UNIQUE or PRIMARY KEY constraint refused the write.
pub fn is_unique_violation(e: &Error) -> bool {
    matches!(
        e.code,
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

/// SQL text built at run time, which the caller vouches for (only constants are spliced in;
/// values are always bound), as with sqlx.
pub struct AssertSqlSafe<T>(pub T);

pub trait IntoSql<'q> {
    fn into_sql(self) -> Cow<'q, str>;
}

impl<'q> IntoSql<'q> for &'q str {
    fn into_sql(self) -> Cow<'q, str> {
        Cow::Borrowed(self)
    }
}

impl IntoSql<'static> for AssertSqlSafe<String> {
    fn into_sql(self) -> Cow<'static, str> {
        Cow::Owned(self.0)
    }
}

impl<'q> IntoSql<'q> for AssertSqlSafe<&'q str> {
    fn into_sql(self) -> Cow<'q, str> {
        Cow::Borrowed(self.0)
    }
}

pub fn query<'q>(sql: impl IntoSql<'q>) -> Query<'q> {
    Query { sql: sql.into_sql(), args: Vec::new(), bad: None }
}

/// A statement and its bound values (`$1` is the first `bind`).
pub struct Query<'q> {
    sql: Cow<'q, str>,
    args: Vec<Value>,
    /// A value that could not be bound; reported when the statement runs.
    bad: Option<String>,
}

/// What `execute` reports.
pub struct QueryResult {
    rows_affected: u64,
}

impl QueryResult {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

impl Query<'_> {
    #[must_use]
    pub fn bind<T: ToSql>(mut self, value: T) -> Self {
        match value.to_sql() {
            Ok(ToSqlOutput::Borrowed(v)) => match owned(v) {
                Some(v) => self.args.push(v),
                None => self.bad = Some(format!("parameter ${} is not UTF-8", self.args.len() + 1)),
            },
            Ok(ToSqlOutput::Owned(v)) => self.args.push(v),
            Ok(_) => self.bad = Some(format!("parameter ${} has an unsupported type", self.args.len() + 1)),
            Err(e) => self.bad = Some(format!("parameter ${}: {e}", self.args.len() + 1)),
        }
        self
    }

    pub async fn execute<'c, E: Executor<'c>>(self, on: E) -> Result<QueryResult, Error> {
        on.with(|conn| {
            let mut stmt = self.prepare(conn)?;
            // Stepped to the end, so that a statement with RETURNING may be executed too.
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
            Ok(QueryResult { rows_affected: conn.changes() })
        })
    }

    pub async fn fetch_all<'c, E: Executor<'c>>(self, on: E) -> Result<Vec<Row>, Error> {
        on.with(|conn| self.rows(conn, usize::MAX))
    }

    pub async fn fetch_optional<'c, E: Executor<'c>>(self, on: E) -> Result<Option<Row>, Error> {
        on.with(|conn| Ok(self.rows(conn, 1)?.pop()))
    }

    pub async fn fetch_one<'c, E: Executor<'c>>(self, on: E) -> Result<Row, Error> {
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| Error::msg("no rows returned by a query that expected one"))
    }

    fn prepare<'c>(&self, conn: &'c Connection) -> Result<rusqlite::CachedStatement<'c>, Error> {
        if let Some(bad) = &self.bad {
            return Err(Error::msg(bad.clone()));
        }
        let mut stmt = conn.prepare_cached(&self.sql)?;
        // `$n` (or `?n`) names the n-th bound value wherever it appears, as on PostgreSQL;
        // SQLite numbers parameters in order of first appearance, so map each by its name.
        for i in 1..=stmt.parameter_count() {
            let n = match stmt.parameter_name(i) {
                Some(name) => {
                    name[1..].parse::<usize>().map_err(|_| Error::msg(format!("parameter {name}")))?
                }
                None => i,
            };
            let value =
                self.args.get(n.wrapping_sub(1)).ok_or_else(|| Error::msg(format!("no value for ${n}")))?;
            stmt.raw_bind_parameter(i, value)?;
        }
        Ok(stmt)
    }

    fn rows(&self, conn: &Connection, limit: usize) -> Result<Vec<Row>, Error> {
        let mut stmt = self.prepare(conn)?;
        let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut out = Vec::new();
        let mut rows = stmt.raw_query();
        while out.len() < limit {
            let Some(r) = rows.next()? else { break };
            let values = (0..columns.len()).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()?;
            out.push(Row { columns: columns.clone(), values });
        }
        Ok(out)
    }
}

fn owned(v: ValueRef<'_>) -> Option<Value> {
    Some(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).ok()?.to_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// One result row, owned.
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

/// A column type `try_get` can read.
pub trait Decode<'r>: FromSql {}

impl<T: FromSql> Decode<'_> for T {}

impl Row {
    pub fn try_get<'r, T: Decode<'r>>(&'r self, column: &str) -> Result<T, Error> {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| Error::msg(format!("no column {column:?}")))?;
        T::column_result(ValueRef::from(&self.values[i]))
            .map_err(|e| Error::msg(format!("column {column:?}: {e}")))
    }
}

/// Where a statement runs: the pool (a read connection) or an open write transaction.
pub trait Executor<'c>: Send {
    fn with<R>(self, f: impl FnOnce(&Connection) -> Result<R, Error>) -> Result<R, Error>;
}

/// The database file's connections: one writer, and readers opened as needed.
#[derive(Debug, Clone)]
pub struct Pool(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: StdMutex<Vec<Connection>>,
    closed: AtomicBool,
}

fn open(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL is a property of the file (set once, by the writer); these are per connection.
    // No connection checkpoints as it commits: the checkpointer thread does (see there).
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    Ok(conn)
}

/// How often the checkpointer copies the write-ahead log back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL off the request path, on a thread of its own, until the pool is
/// closed or dropped. SQLite's automatic checkpoint runs inside the `COMMIT` that crosses
/// 1,000 pages, on whatever runtime thread committed, and holds the writer meanwhile: it
/// was the dispatch tail (`agora bench dispatch` p99 8.6 ms with it, 2.2 ms without).
/// `PASSIVE` waits for no reader or writer; once a checkpoint has copied the whole log, the
/// next write transaction starts the log over, so the file stays small.
fn spawn_checkpointer(path: &Path, shared: std::sync::Weak<Shared>) -> Result<(), Error> {
    let conn = open(path)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                match shared.upgrade() {
                    Some(s) if !s.closed.load(Ordering::Acquire) => {}
                    _ => return,
                }
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the next one tries again");
                }
            }
        })
        .map_err(|e| Error::msg(format!("cannot start the checkpointer: {e}")))?;
    Ok(())
}

impl Pool {
    /// Opens the database file (creating it if needed) in WAL mode.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let writer = open(path)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::msg(format!("{} cannot use WAL (journal mode {mode})", path.display())));
        }
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            writer: Arc::new(Mutex::new(writer)),
            readers: StdMutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        spawn_checkpointer(path, Arc::downgrade(&shared))?;
        Ok(Self(shared))
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.0.closed.load(Ordering::Acquire) { Err(Error::msg("the database is closed")) } else { Ok(()) }
    }

    /// Starts a write transaction: waits for the writer (in turn, for as long as SQLite
    /// would wait for another process), then takes SQLite's write lock at once, so that the
    /// transaction never fails half way for want of it.
    pub async fn begin(&self) -> Result<Transaction, Error> {
        self.check_open()?;
        let conn =
            tokio::time::timeout(BUSY_TIMEOUT, self.0.writer.clone().lock_owned()).await.map_err(|_| {
                Error::msg("database is locked: no write transaction ended within the busy timeout")
            })?;
        self.check_open()?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Transaction { conn: Some(conn) })
    }

    /// Refuses every later call, and waits for the transaction in progress to end.
    pub async fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        drop(self.0.writer.lock().await);
        self.0.readers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl<'c> Executor<'c> for &'c Pool {
    fn with<R>(self, f: impl FnOnce(&Connection) -> Result<R, Error>) -> Result<R, Error> {
        self.check_open()?;
        let idle = self.0.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => open(&self.0.path)?,
        };
        let out = f(&conn);
        let mut idle = self.0.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

/// An open write transaction on the writer connection; dropped without
/// [`Transaction::commit`], it rolls back.
pub struct Transaction {
    conn: Option<OwnedMutexGuard<Connection>>,
}

/// What a write transaction's statements run on.
pub type Conn = Transaction;

impl Transaction {
    pub async fn commit(mut self) -> Result<(), Error> {
        let conn = self.conn.take().ok_or_else(|| Error::msg("the transaction has ended"))?;
        let done = conn.execute_batch("COMMIT");
        if done.is_err() && !conn.is_autocommit() {
            // A COMMIT that failed (the disk is full) leaves the transaction open.
            let _ = conn.execute_batch("ROLLBACK");
        }
        Ok(done?)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn
            && !conn.is_autocommit()
        {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

impl<'c> Executor<'c> for &'c mut Transaction {
    fn with<R>(self, f: impl FnOnce(&Connection) -> Result<R, Error>) -> Result<R, Error> {
        let conn = self.conn.as_ref().ok_or_else(|| Error::msg("the transaction has ended"))?;
        // SQLite ends a transaction by itself after some errors (a full disk); what follows
        // must not run outside it, one statement at a time.
        if conn.is_autocommit() {
            return Err(Error::msg("the transaction was rolled back"));
        }
        f(conn)
    }
}

pub fn try_get<'r, T: Decode<'r>>(row: &'r Row, column: &str) -> Result<T, Error> {
    row.try_get(column)
}
