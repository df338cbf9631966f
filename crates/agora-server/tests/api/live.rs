//! Notifications and the live event stream (SPEC §7).

use std::time::Duration;

use agora_client::types::{DeliverRequest, TopUpRequest};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, assert_error, eventually};

/// A Server-Sent Events connection read frame by frame.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

/// One `id:`/`event:`/`data:` frame.
#[derive(Debug, Clone)]
struct Frame {
    id: String,
    event: String,
    data: Value,
}

impl Stream {
    async fn open(base: &str, token: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new().get(format!("{base}/api/v1/events/stream")).bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"),
            "{:?}",
            resp.headers()
        );
        Self { resp, buf: String::new() }
    }

    /// The next event frame (comments skipped), or `None` if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut frame = Frame { id: String::new(), event: String::new(), data: Value::Null };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        frame.data = serde_json::from_str(v.trim()).unwrap();
                    }
                }
                if !frame.id.is_empty() {
                    return Some(frame);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?.unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn stream_resumes_exactly_after_last_event_id(backend: Backend) {
    let mut app = TestApp::new(backend).await;
    let (human, client) = app.human("Watcher").await;
    let (other, _) = app.human("Other").await;
    let token = client.bearer().unwrap().to_owned();
    let admin = app.admin().await;
    let top_up = |account: String, amount: i64| {
        let admin = admin.clone();
        async move {
            let req = TopUpRequest { amount, currency: "PTS".into(), reason: None };
            admin.top_up(&account, &req).await.unwrap();
        }
    };

    let mut first = Stream::open(&app.url(""), &token, None).await;
    for amount in 1..=3 {
        top_up(human.account.id.clone(), amount).await;
    }
    let mut seen = Vec::new();
    for amount in 1..=3 {
        let f = first.next(Duration::from_secs(10)).await.expect("a live event");
        assert_eq!(f.event, "payment.topped_up");
        assert_eq!(f.data["type"], "payment.topped_up");
        assert_eq!(f.data["data"]["amount"], amount);
        assert_eq!(f.data["seq"].to_string(), f.id, "the SSE id is the log position");
        seen.push(f.id.parse::<i64>().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    drop(first);

    // Missed while disconnected: two of ours, one of someone else's.
    top_up(human.account.id.clone(), 4).await;
    top_up(other.account.id.clone(), 100).await;
    top_up(human.account.id.clone(), 5).await;
    let last = seen[2].to_string();
    let mut resumed = Stream::open(&app.url(""), &token, Some(&last)).await;
    let a = resumed.next(Duration::from_secs(10)).await.expect("the first missed event");
    let b = resumed.next(Duration::from_secs(10)).await.expect("the second missed event");
    assert_eq!((a.data["data"]["amount"].as_i64(), b.data["data"]["amount"].as_i64()), (Some(4), Some(5)));
    assert!(
        resumed.next(Duration::from_millis(500)).await.is_none(),
        "nothing else: no duplicates, no strangers"
    );
    // And it carries on live.
    top_up(human.account.id.clone(), 6).await;
    let c = resumed.next(Duration::from_secs(10)).await.expect("a live event after resuming");
    assert_eq!(c.data["data"]["amount"], 6);

    // Resuming from the start replays everything the caller may see, in order.
    let mut replay = Stream::open(&app.url(""), &token, Some("0")).await;
    let mut amounts = Vec::new();
    while let Some(f) = replay.next(Duration::from_millis(500)).await {
        amounts.push(f.data["data"]["amount"].as_i64().unwrap());
    }
    assert_eq!(amounts, [1, 2, 3, 4, 5, 6]);

    let bad = app.send(Some(&token), Method::GET, "/api/v1/events/stream?last_event_id=abc", None).await;
    assert_error(&bad, 422, "VALIDATION_ERROR");
    let anonymous = app.send(None, Method::GET, "/api/v1/events/stream", None).await;
    assert_eq!(anonymous.status, 401);

    // On PostgreSQL, a stream on one replica hears events committed through another.
    if let Some(replica) = app.replica().await {
        let mut there = Stream::open(replica.base(), &token, None).await;
        top_up(human.account.id.clone(), 7).await;
        let f = there.next(Duration::from_secs(10)).await.expect("an event from the other replica");
        assert_eq!(f.data["data"]["amount"], 7);
    } else {
        eprintln!("skipped on SQLite: one process owns the database, so there are no replicas to cross");
    }
}

async fn notifications_tell_what_others_did(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (_, requester) = app.funded_human("Requester", 1_000).await;
    let (bot, agent) = app.online_agent("Notified Bot", Some(10), Some(5)).await;
    let turn = requester.start_chat(&bot.account.id, "Hello").await.unwrap();
    let task = agent.inbox(5).await.unwrap().expect("the turn");
    assert_eq!(task.id, turn.task_id);
    agent
        .deliver(&task.id, &DeliverRequest { text: Some("Hi!".into()), ..Default::default() })
        .await
        .unwrap();

    // The agent hears of the new task; the requester of the delivery. Nobody is told of
    // what they did themselves (the requester's hold, the agent's claim).
    let mine = eventually(10, "the requester's delivery notice", || async {
        let list = requester.notifications(false).await.unwrap();
        list.items.iter().any(|n| n.kind == "task.delivered").then_some(list)
    })
    .await;
    assert!(mine.items.iter().all(|n| n.kind != "payment.held" && n.kind != "task.created"), "{mine:?}");
    let delivered = mine.items.iter().find(|n| n.kind == "task.delivered").unwrap();
    assert_eq!(delivered.link.as_deref(), Some(format!("/api/v1/tasks/{}", task.id).as_str()));
    assert!(!delivered.read);
    assert_eq!(mine.unread_count as usize, mine.items.len());
    let theirs = eventually(10, "the agent's new-task notice", || async {
        let list = agent.notifications(false).await.unwrap();
        list.items.iter().any(|n| n.kind == "task.created").then_some(list)
    })
    .await;
    assert!(
        theirs.items.iter().all(|n| n.kind != "task.claimed" && n.kind != "task.delivered"),
        "{theirs:?}"
    );

    // Mark one read (twice is fine), then the rest.
    let before = mine.unread_count;
    assert_eq!(requester.mark_notification_read(&delivered.id).await.unwrap().marked, 1);
    assert_eq!(requester.mark_notification_read(&delivered.id).await.unwrap().marked, 1);
    let after = requester.notifications(false).await.unwrap();
    assert_eq!(after.unread_count, before - 1);
    assert!(after.items.iter().find(|n| n.id == delivered.id).unwrap().read);
    let unread = requester.notifications(true).await.unwrap();
    assert!(unread.items.iter().all(|n| !n.read && n.id != delivered.id));
    assert_eq!(unread.items.len() as u64, after.unread_count);

    // Someone else's notification is not found; nor is a malformed id.
    let agent_token = agent.bearer().unwrap().to_owned();
    let path = format!("/api/v1/notifications/{}/read", delivered.id);
    assert_error(&app.send(Some(&agent_token), Method::POST, &path, None).await, 404, "NOT_FOUND");
    let bad = app.send(Some(&agent_token), Method::POST, "/api/v1/notifications/nope/read", None).await;
    assert_error(&bad, 404, "NOT_FOUND");
    assert!(!agent.notifications(false).await.unwrap().items.iter().any(|n| n.id == delivered.id));

    let all = requester.mark_all_notifications_read().await.unwrap();
    assert_eq!(all.marked, after.unread_count);
    let done = requester.notifications(true).await.unwrap();
    assert!(done.items.is_empty() && done.unread_count == 0, "{done:?}");
    assert_eq!(requester.mark_all_notifications_read().await.unwrap().marked, 0);
}

both_backends!(stream_resumes_exactly_after_last_event_id, notifications_tell_what_others_did);
