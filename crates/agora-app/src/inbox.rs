//! The agent protocol's use cases (SPEC §3): heartbeats, claiming from an inbox, and the
//! inbox's waiting room, where long-polls wait, holding no database connection, until work
//! is queued for their agent, their time runs out, or the server shuts down. Every frontend
//! that hands agents work (the native API, a dialect's pull, MCP) waits here.
//!
//! Wake-ups come from the store (`Store::wakeups`): committed work announces its
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

use agora_core::{AccountId, account::Presence};
use agora_store::{Sighting, Store, Task, Wakeup};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, broadcast::error::RecvError, watch};

use crate::{After, App, Principal, Result, Uncommitted, access, engine};

/// How often agents should send a heartbeat.
pub const HEARTBEAT_SECONDS: u64 = 45;
/// The longest an inbox poll waits, and how long it waits when not told.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

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
    gauge: Gauge,
}

impl Dispatcher {
    pub fn new(gauge: Gauge) -> Self {
        Self { rooms: Mutex::default(), gauge }
    }

    /// Joins `agent`'s waiting room until the guard is dropped (a finished or disconnected
    /// poll alike: an abandoned request's future is dropped, not finished). The poll counts
    /// in the waiters gauge once it [waits](Waiting::waits).
    pub fn wait_for(self: &Arc<Self>, agent: &AccountId) -> Waiting {
        let notify = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let room = rooms
                .entry(agent.clone())
                .or_insert_with(|| Room { notify: Arc::new(Notify::new()), waiters: 0 });
            room.waiters += 1;
            room.notify.clone()
        };
        Waiting { dispatcher: self.clone(), agent: agent.clone(), notify, counted: false }
    }

    /// Wakes every poll waiting for `agent` on this process.
    pub fn wake(&self, agent: &AccountId) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(room) = rooms.get(agent) {
            room.notify.notify_waiters();
        }
    }

    /// Forwards the store's wake-ups to waiting polls, and runs the safety net, until the
    /// server shuts down.
    pub(crate) async fn run(self: Arc<Self>, store: &dyn Store, mut shutdown: watch::Receiver<bool>) {
        let mut wakeups = store.wakeups();
        let mut net = tokio::time::interval(SAFETY_NET);
        net.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                w = wakeups.recv() => match w {
                    Ok(Wakeup::Agent(agent)) => self.wake(&agent),
                    Ok(Wakeup::Events | Wakeup::Chores) => {}
                    // Wake-ups may have been lost: ask the database which waiting agents have
                    // work, rather than sending every waiter to claim at once.
                    Ok(Wakeup::All) | Err(RecvError::Lagged(_)) => self.safety_net(store).await,
                    Err(RecvError::Closed) => return,
                },
                _ = net.tick() => self.safety_net(store).await,
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
        match store.read().with_queued_work(&waiting).await {
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
    counted: bool,
}

impl Waiting {
    /// The poll has looked for work, found none and is about to wait: from now on it counts
    /// as waiting (`agora_inbox_waiters`). Counting only here means a counted poll has
    /// recorded its agent as seen, so an agent the gauge counts is online.
    pub fn waits(&mut self) {
        if !self.counted {
            self.counted = true;
            self.dispatcher.gauge.inc();
        }
    }
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
        if self.counted {
            self.dispatcher.gauge.dec();
        }
    }
}

/// How stale a poll lets the agent's last sighting grow before it writes a new one: well
/// inside the online window ([`agora_core::account::ONLINE_WINDOW_SECS`]), so that an agent
/// that keeps polling stays online.
const PRESENCE_REFRESH_SECS: i64 = 10;

/// Claim transactions one process runs at once: enough to keep a PostgreSQL pool busy
/// (SQLite runs one writer anyway).
pub(crate) const CLAIMS_AT_ONCE: usize = 32;

impl App {
    /// A heartbeat (SPEC §3): the agent is alive now, or signs itself off (`offline`) until
    /// its next heartbeat. Its derived status.
    pub async fn heartbeat(&self, p: &Principal, offline: bool) -> Result<Uncommitted<Presence>> {
        access::require_agent(p)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let seen = if offline { Sighting::SignOff } else { Sighting::Heartbeat };
        tx.touch_presence(p.id(), now, seen).await?;
        let in_progress = tx.in_progress_count(p.id()).await?;
        let mut agent = p.account.clone();
        agent.last_seen_at = Some(now);
        agent.offline_at = offline.then_some(now);
        Ok(self.uncommitted(tx, agent.presence(now, in_progress)))
    }

    /// Claims the next task waiting in the agent's inbox, if there is one, with a lease; no
    /// waiting (a dialect's pull).
    pub async fn claim_next(&self, p: &Principal) -> Result<Option<Task>> {
        access::require_agent(p)?;
        let agent = &p.account;
        // Nothing queued, and the agent was seen lately (when its request began): the poll
        // has nothing to write, so it reads instead of taking the write lock. Work queued
        // after this read wakes the poll, which then looks again.
        let seen_lately = agent.last_seen_at.is_some_and(|t| {
            t >= self.now().plus_seconds(-PRESENCE_REFRESH_SECS) && agent.offline_at.is_none()
        });
        if seen_lately
            && self.store().read().with_queued_work(std::slice::from_ref(&agent.id)).await?.is_empty()
        {
            return Ok(None);
        }
        // The claim's transaction is the only time a poll holds a database connection. A
        // burst of polls (every agent reconnecting after a restart) queues here, small,
        // instead of each holding a transaction's state while it waits for a connection.
        let _turn = self
            .0
            .claims
            .acquire()
            .await
            .map_err(|_| crate::Error::Unavailable("claims are closed".into()))?;
        let mut tx = self.begin().await?;
        let claimed = engine::claim_next(
            tx.as_mut(),
            &agent.id,
            agent.profile.max_concurrent_tasks,
            self.settings(),
            // Read once the transaction holds the writer: the lease runs from the claim, not
            // from before the wait for a turn.
            self.now(),
        )
        .await?;
        let mut done = self.uncommitted(tx, claimed);
        if let Some(task) = done.value() {
            let created_at = task.created_at;
            done = done.then(After::Claimed { created_at });
        }
        done.commit().await
    }

    /// Waits up to `wait` (at most [`MAX_WAIT`]) for the next task assigned to the agent
    /// and claims it with a lease; `None` when the wait ends without work, or at once when
    /// the server shuts down.
    pub async fn wait_for_task(&self, p: &Principal, wait: Duration) -> Result<Option<Task>> {
        access::require_agent(p)?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let mut waiting = self.0.inbox.wait_for(p.id());
        let notify = waiting.notify.clone();
        let mut shutdown = self.shutdown_signal();
        loop {
            // Listen before looking, so that work committed between the look and the wait
            // still wakes this poll.
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.is_shut_down() {
                return Ok(None);
            }
            // Boxed: a waiting poll's future then holds a pointer, not the claim's whole
            // state machine, for as long as it waits (memory per waiting agent).
            if let Some(task) = Box::pin(self.claim_next(p)).await? {
                return Ok(Some(task));
            }
            waiting.waits();
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
                () = stopped(&mut shutdown) => return Ok(None),
            }
        }
    }

    pub(crate) fn inbox(&self) -> Arc<Dispatcher> {
        self.0.inbox.clone()
    }
}
