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
