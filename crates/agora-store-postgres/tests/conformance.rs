//! The storage conformance suite against a real PostgreSQL (see `testing` for which one).

use std::sync::Arc;

use agora_store::Store;
use agora_store_postgres::testing::TestSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(schema) = TestSchema::create().await else { return };
    let store = Arc::new(schema.store().await);
    // Migrations are idempotent: a second run (another replica starting) changes nothing.
    store.migrate().await.expect("second migrate");
    agora_store::conformance::run_all(store.clone()).await;
    store.close().await;
}

/// The long ledger property run: 10^5 random operations.
/// `cargo test -p agora-store-postgres --test conformance -- --ignored`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10^5 ledger operations; run with --ignored"]
async fn postgres_ledger_property_long() {
    let Some(schema) = TestSchema::create().await else { return };
    let store = Arc::new(schema.store().await);
    // Every step is checked against the model; the full-ledger audit, whose cost grows with
    // everything written so far, runs at the end of each 100-operation sequence.
    agora_store::conformance::property_random_operation_sequences(store.clone(), 1000, 100, 0).await;
    store.close().await;
}
