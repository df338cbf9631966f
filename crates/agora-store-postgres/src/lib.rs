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
use tokio::sync::{broadcast, mpsc};

pub use sqlx::postgres::PgConnectOptions as ConnectOptions;

/// What the shared SQL runs on (see `agora-store/sql/mod.rs`): sqlx itself.
mod db {
    use sqlx::Postgres;
    pub(crate) use sqlx::{AssertSqlSafe, Error, query};

    pub(crate) type Row = sqlx::postgres::PgRow;
    pub(crate) type Conn = sqlx::PgConnection;
    pub(crate) type Pool = sqlx::PgPool;
    pub(crate) type Transaction = sqlx::Transaction<'static, Postgres>;
    /// A statement with its bound values (what `query(…).bind(…)` returns).
    pub(crate) type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

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
    log: Log,
    notifier: mpsc::UnboundedSender<Vec<Wakeup>>,
}

/// A transaction's wake-ups go, once it has committed, to this replica's notifier task,
/// which sends them with `pg_notify` to every replica's listener. Not inside the
/// transaction: PostgreSQL serialises the commits of transactions that notify (a
/// database-wide lock held through the commit's WAL flush), which made every
/// event-writing commit wait for the one before it. The notifier sends whatever has
/// gathered while its previous statement ran in one statement. A crash between a commit
/// and its notification loses only the wake-up; readers also look every
/// `worker_interval_ms`.
#[derive(Debug, Clone)]
struct Waker(mpsc::UnboundedSender<Vec<Wakeup>>);

fn waker(store: &PgStore) -> Waker {
    Waker(store.notifier.clone())
}

fn after_commit(waker: &Waker, signals: Vec<Wakeup>) {
    if !signals.is_empty() {
        // The notifier is gone only when the store is: nobody is left to wake.
        let _ = waker.0.send(signals);
    }
}

async fn notify(
    pool: sqlx::PgPool,
    channel: Arc<str>,
    statements: sql::Statements,
    mut rx: mpsc::UnboundedReceiver<Vec<Wakeup>>,
) {
    while let Some(first) = rx.recv().await {
        let mut payloads: Vec<&str> = Vec::new();
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        for w in batch.iter().flatten() {
            payloads.push(match w {
                Wakeup::Agent(agent) => agent.as_str(),
                Wakeup::Events => EVENTS_PAYLOAD,
                Wakeup::Chores => CHORES_PAYLOAD,
                // Never sent by a transaction; a listener publishes it itself.
                Wakeup::All => ALL_PAYLOAD,
            });
        }
        payloads.sort_unstable();
        payloads.dedup();
        statements.add(1);
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(&*channel)
            .bind(&payloads)
            .execute(&pool)
            .await;
        match sent {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot send wake-ups; readers will look on their timer"),
        }
    }
}

/// How this deployment fences the event log on PostgreSQL. Positions come from the
/// sequence `event_seq`, so event-writing transactions do not wait for each other, but they
/// commit out of position order. A writer therefore holds, from before it takes its
/// positions until it commits, a shared advisory lock whose key is the last position handed
/// out before it (its positions are all greater). A reader reads only up to the fence: the
/// smaller of the sequence's last position, read first, and the least key still locked,
/// read second. Every position at or below it is committed (visible to the reader's next
/// statement) or will never exist (rolled back). See docs/architecture.md.
#[derive(Debug, Clone)]
struct Log {
    /// 16 bits from this schema's name, in the lock keys, so that deployments sharing a
    /// database do not hold up each other's readers.
    tag: i64,
}

/// Lock key classes ('F'ence and 'T'ask) in the top byte of an advisory lock's first key.
/// A fence lock's first key is the class, the tag and bits 32–39 of the position; its
/// second key is the position's low 32 bits (read back from `pg_locks` as an unsigned
/// `objid`).
const FENCE_CLASS: i64 = 0x46 << 24;
const TASK_CLASS: i64 = 0x54 << 24;

impl Log {
    fn for_schema(schema: &str) -> Self {
        // FNV-1a: stable across processes and versions, unlike std's hasher.
        let mut h: u32 = 0x811c_9dc5;
        for b in schema.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Self { tag: i64::from((h ^ (h >> 16)) & 0xffff) }
    }
}

/// The last position the sequence has handed out (0 before the first), as `l`.
macro_rules! last_position {
    () => {
        "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS l FROM event_seq"
    };
}

