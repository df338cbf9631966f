//! The SQL that SQLite and PostgreSQL share, written once, one file per aggregate.
//!
//! This folder is not a module of `agora-store`: each backend crate includes it with
//! `#[path = "../../agora-store/sql/mod.rs"] mod sql;` and compiles it against its own
//! driver, through a module `db` with sqlx's query API: sqlx itself on PostgreSQL, a
//! rusqlite adapter of the same shape on SQLite (`agora-store-sqlite/src/db.rs`, which says
//! why). Why a shared source instead of generic code: code generic over a driver needs a
//! decode bound for every column type on every function, which buries the SQL; compiled
//! once per backend, the same text gets concrete types. Every statement here is portable:
//! `$n` parameters, `RETURNING`, `ON CONFLICT … DO UPDATE … WHERE`, integer millisecond
//! times, JSON as text.
//!
//! # What a backend provides
//!
//! In its crate root, before including this folder:
//! - `db`: `query`, `Query` (its result), `AssertSqlSafe`, `Error`, `Row`, `Pool`, `Transaction`, `Conn` (what a
//!   transaction's statements run on), the `Executor<'c>` and `Decode<'r>` traits,
//!   `try_get(&row, column)` and `is_unique_violation(&error)`;
//! - `BackendStore`: its store type, with a `pool: db::Pool` field and a
//!   `statements: Statements` field (the counter every statement adds to);
//! - `BACKEND`: its name for logs and `/readyz`;
//! - `FOR_UPDATE` and `SKIP_LOCKED`: the suffixes that lock a row read for update, or skip
//!   rows another transaction holds (empty on SQLite, whose write transactions already hold
//!   the database lock);
//! - `begin(&pool)`: how it opens a write transaction (`BEGIN IMMEDIATE` on SQLite);
//! - `Waker`, `waker(&store)` and `after_commit`: how a transaction's wake-ups leave it once
//!   it has committed (a batched `NOTIFY` on PostgreSQL, an in-process broadcast on
//!   SQLite), and `subscribe(&store)`: where the process hears them;
//! - `Log` (the store's `log` field), `number_events(&mut InTx, n, tasks)`,
//!   `log_fence(&mut source)` and `log_end(&mut source)`: how events get their positions,
//!   and up to which position a reader may read without ever skipping one that commits
//!   later (docs/architecture.md, "The event log").
//!
//! # How the SQL is organised
//!
//! [`Sql`] wraps a [`Source`] of connections: [`Pooled`] (each read on a pooled connection)
//! or [`InTx`] (an open transaction). Every read trait is implemented once for `Sql<S>` with
//! any source, so a read is the same code inside and outside a transaction; every write
//! trait is implemented for `Sql<InTx>` only.

/// Online: seen within the window (`$n` is its start) and not signed off (a heartbeat
/// ends a sign-off); for queries that join `accounts a`.
macro_rules! online_since {
    ($n:literal) => {
        concat!("(a.last_seen_at >= ", $n, " AND a.offline_at IS NULL)")
    };
}

/// The account columns, always selected from `accounts a`, with the owner's ban.
macro_rules! account_cols {
    () => {
        "a.id, a.kind, a.role, a.name, a.email, a.owner_id, a.description, a.skills, a.model_name, \
         a.pricing, a.max_concurrent_tasks, a.wallet_address, a.portfolio, a.completed_count, \
         a.failed_count, a.no_response_count, a.banned_at, a.last_seen_at, a.offline_at, a.created_at, a.updated_at, \
         (SELECT o.banned_at FROM accounts o WHERE o.id = a.owner_id) AS owner_banned_at"
    };
}

/// Not banned, nor an agent of a banned owner; for queries that join `accounts a`.
macro_rules! not_banned {
    () => {
        "(a.banned_at IS NULL AND NOT EXISTS \
         (SELECT 1 FROM accounts o WHERE o.id = a.owner_id AND o.banned_at IS NOT NULL))"
    };
}

mod accounts;
mod chores;
mod events;
mod idempotency;
mod jobs;
mod ledger;
mod rows;
mod services;
mod tasks;
mod webhooks;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use agora_core::AccountId;
use agora_store::{NewEvent, Reads, Result, Store, Tx, Wakeup};
use async_trait::async_trait;
use tokio::sync::broadcast;

pub(crate) use events::{Numbering, folded, last_task_seqs_column};
pub(crate) use rows::db_err;

use super::{BACKEND, BackendStore, FOR_UPDATE, Log, Waker, begin, db};
pub(crate) use rows::{err, get};

