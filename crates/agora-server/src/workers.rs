//! Background work that falls due by time (SPEC §3, §4): leases that ran out and
//! deliveries waiting past the auto-accept delay. Every replica runs this loop; each due task
//! is taken with `FOR UPDATE SKIP LOCKED` (PostgreSQL) in its own transaction, so replicas
//! share the work, none does a task twice, and one that dies mid-way leaves its task to be
//! taken again.

use std::{sync::Arc, time::Duration};

use agora_core::Timestamp;
use agora_store::{Due, work};

use crate::AppState;

/// Runs until shutdown, every `worker_interval_ms`.
pub async fn run(state: AppState) {
    let mut shutdown = state.dispatcher.shutdown_signal();
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.worker_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for due in [Due::LeaseExpired, Due::AutoAccept] {
                    if let Err(e) = drain(&state, due).await {
                        tracing::warn!(error = %e, ?due, "background worker failed; retrying next tick");
                    }
                }
            }
            () = crate::dispatch::stopped(&mut shutdown) => return,
        }
    }
}

/// Applies the system's command to every task that is due now, one transaction each, in
/// due order. A task whose command fails is logged and passed over until the next tick, so
/// one bad task cannot hold up every later one. Returns how many it handled.
pub async fn drain(state: &AppState, due: Due) -> agora_store::Result<usize> {
    let settings = state.config.engine();
    let now = Timestamp::now();
    let mut handled = 0;
    let mut after = None;
    loop {
        let mut tx = state.store.begin().await?;
        let Some(task) = tx.due_task(due, now, after.as_ref()).await? else { return Ok(handled) };
        after = Some((due.at(&task).unwrap_or(now), task.id.clone()));
        let id = task.id.clone();
        match work::run_due(tx.as_mut(), task, due, &settings, now).await {
            Ok(done) => {
                tx.commit().await?;
                handled += 1;
                tracing::info!(task_id = %id, status = done.task.status.as_str(), ?due, "due task handled");
            }
            Err(e) => {
                tracing::warn!(task_id = %id, error = %e, ?due, "due task failed; passed over this tick")
            }
        }
    }
}

/// Starts the dispatcher, the workers, the live feed (from `log_end`) and the webhook
/// workers; they stop when the dispatcher shuts down.
pub fn spawn(state: &AppState, log_end: i64) -> Vec<tokio::task::JoinHandle<()>> {
    let mut all = vec![
        tokio::spawn(Arc::clone(&state.dispatcher).run(state.store.clone())),
        tokio::spawn(run(state.clone())),
        tokio::spawn(crate::live::run(state.clone(), log_end)),
    ];
    all.extend(crate::webhooks::spawn(state));
    all
}
