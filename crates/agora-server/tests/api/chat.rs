//! Chat turns end to end (SPEC §3, §4 `chat`): the requester's message becomes a task in
//! the agent's inbox, the price is held, paid on reply (minus the fee) and refunded when the
//! turn fails or its lease runs out.

use agora_client::types::{DeliverRequest, ProgressRequest};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, error_paths};

both_backends!(
    a_chat_turn_is_held_claimed_answered_and_paid,
    the_next_turn_carries_the_conversation_at_the_subsequent_price,
    chats_are_refused_for_offline_agents_pending_turns_and_strangers,
    a_failed_turn_is_refunded_and_counted,
    an_expired_lease_fails_the_turn_refunds_and_counts_no_response,
    progress_extends_the_lease,
    free_chats_need_no_money,
    banning_an_agent_fails_over_the_work_it_holds,
);

async fn a_chat_turn_is_held_claimed_answered_and_paid(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 1000).await;
    let (bot, bot_c) = app.online_agent("Scribe", Some(100), Some(50)).await;

    let turn = ann_c.start_chat(&bot.account.id, "Write a bubble sort in Python").await.unwrap();
    assert_eq!(turn.status, "queued");
    assert_eq!(turn.status_url, format!("/api/v1/tasks/{}", turn.task_id));
    assert_eq!(turn.price.as_ref().map(|p| (p.amount, p.currency.as_str())), Some((100, "PTS")));
    assert_eq!(app.pts(&ann_c).await, (900, 100), "the first-message price is held");
    let polled = ann_c.task(&turn.task_id).await.unwrap();
    assert_eq!((polled.status.as_str(), polled.reply.as_deref()), ("queued", None));

    let task = bot_c.inbox(5).await.unwrap().expect("the turn waits in the agent's inbox");
    assert_eq!(task.id, turn.task_id);
    assert_eq!(task.status, "in_progress");
    assert!(task.lease_expires_at.is_some());
    assert_eq!(task.input["is_first_chat"], true);
    assert_eq!(task.input["messages"], json!([{"role": "user", "content": "Write a bubble sort in Python"}]));
    assert_eq!(task.chat_id.as_deref(), turn.chat_id.as_deref());
    assert_eq!(ann_c.task(&turn.task_id).await.unwrap().status, "in_progress");

    let reply = DeliverRequest { text: Some("def bubble_sort(a): ...".into()), ..Default::default() };
    let done = bot_c.deliver(&turn.task_id, &reply).await.unwrap();
    assert_eq!(done.task.status, "completed", "a chat turn is complete when answered");
    assert_eq!((done.settled_amount, done.fee, done.net, done.refunded), (100, 10, 90, 0));
    assert_eq!(app.pts(&ann_c).await, (900, 0));
    assert_eq!(app.pts(&bot_c).await, (90, 0), "the agent is paid minus the 10 % fee");

    let polled = ann_c.task(&turn.task_id).await.unwrap();
    assert_eq!(
        (polled.status.as_str(), polled.reply.as_deref()),
        ("completed", Some("def bubble_sort(a): ..."))
    );
    let timeline: Vec<_> =
        polled.timeline.unwrap().iter().map(|e| (e.task_seq, e.event_type.clone())).collect();
    let types: Vec<_> = timeline.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "task.created",
            "task.assigned",
            "payment.held",
            "task.claimed",
            "task.delivered",
            "task.completed",
            "payment.released",
        ]
    );
    let seqs: Vec<_> = timeline.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>(), "per-task numbers are gap-free");

    let me = bot_c.me().await.unwrap();
    assert_eq!((me.counters.completed, me.counters.failed, me.counters.no_response), (1, 0, 0));
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"agora_platform_revenue_minor_units{currency="PTS"} 10"#), "{metrics}");
    assert!(metrics.contains("agora_dispatch_latency_seconds_count 1"), "{metrics}");
    assert!(metrics.contains("agora_tasks_claimed_total 1"), "{metrics}");
    // Nothing more to do on it: a second delivery is refused by the state machine.
    let again = bot_c
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{}/deliver", turn.task_id),
            Some(&json!({"text": "x"})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&again, 400, "TASK_FINISHED");
}

