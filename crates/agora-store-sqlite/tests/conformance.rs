//! The storage conformance suite against a real SQLite file: one test per check.

// Test support: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use agora_store::Store;
use agora_store_sqlite::SqliteStore;

/// Removes the test's database directory when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fresh() -> Option<(Arc<dyn Store>, TempDir)> {
    let dir = std::env::temp_dir().join(format!("agora-conf-{}", ulid_like()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open_file(&dir.join("agora.db")).await.expect("open");
    store.migrate().await.expect("migrate");
    // Migrations are idempotent: a second run changes nothing.
    store.migrate().await.expect("second migrate");
    Some((Arc::new(store), TempDir(dir)))
}

fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{t:x}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

agora_store::conformance_tests!(fresh);

/// SQLite stores a float in an INTEGER column when asked to (or when integer arithmetic
/// overflows); migration 0006 makes every money column refuse one.
#[tokio::test]
async fn money_columns_refuse_floats() {
    use sqlx::Connection;
    let (_store, dir) = fresh().await.expect("store");
    let url = format!("sqlite://{}", dir.0.join("agora.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect");
    let insert = |balance: &'static str| {
        format!(
            "INSERT INTO ledger_accounts (key, owner_id, currency, bucket, balance) \
             VALUES ('funding:XTS', NULL, 'XTS', 'funding', {balance})"
        )
    };
    let float = sqlx::query(sqlx::AssertSqlSafe(insert("1.5"))).execute(&mut conn).await;
    assert!(float.is_err_and(|e| e.to_string().contains("must be an integer")), "a float balance is refused");
    sqlx::query(sqlx::AssertSqlSafe(insert("9223372036854775807"))).execute(&mut conn).await.expect("insert");
    let overflow = sqlx::query("UPDATE ledger_accounts SET balance = balance + 1 WHERE key = 'funding:XTS'")
        .execute(&mut conn)
        .await;
    assert!(overflow.is_err(), "an overflowing update is refused, not stored as a float");
    let (kind,): (String,) =
        sqlx::query_as("SELECT typeof(balance) FROM ledger_accounts WHERE key = 'funding:XTS'")
            .fetch_one(&mut conn)
            .await
            .expect("read");
    assert_eq!(kind, "integer");
    let line = sqlx::query(
        "INSERT INTO ledger_lines (tx_id, account_key, amount) VALUES ('x', 'funding:XTS', 0.25)",
    )
    .execute(&mut conn)
    .await;
    assert!(line.is_err_and(|e| e.to_string().contains("must be an integer")), "a float line is refused");
    // The other money columns have the same pair of triggers.
    let (triggers,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_integer_%'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("read");
    assert_eq!(triggers, 12, "balance, line amount, hold amount and remaining, task and service price");
}

/// Migration 0007 rebuilds the delivery log's two tables: what a database already holds
/// comes through, foreign keys hold, and a delivery without an event (a ping) now fits.
#[tokio::test]
async fn the_delivery_log_rebuild_keeps_every_row() {
    use sqlx::{Connection, migrate::Migrator};
    let dir = TempDir(std::env::temp_dir().join(format!("agora-mig-{}", ulid_like())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("agora.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect");
    let all = Migrator::new(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")))
        .await
        .expect("migrations");
    let before: Vec<_> = all.migrations.iter().filter(|m| m.version < 7).cloned().collect();
    Migrator { migrations: before.into(), ..Migrator::DEFAULT }.run(&mut conn).await.expect("up to 0006");
    for sql in [
        "INSERT INTO accounts (id, kind, role, name, webhook_secret, created_at, updated_at) \
         VALUES ('acct_1', 'human', 'user', 'Ann', 'whsec_x', 1, 1)",
        "INSERT INTO events (seq, id, type, payload, created_at) VALUES (1, 'evt_1', 'payment.topped_up', '{}', 1)",
        "INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, secret, active, \
         created_at, updated_at) VALUES ('wh_1', 'acct_1', 'https://example.com', '', '[\"*\"]', 'whsec_y', 1, 1, 1)",
        "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_seq, event_id, event_type, status, \
         attempts, round_attempts, next_attempt_at, last_status_code, created_at) \
         VALUES ('dlv_1', 'wh_1', 'acct_1', 1, 'evt_1', 'payment.topped_up', 'delivered', 1, 1, 2, 200, 1)",
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms) \
         VALUES ('dlv_1', 1, 2, 200, 15)",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect(sql);
    }
    all.run(&mut conn).await.expect("0007 and later");
    let (deliveries, attempts): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE id = 'dlv_1' AND event_seq = 1 \
         AND last_status_code = 200), (SELECT count(*) FROM webhook_attempts WHERE delivery_id = 'dlv_1')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("read");
    assert_eq!((deliveries, attempts), (1, 1));
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .expect("check");
    assert!(broken.is_empty(), "{broken:?}");
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_seq, event_id, event_type, status, \
         attempts, round_attempts, next_attempt_at, created_at) \
         VALUES ('dlv_2', 'wh_1', 'acct_1', NULL, 'evt_2', 'webhook.ping', 'delivered', 1, 1, 2, 2)",
    )
    .execute(&mut conn)
    .await
    .expect("a delivery without an event");
    let bad_child = sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, duration_ms) VALUES ('dlv_none', 1, 1, 1)",
    )
    .execute(&mut conn)
    .await;
    assert!(bad_child.is_err(), "attempts still reference deliveries");
}
