//! Presence and the inbox (SPEC §3): heartbeats and derived status, long-polls that hold no
//! connection and wake when work arrives (on this server or, on PostgreSQL, another
//! replica), one holder per task under concurrency, `max_concurrent_tasks`, and graceful
//! shutdown answering waiters with no task.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use agora_client::{
    Client,
    types::{DeliverRequest, ProfileFields},
};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, eventually};

both_backends!(
    heartbeats_report_presence_and_agents_may_sign_off,
    the_inbox_answers_null_when_the_wait_ends,
    a_waiting_inbox_wakes_when_work_arrives,
    every_counted_waiter_is_an_online_agent,
    an_agent_holds_at_most_max_concurrent_tasks,
    fifty_agents_and_a_thousand_tasks_each_task_held_once,
    a_task_created_on_one_replica_wakes_a_waiter_on_another,
    shutdown_answers_waiting_polls_with_no_task,
);

async fn heartbeats_report_presence_and_agents_may_sign_off(b: Backend) {
    let app = TestApp::new(b).await;
    let (bot, bot_c) = app.agent("Scribe", &["writing"]).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let seen = app.client.agent(&bot.account.id).await.unwrap();
    assert_eq!((seen.online, seen.status.as_deref()), (false, Some("offline")), "never seen");

    let hb = bot_c.heartbeat(false).await.unwrap();
    assert_eq!((hb.next_heartbeat_in_seconds, hb.status.as_str()), (45, "idle"));
    let seen = app.client.agent(&bot.account.id).await.unwrap();
    assert_eq!((seen.online, seen.status.as_deref()), (true, Some("idle")));

    // Holding its one task (max_concurrent_tasks defaults to 1), it is busy.
    let turn = ann_c.start_chat(&bot.account.id, "hi").await.unwrap();
    bot_c.inbox(5).await.unwrap().unwrap();
    assert_eq!(app.client.agent(&bot.account.id).await.unwrap().status.as_deref(), Some("busy"));
    let listed = app.client.send(Method::GET, "/api/v1/agents?online=true", None, &[]).await.unwrap();
    assert_eq!(listed.json["data"][0]["status"], "busy", "the directory shows the derived status");
    bot_c
        .deliver(&turn.task_id, &DeliverRequest { text: Some("hello".into()), ..Default::default() })
        .await
        .unwrap();

    let off = bot_c.heartbeat(true).await.unwrap();
    assert_eq!(off.status, "offline");
    let seen = app.client.agent(&bot.account.id).await.unwrap();
    assert_eq!((seen.online, seen.status.as_deref()), (false, Some("offline")));
    let listed = app.client.send(Method::GET, "/api/v1/agents?online=true", None, &[]).await.unwrap();
    assert_eq!(listed.json["pagination"]["total"], 0, "a signed-off agent is not listed as online");
    // A sign-off holds until the next heartbeat: a poll, even one that was already waiting
    // when the agent signed off, does not bring it back.
    assert!(bot_c.inbox(0).await.unwrap().is_none());
    assert_eq!(app.client.agent(&bot.account.id).await.unwrap().status.as_deref(), Some("offline"));
    assert_eq!(bot_c.heartbeat(false).await.unwrap().status, "idle");
    // Waiting on the inbox counts as being seen.
    assert!(bot_c.inbox(0).await.unwrap().is_none());
    assert_eq!(app.client.agent(&bot.account.id).await.unwrap().status.as_deref(), Some("idle"));

    let bad = bot_c
        .send(Method::POST, "/api/v1/agent/heartbeat", Some(&json!({"status": "away"})), &[])
        .await
        .unwrap();
    assert_error(&bad, 422, "VALIDATION_ERROR");
    let human = ann_c.send(Method::POST, "/api/v1/agent/heartbeat", None, &[]).await.unwrap();
    assert_error(&human, 403, "NOT_AN_AGENT");
    let human = ann_c.send(Method::GET, "/api/v1/agent/inbox?wait=0", None, &[]).await.unwrap();
    assert_error(&human, 403, "NOT_AN_AGENT");
    let anon = app.send(None, Method::GET, "/api/v1/agent/inbox", None).await;
    assert_error(&anon, 401, "UNAUTHORIZED");
}

async fn the_inbox_answers_null_when_the_wait_ends(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, bot_c) = app.agent("Scribe", &[]).await;
    let r = bot_c.send(Method::GET, "/api/v1/agent/inbox?wait=0", None, &[]).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["data"], json!({"task": null}));
    let started = Instant::now();
    assert!(bot_c.inbox(1).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited for the second it was given");
    let r = bot_c.send(Method::GET, "/api/v1/agent/inbox?wait=-1", None, &[]).await.unwrap();
    assert_error(&r, 422, "VALIDATION_ERROR");
}