pub(crate) type DbRow = db::Row;
pub(crate) type Conn = db::Conn;

/// How many statements (transaction control included) a store has sent to its database:
/// `agora bench` divides it by the operations it ran. Each statement passes through
/// [`Source::exec`] or `Sql::<InTx>::conn`, which count it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Statements(Arc<AtomicU64>);

impl Statements {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where a [`Sql`] runs its statements.
pub(crate) trait Source: Send {
    /// The connection for one statement; each call counts one.
    fn exec(&mut self) -> impl db::Executor<'_>;
    /// What the backend needs to number and fence the event log.
    #[allow(dead_code, reason = "SQLite's numbering and fence need nothing from it")]
    fn log(&self) -> &Log;
}

/// Statements against a source of connections; see the module docs.
pub(crate) struct Sql<S>(pub(crate) S);

/// Reads outside a transaction: each statement on a pooled connection.
pub(crate) struct Pooled {
    pool: db::Pool,
    statements: Statements,
    #[allow(dead_code, reason = "SQLite's numbering and fence need nothing from it")]
    log: Log,
}

impl Source for Pooled {
    fn exec(&mut self) -> impl db::Executor<'_> {
        self.statements.add(1);
        &self.pool
    }

    fn log(&self) -> &Log {
        &self.log
    }
}

/// An open write transaction and what it does at commit.
pub(crate) struct InTx {
    tx: db::Transaction,
    /// Events appended so far; written at commit (see `events::flush`).
    events: Vec<NewEvent>,
    /// Inboxes to wake once this transaction commits.
    wakes: Vec<AccountId>,
    /// Whether it scheduled background work (chore runners look again after commit).
    chores: bool,
    waker: Waker,
    statements: Statements,
    #[allow(dead_code, reason = "SQLite's numbering and fence need nothing from it")]
    log: Log,
}

impl InTx {
    /// The transaction's connection for one statement; each call counts one.
    fn conn(&mut self) -> &mut Conn {
        self.statements.add(1);
        &mut self.tx
    }
}

impl Source for InTx {
    fn exec(&mut self) -> impl db::Executor<'_> {
        self.conn()
    }

    fn log(&self) -> &Log {
        &self.log
    }
}

impl Sql<InTx> {
    /// The transaction's connection for one statement; each call counts one.
    fn conn(&mut self) -> &mut Conn {
        self.0.conn()
    }

    /// The row with `id` in `from` (a table, perhaps aliased), read for update: locked until
    /// the transaction ends on PostgreSQL; SQLite's transaction already holds the write lock.
    /// `cols` and `from` are this crate's constants, never input; the id is bound.
    async fn locked_by_id<T>(
        &mut self,
        cols: &str,
        from: &str,
        id: &str,
        from_row: fn(&DbRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let sql = format!("SELECT {cols} FROM {from} WHERE id = $1{FOR_UPDATE}");
        let row =
            db::query(db::AssertSqlSafe(sql)).bind(id).fetch_optional(self.conn()).await.map_err(err)?;
        row.as_ref().map(from_row).transpose()
    }
}

#[async_trait]
impl Tx for Sql<InTx> {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let events = !self.0.events.is_empty();
        events::flush(&mut self).await?;
        let mut signals: Vec<Wakeup> = self.0.wakes.drain(..).map(Wakeup::Agent).collect();
        if events {
            signals.push(Wakeup::Events);
        }
        if self.0.chores {
            signals.push(Wakeup::Chores);
        }
        let InTx { tx, waker, statements, .. } = self.0;
        statements.add(1);
        tx.commit().await.map_err(rows::err)?;
        super::after_commit(&waker, signals);
        Ok(())
    }
}

#[async_trait]
impl Store for BackendStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        db::query("SELECT 1").execute(&self.pool).await.map_err(rows::err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        self.statements.add(1);
        let tx = begin(&self.pool).await.map_err(rows::err)?;
        Ok(Box::new(Sql(InTx {
            tx,
            events: Vec::new(),
            wakes: Vec::new(),
            chores: false,
            waker: super::waker(self),
            statements: self.statements.clone(),
            log: self.log.clone(),
        })))
    }

    fn read(&self) -> Box<dyn Reads> {
        Box::new(Sql(Pooled {
            pool: self.pool.clone(),
            statements: self.statements.clone(),
            log: self.log.clone(),
        }))
    }

    fn statements(&self) -> u64 {
        self.statements.get()
    }

    fn wakeups(&self) -> broadcast::Receiver<Wakeup> {
        super::subscribe(self)
    }
}
