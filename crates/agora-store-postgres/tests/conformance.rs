//! The storage conformance suite against a real PostgreSQL (see `testing` for which one).

use agora_store::Store;
use agora_store_postgres::testing::TestSchema;

#[tokio::test]
async fn postgres_store_conforms() {
    let Some(schema) = TestSchema::create().await else { return };
    let store = schema.store().await;
    // Migrations are idempotent: a second run (another replica starting) changes nothing.
    store.migrate().await.expect("second migrate");
    agora_store::conformance::run_all(&store).await;
    store.close().await;
}
