//! Test support (feature `testing`): a fresh database of either backend per test, and
//! [`both_backends!`](crate::both_backends), which runs a test once on each.
//!
//! PostgreSQL is taken from `AGORA_TEST_DATABASE_URL`; unset, a server on 127.0.0.1:5432 is
//! used when one answers, and otherwise the PostgreSQL half says once that it is skipped
//! (see `agora_store_postgres::testing`). CI sets the variable, so there it never skips.

// Test support: a failed expectation here is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{path::PathBuf, sync::Arc};

use agora_store::Store;
use agora_store_postgres::testing::TestSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether PostgreSQL tests run here (printing once why not, when they do not).
pub fn postgres_available() -> bool {
    agora_store_postgres::testing::server_url().is_some()
}

#[derive(Debug)]
enum Db {
    Sqlite(PathBuf),
    Postgres(TestSchema),
}

/// A fresh, migrated database for one test; removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    db: Db,
    store: Arc<dyn Store>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("agora-test-{}", ulid::Ulid::generate()));
                std::fs::create_dir_all(&dir).unwrap();
                let store = agora_store_sqlite::SqliteStore::open_file(&dir.join("agora.db")).await.unwrap();
                store.migrate().await.unwrap();
                Self { backend, store: Arc::new(store), db: Db::Sqlite(dir) }
            }
            Backend::Postgres => {
                let schema = TestSchema::create().await.expect("PostgreSQL is configured");
                let store = Arc::new(schema.store().await);
                Self { backend, store, db: Db::Postgres(schema) }
            }
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// A second store on the same database, with its own pool and listener, as another
    /// replica would have; `None` on SQLite (one process owns the file).
    pub async fn replica(&self) -> Option<Arc<dyn Store>> {
        match &self.db {
            Db::Postgres(schema) => Some(Arc::new(schema.store().await)),
            Db::Sqlite(_) => None,
        }
    }

    /// The SQLite folder, or the PostgreSQL schema, for tests that look at what is stored.
    pub fn sqlite_dir(&self) -> Option<&PathBuf> {
        match &self.db {
            Db::Sqlite(dir) => Some(dir),
            Db::Postgres(_) => None,
        }
    }

    pub fn postgres_schema(&self) -> Option<&TestSchema> {
        match &self.db {
            Db::Postgres(schema) => Some(schema),
            Db::Sqlite(_) => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Db::Sqlite(dir) = &self.db {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Generates, for each named `async fn(Backend)`, one test per backend (in modules `sqlite`
/// and `postgres`). The PostgreSQL one returns early, having said so once, when no server is
/// configured or answering.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::testing::postgres_available() {
                        return;
                    }
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}

impl crate::App {
    /// Creates a task as the work engine does, for tests of mechanisms whose use cases have
    /// not landed yet (a brief's one-off `webhook_url`).
    pub async fn create_task_for_test(&self, task: agora_store::Task) -> crate::Result<agora_store::Task> {
        let mut tx = self.begin().await?;
        let task = crate::engine::create(tx.as_mut(), task, self.now()).await?;
        tx.commit().await?;
        Ok(task)
    }
}