async fn a_waiting_inbox_wakes_when_work_arrives(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let (bot, bot_c) = app.online_agent("Scribe", None, None).await;
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        (bot_c.inbox(30).await.unwrap(), started.elapsed())
    });
    // Create the work once the poll is waiting (the waiter gauge says so).
    app.inbox_waiters(1).await;
    let turn = ann_c.start_chat(&bot.account.id, "wake up").await.unwrap();
    let (task, waited) = waiter.await.unwrap();
    assert_eq!(task.map(|t| t.id), Some(turn.task_id), "the waiting poll got the new task");
    // Woken by the commit, not by the end of its 30 s wait.
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    eprintln!("in-process wake-up: the poll returned {waited:?} after it started");
}

/// The waiters gauge counts a poll once it has looked for work (and so recorded its agent
/// as seen), not when it arrives: an agent the gauge counts can be given work at once.
async fn every_counted_waiter_is_an_online_agent(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let mut agents = Vec::new();
    for i in 0..20 {
        // Never a heartbeat: only the poll says they are there.
        agents.push(app.agent(&format!("Poller {i}"), &[]).await);
    }
    let polls: Vec<_> = agents
        .iter()
        .map(|(_, c)| {
            let c = c.clone();
            tokio::spawn(async move { c.inbox(30).await.unwrap() })
        })
        .collect();
    app.inbox_waiters(20).await;
    for (agent, _) in &agents {
        let seen = app.client.agent(&agent.account.id).await.unwrap();
        assert_eq!(seen.status.as_deref(), Some("idle"), "{} is counted as waiting", agent.account.name);
        ann_c.start_chat(&agent.account.id, "hi").await.unwrap();
    }
    for poll in polls {
        assert!(poll.await.unwrap().is_some(), "every waiting poll got its chat");
    }
}

async fn an_agent_holds_at_most_max_concurrent_tasks(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let (bot, bot_c) = app.online_agent("Pair", None, None).await;
    bot_c.update_me(&ProfileFields { max_concurrent_tasks: Some(2), ..Default::default() }).await.unwrap();
    let mut turns = Vec::new();
    for i in 0..3 {
        turns.push(ann_c.start_chat(&bot.account.id, &format!("task {i}")).await.unwrap().task_id);
    }
    let first = bot_c.inbox(1).await.unwrap().unwrap();
    let second = bot_c.inbox(1).await.unwrap().unwrap();
    assert_eq!([first.id.clone(), second.id.clone()], [turns[0].clone(), turns[1].clone()], "oldest first");
    assert!(bot_c.inbox(0).await.unwrap().is_none(), "at its limit, the inbox hands out nothing more");
    assert_eq!(app.client.agent(&bot.account.id).await.unwrap().status.as_deref(), Some("busy"));
    bot_c
        .deliver(&first.id, &DeliverRequest { text: Some("done".into()), ..Default::default() })
        .await
        .unwrap();
    let third = bot_c.inbox(1).await.unwrap().unwrap();
    assert_eq!(third.id, turns[2]);
}

