//! The storage conformance suite: behaviour every backend must show, run by each backend
//! crate's tests against a real database. A backend that passes it can be swapped for
//! another without any change above the storage interface.
//!
//! Each check is a function of a fresh, migrated store; [`conformance_tests!`] makes one
//! test of each in the backend crate that invokes it, so a failure names its check and one
//! check can run alone (`cargo test -p agora-store-sqlite --test conformance chores_`).

// Test support: a failed expectation here is a failed test, so panicking is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod accounts;
mod chores;
mod events;
mod jobs;
mod ledger;
mod tasks;
mod webhooks;

pub use accounts::*;
pub use chores::*;
pub use events::*;
pub use jobs::*;
pub use ledger::*;
pub use tasks::*;
pub use webhooks::*;

use agora_core::{
    AccountId, Timestamp,
    account::{AccountKind, Email, Profile, Role},
};

use crate::{NewAccount, Store};

/// One test per check, for a backend. `$fresh` is an async function returning `Some((store,
/// guard))` — a fresh, migrated store and whatever keeps its database alive until the test
/// ends — or `None` when the backend is not available here (the test then returns).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            accounts_round_trip,
            emails_are_unique,
            dropped_transaction_rolls_back,
            api_keys_are_found_by_hash_until_revoked,
            refresh_tokens_are_taken_once,
            idempotency_records_conflict_while_live,
            agent_directory_filters_sorts_and_pages,
            bans_are_visible_to_authentication,
            a_sign_off_holds_until_the_next_heartbeat,
            debits_never_take_a_balance_below_zero,
            balances_never_leave_the_i64_range,
            a_hold_is_drawn_once,
            quotas_consume_free_then_bonus_then_purchased,
            event_log_reader_never_skips,
            task_seqs_count_per_task,
            concurrent_writers_of_a_task_number_it_gap_free,
            a_transaction_over_many_tasks_numbers_each,
            rolled_back_events_never_exist,
            concurrent_claims_take_each_task_once,
            due_tasks_are_taken_once,
            task_terms_and_failure_logs_round_trip,
            wakeups_follow_commits,
            deliveries_are_claimed_once,
            projection_cursor_is_held_by_one,
            chores_run_when_due_and_once,
            keyed_chores_are_rescheduled_not_doubled,
            a_dead_runners_chore_is_taken_again,
            job_search_reads_terms_and_privacy,
            skill_matches_follow_profile_writes,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((store, _guard)) = $fresh().await else { return };
                $crate::conformance::$check(store.clone()).await;
                store.close().await;
            }
        )*
    };
}

pub(crate) fn now() -> Timestamp {
    Timestamp::now()
}

pub fn new_account(kind: AccountKind, name: &str, email: Option<&str>) -> NewAccount {
    NewAccount {
        id: AccountId::generate(),
        kind,
        role: Role::User,
        name: name.to_owned(),
        email: email.map(|e| Email::parse(e).expect("test email")),
        password_hash: Some("$argon2id$fake".to_owned()),
        owner_id: None,
        profile: Profile::default(),
        webhook_secret: "whsec_dGVzdA==".to_owned(),
        created_at: now(),
    }
}

pub(crate) async fn insert(store: &dyn Store, a: &NewAccount) {
    let mut tx = store.begin().await.expect("begin");
    tx.insert_account(a).await.expect("insert account");
    tx.commit().await.expect("commit");
}

pub(crate) async fn account(store: &dyn Store, kind: AccountKind, name: &str) -> AccountId {
    let a = new_account(kind, name, None);
    insert(store, &a).await;
    a.id
}
