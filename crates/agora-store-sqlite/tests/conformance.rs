//! The storage conformance suite against a real SQLite file.

// Test support: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::{path::PathBuf, sync::Arc};

use agora_store::Store;
use agora_store_sqlite::SqliteStore;

async fn fresh(name: &str) -> (Arc<SqliteStore>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("agora-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("agora.db");
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open_file(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("second migrate");
    (Arc::new(store), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let (store, dir) = fresh("conformance").await;
    agora_store::conformance::run_all(store.clone()).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The long ledger property run: 10^5 random operations.
/// `cargo test -p agora-store-sqlite --test conformance -- --ignored`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10^5 ledger operations; run with --ignored"]
async fn sqlite_ledger_property_long() {
    let (store, dir) = fresh("ledger-long").await;
    // Every step is checked against the model; the full-ledger audit, whose cost grows with
    // everything written so far, runs at the end of each 100-operation sequence.
    agora_store::conformance::property_random_operation_sequences(store.clone(), 1000, 100, 0).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
