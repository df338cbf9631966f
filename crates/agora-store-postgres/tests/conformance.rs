//! The storage conformance suite against a real PostgreSQL (see `testing` for which one):
//! one test per check, each on a fresh schema.

// Test support: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use agora_store::Store;
use agora_store_postgres::testing::TestSchema;

async fn fresh() -> Option<(Arc<dyn Store>, TestSchema)> {
    let schema = TestSchema::create().await?;
    let store = schema.store().await;
    // Migrations are idempotent: a second run (another replica starting) changes nothing.
    store.migrate().await.expect("second migrate");
    Some((Arc::new(store), schema))
}

agora_store::conformance_tests!(fresh);