/// Two statements. The first locks all the transaction's tasks (one writer per task until
/// commit, so that their last numbers are read race-free); the second takes the fence lock,
/// then the positions, and reads the [`folded`](sql::folded) tasks' last numbers.
async fn number_events(tx: &mut sql::InTx, n: usize, tasks: &[&str]) -> Result<sql::Numbering> {
    use sql::Source;
    let tag = tx.log().tag;
    if !tasks.is_empty() {
        // Sorted by the caller, and locked in that order (`unnest` keeps it; the ordinality
        // says so): every transaction locks tasks in one order.
        sqlx::query(
            "SELECT pg_advisory_xact_lock($1, hashtext(t)) \
             FROM unnest($2::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
        )
        .bind((TASK_CLASS | (tag << 8)) as i32)
        .bind(tasks)
        .execute(tx.exec())
        .await
        .map_err(sql::err)?;
    }
    // The fence lock keyed by the last position handed out comes before `nextval` (not
    // necessarily after the read: `fence_key` in SQL): the materialized CTE is evaluated
    // before any row of the join, so before the target list that calls `nextval`. The
    // tasks' numbers are read in this statement's snapshot, taken after the task locks.
    let folded = sql::folded(tasks);
    let statement = format!(
        concat!(
            "WITH fence AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared( \
                 ($1 | ((l >> 32) & 255))::int4, \
                 ((l & 4294967295) - CASE WHEN (l & 4294967295) >= 2147483648 THEN 4294967296 ELSE 0 END)::int4) \
                 AS locked FROM (",
            last_position!(),
            ") AS s) \
             SELECT nextval('event_seq') AS seq, {}::text AS t FROM fence, generate_series(1, $2)"
        ),
        sql::last_task_seqs_column("json_object_agg(task_id, n)", 3, folded.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(FENCE_CLASS | (tag << 8))
        .bind(i64::try_from(n).unwrap_or(i64::MAX));
    for task in folded {
        q = q.bind(*task);
    }
    let rows = q.fetch_all(tx.exec()).await.map_err(sql::err)?;
    let task_seqs = match rows.first() {
        Some(r) => sql::get::<Option<String>>(r, "t")?,
        None => None,
    };
    let mut seqs = rows.iter().map(|r| sql::get::<i64>(r, "seq")).collect::<Result<Vec<_>>>()?;
    seqs.sort_unstable();
    Ok(sql::Numbering { seqs, task_seqs })
}

/// The last position the sequence has handed out (0 before the first).
async fn last_position<S: sql::Source>(s: &mut S) -> Result<i64> {
    let row = sqlx::query(last_position!()).fetch_one(s.exec()).await.map_err(sql::err)?;
    sql::get(&row, "l")
}

/// Up to where a reader may read (see [`Log`]); two statements, in this order.
async fn log_fence<S: sql::Source>(s: &mut S) -> Result<i64> {
    let last = last_position(s).await?;
    let prefix = (FENCE_CLASS | (s.log().tag << 8)) >> 8;
    let row = sqlx::query(
        "SELECT min(((classid::int8 & 255) << 32) | objid::int8) AS held FROM pg_locks \
         WHERE locktype = 'advisory' AND objsubid = 2 AND (classid::int8 >> 8) = $1 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(prefix)
    .fetch_one(s.exec())
    .await
    .map_err(sql::err)?;
    let held: Option<i64> = sql::get(&row, "held")?;
    Ok(held.map_or(last, |h| h.min(last)))
}

/// The log's end as a reader may see it: the fence.
async fn log_end<S: sql::Source>(s: &mut S) -> Result<i64> {
    log_fence(s).await
}

/// The notification payloads that are not agent ids (account ids never start with `*`).
const EVENTS_PAYLOAD: &str = "*events";
const CHORES_PAYLOAD: &str = "*chores";
const ALL_PAYLOAD: &str = "*all";

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
        let channel: Arc<str> = channel_for(&schema).into();
        let statements = sql::Statements::default();
        let (notifier, rx) = mpsc::unbounded_channel();
        tokio::spawn(notify(pool.clone(), channel.clone(), statements.clone(), rx));
        Ok(Self {
            pool,
            hub: WakeHub::default(),
            channel,
            listening: Arc::default(),
            statements,
            log: Log::for_schema(&schema),
            notifier,
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