/// SPEC §3: "exactly one agent ever holds a task". 50 agents poll and answer while 1,000
/// chat turns are created for them; every turn is claimed once, by its own agent, and
/// completed once.
async fn fifty_agents_and_a_thousand_tasks_each_task_held_once(b: Backend) {
    const AGENTS: usize = 50;
    const TASKS: usize = 1000;
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(app.online_agent(&format!("Worker {i}"), None, None).await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for (reg, client) in &agents {
        let (me, client, stop) = (reg.account.id.clone(), client.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(task) = client.inbox(1).await.unwrap() else { continue };
                assert_eq!(task.assignee_id.as_deref(), Some(me.as_str()), "claimed someone else's task");
                let reply = DeliverRequest { text: Some(format!("done by {me}")), ..Default::default() };
                client.deliver(&task.id, &reply).await.unwrap();
                held.push(task.id);
            }
            held
        }));
    }
    // Eight requesters' worth of concurrent creation, spread over the agents.
    let ids: Vec<String> = agents.iter().map(|(r, _)| r.account.id.clone()).collect();
    let mut creators = Vec::new();
    for c in 0..8 {
        let (client, ids) = (ann_c.clone(), ids.clone());
        creators.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (c..TASKS).step_by(8) {
                made.push(client.start_chat(&ids[i % AGENTS], &format!("task {i}")).await.unwrap().task_id);
            }
            made
        }));
    }
    let mut created = HashSet::new();
    for c in creators {
        created.extend(c.await.unwrap());
    }
    assert_eq!(created.len(), TASKS);
    eventually(300, "every task to be completed", || async {
        let page =
            ann_c.send(Method::GET, "/api/v1/tasks?role=requester&status=completed&limit=1", None, &[]).await;
        (page.unwrap().json["pagination"]["total"] == TASKS).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut held: HashMap<String, usize> = HashMap::new();
    for w in workers {
        for id in w.await.unwrap() {
            *held.entry(id).or_default() += 1;
        }
    }
    assert_eq!(held.len(), TASKS, "every task was handed out");
    assert!(held.values().all(|n| *n == 1), "no task was handed out twice");
    assert_eq!(held.keys().cloned().collect::<HashSet<_>>(), created);
    // The log agrees: one claim and one completion per task.
    let mut claims: HashMap<String, usize> = HashMap::new();
    let mut after = 0;
    loop {
        let events = app.store.read().events_after(after, 1000).await.unwrap();
        let Some(last) = events.last() else { break };
        after = last.seq;
        for e in events.iter().filter(|e| matches!(e.event_type.as_str(), "task.claimed" | "task.completed"))
        {
            *claims.entry(format!("{} {}", e.event_type, e.task_id.clone().unwrap())).or_default() += 1;
        }
    }
    assert_eq!(claims.len(), 2 * TASKS);
    assert!(claims.values().all(|n| *n == 1));
}

/// Two servers on one PostgreSQL database: an agent waiting on one receives, through
/// LISTEN/NOTIFY, a task created through the other. (One process owns a SQLite file, so
/// there is no second replica to start there.)
async fn a_task_created_on_one_replica_wakes_a_waiter_on_another(b: Backend) {
    let mut app = TestApp::new(b).await;
    let Some(replica_b) = app.replica().await else {
        eprintln!("skipped on SQLite: replicas need PostgreSQL");
        return;
    };
    let ann_on_b = human_on(&replica_b, "Ann").await;
    let (bot, bot_on_a) = app.online_agent("Scribe", None, None).await;
    let mut latencies = Vec::new();
    for round in 0..5 {
        let waiter = {
            let bot = bot_on_a.clone();
            tokio::spawn(async move { bot.inbox(30).await.unwrap().map(|t| (t.id, Instant::now())) })
        };
        app.inbox_waiters(1).await;
        let turn = ann_on_b.start_chat(&bot.account.id, &format!("round {round}")).await.unwrap();
        let created = Instant::now();
        let (got, at) = waiter.await.unwrap().expect("the waiter on A received the task created on B");
        assert_eq!(got, turn.task_id);
        bot_on_a
            .deliver(&got, &DeliverRequest { text: Some("ok".into()), ..Default::default() })
            .await
            .unwrap();
        latencies.push(at.saturating_duration_since(created));
    }
    latencies.sort();
    eprintln!("cross-replica dispatch (create response on B → task on A): {latencies:?}");
    // Far below the 5 s safety net: the NOTIFY path delivered it, not the fallback poll.
    assert!(latencies[2] < Duration::from_secs(2), "{latencies:?}");
}

/// Registers a person through `server` (any replica) and logs in there.
async fn human_on(server: &Client, name: &str) -> Client {
    let email = format!("{}-{}@example.com", name.to_lowercase(), ulid::Ulid::generate());
    server
        .register(&agora_client::types::RegisterRequest {
            account_type: agora_client::types::AccountType::Human,
            name: name.into(),
            email: Some(email.clone()),
            password: Some("correct horse battery".into()),
            description: None,
            skills: None,
            model_name: None,
        })
        .await
        .unwrap();
    server.with_token(server.token(&email, "correct horse battery").await.unwrap().access_token)
}

async fn shutdown_answers_waiting_polls_with_no_task(b: Backend) {
    let mut app = TestApp::new(b).await;
    let (_, bot_c) = app.agent("Scribe", &[]).await;
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r = bot_c.send(Method::GET, "/api/v1/agent/inbox?wait=30", None, &[]).await.unwrap();
        (r, started.elapsed())
    });
    app.inbox_waiters(1).await;
    app.shut_down();
    let (reply, waited) = waiter.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["data"], json!({"task": null}));
    assert!(waited < Duration::from_secs(20), "released by the shutdown, not its 30 s wait: {waited:?}");
}
