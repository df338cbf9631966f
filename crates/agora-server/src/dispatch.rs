//! The inbox's waiting room (SPEC §3): long-polls wait here, holding no database
//! connection, until work is queued for their agent, their time runs out, or the server
//! shuts down.
//!
//! Wake-ups come from the store ([`Store::wakeups`]): committed work announces its
//! assignee — in-process on SQLite, through `LISTEN/NOTIFY` on PostgreSQL so that a task
//! created on one replica wakes a waiter on another. A waiter that wakes tries to claim; if
//! another poll of the same agent got there first it waits again. Behind the wake-ups sits
//! a slow safety net: every few seconds the agents that have queued work are woken, which
//! covers a notification lost while a listener reconnected.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use agora_core::AccountId;
use agora_store::{Store, Wakeup};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, broadcast::error::RecvError, watch};

/// How often the safety net looks for agents with queued work.
pub const SAFETY_NET: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Room {
    notify: Arc<Notify>,
    waiters: usize,
}

#[derive(Debug)]
pub struct Dispatcher {
    rooms: Mutex<HashMap<AccountId, Room>>,
    shutdown: watch::Sender<bool>,
    gauge: Gauge,
}

impl Dispatcher {
    pub fn new(gauge: Gauge) -> Self {
        Self { rooms: Mutex::default(), shutdown: watch::channel(false).0, gauge }
    }

    /// Joins `agent`'s waiting room until the guard is dropped (a finished or disconnected
    /// poll alike: an abandoned request's future is dropped, not finished).
    pub fn wait_for(self: &Arc<Self>, agent: &AccountId) -> Waiting {
        let notify = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let room = rooms
                .entry(agent.clone())
                .or_insert_with(|| Room { notify: Arc::new(Notify::new()), waiters: 0 });
            room.waiters += 1;
            room.notify.clone()
        };
        self.gauge.inc();
        Waiting { dispatcher: self.clone(), agent: agent.clone(), notify }
    }

    /// Wakes every poll waiting for `agent` on this process.
    pub fn wake(&self, agent: &AccountId) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get(agent) {
            room.notify.notify_waiters();
        }
    }

    /// Answers every waiting poll with "no task" and every later one at once.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Forwards the store's wake-ups to waiting polls, and runs the safety net, until the
    /// server shuts down.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        let mut wakeups = store.wakeups();
        let mut shutdown = self.shutdown_signal();
        let mut net = tokio::time::interval(SAFETY_NET);
        net.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                w = wakeups.recv() => match w {
                    Ok(Wakeup::Agent(agent)) => self.wake(&agent),
                    Ok(Wakeup::Events) => {}
                    // Wake-ups may have been lost: ask the database which waiting agents have
                    // work, rather than sending every waiter to claim at once.
                    Ok(Wakeup::All) | Err(RecvError::Lagged(_)) => self.safety_net(store.as_ref()).await,
                    Err(RecvError::Closed) => return,
                },
                _ = net.tick() => self.safety_net(store.as_ref()).await,
                () = stopped(&mut shutdown) => return,
            }
        }
    }

    /// Wakes the waiting agents that have queued work.
    async fn safety_net(&self, store: &dyn Store) {
        let waiting = self.waiting_agents();
        if waiting.is_empty() {
            return;
        }
        match store.with_queued_work(&waiting).await {
            Ok(agents) => {
                for agent in &agents {
                    self.wake(agent);
                }
            }
            Err(e) => tracing::warn!(error = %e, "inbox safety net could not read queued work"),
        }
    }

    fn waiting_agents(&self) -> Vec<AccountId> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }
}

/// Resolves once the server shuts down (immediately if it already has).
pub async fn stopped(signal: &mut watch::Receiver<bool>) {
    // The borrow `wait_for` returns must not live across an await point: keep only a bool.
    let _closed_or_down = signal.wait_for(|down| *down).await.is_ok();
}

/// A poll's place in its agent's waiting room; leaves it on drop.
#[derive(Debug)]
pub struct Waiting {
    dispatcher: Arc<Dispatcher>,
    agent: AccountId,
    pub notify: Arc<Notify>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut rooms = self.dispatcher.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get_mut(&self.agent) {
            room.waiters -= 1;
            if room.waiters == 0 {
                rooms.remove(&self.agent);
            }
        }
        self.dispatcher.gauge.dec();
    }
}