async fn the_next_turn_carries_the_conversation_at_the_subsequent_price(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 1000).await;
    let (bot, bot_c) = app.online_agent("Scribe", Some(100), Some(50)).await;
    let first = ann_c.start_chat(&bot.account.id, "Hello").await.unwrap();
    let chat_id = first.chat_id.clone().unwrap();
    bot_c.inbox(5).await.unwrap().unwrap();
    bot_c
        .deliver(&first.task_id, &DeliverRequest { text: Some("Hi!".into()), ..Default::default() })
        .await
        .unwrap();

    let second = ann_c.chat_message(&chat_id, "Tell me a joke").await.unwrap();
    assert_eq!(second.price.as_ref().map(|p| p.amount), Some(50), "the subsequent-message price");
    assert_eq!(app.pts(&ann_c).await, (850, 50));
    let task = bot_c.inbox(5).await.unwrap().unwrap();
    assert_eq!(task.id, second.task_id);
    assert_eq!(task.input["is_first_chat"], false);
    assert_eq!(
        task.input["messages"],
        json!([
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "Tell me a joke"}
        ])
    );
}

async fn chats_are_refused_for_offline_agents_pending_turns_and_strangers(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 120).await;
    let (_, bob_c) = app.funded_human("Bob", 1000).await;
    let (bot, bot_c) = app.online_agent("Scribe", Some(100), Some(50)).await;
    let path = format!("/api/v1/agents/{}/chats", bot.account.id);

    // Never seen: offline.
    let (quiet, _) = app.agent("Quiet", &[]).await;
    let r = ann_c
        .send(
            Method::POST,
            &format!("/api/v1/agents/{}/chats", quiet.account.id),
            Some(&json!({"message": "hi"})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&r, 503, "AGENT_OFFLINE");
    // Signed off.
    let hb = bot_c.heartbeat(true).await.unwrap();
    assert_eq!(hb.status, "offline");
    let r = ann_c.send(Method::POST, &path, Some(&json!({"message": "hi"})), &[]).await.unwrap();
    assert_error(&r, 503, "AGENT_OFFLINE");
    assert_eq!(bot_c.heartbeat(false).await.unwrap().status, "idle", "a heartbeat brings it back");

    let r = ann_c.send(Method::POST, &path, Some(&json!({"message": ""})), &[]).await.unwrap();
    assert_eq!(error_paths(&r), ["message"]);
    let r = ann_c.send(Method::POST, &path, Some(&json!({"message": "hi", "extra": 1})), &[]).await.unwrap();
    assert_eq!(error_paths(&r), ["extra"]);
    let r = ann_c
        .send(
            Method::POST,
            "/api/v1/agents/acct_01jzzzzzzzzzzzzzzzzzzzzzzz/chats",
            Some(&json!({"message": "hi"})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&r, 404, "NOT_FOUND");
    let r = bot_c.send(Method::POST, &path, Some(&json!({"message": "me?"})), &[]).await.unwrap();
    assert_error(&r, 403, "FORBIDDEN");

    let first = ann_c.start_chat(&bot.account.id, "one").await.unwrap();
    let chat_path = format!("/api/v1/chats/{}/messages", first.chat_id.unwrap());
    let r = ann_c.send(Method::POST, &chat_path, Some(&json!({"message": "two"})), &[]).await.unwrap();
    assert_error(&r, 409, "CHAT_TURN_PENDING");
    assert_eq!(r.json["error"]["details"]["task_id"], first.task_id.as_str());
    // Someone else's chat, and someone else's task, do not exist for Bob.
    let r = bob_c.send(Method::POST, &chat_path, Some(&json!({"message": "two"})), &[]).await.unwrap();
    assert_error(&r, 404, "NOT_FOUND");
    let r = bob_c.send(Method::GET, &format!("/api/v1/tasks/{}", first.task_id), None, &[]).await.unwrap();
    assert_error(&r, 404, "NOT_FOUND");
    let r = bob_c
        .send(Method::POST, &format!("/api/v1/tasks/{}/cancel", first.task_id), None, &[])
        .await
        .unwrap();
    assert_error(&r, 404, "NOT_FOUND");

    // Ann has 20 left: the next first message (100) cannot be held, and nothing is queued.
    let r = ann_c.send(Method::POST, &path, Some(&json!({"message": "again"})), &[]).await.unwrap();
    assert_error(&r, 402, "INSUFFICIENT_FUNDS");
    assert_eq!(app.pts(&ann_c).await, (20, 100));
    let tasks = ann_c.tasks("role=requester").await.unwrap();
    assert_eq!(tasks.len(), 1, "the refused turn left nothing behind");

    // The requester may cancel a turn nobody has picked up: refunded.
    let cancelled = ann_c.cancel(&first.task_id).await.unwrap();
    assert_eq!((cancelled.task.status.as_str(), cancelled.refunded), ("cancelled", 100));
    assert_eq!(app.pts(&ann_c).await, (120, 0));
    assert!(bot_c.inbox(0).await.unwrap().is_none(), "a cancelled turn is not handed out");
}

async fn a_failed_turn_is_refunded_and_counted(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 1000).await;
    let (bot, bot_c) = app.online_agent("Scribe", Some(100), None).await;
    let turn = ann_c.start_chat(&bot.account.id, "Hello").await.unwrap();
    bot_c.inbox(5).await.unwrap().unwrap();
    let failed = bot_c.fail(&turn.task_id, "model unavailable").await.unwrap();
    assert_eq!((failed.task.status.as_str(), failed.refunded), ("failed", 100));
    assert_eq!(failed.task.details["error"], "model unavailable");
    assert_eq!(app.pts(&ann_c).await, (1000, 0));
    let me = bot_c.me().await.unwrap();
    assert_eq!((me.counters.completed, me.counters.failed, me.counters.no_response), (0, 1, 0));
    // The chat takes its next message after a failed turn, still at the first-message
    // price: the agent has not answered yet.
    let next = ann_c.chat_message(turn.chat_id.as_deref().unwrap(), "Still there?").await.unwrap();
    assert_eq!(next.status, "queued");
    assert_eq!(next.price.map(|p| p.amount), Some(100));
    let task = bot_c.inbox(5).await.unwrap().unwrap();
    assert_eq!(task.input["is_first_chat"], true);
}

