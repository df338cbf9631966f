//! The PostgreSQL backend: many stateless replicas on one database. Rows that a
//! transaction reads in order to change are locked (`FOR UPDATE`).

use std::str::FromStr;

use agora_store::{Result, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use sqlx::postgres::PgConnectOptions as ConnectOptions;

#[path = "../../agora-store/sql/shared.rs"]
mod shared;

type Db = sqlx::Postgres;
type BackendStore = PgStore;
const BACKEND: &str = "postgres";
const FOR_UPDATE: &str = " FOR UPDATE";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

async fn begin(pool: &sqlx::PgPool) -> sqlx::Result<sqlx::Transaction<'static, Db>> {
    pool.begin().await
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    /// Connects to a `postgres://` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PgConnectOptions::from_str(url).map_err(shared::db_err(None))?).await
    }

    /// Connects with explicit options (tests use this to pin a `search_path` per test).
    pub async fn connect_with(opts: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(opts)
            .await
            .map_err(shared::db_err(None))?;
        Ok(Self { pool })
    }

    /// Applies the embedded migrations that have not run yet (safe with several replicas:
    /// sqlx serialises them with an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| StoreError::Backend(e.to_string()))
    }
}

#[cfg(feature = "testing")]
pub mod testing;
