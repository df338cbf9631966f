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