async fn an_expired_lease_fails_the_turn_refunds_and_counts_no_response(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 1000).await;
    let (bot, bot_c) = app.online_agent("Scribe", Some(100), None).await;
    let turn = ann_c.start_chat(&bot.account.id, "Hello").await.unwrap();
    bot_c.inbox(5).await.unwrap().unwrap();
    // The agent goes silent; the lease (300 s) runs out and the system fails the turn.
    assert_eq!(app.run_due().await, 0, "not before the lease has run out");
    app.advance(std::time::Duration::from_secs(301));
    assert_eq!(app.run_due().await, 1);
    let task = ann_c.task(&turn.task_id).await.unwrap();
    assert_eq!(task.status, "failed");
    assert!(task.lease_expires_at.is_none());
    assert_eq!(app.pts(&ann_c).await, (1000, 0), "refunded");
    let me = bot_c.me().await.unwrap();
    assert_eq!((me.counters.failed, me.counters.no_response), (0, 1));
    let types: Vec<_> = task.timeline.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types[types.len() - 2..], ["task.failed", "payment.refunded"]);
    // Too late now: the agent's delivery is refused.
    let r = bot_c
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{}/deliver", turn.task_id),
            Some(&json!({"text": "late"})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&r, 400, "TASK_FINISHED");
    assert!(app.store.read().ledger_audit().await.unwrap().is_healthy());
}

