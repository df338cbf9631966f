//! The live event stream's source (SPEC §7): one reader of the event log per replica,
//! broadcasting each committed event with its audience to this replica's streams.
//!
//! The log, not process memory, is the truth: the feed reads it in order (woken by the
//! store's `Events` wake-up, which on PostgreSQL comes from every replica), and a stream
//! that starts, resumes (`Last-Event-ID`) or falls behind the broadcast reads what it missed
//! from the database before it listens again. A stream subscribes *before* it reads its
//! backlog, so an event is either in what it read or in what it hears next, and it drops
//! what it already sent by position.

use std::{sync::Arc, time::Duration};

use agora_core::AccountId;
use agora_store::{Event, Wakeup};
use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc,
};

use crate::{App, Principal, Result, error::Error, inbox::stopped};

/// An event with the accounts that may see it.
pub type Item = Arc<(Event, Vec<AccountId>)>;

const BATCH: u64 = 500;
/// Events a stream reads from the database per query while catching up.
const CATCH_UP: u64 = 200;

#[derive(Debug)]
pub struct Feed(broadcast::Sender<Item>);

impl Default for Feed {
    fn default() -> Self {
        // A stream further behind than this reads the database instead.
        Self(broadcast::channel(1024).0)
    }
}

impl Feed {
    pub fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.0.subscribe()
    }
}

/// What readers of the log wait on: the store's `Events` wake-up (from every replica on
/// PostgreSQL), a "wake-ups were lost" signal, or a tick every `worker_interval_ms` in case
/// a wake-up was lost without one.
pub struct LogWatch {
    wakeups: broadcast::Receiver<Wakeup>,
    tick: tokio::time::Interval,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for LogWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWatch")
    }
}

impl LogWatch {
    pub fn new(app: &App) -> Self {
        let mut tick = tokio::time::interval(app.settings().worker_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { wakeups: app.store().wakeups(), tick, shutdown: app.shutdown_signal() }
    }

    /// Waits `window`, then takes every wake-up that arrived meanwhile as read: the commits
    /// they announce are visible to the read that follows. A reader that writes (the
    /// webhook fan-out) projects a burst of commits in one transaction this way, and stays
    /// out of the way of the writes that follow a commit at once (an agent claiming the
    /// task just created).
    pub async fn coalesce(&mut self, window: Duration) {
        use broadcast::error::TryRecvError;
        tokio::time::sleep(window).await;
        loop {
            match self.wakeups.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Waits until the log may have grown; `false` once the server shuts down.
    pub async fn moved(&mut self) -> bool {
        loop {
            tokio::select! {
                w = self.wakeups.recv() => match w {
                    Ok(Wakeup::Agent(_) | Wakeup::Chores) => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => return true,
                    Err(RecvError::Closed) => return false,
                },
                _ = self.tick.tick() => return true,
                () = stopped(&mut self.shutdown) => return false,
            }
        }
    }
}

/// Broadcasts each event after position `start` (the log's end when the server started
/// accepting connections, so no stream can start before it), until shutdown.
pub(crate) async fn run(app: App, start: i64) {
    let mut watch = LogWatch::new(&app);
    let mut last = start;
    while watch.moved().await {
        loop {
            let events = match app.store().read().events_with_audience_after(last, BATCH).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "live feed cannot read the log; retrying");
                    break;
                }
            };
            let n = events.len();
            for item in events {
                last = item.0.seq;
                // No stream listening is fine.
                let _ = app.0.live.0.send(Arc::new(item));
            }
            if (n as u64) < BATCH {
                break;
            }
        }
    }
}

/// Sends `account`'s events after `cursor` into `out`, in log order, until the receiver
/// goes away or the server shuts down (whatever it is doing then: catching up, or waiting
/// on a client that stopped reading), so that streams never hold up a graceful shutdown.
async fn pump(app: App, account: AccountId, cursor: i64, out: mpsc::Sender<Event>) {
    let mut shutdown = app.shutdown_signal();
    tokio::select! {
        () = forward(&app, &account, cursor, &out) => {}
        () = stopped(&mut shutdown) => {}
    }
}

impl App {
    /// The caller's events after position `resume` (or, without it, from now on), in log
    /// order, as they commit: nothing lost, nothing repeated. The stream ends when the
    /// receiver is dropped or the server shuts down.
    pub async fn event_stream(&self, p: &Principal, resume: Option<i64>) -> Result<mpsc::Receiver<Event>> {
        let cursor = match resume {
            Some(n) if n >= 0 => n,
            Some(_) => {
                return Err(Error::invalid("Last-Event-ID", "must be a position from an earlier event's id"));
            }
            None => self.store().read().last_event_seq().await?,
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(pump(self.clone(), p.id().clone(), cursor, tx));
        Ok(rx)
    }
}

async fn forward(app: &App, account: &AccountId, mut cursor: i64, out: &mpsc::Sender<Event>) {
    let mut feed = app.0.live.subscribe();
    loop {
        // Catch up from the log.
        loop {
            let events = match app.store().read().account_events_after(account, cursor, CATCH_UP).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "live stream cannot read the log; closing it");
                    return;
                }
            };
            let n = events.len();
            for e in events {
                cursor = e.seq;
                if out.send(e).await.is_err() {
                    return;
                }
            }
            if (n as u64) < CATCH_UP {
                break;
            }
        }
        // Then listen, until the broadcast leaves this stream behind.
        loop {
            tokio::select! {
                item = feed.recv() => match item {
                    Ok(item) => {
                        let (event, audience) = &*item;
                        if event.seq > cursor && audience.contains(account) {
                            cursor = event.seq;
                            if out.send(event.clone()).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
                () = out.closed() => return,
            }
        }
    }
}
