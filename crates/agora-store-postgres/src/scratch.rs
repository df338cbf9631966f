//! Scratch schemas: a fresh, empty schema in an existing database for one test or one
//! benchmark run, dropped afterwards. A schema (not a database) because creating one needs
//! no privileges beyond the database's, and `search_path` in the connection URL selects it
//! for any process the caller starts.

use sqlx::Connection;

use agora_store::{Result, StoreError};

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Creates `<prefix>_<unique>` in the database at `url` and returns its name. `prefix` must
/// be a plain lower-case identifier.
pub async fn create_schema(url: &str, prefix: &str) -> Result<String> {
    let name = format!("{prefix}_{}", unique_suffix());
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(backend)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut conn)
        .await
        .map_err(backend)?;
    Ok(name)
}

/// Drops the schema and everything in it.
pub async fn drop_schema(url: &str, name: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(backend)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")))
        .execute(&mut conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The names of the schemas in the database at `url` that begin with `<prefix>_`, and so
/// were made by `create_schema` (for finding what a run left behind).
pub async fn schemas(url: &str, prefix: &str) -> Result<Vec<String>> {
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(backend)?;
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT schema_name::text FROM information_schema.schemata WHERE starts_with(schema_name, $1)",
    )
    .bind(format!("{prefix}_"))
    .fetch_all(&mut conn)
    .await
    .map_err(backend)?;
    Ok(names.into_iter().map(|(n,)| n).collect())
}

/// `url` with a `search_path` that selects schema `name` (for processes the caller starts).
pub fn url_with_search_path(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{name}")
}

/// A unique, lower-case identifier part: time, process id and a process-wide counter.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{t:x}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