async fn progress_extends_the_lease(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let (bot, bot_c) = app.online_agent("Scribe", None, None).await;
    let turn = ann_c.start_chat(&bot.account.id, "Hello").await.unwrap();
    let claimed = bot_c.inbox(5).await.unwrap().unwrap();
    let before = claimed.lease_expires_at.unwrap();
    // Leases are in milliseconds: move the clock past the claim's millisecond.
    app.advance(std::time::Duration::from_millis(5));
    let report =
        ProgressRequest { percent: 40, eta_seconds: Some(30), current_step: Some("thinking".into()) };
    let after = bot_c.progress(&turn.task_id, &report).await.unwrap();
    assert!(after.task.lease_expires_at.unwrap() > before, "a progress report renews the lease");
    let seen = ann_c.task(&turn.task_id).await.unwrap();
    let p = seen.progress.unwrap();
    assert_eq!((p.percent, p.eta_seconds, p.current_step.as_deref()), (40, Some(30), Some("thinking")));
    let bad = bot_c
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{}/progress", turn.task_id),
            Some(&json!({"percent": 101})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(error_paths(&bad), ["percent"]);
    // Only the assignee reports progress.
    let r = ann_c
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{}/progress", turn.task_id),
            Some(&json!({"percent": 5})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&r, 404, "NOT_ASSIGNEE");
    // Both sides may message on the task.
    bot_c.message(&turn.task_id, "Working on it").await.unwrap();
    ann_c.message(&turn.task_id, "Thanks").await.unwrap();
    let msgs: Vec<_> =
        ann_c.task(&turn.task_id).await.unwrap().messages.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(msgs, ["Working on it", "Thanks"]);
}

async fn free_chats_need_no_money(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ann_c) = app.funded_human("Ann", 0).await;
    let (bot, bot_c) = app.online_agent("Free", None, None).await;
    let turn = ann_c.start_chat(&bot.account.id, "Hello").await.unwrap();
    assert!(turn.price.is_none());
    bot_c.inbox(5).await.unwrap().unwrap();
    let done = bot_c
        .deliver(&turn.task_id, &DeliverRequest { text: Some("Hi".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((done.task.status.as_str(), done.settled_amount), ("completed", 0));
    // A chat reply needs text.
    let next = ann_c.chat_message(turn.chat_id.as_deref().unwrap(), "More").await.unwrap();
    bot_c.inbox(5).await.unwrap().unwrap();
    let r = bot_c
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{}/deliver", next.task_id),
            Some(&json!({"output": {"a": 1}})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(error_paths(&r), ["text"]);
}

/// SPEC §2: a banned account's claimed tasks fail over. Its chat turns fail and are
/// refunded (queued or in progress); a bounty it claimed reopens for others.
async fn banning_an_agent_fails_over_the_work_it_holds(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (_, ann_c) = app.funded_human("Ann", 1000).await;
    let (bot, bot_c) = app.online_agent("Rogue", Some(100), Some(100)).await;
    bot_c
        .update_me(&agora_client::types::ProfileFields {
            max_concurrent_tasks: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
    let first = ann_c.start_chat(&bot.account.id, "one").await.unwrap();
    let second = ann_c.start_chat(&bot.account.id, "two").await.unwrap();
    bot_c.inbox(5).await.unwrap().unwrap();
    let bounty = ann_c
        .post_bounty(&agora_client::types::BountyRequest {
            title: "Proofread".into(),
            short_description: "One page".into(),
            reward_amount: 300,
            max_delivery_hours: 24,
            ..Default::default()
        })
        .await
        .unwrap();
    bot_c.claim_bounty(&bounty.id).await.unwrap();
    assert_eq!(app.pts(&ann_c).await, (500, 500));

    admin.ban(&bot.account.id, Some("spam")).await.unwrap();
    for id in [&first.task_id, &second.task_id] {
        let t = ann_c.task(id).await.unwrap();
        assert_eq!(t.status, "failed", "{id} (in progress, then queued) failed over");
        assert_eq!(t.timeline.unwrap().last().unwrap().event_type, "payment.refunded");
    }
    let reopened = ann_c.task(&bounty.id).await.unwrap();
    assert_eq!((reopened.status.as_str(), reopened.assignee_id.as_deref()), ("open", None));
    assert_eq!(app.pts(&ann_c).await, (700, 300), "both turns refunded; the bounty's reward stays held");
    let r = bot_c.send(Method::GET, "/api/v1/agent/inbox?wait=0", None, &[]).await.unwrap();
    assert_error(&r, 403, "ACCOUNT_BANNED");
    // Another agent can take the reopened bounty.
    let (_, other_c) = app.online_agent("Honest", None, None).await;
    assert_eq!(other_c.claim_bounty(&bounty.id).await.unwrap().status, "in_progress");
    assert!(app.store.read().ledger_audit().await.unwrap().is_healthy());
}
