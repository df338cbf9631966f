//! Test databases: each test gets its own PostgreSQL schema, dropped when it ends.
//!
//! The server is chosen by `AGORA_TEST_DATABASE_URL`. When it is set, a connection failure
//! fails the test (CI sets it). When it is unset, a server on 127.0.0.1:5432 is used if one
//! answers; otherwise PostgreSQL tests are skipped, and say so once.

// Test support: a failed expectation here is a failed test, so panicking is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    net::{SocketAddr, TcpStream},
    str::FromStr,
    sync::Once,
    time::Duration,
};

use sqlx::postgres::PgConnectOptions;

use crate::{PgStore, scratch};

pub const URL_VAR: &str = "AGORA_TEST_DATABASE_URL";
const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server URL to test against, or `None` (after one "skipped" line) when there is none.
pub fn server_url() -> Option<String> {
    if let Ok(url) = std::env::var(URL_VAR) {
        return Some(url);
    }
    let local = SocketAddr::from(([127, 0, 0, 1], 5432));
    if TcpStream::connect_timeout(&local, Duration::from_millis(300)).is_ok() {
        return Some(LOCAL_URL.to_owned());
    }
    static SKIP: Once = Once::new();
    SKIP.call_once(|| {
        eprintln!("skipped: no PostgreSQL ({URL_VAR} unset and nothing answers on 127.0.0.1:5432)")
    });
    None
}

/// A schema that exists for one test; dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    pub name: String,
}

impl TestSchema {
    /// Creates a fresh schema, or `None` when PostgreSQL tests are skipped.
    pub async fn create() -> Option<Self> {
        let url = server_url()?;
        let name = scratch::create_schema(&url, "agora_t")
            .await
            .unwrap_or_else(|e| panic!("cannot create a test schema at {URL_VAR}: {e}"));
        Some(Self { url, name })
    }

    /// Connection options for this schema (its own `search_path`).
    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .unwrap_or_else(|e| panic!("bad {URL_VAR}: {e}"))
            .options([("search_path", self.name.as_str())])
    }

    /// A connection URL that selects this schema (for processes started by a test).
    pub fn url_with_search_path(&self) -> String {
        scratch::url_with_search_path(&self.url, &self.name)
    }

    /// A migrated store on this schema.
    pub async fn store(&self) -> PgStore {
        let store = PgStore::connect_with(self.options()).await.unwrap_or_else(|e| panic!("connect: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        store
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread of its own.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            let _ = rt.block_on(scratch::drop_schema(&url, &name));
        });
        let _ = done.join();
    }
}
