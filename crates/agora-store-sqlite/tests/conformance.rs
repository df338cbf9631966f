//! The storage conformance suite against a real SQLite file.

use agora_store::Store;
use agora_store_sqlite::SqliteStore;

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = std::env::temp_dir().join(format!("agora-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("agora.db");
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open_file(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("second migrate");
    agora_store::conformance::run_all(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
