//! The application on a real database: money, the work engine, the event log's projection
//! and background work, each check on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod engine;
mod money;

use money::*;

agora_app::both_backends!(
    operations_move_money_as_planned,
    concurrent_holds_never_overdraw,
    racing_settlements_pay_once,
    ledger_events_are_written_with_the_change,
    ledger_property_reduced,
);

mod long {
    //! The long ledger property runs: `cargo test -p agora-app --test app -- --ignored`.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long: 10^5 ledger operations; run with --ignored"]
    async fn sqlite_ledger_property_long() {
        super::ledger_property_long(agora_app::testing::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long: 10^5 ledger operations; run with --ignored"]
    async fn postgres_ledger_property_long() {
        if !agora_app::testing::postgres_available() {
            return;
        }
        super::ledger_property_long(agora_app::testing::Backend::Postgres).await
    }
}
