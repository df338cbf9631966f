//! The background workers every replica runs: the inbox's wake-ups and safety net, the
//! lease sweep, the chore runner, the live feed, the webhook fan-out and sender, and the
//! rate limiters' sweep. Each takes its work so that replicas share it and none does any
//! twice; all stop when the application shuts down.

use std::time::Duration;

use agora_core::Timestamp;
use agora_store::{Due, Wakeup};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use crate::{App, Result, delivery, engine, inbox::stopped, live};

impl App {
    /// Starts every worker; the live feed from `log_end` (the log's end when connections
    /// started to be accepted).
    pub fn spawn_workers(&self, log_end: i64) -> Vec<JoinHandle<()>> {
        let mut all = vec![
            tokio::spawn({
                let app = self.clone();
                async move {
                    let store = app.0.store.clone();
                    app.inbox().run(store.as_ref(), app.shutdown_signal()).await
                }
            }),
            tokio::spawn(sweep_loop(self.clone())),
            tokio::spawn(chore_loop(self.clone())),
            tokio::spawn(live::run(self.clone(), log_end)),
            tokio::spawn(limits_loop(self.clone())),
        ];
        if let Some(sender) = self.sender() {
            all.push(tokio::spawn(delivery::fan_out_loop(self.clone())));
            all.push(tokio::spawn(delivery::send_loop(self.clone(), sender)));
        }
        all
    }

    /// The end of the event log now.
    pub async fn log_end(&self) -> Result<i64> {
        Ok(self.store().read().last_event_seq().await?)
    }

    /// Applies the system's command to every task that is due now, one transaction each,
    /// in due order. A task whose command fails is logged and passed over until the next
    /// sweep, so one bad task cannot hold up every later one. How many it handled.
    pub async fn run_due(&self) -> Result<usize> {
        let mut handled = 0;
        for due in [Due::LeaseExpired] {
            handled += self.sweep(due).await?;
        }
        Ok(handled)
    }

    async fn sweep(&self, due: Due) -> Result<usize> {
        let now = self.now();
        let mut handled = 0;
        let mut after: Option<(Timestamp, agora_core::TaskId)> = None;
        loop {
            let mut tx = self.begin().await?;
            let Some(task) = tx.due_task(due, now, after.as_ref()).await? else { return Ok(handled) };
            after = Some((due.at(&task).unwrap_or(now), task.id.clone()));
            let id = task.id.clone();
            match engine::run_due(tx.as_mut(), task, due, self.settings(), now).await {
                Ok(done) => {
                    tx.commit().await?;
                    handled += 1;
                    tracing::info!(task_id = %id, status = done.task.status.as_str(), ?due, "due task handled");
                }
                Err(e) => {
                    tracing::warn!(task_id = %id, error = %e, ?due, "due task failed; passed over this sweep")
                }
            }
        }
    }
}

async fn sweep_loop(app: App) {
    let mut shutdown = app.shutdown_signal();
    let mut tick = tokio::time::interval(app.settings().worker_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = app.run_due().await {
                    tracing::warn!(error = %e, "background sweep failed; retrying next tick");
                }
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Runs due chores when one is scheduled (the store's `Chores` wake-up, from any replica on
/// PostgreSQL) and every worker interval, which also finds timers that came due.
async fn chore_loop(app: App) {
    let mut shutdown = app.shutdown_signal();
    let mut wakeups = app.store().wakeups();
    let mut tick = tokio::time::interval(app.settings().worker_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            w = wakeups.recv() => match w {
                Ok(Wakeup::Chores | Wakeup::All) | Err(RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
            () = stopped(&mut shutdown) => return,
        }
        if let Err(e) = app.run_chores().await {
            tracing::warn!(error = %e, "background work runner failed; retrying");
        }
    }
}

async fn limits_loop(app: App) {
    let mut shutdown = app.shutdown_signal();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => app.limits().sweep(),
            () = stopped(&mut shutdown) => return,
        }
    }
}
